"""Gradient coding with partial stragglers: a parameter server and workers
(docs/gradient_coding.md describes the formulation).

Modules: :mod:`.assignment` (cyclic, fractional-repetition, graph and matrix chunk
assignments), :mod:`.encoding` (the original codes: Tandon et al. FR/CR for ℓ = 1, the
communication-efficient code for any ℓ, least-squares decoding), :mod:`.partial` (the
protocol's minimum-norm encoding blocks ``pinv(R[:, S_j])``), :mod:`.ordering` (chunk
orderings and Qmax), :mod:`.schedule` (one iteration's events from the timing draws) and
:mod:`.protocol` (the PS process on the engine; ``start`` is the registry entry).
"""

from gossipsim.algorithms.coding.config import GradientCodingConfig
from gossipsim.algorithms.coding.protocol import (
    check,
    graph,
    machines,
    progress_line,
    ps_star,
    start,
    summary,
    validate,
)

__all__ = [
    "GradientCodingConfig",
    "check",
    "graph",
    "machines",
    "progress_line",
    "ps_star",
    "start",
    "summary",
    "validate",
]
