"""The order in which each worker processes its chunks (fixed for the whole run).

* ``natural`` — the assignment's own order (cyclic: ``i, i+1, …, i+ℓ−1``);
* ``reversed`` — that order backwards;
* ``random`` — an independent uniform permutation per worker, drawn from the worker's
  ``ordering`` stream;
* ``optimized`` — minimises a Monte Carlo estimate of the expected time until every chunk
  has been processed by at least one worker (the protocol's exact-recovery time with
  instant messages), *given the timing model*:

  1. Draw ``K`` scenarios of per-slot durations ``D[k, i, s]`` from a private copy of the
     compute model (so heterogeneity factors, persistent stragglers and transient slow
     periods all count) using the ``ordering/optimize`` stream; the run's own timing
     streams are not touched. Cumulative sums give slot finish times ``C[k, i, s]``.
     Durations belong to *slots*, not chunks, so one sample set scores every ordering
     (common random numbers: comparisons between orderings are nearly noise-free).
  2. The score of an ordering is ``mean_k max_j min_{i holds j} C[k, i, pos_i(j)]``.
  3. Coordinate descent from the natural and the reversed orderings: visit the workers in
     turn and give each the best of the candidate orders of its own chunks (all ``ℓ!``
     permutations when ``ℓ ≤ 5``, otherwise every pairwise swap and every move-to-front of
     its current order), keeping the others fixed; repeat sweeps until a sweep improves the
     score by less than a relative 1e-9 (at most 20 sweeps).
  4. Guard against fitting the noise of the sample: the two local optima and the two
     starting orderings are scored on a second, held-out set of ``K`` scenarios; starting
     from ``natural``, a candidate replaces the current choice only when its paired mean
     gain on those scenarios exceeds two standard errors. So ``optimized`` falls back to
     ``natural`` unless the search found a real improvement.

  Re-scoring a worker's candidates is incremental: only that worker's ``ℓ`` chunks can
  change their cover time, so a candidate costs ``O(K·ℓ)``. With homogeneous i.i.d. speeds
  every ordering in which each chunk is some worker's first chunk does about equally well
  (natural already is one, and step 4 then usually keeps it); the optimisation pays off
  with heterogeneous speeds and persistent stragglers, where the neighbours of a slow
  worker learn to process the slow worker's chunks first.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import numpy as np

from gossipsim.algorithms.coding.assignment import Assignment
from gossipsim.algorithms.coding.partial import NOT_HELD, positions
from gossipsim.algorithms.coding.schedule import coverage_times
from gossipsim.system.timing import ComputeModel

ORDERING_KINDS = ("natural", "reversed", "random", "optimized")

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


def expected_coverage_time(C: np.ndarray, pos: np.ndarray) -> float:
    """Monte Carlo score of an ordering: mean over scenarios of the all-covered time."""
    return float(coverage_times(C, pos).mean())


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


def _descend(assignment: Assignment, C: np.ndarray, orders: Orders) -> tuple[Orders, float]:
    """Coordinate descent over workers (see the module docstring); returns orders and score."""
    orders = list(orders)
    pos = positions(assignment, orders)
    K, n, _ = C.shape
    m = pos.shape[1]
    held = pos != NOT_HELD
    times = np.full((K, n, m), np.inf)
    workers, chunks = np.nonzero(held)
    times[:, workers, chunks] = C[:, workers, pos[workers, chunks]]
    score = float(times.min(axis=1).max(axis=1).mean())
    for _ in range(20):
        before = score
        for i in range(n):
            own = np.array(orders[i])
            others = np.delete(np.arange(n), i)
            without = times[:, others][:, :, own].min(axis=1)  # (K, ℓ) cover times without i
            rest_mask = np.ones(m, dtype=bool)
            rest_mask[own] = False
            rest = times[:, :, rest_mask].min(axis=1).max(axis=1) if rest_mask.any() else 0.0
            best, best_score = orders[i], score
            for candidate in _candidates(orders[i]):
                slot_of = {c: s for s, c in enumerate(candidate)}
                mine = C[:, i, [slot_of[c] for c in own]]
                total = np.maximum(rest, np.minimum(without, mine).max(axis=1)).mean()
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
) -> tuple[Orders, float]:
    """The optimised ordering and its expected coverage time estimated on held-out draws.

    ``samples`` scenarios drive the search and as many fresh ones judge the result against
    the natural and reversed orderings (default: ``40000 / (n·ℓ)`` clipped to 128..1000).
    """
    n = assignment.workers
    slots = len(assignment.natural[0])
    if samples is None:
        samples = int(max(128, min(1000, 40_000 // max(1, n * slots))))
    train = np.cumsum(sample_slot_durations(compute, slots, samples, rng), axis=2)
    held_out = np.cumsum(sample_slot_durations(compute, slots, samples, rng), axis=2)
    starts = (natural_orders(assignment), reversed_orders(assignment))
    candidates = [*starts, *(_descend(assignment, train, start)[0] for start in starts)]
    times = [coverage_times(held_out, positions(assignment, c)) for c in candidates]
    best = 0
    for index in range(1, len(candidates)):
        # Paired comparison on the same held-out scenarios: switch only when the gain
        # exceeds two standard errors of the mean difference.
        diff = times[index] - times[best]
        if diff.mean() + 2.0 * diff.std(ddof=1) / np.sqrt(diff.size) < 0.0:
            best = index
    return candidates[best], float(times[best].mean())


def make_orders(
    kind: str,
    assignment: Assignment,
    compute: ComputeModel,
    streams_generator: Callable[[str, int | None], np.random.Generator],
) -> Orders:
    """Orders of kind ``kind``; ``streams_generator(purpose, node)`` supplies random streams."""
    if kind == "natural":
        return natural_orders(assignment)
    if kind == "reversed":
        return reversed_orders(assignment)
    if kind == "random":
        rngs = [streams_generator("ordering", i) for i in range(assignment.workers)]
        return random_orders(assignment, rngs)
    if kind == "optimized":
        rng = streams_generator("ordering/optimize", None)
        return optimized_orders(assignment, compute, rng)[0]
    raise ValueError(
        f"algorithm.ordering: unknown ordering {kind!r}; valid: {', '.join(ORDERING_KINDS)}"
    )
