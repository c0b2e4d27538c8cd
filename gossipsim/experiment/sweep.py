"""Sweeps: expand a config's ``sweep:`` section into runs and execute them anywhere.

A ``sweep:`` section may hold

- ``grid:`` a mapping of dotted keys to lists of values (cartesian product),
- ``zip:`` a mapping of dotted keys to lists of equal length (advanced together),
- ``cases:`` named hand-picked combinations, either ``{name: {dotted.key: value}}`` or a
  list of ``{name: ..., dotted.key: value}`` mappings,
- ``seeds: K`` replicates: replicate ``r`` of a run with seed ``S`` gets the seed
  ``Streams(S).child(r).seed`` (an independent stream), written into its resolved config.

The runs are the product cases × grid × zip × seeds. Every run is validated (and its graph,
data and timing models built) before any starts; one bad combination stops the sweep with a
:class:`~gossipsim.experiment.config.ConfigError` naming the key, the value and where it
was written.

When a swept key is a ``kind`` (``objective.partition.kind: [iid, dirichlet]``), keys of
that section written in the file that the new kind does not accept (``alpha`` for ``iid``)
are dropped for that combination instead of making it invalid.

Executors (``serial``, ``process``, ``dask``) only decide *where* a run executes: each run
builds its own random streams from its seed, so the results are bit-for-bit the same
whichever executor or worker count ran them. Runs whose directory already exists with status
``complete`` or ``diverged`` are skipped; ``failed`` and ``interrupted`` runs are retried.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from gossipsim.experiment import config as cfg
from gossipsim.experiment.config import (
    ConfigError,
    ConfigSource,
    RunConfig,
    load_yaml,
    validate_data,
)
from gossipsim.experiment.results import (
    check_output_dir,
    code_fingerprint,
    environment,
    metrics_table,
    read_meta,
    read_run,
    run_id,
    run_problem,
    warn,
    write_run,
)
from gossipsim.signals import sigint_deferred
from gossipsim.system.rng import Streams
from gossipsim.text import count_of

EXECUTORS = ("serial", "process", "dask")
SWEEP_KEYS = ("grid", "zip", "seeds", "cases")
DONE_STATUSES = ("complete", "diverged")
#: Columns of the metrics table of a run that failed before recording anything.
EMPTY_METRICS = ("time", "interactions", "loss", "accuracy", "consensus", "bits", "epochs")

Executor = Literal["serial", "process", "dask"]
ResultsOn = Literal["worker", "client"]


# --------------------------------------------------------------------------------------------
# expansion


@dataclass
class SweepRun:
    """One expanded run: its swept values, its validated config and its run id."""

    index: int
    params: dict[str, Any]
    config: RunConfig
    run_id: str
    case: str | None = None
    replicate: int | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return self.config.seed

    def sweep_meta(self) -> dict[str, Any]:
        """What ``meta.json`` records about this run's place in the sweep."""
        return {
            "index": self.index,
            "keys": list(self.params),
            "params": self.params,
            "case": self.case,
            "replicate": self.replicate,
            "dropped": self.dropped,
        }


