"""The original gradient codes: encodings fixed in advance, decoded from finished workers.

ℓ = 1 — Tandon et al. (ICML 2017):

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

Any ℓ, any assignment — the communication-efficient original (Ye & Abbe, ICML 2018), in a
real-valued form of ours: the gradient is split into ℓ blocks as in :mod:`.partial`, and
worker ``i`` sends ``f_i = Σ_j Σ_k B[i, j, k]·g_j^(k)`` (length ``d/ℓ``) once it has finished
*all* of its chunks. With ``r_j`` the replication of chunk ``j`` the code tolerates
``s = min_j r_j − ℓ`` full stragglers (``δ − ℓ`` on a cyclic assignment with ``N = m``):

* draw ``V`` (``N × K``, ``K = N − s``) with i.i.d. standard normal entries once from the
  ``coding`` stream; any ``K`` of its rows are independent with probability one;
* for every chunk ``j`` and block ``k`` take the minimum-norm ``c ∈ R^K`` with
  ``V[i]·c = 0`` for every worker ``i`` *not* holding ``j`` and with the last ℓ
  coordinates of ``c`` equal to ``e_k`` (``N − r_j + ℓ ≤ K`` equations), and set
  ``B[:, j, k] = V·c``: zero off the holders of ``j``;
* so ``f = V·Σ_{j,k} c^{(j,k)} g_j^(k)``, and from any ``K`` vectors the PS solves for that
  sum and reads its last ℓ coordinates: the ℓ blocks of ``g``. Ye & Abbe's polynomial code
  is the case ``V`` = Vandermonde, which is numerically unstable for large ``N``; the
  Gaussian ``V`` is far better conditioned but still grows with ``N``.

:func:`decode_blocks` decodes any such code from the workers ``F`` heard from: the
least-squares ``D`` (ℓ × |F|) minimising ``‖D·B_F − U‖`` where ``B_F`` is ``(|F|, m·ℓ)`` and
``U`` picks block ``k`` of every chunk; decodable when the residual is below
``DECODE_TOLERANCE``. In approximate mode the same least-squares ``D`` is used as it is.
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


# -- ℓ parts: the communication-efficient original -----------------------------------------


def block_target(m: int, parts: int) -> np.ndarray:
    """``U`` (ℓ × m·ℓ): row ``k`` sums block ``k`` over the chunks (coordinate ``j·ℓ + k``)."""
    U = np.zeros((parts, m * parts))
    for k in range(parts):
        U[k, k::parts] = 1.0
    return U


def mds_encoding(assignment: Assignment, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``B`` (n, m, ℓ) of the communication-efficient original (module docstring)."""
    support = assignment.support
    n, m = support.shape
    stragglers = int(assignment.replication.min()) - parts
    if stragglers < 0:
        raise ValueError(
            f"algorithm.parts: parts ({parts}) exceeds the least replication of a chunk "
            f"({int(assignment.replication.min())})"
        )
    K = n - stragglers
    for _ in range(10):
        V = rng.standard_normal((n, K))
        B = np.zeros((n, m, parts))
        for j in range(m):
            others = np.flatnonzero(~support[:, j])
            select = np.zeros((parts, K))
            select[:, K - parts :] = np.eye(parts)
            A = np.vstack([V[others], select])
            rhs = np.vstack([np.zeros((others.size, parts)), np.eye(parts)])
            C = np.linalg.pinv(A) @ rhs  # (K, ℓ)
            B[:, j, :] = V @ C
            B[others, j, :] = 0.0  # zero up to round-off by construction
        if decode_blocks(B, np.arange(K)).exact:
            return B
    raise RuntimeError("communication-efficient code construction failed in 10 draws")


def decode_blocks(B: np.ndarray, rows: np.ndarray | list[int]) -> Decoding:
    """Least-squares decoder ``a`` (ℓ × |F|) with ``a·B_F ≈ U`` for the workers ``rows``."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    n, m, parts = B.shape
    if rows.size == 0:
        return Decoding(rows, np.zeros((parts, 0)), 1.0, 1.0)
    BF = B[rows].reshape(rows.size, m * parts)
    U = block_target(m, parts)
    solution, *_ = scipy.linalg.lstsq(BF.T, U.T, lapack_driver="gelsd")
    a = solution.T
    residual = float(np.max(np.abs(a @ BF - U)))
    return Decoding(rows, a, residual, condition_number(BF))


def first_decodable(B: np.ndarray, order: np.ndarray, groups: list[int]) -> Decoding | None:
    """The decoding from the shortest prefix ``order[:k]``, ``k`` in ``groups`` (increasing),
    that decodes; ``None`` when even ``order`` does not. Decodability only grows with the
    set of workers, so a binary search over ``groups`` finds it."""
    lo, hi = 0, len(groups) - 1
    found: Decoding | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        decoding = decode_blocks(B, order[: groups[mid]])
        if decoding.exact:
            found, hi = decoding, mid - 1
        else:
            lo = mid + 1
    return found
