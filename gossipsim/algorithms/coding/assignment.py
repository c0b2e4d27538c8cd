"""Which worker holds which data chunk: cyclic, fractional, graph and matrix assignments.

An assignment is a boolean ``(n, m)`` matrix ``S`` with ``S[i, j]`` true when worker ``i``
holds chunk ``j``, plus the *natural* processing order of each worker's chunks
(``natural[i]`` lists worker ``i``'s chunks in the order the construction names them).

* **cyclic** (Tandon et al.'s CR support): worker ``i`` holds the
  ``load`` consecutive chunks ``o_i, o_i + 1, …, o_i + load − 1 (mod m)`` starting at
  ``o_i = ⌊i·m/n⌋``. With ``m = n`` this is the textbook ``i, i+1, …, i+δ−1`` (δ = load):
  every chunk lives on exactly ``δ`` workers.
* **fractional** (FR): workers form groups of ``r = load·n/m`` consecutive workers; group
  ``g`` holds chunks ``g·load, …, (g+1)·load − 1``. With ``m = n`` the groups have ``δ``
  members and there are ``n/δ`` of them, as in Tandon et al.
* **graph** — ``m = n``; worker ``i`` holds chunk ``i`` and the chunks of its neighbours in
  a regular graph built by :func:`gossipsim.system.topology.build_graph`: load and replication
  are both degree + 1. Natural order: its own chunk, then its neighbours' in index order.
* **matrix** — an ``N × m`` 0/1 matrix read from a text file: one line per worker, entries
  separated by spaces or commas, ``#`` comments and blank lines ignored. Every chunk must
  be held by some worker and every worker must hold some chunk; loads may differ. Natural
  order: increasing chunk index.

Errors are ``ValueError`` messages that start with the config field they concern
(``algorithm.load: …``), so the runner can point at the YAML line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

ASSIGNMENT_KINDS = ("cyclic", "fractional", "graph", "matrix")


@dataclass(frozen=True)
class Assignment:
    """A chunk-to-worker assignment: the support matrix and each worker's natural order."""

    kind: str
    support: np.ndarray  # (n, m) bool
    natural: tuple[tuple[int, ...], ...]  # per worker, its chunks in construction order

    @property
    def workers(self) -> int:
        return int(self.support.shape[0])

    @property
    def chunks(self) -> int:
        return int(self.support.shape[1])

    @property
    def replication(self) -> np.ndarray:
        """How many workers hold each chunk, shape ``(m,)``."""
        return self.support.sum(axis=0)

    @property
    def loads(self) -> np.ndarray:
        """Chunks held by each worker (δ_i), shape ``(n,)``."""
        return self.support.sum(axis=1)

    @property
    def tolerance(self) -> int:
        """Full stragglers any decoder can survive: (least replication of a chunk) − 1."""
        return int(self.replication.min()) - 1


def _check_sizes(n: int, m: int, load: int) -> None:
    if n < 1:
        raise ValueError(f"algorithm.workers: need at least one worker, got {n}")
    if m < 1:
        raise ValueError(f"algorithm.chunks: need at least one chunk, got {m}")
    if load < 1:
        raise ValueError(f"algorithm.load: need at least one chunk per worker, got {load}")
    if load > m:
        raise ValueError(f"algorithm.load: load ({load}) must not exceed chunks ({m})")


