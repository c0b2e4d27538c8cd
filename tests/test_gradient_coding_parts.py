"""Gradient coding with ℓ = algorithm.parts: the encoding, the original protocols at every ℓ,
graph and matrix assignments, and the runs (iterates, message sizes, timing, errors)."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest

from gossipsim.algorithms.coding.assignment import (
    cyclic_assignment,
    fractional_assignment,
    graph_assignment,
    matrix_assignment,
)
from gossipsim.algorithms.coding.encoding import decode_blocks, mds_encoding
from gossipsim.algorithms.coding.ordering import (
    natural_orders,
    qmax_orders,
    random_orders,
    sample_slot_durations,
)
from gossipsim.algorithms.coding.partial import (
    Encoder,
    decoding_matrix,
    encoding_coefficients,
    join_blocks,
    positions,
    processed,
    split_blocks,
)
from gossipsim.algorithms.coding.protocol import GradientCoding
from gossipsim.algorithms.coding.schedule import (
    MessageTimes,
    baseline_schedule,
    coded_bits,
    partial_schedule,
)
from gossipsim.cli import main
from gossipsim.experiment.config import ConfigError, load_config
from gossipsim.experiment.runner import execute, prepare
from gossipsim.system.timing import ComputeModel
from tests.test_gradient_coding_sim import CONFIGS, ZERO_NETWORK, _gradient_descent, gc_config, run

# -- the encoding ----------------------------------------------------------------------------


def _decode_protocol(R: np.ndarray, mask: np.ndarray, G: np.ndarray) -> np.ndarray:
    """What the PS gets: each worker's d/ℓ vector, combined with R (the message path)."""
    parts = R.shape[0]
    encoding = Encoder(R).encode(mask)
    blocks = split_blocks(G, parts)  # (m, ℓ, b)
    F = np.einsum("ijk,jkb->ib", encoding.E, blocks)  # one length-b vector per worker
    assert F.shape == (mask.shape[0], -(-G.shape[1] // parts))
    return join_blocks(R @ F, G.shape[1])


def _random_state(rng, a, orders, stragglers: int | None = None):
    """Each worker anywhere in its order; or, with ``stragglers`` given, all done but that
    many workers (random ones, stopped anywhere)."""
    if stragglers is None:
        return np.array([rng.integers(0, len(o) + 1) for o in orders])
    state = np.array([len(o) for o in orders])
    late = rng.permutation(len(orders))[:stragglers]
    state[late] = [rng.integers(0, len(orders[i]) + 1) for i in late]
    return state


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_exact_encoding_recovers_the_gradient_and_equals_pinv(parts):
    rng = np.random.default_rng(parts)
    n, load, d = 9, 3, 13  # d not a multiple of ℓ: zero padding
    a = cyclic_assignment(n, n, load)
    pos = positions(a, natural_orders(a))
    R = decoding_matrix(parts, n, np.random.default_rng(7))
    encoder = Encoder(R)
    G = rng.standard_normal((n, d))
    exact = 0
    for _ in range(200):
        tolerated = int(rng.integers(0, load - parts + 1))  # still exact: ≥ ℓ copies each
        state = _random_state(rng, a, a.natural, tolerated if _ % 2 else None)
        mask = processed(pos, state)
        encoding = encoder.encode(mask)
        for j in range(n):
            S = np.flatnonzero(mask[:, j])
            if S.size:
                np.testing.assert_allclose(encoding.E[S, j, :], np.linalg.pinv(R[:, S]))
            assert not encoding.E[~mask[:, j], j, :].any()
        if encoding.exact:
            exact += 1
            g_hat = _decode_protocol(R, mask, G)
            g = G.sum(axis=0)
            assert np.linalg.norm(g_hat - g) <= 1e-10 * np.linalg.norm(g)
            assert encoding.condition >= 1.0 and math.isfinite(encoding.condition)
    assert exact >= 10


def test_l1_encoding_is_the_min_norm_beta():
    rng = np.random.default_rng(3)
    a = cyclic_assignment(8, 8, 3)
    pos = positions(a, natural_orders(a))
    encoder = Encoder(decoding_matrix(1, 8))
    for _ in range(50):
        mask = processed(pos, _random_state(rng, a, a.natural))
        beta = encoding_coefficients(mask).beta
        np.testing.assert_allclose(encoder.encode(mask).E[:, :, 0], beta, atol=1e-12)


def test_under_covered_chunks_are_least_squares_and_uncovered_dropped():
    rng = np.random.default_rng(5)
    n, parts, d = 6, 3, 9
    R = decoding_matrix(parts, n, np.random.default_rng(1))
    mask = np.zeros((n, 4), dtype=bool)
    mask[[0, 1, 2], 0] = True  # 3 copies: exact
    mask[[3, 4], 1] = True  # 2 copies: least squares (projection onto span R[:, {3, 4}])
    mask[5, 2] = True  # 1 copy
    G = rng.standard_normal((4, d))  # chunk 3: nobody — dropped
    encoder = Encoder(R)
    M = encoder.transfer(encoder.encode(mask))  # (m, ℓ, ℓ)
    np.testing.assert_allclose(M[0], np.eye(parts), atol=1e-12)
    for j, S in ((1, [3, 4]), (2, [5])):
        P = R[:, S] @ np.linalg.pinv(R[:, S])
        np.testing.assert_allclose(M[j], P, atol=1e-12)
        assert np.linalg.matrix_rank(M[j]) == len(S)
    assert not M[3].any()
    blocks = split_blocks(G, parts)
    expected = join_blocks(np.einsum("jkl,jlb->kb", M, blocks), d)
    np.testing.assert_allclose(_decode_protocol(R, mask, G), expected, atol=1e-12)


# -- the original protocols -------------------------------------------------------------------


def _assignments():
    return {
        "cyclic": cyclic_assignment(10, 10, 4),
        "fractional": fractional_assignment(12, 12, 4),
        "graph": graph_assignment(nx.random_regular_graph(3, 10, seed=2), 10),
        "matrix": matrix_assignment(
            np.array(
                [
                    [1, 1, 1, 0, 0, 0],
                    [0, 1, 1, 1, 0, 0],
                    [0, 0, 1, 1, 1, 0],
                    [0, 0, 0, 1, 1, 1],
                    [1, 0, 0, 0, 1, 1],
                    [1, 1, 0, 0, 0, 1],
                    [1, 0, 1, 0, 1, 0],
                ],
                dtype=bool,
            ),
            7,
        ),
    }


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_original_code_decodes_from_any_n_minus_s_finished_workers(parts):
    rng = np.random.default_rng(parts)
    for name, a in _assignments().items():
        B = mds_encoding(a, parts, np.random.default_rng(4))
        n, m = a.support.shape
        assert not B[~a.support].any(), name  # a worker only codes the chunks it holds
        s = int(a.replication.min()) - parts
        G = rng.standard_normal((m, 7))
        blocks = split_blocks(G, parts)
        f = np.einsum("ijk,jkb->ib", B, blocks)
        for _ in range(10):
            alive = rng.permutation(n)[: n - s]
            decoding = decode_blocks(B, alive)
            assert decoding.exact, (name, parts)
            g_hat = join_blocks(decoding.a @ f[decoding.rows], 7)
            assert np.linalg.norm(g_hat - G.sum(axis=0)) <= 1e-8 * np.linalg.norm(G.sum(0))
            if n - s - 1 >= 1 and name == "cyclic":
                assert not decode_blocks(B, alive[:-1]).exact


def _draws(n: int, load: int, count: int, seed: int) -> np.ndarray:
    compute = ComputeModel(
        n,
        "shifted_exponential",
        np.random.default_rng(seed),
        mean=1.0,
        shift=0.3,
        heterogeneity={"kind": "lognormal", "sigma": 0.4},
    )
    return sample_slot_durations(compute, load, count, np.random.default_rng(seed + 1))


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_protocol_never_finishes_later_than_the_original_at_zero_latency(parts):
    """Identical draws, instant messages, every assignment and ordering: exact protocol ≤
    original (which waits for whole workers), iteration by iteration."""
    for name, a in _assignments().items():
        n = a.workers
        B = mds_encoding(a, parts, np.random.default_rng(0))
        net = MessageTimes.zero(n, 11, parts)
        orders = {
            "natural": natural_orders(a),
            "qmax": qmax_orders(a, parts),
            "random": random_orders(a, [np.random.default_rng(i) for i in range(n)]),
        }
        loads = a.loads
        faster = 0
        for D in _draws(n, int(loads.max()), 60, seed=3):
            original = baseline_schedule("original", D, net, B, loads=loads)
            assert original.decoding is not None and original.decoding.exact
            for label, order in orders.items():
                ours = partial_schedule(D, positions(a, order), net, parts=parts, loads=loads)
                assert ours.decode_time <= original.decode_time + 1e-12, (name, label)
                faster += ours.decode_time < original.decode_time - 1e-12
                mask = processed(positions(a, order), ours.state)
                assert (mask.sum(axis=0) >= parts).all()  # ℓ copies of every chunk
        assert faster > 0, name


def test_approximate_protocol_error_below_the_original_at_a_deadline():
    """At a deadline, least squares from partial work against least squares from the
    finished workers: mean relative error over many draws."""
    rng = np.random.default_rng(8)
    for parts in (1, 2, 3):
        a = cyclic_assignment(12, 12, 4)
        B = mds_encoding(a, parts, np.random.default_rng(0))
        R = decoding_matrix(parts, 12, np.random.default_rng(1))
        pos = positions(a, qmax_orders(a, parts))
        net = MessageTimes.zero(12, 20, parts)
        ours, theirs = [], []
        for D in _draws(12, 4, 80, seed=9):
            G = rng.standard_normal((12, 20))
            g = G.sum(axis=0)
            deadline = 2.2
            p = partial_schedule(D, pos, net, deadline=deadline, parts=parts)
            g_ours = _decode_protocol(R, processed(pos, p.state), G)
            o = baseline_schedule("original", D, net, B, deadline=deadline)
            assert o.decode_time <= deadline
            f = np.einsum("ijk,jkb->ib", B, split_blocks(G, parts))
            rows = o.decoding.rows
            g_theirs = join_blocks(o.decoding.a @ f[rows], 20) if rows.size else 0 * g
            ours.append(np.linalg.norm(g_ours - g) / np.linalg.norm(g))
            theirs.append(np.linalg.norm(g_theirs - g) / np.linalg.norm(g))
        assert np.mean(ours) < np.mean(theirs), parts


# -- runs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [2, 3])
def test_exact_runs_follow_uncoded_gradient_descent_with_d_over_l_messages(parts, monkeypatch):
    sizes: list[tuple[int, ...]] = []
    masks: list[np.ndarray] = []
    original_vectors = GradientCoding.coded_vectors
    original_encode = Encoder.encode

    def spy_vectors(self, w, G, E, senders):
        F = original_vectors(self, w, G, E, senders)
        sizes.append(F.shape)
        return F

    def spy_encode(self, mask):
        masks.append(mask.copy())
        return original_encode(self, mask)

    monkeypatch.setattr(GradientCoding, "coded_vectors", spy_vectors)
    monkeypatch.setattr(Encoder, "encode", spy_encode)
    overrides = {"stop": {"iterations": 10}, "algorithm": {"parts": parts}}
    reference = _gradient_descent(gc_config("uncoded", stop={"iterations": 10}), 10)
    scale = np.linalg.norm(reference)
    for scheme in ("partial", "original", "cr", "fr"):
        sizes.clear()
        _, sim, gc = run(gc_config(scheme, **overrides))
        d = gc.objective.dim
        assert np.linalg.norm(gc.w - reference) <= 1e-10 * scale, scheme
        assert max(gc.decode_errors) < 1e-10, scheme
        assert sizes and all(shape[1] == -(-d // parts) for shape in sizes), scheme
        assert gc.net.coded_bits == coded_bits(d, parts) == 32 * -(-d // parts) + 64
    assert masks and all((mask.sum(axis=0) >= parts).all() for mask in masks)


@pytest.mark.parametrize("parts", [1, 2])
def test_proposed_never_later_than_original_in_runs(parts):
    times = {}
    for scheme in ("original", "partial"):
        _, _, gc = run(
            gc_config(scheme, network=ZERO_NETWORK, algorithm={"parts": parts, "ordering": "qmax"})
        )
        times[scheme] = np.array(gc.iteration_times)
    assert (times["partial"] <= times["original"] + 1e-12).all()
    assert times["partial"].mean() < times["original"].mean()


def test_approximate_runs_partial_error_below_original():
    errors = {}
    for scheme in ("original", "partial"):
        algorithm = {"parts": 2, "recovery": "approximate", "deadline": 1.5, "lr": 0.0}
        _, _, gc = run(gc_config(scheme, network=ZERO_NETWORK, algorithm=algorithm))
        errors[scheme] = float(np.mean(gc.decode_errors))
    assert errors["partial"] < errors["original"]


def test_graph_and_matrix_assignments_run_exactly(tmp_path):
    matrix = tmp_path / "a.txt"
    matrix.write_text(
        "# 6 workers x 6 chunks\n1 1 1 0 0 0\n0 1 1 1 0 0\n0 0 1 1 1 0\n"
        "0 0 0 1 1 1\n1 0 0 0 1 1\n1, 1, 0, 0, 0, 1\n"
    )
    graph = {"kind": "graph", "topology": {"kind": "random_regular", "degree": 2}}
    for assignment in (graph, {"kind": "matrix", "path": str(matrix)}):
        config = gc_config(
            "partial", algorithm={"assignment": assignment, "parts": 2, "ordering": "qmax"}
        )
        _, meta = execute(config)
        assert meta["qmax"] == 1 + 18 - 3  # δ = 3, ℓ = 2: each chunk gives up 1 + 2
        assert meta["final"]["decode_error"] < 1e-10
        _, original = execute(
            gc_config("original", algorithm={"assignment": assignment, "parts": 2})
        )
        assert original["final"]["decode_error"] < 1e-10
        assert original["final"]["iteration_time"] > meta["final"]["iteration_time"]


def test_meta_reports_qmax_of_the_ordering():
    _, natural = execute(gc_config(algorithm={"load": 3, "parts": 1}))
    assert natural["qmax"] == 1 + 6 * 3 - 6


# -- bad combinations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algorithm.parts=4"], r"--set: algorithm.parts: parts \(4\) must not exceed"),
        (["algorithm.scheme=uncoded", "algorithm.parts=2"], r"algorithm.parts: scheme uncoded"),
        (["algorithm.assignment={kind: graph, topology: {kind: ring}}", "algorithm.parts=4"],
         r"algorithm.parts: parts \(4\) must not exceed load \(3\)"),
        (["algorithm.assignment={kind: graph, topology: {kind: erdos_renyi, p: 0.3}}"],
         r"algorithm.assignment.topology: a graph assignment needs a regular graph"),
        (["algorithm.assignment={kind: graph, topology: {kind: ring, n: 7}}"],
         r"algorithm.assignment.topology.n: the graph has 7 nodes"),
        (["algorithm.assignment={kind: graph, topology: {kind: random_regular, degree: 3}}",
          "algorithm.workers=21", "algorithm.chunks=21"],
         r"algorithm.assignment.topology.degree"),
        (["algorithm.assignment={kind: graph, topology: {kind: ring}}", "algorithm.load=4"],
         r"algorithm.load: the graph assignment sets the load \(3"),
    ],
)  # fmt: skip
def test_bad_combinations_are_refused_with_the_field_named(tmp_path, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text((CONFIGS / "gc_partial.yaml").read_text())
    with pytest.raises(ConfigError, match=message) as info:
        prepare(load_config(path, overrides))
    assert len(info.value.problems) == 1


def test_parts_above_load_points_at_the_yaml_line(tmp_path):
    text = (CONFIGS / "gc_partial.yaml").read_text()
    lines = text.splitlines()
    where = next(i for i, line in enumerate(lines) if line.strip().startswith("parts:"))
    lines[where] = "  parts: 4"
    path = tmp_path / "bad.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"bad.yaml:{where + 1}: algorithm.parts: parts \(4\)"):
        prepare(load_config(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 1 0\n0 1 0\n1 1 0\n1 0 0\n0 1 0\n1 1 0\n", r"a.txt: chunk 2 \(column 3\) is held by"),
        ("1 1 0\n0 1 1\n1 0 1\n1 1\n0 1 1\n1 1 0\n", r"a.txt:4: row has 2 entries"),
        ("1 1 0\n0 1 1\n1 0 2\n", r"a.txt:3: entries must be 0 or 1, got '2'"),
        ("1 1 0\n0 0 0\n", r"a.txt:2: worker 1 holds no chunk"),
        ("1 1 0\n0 1 1\n1 0 1\n", r"a.txt: 3 rows but there are 6 workers"),
    ],
)
def test_bad_matrices_give_one_line_naming_file_and_line(tmp_path, capsys, text, message):
    matrix = tmp_path / "a.txt"
    matrix.write_text(text)
    path = tmp_path / "bad.yaml"
    path.write_text((CONFIGS / "gc_partial.yaml").read_text())
    overrides = [
        f"algorithm.assignment={{kind: matrix, path: {matrix}}}",
        "algorithm.workers=6",
        "algorithm.chunks=null",
    ]
    with pytest.raises(ConfigError, match=r"algorithm.assignment.path: .*" + message):
        prepare(load_config(path, overrides))
    args = ["run", str(path), "--out", str(tmp_path), "--quiet"]
    assert main(args + sum((["--set", o] for o in overrides), [])) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "algorithm.assignment.path" in line]) == 1


# -- output ------------------------------------------------------------------------------------


def test_summary_line_and_report_speak_of_iterations_and_decode_error(tmp_path, capsys):
    from gossipsim.analysis.report import summarize

    args = ["run", str(CONFIGS / "gc_partial.yaml"), "--out", str(tmp_path), "--quiet"]
    assert main(args + ["--set", "stop.iterations=3", "--set", "algorithm.parts=2"]) == 0
    line = capsys.readouterr().out
    assert "3 iterations" in line and "s per iteration" in line and "decode error" in line
    assert "consensus" not in line and "interactions" not in line
    table, _ = summarize(tmp_path / "gc-partial")
    assert (
        "iteration time (simulated s)" in table.columns
        and "decode error (median, ‖ĝ − g‖/‖g‖)" in table.columns
    )
    assert "interactions to target" not in table.columns
    assert float(table["iteration time (simulated s)"].iloc[0]) > 0


# -- the vectorised schedule against an event-by-event reference ------------------------------


def _reference_snapshot(D, pos, net, report_every, deadline, parts, loads):
    """The PS's loop over report arrivals, one by one (the definition)."""
    from gossipsim.algorithms.coding.partial import covered
    from gossipsim.algorithms.coding.schedule import report_events

    state = np.zeros(D.shape[0], dtype=np.int64)
    reports = report_events(D, net, report_every, loads)
    index = 0
    while index < len(reports):
        arrival = reports[index][0]
        if deadline is not None and arrival > deadline:
            break
        while index < len(reports) and reports[index][0] == arrival:
            _, _, worker, count = reports[index]
            state[worker] = max(state[worker], count)
            index += 1
        if covered(pos, state, parts).all():
            return arrival, state, reports
    return (math.inf if deadline is None else float(deadline)), state, reports


def test_vectorised_schedule_matches_the_report_by_report_reference():
    rng = np.random.default_rng(17)
    net = MessageTimes(0.05, 0.01, 0.02, 0.05, 64, 32, 32 * 10, 64)
    for name, a in _assignments().items():
        for parts in (1, 2):
            pos = positions(a, random_orders(a, [rng] * a.workers))
            for D in _draws(a.workers, int(a.loads.max()), 15, seed=int(rng.integers(100))):
                if rng.random() < 0.3:  # a crashed worker: its later chunks never finish
                    D = D.copy()
                    D[rng.integers(a.workers), 1:] = np.inf
                for report_every in (0.0, 0.7):
                    for deadline in (None, 1.5, 4.0):
                        ours = partial_schedule(D, pos, net, report_every, deadline, parts, a.loads)
                        snap, state, reports = _reference_snapshot(
                            D, pos, net, report_every, deadline, parts, a.loads
                        )
                        assert ours.snapshot_time == snap, name
                        np.testing.assert_array_equal(ours.state, state)
                        sent = sum(1 for _, send, _, _ in reports if send <= ours.stop_time)
                        assert sum(1 for m in ours.messages if m[1] == "report") == sent


def test_lazy_and_event_by_event_bookkeeping_record_the_same_rows():
    """Without an epochs or interactions stop the counters are stamped when read; with one,
    a process stamps them at every event: the recorded rows agree."""
    for scheme, network in itertools.product(("partial", "cr"), (None, ZERO_NETWORK)):
        extra = {"record.every": 0.7, **({"network": network} if network else {})}
        lazy_out, _, lazy = run(gc_config(scheme, **extra))
        eager_config = gc_config(scheme, **extra, stop={"iterations": 12})
        eager_config.stop.epochs = 1e9  # never reached, but watched: the eager path
        eager_out, _, eager = run(eager_config)
        assert lazy.lazy and not eager.lazy
        assert len(lazy_out.rows) == len(eager_out.rows) > 10
        for a, b in zip(lazy_out.rows, eager_out.rows, strict=True):
            for key in ("time", "bits", "messages", "local_steps", "interactions", "epochs"):
                assert a[key] == b[key], (scheme, key)
            for key in ("chunks_computed", "chunks_wasted", "report_messages", "coded_messages"):
                assert a[key] == b[key], (scheme, key)
            assert a["comm_time"] == pytest.approx(b["comm_time"], rel=1e-12)


def test_step_times_are_the_per_step_durations():
    for kind in ("exponential", "shifted_exponential", "lognormal", "pareto"):
        extra = {"shift": 0.2} if kind == "shifted_exponential" else {}
        compute = ComputeModel(
            4, kind, np.random.default_rng(1), mean=1.0, sigma=0.5, heterogeneity={}, **extra
        )
        one, block = np.random.default_rng(9), np.random.default_rng(9)
        singles = [compute.duration(2, 1, 0.0, one) for _ in range(7)]
        np.testing.assert_array_equal(compute.step_times(2, 7, block), singles)


@pytest.mark.parametrize("objective", ["logistic", "least_squares", "softmax"])
def test_compiled_chunk_gradients_equal_the_objective(objective):
    config = gc_config(**{"objective.kind": objective})
    _, _, gc = run(config)
    w = np.random.default_rng(0).standard_normal(gc.w.size) * 0.3
    G = gc.chunk_gradients(w)
    reference = np.stack(
        [gc.objective.grad(w, X, y) for X, y in zip(gc.chunk_X, gc.chunk_y, strict=True)]
    )
    if gc.l2:
        reference -= gc.l2 * w
    assert (gc._kernel_head is None) == (objective == "softmax")
    np.testing.assert_allclose(G, reference, rtol=1e-12, atol=1e-14)
