"""A real run: the config's algorithm as ``n`` processes on this machine, measured.

Every node is an OS process (started by ``forkserver``, else ``spawn``: no thread or lock
of the parent is inherited) working on one row of a model matrix in named shared memory,
on its own shard of the config's data, with the project's objectives. SwarmSGD takes real
locks: blocking, a node holds its own lock while it computes and an exchange takes both
partners' locks in id order, as the simulator's program does; non-blocking, a node
computes on its own row and an exchange folds in what was written to its buffer, reads
the partner's buffer and writes the average back, holding the two buffers' locks for the
copy only. D-PSGD (Lian et al.'s form) meets at a barrier every round: gradient at the
round's model, then ``x_i ← Σ_j W_ij x_j − η·g_i`` into the other of two arrays.

Measured: each local step's start and duration (``trace.csv``: ``node,duration,time``,
the format :func:`gossipsim.system.traces.read_trace` reads), each exchange's duration
(lock waits apart), and the training loss of the mean model sampled by the parent every
``record.every`` wall-clock seconds (``curve.csv``). ``stop.time`` is wall-clock seconds.
A node made ``c`` times slower (``slow``) sleeps ``(c − 1)·t`` after each step of
measured length ``t``; the trace holds the whole, slowed, step.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gossipsim.engine.problem import Problem, initial_models
from gossipsim.experiment.runner import prepare
from gossipsim.experiment.sections import GeometricLocalSteps, NoQuantizer
from gossipsim.signals import sigint_deferred
from gossipsim.system.rng import Streams
from gossipsim.system.topology import metropolis_weights

if TYPE_CHECKING:
    from gossipsim.experiment.config import RunConfig

SUPPORTED = ("swarmsgd", "dpsgd")


class RealRunError(ValueError):
    """A config a real run cannot carry out (named by field)."""


@dataclass
class RealRun:
    """What a real run measured (times in seconds from the common start)."""

    config: RunConfig
    slow: dict[int, float]
    step_node: np.ndarray
    step_start: np.ndarray
    step_duration: np.ndarray
    exchange_node: np.ndarray
    exchange_start: np.ndarray
    exchange_duration: np.ndarray
    curve_time: np.ndarray
    curve_loss: np.ndarray
    wall: float
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def exchange_time(self) -> float:
        """Median measured exchange (lock waits excluded), the simulator's message time."""
        return float(np.median(self.exchange_duration)) if self.exchange_duration.size else 0.0

    @property
    def round_overhead(self) -> float:
        """D-PSGD: the mean time a round took beyond its slowest node's step — the mixing
        and the barrier's synchronisation of the processes (0 for other algorithms)."""
        rounds = int(self.facts.get("rounds", 0))
        n = int(self.facts.get("processes", 0))
        if self.config.algorithm.kind != "dpsgd" or rounds == 0 or n == 0:
            return 0.0
        per_node = [self.step_duration[self.step_node == i] for i in range(n)]
        k = min(len(d) for d in per_node)
        if k == 0:
            return 0.0
        slowest = np.max(np.stack([d[:k] for d in per_node]), axis=0)
        return max(self.wall / rounds - float(slowest.mean()), self.exchange_time)

    def write(self, out: str | Path) -> Path:
        """Write trace.csv, exchanges.csv, curve.csv and meta.json into ``out`` (whole or not
        at all: written beside it, then renamed into place)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
        try:
            _write_csv(
                staging / "trace.csv",
                ("node", "duration", "time"),
                zip(self.step_node.tolist(), self.step_duration.tolist(),
                    self.step_start.tolist(), strict=True),
            )  # fmt: skip
            _write_csv(
                staging / "exchanges.csv",
                ("node", "duration", "time"),
                zip(self.exchange_node.tolist(), self.exchange_duration.tolist(),
                    self.exchange_start.tolist(), strict=True),
            )  # fmt: skip
            _write_csv(
                staging / "curve.csv",
                ("time", "loss"),
                zip(self.curve_time.tolist(), self.curve_loss.tolist(), strict=True),
            )
            meta = {
                "config": self.config.resolved(),
                "slow": {str(k): v for k, v in self.slow.items()},
                "wall_s": self.wall,
                "exchange_time_s": self.exchange_time,
                "round_overhead_s": self.round_overhead,
                "cpu_count": os.cpu_count(),
                **self.facts,
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return out


def _write_csv(path: Path, header: tuple[str, ...], rows: Any) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def check_config(config: RunConfig) -> None:
    """Refuse, by field, what a real run does not carry out."""
    algorithm = config.algorithm
    if algorithm.kind not in SUPPORTED:
        raise RealRunError(
            f"algorithm.kind: real runs support {', '.join(SUPPORTED)}, not {algorithm.kind!r}"
        )
    if not isinstance(algorithm.lr, float | int):
        raise RealRunError("algorithm.lr: real runs take a constant rate (a number)")
    if getattr(algorithm, "momentum", 0.0) != 0.0:
        raise RealRunError("algorithm.momentum: real runs take plain SGD (momentum 0)")
    if not isinstance(getattr(algorithm, "quantizer", NoQuantizer()), NoQuantizer):
        raise RealRunError("algorithm.quantizer: real runs send full-precision models")
    if algorithm.kind == "dpsgd" and getattr(algorithm, "variant", "lian") != "lian":
        raise RealRunError("algorithm.variant: real D-PSGD runs Lian et al.'s form (lian)")
    if config.stop.time is None:
        raise RealRunError("stop.time: a real run needs its length in wall-clock seconds")
    if config.faults.active:
        raise RealRunError("faults: real runs inject no faults")


def parse_slow(items: list[str] | None, n: int) -> dict[int, float]:
    """``NODE=FACTOR`` items (``--slow 0=3``) as {node: factor}, checked."""
    slow: dict[int, float] = {}
    for item in items or []:
        node_text, sep, factor_text = item.partition("=")
        try:
            node, factor = int(node_text), float(factor_text)
        except ValueError:
            node, factor, sep = -1, math.nan, ""
        if not sep or not 0 <= node < n or not math.isfinite(factor) or factor < 1:
            raise RealRunError(
                f"--slow {item}: expected NODE=FACTOR with 0 <= NODE < {n} and FACTOR >= 1"
            )
        slow[node] = factor
    return slow


# -- the workers ----------------------------------------------------------------------------


def start_method() -> str:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn``: a worker never
    inherits the parent's threads (numba's and BLAS's pools) or its locks half-taken."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class _Shared:
    """Float64 matrices in named shared memory: created by the parent, attached by name in
    each worker, unlinked by the parent alone."""

    def __init__(self, shape: tuple[int, int], count: int) -> None:
        self.shape = shape
        size = max(int(np.prod(shape)) * 8, 8)
        self.blocks: list[shared_memory.SharedMemory] = []
        try:
            for _ in range(count):
                self.blocks.append(shared_memory.SharedMemory(create=True, size=size))
        except BaseException:
            self.close()
            raise
        self.arrays = [np.ndarray(shape, dtype=np.float64, buffer=b.buf) for b in self.blocks]

    @property
    def names(self) -> list[str]:
        return [block.name for block in self.blocks]

    def close(self) -> None:
        self.arrays = []
        for block in self.blocks:
            block.close()
            block.unlink()
        self.blocks = []


def _attach(names: list[str], shape: tuple[int, int]) -> tuple[list[Any], list[np.ndarray]]:
    """A worker's view of the parent's blocks. The parent owns them and alone unlinks them;
    a worker shares the parent's resource tracker (spawn and forkserver pass it on), so
    attaching registers nothing new and leaving reports nothing."""
    blocks = [shared_memory.SharedMemory(name=name) for name in names]
    arrays = [np.ndarray(shape, dtype=np.float64, buffer=block.buf) for block in blocks]
    return blocks, arrays


def _publish_round(rounds: Any, halt: Any, stop: Any) -> None:
    """D-PSGD's barrier action (run by the last node to arrive): count the round and fix
    whether it was the last, so every node reads the same decision after the barrier."""
    rounds.value += 1
    halt.value = 1 if stop.is_set() else 0


class _Node:
    """One worker process: its data, its random streams and its measurements."""

    def __init__(self, node: int, static: dict[str, Any], sync: dict[str, Any]) -> None:
        self.node = node
        self.sync = sync
        problem: Problem = static["problem"]
        streams = Streams(static["seed"])
        self.streams = streams
        self.sampling = streams.generator("sampling", node)
        self.X, self.y = problem.shard_X[node], problem.shard_y[node]
        self.batch = min(problem.batch_size, int(self.y.shape[0]))
        self.objective = problem.objective
        self.lr = float(static["lr"])
        self.factor = float(static["slow"].get(node, 1.0))
        self.static = static
        self.steps: list[tuple[float, float]] = []
        self.exchanges: list[tuple[float, float]] = []
        self.last_end: float | None = None  # when the node's last step or exchange ended
        self.t0 = 0.0

    def local_step(self, model: np.ndarray, apply: bool = True) -> np.ndarray:
        """One minibatch gradient at ``model`` (applied to it in place unless not ``apply``),
        slowed if the node is. Its duration runs from the end of the node's previous action
        (step, exchange, barrier or own lock) to its own end, so the time between steps —
        the loop, the draws, the scheduler's preemptions — is part of the step, as on a real
        machine; waits the simulator models itself (locks, barriers) are not."""
        begin = time.perf_counter()
        idx = self.sampling.integers(0, self.y.shape[0], size=self.batch)
        g = self.objective.grad(model, self.X[idx], self.y[idx])
        if apply:
            model -= self.lr * g
        if self.factor > 1.0:
            time.sleep((self.factor - 1.0) * (time.perf_counter() - begin))
        end = time.perf_counter()
        since = self.last_end if self.last_end is not None else begin
        self.steps.append((since - self.t0, end - since))
        self.last_end = end
        return g

    def exchanged(self, begin: float) -> None:
        end = time.perf_counter()
        self.exchanges.append((begin - self.t0, end - begin))
        self.last_end = end

    def swarm(self, models: np.ndarray, buffer: np.ndarray, published: np.ndarray) -> None:
        locks, stop = self.sync["locks"], self.sync["stop"]
        node = self.node
        pairing = self.streams.generator("pairing", node)
        steps_rng = self.streams.generator("local_steps", node)
        neighbours = self.static["neighbours"][node]
        local_steps, nonblocking = self.static["local_steps"], self.static["nonblocking"]
        while not stop.is_set():
            if isinstance(local_steps, GeometricLocalSteps):
                H = int(steps_rng.geometric(1.0 / local_steps.mean))
            else:
                H = int(local_steps.value)
            if nonblocking:
                for _ in range(H):
                    self.local_step(models[node])
            else:
                with locks[node]:  # a node's own lock is held while it computes
                    self.last_end = time.perf_counter()  # a partner's exchange: not compute
                    for _ in range(H):
                        self.local_step(models[node])
            j = int(neighbours[int(pairing.integers(len(neighbours)))])
            with locks[min(node, j)], locks[max(node, j)]:  # id order: no cycle of waits
                begin = time.perf_counter()
                if nonblocking:
                    # Fold in what partners wrote to this node's buffer, then average with
                    # the partner's buffer and write the average back into it.
                    x = models[node] + (buffer[node] - published[node])
                    average = (x + buffer[j]) * 0.5
                    buffer[j] = average
                    models[node] = average
                    buffer[node] = average
                    published[node] = average
                else:
                    average = (models[node] + models[j]) * 0.5
                    models[node] = average
                    models[j] = average
                self.exchanged(begin)

    def dpsgd(self, arrays: list[np.ndarray]) -> None:
        barrier, halt = self.sync["barrier"], self.sync["halt"]
        rows, weights = self.static["mixing_rows"][self.node]
        node, round_ = self.node, 0
        while True:
            current, following = arrays[round_ % 2], arrays[(round_ + 1) % 2]
            g = self.local_step(current[node], apply=False)  # the gradient at the round's model
            begin = time.perf_counter()
            following[node] = weights @ current[rows] - self.lr * g  # X⁺ = W·X − η·G(X)
            self.exchanged(begin)
            barrier.wait()  # the last to arrive publishes the round and the stop decision
            self.last_end = time.perf_counter()  # waiting at the barrier is idle time
            round_ += 1
            if halt.value:
                return


def _worker(node: int, static: dict[str, Any], sync: dict[str, Any]) -> None:
    """A node process: Ctrl-C is the parent's to handle (it stops the run through ``stop``);
    results go back through the queue whatever happens."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core's worth per process: the processes share the machine
    blocks, arrays = _attach(static["shm"], static["shape"])
    worker = _Node(node, static, sync)
    try:
        sync["ready"].release()
        sync["go"].wait()
        worker.t0 = sync["t0"].value
        if static["kind"] == "dpsgd":
            worker.dpsgd(arrays[:2])
        else:
            worker.swarm(*arrays)
    finally:
        sync["stop"].set()  # a failing node ends the run for all
        sync["results"].put((node, worker.steps, worker.exchanges))
        arrays.clear()
        for block in blocks:
            block.close()


