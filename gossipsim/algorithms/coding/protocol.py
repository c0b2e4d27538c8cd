"""Gradient coding on the engine: a parameter server (PS) and ``n`` workers training a model.

``algorithm.kind: gradient_coding`` with ``scheme``:

* ``uncoded`` — chunk ``i`` on worker ``i`` (needs ``chunks = workers``); the PS waits for all;
* ``ignore_stragglers`` — same data, the PS waits for the fastest ``n − s`` (``s = load − 1``)
  and rescales: ĝ is the mean gradient over the samples it heard from;
* ``fr`` / ``cr`` — the original protocols with ``load`` chunks per worker on the
  fractional / cyclic assignment (``chunks = workers``): Tandon et al.'s codes for
  ``parts = 1``, the communication-efficient code of :mod:`.encoding` for ``parts > 1``;
* ``original`` — the communication-efficient original code on any ``assignment``;
* ``partial`` — the partial-straggler protocol of 2405.19509 (:mod:`.partial`,
  :mod:`.schedule`) on the ``assignment`` (cyclic, fractional, graph or matrix) and the
  ``ordering`` chosen. ``ordering``/``report_every`` only concern this scheme;
  ``recovery``/``deadline`` concern it and the original protocols (which, at the deadline,
  decode by least squares from the workers finished by then).

``parts`` (ℓ) splits every gradient into ℓ blocks: every coded vector has ``⌈d/ℓ⌉``
entries, and exact recovery needs every chunk processed ℓ times (docs/gradient_coding.md).

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
``network``: with ``w = network.float_bits`` (32 or 64), the model broadcast carries
``w·d`` bits per worker, a coded vector ``w·⌈d/ℓ⌉`` bits plus a 64-bit header (sender and
iteration), a progress report one ``w``-bit word (the worker's count), the signal the state
vector (one word per worker, ``w·n`` bits). One PS process computes each
iteration's event list from these draws (:mod:`.schedule`), applies the PS step at the
decode time, and a bookkeeping process stamps the counters at the exact event times.

**Metrics** (added to every row): ``iteration``, ``decode_error`` (‖ĝ − g‖/‖g‖ of the last
iteration, g the true full gradient at the PS model), ``decode_error_mean`` and
``decode_error_median`` over iterations so far (near the optimum ‖g‖ is small and the
relative error of an approximate decode large, so the median is the robust summary),
``iteration_time`` (mean seconds per iteration so far), ``coded_messages``,
``report_messages``, ``chunks_computed``, ``chunks_wasted`` (computed and thrown away),
``condition_number`` (the worst met so far in the run: of ``B_F`` for the original codes,
of the ``R[:, S_j]`` for the protocol, 1 for the uncoded baselines) and
``snapshot_time`` (mean seconds from the model broadcast to the encode-and-transmit
signal, protocol only). ``bits`` and ``messages`` count every message, ``interactions``
counts coded vectors, ``local_steps`` counts chunk gradients and ``epochs`` samples
processed over the training-set size; ``idle_time`` is worker time spent not computing
within iterations.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import simpy

from gossipsim.algorithms.coding import kernels as coding_kernels
from gossipsim.algorithms.coding.assignment import (
    Assignment,
    graph_assignment,
    identity_assignment,
    make_assignment,
    matrix_assignment,
    read_matrix,
)
from gossipsim.algorithms.coding.config import GradientCodingConfig, GraphAssignmentConfig
from gossipsim.algorithms.coding.encoding import cr_encoding, fr_encoding, mds_encoding
from gossipsim.algorithms.coding.ordering import make_orders, qmax
from gossipsim.algorithms.coding.partial import (
    Encoder,
    decoding_matrix,
    join_blocks,
    positions,
    processed,
    split_blocks,
)
from gossipsim.algorithms.coding.schedule import (
    BROADCAST,
    CODED,
    KIND_CODES,
    KIND_NAMES,
    REPORT,
    SIGNAL,
    MessageTimes,
    Schedule,
    baseline_schedule,
    coded_bits,
    partial_schedule,
)
from gossipsim.engine.schedule import VALUE, is_constant, lr_at, schedule_params, uses_epochs
from gossipsim.engine.simulation import Simulation
from gossipsim.system.rng import Streams
from gossipsim.system.timing import ComputeModel
from gossipsim.system.topology import build_graph

if TYPE_CHECKING:
    from gossipsim.experiment.config import RunConfig

SCHEMES = ("uncoded", "ignore_stragglers", "fr", "cr", "original", "partial")
CODED_SCHEMES = ("fr", "cr", "original")  # the original protocols: fixed codes
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
DEFAULT_LOAD = 3
DRAW_BLOCK = 64  # iterations of compute durations drawn at once per worker


def chunk_count(config: GradientCodingConfig) -> int:
    return config.chunks if config.chunks is not None else config.workers


def _graph_assignment(config: GradientCodingConfig, rng: np.random.Generator) -> Assignment:
    spec = config.assignment
    assert isinstance(spec, GraphAssignmentConfig)
    topo = spec.topology
    n = config.workers
    if config.chunks is not None and config.chunks != n:
        raise ValueError(
            f"algorithm.chunks: a graph assignment has one chunk per worker ({n}), got "
            f"chunks={config.chunks}"
        )
    size = topo.n if "n" in topo.model_fields_set else n
    try:
        graph = build_graph(
            topo.kind,
            size,
            rng,
            degree=getattr(topo, "degree", 4),
            p=getattr(topo, "p", 0.1),
            k=getattr(topo, "k", 4),
            rows=getattr(topo, "rows", None),
            path=getattr(topo, "path", None),
        )
    except ValueError as exc:
        message = str(exc).replace("topology.", "algorithm.assignment.topology.")
        if not re.match(r"^algorithm\.assignment\.topology[a-z_.]*: ", message):
            message = f"algorithm.assignment.topology: {message}"
        raise ValueError(message) from None
    return graph_assignment(graph, n)


def plan_assignment(
    config: GradientCodingConfig, rng: np.random.Generator | None = None
) -> Assignment:
    """The assignment a scheme uses; ValueError naming the field when the sizes do not fit.

    ``rng`` (stream ``coding/assignment``) draws random graphs for graph assignments.
    """
    n, m = config.workers, chunk_count(config)
    load = config.load if config.load is not None else DEFAULT_LOAD
    scheme = config.scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"algorithm.scheme: unknown scheme {scheme!r}; valid: {', '.join(SCHEMES)}"
        )
    spec = config.assignment
    if scheme not in ("partial", "original") and m != n:
        raise ValueError(
            f"algorithm.chunks: scheme {scheme} needs chunks equal to workers "
            f"(Tandon et al.'s setting), got chunks={m}, workers={n}"
        )
    if load > n and isinstance(spec, str):
        raise ValueError(f"algorithm.load: load ({load}) must not exceed workers ({n})")
    if scheme in ("uncoded", "ignore_stragglers"):
        if config.parts != 1:
            raise ValueError(
                f"algorithm.parts: scheme {scheme} sends whole chunk gradients; parts must be "
                f"1, got {config.parts}"
            )
        return identity_assignment(n)
    if scheme == "fr":
        assignment = make_assignment("fractional", n, m, load)
    elif scheme == "cr":
        assignment = make_assignment("cyclic", n, m, load)
    elif isinstance(spec, str):
        assignment = make_assignment(spec, n, m, load)
    else:
        if isinstance(spec, GraphAssignmentConfig):
            assignment = _graph_assignment(config, rng or np.random.default_rng(0))
        else:
            support = read_matrix(spec.path)
            assignment = matrix_assignment(support, n, spec.path)
            if config.chunks is not None and config.chunks != assignment.chunks:
                raise ValueError(
                    f"algorithm.chunks: the matrix {spec.path} has {assignment.chunks} "
                    f"columns (chunks), got chunks={config.chunks}"
                )
        most = int(assignment.loads.max())
        if config.load is not None and config.load != most:
            raise ValueError(
                f"algorithm.load: the {assignment.kind} assignment sets the load "
                f"({most} chunks per worker); leave load out or set it to {most}"
            )
        load = most
    if config.parts > load:
        raise ValueError(
            f"algorithm.parts: parts ({config.parts}) must not exceed load ({load}): exact "
            "recovery needs every chunk processed parts times"
        )
    least = int(assignment.replication.min())
    if config.parts > least:
        raise ValueError(
            f"algorithm.parts: parts ({config.parts}) exceeds the least replication of a "
            f"chunk ({least}) in the {assignment.kind} assignment: some chunk could never "
            "have parts processed copies"
        )
    return assignment


def validate(
    config: GradientCodingConfig,
    n_train: int | None = None,
    rng: np.random.Generator | None = None,
) -> None:
    """Check a gradient-coding config beyond its field types (raises ValueError)."""
    assignment = plan_assignment(config, rng)
    m = assignment.chunks
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


class _Queued:
    """One iteration's events waiting for :meth:`GradientCoding.stamp` (lazy bookkeeping)."""

    __slots__ = ("chunks", "done", "last", "messages", "sums", "t0", "times", "totals")

    def __init__(
        self, t0: float, chunks: np.ndarray, messages: np.ndarray, last: float, totals: np.ndarray
    ) -> None:
        self.t0 = t0
        self.chunks = chunks  # Schedule.chunk_array
        self.messages = messages  # Schedule.message_array
        self.last = last  # the time of the last event
        self.totals = totals  # what all the events add to the counters
        # Made when a stamp falls within the iteration: the events' times in order, the
        # cumulative sums after each (a first row of zeros), how many are stamped.
        self.times: np.ndarray = np.zeros(0)
        self.sums: np.ndarray | None = None
        self.done = 0


