"""The partial-straggler protocol's linear algebra (Ramamoorthy, Meng, Girimaji, 2405.19509).

Workers process their chunks one at a time in a fixed order and report how many they have
done. The PS's *global state vector* ``state[i]`` is the number of chunks worker ``i`` has
reported; with each worker's order known to everyone, it says exactly which chunks each
worker has processed: chunk ``j`` is processed by ``i`` when its position in ``i``'s order
is below ``state[i]`` (``positions`` below). ``S_j`` is the set of workers that processed
chunk ``j``.

**ℓ parts** (``algorithm.parts``; the communication parameter). Every gradient is split
into ℓ blocks ``g^(1..ℓ)`` of length ``b = ⌈d/ℓ⌉`` (``d`` zero-padded to ``ℓ·b``) and every
worker sends one vector of length ``b``. The formulation (ours, consistent with the paper's
abstract and with its ℓ = 1 case):

* a *decoding matrix* ``R`` (ℓ × N) is fixed for the run and known to everyone
  (:func:`decoding_matrix`): for ℓ = 1 the all-ones row; for ℓ ≥ 2 i.i.d. standard normal
  entries drawn from the run's ``coding/decoder`` stream, so that every ℓ of its columns
  are linearly independent with probability one — of 16 such draws, the one whose worst
  ℓ-column block among the holders of a chunk is best conditioned;
* chunk ``j``'s *encoding block* is ``E_j = pinv(R[:, S_j])`` (``|S_j| × ℓ``): the
  minimum-ℓ2-norm solution of ``R[:, S_j]·E_j = I_ℓ``, exact when ``|S_j| ≥ ℓ`` (and the
  columns are independent), the least-squares solution otherwise;
* worker ``i`` sends ``f_i = Σ_{j: i∈S_j} Σ_k E_j[i, k]·g_j^(k)``;
* the PS forms block ``k`` of ĝ as ``Σ_i R[k, i]·f_i``; chunk ``j`` enters it through
  ``M_j = R[:, S_j]·E_j``: the identity when ``|S_j| ≥ ℓ`` (exact), the orthogonal
  projection onto the span of ``R[:, S_j]`` when ``0 < |S_j| < ℓ`` (least squares), zero
  when nobody processed ``j`` (dropped).

With ℓ = 1 and ``R`` all ones, ``E_j`` gives ``β_ij = 1/|S_j|``, the minimum-norm solution of
``Σ_i β_ij = 1``; :func:`encoding_coefficients` keeps that ℓ = 1 case in the constraint-matrix
form (one column per processed pair) and the tests check the two agree.

Exact recovery therefore waits until every chunk has ``≥ ℓ`` processed copies. The worst
condition number of the ``R[:, S_j]`` met is reported (metric ``condition_number``).

Because every worker solves the same deterministic problem on the same inputs (the state
vector arrives with the encode-and-transmit signal), they all obtain the same ``E`` and no
coefficients travel over the network.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from gossipsim.algorithms.coding.assignment import Assignment

NOT_HELD = np.iinfo(np.int64).max


def positions(assignment: Assignment, orders: list[tuple[int, ...]]) -> np.ndarray:
    """``pos[i, j]``: the slot at which worker ``i`` processes chunk ``j`` (NOT_HELD if never)."""
    n, m = assignment.support.shape
    pos = np.full((n, m), NOT_HELD, dtype=np.int64)
    for i, order in enumerate(orders):
        if sorted(order) != sorted(assignment.natural[i]):
            raise ValueError(f"ordering of worker {i} is not a permutation of its chunks")
        pos[i, list(order)] = np.arange(len(order))
    return pos


def processed(pos: np.ndarray, state: np.ndarray) -> np.ndarray:
    """``(n, m)`` bool: chunk ``j`` processed by worker ``i`` under the state vector."""
    return pos < np.asarray(state, dtype=np.int64)[:, None]


def covered(pos: np.ndarray, state: np.ndarray, parts: int = 1) -> np.ndarray:
    """``(m,)`` bool: chunk processed by at least ``parts`` workers (exact recovery needs all)."""
    if parts == 1:
        return np.asarray(processed(pos, state).any(axis=0))
    return np.asarray(processed(pos, state).sum(axis=0) >= parts)


def constraint_matrix(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A`` (m × P) and the worker and chunk of each of its columns (row-major over mask)."""
    workers, chunks = np.nonzero(mask)
    A = np.zeros((mask.shape[1], workers.size))
    A[chunks, np.arange(workers.size)] = 1.0
    return A, workers, chunks


@dataclass(frozen=True)
class Coefficients:
    """Encoding coefficients of one iteration, as an ``(n, m)`` matrix ``beta``."""

    beta: np.ndarray  # beta[i, j] = β_ij (0 where i did not process j)
    residual: np.ndarray  # (m,) Σ_i β_ij − 1 per chunk (−1 for uncovered chunks)
    condition: float  # condition number of A (nonzero singular values)

    @property
    def exact(self) -> bool:
        return bool(np.all(np.abs(self.residual) <= 1e-10))


def encoding_coefficients(mask: np.ndarray) -> Coefficients:
    """Minimum-norm least-squares ``β`` with ``Σ_i β_ij = 1`` for the processed pairs ``mask``."""
    n, m = mask.shape
    beta = np.zeros((n, m))
    if not mask.any():
        return Coefficients(beta, -np.ones(m), 1.0)
    A, workers, chunks = constraint_matrix(mask)
    solution, _, _, sv = scipy.linalg.lstsq(A, np.ones(m), lapack_driver="gelsd")
    beta[workers, chunks] = solution
    kept = sv[sv > 1e-12 * sv[0]]
    return Coefficients(beta, beta.sum(axis=0) - 1.0, float(kept[0] / kept[-1]))


