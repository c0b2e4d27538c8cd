"""The partial-straggler protocol's linear algebra (Ramamoorthy, Meng, Girimaji, 2405.19509).

Workers process their chunks one at a time in a fixed order and report how many they have
done. The PS's *global state vector* ``state[i]`` is the number of chunks worker ``i`` has
reported; with each worker's order known to everyone, it says exactly which chunks each
worker has processed: chunk ``j`` is processed by ``i`` when its position in ``i``'s order
is below ``state[i]`` (``positions`` below).

On the encode-and-transmit signal every worker receives the same state and solves the same
problem for coefficients ``β_ij`` (worker ``i``, processed chunk ``j``): the PS adds up the
vectors ``Σ_j β_ij g_j`` it receives, so the decoded gradient is ``Σ_j (Σ_i β_ij) g_j`` and
the constraints are ``Σ_i β_ij = 1`` for every chunk ``j``. As a matrix: ``A β = 1`` with
``A ∈ {0,1}^{m×P}`` (one column per processed pair ``(i, j)``, a 1 in row ``j``).

The coefficients are the minimum-ℓ2-norm least-squares solution, computed with
``scipy.linalg.lstsq`` (LAPACK ``gelsd``, SVD-based; never a normal-equations inverse):

* exact case (every chunk processed by someone) — the system is consistent and the
  minimum-norm solution spreads chunk ``j`` evenly over the ``c_j`` workers that processed
  it, ``β_ij = 1/c_j ∈ [1/ℓ, 1]``;
* approximate case (some chunk not processed) — rows of unprocessed chunks cannot be met;
  the least-squares solution meets all the others exactly and minimises the coefficient
  error ``‖Aβ − 1‖``: uncovered chunks are simply missing from the decoded gradient.

Because every worker solves the same deterministic problem on the same inputs, they all
obtain the same ``β`` and no coefficients travel over the network.
"""

from __future__ import annotations

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


def covered(pos: np.ndarray, state: np.ndarray) -> np.ndarray:
    """``(m,)`` bool: chunk processed by at least one worker (the exact-recovery condition)."""
    return np.asarray(processed(pos, state).any(axis=0))


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
