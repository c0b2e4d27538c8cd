"""Qmax of chunk orderings: the fast formula against brute force, and the qmax ordering."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from gossipsim.algorithms.coding.assignment import (
    Assignment,
    cyclic_assignment,
    graph_assignment,
    matrix_assignment,
)
from gossipsim.algorithms.coding.ordering import (
    natural_orders,
    qmax,
    qmax_of,
    qmax_orders,
    random_orders,
    reversed_orders,
)
from gossipsim.algorithms.coding.partial import positions


def brute_qmax(assignment: Assignment, orders, parts: int) -> float:
    """1 + max Σ k_i over all progress vectors leaving some chunk below ``parts`` copies."""
    m = assignment.chunks
    best = -1
    for progress in itertools.product(*(range(len(order) + 1) for order in orders)):
        copies = np.zeros(m, dtype=int)
        for order, k in zip(orders, progress, strict=True):
            copies[list(order[:k])] += 1
        if (copies < parts).any():
            best = max(best, sum(progress))
    return float(1 + best) if best >= 0 else 1.0


def _random_assignment(rng: np.random.Generator) -> Assignment:
    n, m = int(rng.integers(2, 5)), int(rng.integers(1, 5))
    support = rng.random((n, m)) < 0.6
    for i in range(n):
        if not support[i].any():
            support[i, rng.integers(m)] = True
    for j in range(m):
        if not support[:, j].any():
            support[rng.integers(n), j] = True
    return matrix_assignment(support, n)


def test_fast_qmax_equals_brute_force_on_random_small_cases():
    rng = np.random.default_rng(13)
    checked = 0
    for _ in range(250):
        assignment = _random_assignment(rng)
        orders = random_orders(assignment, [rng] * assignment.workers)
        for parts in range(1, int(assignment.replication.min()) + 1):
            assert qmax_of(assignment, orders, parts) == brute_qmax(assignment, orders, parts)
            checked += 1
    assert checked > 250  # several ℓ per assignment on average


def test_qmax_by_hand_and_impossible_cases():
    a = cyclic_assignment(4, 4, 2)  # worker i: chunks i, i+1
    # ℓ = 1: leave chunk 1 unprocessed: worker 0 does chunk 0 only (1), worker 1 nothing,
    # workers 2, 3 finish (2 + 2): 5 chunks, so the 6th guarantees coverage.
    assert qmax_of(a, natural_orders(a), 1) == 6.0
    # ℓ = 2: workers 0 and 1 can both be kept below 2 copies of chunk 1 by stopping one:
    # 1 + (2 + 2 + 2 + 1) = 8 = every chunk but one.
    assert qmax_of(a, natural_orders(a), 2) == 8.0
    pos = positions(a, natural_orders(a))
    assert qmax(pos, a.loads, 3) == float("inf")  # replication 2 < ℓ


def _all_orderings(assignment: Assignment):
    return itertools.product(*(itertools.permutations(o) for o in assignment.natural))


@pytest.mark.parametrize("n", [3, 4, 5, 6])
@pytest.mark.parametrize("load", [2, 3])
def test_qmax_ordering_attains_the_brute_force_minimum_on_cyclic(n, load):
    a = cyclic_assignment(n, n, load)
    every = [positions(a, list(orders)) for orders in _all_orderings(a)]
    for parts in range(1, load + 1):
        best = min(qmax(pos, a.loads, parts) for pos in every)
        ours = qmax_orders(a, parts)
        assert qmax_of(a, ours, parts) == best, (n, load, parts)
        # Closed form of a level-permutation ordering: t = δ − ℓ + 1 given up per chunk.
        t = load - parts + 1
        assert best == 1 + n * load - t * (t + 1) // 2


def test_qmax_ordering_makes_every_slot_level_a_permutation_on_graph_assignments():
    graph = nx.random_regular_graph(3, 10, seed=5)
    a = graph_assignment(graph, 10)
    for parts in (1, 2, 3, 4):
        orders = qmax_orders(a, parts)
        for level in zip(*orders, strict=True):
            assert sorted(level) == list(range(10))
        t = 4 - parts + 1
        assert qmax_of(a, orders, parts) == 1 + 40 - t * (t + 1) // 2
        assert qmax_of(a, orders, parts) <= qmax_of(a, natural_orders(a), parts)


def test_qmax_search_never_worse_than_natural_on_irregular_assignments():
    rng = np.random.default_rng(21)
    for _ in range(30):
        a = _random_assignment(rng)
        for parts in range(1, int(a.replication.min()) + 1):
            ours = qmax_of(a, qmax_orders(a, parts), parts)
            assert ours <= qmax_of(a, natural_orders(a), parts)
            assert ours <= qmax_of(a, reversed_orders(a), parts)
            if a.workers * a.chunks <= 12:
                best = min(
                    qmax(positions(a, list(orders)), a.loads, parts) for orders in _all_orderings(a)
                )
                assert ours >= best
