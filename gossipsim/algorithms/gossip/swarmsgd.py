"""SwarmSGD (Nadiradze et al., arXiv 1910.12308): local steps, then a pairwise average.

Each node, forever: take H local SGD steps on its own data (H fixed or geometric), pick a
uniformly random neighbour, and average with it — blocking (both models are locked for the
exchange, so the initiator waits while its partner computes) or non-blocking (the
initiator reads the partner's communication buffer and writes the average back without
waiting). Exchanges may be quantized; each message costs latency + bits / bandwidth.

Messages: a blocking exchange is two model messages sent at once (it lasts one message
time and charges two). A non-blocking one is three: a read request (one
``network.float_bits`` header word, no model), the reply (the partner's buffer) and the
write of the average into that buffer; the initiator waits for the request and the reply
(it needs the values), then sends the write and goes on without waiting for it. All three
are charged to communication time and to the ``messages``/``bits`` counters.

This is the whole algorithm: one node program each way, which both executors interpret
(:mod:`gossipsim.engine.program`). Lines marked ``faults`` run only when the config has
faults: a crashed node waits until it is back, and an exchange that cannot complete costs
a timeout before the next neighbour is tried.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gossipsim.engine.interpreter import start_program
from gossipsim.engine.program import (
    FAULTS,
    HIGHER,
    LOWER,
    NO_FAULTS,
    SELF,
    Program,
    acquire,
    add_comm,
    add_comm_exchanged,
    add_idle_since_mark,
    compute,
    count_interaction,
    count_steps,
    draw_local_steps,
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
    release,
    set_attempt,
    wait,
    wait_up,
)
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import (
    AveragingOptimizerSection,
    FixedLocalSteps,
    LocalStepsConfig,
    NoQuantizer,
    QuantizerConfig,
)


class SwarmSGDConfig(AveragingOptimizerSection):
    """SwarmSGD: H local steps, then a (quantized, possibly non-blocking) pairwise average."""

    kind: Literal["swarmsgd"]
    local_steps: LocalStepsConfig = Field(default_factory=lambda: FixedLocalSteps(kind="fixed"))
    quantizer: QuantizerConfig = Field(default_factory=NoQuantizer)
    nonblocking: bool = False


def blocking(config: SwarmSGDConfig, model_bits: float) -> Program:
    """A node holds its own lock while it computes; an exchange holds both partners' locks,
    taken in id order (no cycle of waits can form), so the initiator waits for a busy
    partner to finish computing: that wait is idle time. Both send at once, so an
    exchange takes one message time over the pair's link and charges two."""
    message_time = over_link(model_bits)
    return Program(
        [
            label("top", if_up("work")),
            wait_up(),
            jump("top", when=FAULTS),
            label("work", draw_local_steps()),
            acquire(SELF),
            compute(),
            if_down("crashed"),  # the work of a node that crashed while computing is lost
            log("local_steps"),
            count_steps(),
            release(SELF),
            set_attempt(),
            label("attempt", pick_neighbour()),
            mark(),
            acquire(LOWER),
            acquire(HIGHER),
            add_idle_since_mark(),
            wait(message_time, when=NO_FAULTS),
            add_comm(over_link(model_bits, times=2), when=NO_FAULTS),
            exchange(message_time, failed="failed"),
            add_comm_exchanged(2),
            log("pair_average"),
            count_interaction(),
            release(HIGHER),
            release(LOWER),
            jump("top"),
            label("failed", release(HIGHER, when=FAULTS)),
            release(LOWER, when=FAULTS),
            next_attempt(retry="attempt"),
            jump("top", when=FAULTS),
            label("crashed", release(SELF, when=FAULTS)),
            jump("top", when=FAULTS),
        ],
        local_steps=config.local_steps,
        locks=True,
    )


def nonblocking(config: SwarmSGDConfig, request_bits: float, model_bits: float) -> Program:
    """A node never waits for its partner's computation: after its local steps it sends a
    read request (``request_bits``), waits for the reply (the partner's buffer,
    ``model_bits``), and writes the average back (``model_bits``) without waiting for
    the write to arrive, all over the pair's link. The whole exchange is applied when the
    reply arrives.

    With faults, the request and the reply are the two messages of one exchange lasting
    request time + reply time (either may be lost; a latency spike stretches the
    round trip); the write is charged its nominal time and is not lost on its own — the
    average is applied atomically at the reply, as without faults."""
    read = over_link(request_bits, model_bits)  # the request, then the reply
    return Program(
        [
            label("top", if_up("work")),
            wait_up(),
            jump("top", when=FAULTS),
            label("work", draw_local_steps()),
            compute(),
            if_down("top"),
            log("local_steps"),
            count_steps(),
            set_attempt(),
            label("attempt", pick_neighbour()),
            wait(read, when=NO_FAULTS),  # request and reply
            add_comm(read, when=NO_FAULTS),
            exchange(read, failed="failed"),
            add_comm_exchanged(1),
            add_comm(over_link(model_bits)),  # the write: charged, not waited for
            log("buffer_exchange"),
            count_interaction(),
            jump("top"),
            label("failed", next_attempt(retry="attempt")),
            jump("top", when=FAULTS),
        ],
        local_steps=config.local_steps,
        buffers=True,
    )


def program(sim: Simulation) -> Program:
    config = sim.config.algorithm
    assert isinstance(config, SwarmSGDConfig)
    model_bits = sim.executor.quantizer.message_bits(sim.models.shape[1])
    if config.nonblocking:
        # A read request carries no model: one header word.
        return nonblocking(config, sim.network.float_bits, model_bits)
    return blocking(config, model_bits)


def start(sim: Simulation) -> None:
    start_program(sim, program(sim))
