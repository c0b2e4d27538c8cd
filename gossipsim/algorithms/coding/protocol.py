"""Gradient coding on the engine: a parameter server (PS) and ``n`` workers training a model.

``algorithm.kind: gradient_coding`` with ``scheme``:

* ``uncoded`` — chunk ``i`` on worker ``i`` (needs ``chunks = workers``); the PS waits for all;
* ``ignore_stragglers`` — same data, the PS waits for the fastest ``n − s`` (``s = load − 1``)
  and rescales: ĝ is the mean gradient over the samples it heard from;
* ``fr`` / ``cr`` — Tandon et al. gradient coding with ``load`` chunks per worker
  (fractional / cyclic assignment, ``chunks = workers``; see :mod:`.encoding`);
* ``partial`` — the partial-straggler protocol of 2405.19509 (:mod:`.partial`,
  :mod:`.schedule`) on the ``assignment`` (cyclic or fractional) and ``ordering`` chosen.
  ``recovery``/``deadline``/``ordering``/``report_every`` only concern this scheme.

**Data and gradients.** The training set is shuffled once (stream ``chunks``) and split into
``m`` near-equal chunks (``numpy.array_split``); ``objective.partition`` does not apply.
With ``N_j`` samples in chunk ``j`` and ``f_j`` its mean loss, the weighted chunk gradient is
``g_j = (N_j/N)·∇f_j`` so that ``Σ_j g_j`` is the gradient of the mean data loss; the L2
term ``λ·w`` is added once, by the PS. ``batch: full`` uses all of a chunk; an integer uses
that many samples drawn with replacement from the worker's ``sampling`` stream. The PS
steps ``w ← w − lr·ĝ``. The initial PS model is row 0 of ``initial_models`` (every worker
row when ``init.identical``). The rows of ``sim.models`` always hold the PS model, so the
``loss`` column is the full training objective at the PS model and ``consensus`` is 0.

**Timing.** Each iteration, every worker draws ``load`` chunk durations from its own
``timing`` stream with ``compute.duration(worker, 1, now, rng)``, one per slot in slot
order, starting when the model reaches it — whatever the scheme, even those that use
fewer slots (uncoded and ignore_stragglers use slot 0 only). Two runs that differ only in
``algorithm.scheme`` therefore see identical per-slot durations, iteration by iteration,
whenever the compute model has no *transient* stragglers (transient slow periods are
keyed to simulated time, which advances differently per scheme). Message times come from
``network``: the model broadcast and the coded vectors carry ``64·d`` bits, a progress
report 32 bits, the signal the state vector (``32·n`` bits). One PS process computes each
iteration's event list from these draws (:mod:`.schedule`), applies the PS step at the
decode time, and a bookkeeping process stamps the counters at the exact event times.

**Metrics** (added to every row): ``iteration``, ``decode_error`` (‖ĝ − g‖/‖g‖ of the last
iteration, g the true full gradient at the PS model), ``decode_error_mean`` and
``decode_error_median`` over iterations so far (near the optimum ‖g‖ is small and the
relative error of an approximate decode large, so the median is the robust summary),
``iteration_time`` (mean seconds per iteration so far), ``coded_messages``,
``report_messages``, ``chunks_computed``, ``chunks_wasted`` (computed and thrown away),
``condition_number`` (of the last decode: ``B_F`` for FR/CR, the constraint matrix of the
protocol, 1 for the uncoded baselines) and ``snapshot_time`` (mean seconds from the model
broadcast to the encode-and-transmit signal, protocol only). ``bits`` and ``messages``
count every message, ``interactions`` counts coded vectors, ``local_steps`` counts chunk
gradients and ``epochs`` samples processed over the training-set size; ``idle_time`` is
worker time spent not computing within iterations.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Generator

import networkx as nx
import numpy as np
import simpy

from gossipsim.algorithms.coding.assignment import (
    Assignment,
    identity_assignment,
    make_assignment,
)
from gossipsim.algorithms.coding.encoding import cr_encoding, fr_encoding
from gossipsim.algorithms.coding.ordering import make_orders
from gossipsim.algorithms.coding.partial import encoding_coefficients, positions, processed
from gossipsim.algorithms.coding.schedule import (
    BROADCAST,
    CODED,
    REPORT,
    SIGNAL,
    MessageTimes,
    Schedule,
    baseline_schedule,
    partial_schedule,
)
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.config import GradientCodingConfig
from gossipsim.system.timing import ComputeModel

SCHEMES = ("uncoded", "ignore_stragglers", "fr", "cr", "partial")
METRICS = (
    "iteration",
    "decode_error",
    "decode_error_mean",
    "decode_error_median",
    "iteration_time",
    "coded_messages",
    "report_messages",
    "chunks_computed",
    "chunks_wasted",
    "condition_number",
    "snapshot_time",
)


def chunk_count(config: GradientCodingConfig) -> int:
    return config.chunks if config.chunks is not None else config.workers


def plan_assignment(config: GradientCodingConfig) -> Assignment:
    """The assignment a scheme uses; ValueError naming the field when the sizes do not fit."""
    n, m, load = config.workers, chunk_count(config), config.load
    scheme = config.scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"algorithm.scheme: unknown scheme {scheme!r}; valid: {', '.join(SCHEMES)}"
        )
    if scheme != "partial" and m != n:
        raise ValueError(
            f"algorithm.chunks: scheme {scheme} needs chunks equal to workers "
            f"(Tandon et al.'s setting), got chunks={m}, workers={n}"
        )
    if load > n:
        raise ValueError(f"algorithm.load: load ({load}) must not exceed workers ({n})")
    if scheme in ("uncoded", "ignore_stragglers"):
        return identity_assignment(n)
    if scheme == "fr":
        return make_assignment("fractional", n, m, load)
    if scheme == "cr":
        return make_assignment("cyclic", n, m, load)
    return make_assignment(config.assignment, n, m, load)


def validate(config: GradientCodingConfig, n_train: int | None = None) -> None:
    """Check a gradient-coding config beyond its field types (raises ValueError)."""
    plan_assignment(config)
    m = chunk_count(config)
    if n_train is not None and n_train < m:
        raise ValueError(
            f"algorithm.chunks: {m} chunks but only {n_train} training samples; every chunk "
            "needs at least one sample"
        )


def ps_star(workers: int) -> nx.Graph:
    """The PS star: workers ``0..n−1`` each linked to the PS, node ``n``."""
    graph = nx.Graph()
    graph.add_nodes_from(range(workers + 1))
    graph.add_edges_from((workers, i) for i in range(workers))
    return graph


class GradientCoding:
    """State of one gradient-coding run: data chunks, code, PS model, counters."""

    def __init__(self, sim: Simulation, config: GradientCodingConfig) -> None:
        self.sim = sim
        self.config = config
        problem = sim.problem
        self.n = config.workers
        self.m = chunk_count(config)
        self.load = config.load
        validate(config, problem.n_train)
        if sim.models.shape[0] != self.n:
            raise ValueError(
                f"algorithm.workers: the model matrix has {sim.models.shape[0]} rows for "
                f"{self.n} workers (build the run with gossipsim.experiment.runner)"
            )
        self.assignment = plan_assignment(config)
        self.objective = problem.objective
        self.l2 = float(problem.objective.l2)

        # Data: one shuffle, m near-equal chunks, grouped by size for batched gradients.
        X, y = problem.dataset.X_train, problem.dataset.y_train
        order = sim.streams.generator("chunks").permutation(X.shape[0])
        self.chunk_index = np.array_split(order, self.m)
        self.chunk_X = [np.ascontiguousarray(X[idx]) for idx in self.chunk_index]
        self.chunk_y = [np.ascontiguousarray(y[idx]) for idx in self.chunk_index]
        self.sizes = np.array([idx.size for idx in self.chunk_index], dtype=np.float64)
        self.weights = self.sizes / X.shape[0]  # N_j / N
        self._size_groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for size in np.unique(self.sizes.astype(np.int64)):
            members = np.flatnonzero(self.sizes == size)
            self._size_groups[int(size)] = (
                members,
                np.stack([self.chunk_X[j] for j in members]),
                np.stack([self.chunk_y[j] for j in members]),
            )

        # The code.
        self.B: np.ndarray | None = None
        if config.scheme == "fr":
            self.B = fr_encoding(self.assignment)
        elif config.scheme == "cr":
            self.B = cr_encoding(self.assignment, sim.streams.generator("coding"))
        self.orders = list(self.assignment.natural)
        if config.scheme == "partial":
            self.orders = make_orders(
                config.ordering, self.assignment, sim.compute, sim.streams.generator
            )
        self.pos = positions(self.assignment, self.orders)

        # Timing.
        d = self.objective.dim
        net = sim.network
        vector_bits = 64 * d
        self.net = MessageTimes(
            model=net.message_time(vector_bits),
            report=net.message_time(32),
            signal=net.message_time(32 * self.n),
            coded=net.message_time(vector_bits),
            model_bits=vector_bits,
            report_bits=32,
            signal_bits=32 * self.n,
            coded_bits=vector_bits,
        )
        self.timing = sim.streams.generators("timing", self.n)
        compute = sim.compute
        self.transient = (
            compute.mode == "transient" and compute.fraction > 0 and compute.slowdown > 1
        )
        self.sampling = sim.streams.generators("sampling", self.n)

        # The PS model (row 0 of the initial models) mirrored into every row.
        self.w = sim.models[0].copy()
        sim.models[:] = self.w

        # Metrics.
        self.decode_errors: list[float] = []
        self.iteration_times: list[float] = []
        self.snapshot_times: list[float] = []
        self.condition = math.nan
        self.coded_messages = 0
        self.report_messages = 0
        self.chunks_computed = 0
        self.wasted_chunks = 0

    # -- numerics ------------------------------------------------------------------------

    def chunk_gradients(self, w: np.ndarray) -> np.ndarray:
        """``(m, d)`` gradients ``∇f_j(w)`` of each chunk's mean data loss (no L2 term)."""
        G = np.empty((self.m, w.size))
        for members, Xb, yb in self._size_groups.values():
            W = np.broadcast_to(w, (members.size, w.size))
            G[members] = self.objective.grad_many(W, Xb, yb)
        if self.l2:
            G -= self.l2 * w
        return G

    def _minibatch_gradient(self, w: np.ndarray, worker: int, chunk: int) -> np.ndarray:
        size = self.chunk_index[chunk].size
        batch = min(int(self.config.batch), size)
        idx = self.sampling[worker].integers(0, size, size=batch)
        g = self.objective.grad(w, self.chunk_X[chunk][idx], self.chunk_y[chunk][idx])
        return g - self.l2 * w if self.l2 else g

    def coded_vectors(self, w: np.ndarray, G: np.ndarray, E: np.ndarray, senders) -> np.ndarray:
        """``v_i = Σ_j E_ij g_j`` for each sender (``E`` rows follow ``senders``)."""
        weighted = E * self.weights
        if self.config.batch == "full":
            return weighted @ G
        V = np.zeros((len(senders), w.size))
        for row, worker in enumerate(senders):
            for chunk in self.orders[worker]:  # the worker's own order of draws
                if weighted[row, chunk] != 0.0:
                    V[row] += weighted[row, chunk] * self._minibatch_gradient(w, worker, chunk)
        return V

    def estimate(
        self, w: np.ndarray, G: np.ndarray, schedule: Schedule
    ) -> tuple[np.ndarray, float]:
        """The PS's gradient ĝ (data part from the vectors, + λw) and the decode's condition."""
        scheme = self.config.scheme
        senders = schedule.senders
        if scheme == "partial":
            assert schedule.state is not None
            coefficients = encoding_coefficients(processed(self.pos, schedule.state))
            condition = coefficients.condition
            E = coefficients.beta[senders]
            decoder = np.ones(senders.size)
        elif scheme in ("fr", "cr"):
            assert self.B is not None and schedule.decoding is not None
            E = self.B[schedule.decoding.rows]
            decoder = schedule.decoding.a
            condition = schedule.decoding.condition
        else:
            E = np.eye(self.m)[senders]
            heard = float(self.weights[senders].sum())
            decoder = np.full(senders.size, 1.0 / heard if scheme == "ignore_stragglers" else 1.0)
            condition = 1.0
        if senders.size == 0:
            data = np.zeros_like(w)
        else:
            data = decoder @ self.coded_vectors(w, G, E, senders)
        return (data + self.l2 * w if self.l2 else data), condition

    # -- timing --------------------------------------------------------------------------

    def draw_durations(
        self,
        start: float,
        compute: ComputeModel | None = None,
        rngs: list[np.random.Generator] | None = None,
        reached: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(n, load)`` slot durations for an iteration whose model arrives at ``start``.

        Every slot is drawn unless ``reached`` says which (the others are NaN).
        """
        compute = compute or self.sim.compute
        rngs = rngs or self.timing
        D = np.full((self.n, self.load), np.nan)
        for i in range(self.n):
            now = start
            for slot in range(self.load):
                if reached is not None and not reached[i, slot]:
                    break
                D[i, slot] = compute.duration(i, 1, now, rngs[i])
                now += D[i, slot]
        return D

    def plan_iteration(self, start: float) -> Schedule:
        """Draw the iteration's slot durations and compute its schedule.

        Without transient stragglers every worker draws all ``load`` slots (the fixed pattern
        that gives every scheme the same draws). With transient stragglers a draw advances
        the worker's on/off process to the slot's start, so slots the worker never starts
        must not be drawn: the schedule is found on copies of the timing state, then only
        the slots started before the workers stop are drawn for real (same values).
        """
        compute = self.sim.compute
        if not self.transient:
            return self.schedule(self.crash_stragglers(self.draw_durations(start), start))
        probe = self.draw_durations(
            start, copy.deepcopy(compute), [copy.deepcopy(rng) for rng in self.timing]
        )
        schedule = self.schedule(probe)
        reached = schedule.reached(probe, self.net.model)  # schedule times: from t0
        D = self.draw_durations(start, reached=reached)
        if not np.array_equal(D[reached], probe[reached]):
            raise RuntimeError("transient straggler draws differ between probe and run")
        return schedule

    def crash_stragglers(self, D: np.ndarray, start: float) -> np.ndarray:
        """A worker that is down, or crashes for good during the iteration, is a full
        straggler from then on: the chunks it would finish later never finish."""
        faults = self.sim.faults
        if faults is None:
            return D
        D = D.copy()
        for worker in range(self.n):
            stop = faults.stops_at(worker, start)
            finish = start + np.cumsum(D[worker])
            D[worker, finish > stop] = np.inf
        return D

    def schedule(self, D: np.ndarray) -> Schedule:
        config = self.config
        if config.scheme == "partial":
            deadline = config.deadline if config.recovery == "approximate" else None
            return partial_schedule(D, self.pos, self.net, config.report_every, deadline)
        return baseline_schedule(config.scheme, D, self.net, self.B, self.load - 1)

    # -- processes -----------------------------------------------------------------------

    def parameter_server(self) -> Generator[simpy.Event, object, None]:
        sim = self.sim
        env = sim.env
        while True:
            t0 = env.now
            schedule = self.plan_iteration(t0 + self.net.model)
            G = self.chunk_gradients(self.w)
            truth = G.T @ self.weights + (self.l2 * self.w if self.l2 else 0.0)
            g_hat, condition = self.estimate(self.w, G, schedule)
            env.process(self.bookkeeping(t0, schedule))
            yield env.timeout(schedule.decode_time)
            self.w = self.w - self.config.lr * g_hat
            sim.models[:] = self.w
            self.condition = condition
            norm = float(np.linalg.norm(truth))
            error = float(np.linalg.norm(g_hat - truth))
            self.decode_errors.append(error / norm if norm > 0 else error)
            self.iteration_times.append(schedule.decode_time)
            if not math.isnan(schedule.snapshot_time):
                self.snapshot_times.append(schedule.snapshot_time)
            sim.idle_time += float(np.sum(schedule.decode_time - schedule.busy))
            sim.count_iteration()
            # Let a stop requested by this step take effect before the next broadcast.
            yield env.timeout(0)

    def bookkeeping(self, t0: float, schedule: Schedule) -> Generator[simpy.Event, object, None]:
        """Stamp chunk completions and messages on the counters at their event times."""
        sim = self.sim
        env = sim.env
        counters = sim.executor.counters
        stop = sim.config.stop
        message_time = {
            BROADCAST: self.net.model,
            REPORT: self.net.report,
            SIGNAL: self.net.signal,
            CODED: self.net.coded,
        }
        events: list[tuple[float, int, tuple]] = [
            (t, 0, (worker, slot, wasted)) for t, worker, slot, wasted in schedule.chunk_events
        ]
        events += [(t, 1, (kind, count, bits)) for t, kind, count, bits in schedule.messages]
        events.sort(key=lambda e: (e[0], e[1]))
        for t, tag, payload in events:
            if t0 + t > env.now:
                yield env.timeout(t0 + t - env.now)
            if tag == 0:
                worker, slot, wasted = payload
                self.chunks_computed += 1
                self.wasted_chunks += int(wasted)
                sim.local_steps += 1
                size = int(self.sizes[self.orders[worker][slot]])
                batch = self.config.batch
                sim.samples += min(int(batch), size) if batch != "full" else size
                if stop.epochs is not None and sim.epochs >= stop.epochs:
                    sim.request_stop("epochs")
            else:
                kind, count, bits = payload
                counters.messages += count
                counters.bits += count * bits
                sim.comm_time += count * message_time[kind]
                if kind == REPORT:
                    self.report_messages += count
                elif kind == CODED:
                    self.coded_messages += count
                    for _ in range(count):
                        sim.count_interaction()

    def metrics(self) -> dict[str, float]:
        errors = self.decode_errors
        return {
            "iteration": self.sim.iterations,
            "decode_error": errors[-1] if errors else math.nan,
            "decode_error_mean": float(np.mean(errors)) if errors else math.nan,
            "decode_error_median": float(np.median(errors)) if errors else math.nan,
            "iteration_time": float(np.mean(self.iteration_times))
            if self.iteration_times
            else math.nan,
            "coded_messages": self.coded_messages,
            "report_messages": self.report_messages,
            "chunks_computed": self.chunks_computed,
            "chunks_wasted": self.wasted_chunks,
            "condition_number": self.condition,
            "snapshot_time": float(np.mean(self.snapshot_times))
            if self.snapshot_times
            else math.nan,
        }


def start(sim: Simulation) -> None:
    """Start the PS process (and register the gradient-coding metric columns)."""
    config = sim.config.algorithm
    assert isinstance(config, GradientCodingConfig)
    run = GradientCoding(sim, config)
    sim.gradient_coding = run  # type: ignore[attr-defined]  # for tests and notebooks
    sim.metric_sources.append(run.metrics)
    sim.env.process(run.parameter_server())
