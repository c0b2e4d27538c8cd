"""The order in which each worker processes its chunks (fixed for the whole run), and Qmax.

**Qmax** of an ordering (for ``parts`` = ℓ): the worst-case number of chunks the cluster
processes before every chunk is guaranteed ℓ processed copies, i.e. 1 + the largest
``Σ_i k_i`` over progress vectors ``0 ≤ k_i ≤ δ_i`` (worker ``i`` has done the first
``k_i`` chunks of its order) in which some chunk still has fewer than ℓ copies.
:func:`qmax` computes it exactly in ``O(n·m·log n)``: for a chunk ``j`` held by the set
``H_j`` (``r_j`` workers), the progress vector that keeps ``j`` below ℓ copies with the most
work lets every other worker finish, lets ℓ − 1 holders finish too, and stops every other
holder just before ``j``; a holder ``i`` that does not finish gives up ``δ_i − pos_i(j)``
chunks, so the best choice gives up the ``r_j − ℓ + 1`` smallest of those numbers, and
``Qmax = 1 + Σ_i δ_i − min_j (sum of the r_j − ℓ + 1 smallest δ_i − pos_i(j), i ∈ H_j)``.
Brute force over all progress vectors agrees (``tests/test_gradient_coding_qmax.py``).

Orderings:

* ``natural`` — the assignment's own order (cyclic: ``i, i+1, …, i+δ−1``);
* ``reversed`` — that order backwards;
* ``random`` — an independent uniform permutation per worker, drawn from the worker's
  ``ordering`` stream;
* ``qmax`` — minimises Qmax. With ``N = m`` and equal loads and replication δ (cyclic,
  graph and regular matrix assignments) it makes every slot level — the ``k``-th chunk of
  every worker — a permutation of the chunks: then every chunk has one holder at each
  position, every chunk gives up the same ``1 + … + (δ − ℓ + 1)``, and no ordering does
  better on the cases checked by brute force (cyclic ``N = m ≤ 6``, every ℓ). Such an
  ordering exists because the worker–chunk graph is δ-regular bipartite and so decomposes
  into δ perfect matchings (König); matching ``k`` is slot level ``k``. The natural order
  is kept when it already has this property (natural cyclic orders do). For any other
  assignment, a coordinate descent over each worker's permutations minimises
  ``(Qmax, number of chunks attaining it)`` from the natural order.
* ``expected`` (``optimized`` is accepted as an older name) — minimises a Monte Carlo
  estimate of the expected time until every chunk has been processed by at least ℓ workers
  (the protocol's exact-recovery time with instant messages), *given the timing model*:

  1. Draw ``K`` scenarios of per-slot durations ``D[k, i, s]`` from a private copy of the
     compute model (so heterogeneity factors, persistent stragglers and transient slow
     periods all count) using the ``ordering/optimize`` stream; the run's own timing
     streams are not touched. Cumulative sums give slot finish times ``C[k, i, s]``.
     Durations belong to *slots*, not chunks, so one sample set scores every ordering
     (common random numbers: comparisons between orderings are nearly noise-free).
  2. The score of an ordering is ``mean_k max_j ℓ-th-min_{i holds j} C[k, i, pos_i(j)]``.
  3. Coordinate descent from the natural and the reversed orderings: visit the workers in
     turn and give each the best of the candidate orders of its own chunks (all ``δ!``
     permutations when ``δ ≤ 5``, otherwise every pairwise swap and every move-to-front of
     its current order), keeping the others fixed; repeat sweeps until a sweep improves the
     score by less than a relative 1e-9 (at most 20 sweeps).
  4. Guard against fitting the noise of the sample: the two local optima and the two
     starting orderings are scored on a second, held-out set of ``K`` scenarios; starting
     from ``natural``, a candidate replaces the current choice only when its paired mean
     gain on those scenarios exceeds two standard errors. So ``optimized`` falls back to
     ``natural`` unless the search found a real improvement.

  Re-scoring a worker's candidates is incremental: only that worker's ``δ`` chunks can
  change their cover time, so a candidate costs ``O(K·n·δ)``. With homogeneous i.i.d. speeds
  every ordering in which each chunk is some worker's first chunk does about equally well
  (natural already is one, and step 4 then usually keeps it); the optimisation pays off
  with heterogeneous speeds and persistent stragglers, where the neighbours of a slow
  worker learn to process the slow worker's chunks first.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from gossipsim.algorithms.coding.assignment import Assignment
from gossipsim.algorithms.coding.partial import NOT_HELD, positions
from gossipsim.algorithms.coding.schedule import coverage_times
from gossipsim.system.timing import ComputeModel

ORDERING_KINDS = ("natural", "reversed", "random", "qmax", "expected", "optimized")

Orders = list[tuple[int, ...]]


def natural_orders(assignment: Assignment) -> Orders:
    return [tuple(chunks) for chunks in assignment.natural]


def reversed_orders(assignment: Assignment) -> Orders:
    return [tuple(reversed(chunks)) for chunks in assignment.natural]


def random_orders(assignment: Assignment, rngs: list[np.random.Generator]) -> Orders:
    return [
        tuple(int(c) for c in rng.permutation(np.array(chunks)))
        for chunks, rng in zip(assignment.natural, rngs, strict=True)
    ]


def sample_slot_durations(
    compute: ComputeModel, slots: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """``(samples, n, slots)`` per-slot durations from a private copy of ``compute``.

    Each scenario is an iteration in which every worker processes ``slots`` chunks back to
    back; scenarios follow one another in (fictitious) time so that transient straggler
    periods evolve as they would during a run.
    """
    model = copy.deepcopy(compute)
    n = model.n
    out = np.empty((samples, n, slots))
    clock = np.zeros(n)
    for k in range(samples):
        for i in range(n):
            for s in range(slots):
                out[k, i, s] = model.duration(i, 1, clock[i], rng)
                clock[i] += out[k, i, s]
        clock[:] = clock.max()
    return out


def expected_coverage_time(C: np.ndarray, pos: np.ndarray, parts: int = 1) -> float:
    """Monte Carlo score of an ordering: mean over scenarios of the all-covered time."""
    return float(coverage_times(C, pos, parts).mean())


def _candidates(order: tuple[int, ...]) -> list[tuple[int, ...]]:
    if len(order) <= 5:
        return [tuple(p) for p in itertools.permutations(order)]
    found = {order}
    for a, b in itertools.combinations(range(len(order)), 2):
        swapped = list(order)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        found.add(tuple(swapped))
    for a in range(1, len(order)):
        found.add((order[a], *order[:a], *order[a + 1 :]))
    return sorted(found)


def _kth(times: np.ndarray, parts: int) -> np.ndarray:
    """The ``parts``-th smallest along axis 1 (the time of a chunk's ℓ-th copy)."""
    if parts == 1:
        return times.min(axis=1)
    return np.partition(times, parts - 1, axis=1)[:, parts - 1]


def _descend(
    assignment: Assignment, C: np.ndarray, orders: Orders, parts: int = 1
) -> tuple[Orders, float]:
    """Coordinate descent over workers (see the module docstring); returns orders and score."""
    orders = list(orders)
    pos = positions(assignment, orders)
    K, n, _ = C.shape
    m = pos.shape[1]
    held = pos != NOT_HELD
    times = np.full((K, n, m), np.inf)
    workers, chunks = np.nonzero(held)
    times[:, workers, chunks] = C[:, workers, pos[workers, chunks]]
    score = float(_kth(times, parts).max(axis=1).mean())
    for _ in range(20):
        before = score
        for i in range(n):
            own = np.array(orders[i])
            rest_mask = np.ones(m, dtype=bool)
            rest_mask[own] = False
            rest = _kth(times[:, :, rest_mask], parts).max(axis=1) if rest_mask.any() else 0.0
            sub = times[:, :, own].copy()  # (K, n, δ_i): the cover times i can change
            best, best_score = orders[i], score
            for candidate in _candidates(orders[i]):
                slot_of = {c: s for s, c in enumerate(candidate)}
                sub[:, i, :] = C[:, i, [slot_of[c] for c in own]]
                total = np.maximum(rest, _kth(sub, parts).max(axis=1)).mean()
                if total < best_score - 1e-12 * abs(best_score):
                    best, best_score = candidate, float(total)
            if best != orders[i]:
                orders[i] = best
                slot_of = {c: s for s, c in enumerate(best)}
                times[:, i, own] = C[:, i, [slot_of[c] for c in own]]
                score = best_score
        if before - score <= 1e-9 * abs(before):
            break
    return orders, score


def optimized_orders(
    assignment: Assignment,
    compute: ComputeModel,
    rng: np.random.Generator,
    samples: int | None = None,
    parts: int = 1,
) -> tuple[Orders, float]:
    """The expected-time ordering and its expected coverage time estimated on held-out draws.

    ``samples`` scenarios drive the search and as many fresh ones judge the result against
    the natural and reversed orderings (default: ``40000 / (n·ℓ)`` clipped to 128..1000).
    """
    n = assignment.workers
    slots = int(assignment.loads.max())
    if samples is None:
        samples = int(max(128, min(1000, 40_000 // max(1, n * slots))))
    train = np.cumsum(sample_slot_durations(compute, slots, samples, rng), axis=2)
    held_out = np.cumsum(sample_slot_durations(compute, slots, samples, rng), axis=2)
    starts = (natural_orders(assignment), reversed_orders(assignment))
    candidates = [*starts, *(_descend(assignment, train, s, parts)[0] for s in starts)]
    times = [coverage_times(held_out, positions(assignment, c), parts) for c in candidates]
    best = 0
    for index in range(1, len(candidates)):
        # Paired comparison on the same held-out scenarios: switch only when the gain
        # exceeds two standard errors of the mean difference.
        diff = times[index] - times[best]
        if diff.mean() + 2.0 * diff.std(ddof=1) / np.sqrt(diff.size) < 0.0:
            best = index
    return candidates[best], float(times[best].mean())


def _given_up(pos: np.ndarray, loads: np.ndarray, parts: int) -> np.ndarray:
    """Per chunk, the least work the cluster can leave undone while the chunk stays below
    ``parts`` copies (the sum of the ``r_j − ℓ + 1`` smallest ``δ_i − pos_i(j)``)."""
    held = pos != NOT_HELD
    replication = held.sum(axis=0)
    sentinel = int(loads.max()) + 1  # above every real δ_i − pos_i(j): sorts last
    give_up = np.where(held, loads[:, None] - np.where(held, pos, 0), sentinel)
    give_up.sort(axis=0)
    sums = np.cumsum(give_up, axis=0)
    return sums[replication - parts, np.arange(pos.shape[1])]


def qmax(pos: np.ndarray, loads: np.ndarray, parts: int = 1) -> float:
    """Qmax of the ordering with slot matrix ``pos`` (see the module docstring).

    ``pos[i, j]`` is the slot of chunk ``j`` in worker ``i``'s order (``NOT_HELD`` if not
    held), ``loads[i] = δ_i``. ``inf`` when some chunk has fewer than ``parts`` holders.
    """
    if ((pos != NOT_HELD).sum(axis=0) < parts).any():
        return math.inf
    loads = np.asarray(loads, dtype=np.int64)
    return float(1 + int(loads.sum()) - int(_given_up(pos, loads, parts).min()))


def qmax_of(assignment: Assignment, orders: Orders, parts: int = 1) -> float:
    """Qmax of ``orders`` on ``assignment`` for ``parts`` = ℓ."""
    return qmax(positions(assignment, orders), assignment.loads, parts)


def _levels_are_permutations(orders: Orders, m: int) -> bool:
    for level in zip(*orders, strict=True):
        if len(set(level)) != m:
            return False
    return True


def _regular(assignment: Assignment) -> bool:
    loads, replication = assignment.loads, assignment.replication
    return (
        assignment.workers == assignment.chunks
        and (loads == loads[0]).all()
        and (replication == loads[0]).all()
    )


def matching_orders(assignment: Assignment) -> Orders:
    """Every slot level a permutation of the chunks, by peeling perfect matchings off the
    δ-regular worker–chunk graph (``N = m``, equal loads and replication)."""
    if not _regular(assignment):
        raise ValueError("matching orders need N = m with equal loads and replication")
    natural = natural_orders(assignment)
    if _levels_are_permutations(natural, assignment.chunks):
        return natural
    remaining = assignment.support.copy()
    n = assignment.workers
    levels = []
    for _ in range(int(assignment.loads[0])):
        match = maximum_bipartite_matching(
            scipy.sparse.csr_matrix(remaining.astype(np.int8)), perm_type="column"
        )
        if (match < 0).any() or not remaining[np.arange(n), match].all():
            raise RuntimeError("no perfect matching in a regular bipartite graph")  # König
        remaining[np.arange(n), match] = False
        levels.append(match)
    return [tuple(int(level[i]) for level in levels) for i in range(n)]


def _qmax_score(assignment: Assignment, orders: Orders, parts: int) -> tuple[int, int]:
    """The score to minimise: ``Qmax − 1 − Σ_i δ_i`` first, then the number of chunks that
    attain Qmax (fewer is closer to lowering it)."""
    loads = assignment.loads.astype(np.int64)
    given_up = _given_up(positions(assignment, orders), loads, parts)
    least = int(given_up.min())
    return -least, int((given_up == least).sum())


def search_qmax_orders(assignment: Assignment, parts: int, sweeps: int = 20) -> Orders:
    """Coordinate descent on ``(Qmax, chunks attaining it)`` from the natural order."""
    orders = natural_orders(assignment)
    score = _qmax_score(assignment, orders, parts)
    for _ in range(sweeps):
        improved = False
        for i in range(assignment.workers):
            for candidate in _candidates(orders[i]):
                if candidate == orders[i]:
                    continue
                trial = [*orders[:i], candidate, *orders[i + 1 :]]
                trial_score = _qmax_score(assignment, trial, parts)
                if trial_score < score:
                    orders, score, improved = trial, trial_score, True
        if not improved:
            break
    return orders


def qmax_orders(assignment: Assignment, parts: int = 1) -> Orders:
    """The ``qmax`` ordering (see the module docstring)."""
    if _regular(assignment):
        return matching_orders(assignment)
    return search_qmax_orders(assignment, parts)


def make_orders(
    kind: str,
    assignment: Assignment,
    compute: ComputeModel,
    streams_generator: Callable[[str, int | None], np.random.Generator],
    parts: int = 1,
) -> Orders:
    """Orders of kind ``kind``; ``streams_generator(purpose, node)`` supplies random streams."""
    if kind == "natural":
        return natural_orders(assignment)
    if kind == "reversed":
        return reversed_orders(assignment)
    if kind == "random":
        rngs = [streams_generator("ordering", i) for i in range(assignment.workers)]
        return random_orders(assignment, rngs)
    if kind == "qmax":
        return qmax_orders(assignment, parts)
    if kind in ("expected", "optimized"):
        rng = streams_generator("ordering/optimize", None)
        return optimized_orders(assignment, compute, rng, parts=parts)[0]
    raise ValueError(
        f"algorithm.ordering: unknown ordering {kind!r}; valid: {', '.join(ORDERING_KINDS)}"
    )
