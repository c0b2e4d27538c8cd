"""Gradient coding with partial stragglers: a parameter server and workers
(docs/gradient_coding.md describes the formulation).

Modules: :mod:`.assignment` (cyclic, fractional-repetition, graph and matrix chunk
assignments), :mod:`.encoding` (the original codes: Tandon et al. FR/CR for ℓ = 1, the
communication-efficient code for any ℓ, least-squares decoding), :mod:`.partial` (the
protocol's minimum-norm encoding blocks ``pinv(R[:, S_j])``), :mod:`.ordering` (chunk
orderings and Qmax), :mod:`.schedule` (one iteration's events from the timing draws) and
:mod:`.protocol` (the PS process on the engine).

The registry's functions below load :mod:`.protocol` (and with it numba's coding kernels
and scipy's linear algebra and matching) when a gradient-coding run first needs it, so
that runs of the other algorithms do not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gossipsim.algorithms.coding.config import GradientCodingConfig

if TYPE_CHECKING:
    import networkx as nx

    from gossipsim.engine.simulation import Simulation
    from gossipsim.experiment.config import RunConfig
    from gossipsim.system.rng import Streams


def start(sim: Simulation) -> None:
    """Start the PS process (:func:`.protocol.start`)."""
    from gossipsim.algorithms.coding import protocol

    protocol.start(sim)


def machines(config: RunConfig) -> int:
    """The workers of a run (:func:`.protocol.machines`)."""
    from gossipsim.algorithms.coding import protocol

    return protocol.machines(config)


def graph(config: RunConfig) -> nx.Graph:
    """The PS star (:func:`.protocol.graph`)."""
    from gossipsim.algorithms.coding import protocol

    return protocol.graph(config)


def check(config: RunConfig, n_train: int, streams: Streams) -> None:
    """Checks before the run (:func:`.protocol.check`)."""
    from gossipsim.algorithms.coding import protocol

    protocol.check(config, n_train, streams)


def summary(sim: Simulation) -> dict[str, Any]:
    """Facts for ``meta.json`` (:func:`.protocol.summary`)."""
    from gossipsim.algorithms.coding import protocol

    return protocol.summary(sim)


def progress_line(first: dict[str, Any], last: dict[str, Any]) -> str:
    """The CLI's line about a run (:func:`.protocol.progress_line`)."""
    from gossipsim.algorithms.coding import protocol

    return protocol.progress_line(first, last)


__all__ = [
    "GradientCodingConfig",
    "check",
    "graph",
    "machines",
    "progress_line",
    "start",
    "summary",
]
