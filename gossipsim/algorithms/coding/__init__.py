"""Gradient coding with partial stragglers: a parameter server and workers (papers.md §2).

Modules: :mod:`.assignment` (cyclic / fractional-repetition chunk assignments),
:mod:`.encoding` (Tandon et al. FR/CR codes and least-squares decoding), :mod:`.partial`
(the protocol's minimum-norm encoding coefficients), :mod:`.ordering` (chunk orderings,
including the optimised one), :mod:`.schedule` (one iteration's events from the timing
draws) and :mod:`.protocol` (the PS process on the engine; ``start`` is the registry entry).
"""

from gossipsim.algorithms.coding.protocol import ps_star, start, validate

__all__ = ["ps_star", "start", "validate"]
