"""The performance harness: ``make bench`` (``python -m benchmarks.run``).

Each workload in ``benchmarks/workloads/*.yaml`` runs in fresh child processes, so its peak
memory is its own. ``kind: simulation``: a child prepares the run (data, graph: reported,
not timed), times ``simulate()`` with its phase split (:class:`PhaseTimer`: numeric
kernels, metric rows, build, event loop), and runs the workload's numpy ``reference`` and
compiled ``limit`` of the same math in the same process right after, so the ratios compare
like with like; then the same config runs through the CLI as a user runs it
(:mod:`benchmarks.cli_probe`), which gives the fixed cost of a run (the whole process minus
``simulate()``). ``cli_only: true`` workloads (swarm-100k) are measured by that CLI run
alone. ``kind: cli`` (cli-swarm-1m) is a whole-process CLI run against the numpy reference;
``kind: sweep`` times a sweep serially and through the process executor. The parent collects
everything, with the machine facts that decide the figures (Python, numpy, BLAS and its
threads, ``OPENBLAS_*`` variables, load average), checks the targets of issue 12 (and those
of issue 7 still in force) and writes ``benchmarks/results.json``. A workload that fails is
reported with its error; the others still run.

Options: ``--only NAME`` (repeatable), ``--output PATH``, ``--quick`` (a tenth of the
interactions or iterations, to try the harness itself), ``--skip-long`` (leave out the
workloads marked ``long: true``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
ORDER = [
    "swarm-1k",
    "adpsgd-1k",
    "sgp-1k",
    "dpsgd-1k",
    "allreduce-1k",
    "local-sgd-1k",
    "swarm-10k",
    "swarm-100k",
    "mlp-digits",
    "gc-100",
    "sweep-8",
    "cli-swarm-1m",
]
# The workloads held to >= 0.5x swarm-1k's rate (interactions/s or node-steps/s).
COMPARED = ["adpsgd-1k", "sgp-1k", "dpsgd-1k", "allreduce-1k", "local-sgd-1k"]
CHILD_TIMEOUT = 3600.0  # seconds; a hung workload is reported, the others still run


# -- child side ----------------------------------------------------------------------------


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _config(data: dict[str, Any], **stop: Any):
    from gossipsim.experiment.config import validate_data

    data = json.loads(json.dumps(data))
    if stop:
        data["stop"] = stop
    return validate_data(data)


class PhaseTimer:
    """Where the wall time of ``simulate()`` goes, for any algorithm and either executor.

    * numeric kernels: applying operations to the models, i.e. ``BatchedExecutor.apply_log``
      (every wave, whoever hands the log over: ``flush``, a compiled loop's drain; the
      sequential executor applies waves of one through it too). Gradient coding does its
      numerics in its own protocol, not through the executor: there they are
      ``GradientCoding.iteration_numerics`` (chunk gradients, encoding, coded vectors,
      decode, the true gradient and the decode error) and ``GradientCoding.step`` (the PS
      model's step);
    * metrics: ``Simulation.record`` (loss, accuracy, consensus of the recorded rows) minus
      the numerics it triggers by flushing (and minus gradient coding's
      ``GradientCoding.stamp``, the counters' bookkeeping that reading them triggers: event
      loop);
    * build: ``runner.build_simulation`` (models, executor, per-node streams);
    * the rest is the event loop: processes, queues, locks, logging operations, draws of
      timing and partners, stop rules (for gradient coding: the timing draws, the
      iteration's schedule, the counters' bookkeeping, the PS process, its set-up).

    Wall time, not process time: BLAS threads add process time to the kernels that the
    single-threaded event loop does not have, which would flatter the event loop's share.
    The timers wrap the methods by monkeypatching (gossipsim itself is not changed).
    """

    def __init__(self) -> None:
        self.numeric = 0.0
        self.metrics = 0.0
        self.build = 0.0
        self.applied = 0  # calls of apply_log
        self.coding_calls = 0  # calls of gradient coding's numerics (iteration and step)
        # Gradient coding's lazy counters, stamped when a row is read: event loop, not metrics.
        self.bookkeeping = 0.0
        self._patches: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> PhaseTimer:
        import gossipsim.experiment.runner as runner
        from gossipsim.engine.batched import BatchedExecutor
        from gossipsim.engine.simulation import Simulation

        timer = self
        clock = time.perf_counter

        def timed(function, total: str, calls: str | None = None):
            """``function``, adding its wall time to ``timer.<total>`` (and one call to
            ``timer.<calls>``)."""

            def call(*args, **kwargs):
                started = clock()
                try:
                    return function(*args, **kwargs)
                finally:
                    setattr(timer, total, getattr(timer, total) + clock() - started)
                    if calls is not None:
                        setattr(timer, calls, getattr(timer, calls) + 1)

            return call

        record = Simulation.record

        def timed_record(sim):
            before = timer.numeric + timer.bookkeeping
            started = clock()
            try:
                return record(sim)
            finally:
                inner = timer.numeric + timer.bookkeeping - before
                timer.metrics += clock() - started - inner

        wrappers: list[tuple[Any, str, Any]] = [
            (BatchedExecutor, "apply_log", lambda f: timed(f, "numeric", "applied")),
            (Simulation, "record", lambda f: timed_record),
            (runner, "build_simulation", lambda f: timed(f, "build")),
        ]
        # Gradient coding's numerics and bookkeeping, if a run has loaded its protocol (its
        # prepare() does): importing it here would put the import in the timed run.
        protocol = sys.modules.get("gossipsim.algorithms.coding.protocol")
        if protocol is not None:
            coding = protocol.GradientCoding
            wrappers += [
                (coding, "iteration_numerics", lambda f: timed(f, "numeric", "coding_calls")),
                (coding, "step", lambda f: timed(f, "numeric", "coding_calls")),
                (coding, "stamp", lambda f: timed(f, "bookkeeping")),
            ]
        for owner, name, wrap in wrappers:
            original = getattr(owner, name)
            self._patches.append((owner, name, original))
            setattr(owner, name, wrap(original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in self._patches:
            setattr(owner, name, original)
        self._patches = []

    def summary(self, wall: float) -> dict[str, float]:
        """The split of ``wall`` seconds of ``simulate()``.

        ``event_loop_fraction`` counts the build with the event loop (the conservative
        figure the target is checked on); ``event_loop_only_fraction`` leaves it out.
        """
        wall = max(wall, 1e-12)
        loop = wall - self.numeric - self.metrics - self.build
        return {
            "numeric_kernels_s": self.numeric,
            "metrics_s": self.metrics,
            "build_s": self.build,
            "event_loop_s": loop,
            "applications": self.applied,
            "numeric_fraction": self.numeric / wall,
            "metrics_fraction": self.metrics / wall,
            "event_loop_fraction": (loop + self.build) / wall,
            "event_loop_only_fraction": loop / wall,
        }


def _simulate(config, phases: bool = False) -> tuple[dict[str, Any], Any]:
    from gossipsim.experiment.runner import prepare, simulate

    started = time.perf_counter()
    prepared = prepare(config)
    setup = time.perf_counter() - started
    timer = PhaseTimer()
    wall = time.perf_counter()
    cpu = time.process_time()
    if phases:
        with timer:
            outcome, sim = simulate(prepared)
    else:
        outcome, sim = simulate(prepared)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    result = {
        "prepare_s": setup,
        "wall_s": wall,
        "cpu_s": cpu,
        "interactions": sim.interactions,
        "iterations": sim.iterations,
        "node_steps": sim.local_steps,
        "records": len(outcome.rows),
        "final_loss": outcome.rows[-1]["loss"],
        "stop_reason": outcome.stop_reason,
        "sim_time": outcome.end_time,
        "executor": type(sim.executor).__name__,
    }
    executor = sim.executor
    if hasattr(executor, "waves"):
        result["waves"] = executor.waves
        result["ops_per_wave"] = (sim.interactions + sim.local_steps) / max(1, executor.waves)
    if phases:
        result["profile"] = timer.summary(wall)
    return result, prepared


def _hot_spots(config, top: int = 12) -> list[dict[str, Any]]:
    """cProfile of one run: the functions with the most own time."""
    from gossipsim.experiment.runner import prepare, simulate

    prepared = prepare(config)
    profile = cProfile.Profile()
    profile.enable()
    simulate(prepared)
    profile.disable()
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in sorted(
        stats.stats.items(), key=lambda item: -item[1][2]
    )[:top]:
        where = f"{Path(filename).name}:{line}({name})" if line else name
        rows.append(
            {
                "function": where,
                "calls": calls,
                "own_s": round(own, 4),
                "own_fraction": round(own / total, 4),
                "cumulative_s": round(cumulative, 4),
            }
        )
    return rows


UNITS = ("interactions", "node_steps", "iterations")


def _done(result: dict[str, Any], unit: str) -> int:
    """How much work of ``unit`` a run (in-process or CLI report) did."""
    return int(result["node_steps" if unit == "node_steps" else unit])


def _shrink(data: dict[str, Any], factor: int) -> dict[str, Any]:
    """The config with its interactions/iterations stop rule divided by ``factor``."""
    data = json.loads(json.dumps(data))
    for key in ("interactions", "iterations"):
        if key in data["stop"]:
            data["stop"][key] = max(1, data["stop"][key] // factor)
    return data


def _run_reference(module_name: str, prepared, interactions: int, evaluations: int) -> dict:
    module = importlib.import_module(f"benchmarks.reference.{module_name}")
    cpu = time.process_time()
    reference = module.run(prepared, interactions, max(1, evaluations))
    cpu = time.process_time() - cpu
    out = {
        "module": module_name,
        "interactions": interactions,
        "evaluations": evaluations,
        "wall_s": reference["wall_time"],
        "cpu_s": cpu,
        "rate_per_s": interactions / reference["wall_time"],
        "final_loss": reference["loss"],
    }
    for key in ("loop_time", "compile_time"):
        if key in reference:
            out[key.replace("_time", "_s")] = reference[key]
    return out


def run_simulation(name: str, spec: dict[str, Any], quick: bool) -> dict[str, Any]:
    from gossipsim.algorithms import ALGORITHMS

    needed = spec.get("requires_algorithm")
    if needed and needed not in ALGORITHMS:
        return {"status": "pending", "reason": f"algorithm '{needed}' is not in the package yet"}
    data = _shrink(spec["config"], 10) if quick else spec["config"]
    config = _config(data)
    # Compiled kernels (numba) are compiled on first use and cached on disk; a process pays
    # the compilation (fresh cache) or the loading (warm cache) once, before its first run.
    # A short, small run of the same config (same code paths and array types) pays it here,
    # and the figure is reported apart.
    warm = json.loads(json.dumps(data))
    unit_key = "iterations" if "iterations" in warm["stop"] else "interactions"
    warm["stop"] = {unit_key: 2 if unit_key == "iterations" else 50}
    if warm["objective"]["dataset"]["kind"] == "synthetic":
        warm["objective"]["dataset"]["n_samples"] = min(
            warm["objective"]["dataset"]["n_samples"], 4000
        )
    if "n" in warm.get("topology", {}):
        warm["topology"]["n"] = min(warm["topology"]["n"], 16)
    started = time.perf_counter()
    _simulate(_config(warm))
    warmup = time.perf_counter() - started
    gc.collect()
    result, prepared = _simulate(config, phases=True)
    result["first_use_s"] = warmup
    unit = spec.get("unit", "interactions")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
    result["unit"] = unit
    result["rate_per_s"] = _done(result, unit) / result["wall_s"]
    result["interactions_per_s"] = result["interactions"] / result["wall_s"]
    result["node_steps_per_s"] = result["node_steps"] / result["wall_s"]
    if spec.get("reference"):
        reference = _run_reference(
            spec["reference"], prepared, result["interactions"], result["records"]
        )
        result["reference"] = reference
        result["speedup_vs_reference"] = reference["wall_s"] / result["wall_s"]
        # Process time is less sensitive to other load on the machine than wall time.
        result["speedup_vs_reference_cpu"] = reference["cpu_s"] / result["cpu_s"]
    if spec.get("limit"):
        limit = _run_reference(spec["limit"], prepared, result["interactions"], result["records"])
        result["compiled_limit"] = limit
        # >= 1 would mean simulate() is as fast as the event-free compiled loop.
        result["ratio_to_compiled_limit"] = limit["wall_s"] / result["wall_s"]
    del prepared
    gc.collect()
    scaling = spec.get("scaling")
    if scaling:
        result["scaling"] = _scaling(data, scaling, quick)
    if spec.get("profile_interactions"):
        count = max(10, spec["profile_interactions"] // (10 if quick else 1))
        result["hot_spots"] = _hot_spots(_config(data, interactions=count))
    result["peak_memory_mib"] = _peak_mib()
    result["status"] = "ok"
    return result


def run_cli_reference(name: str, spec: dict[str, Any], quick: bool, extra: dict) -> dict:
    """The child side of a ``cli`` workload: the numpy reference of the same math.

    ``extra`` holds what the CLI run reported (interactions, records), so the reference
    does the same number of interactions and loss evaluations.
    """
    data = _shrink(spec["config"], 10) if quick else spec["config"]
    from gossipsim.experiment.runner import prepare

    started = time.perf_counter()
    prepared = prepare(_config(data))
    setup = time.perf_counter() - started
    reference = _run_reference(
        spec["reference"], prepared, int(extra["interactions"]), int(extra["records"])
    )
    reference["prepare_s"] = setup
    return {"status": "ok", "reference": reference, "peak_memory_mib": _peak_mib()}


def _median_wall(config, repeats: int = 3) -> float:
    """Median wall time of ``repeats`` runs (these runs are short: one is too noisy)."""
    return float(np.median([_simulate(config)[0]["wall_s"] for _ in range(repeats)]))


def _scaling(data: dict[str, Any], scaling: dict[str, Any], quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shrink = 10 if quick else 1
    low, high = (count // shrink for count in scaling["interactions"])
    times = {}
    for count in (low, high):
        times[count] = _median_wall(_config(data, interactions=count))
    out["interactions"] = {
        "counts": [low, high],
        "wall_s": [times[low], times[high]],
        "time_ratio": times[high] / times[low],
        "count_ratio": high / low,
    }
    small, large = scaling["nodes"]
    fixed = scaling["nodes_interactions"] // shrink
    per_node = data["objective"]["dataset"]["n_samples"] / data["topology"]["n"]
    times = {}
    for nodes in (small, large):
        variant = json.loads(json.dumps(data))
        variant["topology"]["n"] = nodes
        variant["objective"]["dataset"]["n_samples"] = int(per_node * nodes)
        variant["stop"] = {"interactions": fixed}
        times[nodes] = _median_wall(_config(variant))
    out["nodes"] = {
        "counts": [small, large],
        "interactions": fixed,
        "wall_s": [times[small], times[large]],
        "time_ratio": times[large] / times[small],
    }
    return out


def run_sweep_workload(name: str, spec: dict[str, Any], quick: bool) -> dict[str, Any]:
    try:
        from gossipsim.experiment.sweep import load_sweep, run_sweep
    except ImportError:
        return {
            "status": "pending",
            "reason": "gossipsim.experiment.sweep is not in the package yet",
        }
    data = json.loads(json.dumps(spec["config"]))
    if quick:
        data["stop"]["interactions"] //= 10
    workers = int(spec.get("workers", 2))
    repeats = 1 if quick else int(spec.get("repeats", 3))
    walls: dict[str, list[float]] = {"serial": [], "process": []}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        sweep = load_sweep(path)
        # Serial and process sweeps alternate, so that both see the same machine; the figure
        # is the median over the pairs (one pair is at the mercy of the machine's noise).
        for repeat in range(repeats):
            for executor in ("serial", "process"):
                started = time.perf_counter()
                outcome = run_sweep(
                    sweep,
                    out=Path(scratch) / f"{executor}-{repeat}",
                    executor=executor,
                    workers=workers if executor == "process" else None,
                    progress=False,
                )
                walls[executor].append(time.perf_counter() - started)
                failed = [r for r in outcome.results if r.status != "complete"]
                if failed:
                    return {
                        "status": "error",
                        "error": f"{len(failed)} runs failed: {failed[0].error}",
                    }
    ratios = [s / p for s, p in zip(walls["serial"], walls["process"], strict=True)]
    serial = float(np.median(walls["serial"]))
    process = float(np.median(walls["process"]))
    return {
        "status": "ok",
        "unit": "runs",
        "runs": len(sweep.runs),
        "workers": workers,
        "repeats": repeats,
        "serial_walls_s": walls["serial"],
        "process_walls_s": walls["process"],
        "pair_ratios": ratios,
        "serial_wall_s": serial,
        "process_wall_s": process,
        "wall_s": process,
        "rate_per_s": len(sweep.runs) / process,
        "speedup_process_vs_serial": float(np.median(ratios)),
        "peak_memory_mib": _peak_mib(),
    }


def child(name: str, output: Path, quick: bool, extra: dict[str, Any] | None = None) -> None:
    spec = load_spec(name)
    try:
        if spec["kind"] == "sweep":
            result = run_sweep_workload(name, spec, quick)
        elif spec["kind"] == "cli":
            result = run_cli_reference(name, spec, quick, extra or {})
        else:
            result = run_simulation(name, spec, quick)
    except Exception as exc:  # reported in results.json, never hides the other workloads
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    output.write_text(json.dumps(result, indent=2))


# -- parent side ---------------------------------------------------------------------------


def load_spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKLOADS / f"{name}.yaml").read_text())


def _tail(text: str | None, lines: int = 6) -> str:
    return " | ".join((text or "").strip().splitlines()[-lines:])


def spawn_child(
    name: str, quick: bool, extra: dict[str, Any] | None = None, timeout: float = CHILD_TIMEOUT
) -> dict[str, Any]:
    """Run one workload's in-process measurements in a fresh child process."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "benchmarks.run", "--child", name]
        command += ["--child-output", str(out)] + (["--quick"] if quick else [])
        if extra is not None:
            command += ["--child-extra", json.dumps(extra)]
        try:
            process = subprocess.run(
                command, cwd=HERE.parent, check=False, timeout=timeout, stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"status": "error", "error": f"child timed out after {timeout:.0f} s"}
        if process.stderr:
            sys.stderr.write(process.stderr)
        if out.exists():
            return json.loads(out.read_text())
        return {
            "status": "error",
            "error": f"child exited {process.returncode}: {_tail(process.stderr)}",
        }


def cli_run(
    data: dict[str, Any], phases: bool = False, timeout: float = CHILD_TIMEOUT
) -> dict[str, Any]:
    """``gossipsim run CONFIG --out DIR --quiet`` in a fresh process, through the probe.

    Returns the probe's report (imports, prepare, simulate, write, peak memory) with the
    whole process's wall time as the parent saw it, and the fixed cost: the process's wall
    time minus ``simulate()``'s.
    """
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        path = root / "config.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        report = root / "probe.json"
        command = [sys.executable, "-m", "benchmarks.cli_probe", str(report)]
        command += (["--phases"] if phases else []) + ["--"]
        command += ["run", str(path), "--out", str(root / "out"), "--quiet"]
        env = dict(os.environ, BENCH_SPAWNED_AT=repr(time.time()))
        begun = time.perf_counter()
        try:
            process = subprocess.run(
                command, cwd=HERE.parent, env=env, check=False, timeout=timeout,
                capture_output=True, text=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"status": "error", "error": f"CLI run timed out after {timeout:.0f} s"}
        wall = time.perf_counter() - begun
        if not report.exists():
            return {
                "status": "error",
                "error": f"CLI exited {process.returncode}: {_tail(process.stderr)}",
            }
        result = json.loads(report.read_text())
    result["process_wall_s"] = wall
    if result.get("exit_code") != 0 or "simulate_s" not in result:
        result["status"] = "error"
        result["error"] = f"CLI exited {result.get('exit_code')}: {_tail(process.stderr)}"
        return result
    result["status"] = "ok"
    simulate = result["simulate_s"]
    result["fixed_cost_s"] = wall - simulate
    begin = result.get("interpreter_start_s", 0.0)
    prepare, write = result.get("prepare_s", 0.0), result.get("write_s", 0.0)
    result["fixed_parts_s"] = {
        "interpreter_start": begin,
        "imports": result["imports_s"],
        "prepare_data_and_graph": prepare,
        "write_results": write,
        # load_config, run id, environment facts, summary, gc inside ``gossipsim run``
        "rest_of_run_command": result["main_s"] - prepare - simulate - write,
        "interpreter_exit": wall - begin - result["in_process_s"],
    }
    return result


def run_workload(name: str, quick: bool) -> dict[str, Any]:
    """All measurements of one workload (each in its own process); never raises."""
    try:
        spec = load_spec(name)
        kind = spec["kind"]
        data = spec.get("config")
        if data is not None and quick and kind != "sweep":
            data = _shrink(data, 10)
        if kind == "sweep":
            return spawn_child(name, quick)
        if kind == "cli":
            run = cli_run(data)
            if run["status"] != "ok":
                return {"status": "error", "error": run["error"], "cli": run}
            reference = spawn_child(name, quick, extra=run)
            result: dict[str, Any] = {
                "status": reference.get("status", "error"),
                "unit": spec.get("unit", "interactions"),
                "cli": run,
                "wall_s": run["process_wall_s"],
                "rate_per_s": _done(run, spec.get("unit", "interactions")) / run["process_wall_s"],
                "peak_memory_mib": run["peak_memory_mib"],
            }
            if reference.get("status") != "ok":
                result["error"] = f"reference: {reference.get('error')}"
                return result
            result["reference"] = reference["reference"]
            result["reference_peak_memory_mib"] = reference["peak_memory_mib"]
            result["speedup_vs_reference"] = (
                reference["reference"]["wall_s"] / run["process_wall_s"]
            )
            return result
        unit = spec.get("unit", "interactions")
        if spec.get("cli_only"):
            run = cli_run(data, phases=True)
            if run["status"] != "ok":
                return {"status": "error", "error": run["error"], "cli": run}
            return {
                "status": "ok",
                "unit": unit,
                "measured": "cli",
                "wall_s": run["simulate_s"],
                "rate_per_s": _done(run, unit) / run["simulate_s"],
                "interactions": run["interactions"],
                "node_steps": run["local_steps"],
                "iterations": run["iterations"],
                "records": run["records"],
                "profile": run["profile"],
                "peak_memory_mib": run["peak_memory_mib"],
                "process_wall_s": run["process_wall_s"],
                "fixed_cost_s": run["fixed_cost_s"],
                "cli": run,
            }
        result = spawn_child(name, quick)
        if result.get("status") == "ok":
            run = cli_run(data)
            result["cli"] = run
            if run["status"] == "ok":
                result["process_wall_s"] = run["process_wall_s"]
                result["fixed_cost_s"] = run["fixed_cost_s"]
                # With the first use of the compiled kernels (loaded or compiled inside
                # simulate()): the process minus the warm in-process simulate().
                result["fixed_cost_with_first_use_s"] = run["process_wall_s"] - result["wall_s"]
        return result
    except Exception as exc:  # one workload's failure never stops the others
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def machine() -> dict[str, Any]:
    """The facts that decide the figures."""
    import numpy as np
    import scipy
    import simpy
    from threadpoolctl import threadpool_info

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "simpy": simpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "blas": [
            {
                **{
                    key: pool.get(key)
                    for key in ("user_api", "internal_api", "version", "num_threads")
                },
                # Which library, not where this machine keeps it.
                "library": os.path.basename(pool.get("filepath") or ""),
            }
            for pool in threadpool_info()
        ],
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "thread_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
        "load_average_at_start": os.getloadavg(),
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets (issue 12, and issue 7's still in force), each with its figure and verdict."""
    checks: list[dict[str, Any]] = []

    def add(target: str, measured: Any, met: bool | None) -> None:
        checks.append({"target": target, "measured": measured, "met": met})

    def ok(name: str) -> dict[str, Any] | None:
        r = results.get(name)
        return r if r is not None and r.get("status") == "ok" else None

    one = ok("swarm-1k")
    if one:
        if "ratio_to_compiled_limit" in one:
            ratio = one["ratio_to_compiled_limit"]
            add("swarm-1k: simulate() >= 0.8x the compiled limit", round(ratio, 3), ratio >= 0.8)
        if "speedup_vs_reference" in one:
            add(
                "swarm-1k: >= 3x the interactions/s of the numpy reference",
                round(one["speedup_vs_reference"], 2),
                one["speedup_vs_reference"] >= 3.0,
            )
        if "fixed_cost_s" in one:
            fixed = one["fixed_cost_s"]
            add("swarm-1k: fixed cost of a CLI run <= 1.0 s", round(fixed, 2), fixed <= 1.0)
        scaling = one.get("scaling", {})
        if scaling:
            ratio = scaling["interactions"]["time_ratio"]
            add("10x interactions costs <= 11x time", round(ratio, 2), ratio <= 11.0)
            ratio = scaling["nodes"]["time_ratio"]
            add("10x nodes at fixed interactions costs <= 2x time", round(ratio, 2), ratio <= 2.0)
        for name in COMPARED:
            r = ok(name)
            if r:
                ratio = r["rate_per_s"] / one["rate_per_s"]
                add(
                    f"{name}: >= 0.5x swarm-1k's rate ({r['unit']}/s)",
                    round(ratio, 3),
                    ratio >= 0.5,
                )
    for name in ORDER:
        r = ok(name)
        if r and "profile" in r:
            fraction = r["profile"]["event_loop_fraction"]
            target = f"{name}: event-loop share of simulate() < 25%"
            add(target, round(fraction, 3), fraction < 0.25)
    ten = ok("swarm-10k")
    if ten:
        add("swarm-10k: under 5 minutes", round(ten["wall_s"], 1), ten["wall_s"] < 300)
        add(
            "swarm-10k: peak memory under 2 GiB",
            round(ten["peak_memory_mib"], 1),
            ten["peak_memory_mib"] < 2048,
        )
    big = ok("swarm-100k")
    if big:
        wall = big.get("process_wall_s", big["wall_s"])
        add("swarm-100k: under 10 minutes (whole process)", round(wall, 1), wall < 600)
        memory = big["peak_memory_mib"]
        add("swarm-100k: peak memory under 4 GiB", round(memory, 1), memory < 4096)
    cli = ok("cli-swarm-1m")
    if cli:
        speedup = cli["speedup_vs_reference"]
        add(
            "CLI, no engine section, swarm-1k at 1M interactions: whole process >= 3x numpy",
            round(speedup, 3),
            speedup >= 3.0,
        )
    sweep = ok("sweep-8")
    if sweep:
        speedup = sweep["speedup_process_vs_serial"]
        add("sweep-8: process executor >= 1.7x serial", round(speedup, 2), speedup >= 1.7)
    for name in ORDER:
        status = results.get(name, {}).get("status")
        if status in ("pending", "error"):
            add(f"{name}: runs", status, None if status == "pending" else False)
    return checks


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table(results: dict[str, Any]) -> str:
    """The Markdown table of a run (README and terminal)."""
    lines = [
        "| workload | simulate() (s) | rate | x swarm-1k | event loop | fixed cost (s) "
        "| whole process (s) | peak memory (MiB) | vs numpy | vs compiled limit | first use (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = results.get("swarm-1k", {})
    base_rate = base.get("rate_per_s") if base.get("status") == "ok" else None
    for name in ORDER:
        r = results.get(name)
        if r is None:
            continue
        if r.get("status") != "ok":
            reason = (r.get("reason") or r.get("error") or "").replace("|", "/")
            lines.append(f"| {name} | {r.get('status')}: {reason} |" + " |" * 10)
            continue
        rate_value = r["rate_per_s"]
        digits = 2 if rate_value < 100 else 0
        unit = r["unit"].replace("_", "-")
        rate = f"{rate_value:,.{digits}f} {unit}/s"
        relative = ""
        if base_rate and name in COMPARED:
            relative = f"{rate_value / base_rate:.2f}x"
        profile = r.get("profile")
        loop = f"{100 * profile['event_loop_fraction']:.1f}%" if profile else ""
        fixed = ""
        if "fixed_cost_s" in r:
            fixed = f"{r['fixed_cost_s']:.2f}"
            if "fixed_cost_with_first_use_s" in r:
                fixed += f" ({r['fixed_cost_with_first_use_s']:.2f})"
        elif "cli" in r and "fixed_cost_s" in r["cli"]:
            fixed = f"{r['cli']['fixed_cost_s']:.2f}"
        process = r.get("process_wall_s", r.get("cli", {}).get("process_wall_s"))
        simulate = r["wall_s"] if name != "cli-swarm-1m" else r["cli"].get("simulate_s")
        if "speedup_process_vs_serial" in r:
            versus = f"{r['speedup_process_vs_serial']:.2f}x serial"
            simulate, process = None, r["wall_s"]
        elif "speedup_vs_reference" in r:
            versus = f"{r['speedup_vs_reference']:.2f}x"
        else:
            versus = ""
        limit = f"{r['ratio_to_compiled_limit']:.2f}x" if "ratio_to_compiled_limit" in r else ""
        memory = f"{r['peak_memory_mib']:,.0f}"
        first = _seconds(r.get("first_use_s"))
        lines.append(
            f"| {name} | {_seconds(simulate)} | {rate} | {relative} | {loop} | {fixed} "
            f"| {_seconds(process)} | {memory} | {versus} | {limit} | {first} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", action="append", choices=ORDER)
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--skip-long", action="store_true", help="leave out the workloads marked long: true"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-extra", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        extra = json.loads(args.child_extra) if args.child_extra else None
        child(args.child, args.child_output, args.quick, extra)
        return 0
    names = args.only or ORDER
    if args.skip_long:
        names = [name for name in names if not load_spec(name).get("long")]
    facts = machine()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        begun = time.perf_counter()
        results[name] = run_workload(name, args.quick)
        results[name]["child_wall_s"] = time.perf_counter() - begun
        status = results[name].get("status")
        detail = results[name].get("error", "")
        print(f"[bench] {name}: {status} {detail}".rstrip(), flush=True)
    facts["load_average_at_end"] = os.getloadavg()
    report = {
        "issue": 12,
        "quick": args.quick,
        "skip_long": args.skip_long,
        "total_wall_s": time.perf_counter() - started,
        "machine": facts,
        "workloads": results,
        "targets": targets(results),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(results))
    print()
    for check in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "pending"}[check["met"]]
        print(f"- {check['target']}: {check['measured']} ({mark})")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
