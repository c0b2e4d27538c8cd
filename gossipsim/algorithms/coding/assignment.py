"""Which worker holds which data chunk: cyclic and fractional-repetition assignments.

An assignment is a boolean ``(n, m)`` matrix ``S`` with ``S[i, j]`` true when worker ``i``
holds chunk ``j``, plus the *natural* processing order of each worker's chunks
(``natural[i]`` lists worker ``i``'s chunks in the order the construction names them).

* **cyclic** (Tandon et al.'s CR support, papers.md section 2): worker ``i`` holds the
  ``load`` consecutive chunks ``o_i, o_i + 1, …, o_i + load − 1 (mod m)`` starting at
  ``o_i = ⌊i·m/n⌋``. With ``m = n`` this is the textbook ``i, i+1, …, i+ℓ−1``: every chunk
  lives on exactly ``ℓ`` workers.
* **fractional** (FR): workers form groups of ``r = load·n/m`` consecutive workers; group
  ``g`` holds chunks ``g·load, …, (g+1)·load − 1``. With ``m = n`` the groups have ``ℓ``
  members and there are ``n/ℓ`` of them, as in Tandon et al.

Errors are ``ValueError`` messages that start with the config field they concern
(``algorithm.load: …``), so the runner can point at the YAML line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ASSIGNMENT_KINDS = ("cyclic", "fractional")


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


def identity_assignment(n: int) -> Assignment:
    """Worker ``i`` holds chunk ``i`` only (the uncoded and ignore-stragglers baselines)."""
    support = np.eye(n, dtype=bool)
    return Assignment("identity", support, tuple((i,) for i in range(n)))


def _listing(indices: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (", …" if indices.size > limit else "")
