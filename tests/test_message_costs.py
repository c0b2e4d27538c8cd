"""Messages and their cost: every registered algorithm against the table in README.md.

``COSTS`` writes the README's "Messages and their cost" table once, as formulas: given what
a finished run did (interactions, steps, rounds, …) and its sizes (n, d, float_bits, the
topology), the ``messages`` and ``bits`` counters and the communication time it must
report. Every algorithm of the registry, and every variant it declares, must have a row:
a new algorithm cannot be left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from gossipsim.algorithms import REGISTRY
from gossipsim.experiment.config import ConfigError, load_config
from gossipsim.experiment.runner import prepare, simulate
from gossipsim.system.quantize import make_quantizer
from gossipsim.system.timing import Network
from tests.conftest import make_config

LATENCY, BANDWIDTH = 0.01, 1.0e6


@dataclass(frozen=True)
class Run:
    """What a finished run did and the sizes its messages are made of."""

    row: dict[str, float]  # the last recorded row
    n: int
    d: int
    w: int  # network.float_bits
    edges: int
    max_degree: int
    iterations: int
    parts: int = 1

    def t(self, bits: float) -> float:
        """One message of ``bits`` bits: latency + bits / bandwidth."""
        return LATENCY + bits / BANDWIDTH


# (messages, bits, communication time or None where the table gives none to check here)
Expected = tuple[float, float, float | None]


def _blocking_swarm(r: Run) -> Expected:
    k, model = r.row["interactions"], r.w * r.d
    return 2 * k, 2 * k * model, 2 * k * r.t(model)


def _nonblocking_swarm(r: Run) -> Expected:
    k, model = r.row["interactions"], r.w * r.d
    return 3 * k, k * (r.w + 2 * model), k * (r.t(r.w) + 2 * r.t(model))


def _adpsgd(r: Run) -> Expected:
    k, model = r.row["interactions"], r.w * r.d
    return 2 * k, 2 * k * model, k * r.t(model)


def _sgp(r: Run) -> Expected:
    # Every step is followed at once by one push; interactions count deliveries, which
    # lag behind by the messages in flight.
    steps, push = r.row["local_steps"], r.w * r.d + r.w
    return steps, steps * push, steps * r.t(push)


def _dpsgd(r: Run) -> Expected:
    directed = 2 * r.edges
    # Its round timing is defined in dpsgd.py; only the counters are held to the table.
    return r.iterations * directed, r.iterations * directed * r.w * r.d, None


def _ring(r: Run) -> Expected:
    n, vector = r.n, r.w * r.d
    per_node = 2 * (n - 1) / n * vector
    time = 2 * (n - 1) * LATENCY + per_node / BANDWIDTH
    return (
        r.iterations * 2 * (n - 1) * n,
        r.iterations * round(n * per_node),
        (r.iterations * n * time),
    )


def _gradient_coding(r: Run) -> Expected:
    row, n, w = r.row, r.n, r.w
    coded, reports = row["coded_messages"], row["report_messages"]
    signals = r.iterations if reports else 0  # the partial protocol: one signal an iteration
    coded_bits = w * -(-r.d // r.parts) + 64
    messages = r.iterations * n + reports + signals * n + coded
    bits = r.iterations * n * w * r.d + reports * w + signals * n * w * n + coded * coded_bits
    time = (
        r.iterations * n * r.t(w * r.d)
        + reports * r.t(w)
        + signals * n * r.t(w * n)
        + coded * r.t(coded_bits)
    )
    return messages, bits, time


COSTS: dict[str, dict[str, Callable[[Run], Expected]]] = {
    "swarmsgd": {
        "default": _blocking_swarm,
        "nonblocking": _nonblocking_swarm,
        "local-steps": _blocking_swarm,
    },
    "adpsgd": {"default": _adpsgd},
    "sgp": {"default": _sgp, "topology-peers": _sgp, "overlap-1": _sgp, "unbounded": _sgp},
    "dpsgd": {"default": _dpsgd, "atc": _dpsgd},
    "allreduce": {"default": _ring},
    "local_sgd": {"default": _ring, "local-steps": _ring},
    "gradient_coding": {"default": _gradient_coding},
}


def registered() -> list[tuple[str, str, dict[str, Any]]]:
    """Every (algorithm, variant, overrides) the registry declares."""
    return [
        (kind, name, extra)
        for kind, entry in REGISTRY.items()
        for name, extra in [("default", {}), *entry.variants.items()]
    ]


CASES = [pytest.param(kind, name, extra, id=f"{kind}-{name}") for kind, name, extra in registered()]


def test_every_registered_algorithm_and_variant_has_a_cost_row():
    declared = {(kind, name) for kind, name, _ in registered()}
    written = {(kind, name) for kind, rows in COSTS.items() for name in rows}
    assert declared == written


def config_for(kind: str, extra: dict[str, Any], float_bits: int, bandwidth: float = BANDWIDTH):
    algorithm: dict[str, Any] = {"kind": kind, **extra}
    settings: dict[str, Any] = {
        "topology": {"kind": "random_regular", "n": 8, "degree": 3},
        "network": {"latency": LATENCY, "bandwidth": bandwidth, "float_bits": float_bits},
        "record": {"every": 5.0},
    }
    if kind == "gradient_coding":
        algorithm.update(workers=6, load=3, parts=2)
        settings["stop"] = {"iterations": 5}
        settings["init.identical"] = True
    elif REGISTRY[kind].program is None:  # rounds: stop at a whole number of them
        settings["stop"] = {"iterations": 6}
    else:
        settings["stop"] = {"time": 12.5}
    settings["algorithm"] = algorithm
    return make_config(**settings)


def run_of(config) -> tuple[Run, Any]:
    outcome, sim = simulate(prepare(config))
    gc = getattr(sim, "gradient_coding", None)
    run = Run(
        row=outcome.rows[-1],
        n=sim.n,
        d=sim.models.shape[1],
        w=config.network.float_bits,
        edges=sim.graph.number_of_edges(),
        max_degree=max(len(nbrs) for nbrs in sim.neighbours),
        iterations=sim.iterations,
        parts=gc.parts if gc is not None else 1,
    )
    return run, sim


@pytest.mark.parametrize("float_bits", [32, 64])
@pytest.mark.parametrize(("kind", "name", "extra"), CASES)
def test_counters_and_communication_time_follow_the_table(kind, name, extra, float_bits):
    run, _ = run_of(config_for(kind, extra, float_bits))
    messages, bits, time = COSTS[kind][name](run)
    assert run.row["messages"] > 0  # the run did communicate
    assert run.row["messages"] == messages
    assert run.row["bits"] == bits
    if time is not None:
        assert run.row["comm_time"] == pytest.approx(time, rel=1e-9)


@pytest.mark.parametrize(("kind", "name", "extra"), CASES)
def test_full_precision_payloads_take_float_bits_per_coordinate(kind, name, extra):
    """Runs that differ only in float_bits (infinite bandwidth, so the same schedule) send
    the same messages, each full-precision payload twice the bits at 64 as at 32 — except
    gradient coding's integer header (64 bits whatever float_bits)."""
    runs = {w: run_of(config_for(kind, extra, w, bandwidth=math.inf))[0] for w in (32, 64)}
    narrow, wide = runs[32].row, runs[64].row
    assert narrow["messages"] == wide["messages"] > 0
    assert narrow["interactions"] == wide["interactions"]
    headers = 64 * narrow["coded_messages"] if kind == "gradient_coding" else 0
    assert wide["bits"] - headers == 2 * (narrow["bits"] - headers)


