"""Tandon et al. gradient coding (ICML 2017): encoding matrices and least-squares decoding.

Worker ``i`` finishes all of its chunks and sends ``(B g)_i = Σ_j B_ij g_j``; the PS decodes
``g = Σ_{i∈F} a_i (B g)_i`` from the set ``F`` of workers heard from, with ``a`` solving
``a·B_F = 1`` (all ones). Decoding is possible as soon as ``1`` lies in the row space of
``B_F``.

* **FR** (fractional repetition): ``B = S``, the 0/1 support; every member of a group sends
  the plain sum of the group's chunk gradients, so one member per group decodes.
* **CR** (cyclic repetition, Tandon et al. Algorithm 2, the standard random construction):
  draw ``H ∈ R^{s×m}`` with i.i.d. normal entries, then replace its last column so that
  ``H·1 = 0``. Row ``i`` of ``B`` is supported on worker ``i``'s cyclic chunks, has a 1 on
  its first chunk, and the other ``s`` entries solve ``H[:, rest]·x = −H[:, first]`` so that
  ``H b_i = 0``. All rows lie in ``null(H)`` (dimension ``m − s``) which contains ``1``; with
  ``m = n`` any ``n − s`` rows are independent with probability one, so they span
  ``null(H)`` and decode.

``decode`` computes ``a`` with ``scipy.linalg.lstsq`` (minimum-norm when several ``a``
work, e.g. two members of one FR group) and reports the condition number of ``B_F``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from gossipsim.algorithms.coding.assignment import Assignment

#: A decode counts as exact when ‖a·B_F − 1‖∞ is below this (B's entries are O(1)).
DECODE_TOLERANCE = 1e-8


def fr_encoding(assignment: Assignment) -> np.ndarray:
    """FR encoding matrix: the 0/1 support (each member sends its group's chunk sum)."""
    return assignment.support.astype(np.float64)


def cr_encoding(assignment: Assignment, rng: np.random.Generator) -> np.ndarray:
    """CR encoding matrix by Tandon et al.'s random construction (see the module docstring).

    ``assignment`` must be cyclic with ``m = n``; ``s = load − 1``. Redraws ``H`` (up to
    a few times) in the probability-zero event that an ``s × s`` block is singular.
    """
    n, m = assignment.support.shape
    if assignment.kind != "cyclic" or n != m:
        raise ValueError("algorithm.chunks: CR needs a cyclic assignment with chunks = workers")
    load = len(assignment.natural[0])
    s = load - 1
    if s == 0:
        return assignment.support.astype(np.float64)
    for _ in range(10):
        H = rng.standard_normal((s, m))
        H[:, -1] = -H[:, :-1].sum(axis=1)
        B = np.zeros((n, m))
        ok = True
        for i, chunks in enumerate(assignment.natural):
            first, rest = chunks[0], list(chunks[1:])
            block = H[:, rest]
            if np.linalg.cond(block) > 1e10:
                ok = False
                break
            B[i, first] = 1.0
            B[i, rest] = scipy.linalg.solve(block, -H[:, first])
        if ok:
            return B
    raise RuntimeError("CR construction failed: singular blocks in 10 random draws")


@dataclass(frozen=True)
class Decoding:
    """The result of decoding from the workers in ``rows``."""

    rows: np.ndarray  # worker indices F, sorted
    a: np.ndarray  # decoding vector over ``rows``
    residual: float  # ‖a·B_F − 1‖∞
    condition: float  # condition number of B_F (ratio of extreme nonzero singular values)

    @property
    def exact(self) -> bool:
        return self.residual <= DECODE_TOLERANCE


def condition_number(matrix: np.ndarray, rtol: float = 1e-12) -> float:
    """σ_max / σ_min over the singular values above ``rtol·σ_max`` (1 for an empty matrix).

    Singular values that are zero up to round-off (rank deficiency, e.g. two members of the
    same FR group) are left out: they do not enter the minimum-norm solution.
    """
    if matrix.size == 0:
        return 1.0
    sv = scipy.linalg.svdvals(matrix)
    if sv[0] == 0.0:
        return 1.0
    kept = sv[sv > rtol * sv[0]]
    return float(kept[0] / kept[-1])


def decode(B: np.ndarray, rows: np.ndarray | list[int]) -> Decoding:
    """Least-squares decoding vector ``a`` with ``a·B_F ≈ 1`` for the workers ``rows``."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    m = B.shape[1]
    if rows.size == 0:
        return Decoding(rows, np.zeros(0), 1.0, 1.0)
    BF = B[rows]
    a, *_ = scipy.linalg.lstsq(BF.T, np.ones(m), lapack_driver="gelsd")
    residual = float(np.max(np.abs(a @ BF - 1.0)))
    return Decoding(rows, a, residual, condition_number(BF))


def decodable(B: np.ndarray, rows: np.ndarray | list[int]) -> bool:
    """Whether the all-ones vector lies (to ``DECODE_TOLERANCE``) in the row space of B_F."""
    return decode(B, rows).exact