# -- the parent -----------------------------------------------------------------------------


def run_real(config: RunConfig, slow: dict[int, float] | None = None) -> RealRun:
    """Run ``config`` for real; return what was measured. Ctrl-C stops the workers, frees
    the shared memory and raises KeyboardInterrupt."""
    check_config(config)
    prepared = prepare(config)
    problem, graph = prepared.problem, prepared.graph
    n = graph.number_of_nodes()
    slow = dict(slow or {})
    models0 = initial_models(config, problem, n, prepared.streams)
    algorithm = config.algorithm
    context: Any = mp.get_context(start_method())
    if start_method() == "forkserver":
        context.set_forkserver_preload(["gossipsim.real.run"])
    stop = context.Event()
    halt = context.Value("b", 0)
    rounds = context.Value("q", 0)
    t0 = context.Value("d", 0.0)
    static: dict[str, Any] = {
        "kind": algorithm.kind,
        "problem": problem,
        "seed": config.seed,
        "lr": float(algorithm.lr),  # type: ignore[arg-type]
        "slow": slow,
        "neighbours": [sorted(graph.neighbors(i)) for i in range(n)],
        "local_steps": getattr(algorithm, "local_steps", None),
        "nonblocking": bool(getattr(algorithm, "nonblocking", False)),
        "shape": models0.shape,
    }
    if algorithm.kind == "dpsgd":
        W = metropolis_weights(graph).tocsr()
        static["mixing_rows"] = [
            (W.indices[W.indptr[i] : W.indptr[i + 1]].copy(),
             W.data[W.indptr[i] : W.indptr[i + 1]].copy())
            for i in range(n)
        ]  # fmt: skip
    results_queue = context.Queue()
    sync: dict[str, Any] = {
        "stop": stop,
        "halt": halt,
        "t0": t0,
        "ready": context.Semaphore(0),
        "go": context.Event(),
        "results": results_queue,
        "locks": [context.Lock() for _ in range(n)],
        "barrier": context.Barrier(n, action=functools.partial(_publish_round, rounds, halt, stop)),
    }
    horizon, every = float(config.stop.time), float(config.record.every)  # type: ignore[arg-type]
    times: list[float] = []
    losses: list[float] = []
    results: dict[int, tuple[list, list]] = {}
    processes: list[Any] = []
    shared = _Shared(models0.shape, 3)
    try:
        for array in shared.arrays:
            array[:] = models0
        static["shm"] = shared.names
        problem.__dict__.pop("_metrics", None)  # the parent's compiled metrics stay here
        with sigint_deferred():  # no worker is hit by Ctrl-C half-way through its start
            processes = [
                context.Process(target=_worker, args=(i, static, sync), daemon=True)
                for i in range(n)
            ]
            for process in processes:
                process.start()
        times.append(0.0)
        losses.append(problem.training_loss(models0.mean(axis=0)))
        _wait_until_ready(sync["ready"], processes)
        start = t0.value = time.perf_counter()
        sync["go"].set()
        k = 1
        while not stop.is_set():
            target = min(k * every, horizon)
            time.sleep(max(0.0, start + target - time.perf_counter()))
            losses.append(problem.training_loss(_mean_model(shared, algorithm.kind, rounds)))
            times.append(time.perf_counter() - start)
            if target >= horizon:
                break
            k += 1
        stop.set()
        wall = time.perf_counter() - start
        deadline = time.monotonic() + 30.0
        while len(results) < n and time.monotonic() < deadline:
            try:
                node, steps, exchanges = results_queue.get(timeout=30.0)
            except queue.Empty:
                break
            results[node] = (steps, exchanges)
        for process in processes:
            process.join(timeout=10.0)
        failed = [i for i, p in enumerate(processes) if p.exitcode not in (0, None)]
        if failed or len(results) < n:
            raise RuntimeError(f"real run: node processes {failed or 'missing'} did not finish")
    finally:
        stop.set()
        for process in processes:
            if process.is_alive():
                process.join(timeout=2.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)
        results_queue.close()
        results_queue.join_thread()
        shared.close()
    step_rows = [(i, s, d) for i in range(n) for s, d in results[i][0]]
    exchange_rows = [(i, s, d) for i in range(n) for s, d in results[i][1]]
    step_node, step_start, step_duration = _columns(step_rows)
    exchange_node, exchange_start, exchange_duration = _columns(exchange_rows)
    return RealRun(
        config=config,
        slow=slow,
        step_node=step_node,
        step_start=step_start,
        step_duration=step_duration,
        exchange_node=exchange_node,
        exchange_start=exchange_start,
        exchange_duration=exchange_duration,
        curve_time=np.array(times),
        curve_loss=np.array(losses),
        wall=wall,
        facts={
            "processes": n,
            "rounds": int(rounds.value),
            "local_steps": len(step_rows),
            "start_method": start_method(),
        },
    )