def test_a_full_precision_model_message_is_float_bits_times_d():
    d = 37
    for w in (32, 64):
        assert make_quantizer("none", float_bits=w).message_bits(d) == w * d
        # The stochastic quantizer's scale is one float; the lattice header is a seed.
        assert make_quantizer("stochastic", bits=4, float_bits=w).message_bits(d) == w + 4 * d
        assert make_quantizer("lattice", bits=4, float_bits=w).message_bits(d) == 64 + 4 * d
    with pytest.raises(ValueError, match="network.float_bits"):
        make_quantizer("none", float_bits=16)
    assert Network().float_bits == 32 and Network(float_bits=64).float_bits == 64
    for bad in (16, True):
        with pytest.raises(ValueError, match="network.float_bits"):
            Network(float_bits=bad)


def test_float_bits_defaults_to_32_and_rejects_other_widths(tmp_path):
    assert make_config().network.float_bits == 32
    path = tmp_path / "run.yaml"
    path.write_text("algorithm: {kind: swarmsgd}\nstop: {time: 1.0}\n")
    for bad in ("16", "true", "'32'", "32.5"):
        with pytest.raises(ConfigError, match="network.float_bits"):
            load_config(path, [f"network.float_bits={bad}"])


def test_float_bits_applies_to_lattice_resends():
    ref = np.zeros(5)
    x = np.full(5, 10.0)  # far outside the decoding radius: a full-precision resend
    for w in (32, 64):
        q = make_quantizer("lattice", bits=2, epsilon=0.1, float_bits=w)
        sent = q.transmit(x, ref, np.random.default_rng(0))
        assert sent.failed and sent.bits == 64 + 2 * 5 + w * 5


def test_a_nonblocking_exchange_waits_for_request_and_reply_but_not_the_write():
    """Constant compute and H = 1: a non-blocking node's period is one step plus the
    request and the reply. Had it waited for the write too, it would do fewer exchanges."""
    w, n, until = 32, 8, 40.0
    config = make_config(
        **{
            "topology": {"kind": "ring", "n": n},
            "compute": {"kind": "constant", "mean": 1.0},
            "network": {"latency": 0.1, "bandwidth": 1000.0, "float_bits": w},
            "algorithm": {"kind": "swarmsgd", "nonblocking": True},
            "stop": {"time": until},
            "record": {"every": until},
        }
    )
    outcome, sim = simulate(prepare(config))
    d = sim.models.shape[1]
    request, model = 0.1 + w / 1000.0, 0.1 + w * d / 1000.0
    period = 1.0 + request + model
    assert math.floor(until / (period + model)) < math.floor(until / period)  # tells apart
    per_node = math.floor(until / period)
    last = outcome.rows[-1]
    assert last["interactions"] == n * per_node
    assert last["messages"] == 3 * n * per_node
    assert last["bits"] == n * per_node * (w + 2 * w * d)
    # The initiator is charged the request, the reply and the write.
    assert last["comm_time"] == pytest.approx(n * per_node * (request + 2 * model), rel=1e-12)
    # It waits for nobody's computation: no idle time at all.
    assert last["idle_time"] == 0.0
