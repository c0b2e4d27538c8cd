"""AD-PSGD (Lian et al., 2018): asynchronous; a gradient step overlapped with a pairwise average.

Each node, forever: start computing a minibatch gradient at its current model; meanwhile
pick a random neighbour and average with it atomically (the partner does not stop
computing); when both are done, apply the (now slightly stale) gradient to the averaged
model. An iteration lasts max(compute time, message time).

The node program below is the whole algorithm (:mod:`gossipsim.engine.program`). With
faults, an unreachable or silent partner costs a timeout and another is tried, and a node
that crashes drops the gradient it was computing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gossipsim.engine.interpreter import start_program
from gossipsim.engine.program import (
    FAULTS,
    NO_FAULTS,
    Duration,
    Program,
    add_comm,
    add_comm_exchanged,
    count_interaction,
    count_steps,
    draw_duration,
    exchange,
    if_down,
    if_up,
    jump,
    label,
    log,
    mark,
    next_attempt,
    over_link,
    pick_neighbour,
    set_attempt,
    set_steps,
    wait,
    wait_rest,
    wait_up,
)
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import AveragingOptimizerSection, NoQuantizer, QuantizerConfig


class ADPSGDConfig(AveragingOptimizerSection):
    """AD-PSGD: asynchronous; one local step, then an atomic average with a random neighbour."""

    kind: Literal["adpsgd"]
    quantizer: QuantizerConfig = Field(default_factory=NoQuantizer)


def node(message_time: Duration) -> Program:
    """``message_time``: the atomic average's duration (messages over the pair's link)."""
    return Program(
        [
            label("top", if_up("work")),
            wait_up(),
            jump("top", when=FAULTS),
            label("work", log("gradient_snapshot")),  # the gradient at the current model
            set_steps(1),
            draw_duration(),  # ... takes this long to compute, from now on
            mark(),
            set_attempt(),
            label("attempt", pick_neighbour()),
            wait(message_time, when=NO_FAULTS),  # meanwhile: the atomic average
            add_comm(message_time, when=NO_FAULTS),
            exchange(message_time, failed="failed"),
            add_comm_exchanged(1),
            log("pair_average"),
            count_interaction(),
            label("rest", wait_rest()),  # the gradient is done
            if_down("top"),
            log("apply_gradient"),  # applied to the averaged model
            count_steps(),
            jump("top"),
            label("failed", next_attempt(retry="attempt")),
            jump("rest", when=FAULTS),
        ]
    )


def program(sim: Simulation) -> Program:
    assert isinstance(sim.config.algorithm, ADPSGDConfig)
    return node(over_link(sim.executor.quantizer.message_bits(sim.models.shape[1])))


def start(sim: Simulation) -> None:
    start_program(sim, program(sim))
