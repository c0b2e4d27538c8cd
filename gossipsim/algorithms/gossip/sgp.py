"""Stochastic Gradient Push (Assran et al., 2019): push-sum over a time-varying exponential graph.

Each node keeps a numerator x_i and a weight w_i and trains at its de-biased model
z_i = x_i / w_i. Forever: take an SGD step at z_i (x_i ← x_i − η ∇f_i(z_i)), then keep half
of (x_i, w_i) and push the other half to the peer 2^k hops away on the ring of node ids,
k cycling through 0 … ⌈log₂ n⌉ − 1 with the node's iteration count (the directed
exponential graph of the SGP paper; the configured topology is not used). Messages
arrive one message time later and are added in; nobody waits for anybody.

The node program below is the whole algorithm (:mod:`gossipsim.engine.program`). With
faults, a push to an unreachable peer or a lost message is not acknowledged: the sender
keeps the half it would have pushed, so numerators and weights stay consistent.
"""

from __future__ import annotations

from gossipsim.engine.interpreter import exponential_peer, start_program
from gossipsim.engine.program import (
    NO_FAULTS,
    Program,
    add_comm,
    add_comm_exchanged,
    compute,
    count_steps,
    if_down,
    if_up,
    jump,
    label,
    log,
    message,
    next_iteration,
    pick_exponential_peer,
    send,
    send_exchanged,
    set_steps,
    wait_up,
)
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.config import SGPConfig

__all__ = ["exponential_peer", "node", "program", "start"]


def node(message_time: float) -> Program:
    return Program(
        [
            label("top", if_up("work")),
            wait_up(),  # then go on: the iteration counts
            label("work", set_steps(1)),
            compute(),
            if_down("next"),  # crashed while computing: the step is lost
            log("push_sum_step"),  # x_i ← x_i − η ∇f_i(x_i / w_i)
            count_steps(),
            pick_exponential_peer(),
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
    assert isinstance(sim.config.algorithm, SGPConfig)
    # One push: the (quantized) half numerator and the half weight, one full-precision float.
    bits = sim.executor.quantizer.message_bits(sim.models.shape[1]) + sim.network.float_bits
    return node(sim.network.message_time(bits))


def start(sim: Simulation) -> None:
    start_program(sim, program(sim))