def worker_coefficients(pos: np.ndarray, state: np.ndarray, worker: int) -> np.ndarray:
    """What worker ``worker`` computes on the signal: its own row of ``β`` (length m).

    Every worker calls this with the same ``pos`` and ``state`` and hence gets its row of
    the same solution.
    """
    return encoding_coefficients(processed(pos, state)).beta[worker]


# -- ℓ parts -------------------------------------------------------------------------------


DECODER_DRAWS = 16


def decoding_matrix(
    parts: int,
    n: int,
    rng: np.random.Generator | None = None,
    support: np.ndarray | None = None,
    draws: int = DECODER_DRAWS,
) -> np.ndarray:
    """``R`` (``parts × n``): all ones for ℓ = 1; for ℓ ≥ 2 i.i.d. standard normal entries.

    With ``support`` (the ``(n, m)`` assignment) ``draws`` candidates are drawn from ``rng``
    and the one kept is the best conditioned where it matters: the smallest worst condition
    number of ``R[:, T]`` over every ℓ-subset ``T`` of the holders of a chunk (up to 64
    subsets per chunk, the first in lexicographic order) — the blocks an exact decode inverts
    with the fewest copies.
    """
    if parts == 1:
        return np.ones((1, n))
    if rng is None:
        raise ValueError("a decoding matrix with parts > 1 needs a random stream")
    candidates = [rng.standard_normal((parts, n)) for _ in range(max(1, draws))]
    if support is None or len(candidates) == 1:
        return candidates[0]
    subsets: set[tuple[int, ...]] = set()
    for j in range(support.shape[1]):
        holders = np.flatnonzero(support[:, j]).tolist()
        subsets.update(itertools.islice(itertools.combinations(holders, parts), 64))
    if not subsets:
        return candidates[0]
    index = np.array(sorted(subsets))  # (T, ℓ)
    worst = []
    for R in candidates:
        blocks = np.transpose(R[:, index], (1, 0, 2))  # (T, ℓ, ℓ)
        sv = np.linalg.svd(blocks, compute_uv=False)
        with np.errstate(divide="ignore"):
            worst.append(float(np.max(sv[:, 0] / sv[:, -1])))
    return candidates[int(np.argmin(worst))]


def _condition(matrix: np.ndarray) -> float:
    sv = np.linalg.svd(matrix, compute_uv=False)
    if sv.size == 0 or sv[0] == 0.0:
        return 1.0
    kept = sv[sv > 1e-12 * sv[0]]
    return float(kept[0] / kept[-1])


@dataclass(frozen=True)
class Encoding:
    """One iteration's encoding: ``E[i, j, :]`` is worker ``i``'s row of ``pinv(R[:, S_j])``."""

    E: np.ndarray  # (n, m, ℓ), zero where i ∉ S_j
    copies: np.ndarray  # (m,) |S_j|
    condition: float  # worst condition number of R[:, S_j] over chunks with S_j ≠ ∅
    parts: int

    @property
    def exact(self) -> bool:
        return bool((self.copies >= self.parts).all())


class Encoder:
    """Computes :class:`Encoding` for a fixed ``R``; caches ``pinv(R[:, S])`` by the set ``S``."""

    def __init__(self, R: np.ndarray) -> None:
        self.R = np.asarray(R, dtype=np.float64)
        self.parts, self.n = self.R.shape
        self._cache: dict[bytes, tuple[np.ndarray, float]] = {}

    def block(self, workers: np.ndarray) -> tuple[np.ndarray, float]:
        """``pinv(R[:, workers])`` (``|workers| × ℓ``) and the condition number of the columns."""
        key = workers.astype(np.int32).tobytes()
        found = self._cache.get(key)
        if found is None:
            columns = self.R[:, workers]
            if self.parts == 1 and np.all(columns == 1.0):
                found = (np.full((workers.size, 1), 1.0 / workers.size), 1.0)
            else:
                found = (np.linalg.pinv(columns, rcond=1e-12), _condition(columns))
            if len(self._cache) < 100_000:
                self._cache[key] = found
        return found

    def encode(self, mask: np.ndarray) -> Encoding:
        """The encoding for the processed pairs ``mask`` (``(n, m)`` bool)."""
        n, m = mask.shape
        copies = mask.sum(axis=0)
        if self.parts == 1 and np.all(self.R == 1.0):  # β_ij = 1/|S_j|, in one step
            E = (mask / np.maximum(copies, 1))[:, :, None]
            return Encoding(E, copies, 1.0, 1)
        E = np.zeros((n, m, self.parts))
        worst = 1.0
        for j in range(m):
            if copies[j] == 0:
                continue
            workers = np.flatnonzero(mask[:, j])
            block, condition = self.block(workers)
            E[workers, j, :] = block
            worst = max(worst, condition)
        return Encoding(E, copies, worst, self.parts)

    def transfer(self, encoding: Encoding) -> np.ndarray:
        """``(m, ℓ, ℓ)``: ``M_j = R·E_j``, how chunk ``j``'s blocks enter the decoded blocks."""
        return np.einsum("ki,ijl->jkl", self.R, encoding.E)


def split_blocks(G: np.ndarray, parts: int) -> np.ndarray:
    """``(..., d)`` → ``(..., ℓ, ⌈d/ℓ⌉)``: the ℓ blocks, the last zero-padded."""
    d = G.shape[-1]
    width = -(-d // parts)
    padded = np.zeros((*G.shape[:-1], parts * width))
    padded[..., :d] = G
    return padded.reshape(*G.shape[:-1], parts, width)


def join_blocks(blocks: np.ndarray, d: int) -> np.ndarray:
    """``(ℓ, b)`` → ``(d,)``: concatenate the blocks and drop the padding."""
    return blocks.reshape(-1)[:d]
