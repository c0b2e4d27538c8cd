"""D-PSGD: synchronous rounds of neighbourhood (Metropolis–Hastings) averaging and SGD.

Two update rules, chosen by ``algorithm.variant``, with W the Metropolis–Hastings mixing
matrix of the graph (of its usable part, under faults) and g_i a minibatch gradient of node
i's own shard:

- ``lian`` (the default; Lian et al., 2017): X ← W·X − γ·G(X). Each node computes its
  gradient at its current model while it sends that model to its deg(i) neighbours; the
  gradient is applied to the averaged model. Computing and sending overlap, so node i is
  busy for max(compute_i, latency + deg(i)·bits/bandwidth) and the round ends when the
  slowest node is done.
- ``atc`` (adapt, then combine; the diffusion form): X ← W·(X − γ·G(X)). Every node first
  takes its SGD step, then the exchange starts: the round lasts the slowest compute time
  plus the slowest exchange (max_i send_i: every node sends one message to each neighbour).

send_i = Σ_j bits/bandwidth_ij + max_j latency_ij over i's neighbours j, with each link's
own values (:func:`send_times`): the sends share the node's outgoing time one after another
and their latencies overlap. With every link alike, send_i = latency + deg(i)·bits/bandwidth.

A node that is down takes no step and keeps its model (it has no usable link).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Literal

import numpy as np
import simpy
from pydantic import Field

from gossipsim.algorithms.synchronous.rounds import SynchronousClock
from gossipsim.engine.executor import Mix, MixGradient
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import AveragingOptimizerSection, NoQuantizer, QuantizerConfig
from gossipsim.system.topology import metropolis_weights


class DPSGDConfig(AveragingOptimizerSection):
    """D-PSGD: synchronous rounds of Metropolis averaging with all neighbours and a local step.

    ``variant: lian`` (Lian et al., 2017): x_i ← Σ_j W_ij x_j − lr·g_i(x_i), the gradient
    taken at the node's model from before the round while the models are exchanged; a node's
    part of the round lasts max(compute, its own sends). ``variant: atc`` (adapt, then
    combine): x_i ← Σ_j W_ij (x_j − lr·g_j(x_j)); the exchange starts after the slowest step.
    """

    kind: Literal["dpsgd"]
    variant: Literal["lian", "atc"] = "lian"
    quantizer: QuantizerConfig = Field(default_factory=NoQuantizer)


def start(sim: Simulation) -> None:
    assert isinstance(sim.config.algorithm, DPSGDConfig)
    sim.env.process(rounds(sim))


def send_times(sim: Simulation, bits: float) -> np.ndarray:
    """How long each node takes to send its model to all its neighbours.

    Node i's sends share its time one after another while their latencies overlap:
    Σ_j bits / bandwidth_ij + max_j latency_ij over its neighbours j. With every link alike
    that is latency + deg(i)·bits/bandwidth (computed so, as it always was).
    """
    network = sim.network
    if network.uniform:
        degrees = np.array([len(nbrs) for nbrs in sim.neighbours], dtype=np.float64)
        return network.latency + degrees * bits / network.bandwidth
    latency, bandwidth = network.neighbour_links(sim.neighbours)
    offsets = np.cumsum([0] + [len(nbrs) for nbrs in sim.neighbours])
    out = np.zeros(sim.n)
    for i in range(sim.n):
        lo, hi = offsets[i], offsets[i + 1]
        if hi > lo:
            out[i] = float(np.sum(bits / bandwidth[lo:hi])) + float(latency[lo:hi].max())
    return out


def rounds(sim: Simulation) -> Generator[simpy.Event, object, None]:
    algorithm = sim.config.algorithm
    assert isinstance(algorithm, DPSGDConfig)
    lian = algorithm.variant == "lian"
    weights = metropolis_weights(sim.graph)
    clock = SynchronousClock(sim)
    bits = sim.executor.quantizer.message_bits(sim.models.shape[1])
    sends = send_times(sim, bits)
    # atc: the exchange after the steps lasts as long as the slowest node's sends.
    exchange = 0.0 if lian else float(sends.max())
    overlap = sends if lian else None
    directed_messages = 2 * sim.graph.number_of_edges()
    while True:
        nodes = yield from clock.members()
        nodes = yield from clock.round(
            exchange, nodes=nodes, messages=directed_messages, overlap=overlap
        )
        if sim.faults is None:
            mixing = weights
        else:
            # Average over the links usable now: down nodes and cut links drop out.
            mixing = metropolis_weights(sim.faults.usable_graph(sim.graph))
        members = [int(node) for node in nodes]
        if lian:
            sim.submit(MixGradient(mixing, tuple(members)))
            sim.count_local_steps_many(members, [1] * len(members))
        else:
            sim.submit_local_steps(members, [1] * len(members))
            sim.submit(Mix(mixing))
        sim.count_interactions(len(nodes))
        sim.count_iteration()
