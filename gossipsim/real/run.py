"""A real run: the config's algorithm as ``n`` processes on this machine, measured.

Every node is an OS process (``fork``) working on one row of a model matrix in shared
memory, on its own shard of the config's data, with the project's objectives. SwarmSGD
takes real locks: blocking, a node holds its own lock while it computes and an exchange
takes both partners' locks in id order, as the simulator's program does; non-blocking, a
node computes on its own row and an exchange folds in what was written to its buffer,
reads the partner's buffer and writes the average back, holding the two buffers' locks
for the copy only. D-PSGD (Lian et al.'s form) meets at a barrier every round: gradient
at the round's model, then ``x_i ← Σ_j W_ij x_j − η·g_i`` into the other of two arrays.

Measured: each local step's start and duration (``trace.csv``: ``node,duration,time``,
the format :func:`gossipsim.system.traces.read_trace` reads), each exchange's duration
(lock waits apart), and the training loss of the mean model sampled by the parent every
``record.every`` wall-clock seconds (``curve.csv``). ``stop.time`` is wall-clock seconds.
A node made ``c`` times slower (``slow``) sleeps ``(c − 1)·t`` after each step of
measured length ``t``; the trace holds the whole, slowed, step.
"""

from __future__ import annotations

import csv
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


class _Shared:
    """Float64 matrices in shared memory (created by the parent, inherited on fork)."""

    def __init__(self, shape: tuple[int, int], count: int) -> None:
        size = max(int(np.prod(shape)) * 8, 8)
        self.blocks = [shared_memory.SharedMemory(create=True, size=size) for _ in range(count)]
        self.arrays = [np.ndarray(shape, dtype=np.float64, buffer=b.buf) for b in self.blocks]

    def close(self) -> None:
        self.arrays = []
        for block in self.blocks:
            block.close()
            block.unlink()


def _step_with_slowdown(factor: float, t: float) -> None:
    if factor > 1.0:
        time.sleep((factor - 1.0) * t)


def _worker(node: int, kind: str, ctx: dict[str, Any]) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core's worth per process: the processes share the machine
    problem: Problem = ctx["problem"]
    streams = Streams(ctx["seed"])
    sampling = streams.generator("sampling", node)
    X, y = problem.shard_X[node], problem.shard_y[node]
    batch = min(problem.batch_size, y.shape[0])
    objective, lr, factor = problem.objective, ctx["lr"], ctx["slow"].get(node, 1.0)
    steps: list[tuple[float, float]] = []
    exchanges: list[tuple[float, float]] = []
    stop, t0 = ctx["stop"], ctx["t0"]
    last_end: list[float | None] = [None]  # when the node's last step or exchange ended
    ctx["start"].wait()
    ctx["last_end"] = last_end

    def local_step(model: np.ndarray, apply: bool = True) -> np.ndarray:
        """One minibatch gradient at ``model`` (applied to it in place unless not ``apply``),
        slowed if the node is. Its duration runs from the end of the node's previous action
        (step or exchange) to its own end, so the time between steps — the loop, the draws,
        the scheduler's preemptions — is part of the step, as on a real machine."""
        begin = time.perf_counter()
        idx = sampling.integers(0, y.shape[0], size=batch)
        g = objective.grad(model, X[idx], y[idx])
        if apply:
            model -= lr * g
        _step_with_slowdown(factor, time.perf_counter() - begin)
        end = time.perf_counter()
        since = last_end[0] if last_end[0] is not None else begin
        steps.append((since - t0.value, end - since))
        last_end[0] = end
        return g

    try:
        if kind == "dpsgd":
            _dpsgd_node(node, ctx, local_step, exchanges)
        else:
            _swarm_node(node, ctx, local_step, exchanges, streams)
    finally:
        ctx["results"].put((node, steps, exchanges))
        stop.set()  # a failing node ends the run for all


def _swarm_node(node, ctx, local_step, exchanges, streams) -> None:
    models, locks, stop, t0 = ctx["models"], ctx["locks"], ctx["stop"], ctx["t0"]
    pairing = streams.generator("pairing", node)
    steps_rng = streams.generator("local_steps", node)
    neighbours = ctx["neighbours"][node]
    local_steps, nonblocking = ctx["local_steps"], ctx["nonblocking"]
    buffer, published = ctx["buffer"], ctx["published"]
    while not stop.is_set():
        if isinstance(local_steps, GeometricLocalSteps):
            H = int(steps_rng.geometric(1.0 / local_steps.mean))
        else:
            H = local_steps.value
        if nonblocking:
            for _ in range(H):
                local_step(models[node])
        else:
            with locks[node]:  # a node's own lock is held while it computes
                for _ in range(H):
                    local_step(models[node])
        j = int(neighbours[int(pairing.integers(len(neighbours)))])
        first, second = locks[min(node, j)], locks[max(node, j)]
        with first, second:  # id order: no cycle of waits
            begin = time.perf_counter()
            if nonblocking:
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
            end = time.perf_counter()
            exchanges.append((begin - t0.value, end - begin))
            ctx["last_end"][0] = end


