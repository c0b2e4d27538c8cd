"""The simulator against a real run: the same configuration, simulated from what was measured.

The simulated run takes the real run's config with its measured step times as the compute
model — replayed (``compute: {kind: trace, mode: replay}``) or, with ``fitted``, the best
distribution ``gossipsim fit`` finds in them (nodes slowed on purpose become persistent
stragglers with their measured slowdown, the others' durations fitted alone) — and its
measured exchange time as the message time (latency; bandwidth infinite): a blocking
SwarmSGD exchange lasts one message time, a non-blocking one waits for a request and a reply
(two), and a D-PSGD round pays, as its sends' latency, the measured time its rounds took
beyond their slowest step (the mixing and the barrier that synchronises the processes).
Everything else the simulator does not model (the OS scheduler sharing the cores among the
processes, memory bandwidth, lock hand-over latency, D-PSGD's sends overlapping its step in
the simulator but not in the real implementation) shows up as the difference between the
curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gossipsim.experiment.config import validate_data
from gossipsim.experiment.runner import prepare, simulate
from gossipsim.system.fit import fit_trace
from gossipsim.system.traces import Trace, read_trace

if TYPE_CHECKING:
    from gossipsim.experiment.config import RunConfig
    from gossipsim.real.run import RealRun


@dataclass(frozen=True)
class Comparison:
    """Measured and predicted loss of the mean model on the real run's recording times."""

    time: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    target: float  # 90% of the way from the first measured loss to the last
    measured_time_to_target: float  # seconds (nan: not reached)
    predicted_time_to_target: float
    measured_steps: int
    predicted_steps: int

    @property
    def relative_errors(self) -> np.ndarray:
        """|predicted − measured| / measured at each recording time after the start."""
        return np.abs(self.predicted[1:] - self.measured[1:]) / np.abs(self.measured[1:])

    @property
    def mean_relative_error(self) -> float:
        return float(self.relative_errors.mean())

    @property
    def max_relative_error(self) -> float:
        return float(self.relative_errors.max())

    @property
    def time_to_target_error(self) -> float:
        """(predicted − measured) / measured time to the target loss."""
        return (
            self.predicted_time_to_target - self.measured_time_to_target
        ) / self.measured_time_to_target

    @property
    def steps_error(self) -> float:
        """(predicted − measured) / measured local steps over the run."""
        return (self.predicted_steps - self.measured_steps) / self.measured_steps

    def summary(self) -> dict[str, float]:
        return {
            "mean_relative_loss_error": self.mean_relative_error,
            "max_relative_loss_error": self.max_relative_error,
            "target_loss": self.target,
            "measured_time_to_target_s": self.measured_time_to_target,
            "predicted_time_to_target_s": self.predicted_time_to_target,
            "time_to_target_error": self.time_to_target_error,
            "measured_steps": float(self.measured_steps),
            "predicted_steps": float(self.predicted_steps),
            "steps_error": self.steps_error,
        }


def trace_compute_available() -> bool:
    """Whether this gossipsim's configs take ``compute: {kind: trace}`` (measured times)."""
    from gossipsim.experiment import config as config_module

    return hasattr(config_module, "TraceCompute")


def fitted_compute(real: RealRun, trace_path: str | Path) -> dict[str, Any]:
    """The ``compute:`` section ``gossipsim fit`` gives for the trace; when nodes were slowed
    on purpose, their slowdown as persistent stragglers instead of lognormal heterogeneity
    (the fit's random factors cannot say *which* node is slow, the real run can)."""
    trace = read_trace(trace_path)
    section = fit_trace(trace).compute_section()
    if real.slow:
        slowed = np.isin(trace.node, list(real.slow))
        if slowed.all():
            return section
        ratio = float(trace.duration[slowed].mean() / trace.duration[~slowed].mean())
        rest = ~slowed
        fast = fit_trace(Trace(trace.path, trace.node[rest], trace.duration[rest], None))
        fast_section = fast.compute_section()
        fast_section.pop("heterogeneity", None)
        n = real.config.topology.n
        fast_section["stragglers"] = {
            "fraction": len(real.slow) / n,
            "slowdown": max(ratio, 1.0),
            "mode": "persistent",
        }
        return fast_section
    return section


def simulated_config(real: RealRun, trace_path: str | Path, fitted: bool = False) -> RunConfig:
    """The config that simulates ``real`` from its measured times (see the module notes)."""
    data: dict[str, Any] = real.config.resolved()
    if fitted:
        data["compute"] = fitted_compute(real, trace_path)
    elif trace_compute_available():
        data["compute"] = {"kind": "trace", "path": str(trace_path), "mode": "replay"}
    else:  # pragma: no cover - a gossipsim without the trace kind
        raise ValueError("this gossipsim has no compute kind 'trace': compare with fitted=True")
    algorithm = data["algorithm"]
    waits = 2.0 if algorithm["kind"] == "swarmsgd" and algorithm.get("nonblocking") else 1.0
    # D-PSGD's round also pays the processes' synchronisation at the barrier, which the
    # simulator has no model of: charged as the message latency, measured on the real run.
    message = real.round_overhead if algorithm["kind"] == "dpsgd" else real.exchange_time
    data["network"] = {
        "latency": message / waits,
        "bandwidth": math.inf,
        "float_bits": data["network"]["float_bits"],
    }
    data["record"] = {"every": float(real.config.record.every)}
    return validate_data(data)


def compare(real: RealRun, trace_path: str | Path, fitted: bool = False) -> Comparison:
    """Simulate ``real``'s configuration from its trace (written at ``trace_path``)."""
    config = simulated_config(real, trace_path, fitted)
    outcome, _ = simulate(prepare(config))
    sim_time = np.array([row["time"] for row in outcome.rows])
    sim_loss = np.array([row["loss"] for row in outcome.rows])
    sim_steps = int(outcome.rows[-1]["local_steps"])
    times = real.curve_time
    inside = times <= sim_time[-1] + 1e-9
    times, measured = times[inside], real.curve_loss[inside]
    predicted = np.interp(times, sim_time, sim_loss)
    target = float(measured[0] - 0.9 * (measured[0] - measured[-1]))
    return Comparison(
        time=times,
        measured=measured,
        predicted=predicted,
        target=target,
        measured_time_to_target=_time_to(target, times, measured),
        predicted_time_to_target=_time_to(target, sim_time, sim_loss),
        measured_steps=int(real.step_node.size),
        predicted_steps=sim_steps,
    )


def _time_to(target: float, times: np.ndarray, losses: np.ndarray) -> float:
    """First time the curve reaches ``target`` (linear between recordings; nan: never)."""
    below = np.flatnonzero(losses <= target)
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0:
        return float(times[0])
    t0, t1, l0, l1 = times[k - 1], times[k], losses[k - 1], losses[k]
    return float(t0 + (t1 - t0) * (l0 - target) / (l0 - l1)) if l0 != l1 else float(t1)
