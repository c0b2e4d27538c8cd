"""``gossipsim run`` as a user runs it, with stopwatches: ``python -m benchmarks.cli_probe``.

Usage: ``python -m benchmarks.cli_probe REPORT.json [--phases] -- run CONFIG --out DIR``.
Everything after ``--`` goes to ``gossipsim.cli.main`` unchanged and the process then exits
through ``gossipsim.cli.finish``, as the ``gossipsim`` console script does (same imports, same
code path, same exit); the probe only wraps
``gossipsim.experiment.runner``'s ``prepare``, ``simulate`` and ``write_run`` with timers (and, with
``--phases``, :class:`benchmarks.run.PhaseTimer` around ``simulate``) and writes what it
saw to ``REPORT.json`` at exit. The parent measures the whole process's wall time and
passes its start time in ``BENCH_SPAWNED_AT`` (``time.time()``), so the interpreter's own
start-up is accounted for too.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # first statement: the interpreter has started

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402


def main(argv: list[str]) -> int:
    if "--" not in argv:
        raise SystemExit("usage: python -m benchmarks.cli_probe REPORT.json [--phases] -- ARGS")
    split = argv.index("--")
    own, forwarded = argv[:split], argv[split + 1 :]
    report_path = own[0]
    phases = "--phases" in own[1:]
    report: dict[str, Any] = {"argv": forwarded}
    spawned = os.environ.get("BENCH_SPAWNED_AT")
    if spawned:
        report["interpreter_start_s"] = _STARTED - float(spawned)

    begun = time.perf_counter()
    import gossipsim.cli as cli
    import gossipsim.experiment.runner as runner

    report["imports_s"] = time.perf_counter() - begun

    prepare, simulate, write_run = runner.prepare, runner.simulate, runner.write_run
    timer = None
    if phases:
        from benchmarks.run import PhaseTimer

        timer = PhaseTimer()

    def timed_prepare(*args, **kwargs):
        started = time.perf_counter()
        try:
            return prepare(*args, **kwargs)
        finally:
            report["prepare_s"] = time.perf_counter() - started

    def timed_simulate(*args, **kwargs):
        started = time.perf_counter()
        try:
            if timer is None:
                outcome, sim = simulate(*args, **kwargs)
            else:
                with timer:
                    outcome, sim = simulate(*args, **kwargs)
        finally:
            report["simulate_s"] = time.perf_counter() - started
        report["interactions"] = sim.interactions
        report["iterations"] = sim.iterations
        report["local_steps"] = sim.local_steps
        report["records"] = len(outcome.rows)
        report["stop_reason"] = outcome.stop_reason
        if timer is not None:
            report["profile"] = timer.summary(report["simulate_s"])
        return outcome, sim

    def timed_write_run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return write_run(*args, **kwargs)
        finally:
            report["write_s"] = time.perf_counter() - started

    runner.prepare, runner.simulate, runner.write_run = (
        timed_prepare,
        timed_simulate,
        timed_write_run,
    )
    started = time.perf_counter()
    code = 1
    try:
        code = cli.main(forwarded)
    finally:
        report["main_s"] = time.perf_counter() - started
        report["exit_code"] = code
        report["in_process_s"] = time.time() - _STARTED
        report["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        with open(report_path, "w") as handle:
            json.dump(report, handle, indent=2)
    return code


if __name__ == "__main__":
    exit_code = main(sys.argv[1:])  # imports gossipsim.cli on its stopwatch
    from gossipsim.cli import finish

    finish(exit_code)