def _wait_until_ready(ready: Any, processes: list[Any]) -> None:
    """Wait until every worker has started; fail (not hang) if one died while starting."""
    for _ in processes:
        while not ready.acquire(timeout=1.0):
            dead = [i for i, p in enumerate(processes) if not p.is_alive()]
            if dead:
                raise RuntimeError(f"real run: node processes {dead} died while starting")


def _mean_model(shared: _Shared, kind: str, rounds: Any) -> np.ndarray:
    """The mean of the node models now (a copy of shared memory, read while they work)."""
    if kind == "dpsgd":
        return shared.arrays[rounds.value % 2].mean(axis=0)
    models = shared.arrays[0].copy()
    # Non-blocking: what partners wrote to buffers and a node has not folded in counts too
    # (zero in blocking runs, whose buffers stay at the initial models).
    models += shared.arrays[1] - shared.arrays[2]
    return models.mean(axis=0)


def _columns(rows: list[tuple[int, float, float]]) -> tuple[np.ndarray, ...]:
    rows.sort(key=lambda row: (row[1], row[0]))
    node = np.array([r[0] for r in rows], dtype=np.int64)
    start = np.array([r[1] for r in rows], dtype=np.float64)
    duration = np.array([r[2] for r in rows], dtype=np.float64)
    return node, start, duration
