"""Command line: ``gossipsim run | validate | plot``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tqdm import tqdm

from gossipsim.config import ConfigError, RunConfig, config_to_yaml, load_config


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
    else:
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
        bar.n = min(float(row[key]), float(total))
        bar.set_postfix_str(f"loss {row['loss']:.4g}", refresh=False)
        bar.refresh()

    return update, bar


def _format_bits(bits: float) -> str:
    for unit, size in (("GB", 8e9), ("MB", 8e6), ("kB", 8e3)):
        if bits >= size:
            return f"{bits / size:.2f} {unit}"
    return f"{bits / 8:.0f} B"


def cmd_validate(args: argparse.Namespace) -> int:
    from gossipsim.runner import prepare

    config = load_config(args.config, args.set)
    prepared = prepare(config)
    if args.print:
        print(config_to_yaml(config), end="")
    print(
        f"{args.config}: ok — {config.algorithm.kind} on {config.topology.kind} "
        f"(n={config.topology.n}, λ₂={prepared.spectral_gap:.4g}), "
        f"{config.objective.kind} with d={prepared.problem.objective.dim}, "
        f"{prepared.problem.n_train} training samples"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gossipsim.runner import run_to_directory

    config = load_config(args.config, args.set)
    update, bar = _progress_bar(config, args.quiet)
    try:
        record = run_to_directory(config, args.out, progress=update)
    finally:
        if bar is not None:
            bar.close()
    outcome = record.outcome
    first, last = outcome.rows[0], outcome.rows[-1]
    accuracy = "" if last["accuracy"] != last["accuracy"] else f", accuracy {last['accuracy']:.4f}"
    print(
        f"{config.name}/{record.run_id}: {outcome.status} ({outcome.stop_reason}) — "
        f"{last['time']:.4g} s simulated, {last['interactions']} interactions, "
        f"{last['epochs']:.3g} epochs, loss {first['loss']:.4g} → {last['loss']:.4g}"
        f"{accuracy}, consensus {last['consensus']:.3g}, {_format_bits(last['bits'])} sent, "
        f"wall {record.meta['wall_time']:.2f} s → {record.path}"
    )
    return 0 if outcome.status == "complete" else 3


def cmd_plot(args: argparse.Namespace) -> int:
    from gossipsim.plots import plot_runs

    target = plot_runs(args.path, x=args.x, y=args.y, output=args.output)
    print(f"wrote {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gossipsim", description="Discrete-event simulator for distributed SGD."
    )
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

    plot = sub.add_parser("plot", help="plot metrics of the runs in a results directory")
    plot.add_argument("path", help="a results/<name> directory or one run directory")
    plot.add_argument("--x", default="time", help="x column (time, interactions, epochs, bits)")
    plot.add_argument("--y", default="loss", help="y column (loss, accuracy, consensus, ...)")
    plot.add_argument("--output", "-o", help="output PNG (default: <path>/<y>_vs_<x>.png)")
    plot.set_defaults(handler=cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gossipsim`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"error: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
