"""The performance harness: ``make bench`` (``python -m benchmarks.run``).

Each workload in ``benchmarks/workloads/*.yaml`` runs in a fresh child process, so its peak
memory is its own. The child prepares the run (data, graph: reported, not timed), times the
simulation, and, where the workload names one, runs the plain numpy reference of the same
math in the same process right after, so the ratio compares like with like. The parent
collects everything, with the machine facts that decide the figures (Python, numpy, BLAS
and its threads, ``OPENBLAS_*`` variables, load average), checks the targets of issue 7 and
writes ``benchmarks/results.json``.

Options: ``--only NAME`` (repeatable), ``--output PATH``, ``--quick`` (a tenth of the
interactions, to try the harness itself).
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
ORDER = ["swarm-1k", "swarm-10k", "mlp-digits", "gc-100", "sweep-8"]


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
    """Wall time spent in the numeric kernels (executor flushes, metric evaluation).

    Wall time, not process time: BLAS threads add process time to the kernels that the
    single-threaded event loop does not have, which would flatter the event loop's share.
    """

    def __init__(self) -> None:
        self.flush = 0.0
        self.metrics = 0.0
        self._patches: list[tuple[type, str, Any]] = []

    def __enter__(self) -> PhaseTimer:
        from gossipsim.engine.batched import BatchedExecutor
        from gossipsim.engine.simulation import Simulation

        timer = self
        flush = BatchedExecutor.flush
        record = Simulation.record

        def timed_flush(executor) -> None:
            started = time.perf_counter()
            flush(executor)
            timer.flush += time.perf_counter() - started

        def timed_record(sim):
            before = timer.flush
            started = time.perf_counter()
            row = record(sim)
            timer.metrics += time.perf_counter() - started - (timer.flush - before)
            return row

        self._patches = [(BatchedExecutor, "flush", flush), (Simulation, "record", record)]
        BatchedExecutor.flush = timed_flush
        Simulation.record = timed_record
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in self._patches:
            setattr(owner, name, original)


def _simulate(config, phases: bool = False) -> dict[str, Any]:
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
        "records": len(outcome.rows),
        "final_loss": outcome.rows[-1]["loss"],
        "stop_reason": outcome.stop_reason,
        "sim_time": outcome.end_time,
    }
    executor = sim.executor
    if hasattr(executor, "waves"):
        result["waves"] = executor.waves
        result["ops_per_wave"] = (sim.interactions + sim.local_steps) / max(1, executor.waves)
    if phases:
        numeric = timer.flush + timer.metrics
        result["profile"] = {
            "numeric_kernels_s": numeric,
            "flush_s": timer.flush,
            "metrics_s": timer.metrics,
            "event_loop_s": wall - numeric,
            "event_loop_fraction": (wall - numeric) / wall,
        }
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


def run_simulation(name: str, spec: dict[str, Any], quick: bool) -> dict[str, Any]:
    from gossipsim.algorithms import ALGORITHMS

    needed = spec.get("requires_algorithm")
    if needed and needed not in ALGORITHMS:
        return {"status": "pending", "reason": f"algorithm '{needed}' is not in the package yet"}
    data = spec["config"]
    if quick:
        data = json.loads(json.dumps(data))
        for key in ("interactions", "iterations"):
            if key in data["stop"]:
                data["stop"][key] = max(1, data["stop"][key] // 10)
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
    done = result["iterations"] if unit == "iterations" else result["interactions"]
    result["unit"] = unit
    result["rate_per_s"] = done / result["wall_s"]
    if spec.get("reference"):
        module = importlib.import_module(f"benchmarks.reference.{spec['reference']}")
        cpu = time.process_time()
        reference = module.run(prepared, result["interactions"], max(1, result["records"]))
        cpu = time.process_time() - cpu
        result["reference"] = {
            "wall_s": reference["wall_time"],
            "cpu_s": cpu,
            "rate_per_s": result["interactions"] / reference["wall_time"],
            "final_loss": reference["loss"],
        }
        result["speedup_vs_reference"] = reference["wall_time"] / result["wall_s"]
        # Process time is less sensitive to other load on the machine than wall time.
        result["speedup_vs_reference_cpu"] = cpu / result["cpu_s"]
    scaling = spec.get("scaling")
    if scaling:
        result["scaling"] = _scaling(data, scaling, quick)
    if spec.get("profile_interactions"):
        count = spec["profile_interactions"] // (10 if quick else 1)
        result["hot_spots"] = _hot_spots(_config(data, interactions=count))
    result["peak_memory_mib"] = _peak_mib()
    result["status"] = "ok"
    return result


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


def child(name: str, output: Path, quick: bool) -> None:
    spec = yaml.safe_load((WORKLOADS / f"{name}.yaml").read_text())
    try:
        if spec["kind"] == "sweep":
            result = run_sweep_workload(name, spec, quick)
        else:
            result = run_simulation(name, spec, quick)
    except Exception as exc:  # reported in results.json, never hides the other workloads
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    output.write_text(json.dumps(result, indent=2))


# -- parent side ---------------------------------------------------------------------------


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
                key: pool.get(key)
                for key in ("user_api", "internal_api", "version", "num_threads", "filepath")
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
    """The targets of issue 7, each with its measured figure and whether it is met."""
    checks: list[dict[str, Any]] = []

    def add(target: str, measured: Any, met: bool | None) -> None:
        checks.append({"target": target, "measured": measured, "met": met})

    one = results.get("swarm-1k", {})
    if one.get("status") == "ok":
        add(
            "swarm-1k: >= 3x the interactions/s of the numpy reference",
            round(one["speedup_vs_reference"], 2),
            one["speedup_vs_reference"] >= 3.0,
        )
        fraction = one["profile"]["event_loop_fraction"]
        add("swarm-1k: event-loop share of time < 25%", round(fraction, 3), fraction < 0.25)
        scaling = one.get("scaling", {})
        if scaling:
            ratio = scaling["interactions"]["time_ratio"]
            add("10x interactions costs <= 11x time", round(ratio, 2), ratio <= 11.0)
            ratio = scaling["nodes"]["time_ratio"]
            add("10x nodes at fixed interactions costs <= 2x time", round(ratio, 2), ratio <= 2.0)
    ten = results.get("swarm-10k", {})
    if ten.get("status") == "ok":
        add("swarm-10k: under 5 minutes", round(ten["wall_s"], 1), ten["wall_s"] < 300)
        add(
            "swarm-10k: peak memory under 2 GiB",
            round(ten["peak_memory_mib"], 1),
            ten["peak_memory_mib"] < 2048,
        )
    sweep = results.get("sweep-8", {})
    if sweep.get("status") == "ok":
        speedup = sweep["speedup_process_vs_serial"]
        add("sweep-8: process executor >= 1.7x serial", round(speedup, 2), speedup >= 1.7)
    for name in ORDER:
        status = results.get(name, {}).get("status")
        if status in ("pending", "error"):
            add(f"{name}: runs", status, None if status == "pending" else False)
    return checks


def table(results: dict[str, Any]) -> str:
    lines = [
        "| workload | wall (s) | rate | peak memory (MiB) | reference wall (s) | ratio "
        "| first use (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ORDER:
        r = results.get(name)
        if r is None:
            continue
        if r.get("status") != "ok":
            reason = r.get("reason") or r.get("error") or ""
            lines.append(f"| {name} | {r.get('status')}: {reason} | | | | | |")
            continue
        digits = 2 if r["rate_per_s"] < 100 else 0
        rate = f"{r['rate_per_s']:,.{digits}f} {r['unit']}/s"
        if "reference" in r:
            ref = f"{r['reference']['wall_s']:.2f}"
            ratio = f"{r['speedup_vs_reference']:.2f}x"
        elif "speedup_process_vs_serial" in r:
            ref = f"{r['serial_wall_s']:.2f} (serial)"
            ratio = f"{r['speedup_process_vs_serial']:.2f}x"
        else:
            ref, ratio = "", ""
        memory = f"{r['peak_memory_mib']:,.0f}"
        first = f"{r['first_use_s']:.2f}" if "first_use_s" in r else ""
        lines.append(
            f"| {name} | {r['wall_s']:.2f} | {rate} | {memory} | {ref} | {ratio} | {first} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", action="append", choices=ORDER)
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.child_output, args.quick)
        return 0
    names = args.only or ORDER
    facts = machine()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "result.json"
            command = [sys.executable, "-m", "benchmarks.run", "--child", name]
            command += ["--child-output", str(out)] + (["--quick"] if args.quick else [])
            begun = time.perf_counter()
            process = subprocess.run(command, cwd=HERE.parent, check=False)
            if out.exists():
                results[name] = json.loads(out.read_text())
            else:
                results[name] = {"status": "error", "error": f"child exited {process.returncode}"}
        results[name]["child_wall_s"] = time.perf_counter() - begun
        print(f"[bench] {name}: {results[name].get('status')}", flush=True)
    facts["load_average_at_end"] = os.getloadavg()
    report = {
        "issue": 7,
        "quick": args.quick,
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
