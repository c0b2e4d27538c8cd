"""Split a training set over nodes: iid, Dirichlet label skew, or label-sorted shards."""

from __future__ import annotations

import numpy as np

from gossipsim.data.dataset import TASKS

PARTITION_KINDS = ("iid", "dirichlet", "shards")
#: Regression targets are binned into this many quantile bins to act as pseudo-classes.
REGRESSION_BINS = 10


def pseudo_labels(y: np.ndarray, task: str) -> np.ndarray:
    """Int class ids ``0..K-1`` of ``y``: the labels, or for regression the index of the
    ``REGRESSION_BINS``-quantile bin of the target (ties may merge bins)."""
    y = np.asarray(y)
    if task == "regression":
        edges = np.quantile(y, np.linspace(0.0, 1.0, REGRESSION_BINS + 1)[1:-1])
        y = np.searchsorted(edges, y, side="right")
    return np.unique(y, return_inverse=True)[1].astype(np.int64)


def _fill_empty(parts: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Give each empty node one random sample taken from the currently largest node."""
    for i in range(len(parts)):
        if parts[i].size == 0:
            j = int(np.argmax([p.size for p in parts]))
            pick = int(rng.integers(parts[j].size))
            parts[i] = parts[j][pick : pick + 1]
            parts[j] = np.delete(parts[j], pick)
    return parts


def _dirichlet(
    labels: np.ndarray, n_nodes: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    chunks: list[list[np.ndarray]] = [[] for _ in range(n_nodes)]
    for c in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        p = rng.dirichlet(np.full(n_nodes, alpha))
        cuts = np.floor(np.cumsum(p)[:-1] * idx.size + 0.5).astype(np.int64)
        for node, chunk in enumerate(np.split(idx, np.clip(cuts, 0, idx.size))):
            chunks[node].append(chunk)
    return _fill_empty([np.concatenate(ch) for ch in chunks], rng)


def _shards(
    order_key: np.ndarray, n_nodes: int, classes_per_node: int, rng: np.random.Generator
) -> list[np.ndarray]:
    # random order within equal keys, then a stable sort by key
    perm = rng.permutation(order_key.size)
    order = perm[np.argsort(order_key[perm], kind="stable")]
    shards = np.array_split(order, n_nodes * classes_per_node)
    owner = rng.permutation(len(shards)) % n_nodes
    parts = [
        np.concatenate([shards[s] for s in np.flatnonzero(owner == i)]) for i in range(n_nodes)
    ]
    return _fill_empty(parts, rng)


def partition(
    y: np.ndarray,
    n_nodes: int,
    kind: str,
    rng: np.random.Generator,
    *,
    alpha: float = 0.5,
    classes_per_node: int = 2,
    task: str = "multiclass",
) -> list[np.ndarray]:
    """Sorted int64 index arrays into ``y``, one per node: disjoint, covering, each non-empty.

    ``iid``: a random split into near-equal sizes. ``dirichlet``: for each class, node shares
    ``~ Dirichlet(alpha·1)``. ``shards``: sort by label (regression: by target value), cut into
    ``n_nodes·classes_per_node`` equal shards, deal ``classes_per_node`` random shards per node.
    For regression, ``dirichlet`` uses ``REGRESSION_BINS`` quantile bins as pseudo-classes.
    Nodes left empty are given one sample each, taken from the largest node.
    """
    y = np.asarray(y)
    if kind not in PARTITION_KINDS:
        raise ValueError(f"unknown partition {kind!r}; valid kinds: {', '.join(PARTITION_KINDS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if int(n_nodes) != n_nodes or n_nodes < 1:
        raise ValueError(f"n_nodes must be a positive integer, got {n_nodes}")
    n_nodes = int(n_nodes)
    if n_nodes > y.size:
        raise ValueError(f"training set has {y.size} samples but topology has {n_nodes} nodes")
    if kind == "iid":
        parts = np.array_split(rng.permutation(y.size), n_nodes)
    elif kind == "dirichlet":
        if not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
        parts = _dirichlet(pseudo_labels(y, task), n_nodes, float(alpha), rng)
    else:
        if int(classes_per_node) != classes_per_node or classes_per_node < 1:
            raise ValueError(f"classes_per_node must be a positive integer, got {classes_per_node}")
        key = y.astype(np.float64) if task == "regression" else pseudo_labels(y, task)
        parts = _shards(key, n_nodes, int(classes_per_node), rng)
    return [np.sort(p).astype(np.int64) for p in parts]
