"""Tests for gossipsim.system.topology: graph builders, validation, spectral gap, mixing weights."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from gossipsim.system.topology import (
    TOPOLOGIES,
    TopologyError,
    build_graph,
    metropolis_weights,
    neighbour_table,
    spectral_gap,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def degrees(G: nx.Graph) -> set[int]:
    return {d for _, d in G.degree()}


def check_basic(G: nx.Graph, n: int) -> None:
    assert list(G.nodes) == list(range(n))
    assert nx.is_connected(G)
    assert not G.is_directed() and not G.is_multigraph()
    assert nx.number_of_selfloops(G) == 0


@pytest.mark.parametrize(
    ("kind", "n", "kw"),
    [
        ("ring", 7, {}),
        ("torus", 12, {}),
        ("torus", 15, {"rows": 5}),
        ("complete", 6, {}),
        ("hypercube", 16, {}),
        ("random_regular", 20, {"degree": 3}),
        ("erdos_renyi", 40, {"p": 0.3}),
        ("small_world", 30, {"k": 4, "p": 0.2}),
        ("star", 9, {}),
    ],
)
def test_every_kind_builds_connected(kind: str, n: int, kw: dict) -> None:
    G = build_graph(kind, n, rng(1), **kw)
    check_basic(G, n)
    assert G.graph["kind"] == kind


def test_degrees() -> None:
    assert degrees(build_graph("ring", 10, rng())) == {2}
    assert degrees(build_graph("hypercube", 32, rng())) == {5}
    assert degrees(build_graph("random_regular", 30, rng(), degree=5)) == {5}
    assert degrees(build_graph("torus", 20, rng())) == {4}
    assert degrees(build_graph("complete", 7, rng())) == {6}
    star = build_graph("star", 8, rng())
    assert star.degree[0] == 7 and all(star.degree[i] == 1 for i in range(1, 8))


def test_hypercube_is_bit_flip_graph() -> None:
    G = build_graph("hypercube", 8, rng())
    for i in range(8):
        assert sorted(G[i]) == sorted(i ^ (1 << b) for b in range(3))


def test_torus_shape() -> None:
    G = build_graph("torus", 12, rng())
    assert (G.graph["rows"], G.graph["cols"]) == (3, 4)
    G = build_graph("torus", 16, rng())
    assert (G.graph["rows"], G.graph["cols"]) == (4, 4)
    assert nx.is_isomorphic(G, nx.grid_2d_graph(4, 4, periodic=True))


def test_random_kinds_reproducible() -> None:
    for kind, kw in [("random_regular", {}), ("erdos_renyi", {"p": 0.3}), ("small_world", {})]:
        a = build_graph(kind, 24, rng(5), **kw)
        b = build_graph(kind, 24, rng(5), **kw)
        assert sorted(a.edges) == sorted(b.edges)


@pytest.mark.parametrize(
    ("kind", "n", "kw", "fragment"),
    [
        ("ring", 1, {}, "topology.n"),
        ("complete", 0, {}, "topology.n"),
        ("ring", 2, {}, "topology.n: ring needs n >= 3"),
        ("hypercube", 12, {}, "topology.n: hypercube needs a power of two, got 12"),
        ("torus", 13, {}, "n is prime"),
        ("torus", 14, {}, "2 x 7"),
        ("torus", 12, {"rows": 5}, "topology.rows"),
        ("torus", 12, {"rows": 2}, "topology.rows"),
        ("random_regular", 9, {"degree": 3}, "topology.degree"),
        ("random_regular", 5, {"degree": 5}, "topology.degree"),
        ("random_regular", 6, {"degree": 1}, "topology.degree"),
        ("erdos_renyi", 10, {"p": 0.0}, "topology.p"),
        ("erdos_renyi", 10, {"p": 1.5}, "topology.p"),
        ("small_world", 10, {"k": 3}, "topology.k"),
        ("small_world", 10, {"k": 10}, "topology.k"),
        ("edge_list", 4, {}, "topology.path"),
        ("mesh", 4, {}, "valid kinds: ring, torus"),
    ],
)
def test_bad_parameters(kind: str, n: int, kw: dict, fragment: str) -> None:
    with pytest.raises(TopologyError) as exc:
        build_graph(kind, n, rng(), **kw)
    assert fragment in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_unknown_kind_lists_all_kinds() -> None:
    with pytest.raises(TopologyError) as exc:
        build_graph("mesh", 4, rng())
    for kind in TOPOLOGIES:
        assert kind in str(exc.value)


def test_erdos_renyi_disconnected() -> None:
    with pytest.raises(
        TopologyError, match=r"disconnected \(\d+ components\); increase topology.p"
    ):
        build_graph("erdos_renyi", 60, rng(), p=0.005)


# -- edge lists -------------------------------------------------------------------------


def write(tmp_path, text: str) -> str:
    p = tmp_path / "edges.txt"
    p.write_text(text)
    return str(p)


def test_edge_list_ok(tmp_path) -> None:
    path = write(
        tmp_path, "# a square plus a diagonal\n0 1\n1 2\n\n2 3  # comment\n3 0\n0 2\n2 0\n"
    )
    G = build_graph("edge_list", 4, rng(), path=path)
    check_basic(G, 4)
    assert G.number_of_edges() == 5  # duplicate 2 0 collapsed


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("0 1\n1 2 3\n", 2, "expected 'u v'"),
        ("0 1\n# c\nx y\n", 3, "integers"),
        ("0 1\n1 1\n", 2, "self-loop"),
        ("0 1\n1 4\n", 2, "out of range"),
        ("0 1\n-1 2\n", 2, "out of range"),
    ],
)
def test_edge_list_bad_lines(tmp_path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as exc:
        build_graph("edge_list", 4, rng(), path=path)
    assert f"{path}:{line}:" in str(exc.value)
    assert fragment in str(exc.value)


def test_edge_list_empty_missing_disconnected(tmp_path) -> None:
    empty = write(tmp_path, "# nothing here\n\n")
    with pytest.raises(TopologyError, match="no edges") as exc:
        build_graph("edge_list", 4, rng(), path=empty)
    assert empty in str(exc.value)
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(TopologyError, match="not found") as exc:
        build_graph("edge_list", 4, rng(), path=missing)
    assert missing in str(exc.value)
    split = write(tmp_path, "0 1\n2 3\n")
    with pytest.raises(TopologyError, match=r"disconnected \(2 components\)") as exc:
        build_graph("edge_list", 4, rng(), path=split)
    assert split in str(exc.value)
    isolated = write(tmp_path, "0 1\n1 2\n")  # node 3 never mentioned: named, not counted
    with pytest.raises(TopologyError, match="node id 3 appears in no edge"):
        build_graph("edge_list", 4, rng(), path=isolated)


# -- spectral gap, neighbours, weights --------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 17])
def test_spectral_gap_complete(n: int) -> None:
    assert spectral_gap(build_graph("complete", n, rng())) == pytest.approx(n, rel=1e-10)


@pytest.mark.parametrize("n", [3, 8, 51])
def test_spectral_gap_ring(n: int) -> None:
    expected = 2 - 2 * math.cos(2 * math.pi / n)
    assert spectral_gap(build_graph("ring", n, rng())) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "kind, options",
    [
        ("ring", {}),
        ("torus", {}),
        ("random_regular", {"degree": 4}),
        ("small_world", {}),
        ("erdos_renyi", {"p": 0.02}),
        ("star", {}),
    ],
)
def test_the_sparse_spectral_gap_agrees_with_the_dense_one(kind, options) -> None:
    # Above a few hundred nodes the sparse solvers run; they must give the dense λ₂.
    graph = build_graph(kind, 400, rng(2), **options)
    laplacian = nx.laplacian_matrix(graph, nodelist=range(400)).toarray().astype(float)
    dense = np.linalg.eigvalsh(laplacian)[1]
    assert spectral_gap(graph) == pytest.approx(dense, rel=1e-9, abs=1e-12)


def test_spectral_gap_sparse_path() -> None:
    # Large graphs use the sparse solvers: hypercube (fast path) and ring (shift-invert).
    assert spectral_gap(build_graph("hypercube", 2048, rng())) == pytest.approx(2.0, rel=1e-8)
    n = 2001
    expected = 2 - 2 * math.cos(2 * math.pi / n)
    assert spectral_gap(build_graph("ring", n, rng())) == pytest.approx(expected, rel=1e-6)


def test_spectral_gap_star_and_hypercube() -> None:
    assert spectral_gap(build_graph("star", 10, rng())) == pytest.approx(1.0)
    assert spectral_gap(build_graph("hypercube", 64, rng())) == pytest.approx(2.0)


def test_neighbour_table() -> None:
    G = build_graph("small_world", 20, rng(3))
    table = neighbour_table(G)
    assert len(table) == 20
    for i, nb in enumerate(table):
        assert nb.dtype == np.int64
        assert list(nb) == sorted(G[i])
        assert np.all(np.diff(nb) > 0)


@pytest.mark.parametrize(
    ("kind", "n", "kw"),
    [("star", 7, {}), ("erdos_renyi", 30, {"p": 0.3}), ("ring", 5, {}), ("complete", 2, {})],
)
def test_metropolis_weights(kind: str, n: int, kw: dict) -> None:
    G = build_graph(kind, n, rng(2), **kw)
    W = metropolis_weights(G)
    D = W.toarray()
    assert D.shape == (n, n)
    np.testing.assert_array_equal(D, D.T)
    np.testing.assert_allclose(D.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(D.sum(axis=0), 1.0, atol=1e-12)
    assert np.all(D >= 0)
    deg = dict(G.degree())
    for u, v in G.edges:
        assert D[u, v] == pytest.approx(1 / (1 + max(deg[u], deg[v])))
    off = (D > 0) & ~np.eye(n, dtype=bool)
    assert off.sum() == 2 * G.number_of_edges()
    # Mixing contracts the disagreement: second largest |eigenvalue| < 1 on a connected graph.
    ev = np.sort(np.abs(np.linalg.eigvalsh(D)))
    assert ev[-1] == pytest.approx(1.0) and ev[-2] < 1.0
