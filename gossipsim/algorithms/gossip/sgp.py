"""Stochastic Gradient Push (Assran et al., 2019): push-sum along a fixed schedule of peers.

Each node keeps a numerator x_i and a weight w_i and trains at its de-biased model
z_i = x_i / w_i. Forever: take an SGD step at z_i (x_i ← x_i − η ∇f_i(z_i)), then keep half
of (x_i, w_i) and push the other half to this step's peer. Messages arrive one message
time (over the link to that peer) later and are added in.

Peers (``algorithm.peers``), at the node's k-th step (k counts from 0):

* ``exponential``: the node 2^(k mod ⌈log₂ n⌉) ids ahead on the ring of node ids (the
  directed exponential graph of the SGP paper; the configured topology is not used);
* ``topology``: neighbours[i][k mod deg_i], the node's neighbours in the configured graph,
  sorted, one after the other.

Staleness (``algorithm.overlap`` = τ): before a node starts step k+1 it waits until it has
received every message sent to it at a step ≤ k − τ (of the sender). Everybody knows the
schedule, so a node knows how many messages it is owed (one per step on the exponential
graph; 0, 1 or more per step with ``topology`` peers). τ = 0 is the authors' synchronous
SGP, τ = 1 their 1-overlap SGP; ``unbounded`` never waits. The time spent waiting is idle
time. A message from a later step that arrives before it is needed is added in at once.

Faults. A push to an unreachable peer or a lost message is not acknowledged: the sender
keeps the half it would have pushed, so numerators and weights stay consistent. Such a
message never arrives, and neither do the pushes of a crashed node, so a node never waits
longer than the fault timeout (``faults.timeout``): then it counts a timeout, stops
expecting the messages still missing up to that step, and goes on; if one of them does
arrive later it is added in (nothing is lost) but not counted for any later wait.

The node program below is the whole algorithm (:mod:`gossipsim.engine.program`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from gossipsim.engine.interpreter import exponential_peer, start_program
from gossipsim.engine.program import (
    NO_FAULTS,
    Duration,
    Instruction,
    Program,
    add_comm,
    add_comm_exchanged,
    add_idle_since_mark,
    await_messages,
    compute,
    count_steps,
    if_down,
    if_up,
    jump,
    label,
    log,
    mark,
    message,
    next_iteration,
    over_link,
    pick_exponential_peer,
    pick_next_neighbour,
    send,
    send_exchanged,
    set_steps,
    wait_up,
)
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import (
    AveragingOptimizerSection,
    NoQuantizer,
    StochasticQuantizer,
)


class SGPConfig(AveragingOptimizerSection):
    """Stochastic Gradient Push: push-sum with one push a step, to a peer fixed by a schedule.

    ``peers``: ``exponential`` pushes to the node 2^(k mod ⌈log₂ n⌉) ids ahead at step k
    (the directed exponential graph; the configured topology is not used); ``topology``
    pushes to the configured graph's neighbours in turn (sorted, one per step).
    ``overlap``: the staleness a node allows. Before step k+1 a node waits until every
    message sent to it at a step ≤ k − overlap has arrived; 0 is synchronous SGP, 1 is
    1-overlap SGP, ``unbounded`` never waits.
    """

    kind: Literal["sgp"]
    peers: Literal["exponential", "topology"] = "exponential"
    overlap: Literal[0, 1, "unbounded"] = 0
    # Lattice decoding needs a reference close to the sent value; push-sum numerators have
    # none (they are scaled by weights), so only reference-free quantizers apply.
    quantizer: Annotated[NoQuantizer | StochasticQuantizer, Field(discriminator="kind")] = Field(
        default_factory=NoQuantizer
    )

    @field_validator("overlap", mode="before")
    @classmethod
    def _overlap_not_bool(cls, value: Any) -> Any:
        # true / false would pass as 1 / 0; a staleness bound is a number of steps.
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError(f"overlap must be 0, 1 or 'unbounded', got {value!r}")
        return value


__all__ = ["exponential_peer", "node", "program", "start"]


def node(
    message_time: Duration, peers: str = "exponential", overlap: int | str = "unbounded"
) -> Program:
    wait: list[Instruction] = []
    if overlap != "unbounded":
        assert isinstance(overlap, int)
        wait = [
            label("top", mark()),
            await_messages(overlap),  # every message of steps ≤ K − 1 − overlap is in
            add_idle_since_mark(),
        ]
    pick = pick_exponential_peer() if peers == "exponential" else pick_next_neighbour()
    return Program(
        [
            *wait,
            label("up" if wait else "top", if_up("work")),
            wait_up(),  # then go on: the iteration counts
            label("work", set_steps(1)),
            compute(),
            if_down("next"),  # crashed while computing: the step is lost
            log("push_sum_step"),  # x_i ← x_i − η ∇f_i(x_i / w_i)
            count_steps(),
            pick,
            add_comm(message_time, when=NO_FAULTS),
            send(message_time, when=NO_FAULTS),  # keep half of (x_i, w_i), push half
            message(message_time, lost="next"),
            add_comm_exchanged(1),
            send_exchanged(),
            label("next", next_iteration()),
            jump("top"),
        ],
        push_sum=True,
    )


def program(sim: Simulation) -> Program:
    config = sim.config.algorithm
    assert isinstance(config, SGPConfig)
    if config.peers == "topology":
        lonely = [i for i, table in enumerate(sim.neighbours) if len(table) == 0]
        if lonely:
            raise ValueError(
                f"algorithm.peers: 'topology' needs every node to have a neighbour; "
                f"node {lonely[0]} has none"
            )
    # One push: the (quantized) half numerator and the half weight, one full-precision float.
    bits = sim.executor.quantizer.message_bits(sim.models.shape[1]) + sim.network.float_bits
    return node(over_link(bits), config.peers, config.overlap)


def start(sim: Simulation) -> None:
    start_program(sim, program(sim))