def _dpsgd_node(node, ctx, local_step, exchanges) -> None:
    arrays, barrier, halt, t0 = ctx["arrays"], ctx["barrier"], ctx["halt"], ctx["t0"]
    rows, weights = ctx["mixing_rows"][node]
    round_ = 0
    while True:
        current, following = arrays[round_ % 2], arrays[(round_ + 1) % 2]
        g = local_step(current[node], apply=False)  # the gradient at the round's model
        begin = time.perf_counter()
        following[node] = weights @ current[rows] - ctx["lr"] * g
        exchanges.append((begin - t0.value, time.perf_counter() - begin))
        barrier.wait()  # the last to arrive publishes the round and the stop decision
        ctx["last_end"][0] = time.perf_counter()  # waiting at the barrier is idle time
        round_ += 1
        if halt.value:
            return


# -- the parent -----------------------------------------------------------------------------


def run_real(config: RunConfig, slow: dict[int, float] | None = None) -> RealRun:
    """Run ``config`` for real; return what was measured."""
    check_config(config)
    prepared = prepare(config)
    problem, graph = prepared.problem, prepared.graph
    n = graph.number_of_nodes()
    slow = dict(slow or {})
    models0 = initial_models(config, problem, n, prepared.streams)
    algorithm = config.algorithm
    try:
        context = mp.get_context("fork")
    except ValueError:
        raise RealRunError("real runs need the 'fork' start method (Linux, macOS)") from None
    shape = models0.shape
    shared = _Shared(shape, 3)
    for array in shared.arrays:
        array[:] = models0
    stop = context.Event()
    halt = context.Value("b", 0)
    rounds = context.Value("q", 0)
    t0 = context.Value("d", 0.0)

    def publish_round() -> None:  # runs in one node process, inside the barrier
        rounds.value += 1
        halt.value = 1 if stop.is_set() else 0

    ctx: dict[str, Any] = {
        "problem": problem,
        "seed": config.seed,
        "lr": float(algorithm.lr),  # type: ignore[arg-type]
        "slow": slow,
        "stop": stop,
        "halt": halt,
        "t0": t0,
        "start": context.Barrier(n + 1),
        "results": context.Queue(),
        "models": shared.arrays[0],
        "buffer": shared.arrays[1],
        "published": shared.arrays[2],
        "arrays": shared.arrays[:2],
        "locks": [context.Lock() for _ in range(n)],
        "neighbours": [sorted(graph.neighbors(i)) for i in range(n)],
        "local_steps": getattr(algorithm, "local_steps", None),
        "nonblocking": bool(getattr(algorithm, "nonblocking", False)),
        "barrier": context.Barrier(n, action=publish_round),
    }
    if algorithm.kind == "dpsgd":
        W = metropolis_weights(graph).tocsr()
        ctx["mixing_rows"] = [
            (W.indices[W.indptr[i] : W.indptr[i + 1]].copy(),
             W.data[W.indptr[i] : W.indptr[i + 1]].copy())
            for i in range(n)
        ]  # fmt: skip
    processes = [
        context.Process(target=_worker, args=(i, algorithm.kind, ctx), daemon=True)
        for i in range(n)
    ]
    horizon, every = float(config.stop.time), float(config.record.every)  # type: ignore[arg-type]
    times, losses = [], []
    results: dict[int, tuple[list, list]] = {}
    try:
        for process in processes:
            process.start()
        times.append(0.0)
        losses.append(problem.training_loss(models0.mean(axis=0)))
        t0.value = time.perf_counter()
        ctx["start"].wait()
        start = t0.value
        k = 1
        while not stop.is_set():
            target = min(k * every, horizon)
            time.sleep(max(0.0, start + target - time.perf_counter()))
            losses.append(problem.training_loss(_mean_model(ctx, algorithm.kind, rounds)))
            times.append(time.perf_counter() - start)
            if target >= horizon:
                break
            k += 1
        stop.set()
        wall = time.perf_counter() - start
        deadline = time.monotonic() + 30.0
        while len(results) < n and time.monotonic() < deadline:
            try:
                node, steps, exchanges = ctx["results"].get(timeout=30.0)
            except queue.Empty:
                break
            results[node] = (steps, exchanges)
        for process in processes:
            process.join(timeout=10.0)
        failed = [i for i, p in enumerate(processes) if p.exitcode not in (0, None)]
        if failed or len(results) < n:
            raise RuntimeError(f"real run: node processes {failed or 'missing'} did not finish")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)
        ctx["results"].close()
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
        facts={"processes": n, "rounds": int(rounds.value), "local_steps": len(step_rows)},
    )


def _mean_model(ctx: dict[str, Any], kind: str, rounds: Any) -> np.ndarray:
    if kind == "dpsgd":
        return ctx["arrays"][rounds.value % 2].mean(axis=0)
    models = ctx["models"].copy()
    if ctx["nonblocking"]:  # what is written to buffers and not yet folded in counts too
        models += ctx["buffer"] - ctx["published"]
    return models.mean(axis=0)


def _columns(rows: list[tuple[int, float, float]]) -> tuple[np.ndarray, ...]:
    rows.sort(key=lambda row: (row[1], row[0]))
    node = np.array([r[0] for r in rows], dtype=np.int64)
    start = np.array([r[1] for r in rows], dtype=np.float64)
    duration = np.array([r[2] for r in rows], dtype=np.float64)
    return node, start, duration
