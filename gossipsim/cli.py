"""Command line: ``gossipsim run | validate | sweep | collect | plot | report``."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

from gossipsim.experiment.config import ConfigError, RunConfig, config_to_yaml, load_config
from gossipsim.text import count_of


def _progress_bar(
    config: RunConfig, quiet: bool
) -> tuple[Callable[[dict], None] | None, tqdm | None]:
    """A progress bar over whichever stop rule bounds the run (shown after one second)."""
    if quiet:
        return None, None
    stop = config.stop
    if stop.time is not None:
        key, total, unit = "time", stop.time, "sim s"
    elif stop.interactions is not None:
        key, total, unit = "interactions", stop.interactions, "interactions"
    elif stop.iterations is not None:
        key, total, unit = "iteration", stop.iterations, "iterations"
    else:
        assert stop.epochs is not None  # StopConfig requires at least one bound
        key, total, unit = "epochs", stop.epochs, "epochs"
    bar = tqdm(
        total=float(total),
        unit=unit,
        delay=1.0,
        dynamic_ncols=True,
        disable=None,  # off when stderr is not a terminal (CI, pipes)
        bar_format="{l_bar}{bar}| {n:.4g}/{total:.4g} {unit} [{elapsed}<{remaining}]{postfix}",
    )

    def update(row: dict) -> None:
        bar.n = min(float(row.get(key, row.get("iterations", 0))), float(total))
        bar.set_postfix_str(f"loss {row['loss']:.4g}", refresh=False)
        bar.refresh()

    return update, bar


def _format_bits(bits: float) -> str:
    for unit, size in (("GB", 8e9), ("MB", 8e6), ("kB", 8e3)):
        if bits >= size:
            return f"{bits / size:.2f} {unit}"
    return f"{bits / 8:.0f} B"


def cmd_validate(args: argparse.Namespace) -> int:
    from gossipsim.experiment.runner import prepare

    config = load_config(args.config, args.set)
    prepared = prepare(config)
    from gossipsim.algorithms import REGISTRY

    graph_kind = REGISTRY[config.algorithm.kind].graph_name or prepared.graph.graph.get(
        "kind", config.topology.kind
    )
    if args.print:
        print(config_to_yaml(config), end="")
    print(
        f"{args.config}: ok — {config.algorithm.kind} on {graph_kind} "
        f"(n={prepared.graph.number_of_nodes()}, λ₂={prepared.spectral_gap:.4g}), "
        f"{config.objective.kind} with d={prepared.problem.objective.dim}, "
        f"{prepared.problem.n_train} training samples"
    )
    return 0


def _freeze_imports() -> None:
    """Leave the objects of the imported modules out of every later garbage collection.

    They live as long as the process; numba, scipy and pydantic make them many, and each
    full collection (one after every run, others as the run allocates) would walk them
    all: about 50 ms per collection at the end of a run.
    """
    gc.freeze()


def cmd_run(args: argparse.Namespace) -> int:
    from gossipsim.algorithms import REGISTRY
    from gossipsim.experiment.results import check_output_dir
    from gossipsim.experiment.runner import run_to_directory

    config = load_config(args.config, args.set)
    check_output_dir(args.out)
    _freeze_imports()
    update, bar = _progress_bar(config, args.quiet)
    try:
        record = run_to_directory(config, args.out, progress=update)
    finally:
        if bar is not None:
            bar.close()
    outcome = record.outcome
    first, last = outcome.rows[0], outcome.rows[-1]
    accuracy = "" if last["accuracy"] != last["accuracy"] else f", accuracy {last['accuracy']:.4f}"
    line = REGISTRY[config.algorithm.kind].progress_line
    if line is not None:  # the algorithm's own account (gradient coding: iterations)
        progress = line(first, last)
    else:
        progress = (
            f"{last['interactions']} interactions, "
            f"{last['epochs']:.3g} epochs, loss {first['loss']:.4g} → {last['loss']:.4g}"
            f"{accuracy}, consensus {last['consensus']:.3g}"
        )
    print(
        f"{config.name}/{record.run_id}: {outcome.status} ({outcome.stop_reason}) — "
        f"{last['time']:.4g} s simulated, {progress}, {_format_bits(last['bits'])} sent, "
        f"wall {record.meta['wall_time']:.2f} s → {record.path}"
    )
    if outcome.status == "interrupted":
        return 130
    return 0 if outcome.status == "complete" else 3


def cmd_sweep(args: argparse.Namespace) -> int:
    from gossipsim.experiment.results import check_output_dir
    from gossipsim.experiment.sweep import load_sweep, run_sweep, summary_lines

    sweep = load_sweep(args.config, args.set, grid=args.grid, seeds=args.seeds)
    if args.dry_run:
        print(sweep.format_table(args.out))
        print(
            f"{count_of(len(sweep), 'run')} of {sweep.name} → {args.out}/{sweep.name}/ "
            "(dry run: none started)"
        )
        return 0
    check_output_dir(args.out)
    _freeze_imports()
    outcome = run_sweep(
        sweep,
        args.out,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        results_on=args.results_on,
        progress=False if args.quiet else None,
        rerun_stale=args.rerun_stale,
    )
    for line in summary_lines(outcome):
        print(line)
    return 0 if outcome.ok else 3


def cmd_collect(args: argparse.Namespace) -> int:
    from gossipsim.experiment.results import (
        check_output_file,
        collect,
        default_collect_path,
        write_collected,
    )

    target = Path(args.output) if args.output else default_collect_path(args.path)
    frame = collect(args.path)
    check_output_file(target, "--output")
    target = write_collected(frame, target)
    runs = frame["run_id"].nunique() if len(frame) else 0
    print(
        f"wrote {target}: {count_of(len(frame), 'row')} from {count_of(runs, 'run')}, "
        f"columns: {', '.join(frame.columns)}"
    )
    return 0


def _none(value: str | None) -> str | None:
    return None if value is not None and value.lower() in ("none", "") else value


def cmd_plot(args: argparse.Namespace) -> int:
    from gossipsim.analysis.plots import plot_results

    paths = plot_results(
        args.path,
        x=args.x,
        y=args.y,
        hue=_none(args.hue),
        col=_none(args.col),
        output=args.output,
    )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gossipsim.analysis.report import write_report

    target = write_report(args.path, target=args.target, output=args.output)
    print(f"wrote {target}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from gossipsim.experiment.catalog import CATEGORIES, list_lines

    categories = [args.category] if args.category else [*CATEGORIES, "metrics"]
    for index, category in enumerate(categories):
        if len(categories) > 1:
            print(("\n" if index else "") + f"{category}:")
        for line in list_lines(category):
            print(("  " if len(categories) > 1 else "") + line)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from gossipsim.experiment.catalog import starter_config
    from gossipsim.experiment.results import check_output_file

    text = starter_config(args.algorithm, name=args.name)
    if args.output is None:
        print(text, end="")
        return 0
    target = Path(args.output)
    if target.exists() and not args.force:
        raise ValueError(f"--output {target}: exists (use --force to overwrite)")
    check_output_file(target, "--output")
    target.write_text(text)
    print(f"wrote {target}; check it with: gossipsim validate {target}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from gossipsim.experiment.catalog import config_reference, json_schema

    if args.reference:
        print(config_reference(), end="")
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    import yaml
    from pydantic import TypeAdapter

    from gossipsim.experiment.config import ComputeConfig
    from gossipsim.experiment.results import check_output_file
    from gossipsim.system.fit import fit_trace, report_lines
    from gossipsim.system.traces import read_trace

    if args.output is not None:
        check_output_file(args.output, "--output")
    if args.per_node < 0:
        raise ValueError(f"--per-node: must be >= 0, got {args.per_node}")
    result = fit_trace(read_trace(args.trace))
    section = result.compute_section()
    TypeAdapter(ComputeConfig).validate_python(section)  # what it writes, a config accepts
    text = yaml.safe_dump({"compute": section}, sort_keys=False, default_flow_style=None)
    for line in report_lines(result, per_node=args.per_node):
        print(line)
    print(f"\ncompute section of the best fit ({result.best.kind}), ready to paste:")
    print(text, end="")
    if args.output is not None:
        Path(args.output).write_text(
            f"# fitted by gossipsim fit {args.trace}\n{text}", encoding="utf-8"
        )
        print(f"wrote {args.output}")
    return 0


def cmd_real(args: argparse.Namespace) -> int:
    import json

    from gossipsim.experiment.results import check_output_dir
    from gossipsim.real import compare, run_real
    from gossipsim.real.run import check_config, parse_slow

    config = load_config(args.config, args.set)
    check_config(config)
    slow = parse_slow(args.slow, config.topology.n)
    out = Path(args.out) if args.out else Path("results") / "real" / config.name
    check_output_dir(out.parent, "--out")
    real = run_real(config, slow=slow)
    real.write(out)
    per_node = real.step_node.size / max(real.facts["processes"], 1)
    print(
        f"{config.name}: real {config.algorithm.kind} on {real.facts['processes']} processes, "
        f"{real.wall:.1f} s, {real.step_node.size} local steps ({per_node:.0f} per node), "
        f"loss {real.curve_loss[0]:.4g} → {real.curve_loss[-1]:.4g}, median exchange "
        f"{real.exchange_time * 1e6:.1f} µs → {out}"
    )
    if args.compare:
        results = {}
        for name, fitted in (("trace", False), ("fitted", True)):
            summary = compare(real, out / "trace.csv", fitted=fitted).summary()
            results[name] = summary
            print(
                f"  simulated from the {name}: loss error mean "
                f"{summary['mean_relative_loss_error']:.1%}, max "
                f"{summary['max_relative_loss_error']:.1%}; time to loss "
                f"{summary['target_loss']:.4g}: {summary['predicted_time_to_target_s']:.3g} s "
                f"predicted, {summary['measured_time_to_target_s']:.3g} s measured; local "
                f"steps {summary['steps_error']:+.1%}"
            )
        (out / "comparison.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from gossipsim.experiment.results import ls_lines

    for line in ls_lines(args.path):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import gossipsim

    parser = argparse.ArgumentParser(
        prog="gossipsim", description="Discrete-event simulator for distributed SGD."
    )
    parser.add_argument("--version", action="version", version=f"gossipsim {gossipsim.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="YAML config file")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set algorithm.lr=0.02 (repeatable)",
        )

    run = sub.add_parser("run", help="simulate one config and write a run directory")
    add_config_args(run)
    run.add_argument("--out", default="results", help="results directory (default: results)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="check a config (and build its graph and data)")
    add_config_args(validate)
    validate.add_argument("--print", action="store_true", help="print the resolved config")
    validate.set_defaults(handler=cmd_validate)

    sweep = sub.add_parser(
        "sweep",
        help="expand a config's sweep: section and run every combination",
        description="Expand grid/zip/seeds/cases; validate every run first; run those not "
        "already complete under OUT/<name>/ (failed runs are retried).",
    )
    add_config_args(sweep)
    sweep.add_argument("--out", default="results", help="results directory (default: results)")
    sweep.add_argument(
        "--executor",
        choices=["serial", "process", "dask"],
        default="process",
        help="where runs execute (default: process, a local pool)",
    )
    sweep.add_argument(
        "--workers", type=int, help="processes / Dask workers (default: number of cores)"
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler, e.g. tcp://host:8786 (default: a LocalCluster on this machine)",
    )
    sweep.add_argument(
        "--results-on",
        choices=["worker", "client"],
        default="worker",
        help="who writes run directories: the workers (shared file system) or this process",
    )
    sweep.add_argument(
        "--rerun-stale",
        action="store_true",
        help="also rerun finished runs computed by other gossipsim code (source changed since)",
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="sweep KEY over comma-separated values (YAML syntax each), added to the file's "
        "sweep.grid; repeatable, e.g. --grid algorithm.lr=0.05,0.1 --grid topology.kind=ring,torus",
    )
    sweep.add_argument(
        "--seeds", type=int, metavar="N", help="N replicates of every run (sets sweep.seeds)"
    )
    sweep.add_argument("--dry-run", action="store_true", help="print the table of runs and stop")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=cmd_sweep)

    collect = sub.add_parser("collect", help="gather a sweep's runs into one tidy Parquet table")
    collect.add_argument("path", help="a results/<name> directory")
    collect.add_argument("--output", "-o", help="output file (default: results/<name>.parquet)")
    collect.set_defaults(handler=cmd_collect)

    plot = sub.add_parser(
        "plot",
        help="plot a sweep: mean and 95%% band across seeds (PNG and PDF)",
        description="Draw Y against X from a results/<name> directory or a collected .parquet. "
        "Lines (--hue) and panels (--col) default to the swept parameters.",
    )
    plot.add_argument("path", help="results/<name>, one run directory, or a collected .parquet")
    plot.add_argument("--x", default="time", help="x column: time, interactions, epochs, bits")
    plot.add_argument("--y", default="loss", help="y column: loss, accuracy, consensus, ...")
    plot.add_argument(
        "--hue", default="auto", help="column for line colours, e.g. topology.kind (or none)"
    )
    plot.add_argument(
        "--col", default="auto", help="column for side-by-side panels, e.g. compute.sigma (or none)"
    )
    plot.add_argument(
        "--output",
        "-o",
        help="output file; PNG and PDF are written (default: <path>/<y>_vs_<x>.png)",
    )
    plot.set_defaults(handler=cmd_plot)

    report = sub.add_parser(
        "report", help="write <path>/report.md: final metrics and time/bits to target, figures"
    )
    report.add_argument("path", help="a results/<name> directory")
    report.add_argument(
        "--target", type=float, help="target loss (default: stop.target_loss or the worst final)"
    )
    report.add_argument("--output", "-o", help="Markdown file (default: <path>/report.md)")
    report.set_defaults(handler=cmd_report)

    from gossipsim.experiment.catalog import CATEGORIES

    listing = sub.add_parser(
        "list", help="every kind of a config section with a one-line description and its keys"
    )
    listing.add_argument(
        "category", nargs="?", choices=[*CATEGORIES, "metrics"], help="default: all of them"
    )
    listing.set_defaults(handler=cmd_list)

    init = sub.add_parser("init", help="write a commented, valid starting config")
    init.add_argument(
        "algorithm", nargs="?", default="swarmsgd", help="algorithm.kind (default: swarmsgd)"
    )
    init.add_argument("--name", help="the config's name (default: my-<algorithm>)")
    init.add_argument("--output", "-o", help="file to write (default: print to stdout)")
    init.add_argument("--force", action="store_true", help="overwrite an existing --output")
    init.set_defaults(handler=cmd_init)

    schema = sub.add_parser(
        "schema", help="print the config's JSON Schema (for editor completion and checks)"
    )
    schema.add_argument(
        "--reference",
        action="store_true",
        help="print the Markdown config reference instead (docs/config-reference.md)",
    )
    schema.set_defaults(handler=cmd_schema)

    fit = sub.add_parser(
        "fit",
        help="fit the compute distributions to a measured trace and print a compute: section",
    )
    fit.add_argument("trace", help="CSV or Parquet file with columns node, duration[, time]")
    fit.add_argument("--output", "-o", help="also write the compute: section to this YAML file")
    fit.add_argument(
        "--per-node",
        type=int,
        default=10,
        help="how many nodes' own fits to list (default: 10)",
    )
    fit.set_defaults(handler=cmd_fit)

    real = sub.add_parser(
        "real",
        help="run a config for real (SwarmSGD or D-PSGD as processes on this machine), measured",
    )
    add_config_args(real)
    real.add_argument(
        "--out", help="directory for trace.csv, curve.csv, meta.json (default: results/real/NAME)"
    )
    real.add_argument(
        "--slow",
        action="append",
        default=[],
        metavar="NODE=FACTOR",
        help="make a node FACTOR times slower by sleeping after each step (repeatable)",
    )
    real.add_argument(
        "--compare",
        action="store_true",
        help="then simulate the same config from the measured times and print the errors",
    )
    real.set_defaults(handler=cmd_real)

    ls = sub.add_parser(
        "ls", help="list runs: status, swept values, final loss, wall time (a sweep or results/)"
    )
    ls.add_argument("path", nargs="?", default="results", help="results/<name> or results/")
    ls.set_defaults(handler=cmd_ls)
    return parser


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gossipsim`` console script."""
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a scheduler's kill) ends a run like Ctrl-C: recorded rows are kept.
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        # A shell starts background jobs with SIGINT ignored; `kill -INT` should still stop
        # a run or sweep cleanly (it never reaches them from the terminal's Ctrl-C anyway).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"error: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        print(str(exc) if str(exc).startswith("interrupted") else "interrupted", file=sys.stderr)
        return 130


def entry() -> NoReturn:
    """The ``gossipsim`` console script: :func:`main`, then :func:`finish`."""
    finish(main())


def finish(code: int) -> NoReturn:
    """Exit with ``code`` once the command is done, without freeing the interpreter's modules.

    The command's files are written and closed and the exit handlers run here
    (multiprocessing's among them); what remains of a normal exit is tearing down the
    modules, about 0.2 s for numba, scipy and numpy, a tenth of a short run. ``os._exit``
    skips it. An exception escaping :func:`main` exits the usual way, and so does a run
    under a profiler or tracer (cProfile, coverage), which writes its report at exit.
    """
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
