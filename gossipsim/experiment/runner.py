"""From a validated config to a finished run: build the pieces, simulate, report.

Errors raised while building (a disconnected graph, a data file with a bad line, a size
that does not fit the topology) are turned into :class:`ConfigError` naming the field
and, when the config came from YAML, its file and line.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from gossipsim.algorithms import REGISTRY, ROUNDS, get_algorithm
from gossipsim.engine.batched import BatchedExecutor, SequentialExecutor
from gossipsim.engine.lean import LeanEnvironment
from gossipsim.engine.problem import Problem, build_problem, initial_models
from gossipsim.engine.schedule import VALUE, Optimizer, schedule_params
from gossipsim.engine.simulation import RunOutcome, Simulation
from gossipsim.experiment.budget import check_memory, node_count
from gossipsim.experiment.config import ConfigError, ConfigSource, RunConfig, TraceCompute
from gossipsim.experiment.results import environment, metrics_table, run_id, write_run
from gossipsim.experiment.sections import NoQuantizer
from gossipsim.system.faults import FaultModel
from gossipsim.system.quantize import make_quantizer
from gossipsim.system.rng import Streams
from gossipsim.system.timing import ComputeModel, Network, read_links
from gossipsim.system.topology import build_graph, spectral_gap

#: The error text of a diverged run (it has no exception; its metrics became non-finite).
DIVERGED = "loss or consensus became non-finite (diverged); a smaller algorithm.lr may help"

_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+): ")


@dataclass
class Prepared:
    """The built, not yet simulated, pieces of a run."""

    config: RunConfig
    streams: Streams
    graph: nx.Graph
    problem: Problem
    compute: ComputeModel
    network: Network
    spectral_gap: float


def _located(config: RunConfig, section: str, error: Exception) -> ConfigError:
    """A builder's error as a ConfigError pointing at the field it names (or the section)."""
    message = str(error)
    match = _FIELD_PREFIX.match(message)
    if match:
        field = match.group(1)
        message = message[match.end() :]
    else:
        field = section
    source = config.source or ConfigSource("<config>")
    return ConfigError([f"{source.locate(tuple(field.split('.')))}: {field}: {message}"])


def prepare(config: RunConfig) -> Prepared:
    """Build the graph, data, objective and timing models; raise ConfigError on bad input."""
    check_memory(config)
    streams = Streams(config.seed)
    topo = config.topology
    n = node_count(config)
    entry = REGISTRY[config.algorithm.kind]
    if entry.graph is not None:  # the algorithm's own machines (gradient coding: a PS star)
        graph = entry.graph(config)
    else:
        try:
            # The kind's own parameters, with the defaults its config model states.
            parameters = topo.model_dump(exclude={"kind", "n"})
            graph = build_graph(topo.kind, topo.n, streams.generator("topology"), **parameters)
        except ValueError as exc:
            raise _located(config, "topology", exc) from None
    try:
        problem = build_problem(config, n, streams)
    except ValueError as exc:
        raise _located(config, "objective", exc) from None
    if entry.check is not None:  # the algorithm's own checks against the data, before the run
        try:
            entry.check(config, problem.n_train, streams)
        except ValueError as exc:
            raise _located(config, "algorithm", exc) from None
    comp = config.compute
    try:
        if isinstance(comp, TraceCompute):
            # Measured step times; the nodes the trace lacks are mapped with their own stream.
            kind_parameters: dict[str, Any] = {
                "trace": comp.trace,
                "mode": comp.mode,
                "trace_rng": streams.generator("timing/trace"),
            }
        else:
            # The distribution's mean and own parameters (sigma, shift or alpha).
            kind_parameters = comp.model_dump(exclude={"kind", "heterogeneity", "stragglers"})
        compute = ComputeModel(
            n,
            comp.kind,
            streams.generator("timing/heterogeneity"),
            **kind_parameters,
            heterogeneity=comp.heterogeneity.model_dump(),
            stragglers=comp.stragglers.model_dump(),
        )
    except ValueError as exc:
        raise _located(config, "compute", exc) from None
    try:
        network = build_network(config, graph, streams)
    except ValueError as exc:
        raise _located(config, "network", exc) from None
    return Prepared(config, streams, graph, problem, compute, network, spectral_gap(graph))