class GradientCoding:
    """State of one gradient-coding run: data chunks, code, PS model, counters."""

    def __init__(self, sim: Simulation, config: GradientCodingConfig) -> None:
        self.sim = sim
        self.config = config
        problem = sim.problem
        self.n = config.workers
        self.parts = config.parts
        assignment_rng = sim.streams.generator("coding/assignment")
        validate(config, problem.n_train, assignment_rng)
        if sim.models.shape[0] != self.n:
            raise ValueError(
                f"algorithm.workers: the model matrix has {sim.models.shape[0]} rows for "
                f"{self.n} workers (build the run with gossipsim.experiment.runner)"
            )
        self.assignment = plan_assignment(config, sim.streams.generator("coding/assignment"))
        self.m = self.assignment.chunks
        self.loads = self.assignment.loads.astype(np.int64)
        # Slots drawn per worker and iteration: the most loaded worker's chunks; the uncoded
        # baselines draw ``load`` slots too (and use one) so every scheme sees the same draws.
        self.load = int(self.loads.max())
        if config.scheme in ("uncoded", "ignore_stragglers"):
            self.load = config.load if config.load is not None else DEFAULT_LOAD
        self.stragglers = self.load - 1  # ignore_stragglers waits for n − s
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
        self._kernel_head = coding_kernels.kernel_head(self.objective)
        if self._kernel_head is not None:
            self._rows = np.ascontiguousarray(X[order], dtype=np.float64)
            self._targets = np.ascontiguousarray(
                self.objective.head.targets(y[order]), dtype=np.float64
            )
            self._starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self._size_groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for size in np.unique(self.sizes.astype(np.int64)):
            members = np.flatnonzero(self.sizes == size)
            self._size_groups[int(size)] = (
                members,
                np.stack([self.chunk_X[j] for j in members]),
                np.stack([self.chunk_y[j] for j in members]),
            )

        # The code. Original protocols: Tandon et al.'s FR / CR for ℓ = 1, else the
        # communication-efficient code (encoding.mds_encoding) on the assignment.
        self.B: np.ndarray | None = None
        if config.scheme in CODED_SCHEMES:
            if config.scheme == "fr" and self.parts == 1:
                self.B = fr_encoding(self.assignment)
            elif config.scheme == "cr" and self.parts == 1:
                self.B = cr_encoding(self.assignment, sim.streams.generator("coding"))
            else:
                self.B = mds_encoding(self.assignment, self.parts, sim.streams.generator("coding"))
        # The protocol: the decoding matrix R (ℓ × N), fixed for the run.
        self.encoder = Encoder(
            decoding_matrix(
                self.parts,
                self.n,
                sim.streams.generator("coding/decoder"),
                self.assignment.support,
            )
        )
        self.orders: list[tuple[int, ...]] = list(self.assignment.natural)
        if config.scheme == "partial":
            self.orders = make_orders(
                config.ordering,
                self.assignment,
                sim.compute,
                sim.streams.generator,
                parts=self.parts,
            )
        self.pos = positions(self.assignment, self.orders)
        self._slot_chunk = np.zeros((self.n, max(self.load, 1)), dtype=np.int64)
        for i, worker_order in enumerate(self.orders):
            self._slot_chunk[i, : len(worker_order)] = worker_order
        # Samples a chunk gradient reads, by worker and slot.
        self._slot_samples = self.sizes[self._slot_chunk]
        if config.batch != "full":
            self._slot_samples = np.minimum(self._slot_samples, float(config.batch))
        #: Qmax of the orders processed (natural for the original codes), for meta.json.
        self.qmax = qmax(self.pos, self.loads, self.parts)

        # Timing.
        d = self.objective.dim
        net = sim.network
        word = net.float_bits
        model_bits = word * d
        vector_bits = coded_bits(d, self.parts, word)
        if net.uniform:
            times: list[float | np.ndarray] = [
                net.message_time(bits) for bits in (model_bits, word, word * self.n, vector_bits)
            ]
        else:
            # Each worker's messages go over its own link to the PS (node n of the star).
            latency, bandwidth = net.link_values([(self.n, i) for i in range(self.n)])
            times = [
                latency + float(bits) / bandwidth
                for bits in (model_bits, word, word * self.n, vector_bits)
            ]
        self.net = MessageTimes(
            model=times[0],
            report=times[1],
            signal=times[2],
            coded=times[3],
            model_bits=model_bits,
            report_bits=word,
            signal_bits=word * self.n,
            coded_bits=vector_bits,
        )
        self.timing = sim.streams.generators("timing", self.n)
        self._message_times = np.zeros(len(KIND_CODES))
        if not self.net.per_worker:  # else the message rows carry their seconds
            for kind, seconds in (
                (BROADCAST, self.net.model),
                (REPORT, self.net.report),
                (SIGNAL, self.net.signal),
                (CODED, self.net.coded),
            ):
                self._message_times[KIND_CODES[kind]] = seconds
        self._buffer = np.zeros((self.n, 0))
        self._buffer_used = 0
        compute = sim.compute
        self.transient = (
            compute.mode == "transient" and compute.fraction > 0 and compute.slowdown > 1
        )
        self.sampling = sim.streams.generators("sampling", self.n)

        # The PS model (row 0 of the initial models) mirrored into every row.
        self.w = sim.models[0].copy()
        sim.models[:] = self.w
        # The PS's step: its rate (a schedule's clock counts PS iterations, or the epochs
        # of data they read) and its heavy-ball buffer.
        self.lr_schedule = schedule_params(config.lr)
        self.plain_lr = is_constant(self.lr_schedule) and config.momentum == 0.0
        self.steps_taken = 0
        self.per_unit = 1.0
        if uses_epochs(config.lr) and config.batch != "full":
            self.per_unit = float(np.minimum(self.sizes, config.batch).sum() / self.sizes.sum())
        self.velocity = np.zeros_like(self.w)

        # Bookkeeping. Counters are stamped at the events' exact times: by a process that
        # wakes at every event when a stop rule watches them (epochs, interactions), else
        # lazily, whenever they are read (the recorder flushes the executor first).
        stop = sim.config.stop
        self.lazy = stop.epochs is None and stop.interactions is None
        self._queued: list[_Queued] = []
        if self.lazy:
            executor = sim.executor
            flush = executor.flush

            def stamped_flush() -> None:
                self.stamp(float(sim.env.now))
                flush()

            executor.flush = stamped_flush  # type: ignore[method-assign]

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

    def iteration_numerics(self, schedule: Schedule) -> tuple[np.ndarray, float, float]:
        """All of an iteration's numerics at the PS model but the step (:meth:`step`): the
        chunk gradients, the PS's estimate ĝ (encoding, coded vectors, decode) and the
        decode's condition number, and the relative decode error against the true gradient.
        """
        G = self.chunk_gradients(self.w)
        g_hat, condition = self.estimate(self.w, G, schedule)
        return g_hat, condition, self.decode_error(G, g_hat)

    def decode_error(self, G: np.ndarray, g_hat: np.ndarray) -> float:
        """``‖ĝ − g‖/‖g‖`` (``‖ĝ − g‖`` when ``g = 0``) with ``g`` the true full gradient at
        the PS model, from the chunk gradients ``G`` (no L2 term) and the chunk weights."""
        truth = G.T @ self.weights + (self.l2 * self.w if self.l2 else 0.0)
        norm = float(np.linalg.norm(truth))
        error = float(np.linalg.norm(g_hat - truth))
        return error / norm if norm > 0 else error

    def chunk_gradients(self, w: np.ndarray) -> np.ndarray:
        """``(m, d)`` gradients ``∇f_j(w)`` of each chunk's mean data loss (no L2 term)."""
        G = np.empty((self.m, w.size))
        if self._kernel_head is not None:  # linear objectives: one compiled pass
            coding_kernels.chunk_gradients(
                w, self._rows, self._targets, self._starts, self._kernel_head, G
            )
            return G
        for members, Xb, yb in self._size_groups.values():
            W = np.tile(w, (members.size, 1))  # contiguous: faster batched products
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

    def _worker_gradients(self, w: np.ndarray, worker: int, chunks: np.ndarray) -> np.ndarray:
        """``(len(chunks), d)`` minibatch chunk gradients of one worker, in its own order."""
        wanted = set(chunks.tolist())
        rows = {
            int(c): self._minibatch_gradient(w, worker, int(c))
            for c in self.orders[worker]
            if c in wanted
        }
        return np.stack([rows[int(c)] for c in chunks])

    def coded_vectors(
        self, w: np.ndarray, G: np.ndarray, E: np.ndarray, senders: np.ndarray
    ) -> np.ndarray:
        """``f_i = Σ_j Σ_k E[i, j, k]·(N_j/N)·g_j^(k)`` for each sender (``E`` rows follow
        ``senders``; ``E`` is ``(|senders|, m, ℓ)``): one vector of ``⌈d/ℓ⌉`` per sender."""
        weighted = E * self.weights[None, :, None]
        if self.config.batch == "full":
            if self.parts == 1:
                return weighted[:, :, 0] @ G
            blocks = split_blocks(G, self.parts)  # (m, ℓ, b)
            return sum(weighted[:, :, k] @ blocks[:, k, :] for k in range(self.parts))
        width = -(-w.size // self.parts)
        F = np.zeros((len(senders), width))
        for row, worker in enumerate(senders):
            used = np.flatnonzero(np.any(weighted[row] != 0.0, axis=1))
            if used.size == 0:
                continue
            mine = split_blocks(self._worker_gradients(w, int(worker), used), self.parts)
            F[row] = np.einsum("jk,jkb->b", weighted[row, used], mine)
        return F

    def estimate(
        self, w: np.ndarray, G: np.ndarray, schedule: Schedule
    ) -> tuple[np.ndarray, float]:
        """The PS's gradient ĝ (data part from the vectors, + λw) and the decode's condition."""
        scheme = self.config.scheme
        senders = schedule.senders
        if scheme == "partial":
            assert schedule.state is not None
            encoding = self.encoder.encode(processed(self.pos, schedule.state))
            condition = encoding.condition
            E = encoding.E[senders]
            decoder = self.encoder.R[:, senders]  # (ℓ, |senders|)
        elif scheme in CODED_SCHEMES:
            assert self.B is not None and schedule.decoding is not None
            code = self.B[:, :, None] if self.B.ndim == 2 else self.B
            senders = schedule.decoding.rows
            E = code[senders]
            decoder = schedule.decoding.a.reshape(self.parts, senders.size)
            condition = schedule.decoding.condition
        else:
            E = np.eye(self.m)[senders][:, :, None]
            heard = float(self.weights[senders].sum())
            scale = 1.0 / heard if scheme == "ignore_stragglers" and heard > 0 else 1.0
            decoder = np.full((1, senders.size), scale)
            condition = 1.0
        if senders.size == 0:
            data = np.zeros_like(w)
        else:
            blocks = decoder @ self.coded_vectors(w, G, E, senders)  # (ℓ, b)
            data = join_blocks(blocks, w.size)
        return (data + self.l2 * w if self.l2 else data), condition

    # -- timing --------------------------------------------------------------------------

    def draw_durations(
        self,
        start: float | np.ndarray,
        compute: ComputeModel | None = None,
        rngs: list[np.random.Generator] | None = None,
        reached: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(n, load)`` slot durations for an iteration whose model arrives at ``start``.

        Every slot is drawn unless ``reached`` says which (the others are NaN).
        """
        compute = compute or self.sim.compute
        rngs = rngs or self.timing
        if reached is None and not self.transient and compute is self.sim.compute:
            return self._buffered_durations(rngs)
        D = np.full((self.n, self.load), np.nan)
        for i in range(self.n):
            now = float(start[i]) if isinstance(start, np.ndarray) else start
            for slot in range(self.load):
                if reached is not None and not reached[i, slot]:
                    break
                D[i, slot] = compute.duration(i, 1, now, rngs[i])
                now += D[i, slot]
        return D

    def _buffered_durations(self, rngs: list[np.random.Generator]) -> np.ndarray:
        """The next ``(n, load)`` durations, drawn ``DRAW_BLOCK`` iterations at a time per
        worker: numpy draws a vector element by element, so these are the values one draw
        per slot gives (only these draws use the ``timing`` streams)."""
        if self._buffer_used >= self._buffer.shape[1]:
            width = DRAW_BLOCK * self.load
            compute = self.sim.compute
            self._buffer = np.stack([compute.step_times(i, width, rngs[i]) for i in range(self.n)])
            self._buffer_used = 0
        used = self._buffer_used
        self._buffer_used = used + self.load
        return self._buffer[:, used : used + self.load]

    def plan_iteration(self, start: float | np.ndarray) -> Schedule:
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

    def crash_stragglers(self, D: np.ndarray, start: float | np.ndarray) -> np.ndarray:
        """A worker that is down, or crashes for good during the iteration, is a full
        straggler from then on: the chunks it would finish later never finish."""
        faults = self.sim.faults
        if faults is None:
            return D
        D = D.copy()
        for worker in range(self.n):
            begin = float(start[worker]) if isinstance(start, np.ndarray) else start
            stop = faults.stops_at(worker, begin)
            finish = begin + np.cumsum(D[worker])
            D[worker, finish > stop] = np.inf
        return D

    def schedule(self, D: np.ndarray) -> Schedule:
        config = self.config
        deadline = config.deadline if config.recovery == "approximate" else None
        if config.scheme == "partial":
            return partial_schedule(
                D, self.pos, self.net, config.report_every, deadline, self.parts, self.loads
            )
        if config.scheme in CODED_SCHEMES:
            return baseline_schedule(
                config.scheme, D, self.net, self.B, loads=self.loads, deadline=deadline
            )
        return baseline_schedule(config.scheme, D, self.net, stragglers=self.stragglers)

    # -- processes -----------------------------------------------------------------------

    def parameter_server(self) -> Generator[simpy.Event, object, None]:
        sim = self.sim
        env = sim.env
        while True:
            t0 = env.now
            schedule = self.plan_iteration(t0 + self.net.model)
            if self.lazy:  # (before the numerics, while the schedule's arrays are in cache)
                self.queue_events(t0, schedule)
            else:
                env.process(self.bookkeeping(t0, schedule))
            g_hat, condition, error = self.iteration_numerics(schedule)
            yield env.timeout(schedule.decode_time)
            self.w = self.step(g_hat)
            sim.models[:] = self.w
            self.condition = (
                condition if math.isnan(self.condition) else max(self.condition, condition)
            )
            self.decode_errors.append(error)
            self.iteration_times.append(schedule.decode_time)
            if not math.isnan(schedule.snapshot_time):
                self.snapshot_times.append(schedule.snapshot_time)
            sim.idle_time += float(np.sum(schedule.decode_time - schedule.busy))
            sim.count_iteration()
            # Let a stop requested by this step take effect before the next broadcast.
            yield env.timeout(0)

    def step(self, g_hat: np.ndarray) -> np.ndarray:
        """The PS model after one step with the decoded gradient ``g_hat``.

        ``w − lr·ĝ`` with the schedule's rate at this iteration (a plain number: exactly
        as always); with momentum μ through the buffer ``v = μ·v + ĝ`` (``w − lr·v``, or
        ``w − lr·(ĝ + μ·v)`` with Nesterov).
        """
        config = self.config
        if self.plain_lr:
            return self.w - self.lr_schedule[VALUE] * g_hat
        lr = lr_at(self.lr_schedule, self.steps_taken * self.per_unit)
        self.steps_taken += 1
        if config.momentum > 0.0:
            self.velocity = config.momentum * self.velocity + g_hat
            g_hat = g_hat + config.momentum * self.velocity if config.nesterov else self.velocity
        return self.w - lr * g_hat

    def _chunk_samples(self, worker: int, slot: int) -> int:
        size = int(self.sizes[self.orders[worker][slot]])
        batch = self.config.batch
        return min(int(batch), size) if batch != "full" else size

    def queue_events(self, t0: float, schedule: Schedule) -> None:
        """Lazy bookkeeping: keep the iteration's events for :meth:`stamp`, which adds them to
        the counters when these are read: their totals and the time of the last event (most
        iterations are over by then: all their events count at once) and, for an iteration
        under way, cumulative sums over the events in time order, made on demand."""
        chunks = np.ascontiguousarray(schedule.chunk_array)
        messages = np.ascontiguousarray(schedule.message_array)
        last, totals = coding_kernels.event_totals(
            t0, chunks, messages, self._slot_samples, self._message_times
        )
        self._queued.append(_Queued(t0, chunks, messages, last, totals))

    def stamp(self, now: float) -> None:
        """Add every queued event at or before ``now`` to the counters (nothing at time 0:
        the first row is the state before the run, as on the event-by-event path)."""
        if now <= 0.0:
            return
        alive = []
        for entry in self._queued:
            if entry.sums is None:
                if entry.last <= now:  # the whole iteration is over
                    self._count(entry.totals)
                    continue
                # Columns: chunks, wasted, samples, messages, bits, comm time, reports, coded.
                entry.times, entry.sums = coding_kernels.event_sums(
                    entry.t0, entry.chunks, entry.messages, self._slot_samples, self._message_times
                )
            upto = int(np.searchsorted(entry.times, now, side="right"))
            if upto > entry.done:
                self._count(entry.sums[upto] - entry.sums[entry.done])
                entry.done = upto
            if entry.done < entry.times.size:
                alive.append(entry)
        self._queued = alive

    def _count(self, added: np.ndarray) -> None:
        """Add a stretch of queued events (their sums, :meth:`queue_events`) to the counters."""
        sim = self.sim
        counters = sim.executor.counters
        chunks, wasted, samples, messages, bits, comm, reports, coded = added
        self.chunks_computed += int(chunks)
        self.wasted_chunks += int(wasted)
        sim.local_steps += int(chunks)
        sim.samples += int(samples)
        counters.messages += int(messages)
        counters.bits += int(bits)
        sim.comm_time += float(comm)
        self.report_messages += int(reports)
        self.coded_messages += int(coded)
        sim.interactions += int(coded)

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
        if schedule.message_array.shape[1] > 4:  # per-link times: each row's own seconds
            events += [
                (t, 1, (KIND_NAMES[int(code)], int(count), int(bits), seconds))
                for t, code, count, bits, seconds in schedule.message_rows.tolist()
            ]
        else:
            events += [
                (t, 1, (kind, count, bits, count * message_time[kind]))
                for t, kind, count, bits in schedule.messages
            ]
        events.sort(key=lambda e: (e[0], e[1]))
        for t, tag, payload in events:
            if t0 + t > env.now:
                yield env.timeout(t0 + t - env.now)
            if tag == 0:
                worker, slot, wasted = payload
                self.chunks_computed += 1
                self.wasted_chunks += int(wasted)
                sim.local_steps += 1
                sim.samples += self._chunk_samples(worker, slot)
                if stop.epochs is not None and sim.epochs >= stop.epochs:
                    sim.request_stop("epochs")
            else:
                kind, count, bits, seconds = payload
                counters.messages += count
                counters.bits += count * bits
                sim.comm_time += seconds
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


# -- the registry's hooks: what a gradient-coding run brings of its own ---------------------


def machines(config: RunConfig) -> int:
    """The workers of a run (``algorithm.workers``; the topology section does not apply)."""
    assert isinstance(config.algorithm, GradientCodingConfig)
    return config.algorithm.workers


def graph(config: RunConfig) -> nx.Graph:
    """The PS star of ``algorithm.workers`` workers."""
    return ps_star(machines(config))


def check(config: RunConfig, n_train: int, streams: Streams) -> None:
    """Sizes, assignment and chunks, checked before the run (raises ValueError)."""
    assert isinstance(config.algorithm, GradientCodingConfig)
    validate(config.algorithm, n_train, streams.generator("coding/assignment"))


def summary(sim: Simulation) -> dict[str, Any]:
    """For ``meta.json``: Qmax of the chunk orders (None when exact recovery is impossible)."""
    run: GradientCoding = sim.gradient_coding  # type: ignore[attr-defined]
    return {"qmax": run.qmax if np.isfinite(run.qmax) else None}


def progress_line(first: dict[str, Any], last: dict[str, Any]) -> str:
    """The CLI's one-line account of a finished run: iterations, not interactions."""
    accuracy = "" if last["accuracy"] != last["accuracy"] else f", accuracy {last['accuracy']:.4f}"
    return (
        f"{last['iteration']} iterations, {last['iteration_time']:.4g} s per iteration, "
        f"{last['epochs']:.3g} epochs, loss {first['loss']:.4g} → {last['loss']:.4g}"
        f"{accuracy}, decode error {last['decode_error_median']:.3g} (median relative)"
    )


def start(sim: Simulation) -> None:
    """Start the PS process (and register the gradient-coding metric columns)."""
    config = sim.config.algorithm
    assert isinstance(config, GradientCodingConfig)
    run = GradientCoding(sim, config)
    sim.gradient_coding = run  # type: ignore[attr-defined]  # for tests and notebooks
    sim.metric_sources.append(run.metrics)
    sim.env.process(run.parameter_server())
