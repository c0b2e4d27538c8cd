"""The SimPy side of a run: environment, recorder on the sim-time grid, counters, stop rules.

Algorithms plug in by starting node processes on a :class:`Simulation`; the simulation
knows nothing about which algorithm runs. Timing never depends on model values: processes
decide *when* things happen from their own timing streams and submit operations to the
executor, which applies the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import simpy

from gossipsim.engine.batched import BatchedExecutor
from gossipsim.engine.executor import LocalSteps, Operation
from gossipsim.engine.lean import LeanEnvironment, LeanEvent
from gossipsim.engine.problem import Problem
from gossipsim.system.metrics import consensus_distance, mean_model
from gossipsim.system.rng import Streams
from gossipsim.system.timing import ComputeModel, Network
from gossipsim.system.topology import neighbour_table

if TYPE_CHECKING:
    from gossipsim.experiment.config import RunConfig

METRIC_COLUMNS = (
    "time",
    "interactions",
    "loss",
    "accuracy",
    "consensus",
    "bits",
    "epochs",
    "local_steps",
    "messages",
    "decode_failures",
    "idle_time",
    "comm_time",
)


@dataclass
class RunOutcome:
    """What a finished simulation reports: metric rows, how it ended, and summary facts."""

    rows: list[dict[str, float]]
    status: str  # complete | diverged
    stop_reason: str  # time | interactions | epochs | target_loss | diverged
    end_time: float
    extra: dict[str, Any] = field(default_factory=dict)


class Simulation:
    """One run's event loop. Algorithms call :meth:`submit`, :meth:`count_*` and read timing."""

    def __init__(
        self,
        config: RunConfig,
        problem: Problem,
        graph: nx.Graph,
        models: np.ndarray,
        compute: ComputeModel,
        network: Network,
        executor: BatchedExecutor,
        streams: Streams,
        progress: Callable[[dict[str, float]], None] | None = None,
        env: simpy.Environment | LeanEnvironment | None = None,
    ) -> None:
        self.config = config
        self.problem = problem
        self.graph = graph
        self.neighbours = neighbour_table(graph)
        self.n = models.shape[0]
        self.models = models
        self.compute = compute
        self.network = network
        self.executor = executor
        self.streams = streams
        # SimPy runs the readable generator processes (the reference); the lean environment
        # runs the same processes, and the fast paths of algorithms that have one, in the
        # same event order.
        self.env = simpy.Environment() if env is None else env
        self.interactions = 0
        self.iterations = 0
        self.local_steps = 0
        self.samples = 0
        self.idle_time = 0.0
        # Seconds nodes spend communicating, summed over nodes (algorithms add to it).
        self.comm_time = 0.0
        # Idle time of a synchronous round still under way, as of a given time (set by the
        # round while it runs): recorded rows count the waiting that has already passed.
        self.idle_in_progress: Callable[[float], float] | None = None
        self._batches: np.ndarray | None = None  # each node's minibatch size
        self.rows: list[dict[str, float]] = []
        self._stop_event = self.env.event()
        self._stop_reason: str | None = None
        self._progress = progress
        # Algorithms may add columns (e.g. gradient coding's decode error) to every row.
        self.metric_sources: list[Callable[[], dict[str, float]]] = []
        # Faults (gossipsim.system.faults.FaultModel) when the config has any; None otherwise.
        self.faults: Any = None

    # -- used by algorithms ----------------------------------------------------------------

    def submit(self, op: Operation) -> None:
        self.executor.submit(op)

    def count_local_steps(self, node: int, steps: int) -> None:
        """Account for ``steps`` minibatch steps of ``node`` (drives the epochs stop rule)."""
        self.local_steps += steps
        batch = min(self.problem.batch_size, self.problem.shard_y[node].shape[0])
        self.samples += steps * batch
        stop = self.config.stop
        if stop.epochs is not None and self.epochs >= stop.epochs:
            self.request_stop("epochs")

    def submit_local_steps(self, nodes: list[int], steps: list[int]) -> None:
        """``LocalSteps(nodes[r], steps[r])`` for distinct nodes, submitted and counted at
        once (a synchronous round): the same as submitting and counting them one by one."""
        log_many = getattr(self.executor, "log_local_many", None)
        if log_many is not None:
            log_many(nodes, steps)
        else:
            for node, count in zip(nodes, steps, strict=True):
                self.executor.submit(LocalSteps(node, count))
        self.count_local_steps_many(nodes, steps)

    def count_local_steps_many(self, nodes: list[int], steps: list[int]) -> None:
        """:meth:`count_local_steps` for distinct nodes at once (one stop-rule check)."""
        if self._batches is None:
            sizes = np.array([y.shape[0] for y in self.problem.shard_y], dtype=np.int64)
            self._batches = np.minimum(self.problem.batch_size, sizes)
        total = int(sum(steps))
        self.local_steps += total
        self.samples += int(np.dot(self._batches[nodes], np.asarray(steps, dtype=np.int64)))
        stop = self.config.stop
        if stop.epochs is not None and self.epochs >= stop.epochs:
            self.request_stop("epochs")

    def count_interaction(self) -> None:
        """One completed pairwise average (drives the interactions stop rule)."""
        self.count_interactions(1)

    def count_interactions(self, count: int) -> None:
        """``count`` completed exchanges at once (a synchronous round's): one stop check."""
        self.interactions += count
        stop = self.config.stop
        if stop.interactions is not None and self.interactions >= stop.interactions:
            self.request_stop("interactions")

    def count_iteration(self) -> None:
        """One completed synchronous round / PS iteration (drives the iterations stop rule)."""
        self.iterations += 1
        stop = self.config.stop
        if stop.iterations is not None and self.iterations >= stop.iterations:
            self.request_stop("iterations")

    def request_stop(self, reason: str) -> None:
        if not self._stop_event.triggered:
            self._stop_reason = reason
            self._stop_event.succeed()

    def stop_requested(self, reason: str) -> None:
        """A compiled loop requested the stop and queued the stop event itself."""
        assert isinstance(self._stop_event, LeanEvent)  # compiled loops run on the lean loop
        if not self._stop_event.triggered:
            self._stop_reason = reason
            self._stop_event.triggered = True

    @property
    def lean(self) -> bool:
        """Whether the run uses the lean event loop (algorithms may then take a fast path)."""
        return isinstance(self.env, LeanEnvironment)

    @property
    def epochs(self) -> float:
        return self.samples / self.problem.n_train

    # -- recording -------------------------------------------------------------------------

    def record(self) -> dict[str, float]:
        self.executor.flush()
        mu = mean_model(self.models)
        counters = self.executor.counters
        row = {
            "time": float(self.env.now),
            "interactions": self.interactions,
            "loss": self.problem.training_loss(mu),
            "accuracy": self.problem.test_accuracy(mu),
            "consensus": consensus_distance(self.models),
            "bits": counters.bits,
            "epochs": self.epochs,
            "local_steps": self.local_steps,
            "messages": counters.messages,
            "decode_failures": counters.decode_failures,
            "idle_time": self.idle_time
            + (0.0 if self.idle_in_progress is None else self.idle_in_progress(self.env.now)),
            "comm_time": self.comm_time,
        }
        for source in self.metric_sources:
            row.update(source())
        self.rows.append(row)
        if self._progress is not None:
            self._progress(row)
        return row

    def _recorder(self):
        every = self.config.record.every
        target = self.config.stop.target_loss
        step = 0
        while True:
            row = self.record()
            if not (math.isfinite(row["loss"]) and math.isfinite(row["consensus"])):
                self.request_stop("diverged")
            elif target is not None and row["loss"] <= target:
                self.request_stop("target_loss")
            step += 1
            # Multiply rather than accumulate so the grid does not drift.
            yield self.env.timeout(step * every - self.env.now)

    def _timer(self, horizon: float):
        yield self.env.timeout(horizon)
        self.request_stop("time")

    # -- run -------------------------------------------------------------------------------

    def run(self, start_processes: Callable[[Simulation], None]) -> RunOutcome:
        """Start the algorithm's processes and the recorder; run until a stop rule fires."""
        start_processes(self)
        self.env.process(self._recorder())
        if self.config.stop.time is not None:
            self.env.process(self._timer(self.config.stop.time))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # The stop event is the environment's own (a type checker cannot pair them up).
            self.env.run(until=self._stop_event)  # type: ignore[arg-type]
            if self.rows[-1]["time"] < self.env.now:
                last = self.record()
                if not (math.isfinite(last["loss"]) and math.isfinite(last["consensus"])):
                    self._stop_reason = "diverged"
        reason = self._stop_reason or "time"
        return RunOutcome(
            rows=self.rows,
            status="diverged" if reason == "diverged" else "complete",
            stop_reason=reason,
            end_time=float(self.env.now),
        )