def build_network(config: RunConfig, graph: nx.Graph, streams: Streams) -> Network:
    """The run's network: its numbers or per-link draws, then the links file's values.

    Distributions are drawn for the edges of ``graph`` (sorted, stream ``network/links``);
    a pair ``u < v`` off the graph that an algorithm uses draws from its own stream
    (``network/links/pair/node <u·N + v>``) when first asked for. The links file is read
    and checked against ``graph`` here, before any work.
    """
    net = config.network
    network = Network(_plain(net.latency), _plain(net.bandwidth), net.float_bits)
    if not network.uniform or net.links is not None:
        network.draw_links(
            graph.edges(),
            streams.generator("network/links"),
            lambda keys: streams.generators_at("network/links/pair", keys),
            graph.number_of_nodes(),
        )
    if net.links is not None:
        network.set_links(read_links(net.links, graph))
    return network


def _plain(value: Any) -> Any:
    """A config's number, or its distribution section as a mapping."""
    return value.model_dump() if hasattr(value, "model_dump") else value


def optimizer_of(algorithm: Any, n: int) -> Optimizer:
    """How the nodes of ``algorithm`` step: its lr (or schedule), scaling and momentum.

    All-reduce keeps one global momentum buffer (its models are equal after every round),
    so its buffers are always averaged; ``lr_scaling: linear`` multiplies its rate by n.
    """
    scaling = getattr(algorithm, "lr_scaling", "none")
    averaging = getattr(algorithm, "momentum_averaging", "averaged")
    return Optimizer(
        lr=algorithm.lr,
        scale=float(n) if scaling == "linear" else 1.0,
        momentum=algorithm.momentum,
        nesterov=algorithm.nesterov,
        averaged=averaging == "averaged",
        rounds=REGISTRY[algorithm.kind].clock == ROUNDS,
    )


def build_simulation(
    prepared: Prepared,
    progress: Callable[[dict[str, float]], None] | None = None,
    executor_class: type[BatchedExecutor] | None = None,
    lean: bool | None = None,
) -> Simulation:
    """The simulation of a prepared config, ready to run (faults, if any, started).

    ``engine.executor``: "batched" (the default) runs the lean event loop — the compiled
    interpreter of the algorithm's node program — and applies operations in vectorized
    waves; "sequential" is the reference (SimPy processes, one operation at a time). Runs
    with faults interpret the same program under SimPy, with the batched executor's waves.
    ``executor_class`` and ``lean`` override that choice (tests compare the paths).
    """
    config = prepared.config
    algorithm = config.algorithm
    quantizer_config = getattr(algorithm, "quantizer", NoQuantizer())
    quantizer = make_quantizer(
        **quantizer_config.model_dump(), float_bits=config.network.float_bits
    )
    n = prepared.compute.n  # topology.n, or the machines the algorithm brings
    models = initial_models(config, prepared.problem, n, prepared.streams)
    batched = config.engine.executor == "batched"
    faulty = config.faults.active
    if lean is None:
        # Node programs run on the lean loop with or without faults; the synchronous
        # methods' fault handling (waiting for all of a round's nodes) needs SimPy.
        entry = REGISTRY[algorithm.kind]
        lean = batched and entry.lean
        if faulty and entry.program is None:
            lean = False
    if executor_class is None:
        executor_class = BatchedExecutor if batched else SequentialExecutor
    optimizer = optimizer_of(algorithm, n)
    # Executors that know only a plain rate (the tests' oracle) get just that.
    stepping: dict[str, Any] = {} if optimizer.plain else {"optimizer": optimizer}
    executor = executor_class(
        models,
        prepared.problem,
        lr=float(schedule_params(algorithm.lr)[VALUE]),  # the rate when it is plain
        quantizer=quantizer,
        streams=prepared.streams,
        buffers=bool(getattr(algorithm, "nonblocking", False)),
        **stepping,
    )
    sim = Simulation(
        config,
        prepared.problem,
        prepared.graph,
        models,
        prepared.compute,
        prepared.network,
        executor,
        prepared.streams,
        progress=progress,
        env=LeanEnvironment() if lean else None,
    )
    if faulty:
        try:
            sim.faults = FaultModel(config.faults, prepared.graph, sim.env, prepared.streams)
        except ValueError as exc:
            raise _located(config, "faults", exc) from None
        sim.faults.start()
        if config.stop.time is None:
            window = 1000 * prepared.compute.mean_step_time() + 100 * config.faults.timeout
            sim.env.process(sim.faults.watchdog(sim, window))
        sim.metric_sources.append(sim.faults.metrics)
    return sim


