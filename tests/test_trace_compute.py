"""``compute: {kind: trace}``: step times replayed or resampled from a measured trace."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gossipsim.algorithms import get_algorithm
from gossipsim.cli import main
from gossipsim.engine.batched import SequentialExecutor
from gossipsim.engine.executor import LocalSteps
from gossipsim.experiment.config import ConfigError, TraceCompute
from gossipsim.experiment.runner import build_simulation, prepare, simulate
from gossipsim.system.timing import ComputeModel, TimingError
from gossipsim.system.traces import Trace, read_trace
from tests.conftest import make_config
from tests.test_batched_equivalence import assert_same_run
from tests.test_batched_equivalence import config_for as sync_config
from tests.test_programs import check_same
from tests.test_programs import config_for as program_config

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "tests" / "data" / "trace_small.csv"  # nodes 0, 2 and 5
TRACED = (0, 2, 5)


def write_trace(path: Path, rows: list[tuple[int, float]]) -> Path:
    path.write_text("node,duration\n" + "".join(f"{i},{d!r}\n" for i, d in rows))
    return path


def model(n: int, trace, seed: int = 0, **kwargs) -> ComputeModel:
    return ComputeModel(
        n,
        "trace",
        np.random.default_rng(seed),
        trace=trace,
        trace_rng=np.random.default_rng(1000 + seed),
        **kwargs,
    )


# -- the model ------------------------------------------------------------------------------


def test_replay_returns_each_node_trace_in_order_cycling():
    trace = read_trace(TRACE)
    compute = model(6, trace)
    g = np.random.default_rng(0)
    state = g.bit_generator.state
    for node in TRACED:
        values = trace.durations_of(node)
        k = len(values)
        got = [compute.duration(node, 1, 0.0, g) for _ in range(3 * k + 2)]
        np.testing.assert_array_equal(got, np.resize(values, 3 * k + 2))
    assert g.bit_generator.state == state  # replay draws no random numbers
    # Several steps at once continue the same sequence (a block drawn ahead too).
    values = trace.durations_of(0)
    fresh = model(6, trace)
    assert fresh.duration(0, 2, 0.0, g) == pytest.approx(values[0] + values[1])
    np.testing.assert_array_equal(fresh.step_times(0, 7, g), np.resize(values, 9)[2:9])


def test_nodes_borrowing_a_trace_start_at_seeded_offsets_into_it():
    """Replay: nodes that share a trace are not in lockstep; own traces start at the top."""
    durations = {0: np.arange(1.0, 101.0)}  # one machine, 100 distinct durations
    g = np.random.default_rng(0)
    starts = {}
    for seed in (0, 0, 1):
        compute = ComputeModel(
            8, "trace", np.random.default_rng(seed), trace=durations,
            trace_rng=np.random.default_rng(100 + seed),
        )  # fmt: skip
        firsts = [compute.duration(node, 1, 0.0, g) for node in range(8)]
        assert firsts[0] == 1.0  # node 0 replays its own trace from its first duration
        assert len(set(firsts[1:])) > 1  # the borrowers do not all start together
        for node in range(1, 8):  # ... and go on in the trace's order from their offset
            assert compute.duration(node, 1, 0.0, g) == firsts[node] % 100 + 1
        starts.setdefault(seed, []).append(firsts)
    assert starts[0][0] == starts[0][1]  # the same seed deals the same offsets
    assert starts[0][0] != starts[1][0]


def test_replay_orders_by_the_time_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("node,duration,time\n0,3.0,2.0\n0,1.0,0.0\n0,2.0,1.0\n")
    compute = model(1, read_trace(path))
    g = np.random.default_rng(0)
    assert [compute.duration(0, 1, 0.0, g) for _ in range(4)] == [1.0, 2.0, 3.0, 1.0]


def test_grouping_by_node_keeps_the_reader_order():
    """The model groups the rows with one sort; ties in ``time`` keep the file order."""
    rng = np.random.default_rng(0)
    for time in (None, np.round(rng.random(400) * 5)):
        trace = Trace("t", rng.integers(0, 7, 400), rng.random(400) + 0.1, time)
        compute = model(7, trace)
        for node in trace.nodes:
            np.testing.assert_array_equal(
                compute.sequences[int(node)], trace.durations_of(int(node))
            )


def test_resample_draws_only_the_node_values_and_depends_on_the_seed():
    trace = {0: [1.0, 2.0, 3.5], 1: [10.0, 20.0]}
    compute = model(2, trace, mode="resample")
    draws = {node: compute.step_times(node, 400, np.random.default_rng(7)) for node in (0, 1)}
    assert set(draws[0]) == {1.0, 2.0, 3.5}  # every value, and only these
    assert set(draws[1]) == {10.0, 20.0}
    other = compute.step_times(0, 400, np.random.default_rng(8))
    assert not np.array_equal(draws[0], other)
    np.testing.assert_array_equal(compute.step_times(0, 400, np.random.default_rng(7)), draws[0])
    # One step at a time gives what a block gives: the consistency the compiled loop needs.
    g = np.random.default_rng(7)
    singles = [compute.duration(0, 1, 0.0, g) for _ in range(400)]
    np.testing.assert_array_equal(singles, draws[0])
    assert draws[0].mean() == pytest.approx(6.5 / 3, rel=0.1)


def test_untraced_nodes_are_mapped_by_seed_onto_every_traced_id():
    trace = read_trace(TRACE)
    mappings = set()
    for seed in range(6):
        a = model(20, trace, seed=seed).trace_source
        b = model(20, trace, seed=seed).trace_source
        np.testing.assert_array_equal(a, b)  # deterministic per seed
        for node in TRACED:
            assert a[node] == node  # a traced node keeps its own trace
        untraced = [i for i in range(20) if i not in TRACED]
        uses = Counter(int(a[i]) for i in untraced)
        assert set(uses) == set(TRACED)  # 17 untraced nodes cycle through all 3 ids
        assert max(uses.values()) - min(uses.values()) <= 1
        mappings.add(tuple(a.tolist()))
    assert len(mappings) > 1  # the seed chooses the permutation


def test_the_runner_maps_with_the_run_seed():
    config = make_config(compute={"kind": "trace", "path": str(TRACE)})  # 12 nodes
    first = prepare(config).compute
    again = prepare(config).compute
    np.testing.assert_array_equal(first.trace_source, again.trace_source)
    sources = {
        tuple(
            prepare(
                make_config(seed=seed, compute=config.compute.model_dump())
            ).compute.trace_source
        )
        for seed in range(6)
    }
    assert len(sources) > 1
    durations = read_trace(TRACE)
    np.testing.assert_allclose(
        first.expected_step_times(),
        [durations.durations_of(int(s)).mean() for s in first.trace_source],
    )


def test_a_trace_of_ids_beyond_the_run_lends_them_to_every_node():
    compute = model(2, {7: [1.0], 9: [2.0]})
    assert sorted(compute.trace_source.tolist()) == [7, 9]


def test_heterogeneity_and_stragglers_multiply_the_trace():
    trace = {0: [1.0, 2.0], 1: [1.5], 2: [0.5, 0.25], 3: [4.0]}
    pooled = np.mean([1.0, 2.0, 1.5, 0.5, 0.25, 4.0])
    compute = model(
        4,
        trace,
        heterogeneity={"kind": "uniform", "low": 0.5, "high": 2.0},
        stragglers={"fraction": 0.5, "slowdown": 3.0},
    )
    assert len(compute.straggler_nodes) == 2
    means = np.array([1.5, 1.5, 0.375, 4.0])
    np.testing.assert_allclose(compute.expected_step_times(), means * compute.factors)
    assert compute.mean == pytest.approx(pooled)
    assert compute.period == pytest.approx(10 * pooled)  # the straggler period default
    g = np.random.default_rng(0)
    for node in range(4):
        got = [compute.duration(node, 1, 0.0, g) for _ in range(2)]
        want = np.resize(trace[node], 2) * compute.factors[node]
        np.testing.assert_array_equal(got, want)
    for slow in compute.straggler_nodes:
        assert 3.0 * 0.5 <= compute.factors[slow] <= 3.0 * 2.0


def test_model_errors_name_the_field():
    with pytest.raises(TimingError, match="compute.mode: unknown mode 'shuffle'"):
        model(2, {0: [1.0]}, mode="shuffle")
    with pytest.raises(TimingError, match="compute.path: kind trace needs a trace"):
        model(2, None)
    with pytest.raises(TimingError, match="trace_rng"):
        ComputeModel(3, "trace", np.random.default_rng(0), trace={0: [1.0]})
    with pytest.raises(TimingError, match="takes no trace"):
        ComputeModel(1, "constant", np.random.default_rng(0), trace={0: [1.0]})


# -- runs -------------------------------------------------------------------------------------


class StepCounter(SequentialExecutor):
    """Counts each node's local steps (the operations both event loops submit)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.counted: Counter[int] = Counter()  # (``steps`` is the schedule clock)

    def submit(self, op) -> None:
        if isinstance(op, LocalSteps):
            self.counted[op.node] += op.steps
        super().submit(op)