@dataclass
class Sweep:
    """The expanded runs of one sweep config."""

    name: str
    source: str
    keys: list[str]
    runs: list[SweepRun]
    has_cases: bool = False
    seeds: int | None = None

    def __len__(self) -> int:
        return len(self.runs)

    def table(self) -> list[dict[str, Any]]:
        """One row per run: index, case, swept values, seed, replicate, run id."""
        rows = []
        for run in self.runs:
            row: dict[str, Any] = {"#": run.index}
            if self.has_cases:
                row["case"] = run.case
            row.update({key: run.params.get(key) for key in self.keys})
            row["seed"] = run.seed
            if self.seeds is not None:
                row["replicate"] = run.replicate
            row["run_id"] = run.run_id
            rows.append(row)
        return rows

    def format_table(self, out: str | Path | None = None) -> str:
        """The run table as aligned text (with each run's status under ``out`` if given)."""
        rows = self.table()
        if out is not None:
            for row, run in zip(rows, self.runs, strict=True):
                meta = existing_meta(out, self.name, run.run_id)
                row["status"] = meta.get("status", "-") if meta else "-"
        if not rows:
            return "(no runs)"
        columns = list(rows[0])
        cells = [[_cell(row[c]) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        for r in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return format_value(value)
    return str(value)


def format_value(value: Any) -> str:
    """A swept value as compact text (flow-style YAML for sections and lists)."""
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


class _SweepSource(ConfigSource):
    """Locates a swept key at the line of the sweep section that set it."""

    def __init__(
        self,
        path: str,
        positions: dict[tuple[str | int, ...], int],
        swept: dict[tuple[str, ...], tuple[tuple[str | int, ...], Any]],
    ) -> None:
        super().__init__(path, positions)
        self.swept = swept

    def locate(self, path: tuple[Any, ...]) -> str:
        string_path = tuple(str(p) for p in path)
        for key, (where, value) in self.swept.items():
            if string_path[: len(key)] == key:
                line = _line(self.positions, where)
                place = f"{self.path}:{line}" if line is not None else self.path
                dotted = ".".join(key)
                return f"{place} (sweep: {dotted}={format_value(value)})"
        return super().locate(path)


def _line(positions: dict[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    probe = tuple(path)
    while probe and probe not in positions:
        probe = probe[:-1]
    return positions.get(probe)


def _sweep_error(source: str, positions: dict, where: tuple[Any, ...], message: str) -> ConfigError:
    line = _line(positions, where)
    place = f"{source}:{line}" if line is not None else source
    return ConfigError([f"{place}: {'.'.join(str(p) for p in where)}: {message}"])


def _split_key(key: Any, source: str, positions: dict, where: tuple[Any, ...]) -> tuple[str, ...]:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise _sweep_error(source, positions, where, f"invalid key {key!r} (use dotted names)")
    parts = tuple(key.split("."))
    if parts[0] in ("sweep", "name"):
        raise _sweep_error(source, positions, where, f"'{parts[0]}' cannot be swept")
    return parts


@dataclass
class _Axis:
    """One factor of the product: a list of (label, assignments, case name)."""

    choices: list[tuple[dict[str, Any], str | None]]


def _parse_sweep(
    spec: Any, source: str, positions: dict
) -> tuple[list[_Axis], list[str], bool, int | None, dict[str, tuple[Any, ...]]]:
    """Check the sweep section; return the axes, the swept keys in order, and more."""
    root = ("sweep",)
    if not isinstance(spec, dict):
        raise _sweep_error(source, positions, root, "must be a mapping (grid, zip, seeds, cases)")
    unknown = sorted(str(k) for k in spec if k not in SWEEP_KEYS)
    if unknown:
        raise _sweep_error(
            source,
            positions,
            (*root, unknown[0]),
            f"unknown key '{unknown[0]}'; valid keys: {', '.join(SWEEP_KEYS)}",
        )
    axes: list[_Axis] = []
    keys: list[str] = []
    where_of: dict[str, tuple[Any, ...]] = {}

    def note(key: str, where: tuple[Any, ...]) -> None:
        if key not in keys:
            keys.append(key)
        where_of.setdefault(key, where)

    has_cases = False
    cases = spec.get("cases")
    if cases is not None:
        has_cases = True
        items: list[tuple[str, Any, tuple[Any, ...]]] = []
        if isinstance(cases, dict):
            for name, body in cases.items():
                items.append((str(name), body, (*root, "cases", str(name))))
        elif isinstance(cases, list):
            for i, body in enumerate(cases):
                where: tuple[Any, ...] = (*root, "cases", i)
                if not isinstance(body, dict) or "name" not in body:
                    raise _sweep_error(
                        source, positions, where, "each case needs a 'name' and dotted keys"
                    )
                body = {k: v for k, v in body.items() if k != "name"}
                items.append((str(cases[i]["name"]), body, where))
        else:
            raise _sweep_error(
                source, positions, (*root, "cases"), "must map case names to dotted keys"
            )
        if not items:
            raise _sweep_error(source, positions, (*root, "cases"), "must not be empty")
        names = [name for name, _, _ in items]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise _sweep_error(
                source, positions, (*root, "cases"), f"case name '{duplicate}' is used twice"
            )
        choices: list[tuple[dict[str, Any], str | None]] = []
        for name, body, where in items:
            if not isinstance(body, dict):
                raise _sweep_error(source, positions, where, "must map dotted keys to values")
            for key in body:
                _split_key(key, source, positions, (*where, key))
                note(str(key), (*where, key))
            choices.append((dict(body), name))
        axes.append(_Axis(choices))

    grid = spec.get("grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise _sweep_error(source, positions, (*root, "grid"), "must map dotted keys to lists")
        for key, values in grid.items():
            where = (*root, "grid", str(key))
            _split_key(key, source, positions, where)
            if not isinstance(values, list) or not values:
                raise _sweep_error(source, positions, where, "must be a non-empty list of values")
            note(key, where)
            axes.append(_Axis([({key: v}, None) for v in values]))

    zipped = spec.get("zip")
    if zipped is not None:
        if not isinstance(zipped, dict) or not zipped:
            raise _sweep_error(source, positions, (*root, "zip"), "must map dotted keys to lists")
        lengths = {}
        for key, values in zipped.items():
            where = (*root, "zip", str(key))
            _split_key(key, source, positions, where)
            if not isinstance(values, list) or not values:
                raise _sweep_error(source, positions, where, "must be a non-empty list of values")
            lengths[key] = len(values)
            note(key, where)
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            raise _sweep_error(
                source, positions, (*root, "zip"), f"lists must have equal lengths ({detail})"
            )
        length = next(iter(lengths.values()))
        axes.append(_Axis([({k: zipped[k][i] for k in zipped}, None) for i in range(length)]))

    seeds = spec.get("seeds")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise _sweep_error(
            source, positions, (*root, "seeds"), f"must be a positive integer, got {seeds!r}"
        )
    duplicated = [k for k in (grid or {}) if k in (zipped or {})]
    if duplicated:
        raise _sweep_error(
            source, positions, (*root, "zip", duplicated[0]), "is also swept in grid"
        )
    return axes, keys, has_cases, seeds, where_of


def expand(
    data: dict[str, Any],
    source: str = "<config>",
    positions: dict[tuple[str | int, ...], int] | None = None,
    check: bool = True,
) -> Sweep:
    """Expand config data holding a ``sweep:`` section into validated runs.

    With ``check`` (the default) each run's graph, data and timing models are also built,
    so a disconnected graph or a size that does not fit is reported before anything runs.
    Raises :class:`ConfigError` naming the file, line, key and value of the first bad run.
    """
    positions = positions or {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the config must be a mapping of sections"])
    base = copy.deepcopy(data)
    spec = base.pop("sweep", None)
    if spec is None:
        spec = {}
    axes, keys, has_cases, seeds, where_of = _parse_sweep(spec, source, positions)
    base_seed = base.get("seed", 0)

    runs: list[SweepRun] = []
    identifiers: dict[str, int] = {}
    combos = itertools.product(*(axis.choices for axis in axes)) if axes else [()]
    for combo in combos:
        assignments: dict[str, Any] = {}
        case = None
        for values, name in combo:
            assignments.update(values)
            case = name if name is not None else case
        replicates: list[int | None] = list(range(seeds)) if seeds else [None]
        for replicate in replicates:
            run_data = copy.deepcopy(base)
            swept_parts: dict[tuple[str, ...], tuple[tuple[Any, ...], Any]] = {}
            for key, value in assignments.items():
                parts = tuple(key.split("."))
                try:
                    cfg.apply_override(run_data, list(parts), copy.deepcopy(value))
                except ConfigError:
                    raise _sweep_error(
                        source, positions, where_of[key], f"{key}: a parent is not a section"
                    ) from None
                swept_parts[parts] = (where_of[key], value)
            kind_keys = [p for p in swept_parts if p[-1] == "kind"]
            dropped = cfg.drop_foreign_keys(run_data, kind_keys, set(swept_parts))
            seed_value = run_data.get("seed", base_seed)
            if replicate is not None:
                if isinstance(seed_value, bool) or not isinstance(seed_value, int):
                    seed_value = run_data.get("seed")
                    raise _sweep_error(
                        source, positions, ("seed",), f"must be an integer, got {seed_value!r}"
                    )
                if seed_value < 0:
                    raise _sweep_error(
                        source, positions, ("seed",), f"must be >= 0, got {seed_value}"
                    )
                run_data["seed"] = Streams(seed_value).child(replicate).seed
            where = _SweepSource(source, positions, swept_parts)
            config = _validated(run_data, where, assignments, check)
            identifier = run_id(config.resolved())
            if identifier in identifiers:
                other = identifiers[identifier]
                raise ConfigError(
                    [
                        f"{source}: sweep: runs {other} and {len(runs)} resolve to the same "
                        f"config ({_describe(assignments) or 'no swept keys'}); "
                        "a swept key may not change anything"
                    ]
                )
            identifiers[identifier] = len(runs)
            params = {key: assignments.get(key) for key in keys if key in assignments}
            runs.append(SweepRun(len(runs), params, config, identifier, case, replicate, dropped))
    name = runs[0].config.name
    return Sweep(name, source, keys, runs, has_cases, seeds)


def _describe(assignments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in assignments.items())


def _validated(
    data: dict[str, Any], source: ConfigSource, assignments: dict[str, Any], check: bool
) -> RunConfig:
    try:
        config = validate_data(data, source)
        if check:
            from gossipsim.experiment.runner import prepare

            prepare(config)
    except ConfigError as exc:
        if assignments:
            combo = _describe(assignments)
            problems = [f"{p} [sweep combination: {combo}]" for p in exc.problems]
            raise ConfigError(problems) from None
        raise
    return config


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``--grid KEY=V1,V2`` → (KEY, [V1, V2]) with each value parsed as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ConfigError([f"--grid {text}: expected KEY=V1,V2,..., e.g. algorithm.lr=0.05,0.1"])
    values = []
    for item in raw.split(","):
        try:
            values.append(yaml.safe_load(item) if item.strip() else None)
        except yaml.YAMLError:
            raise ConfigError([f"--grid {text}: value {item!r} is not valid YAML"]) from None
    return key.strip(), values


def load_sweep(
    path: str | Path,
    overrides: Sequence[str] | None = None,
    check: bool = True,
    grid: Sequence[str] = (),
    seeds: int | None = None,
) -> Sweep:
    """Read a sweep YAML (``--set`` overrides applied first) and expand it.

    ``grid`` (``KEY=V1,V2`` texts) adds keys to ``sweep.grid`` and ``seeds`` sets
    ``sweep.seeds``, so any config can be swept from the command line.
    """
    data, positions = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config must be a mapping of sections"])
    if grid or seeds is not None:
        spec = data.get("sweep")
        spec = dict(spec) if isinstance(spec, dict) else {}
        if grid:
            spec["grid"] = dict(spec.get("grid") or {})
            for text in grid:
                key, values = parse_grid(text)
                spec["grid"][key] = values
        if seeds is not None:
            spec["seeds"] = seeds
        data["sweep"] = spec
    _, dropped = cfg.apply_overrides(data, overrides or [])
    for note in dropped:
        cfg.warn_dropped(note)
    return expand(data, str(path), positions, check=check)


# --------------------------------------------------------------------------------------------
# one run, wrapped so that nothing it does stops the sweep


@dataclass
class RunResult:
    """How one run of a sweep ended (``path`` is None for a client-side run not yet written)."""

    index: int
    run_id: str
    status: str  # complete | diverged | failed | skipped statuses keep the stored status
    error: str | None
    path: Path | None
    skipped: bool = False
    # Skipped, but computed by other code (meta.json ``code`` differs from this package's).
    stale: bool = False
    payload: tuple[dict[str, Any], dict[str, Any], pa.Table] | None = None
    params: dict[str, Any] = field(default_factory=dict)


def empty_metrics() -> pa.Table:
    """A valid metrics table without rows (a run that failed before its first record)."""
    types = {"interactions": pa.int64(), "bits": pa.int64()}
    return pa.table(
        {name: pa.array([], type=types.get(name, pa.float64())) for name in EMPTY_METRICS}
    )


def _task(
    resolved: dict[str, Any], sweep_meta: dict[str, Any], out: str, results_on: str
) -> RunResult:
    """Run one config (from its resolved data) in a scratch directory; never raises."""
    from gossipsim.experiment.runner import run_to_directory

    identifier = run_id(resolved)
    rows: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix=f"gossipsim-{identifier}-"))
    started = time.time()
    clock = time.perf_counter()
    try:
        try:
            config = validate_data(copy.deepcopy(resolved))
            record = run_to_directory(config, scratch, progress=lambda row: rows.append(dict(row)))
            config_data, meta, table = read_run(record.path)
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded, not raised
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            detail = traceback.format_exc(limit=-8)
            columns = list(rows[0]) if rows else []
            table = metrics_table(rows, columns) if rows else empty_metrics()
            config_data = resolved
            meta = {
                "name": resolved.get("name"),
                "run_id": identifier,
                "seed": resolved.get("seed"),
                "started": started,
                "status": "failed",
                "stop_reason": "error",
                "wall_time": time.perf_counter() - clock,
                "final": _finite(rows[-1]) if rows else None,
                **environment(),
                "error": error,
                "traceback": detail,
            }
        meta["sweep"] = sweep_meta
        params = dict(sweep_meta.get("params") or {})
        if results_on == "client":
            return RunResult(
                sweep_meta["index"],
                identifier,
                meta["status"],
                meta.get("error"),
                None,
                payload=(config_data, meta, table),
                params=params,
            )
        path = write_run(out, resolved["name"], identifier, config_data, meta, table)
        return RunResult(
            sweep_meta["index"], identifier, meta["status"], meta.get("error"), path, params=params
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


# --------------------------------------------------------------------------------------------
# running a sweep


def existing_meta(out: str | Path, name: str, identifier: str) -> dict[str, Any] | None:
    """The meta.json of a run directory already under ``out``, if there is one."""
    path = Path(out) / name / identifier
    try:
        return read_meta(path)
    except (OSError, ValueError):
        return None


@dataclass
class SweepOutcome:
    """The end of a sweep: one result per run, in sweep order."""

    sweep: Sweep
    out: Path
    results: list[RunResult]
    wall_time: float

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status not in ("complete",)]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts


def run_sweep(
    sweep: Sweep,
    out: str | Path = "results",
    executor: Executor = "serial",
    workers: int | None = None,
    scheduler: str | None = None,
    results_on: ResultsOn = "worker",
    progress: bool | None = None,
    dask_processes: bool = True,
    rerun_stale: bool = False,
) -> SweepOutcome:
    """Run the runs of ``sweep`` not already complete under ``out``; never stop on a failure.

    A finished run found under ``out`` is skipped, unless it was computed by other gossipsim
    source code (its ``meta.json`` ``code`` fingerprint differs) and ``rerun_stale`` is set;
    stale runs that are kept are counted in the summary.

    ``executor`` is ``serial``, ``process`` (local pool, ``workers`` defaults to the number of
    cores) or ``dask`` (``scheduler`` address, or a ``LocalCluster`` of ``workers``).
    ``results_on="client"`` has the runs' data sent back and written here, for clusters
    without a shared file system. ``progress=None`` shows a bar only on a terminal.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: unknown executor '{executor}'; valid: {', '.join(EXECUTORS)}")
    if results_on not in ("worker", "client"):
        raise ValueError(f"results_on: must be 'worker' or 'client', got '{results_on}'")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be at least 1, got {workers}")
    from tqdm import tqdm

    started = time.perf_counter()
    out = check_output_dir(Path(out).resolve(), "out")
    results: dict[int, RunResult] = {}
    pending: list[SweepRun] = []
    code = code_fingerprint()
    for run in sweep.runs:
        meta = existing_meta(out, sweep.name, run.run_id)
        done = meta is not None and meta.get("status") in DONE_STATUSES
        if done:
            problem = run_problem(out / sweep.name / run.run_id)
            if problem is not None:
                warn(f"rerunning {out / sweep.name / run.run_id}: damaged ({problem})")
                done = False
        stale = done and meta is not None and meta.get("code") != code
        if done and not (stale and rerun_stale):
            assert meta is not None
            results[run.index] = RunResult(
                run.index,
                run.run_id,
                str(meta["status"]),
                meta.get("error"),
                out / sweep.name / run.run_id,
                skipped=True,
                stale=stale,
                params=run.params,
            )
        else:
            pending.append(run)

    tasks: list[tuple[dict[str, Any], dict[str, Any], str, str]]
    tasks = [(run.config.resolved(), run.sweep_meta(), str(out), results_on) for run in pending]
    bar = tqdm(
        total=len(sweep.runs),
        initial=len(results),
        unit="run",
        desc=sweep.name,
        dynamic_ncols=True,
        disable=False if progress else None if progress is None else True,
        smoothing=0.1,
    )
    try:
        for result in _execute(tasks, executor, workers, scheduler, dask_processes):
            if result.payload is not None:
                config_data, meta, table = result.payload
                result.path = write_run(out, sweep.name, result.run_id, config_data, meta, table)
                result.payload = None
            results[result.index] = result
            bar.update(1)
            if result.status == "interrupted":  # Ctrl-C / SIGTERM: its rows are kept, stop
                raise KeyboardInterrupt
            if result.status != "complete":
                notice = f"{sweep.name}/{result.run_id}: {result.status}: {_error_text(result)}"
                bar.write(notice, file=sys.stderr)
    except KeyboardInterrupt:
        raise SweepInterrupted(sweep, results) from None
    finally:
        bar.close()
    ordered = [results[run.index] for run in sweep.runs]
    return SweepOutcome(sweep, out, ordered, time.perf_counter() - started)


def _execute(
    tasks: list[tuple[dict[str, Any], dict[str, Any], str, str]],
    executor: str,
    workers: int | None,
    scheduler: str | None,
    dask_processes: bool,
) -> Iterator[RunResult]:
    """Yield each task's result as it finishes."""
    if not tasks:
        return
    if executor == "serial":
        for task in tasks:
            yield _task(*task)
    elif executor == "process":
        yield from _execute_processes(tasks, workers)
    else:
        yield from _execute_dask(tasks, workers, scheduler, dask_processes)


def _execute_processes(
    tasks: list[tuple[dict[str, Any], dict[str, Any], str, str]], workers: int | None
) -> Iterator[RunResult]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    count = min(workers or os.cpu_count() or 1, len(tasks))
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["gossipsim.experiment.runner"])
    # Share the cores between the workers' BLAS threads (as Dask does for its workers):
    # ``count`` workers each running a full-width BLAS pool oversubscribe the machine.
    threads = max(1, (os.cpu_count() or 1) // count)
    # numba's parallel kernels (large waves, metrics of large data sets) take their thread
    # count from the environment when numba is imported, in the fork server, which the pool
    # starts (a user's own setting stands). Starting them in each worker instead would
    # create their process lock in every worker, also in sweeps of small runs.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
    # Ctrl-C reaches the whole process group. The workers ignore SIGINT (and the fork
    # server starts with it blocked), so it interrupts only this process, which then stops
    # the workers itself: no worker is caught half-way through an import or a generator's
    # clean-up, and nothing is printed but the summary.
    pool = ProcessPoolExecutor(
        count, mp_context=context, initializer=_worker_init, initargs=(threads,)
    )
    futures: list[Any] = []
    try:
        with sigint_deferred():
            futures = [pool.submit(_task, *task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_THREAD_LIMITS: list[Any] = []  # kept alive for the worker's lifetime


def _worker_init(threads: int) -> None:
    """Process-pool initializer: ignore SIGINT (the parent stops the workers), leave cleanly
    on the parent's SIGTERM, and use at most ``threads`` BLAS/OpenMP threads. The modules
    the worker starts with stay out of its garbage collections (as in the ``gossipsim``
    command: the collection after each run would walk them all)."""
    import gc
    import signal

    gc.freeze()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    from threadpoolctl import threadpool_limits

    _THREAD_LIMITS.append(threadpool_limits(limits=threads))


def _stop_worker(signum: int, frame: Any) -> None:
    """SIGTERM from the parent (:func:`_stop_workers`): leave at once, but first release the
    named semaphores this worker created — numba's parallel backend takes one in every
    forkserver process — which a plain SIGTERM would leave behind for the resource tracker
    to report as leaked."""
    from multiprocessing import util

    util._run_finalizers(0)  # type: ignore[attr-defined]  # priority >= 0: semaphores among them
    os._exit(128 + signum)


def _stop_workers(pool: Any) -> None:
    """Terminate a process pool's workers (their runs are retried when the sweep resumes)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.terminate()


def _execute_dask(
    tasks: list[tuple[dict[str, Any], dict[str, Any], str, str]],
    workers: int | None,
    scheduler: str | None,
    processes: bool,
) -> Iterator[RunResult]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - dask is a dependency
        raise ValueError(f"executor: dask needs 'dask[distributed]' installed ({exc})") from None
    import logging

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        count = min(workers or os.cpu_count() or 1, len(tasks))
        logging.getLogger("distributed").setLevel(logging.ERROR)
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    try:
        futures = [client.submit(_task, *task, pure=False) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _error_text(result: RunResult) -> str:
    if result.error:
        return result.error
    if result.status == "diverged":
        from gossipsim.experiment.runner import DIVERGED

        return DIVERGED
    return "no error text"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a sweep; ``str()`` says how far it got and how to resume."""

    def __init__(self, sweep: Sweep, results: dict[int, RunResult]) -> None:
        self.total = len(sweep.runs)
        finished = [r for r in results.values() if r.status != "interrupted"]
        self.finished = len(finished)
        self.this_time = sum(not r.skipped for r in finished)
        super().__init__(
            f"interrupted: {self.finished} of {count_of(self.total, 'run')} of {sweep.name} "
            "finished "
            f"({self.this_time} in this invocation); run the same command again to resume "
            "(finished runs are skipped)"
        )


def summary_lines(outcome: SweepOutcome) -> list[str]:
    """Human summary of a finished sweep: counts, then every run that did not complete."""
    sweep = outcome.sweep
    counts = outcome.counts()
    skipped = sum(r.skipped for r in outcome.results)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [
        f"{sweep.name}: {count_of(len(outcome.results), 'run')} "
        f"({parts}; {skipped} already done, skipped) "
        f"in {outcome.wall_time:.1f} s → {outcome.out / sweep.name}"
    ]
    stale = sum(r.stale for r in outcome.results)
    if stale:
        lines.append(
            f"  note: {stale} of the skipped runs were computed by other gossipsim code "
            "(meta.json 'code' differs from this installation's); --rerun-stale recomputes them"
        )
    for result in outcome.failed:
        combo = _describe(result.params) or "base config"
        run = sweep.runs[result.index]
        lines.append(
            f"  {result.status}: {sweep.name}/{result.run_id} (#{result.index}, {combo}, "
            f"seed {run.seed}): {_error_text(result)}"
        )
    return lines