def simulate(
    prepared: Prepared, progress: Callable[[dict[str, float]], None] | None = None
) -> tuple[RunOutcome, Simulation]:
    """Run the simulation of a prepared config."""
    sim = build_simulation(prepared, progress)
    algorithm = prepared.config.algorithm
    try:
        outcome = sim.run(get_algorithm(algorithm.kind))
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: keep what was recorded so far; the run is marked interrupted.
        if not sim.rows:
            sim.record()
        outcome = RunOutcome(
            rows=sim.rows,
            status="interrupted",
            stop_reason="interrupted",
            end_time=float(sim.env.now),
        )
    return outcome, sim


def run_summary(prepared: Prepared, outcome: RunOutcome, wall_time: float) -> dict[str, Any]:
    """Facts about a finished run for ``meta.json``."""
    last = outcome.rows[-1]
    return {
        "status": outcome.status,
        "stop_reason": outcome.stop_reason,
        "end_time": outcome.end_time,
        "wall_time": wall_time,
        "n_nodes": prepared.compute.n,
        "dim": prepared.problem.objective.dim,
        "edges": prepared.graph.number_of_edges(),
        "spectral_gap": prepared.spectral_gap,
        "n_train": prepared.problem.n_train,
        "n_test": int(prepared.problem.dataset.X_test.shape[0]),
        "final": {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in last.items()
        },
    }


def execute(
    config: RunConfig, progress: Callable[[dict[str, float]], None] | None = None
) -> tuple[RunOutcome, dict[str, Any]]:
    """Prepare and simulate; return the outcome and the meta summary."""
    started = time.perf_counter()
    prepared = prepare(config)
    outcome, sim = simulate(prepared, progress)
    summary = run_summary(prepared, outcome, time.perf_counter() - started)
    extra = REGISTRY[config.algorithm.kind].summary
    if extra is not None:  # facts of the algorithm's own (gradient coding: Qmax)
        summary.update(extra(sim))
    # A simulation is a reference cycle (environment → queued process → simulation), which
    # only the cyclic collector frees: collect it now, or a sweep running many runs in one
    # process keeps every run's data set alive until the collector happens to run.
    del sim, prepared
    gc.collect()
    return outcome, summary


@dataclass
class RunRecord:
    """A finished run as written to disk."""

    path: Path
    run_id: str
    outcome: RunOutcome
    meta: dict[str, Any]


def run_to_directory(
    config: RunConfig,
    out: str | Path,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> RunRecord:
    """Simulate ``config`` and write ``out/<name>/<run-id>/`` atomically."""
    resolved = config.resolved()
    identifier = run_id(resolved)
    started = time.time()
    outcome, summary = execute(config, progress=progress)
    meta = {
        "name": config.name,
        "run_id": identifier,
        "seed": config.seed,
        "started": started,
        **summary,
        **environment(),
        "error": DIVERGED if outcome.status == "diverged" else None,
    }
    table = metrics_table(outcome.rows, list(outcome.rows[0]))
    path = write_run(out, config.name, identifier, resolved, meta, table)
    return RunRecord(path, identifier, outcome, meta)