@pytest.mark.parametrize("lean", [False, True], ids=["simpy", "compiled"])
def test_constant_durations_give_T_over_d_steps(tmp_path, lean):
    """Non-blocking SwarmSGD over instant messages never waits: node i steps T/d_i times."""
    d = [0.5, 0.7, 1.1, 1.3, 0.9, 2.0]
    path = write_trace(
        tmp_path / "constant.csv", [(i, di) for _ in range(3) for i, di in enumerate(d)]
    )
    T = 60.0
    config = make_config(
        topology={"kind": "ring", "n": len(d)},
        compute={"kind": "trace", "path": str(path)},
        network={"latency": 0.0, "bandwidth": math.inf},
        algorithm={"kind": "swarmsgd", "lr": 0.05, "nonblocking": True},
        stop={"time": T},
        record={"every": 10.0},
    )
    sim = build_simulation(prepare(config), executor_class=StepCounter, lean=lean)
    sim.run(get_algorithm(config.algorithm.kind))
    steps = sim.executor.counted
    for i, di in enumerate(d):
        assert abs(steps[i] - T / di) <= 1, (i, steps[i], T / di)
    assert sum(steps.values()) == sim.local_steps


@pytest.mark.parametrize("mode", ["replay", "resample"])
def test_transient_stragglers_on_a_trace_agree_with_the_oracle(mode):
    """Transient slow periods share the timing stream with resampling: every path agrees."""
    compute = {
        "kind": "trace",
        "path": str(TRACE),
        "mode": mode,
        "stragglers": {"fraction": 0.25, "slowdown": 4.0, "mode": "transient", "period": 5.0},
    }
    for extra in ({}, {"nonblocking": True}):
        check_same(program_config("swarmsgd", extra, compute=compute))