def cyclic_assignment(n: int, m: int, load: int) -> Assignment:
    """Worker ``i`` holds chunks ``⌊i·m/n⌋ + k (mod m)`` for ``k = 0..load−1``."""
    _check_sizes(n, m, load)
    support = np.zeros((n, m), dtype=bool)
    natural = []
    for i in range(n):
        first = (i * m) // n
        chunks = tuple((first + k) % m for k in range(load))
        support[i, list(chunks)] = True
        natural.append(chunks)
    missing = np.flatnonzero(~support.any(axis=0))
    if missing.size:
        need = -(-m // n)
        raise ValueError(
            f"algorithm.load: with a cyclic assignment of {m} chunks to {n} workers, chunks "
            f"{_listing(missing)} are held by no worker; load must be at least "
            f"ceil(chunks / workers) = {need}"
        )
    return Assignment("cyclic", support, tuple(natural))


def fractional_assignment(n: int, m: int, load: int) -> Assignment:
    """Fractional repetition: groups of ``load·n/m`` workers share ``load`` chunks."""
    _check_sizes(n, m, load)
    if m == n and n % load:
        raise ValueError(f"algorithm.load: FR needs workers ({n}) divisible by load ({load})")
    if m % load:
        raise ValueError(f"algorithm.load: FR needs chunks ({m}) divisible by load ({load})")
    groups = m // load
    if n % groups:
        raise ValueError(
            f"algorithm.load: FR needs workers ({n}) divisible by the number of groups "
            f"chunks/load = {groups}"
        )
    size = n // groups
    support = np.zeros((n, m), dtype=bool)
    natural = []
    for i in range(n):
        group = i // size
        chunks = tuple(range(group * load, (group + 1) * load))
        support[i, list(chunks)] = True
        natural.append(chunks)
    return Assignment("fractional", support, tuple(natural))


def make_assignment(kind: str, n: int, m: int, load: int) -> Assignment:
    """The assignment named ``kind`` (``cyclic`` or ``fractional``)."""
    if kind == "cyclic":
        return cyclic_assignment(n, m, load)
    if kind == "fractional":
        return fractional_assignment(n, m, load)
    raise ValueError(
        f"algorithm.assignment: unknown assignment {kind!r}; valid: {', '.join(ASSIGNMENT_KINDS)}"
    )


def graph_assignment(graph: nx.Graph, n: int) -> Assignment:
    """Worker ``i`` holds chunk ``i`` and its neighbours' chunks; ``graph`` must be regular."""
    if graph.number_of_nodes() != n:
        raise ValueError(
            f"algorithm.assignment.topology.n: the graph has {graph.number_of_nodes()} nodes "
            f"but there are {n} workers (a graph assignment needs one node per worker)"
        )
    degrees = sorted({int(d) for _, d in graph.degree()})
    if len(degrees) != 1:
        raise ValueError(
            "algorithm.assignment.topology: a graph assignment needs a regular graph (equal "
            f"replication); this one has degrees {degrees[0]}..{degrees[-1]}"
        )
    support = np.eye(n, dtype=bool)
    natural = []
    for i in range(n):
        neighbours = sorted(int(j) for j in graph.neighbors(i))
        support[i, neighbours] = True
        natural.append((i, *neighbours))
    return Assignment("graph", support, tuple(natural))


def read_matrix(path: str | Path) -> np.ndarray:
    """An ``N × m`` 0/1 matrix from a text file; ValueError naming file:line on bad input."""
    field = "algorithm.assignment.path"
    rows: list[list[bool]] = []
    lines: list[int] = []
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        bad = [entry for entry in line if entry not in ("0", "1")]
        if bad:
            raise ValueError(f"{field}: {path}:{number}: entries must be 0 or 1, got {bad[0]!r}")
        if rows and len(line) != len(rows[0]):
            raise ValueError(
                f"{field}: {path}:{number}: row has {len(line)} entries, the first row "
                f"(line {lines[0]}) has {len(rows[0])}"
            )
        rows.append([entry == "1" for entry in line])
        lines.append(number)
    if not rows:
        raise ValueError(f"{field}: {path}: no matrix rows (one line of 0/1 per worker)")
    support = np.array(rows, dtype=bool)
    for i, row in enumerate(support):
        if not row.any():
            raise ValueError(f"{field}: {path}:{lines[i]}: worker {i} holds no chunk")
    empty = np.flatnonzero(~support.any(axis=0))
    if empty.size:
        raise ValueError(
            f"{field}: {path}: chunk {int(empty[0])} (column {int(empty[0]) + 1}) is held by "
            "no worker"
        )
    return support


def matrix_assignment(support: np.ndarray, n: int, path: str = "matrix") -> Assignment:
    """The assignment of a validated 0/1 matrix (``n`` rows, one per worker)."""
    if support.shape[0] != n:
        raise ValueError(
            f"algorithm.assignment.path: {path}: {support.shape[0]} rows but there are {n} "
            "workers (algorithm.workers)"
        )
    natural = tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in support)
    return Assignment("matrix", support.astype(bool), natural)


def identity_assignment(n: int) -> Assignment:
    """Worker ``i`` holds chunk ``i`` only (the uncoded and ignore-stragglers baselines)."""
    support = np.eye(n, dtype=bool)
    return Assignment("identity", support, tuple((i,) for i in range(n)))


def _listing(indices: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (", …" if indices.size > limit else "")
