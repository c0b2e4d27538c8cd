"""Gossip partners are drawn uniformly from the initiator's neighbours, in every executor.

Runs go through the public path (``run_to_directory``); only the pairwise averages the
executors apply are counted. A bias at every neighbour-draw site at once (always skipping
the last neighbour, preferring low ids, ...) keeps sequential and batched runs equal to
each other, so the equivalence tests cannot see it; a chi-square test can.
"""

from __future__ import annotations

from collections import Counter

import networkx as nx
import numpy as np
import pytest
from scipy import stats

from gossipsim.engine.batched import BatchedExecutor
from gossipsim.experiment.runner import run_to_directory
from tests.conftest import make_config


def _graph_file(tmp_path) -> tuple[str, nx.Graph]:
    """An irregular connected graph (degrees 2 to 6), so every draw site sees several sizes."""
    graph = nx.connected_watts_strogatz_graph(14, 4, 0.5, seed=5)
    graph.add_edges_from([(0, 7), (0, 9), (3, 11)])
    path = tmp_path / "graph.txt"
    path.write_text("".join(f"{u} {v}\n" for u, v in graph.edges()))
    return str(path), graph


@pytest.mark.parametrize("executor", ["sequential", "batched"])
def test_partners_are_uniform_over_each_nodes_neighbours(tmp_path, monkeypatch, executor):
    path, graph = _graph_file(tmp_path)
    pairs: list[tuple[int, int]] = []
    wave_pair = BatchedExecutor._wave_pair  # both executors apply pair averages through it

    def count_wave(self, first, second):
        pairs.extend(zip(np.asarray(first).tolist(), np.asarray(second).tolist(), strict=True))
        return wave_pair(self, first, second)

    monkeypatch.setattr(BatchedExecutor, "_wave_pair", count_wave)
    config = make_config(
        **{
            "topology": {"kind": "edge_list", "n": 14, "path": path},
            "objective.dataset": {"kind": "synthetic", "n_samples": 280, "n_features": 2},
            "engine.executor": executor,
            "stop": {"time": 1.0e6, "interactions": 8000},
            "record.every": 1000.0,
        }
    )
    record = run_to_directory(config, tmp_path / "out")
    assert record.outcome.stop_reason == "interactions"
    assert len(pairs) == record.outcome.rows[-1]["interactions"] >= 8000
    counts = Counter(pairs)
    statistic, dof = 0.0, 0
    for node in graph.nodes:
        neighbours = sorted(graph.neighbors(node))
        observed = np.array([counts[(node, j)] for j in neighbours], dtype=float)
        assert observed.sum() > 50 * len(neighbours), (node, observed)  # the initiator is first
        expected = observed.sum() / len(neighbours)
        statistic += float(((observed - expected) ** 2 / expected).sum())
        dof += len(neighbours) - 1
    assert sum(counts[(u, v)] for u, v in counts if not graph.has_edge(u, v)) == 0
    # Fixed seeds make this deterministic; a uniform draw passes with a wide margin, while
    # skipping one neighbour or favouring one end of the table gives p-values below 1e-10.
    assert stats.chi2.sf(statistic, dof) > 1e-3, (statistic, dof)