@pytest.mark.parametrize("algorithm", ["dpsgd", "allreduce", "local_sgd"])
@pytest.mark.parametrize("mode", ["replay", "resample"])
def test_synchronous_algorithms_run_on_a_trace(algorithm, mode):
    compute = {"kind": "trace", "path": str(TRACE), "mode": mode}
    runs = [
        simulate(prepare(sync_config(algorithm, "none", "logistic", executor, compute=compute)))
        for executor in ("sequential", "batched")
    ]
    assert runs[0][0].rows[-1]["local_steps"] > 0
    assert_same_run(*runs)


@pytest.mark.parametrize("algorithm", ["swarmsgd-nonblocking", "dpsgd"])
def test_faults_on_a_trace_agree_across_executors(algorithm):
    compute = {"kind": "trace", "path": str(TRACE), "mode": "resample"}
    faults = {
        "message_loss": 0.1,
        "timeout": 0.5,
        "crash_recover": {"rate": 0.02, "downtime": {"kind": "exponential", "mean": 3.0}},
    }
    runs = [
        simulate(
            prepare(
                sync_config(algorithm, "none", "logistic", executor, compute=compute, faults=faults)
            )
        )
        for executor in ("sequential", "batched")
    ]
    assert_same_run(*runs)


@pytest.mark.parametrize("mode", ["replay", "resample"])
def test_gradient_coding_runs_on_a_trace(mode):
    def run(executor: str):
        config = make_config(
            algorithm={"kind": "gradient_coding", "scheme": "partial", "workers": 6, "load": 3},
            compute={"kind": "trace", "path": str(TRACE), "mode": mode},
            stop={"iterations": 8},
            engine={"executor": executor},
        )
        return simulate(prepare(config))

    (a, sim_a), (b, sim_b) = run("sequential"), run("batched")
    assert a.stop_reason == b.stop_reason == "iterations"
    assert repr(a.rows) == repr(b.rows)
    np.testing.assert_array_equal(sim_a.models, sim_b.models)


