"""Batched and sequential execution give the same trajectories.

Every registered gossip and synchronous algorithm (each variant the registry declares) runs
with the oracle executor (``tests/oracle/executor.py``: each operation in scalar form, one
at a time, under SimPy), with ``engine.executor: sequential`` (SimPy processes, waves of
one) and with ``batched`` (the compiled loop, operations applied in vectorized waves,
compiled local steps for the linear objectives), for every quantizer the algorithm accepts
and every objective; recorded rows and final models must agree to 1e-12 relative. (The
compiled gradient of the linear models adds in another order than BLAS, so they are not
bit-identical; the MLP still is.)
"""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.algorithms import REGISTRY, get_algorithm
from gossipsim.engine.batched import BatchedExecutor
from gossipsim.experiment.runner import build_simulation, prepare, simulate
from tests.conftest import make_config
from tests.oracle.executor import ScalarExecutor

QUANTIZERS = {
    "none": {"kind": "none"},
    "stochastic": {"kind": "stochastic", "bits": 6},
    "lattice": {"kind": "lattice", "bits": 8, "epsilon": 1.0e-3},
}
OBJECTIVES = {
    "least_squares": {"kind": "least_squares"},
    "logistic": {"kind": "logistic"},
    "softmax": {"kind": "softmax", "dataset_extra": {"n_classes": 3}},
    "mlp": {"kind": "mlp", "hidden": [6], "dataset_extra": {"n_classes": 3}},
}
# Every registered gossip and synchronous algorithm, with each variant it declares.
ALGORITHMS = {
    kind if name == "default" else f"{kind}-{name}": {"kind": kind, **extra}
    for kind, entry in REGISTRY.items()
    if entry.family != "coding"
    for name, extra in [("default", {}), *sorted(entry.variants.items())]
}
ACCEPTS = {name: REGISTRY[spec["kind"]].quantizers for name, spec in ALGORITHMS.items()}
CASES = [
    pytest.param(algorithm, quantizer, objective, id=f"{algorithm}-{quantizer}-{objective}")
    for algorithm in ALGORITHMS
    for quantizer in ACCEPTS[algorithm]
    for objective in OBJECTIVES
]
COLUMNS = ("time", "interactions", "loss", "consensus", "bits", "epochs", "messages", "idle_time")


def config_for(algorithm: str, quantizer: str, objective: str, executor: str, **overrides):
    extra = dict(ALGORITHMS[algorithm])
    kind = extra.pop("kind", algorithm)
    algo = {"kind": kind, "lr": 0.05, **extra}
    if quantizer != "none":
        algo["quantizer"] = QUANTIZERS[quantizer]
    spec = dict(OBJECTIVES[objective])
    dataset = {
        "kind": "synthetic",
        "n_samples": 600,
        "n_features": 5,
        **spec.pop("dataset_extra", {}),
    }
    return make_config(
        **{
            "algorithm": algo,
            "objective.kind": spec.pop("kind"),
            "objective.dataset": dataset,
            **{f"objective.{k}": v for k, v in spec.items()},
            "engine": {"executor": executor},
            "stop": {"time": 12.0},
            **overrides,
        }
    )


def assert_same_run(sequential, batched) -> None:
    (out_s, sim_s), (out_b, sim_b) = sequential, batched
    assert isinstance(sim_b.executor, BatchedExecutor)
    assert out_s.stop_reason == out_b.stop_reason
    assert len(out_s.rows) == len(out_b.rows)
    rows_s = np.array([[row[c] for c in COLUMNS] for row in out_s.rows], dtype=float)
    rows_b = np.array([[row[c] for c in COLUMNS] for row in out_b.rows], dtype=float)
    # Right after a global average the consensus distance is 0 up to rounding (~1e-33),
    # and rounding is all that may differ there; every other column is compared exactly.
    for c, column in enumerate(COLUMNS):
        floor = 1e-20 if column == "consensus" else 0.0
        np.testing.assert_allclose(
            rows_b[:, c], rows_s[:, c], rtol=1e-12, atol=floor, err_msg=column
        )
    # Relative to the models' scale (a coordinate near 0 has no relative precision).
    scale = float(np.abs(sim_s.models).max())
    np.testing.assert_allclose(sim_b.models, sim_s.models, rtol=1e-12, atol=1e-12 * scale)
    assert sim_b.executor.counters == sim_s.executor.counters


def oracle_run(config):
    """The run with the oracle executor: every operation in its scalar form, one at a time."""
    sim = build_simulation(prepare(config), executor_class=ScalarExecutor, lean=False)
    return sim.run(get_algorithm(config.algorithm.kind)), sim


@pytest.mark.parametrize(("algorithm", "quantizer", "objective"), CASES)
def test_batched_equals_sequential(algorithm, quantizer, objective):
    """Waves (batched) and waves of one (sequential) both give the oracle's numbers."""
    oracle = oracle_run(config_for(algorithm, quantizer, objective, "sequential"))
    runs = [
        simulate(prepare(config_for(algorithm, quantizer, objective, executor)))
        for executor in ("sequential", "batched")
    ]
    for run in runs:
        assert_same_run(oracle, run)
    # The linear objectives go through the compiled gradient kernels.
    assert (runs[1][1].executor._linear is not None) == (objective != "mlp")


