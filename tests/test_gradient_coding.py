"""Gradient coding building blocks: assignments, Tandon codes, the protocol's coefficients,
schedules and orderings — the facts of docs/gradient_coding.md, checked on the pure functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gossipsim.algorithms.coding.assignment import (
    cyclic_assignment,
    fractional_assignment,
    make_assignment,
)
from gossipsim.algorithms.coding.encoding import cr_encoding, decode, fr_encoding
from gossipsim.algorithms.coding.ordering import (
    expected_coverage_time,
    natural_orders,
    optimized_orders,
    random_orders,
    reversed_orders,
    sample_slot_durations,
)
from gossipsim.algorithms.coding.partial import (
    constraint_matrix,
    covered,
    encoding_coefficients,
    positions,
    processed,
    worker_coefficients,
)
from gossipsim.algorithms.coding.schedule import (
    MessageTimes,
    baseline_schedule,
    coverage_times,
    partial_schedule,
)
from gossipsim.system.timing import ComputeModel

# -- assignments ---------------------------------------------------------------------------


def test_cyclic_assignment_is_the_textbook_one():
    a = cyclic_assignment(6, 6, 3)
    assert a.natural[0] == (0, 1, 2)
    assert a.natural[5] == (5, 0, 1)
    assert (a.support.sum(axis=1) == 3).all()
    assert (a.replication == 3).all()
    assert a.tolerance == 2


def test_cyclic_assignment_with_more_chunks_than_workers():
    a = cyclic_assignment(4, 8, 3)
    assert a.natural[1] == (2, 3, 4)
    assert a.support.any(axis=0).all()
    with pytest.raises(ValueError, match=r"algorithm\.load: .*held by no worker.*at least .* 2"):
        cyclic_assignment(4, 8, 1)


def test_fractional_assignment_groups():
    a = fractional_assignment(6, 6, 3)
    assert a.natural[:3] == ((0, 1, 2),) * 3
    assert a.natural[3:] == ((3, 4, 5),) * 3
    assert (a.replication == 3).all()
    general = fractional_assignment(6, 12, 4)  # 3 groups of 2 workers, 4 chunks each
    assert (general.replication == 2).all()


@pytest.mark.parametrize(
    ("kind", "n", "m", "load", "message"),
    [
        ("fractional", 20, 20, 3, r"algorithm\.load: FR needs workers \(20\) divisible by load"),
        ("fractional", 6, 10, 4, r"algorithm\.load: FR needs chunks \(10\) divisible by load"),
        ("cyclic", 5, 3, 4, r"algorithm\.load: load \(4\) must not exceed chunks \(3\)"),
        ("diagonal", 5, 5, 2, r"algorithm\.assignment: unknown assignment"),
    ],
)
def test_assignment_errors_name_the_field(kind, n, m, load, message):
    with pytest.raises(ValueError, match=message):
        make_assignment(kind, n, m, load)


# -- Tandon et al. codes -------------------------------------------------------------------


def _chunk_gradients(m: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(m, d))


@pytest.mark.parametrize(("n", "load"), [(6, 2), (6, 3), (8, 3), (9, 3)])
def test_fr_and_cr_decode_exactly_with_up_to_s_full_stragglers(n, load):
    s = load - 1
    G = _chunk_gradients(n, 5, n + load)
    g = G.sum(axis=0)
    codes = {"cr": cr_encoding(cyclic_assignment(n, n, load), np.random.default_rng(1))}
    if n % load == 0:
        codes["fr"] = fr_encoding(fractional_assignment(n, n, load))
    for name, B in codes.items():
        coded = B @ G  # what each worker sends
        for stragglers in itertools.combinations(range(n), s):
            alive = np.setdiff1d(np.arange(n), stragglers)
            decoding = decode(B, alive)
            assert decoding.exact, (name, stragglers)
            g_hat = decoding.a @ coded[decoding.rows]
            assert np.linalg.norm(g_hat - g) <= 1e-10 * np.linalg.norm(g), (name, stragglers)
            assert np.isfinite(decoding.condition) and decoding.condition >= 1.0


def test_cr_rows_have_cyclic_support_and_too_few_rows_do_not_decode():
    n, load = 10, 3
    a = cyclic_assignment(n, n, load)
    B = cr_encoding(a, np.random.default_rng(5))
    assert ((B != 0) == a.support).all()
    # n − s − 1 rows of the generic construction never span the all-ones vector
    assert not decode(B, np.arange(n - load)).exact
    # the condition number of B_F is reported for n − s rows
    assert decode(B, np.arange(n - load + 1)).condition > 1.0


def test_fr_decodes_with_one_member_per_group():
    B = fr_encoding(fractional_assignment(9, 9, 3))
    assert decode(B, [0, 4, 8]).exact
    assert not decode(B, [0, 1, 2, 3, 4, 5]).exact  # group {6, 7, 8} missing


# -- the protocol's coefficients -----------------------------------------------------------


def _random_state(rng, assignment, orders, covered_only: bool):
    n = assignment.workers
    load = len(orders[0])
    pos = positions(assignment, orders)
    while True:
        state = rng.integers(0, load + 1, size=n)
        if not covered_only or covered(pos, state).all():
            return pos, state


def test_min_norm_coefficients_match_pinv_of_the_constraint_matrix():
    rng = np.random.default_rng(0)
    for n, m, load, kind in [(8, 8, 3, "cyclic"), (6, 12, 4, "cyclic"), (9, 9, 3, "fractional")]:
        a = make_assignment(kind, n, m, load)
        orders = random_orders(a, [np.random.default_rng(i) for i in range(n)])
        for _ in range(30):
            pos, state = _random_state(rng, a, orders, covered_only=False)
            mask = processed(pos, state)
            coefficients = encoding_coefficients(mask)
            A, workers, chunks = constraint_matrix(mask)
            if A.shape[1] == 0:
                assert not coefficients.beta.any()
                continue
            expected = np.linalg.pinv(A) @ np.ones(m)
            np.testing.assert_allclose(
                coefficients.beta[workers, chunks], expected, rtol=0, atol=1e-12
            )


def test_exact_coefficients_lie_in_one_over_load_to_one_and_recover_the_gradient():
    rng = np.random.default_rng(1)
    n, load = 10, 4
    a = cyclic_assignment(n, n, load)
    orders = natural_orders(a)
    G = _chunk_gradients(n, 6, 3)
    for _ in range(50):
        pos, state = _random_state(rng, a, orders, covered_only=True)
        mask = processed(pos, state)
        coefficients = encoding_coefficients(mask)
        assert coefficients.exact
        beta = coefficients.beta[mask]
        assert beta.min() >= 1.0 / load - 1e-12 and beta.max() <= 1.0 + 1e-12
        # the min-norm solution spreads each chunk evenly over those who processed it
        np.testing.assert_allclose(coefficients.beta, mask / mask.sum(axis=0), rtol=0, atol=1e-12)
        # each worker solves the problem alone and gets its row of the same solution
        rows = np.stack([worker_coefficients(pos, state, i) for i in range(n)])
        np.testing.assert_array_equal(rows, coefficients.beta)
        vectors = rows @ G  # one coded vector per worker; the PS adds them up
        np.testing.assert_allclose(vectors.sum(axis=0), G.sum(axis=0), rtol=1e-12, atol=1e-12)
        assert coefficients.condition <= np.sqrt(load) + 1e-9


def test_approximate_coefficients_drop_only_uncovered_chunks():
    a = cyclic_assignment(5, 5, 2)
    pos = positions(a, natural_orders(a))
    state = np.array([1, 0, 0, 2, 0])  # worker 0: chunk 0; worker 3: chunks 3, 4
    coefficients = encoding_coefficients(processed(pos, state))
    assert not coefficients.exact
    np.testing.assert_allclose(coefficients.residual, [0, -1, -1, 0, 0], atol=1e-12)


# -- schedules -----------------------------------------------------------------------------

COMPUTE_MODELS = [
    dict(kind="exponential"),
    dict(kind="shifted_exponential", shift=0.5),
    dict(kind="lognormal", sigma=1.0, heterogeneity={"kind": "lognormal", "sigma": 0.5}),
    dict(kind="pareto", alpha=1.5, stragglers={"fraction": 0.2, "slowdown": 8.0}),
]


def _draws(compute: ComputeModel, load: int, count: int, seed: int) -> np.ndarray:
    return sample_slot_durations(compute, load, count, np.random.default_rng(seed))


@pytest.mark.parametrize("spec", COMPUTE_MODELS)
def test_protocol_never_finishes_later_than_cr_on_identical_draws(spec):
    """Zero latency and infinite bandwidth: exact protocol ≤ CR GC, same assignment."""
    n, load = 12, 3
    compute = ComputeModel(n, rng=np.random.default_rng(4), **spec)
    a = cyclic_assignment(n, n, load)
    B = cr_encoding(a, np.random.default_rng(2))
    net = MessageTimes.zero(n)
    order_sets = {
        "natural": natural_orders(a),
        "reversed": reversed_orders(a),
        "random": random_orders(a, [np.random.default_rng(10 + i) for i in range(n)]),
        "optimized": optimized_orders(a, compute, np.random.default_rng(3), samples=64)[0],
    }
    fr_a = fractional_assignment(n, n, load)
    B_fr = fr_encoding(fr_a)
    fr_pos = positions(fr_a, natural_orders(fr_a))
    for D in _draws(compute, load, 150, seed=7):
        cr = baseline_schedule("cr", D, net, B)
        for name, orders in order_sets.items():
            ours = partial_schedule(D, positions(a, orders), net)
            assert ours.decode_time <= cr.decode_time + 1e-12, name
        fr = baseline_schedule("fr", D, net, B_fr)
        assert partial_schedule(D, fr_pos, net).decode_time <= fr.decode_time + 1e-12


def test_protocol_pays_the_report_and_signal_round_trip_with_latency():
    n, load = 6, 2
    a = cyclic_assignment(n, n, load)
    D = np.full((n, load), 1.0)
    net = MessageTimes(0.1, 0.01, 0.02, 0.1, 64, 32, 32 * n, 64)
    ours = partial_schedule(D, positions(a, natural_orders(a)), net)
    # model 0.1, first chunk done at 1.1, report arrives 1.11, signal 1.13, vectors 1.23
    assert ours.snapshot_time == pytest.approx(1.11)
    assert ours.decode_time == pytest.approx(1.23)
    cr = baseline_schedule("cr", D, net, cr_encoding(a, np.random.default_rng(0)))
    assert cr.decode_time == pytest.approx(0.1 + 2.0 + 0.1)


def test_work_after_the_snapshot_is_wasted():
    n, load = 3, 2
    a = cyclic_assignment(n, n, load)  # worker i: chunks i, i+1
    pos = positions(a, natural_orders(a))
    # worker 0 covers 0,1 by t=2; worker 1 covers 1 at 1; worker 2 covers 2 at t=3
    D = np.array([[1.0, 1.0], [1.0, 5.0], [3.0, 0.5]])
    net = MessageTimes(0.0, 0.0, 0.5, 0.0, 64, 32, 96, 64)
    s = partial_schedule(D, pos, net)
    assert s.snapshot_time == pytest.approx(3.0)
    np.testing.assert_array_equal(s.state, [2, 1, 1])
    # signal arrives at 3.5: worker 2 finished its second chunk at 3.5 -> wasted
    assert s.wasted_chunks == 1
    assert s.computed_chunks == 5
    assert s.decode_time == pytest.approx(3.5)
    # state, not timing, decides the senders: all three have reported progress
    np.testing.assert_array_equal(s.senders, [0, 1, 2])


def test_periodic_reports_are_never_earlier_and_batch_progress():
    n, load = 8, 3
    compute = ComputeModel(n, "exponential", np.random.default_rng(0))
    a = cyclic_assignment(n, n, load)
    pos = positions(a, natural_orders(a))
    net = MessageTimes.zero(n)
    fewer = 0
    for D in _draws(compute, load, 50, seed=1):
        every_chunk = partial_schedule(D, pos, net)
        periodic = partial_schedule(D, pos, net, report_every=0.5)
        assert periodic.snapshot_time >= every_chunk.snapshot_time - 1e-12
        # a report per finished chunk, or at most one per tick with news
        assert _reports(every_chunk) == every_chunk.computed_chunks
        assert _reports(periodic) <= periodic.computed_chunks
        fewer += _reports(periodic) < periodic.computed_chunks
    assert fewer > 25


def _reports(schedule) -> int:
    return sum(count for _, kind, count, _ in schedule.messages if kind == "report")


def test_deadline_cuts_the_iteration_short():
    n, load = 6, 2
    a = cyclic_assignment(n, n, load)
    pos = positions(a, natural_orders(a))
    D = np.array([[1.0, 1.0]] * 5 + [[10.0, 10.0]])
    exact = partial_schedule(D, pos, MessageTimes.zero(n))
    assert exact.snapshot_time == pytest.approx(2.0)  # chunk 5: worker 4's second chunk
    early = partial_schedule(D, pos, MessageTimes.zero(n), deadline=0.5)
    assert early.snapshot_time == 0.5 and not early.state.any() and early.senders.size == 0


def test_approximate_recovery_beats_ignoring_stragglers_at_the_same_time_budget():
    """Same draws, same seconds per iteration: the protocol's deadline is the moment
    ignore_stragglers decodes. Timing: heterogeneous workers with persistent stragglers."""
    n, load = 24, 3
    compute = ComputeModel(
        n,
        "shifted_exponential",
        np.random.default_rng(1),
        shift=0.5,
        heterogeneity={"kind": "lognormal", "sigma": 0.3},
        stragglers={"fraction": 0.1, "slowdown": 5.0},
    )
    a = cyclic_assignment(n, n, load)
    orders, _ = optimized_orders(a, compute, np.random.default_rng(2), samples=128)
    pos = positions(a, orders)
    net = MessageTimes.zero(n)
    rng = np.random.default_rng(3)
    G = rng.normal(1.0, 1.0, size=(n, 4)) / n  # weighted chunk gradients of i.i.d. chunks
    g = G.sum(axis=0)
    ours, theirs = [], []
    for D in _draws(compute, load, 300, seed=4):
        ignore = baseline_schedule("ignore_stragglers", D, net, stragglers=load - 1)
        g_ignore = G[ignore.senders].sum(axis=0) * n / ignore.senders.size
        theirs.append(np.linalg.norm(g_ignore - g) / np.linalg.norm(g))
        protocol = partial_schedule(D, pos, net, deadline=ignore.decode_time)
        assert protocol.decode_time <= ignore.decode_time + 1e-12
        beta = encoding_coefficients(processed(pos, protocol.state)).beta
        ours.append(np.linalg.norm((beta @ G).sum(axis=0) - g) / np.linalg.norm(g))
    assert np.mean(ours) < 0.25 * np.mean(theirs)
    assert np.median(ours) < 1e-12 < 1e-2 < np.median(theirs)


# -- orderings -----------------------------------------------------------------------------


def test_coverage_time_of_natural_cyclic_order_by_hand():
    a = cyclic_assignment(3, 3, 2)
    pos = positions(a, natural_orders(a))
    C = np.cumsum(np.array([[[1.0, 1.0], [5.0, 1.0], [5.0, 5.0]]]), axis=2)
    # chunk 0: w0 at 1 / w2 at 10; chunk 1: w1 at 5 / w0 at 2; chunk 2: w2 at 5 / w1 at 6
    assert coverage_times(C, pos)[0] == pytest.approx(5.0)


def test_optimized_ordering_serves_the_straggler_chunks_first():
    n, load = 8, 3
    compute = ComputeModel(
        n, "shifted_exponential", np.random.default_rng(0), shift=0.5,
        stragglers={"fraction": 0.25, "slowdown": 6.0},
    )  # fmt: skip
    a = cyclic_assignment(n, n, load)
    orders, score = optimized_orders(a, compute, np.random.default_rng(1), samples=128)
    # judged on fresh draws, it beats (or ties) the fixed orderings
    C = np.cumsum(_draws(compute, load, 400, seed=9), axis=2)
    fresh = expected_coverage_time(C, positions(a, orders))
    for baseline in (natural_orders(a), reversed_orders(a)):
        assert fresh <= expected_coverage_time(C, positions(a, baseline)) * 1.02
    assert fresh < expected_coverage_time(C, positions(a, natural_orders(a)))
    # a straggler's own chunks are taken first by some fast holder
    for straggler in compute.straggler_nodes:
        own = orders[straggler]
        for chunk in own:
            holders = [
                i for i in range(n) if chunk in orders[i] and i not in compute.straggler_nodes
            ]
            assert any(orders[i].index(chunk) < load - 1 for i in holders), chunk
    assert score > 0


def test_cr_with_one_straggler_too_many_refuses_to_decode():
    """With s + 1 full stragglers CR reports that it cannot decode instead of a wrong gradient."""
    import itertools

    from gossipsim.algorithms.coding.assignment import cyclic_assignment
    from gossipsim.algorithms.coding.encoding import cr_encoding, decode

    n, load = 8, 3
    B = cr_encoding(cyclic_assignment(n, n, load), np.random.default_rng(3))
    s = load - 1
    for stragglers in itertools.combinations(range(n), s + 1):
        survivors = [i for i in range(n) if i not in stragglers]
        decoding = decode(B, survivors)
        assert not decoding.exact
        assert decoding.residual > 1e-6
    for stragglers in itertools.combinations(range(n), s):
        assert decode(B, [i for i in range(n) if i not in stragglers]).exact