# -- config and command line ------------------------------------------------------------------


def test_config_reads_the_trace_and_has_no_mean():
    config = make_config(compute={"kind": "trace", "path": str(TRACE)})
    assert isinstance(config.compute, TraceCompute)
    assert config.compute.mode == "replay"
    np.testing.assert_array_equal(config.compute.trace.nodes, TRACED)
    with pytest.raises(ConfigError, match="compute.mean: unknown key 'mean'"):
        make_config(compute={"kind": "trace", "path": str(TRACE), "mean": 1.0})
    with pytest.raises(ConfigError, match="compute.mode"):
        make_config(compute={"kind": "trace", "path": str(TRACE), "mode": "shuffle"})


def test_switching_a_config_to_a_trace_from_the_command_line(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides = ["--set", "compute.kind=trace", "--set", "compute.path=configs/traces/example.csv"]
    assert main(["validate", "configs/quickstart.yaml", *overrides]) == 0
    err = capsys.readouterr().err
    # The note names the overridden kind (not the last --set key).
    assert "note: --set compute.kind=trace: dropped compute.mean" in err, err


def test_relative_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    write_trace(tmp_path / "t.csv", [(0, 1.0)])
    monkeypatch.chdir(tmp_path)
    assert make_config(compute={"kind": "trace", "path": "t.csv"}).compute.path == "t.csv"


def test_a_parquet_trace_runs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"node": [0, 1, 0], "duration": [1.0, 2.0, 3.0]}), path)
    config = make_config(compute={"kind": "trace", "path": str(path)}, stop={"time": 5.0})
    outcome, _ = simulate(prepare(config))
    assert outcome.stop_reason == "time"


CONFIG = """\
name: tr
topology: {{kind: ring, n: 4}}
compute: {{kind: trace, path: {path}}}
algorithm: {{kind: swarmsgd}}
stop: {{time: 5}}
"""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "{trace}: trace file not found"),
        ("node,duration\n0,1.0\n1,-2\n", "{trace}:3: duration: must be > 0 seconds, got -2"),
        ("node,duration\n0,1.0\n1,fast\n", "{trace}:3: duration: not a number: 'fast'"),
        ("node,seconds\n0,1.0\n", "{trace}:1: missing column(s) duration"),
    ],
    ids=["missing", "negative", "not-a-number", "no-column"],
)
def test_a_bad_trace_is_one_line_naming_file_and_line(tmp_path, capsys, content, expected):
    trace = tmp_path / "steps.csv"
    if content is not None:
        trace.write_text(content)
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(path=trace))
    assert main(["run", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines == ["error: invalid configuration", lines[1]], err
    assert lines[1].startswith(f"{config}:3: compute.path: {expected.format(trace=trace)}")
    assert not (tmp_path / "r").exists()


def test_a_missing_trace_from_the_command_line_has_no_traceback(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(path=tmp_path / "nope.csv"))
    done = subprocess.run(
        [sys.executable, "-m", "gossipsim", "run", str(config), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "nope.csv: trace file not found" in done.stderr
