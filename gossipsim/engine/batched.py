"""Batched executor: operations are logged, then applied in waves of node-disjoint operations.

Each logged operation gets a *level*: one more than the highest level of any earlier
operation on one of its nodes (global operations such as a D-PSGD mixing round are
barriers). Operations of one level touch disjoint nodes, and every node's operations have
increasing levels, so applying the levels in order, each as a few vectorized kernels over
the ``(n, d)`` model matrix, gives the sequential result: every random draw comes from the
stream of the node it belongs to, in that node's own order. Minibatch indices are drawn
from ``sampling/node i`` in blocks (a block of draws equals the same draws one at a time).

The log is applied on :meth:`BatchedExecutor.flush` (the recorder flushes before every
row) and whenever it grows past ``flush_every`` operations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gossipsim.engine.executor import (
    AllReduceStep,
    ApplyGradient,
    BufferExchange,
    ExchangeCounters,
    GlobalAverage,
    GradientSnapshot,
    GroupAverage,
    LazyGenerators,
    LocalSteps,
    Mix,
    MixGradient,
    Operation,
    PairAverage,
    PushReceive,
    PushSend,
    PushSumStep,
)
from gossipsim.engine.problem import Problem
from gossipsim.engine.schedule import VALUE, Optimizer, lr_at, lr_many, schedule_params
from gossipsim.system.quantize import Quantizer
from gossipsim.system.rng import Streams

# Operation codes in the log (the order inside one level does not matter).
LOCAL, PAIR, BUFFER, SNAPSHOT, APPLY, PUSH_STEP, PUSH_SEND, PUSH_RECEIVE, BARRIER = range(9)
_KINDS = 16  # > number of codes: level * _KINDS + code sorts by level, then code


def logged_operation(code: int, a: int, b: int, c: int = 0) -> Operation:
    """A log entry ``(code, a, b, c)`` as the operation the sequential executor applies.

    ``a`` is the node (or first node); ``b`` the steps, the partner, or the message id of a
    push-sum send or receive; ``c`` the destination of a push-sum send.
    """
    if code == LOCAL:
        return LocalSteps(a, b)
    if code == PAIR:
        return PairAverage(a, b)
    if code == BUFFER:
        return BufferExchange(a, b)
    if code == SNAPSHOT:
        return GradientSnapshot(a)
    if code == APPLY:
        return ApplyGradient(a)
    if code == PUSH_STEP:
        return PushSumStep(a)
    if code == PUSH_SEND:
        return PushSend(a, c, b)
    if code == PUSH_RECEIVE:
        return PushReceive(b)
    raise ValueError(f"unknown operation code {code}")


class MinibatchSampler:
    """Minibatch row indices of many nodes at once, from each node's ``sampling`` stream.

    Node ``i`` draws ``integers(0, len(shard_i), size=batch_i)`` per step, exactly as the
    sequential executor does; here ``block`` steps are drawn in one call and handed out in
    order, which yields the same indices.
    """

    def __init__(
        self, problem: Problem, generators: list[np.random.Generator], block: int | None = None
    ) -> None:
        self.generators = generators
        self.sizes = np.array([y.shape[0] for y in problem.shard_y], dtype=np.int64)
        self.batch = np.minimum(problem.batch_size, self.sizes)
        self.offsets = problem.offsets
        n = len(generators)
        widest = int(self.batch.max()) if n else 1
        if block is None:
            # About 128 MiB of buffered indices at most, and between 4 and 64 steps per node.
            block = int(np.clip((1 << 24) // max(1, n * widest), 4, 64))
        self.block = block
        self.buffer = np.zeros((n, block * widest), dtype=np.int64)
        self.cursor = np.zeros(n, dtype=np.int64)
        self.capacity = np.zeros(n, dtype=np.int64)  # empty: refilled on first use
        self.uniform_batch = bool(n) and bool(np.all(self.batch == self.batch[0]))
        self._columns = {int(b): np.arange(b) for b in np.unique(self.batch)}

    def refill(self, node: int) -> None:
        """Replace ``node``'s buffered indices by its next ``block`` steps of draws.

        Called when fewer than one batch is left; as every step takes exactly one batch and a
        block holds whole batches, no buffered index is ever dropped.
        """
        b = int(self.batch[node])
        count = self.block * b
        self.buffer[node, :count] = self.generators[node].integers(
            0, int(self.sizes[node]), size=count
        )
        self.cursor[node] = 0
        self.capacity[node] = count

    def ensure(self, nodes: np.ndarray) -> None:
        """Refill the buffer of every node in ``nodes`` that holds less than one batch."""
        short = self.cursor[nodes] + self.batch[nodes] > self.capacity[nodes]
        if short.any():
            for node in nodes[short].tolist():
                self.refill(node)

    def rows(self, nodes: np.ndarray) -> np.ndarray:
        """``(k, b)`` rows of ``problem.features`` for one step of each node (same batch b)."""
        b = int(self.batch[nodes[0]])
        self.ensure(nodes)
        cursor = self.cursor[nodes]
        flat = nodes * self.buffer.shape[1] + cursor
        idx = self.buffer.take(flat[:, None] + self._columns[b])
        self.cursor[nodes] = cursor + b
        idx += self.offsets[nodes][:, None]
        return idx


class BatchedExecutor:
    """Logs operations and applies them in vectorized waves (same numbers as one at a time).

    Every operation has exactly one definition here: its wave form over the ``(n, d)`` model
    matrix. :class:`SequentialExecutor` applies each operation as a wave of one.
    """

    accepts_logs = True  # a compiled loop may hand whole logs to :meth:`apply_log`

    def __init__(
        self,
        models: np.ndarray,
        problem: Problem,
        lr: float,
        quantizer: Quantizer,
        streams: Streams,
        buffers: bool = False,
        flush_every: int = 1 << 18,
        optimizer: Optimizer | None = None,
    ) -> None:
        self.models = models
        self.problem = problem
        self.quantizer = quantizer
        n = models.shape[0]
        # How a step moves a model (``lr`` is the plain rate when no optimizer is given).
        given = optimizer
        optimizer = given if given is not None else Optimizer(lr)
        self.optimizer = optimizer
        self.plain = optimizer.plain
        self.schedule = schedule_params(optimizer.lr, optimizer.scale)
        self.lr = lr if given is None else float(self.schedule[VALUE])  # the plain rate
        self.momentum = float(optimizer.momentum)
        self.nesterov = bool(optimizer.nesterov)
        self.average_momentum = optimizer.averaged and self.momentum > 0.0
        # One heavy-ball buffer per node (none without momentum: nothing to keep).
        self.velocity: np.ndarray | None = np.zeros_like(models) if self.momentum > 0.0 else None
        self._no_velocity = np.zeros((0, models.shape[1]))
        self._velocity_in_flight: dict[int, np.ndarray] = {}
        # The schedule's clock: local steps each node has applied, or synchronous rounds.
        self.steps = np.zeros(n, dtype=np.int64)
        self.rounds = np.zeros(n, dtype=np.int64)
        self.clock = self.rounds if optimizer.rounds else self.steps
        self.sampling = streams.generators("sampling", n)
        self.quantize_rng = LazyGenerators(streams, "quantize", n)
        self.counters = ExchangeCounters()
        # Non-blocking mode: what each node last published, and its buffer (which others write).
        self.buffer = models.copy() if buffers else None
        self.published = models.copy() if buffers else None
        # Push-sum (SGP): numerators x_i and weights w_i; ``models`` holds z_i = x_i / w_i.
        self.numerators: np.ndarray | None = None
        self.weights: np.ndarray | None = None
        self.in_flight: dict[int, tuple[int, np.ndarray, float]] = {}
        self.n = models.shape[0]
        self.sampler = MinibatchSampler(problem, self.sampling)
        # Clock units per step: 1, or the fraction of its shard a node's batch is (epochs).
        self.per_unit = np.ones(n)
        if optimizer.epochs:
            sizes = self.sampler.sizes.astype(np.float64)
            np.divide(self.sampler.batch, sizes, out=self.per_unit, where=sizes > 0)
        assert problem.features is not None and problem.targets is not None  # __post_init__
        self.features = problem.features
        self.targets = problem.targets
        self.flush_every = flush_every
        self.kept = np.zeros_like(models)  # AD-PSGD gradients computed, not yet applied
        self._message_dest: dict[int, int] = {}
        self._message_level: dict[int, int] = {}
        self._reset_log()
        # Callables that hand logs kept elsewhere (compiled fast paths) to ``apply_log``;
        # ``flush`` calls them first, so every operation logged so far is applied.
        self.external_logs: list[Callable[[], None]] = []
        self.waves = 0  # levels applied so far (for diagnostics and benchmarks)
        self.flushes = 0
        self._setup_kernels()

    def _setup_kernels(self) -> None:
        """Use the compiled kernels (:mod:`gossipsim.engine.kernels`) where they apply.

        Gradients go through them for the linear objectives when
        :data:`kernels.LINEAR_ENABLED` is set (``_linear`` then holds the kernels' data
        arguments, among them the targets in the dtype the head computes with, validated once
        here); anything else keeps the numpy path. A node with an empty shard keeps the numpy
        path too, so it fails as the sequential executor does. Full-precision pair averages
        always use :func:`kernels.pair_average` (the same arithmetic as numpy, bit for bit).
        """
        from gossipsim.engine import kernels  # numba: imported by batched runs only

        self._kernels = kernels
        objective = self.problem.objective
        head = kernels.linear_head(objective)
        self._linear: tuple | None = None
        sampler = self.sampler
        if kernels.LINEAR_ENABLED and head is not None and self.n and int(sampler.batch.min()) > 0:
            features = self.features
            if features.dtype == np.float64 and features.flags.c_contiguous:
                targets = np.ascontiguousarray(objective.head.targets(self.targets))
                m = int(objective.net.sizes[-1])
                # The trailing arguments shared by kernels.local_steps and kernels.gradients.
                self._linear = (
                    features, targets, sampler.buffer, sampler.cursor, sampler.capacity,
                    sampler.batch, sampler.offsets, objective.l2, head, m,
                )  # fmt: skip

    def _reset_log(self) -> None:
        # Cleared in place: fast paths hold on to these lists (see :meth:`log_lists`).
        if hasattr(self, "_kind"):
            for log in (self._kind, self._a, self._b, self._level):
                log.clear()
            self._last[:] = [0] * self.n
        else:
            self._kind: list[int] = []
            self._a: list[int] = []
            self._b: list[int] = []
            self._level: list[int] = []
            self._last: list[int] = [0] * self.n
        self._barriers: dict[int, Operation] = {}

    def log_lists(self) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        """The log itself, for fast paths that append to it directly.

        Returns ``(codes, first, second, levels, last_level)``: an operation is appended as
        its code, its node (or first node), its second value (steps, partner), and its
        level, which must be one more than the largest ``last_level`` of its nodes, which
        are then set to it. Whoever appends calls :meth:`flush` once ``len(codes)`` reaches
        :attr:`flush_every`.
        """
        return self._kind, self._a, self._b, self._level, self._last

    # -- logging ---------------------------------------------------------------------------

    def log_local(self, node: int, steps: int) -> None:
        """Log ``LocalSteps(node, steps)`` (the fast path's entry point)."""
        last = self._last
        level = last[node] + 1
        last[node] = level
        self._kind.append(LOCAL)
        self._a.append(node)
        self._b.append(steps)
        self._level.append(level)
        if len(self._kind) >= self.flush_every:
            self.flush()

    def log_local_many(self, nodes: list[int], steps: list[int]) -> None:
        """``LocalSteps(nodes[r], steps[r])`` for distinct nodes, as that many
        :meth:`submit` calls would (a synchronous round's steps in one call). Executors that
        apply or watch every operation (a subclass's own ``submit``) get them one by one."""
        if self.flush_every <= 1 or type(self).submit is not BatchedExecutor.submit:
            for node, count in zip(nodes, steps, strict=True):
                self.submit(LocalSteps(node, count))
            return
        last = self._last
        levels = [last[node] + 1 for node in nodes]
        for node, level in zip(nodes, levels, strict=True):
            last[node] = level
        self._kind.extend([LOCAL] * len(nodes))
        self._a.extend(nodes)
        self._b.extend(steps)
        self._level.extend(levels)
        if len(self._kind) >= self.flush_every:
            self.flush()

    def log_pair(self, code: int, i: int, j: int) -> None:
        """Log a two-node operation (``PAIR`` or ``BUFFER``) between ``i`` and ``j``."""
        last = self._last
        li = last[i]
        lj = last[j]
        level = (li if li > lj else lj) + 1
        last[i] = level
        last[j] = level
        self._kind.append(code)
        self._a.append(i)
        self._b.append(j)
        self._level.append(level)
        if len(self._kind) >= self.flush_every:
            self.flush()

    def _log_single(self, code: int, node: int, extra: int = 0, after: int = 0) -> int:
        last = self._last
        level = max(last[node], after) + 1
        last[node] = level
        self._kind.append(code)
        self._a.append(node)
        self._b.append(extra)
        self._level.append(level)
        return level

    def submit(self, op: Operation) -> None:
        kind = type(op)
        if kind is LocalSteps:
            assert isinstance(op, LocalSteps)
            self.log_local(op.node, op.steps)
            return
        if kind is PairAverage:
            assert isinstance(op, PairAverage)
            self.log_pair(PAIR, op.i, op.j)
            return
        if kind is BufferExchange:
            assert isinstance(op, BufferExchange)
            self.log_pair(BUFFER, op.i, op.j)
            return
        if kind is GradientSnapshot:
            assert isinstance(op, GradientSnapshot)
            self._log_single(SNAPSHOT, op.node)
        elif kind is ApplyGradient:
            assert isinstance(op, ApplyGradient)
            self._log_single(APPLY, op.node)
        elif kind is PushSumStep:
            assert isinstance(op, PushSumStep)
            self._log_single(PUSH_STEP, op.node)
        elif kind is PushSend:
            assert isinstance(op, PushSend)
            self._message_dest[op.message] = op.j
            self._message_level[op.message] = self._log_single(PUSH_SEND, op.i, op.message)
        elif kind is PushReceive:
            assert isinstance(op, PushReceive)
            # The destination is known from the send, logged or (if flushed) in flight.
            dest = self._message_dest.get(op.message)
            if dest is None:
                dest = self.in_flight[op.message][0]
            after = self._message_level.pop(op.message, 0)
            self._log_single(PUSH_RECEIVE, dest, op.message, after)
        elif kind in (Mix, MixGradient, AllReduceStep, GlobalAverage, GroupAverage):
            level = max(self._last) + 1
            self._barriers[len(self._kind)] = op
            self._kind.append(BARRIER)
            self._a.append(0)
            self._b.append(0)
            self._level.append(level)
            self._last[:] = [level] * self.n
        else:
            raise TypeError(f"unknown operation {op!r}")
        if len(self._kind) >= self.flush_every:
            self.flush()

    # -- applying the log ------------------------------------------------------------------

    def flush(self) -> None:
        """Apply every logged operation, level by level (external logs first)."""
        for drain in self.external_logs:
            drain()
        if not self._kind:
            return
        kind = np.array(self._kind, dtype=np.int64)
        a = np.array(self._a, dtype=np.int64)
        b = np.array(self._b, dtype=np.int64)
        level = np.array(self._level, dtype=np.int64)
        barriers = self._barriers
        # The send levels survive: a message sent now may be received after this flush.
        self._message_level.clear()
        self._reset_log()
        self.apply_log(kind, a, b, level, barriers)

    def apply_log(
        self,
        kind: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        level: np.ndarray,
        barriers: dict[int, Operation] | None = None,
    ) -> None:
        """Apply a log given as arrays (code, first, second, level), level by level.

        Compiled fast paths keep their log in arrays and hand it over here; ``barriers``
        maps log positions of ``BARRIER`` codes to their operations.
        """
        if len(kind) == 0:
            return
        key = level * _KINDS + kind
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        cuts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
        starts = np.concatenate(([0], cuts)).tolist()
        ends = np.concatenate((cuts, [len(order)])).tolist()
        codes = (sorted_key % _KINDS)[starts].tolist()
        self.flushes += 1
        self.waves += len(np.unique(sorted_key // _KINDS))
        for start, end, code in zip(starts, ends, codes, strict=True):
            idx = order[start:end]
            if code == LOCAL:
                self._wave_local(a[idx], b[idx])
            elif code == PAIR:
                self._wave_pair(a[idx], b[idx])
            elif code == BUFFER:
                self._wave_buffer(a[idx], b[idx])
            elif code == SNAPSHOT:
                nodes = a[idx]
                self.kept[nodes] = self._gradients(nodes, self.models[nodes])
            elif code == APPLY:
                nodes = a[idx]
                self._step(nodes, self.kept[nodes], self.models)
            elif code == PUSH_STEP:
                self._wave_push_step(a[idx])
            elif code == PUSH_SEND:
                self._wave_push_send(a[idx], b[idx])
            elif code == PUSH_RECEIVE:
                self._wave_push_receive(a[idx], b[idx])
            else:
                assert barriers is not None
                for position in idx.tolist():
                    self._barrier(barriers[position])

    # -- kernels ---------------------------------------------------------------------------

    def _gradients(self, nodes: np.ndarray, W: np.ndarray) -> np.ndarray:
        """One minibatch gradient per node at ``W[r]`` (each node draws its own batch)."""
        if self._linear is not None:
            return self._kernel_gradients(nodes, W)
        objective = self.problem.objective
        if self.sampler.uniform_batch:
            rows = self.sampler.rows(nodes)
            return objective.grad_many(
                W, self.features.take(rows, axis=0), self.targets.take(rows, axis=0)
            )
        G = np.empty_like(W)
        batch = self.sampler.batch[nodes]
        for size in np.unique(batch).tolist():
            mask = batch == size
            rows = self.sampler.rows(nodes[mask])
            G[mask] = objective.grad_many(
                W[mask], self.features.take(rows, axis=0), self.targets.take(rows, axis=0)
            )
        return G

    def _kernel_gradients(self, nodes: np.ndarray, W: np.ndarray) -> np.ndarray:
        """:meth:`_gradients` for the linear objectives, by :func:`kernels.gradients`."""
        assert self._linear is not None
        sampler = self.sampler
        nodes = np.ascontiguousarray(nodes, dtype=np.int64)
        W = np.ascontiguousarray(W, dtype=np.float64)
        G = np.empty_like(W)
        sampler.ensure(nodes)  # one compiled call, unless a buffer runs short after all
        kernels = self._kernels
        if len(nodes) >= kernels.PARALLEL_WAVE and np.unique(nodes).size == len(nodes):
            # Distinct nodes, each with a batch in its buffer now: on all cores.
            kernels.gradients_parallel(W, G, nodes, *self._linear)
            return G
        done, total = 0, len(nodes)
        while done < total:
            done = self._kernels.gradients(W, G, nodes, done, *self._linear)
            if done < total:
                sampler.refill(int(nodes[done]))
        return G

    def _wave_local(self, nodes: np.ndarray, steps: np.ndarray) -> None:
        if self._linear is not None:
            # Every step of every node in one compiled call (stopping only to refill a
            # node's minibatch indices); a node's steps run in order, at its current model.
            sampler = self.sampler
            nodes = np.ascontiguousarray(nodes, dtype=np.int64)
            left = np.array(steps, dtype=np.int64)  # counted down by the kernel
            # Nodes that need new indices for their first step get them now; the kernel
            # stops only for a node that runs short during its later steps.
            sampler.ensure(nodes)
            velocity = self.velocity if self.velocity is not None else self._no_velocity
            if len(nodes) >= self._kernels.PARALLEL_WAVE:
                # The nodes whose buffers hold all their steps take them on all cores; the
                # others (a refill due) below. The nodes are distinct: any order is exact.
                whole = (
                    sampler.cursor[nodes] + left * sampler.batch[nodes] <= sampler.capacity[nodes]
                )
                if np.count_nonzero(whole) >= self._kernels.PARALLEL_WAVE:
                    self._kernels.local_steps_parallel(
                        self.models, nodes[whole], left[whole], self.schedule, self.steps,
                        self.clock, self.per_unit, velocity, self.momentum, self.nesterov,
                        *self._linear,
                    )  # fmt: skip
                    nodes, left = nodes[~whole], left[~whole]
            done, total = 0, len(nodes)
            while done < total:
                done = self._kernels.local_steps(
                    self.models, nodes, left, done, self.schedule, self.steps, self.clock,
                    self.per_unit, velocity, self.momentum, self.nesterov, *self._linear,
                )  # fmt: skip
                if done < total:
                    sampler.refill(int(nodes[done]))
            return
        most = int(steps.max())
        for step in range(most):
            active = nodes if step == 0 or steps.min() > step else nodes[steps > step]
            self._step(active, self._gradients(active, self.models[active]), self.models)

    def _step(self, nodes: np.ndarray, G: np.ndarray, target: np.ndarray) -> None:
        """One SGD step of each of ``nodes`` with gradient ``G[r]``, on ``target``'s rows.

        ``target`` is the models (push-sum: the numerators). The rate is the schedule's at
        each node's clock; with momentum the step goes through the node's buffer, in the
        arithmetic of :func:`kernels.local_steps`. Counts one step per node.
        """
        if self.plain:
            target[nodes] -= self.lr * G
        else:
            t = self.clock[nodes] * self.per_unit[nodes]
            lr = lr_many(self.schedule, t)[:, None]
            if self.velocity is not None:
                v = self.momentum * self.velocity[nodes] + G
                self.velocity[nodes] = v
                G = G + self.momentum * v if self.nesterov else v
            target[nodes] -= lr * G
        self.steps[nodes] += 1

    def _transmit(self, X: np.ndarray, REF: np.ndarray, senders: np.ndarray) -> np.ndarray:
        """Send row r from ``senders[r]`` (its quantize stream) to a receiver holding REF[r]."""
        k, d = X.shape
        if self.quantizer.name == "none":
            self.counters.bits += k * self.quantizer.message_bits(d)
            self.counters.messages += k
            return X
        rngs = [self.quantize_rng[s] for s in senders.tolist()]
        values, bits, failed = self.quantizer.transmit_many(X, REF, rngs)
        self.counters.bits += int(bits.sum())
        self.counters.messages += k
        self.counters.decode_failures += int(failed.sum())
        return values

    def _wave_pair(self, I: np.ndarray, J: np.ndarray) -> None:
        if self.quantizer.name == "none":
            # Both directions count as transmissions; both ends get (x_i + x_j) / 2.
            k, d = len(I), self.models.shape[1]
            self.counters.bits += 2 * k * self.quantizer.message_bits(d)
            self.counters.messages += 2 * k
            self._kernels.pair_average(self.models, I, J)
            self._average_velocity(I, J)
            return
        self._average_velocity(I, J)
        xi = self.models[I]
        xj = self.models[J]
        received_by_j = self._transmit(xi, xj, I)
        received_by_i = self._transmit(xj, xi, J)
        self.models[I] = (xi + received_by_i) * 0.5
        self.models[J] = (xj + received_by_j) * 0.5

    def _wave_buffer(self, I: np.ndarray, J: np.ndarray) -> None:
        """Non-blocking exchanges: i's read request (one header word, no model), j's reply
        (its buffer, quantized against i's model) and i's write of the average into j's
        buffer (quantized against that buffer) — three messages each. The whole exchange is
        applied here, at once (when the reply reaches i)."""
        assert self.buffer is not None and self.published is not None
        self.counters.messages += len(I)
        self.counters.bits += len(I) * self.quantizer.float_bits
        x = self.models[I] + (self.buffer[I] - self.published[I])
        buffer_j = self.buffer[J]
        read = self._transmit(buffer_j, x, J)
        average = (x + read) * 0.5
        written = self._transmit(average, buffer_j, I)
        self.models[I] = average
        self.buffer[J] = written
        self.buffer[I] = average
        self.published[I] = average
        self._average_velocity(I, J)

    def _average_velocity(self, I: np.ndarray, J: np.ndarray) -> None:
        """``momentum_averaging: averaged``: both ends of each pair keep the mean buffer.

        Exact (buffers are averaged at full precision whatever the models' quantizer).
        """
        if self.average_momentum:
            assert self.velocity is not None
            self._kernels.pair_average(self.velocity, I, J)

    def _wave_push_step(self, nodes: np.ndarray) -> None:
        assert self.numerators is not None and self.weights is not None
        gradients = self._gradients(nodes, self.models[nodes])
        self._step(nodes, gradients, self.numerators)
        self.models[nodes] = self.numerators[nodes] / self.weights[nodes][:, None]

    def _wave_push_send(self, nodes: np.ndarray, messages: np.ndarray) -> None:
        assert self.numerators is not None and self.weights is not None
        half = self.numerators[nodes] * 0.5
        weight = self.weights[nodes] * 0.5
        self.weights[nodes] = weight
        sent = self._transmit(half, half, nodes)
        if sent is half:
            sent = half.copy()
        self.counters.bits += self.quantizer.float_bits * len(nodes)  # the halved weights
        self.numerators[nodes] = half + (half - sent)
        for r, message in enumerate(messages.tolist()):
            self.in_flight[message] = (self._message_dest.pop(message), sent[r], float(weight[r]))
        if self.average_momentum:
            # The buffers are mixed as the numerators are: half kept, half sent (exactly).
            assert self.velocity is not None
            half_v = self.velocity[nodes] * 0.5
            self.velocity[nodes] = half_v
            for r, message in enumerate(messages.tolist()):
                self._velocity_in_flight[message] = half_v[r]
        self.models[nodes] = self.numerators[nodes] / weight[:, None]

    def _wave_push_receive(self, nodes: np.ndarray, messages: np.ndarray) -> None:
        assert self.numerators is not None and self.weights is not None
        payload = [self.in_flight.pop(message) for message in messages.tolist()]
        self.numerators[nodes] += np.stack([x for _, x, _ in payload])
        self.weights[nodes] += np.array([w for _, _, w in payload])
        if self.average_momentum:
            assert self.velocity is not None
            flying = self._velocity_in_flight
            self.velocity[nodes] += np.stack([flying.pop(m) for m in messages.tolist()])
        self.models[nodes] = self.numerators[nodes] / self.weights[nodes][:, None]

    def _barrier(self, op: Operation) -> None:
        if isinstance(op, Mix):
            self._wave_mix(op.weights)
            if self.average_momentum:
                assert self.velocity is not None
                self.velocity[:] = op.weights @ self.velocity
        elif isinstance(op, MixGradient):
            self._wave_mix_gradient(op.weights, np.array(op.nodes, dtype=np.int64))
        elif isinstance(op, AllReduceStep):
            gradients = self._gradients(np.arange(self.n), self.models)
            if self.plain:
                self.models[:] = self.models.mean(axis=0) - self.lr * gradients.mean(axis=0)
            else:
                self._global_step(gradients.mean(axis=0))
            self.steps += 1
        elif isinstance(op, GroupAverage):
            self.models[:] = op.weights @ self.models
            if self.average_momentum:
                assert self.velocity is not None
                self.velocity[:] = op.weights @ self.velocity
        else:
            self.models[:] = self.models.mean(axis=0)
            if self.average_momentum:
                assert self.velocity is not None
                self.velocity[:] = self.velocity.mean(axis=0)
        self.rounds += 1  # every barrier ends a synchronous round

    def _global_step(self, g: np.ndarray) -> None:
        """All-reduce's step from the mean model with the mean gradient ``g``.

        The momentum buffer is global (every row holds it); the clock is the nodes' mean
        (they all count the same rounds; in epochs, the mean of their shard fractions).
        """
        lr = lr_at(self.schedule, float((self.clock * self.per_unit).mean()))
        if self.velocity is not None:
            v = self.momentum * self.velocity[0] + g
            self.velocity[:] = v
            g = g + self.momentum * v if self.nesterov else v
        self.models[:] = self.models.mean(axis=0) - lr * g

    def _wave_mix(self, weights) -> None:
        n = self.n
        if self.quantizer.name == "none":
            # Every off-diagonal entry is one full-precision message.
            self.counters.bits += int(weights.nnz - n) * self.quantizer.message_bits(
                self.models.shape[1]
            )
            self.counters.messages += int(weights.nnz - n)
            self.models[:] = weights @ self.models
            return
        indptr, indices, data = weights.indptr, weights.indices, weights.data
        rows = np.repeat(np.arange(n), np.diff(indptr))
        old = self.models.copy()
        received = old[indices]  # row of position p: what row ``rows[p]`` receives from col
        off = np.flatnonzero(indices != rows)
        # One transmission per off-diagonal position, in CSR order (each sender's stream is
        # consumed in the same order as the sequential row-by-row loop).
        received[off] = self._transmit(old[indices[off]], old[rows[off]], indices[off])
        new = np.zeros_like(old)
        lengths = np.diff(indptr)
        for p in range(int(lengths.max()) if n else 0):
            have = np.flatnonzero(lengths > p)
            positions = indptr[have] + p
            new[have] += data[positions][:, None] * received[positions]
        self.models[:] = new

    def _wave_mix_gradient(self, weights, nodes: np.ndarray) -> None:
        # The gradients are taken at the models before mixing (each node's minibatch from
        # its own sampling stream), then applied to the mixed models.
        gradients = self._gradients(nodes, self.models[nodes]) if len(nodes) else None
        self._wave_mix(weights)
        if self.average_momentum:
            # The buffers travel with the models of the round: mixed by the same weights,
            # before the step adds this round's gradient.
            assert self.velocity is not None
            self.velocity[:] = weights @ self.velocity
        if gradients is not None:
            self._step(nodes, gradients, self.models)  # the round's rate, momentum, clock

    # -- reading state ---------------------------------------------------------------------

    def enable_push_sum(self) -> None:
        """Start push-sum bookkeeping: numerators = models, weights = 1."""
        self.numerators = self.models.copy()
        self.weights = np.ones(self.models.shape[0])

    def pending_deltas(self) -> np.ndarray:
        """Σ_j (B_j − P_j): buffer writes not yet folded in (zero in blocking mode)."""
        self.flush()
        if self.buffer is None or self.published is None:
            return np.zeros(self.models.shape[1])
        return (self.buffer - self.published).sum(axis=0)

    def push_sum_totals(self) -> tuple[np.ndarray, float]:
        """(Σ numerators, Σ weights) over nodes and messages in flight (conserved at lr 0)."""
        self.flush()
        assert self.numerators is not None and self.weights is not None
        numerator = self.numerators.sum(axis=0)
        weight = float(self.weights.sum())
        for _, x, w in self.in_flight.values():
            numerator = numerator + x
            weight += w
        return numerator, weight


class SequentialExecutor(BatchedExecutor):
    """Applies each operation as soon as it is submitted: a wave of one (the reference path).

    The compiled loop hands it operations one at a time, each at its own instant, so that
    executors which watch operations (the tests' recording executors) see every one.
    """

    accepts_logs = False

    def __init__(self, *args, **kwargs) -> None:
        kwargs["flush_every"] = 1
        super().__init__(*args, **kwargs)