@pytest.mark.parametrize("algorithm", ["swarmsgd", "swarmsgd-nonblocking", "sgp", "adpsgd"])
def test_small_flush_windows_change_nothing(algorithm):
    """Flushing every few operations (many small waves) gives the same numbers too."""
    config = config_for(algorithm, ACCEPTS[algorithm][-1], "logistic", "batched")
    reference = simulate(
        prepare(config_for(algorithm, ACCEPTS[algorithm][-1], "logistic", "sequential"))
    )
    prepared = prepare(config)
    original = BatchedExecutor.__init__

    def tiny_windows(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "flush_every": 3})

    BatchedExecutor.__init__ = tiny_windows
    try:
        batched = simulate(prepared)
    finally:
        BatchedExecutor.__init__ = original
    assert batched[1].executor.flushes > 10
    assert_same_run(reference, batched)


@pytest.mark.parametrize("rule", [{"interactions": 100}, {"epochs": 1.5}, {"target_loss": 0.63}])
def test_stop_rules_agree(rule):
    """Each rule ends the run before the time bound, in both executors, at the same point."""
    stop = {"time": 40.0, **rule}
    runs = [
        simulate(prepare(config_for("swarmsgd", "lattice", "logistic", executor, stop=stop)))
        for executor in ("sequential", "batched")
    ]
    (reason,) = rule
    assert [outcome.stop_reason for outcome, _ in runs] == [reason, reason]
    assert_same_run(*runs)


def test_uneven_shards_and_batches():
    """Dirichlet shards: some nodes hold fewer samples than the batch size."""
    overrides = {
        "objective.partition": {"kind": "dirichlet", "alpha": 0.3},
        "objective.batch_size": 40,
    }
    runs = [
        simulate(prepare(config_for("swarmsgd", "stochastic", "softmax", executor, **overrides)))
        for executor in ("sequential", "batched")
    ]
    sizes = [y.shape[0] for y in runs[1][1].problem.shard_y]
    assert min(sizes) < 40 <= max(sizes)
    assert_same_run(*runs)


@pytest.mark.parametrize(
    "algorithm", ["swarmsgd", "swarmsgd-nonblocking", "sgp", "dpsgd", "dpsgd-atc"]
)
def test_batched_equals_sequential_under_faults(algorithm):
    """With faults: node programs run compiled, synchronous rounds under SimPy."""
    faults = {
        "message_loss": 0.1,
        "timeout": 0.5,
        "crash_recover": {"rate": 0.02, "downtime": {"kind": "exponential", "mean": 3.0}},
    }
    quantizer = ACCEPTS[algorithm][-1]
    runs = [
        simulate(prepare(config_for(algorithm, quantizer, "logistic", executor, faults=faults)))
        for executor in ("sequential", "batched")
    ]
    assert runs[1][1].lean == (REGISTRY[ALGORITHMS[algorithm]["kind"]].program is not None)
    assert_same_run(*runs)


# Learning-rate schedules and momentum, for every registered algorithm and variant (the
# registry's cross-cutting table: a new algorithm is in it as soon as it is registered).
# The oracle knows a plain rate only; here sequential and batched are held to each other.
OPTIMIZED = [
    pytest.param(algorithm, name, objective, id=f"{algorithm}-{name}-{objective}")
    for algorithm, spec in ALGORITHMS.items()
    for name in REGISTRY[spec["kind"]].optimizer_variants
    for objective in ("logistic", "mlp")
]


@pytest.mark.parametrize(("algorithm", "variant", "objective"), OPTIMIZED)
def test_batched_equals_sequential_with_schedules_and_momentum(algorithm, variant, objective):
    entry = REGISTRY[ALGORITHMS[algorithm]["kind"]]
    extra = entry.optimizer_variants[variant]
    quantizer = ACCEPTS[algorithm][-1]
    configs = [
        config_for(algorithm, quantizer, objective, executor, stop={"time": 12.0})
        for executor in ("sequential", "batched")
    ]
    for config in configs:
        for key, value in extra.items():
            setattr(config.algorithm, key, value)
    runs = [simulate(prepare(config)) for config in configs]
    assert not runs[1][1].executor.plain
    assert_same_run(*runs)
    plain = simulate(prepare(config_for(algorithm, quantizer, objective, "batched")))
    assert not np.allclose(plain[1].models, runs[1][1].models)  # the variant changes the run


@pytest.mark.parametrize("algorithm", [name for name in ALGORITHMS if "coding" not in name])
def test_waves_of_local_steps_on_all_cores_change_nothing(algorithm, monkeypatch):
    """Large waves take their local steps and gradients on all cores (the ``*_parallel``
    kernels): with every wave sent there, on one thread or two, the numbers stay the
    sequential ones."""
    import numba

    from gossipsim.engine import kernels

    calls = []

    def counted(kernel):
        def call(*args):
            calls.append(kernel)
            kernel(*args)

        return call

    monkeypatch.setattr(kernels, "PARALLEL_WAVE", 1)
    for name in ("local_steps_parallel", "gradients_parallel"):
        monkeypatch.setattr(kernels, name, counted(getattr(kernels, name)))
    overrides = (
        {"algorithm.momentum": 0.5}
        if "momentum" in REGISTRY[ALGORITHMS[algorithm]["kind"]].config.model_fields
        else {}
    )
    reference = simulate(
        prepare(config_for(algorithm, "none", "logistic", "sequential", **overrides))
    )
    threads = numba.get_num_threads()
    runs = []
    try:
        for count in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(count)
            calls.clear()
            run = simulate(
                prepare(config_for(algorithm, "none", "logistic", "batched", **overrides))
            )
            assert calls, "no wave went to the parallel kernel"
            assert_same_run(reference, run)
            runs.append(run)
    finally:
        numba.set_num_threads(threads)
    # Whatever the number of threads: the same bits.
    assert runs[0][0].rows == runs[-1][0].rows
    np.testing.assert_array_equal(runs[0][1].models, runs[-1][1].models)
