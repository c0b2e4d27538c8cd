"""Learning-rate schedules, momentum and all-reduce's lr scaling.

The schedules' values at chosen points (worked out by hand), what a schedule does to a run
(a step to 0 freezes SwarmSGD's mean model), that momentum still converges, that the plain
configs give the numbers recorded before schedules existed, and the config errors. That
batched and sequential agree with every schedule and momentum variant, for every
registered algorithm, is checked in ``tests/test_batched_equivalence.py``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gossipsim.algorithms import REGISTRY
from gossipsim.engine.batched import BatchedExecutor
from gossipsim.engine.schedule import lr_at, lr_many, schedule_params
from gossipsim.experiment.config import ConfigError, validate_data
from gossipsim.experiment.runner import prepare, simulate
from gossipsim.experiment.sections import ConstantLr, CosineLr, InverseTimeLr, StepLr
from tests.conftest import SMALL, make_config
from tests.test_batched_equivalence import assert_same_run, config_for


def lr(section, t, scale=1.0):
    return lr_at(schedule_params(section, scale), float(t))


# -- the schedules' values ----------------------------------------------------------------------


def test_constant_and_plain_numbers():
    assert lr(0.05, 0) == 0.05 and lr(0.05, 1e6) == 0.05
    section = ConstantLr(kind="constant", value=0.3)
    assert [lr(section, t) for t in (0, 7, 1e9)] == [0.3, 0.3, 0.3]


def test_step_schedule():
    section = StepLr(kind="step", value=0.8, factor=0.5, every=10)
    # 0.8 for t in [0, 10), 0.4 in [10, 20), 0.2 in [20, 30), ...
    assert [lr(section, t) for t in (0, 9, 9.99, 10, 19, 20, 35)] == pytest.approx(
        [0.8, 0.8, 0.8, 0.4, 0.4, 0.2, 0.1], abs=1e-15
    )
    frozen = StepLr(kind="step", value=0.8, factor=0.0, every=4)
    assert [lr(frozen, t) for t in (0, 3, 4, 100)] == [0.8, 0.8, 0.0, 0.0]


def test_cosine_schedule():
    section = CosineLr(kind="cosine", value=1.0, final=0.2, total=8)
    # final + (value − final)·(1 + cos(π t / total)) / 2
    expected = {0: 1.0, 2: 0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2, 4: 0.6, 8: 0.2, 50: 0.2}
    for t, value in expected.items():
        assert lr(section, t) == pytest.approx(value, abs=1e-15), t


def test_inverse_time_schedule():
    section = InverseTimeLr(kind="inverse_time", value=0.6, decay=0.5)
    assert [lr(section, t) for t in (0, 2, 4, 10)] == pytest.approx([0.6, 0.3, 0.2, 0.1], abs=1e-15)


def test_warmup_ramps_linearly_from_zero_then_hands_over():
    section = StepLr(kind="step", value=1.0, factor=0.1, every=10, warmup=4)
    assert [lr(section, t) for t in (0, 1, 2, 3, 4, 9, 10)] == pytest.approx(
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.1], abs=1e-15
    )
    cosine = CosineLr(kind="cosine", value=2.0, total=10, warmup=5)
    # During the warm-up the ramp multiplies the schedule's own value at t.
    assert lr(cosine, 2) == pytest.approx(2 / 5 * (1 + math.cos(math.pi * 0.2)), abs=1e-15)


def test_lr_many_is_lr_at_per_entry():
    params = schedule_params(CosineLr(kind="cosine", value=1.0, total=7, warmup=2))
    t = np.array([0.0, 0.5, 3.0, 6.5, 12.0])
    np.testing.assert_array_equal(lr_many(params, t), [lr_at(params, x) for x in t])


def test_linear_scaling_multiplies_the_rate_after_warmup():
    section = ConstantLr(kind="constant", value=0.01, warmup=5)
    for t in (5, 6, 100):
        assert lr(section, t, scale=12.0) == pytest.approx(12 * 0.01, abs=1e-15)
    assert lr(section, 0, scale=12.0) == 0.0
    assert lr(section, 2.5, scale=12.0) == pytest.approx(6 * 0.01, abs=1e-15)


# -- what schedules and momentum do to runs ----------------------------------------------------


def test_step_to_zero_freezes_blocking_swarmsgd_mean_model():
    """After every node's steps have dropped to lr 0, pair averages keep the mean model,
    so the loss of the mean model stays what it was (unquantized, blocking)."""
    every = 3
    config = make_config(
        **{
            "algorithm": {
                "kind": "swarmsgd",
                "lr": {"kind": "step", "value": 0.1, "factor": 0.0, "every": every},
            },
            "compute": {"kind": "constant", "mean": 1.0},
            "stop": {"time": 40.0},
            "record": {"every": 1.0},
        }
    )
    outcome, sim = simulate(prepare(config))
    steps = sim.executor.steps
    assert steps.min() > 3 * every  # every node went on stepping, at lr 0
    loss = np.array([row["loss"] for row in outcome.rows])
    frozen = loss[20:]  # by t = 20 each node has taken many more than ``every`` steps
    np.testing.assert_allclose(frozen, frozen[0], rtol=0, atol=1e-12)
    assert abs(loss[0] - frozen[0]) > 1e-3  # it did learn before the drop
    assert outcome.rows[-1]["consensus"] < 1e-3 * outcome.rows[20]["consensus"]


def least_squares_optimum(prepared):
    problem = prepared.problem
    X = problem.dataset.X_train
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    w, *_ = np.linalg.lstsq(A, problem.dataset.y_train, rcond=None)
    return problem.training_loss(w)


MOMENTUM_RUNS = {
    kind: {"kind": kind, "lr": 0.01, "momentum": 0.9}
    for kind in ("swarmsgd", "dpsgd", "adpsgd", "sgp", "allreduce", "local_sgd")
}
MOMENTUM_RUNS["nesterov-averaged"] = {
    "kind": "swarmsgd",
    "lr": 0.01,
    "momentum": 0.9,
    "nesterov": True,
    "momentum_averaging": "averaged",
}
MOMENTUM_RUNS["gradient_coding"] = {
    "kind": "gradient_coding",
    "workers": 6,
    "lr": 0.02,
    "momentum": 0.9,
}


@pytest.mark.parametrize("name", sorted(MOMENTUM_RUNS))
def test_momentum_reaches_the_least_squares_optimum(name):
    """Within 2% of the starting gap to the lstsq optimum (a decaying rate ends the noise)."""
    algorithm = dict(MOMENTUM_RUNS[name])
    algorithm["lr"] = {"kind": "inverse_time", "value": algorithm["lr"], "decay": 0.02}
    config = make_config(
        **{
            "algorithm": algorithm,
            "objective.kind": "least_squares",
            "objective.batch_size": 32,
            "stop": {"time": 150.0},
            "record": {"every": 10.0},
        }
    )
    prepared = prepare(config)
    outcome, sim = simulate(prepared)
    optimum = least_squares_optimum(prepared)
    start, end = outcome.rows[0]["loss"], outcome.rows[-1]["loss"]
    assert end - optimum <= 0.02 * (start - optimum), (start, end, optimum)
    if name != "gradient_coding":
        assert sim.executor.velocity is not None and np.abs(sim.executor.velocity).max() > 0


# Final training loss and sum of the models after 15 s of each algorithm with ``lr: 0.05``
# (least squares and an MLP, the default SMALL config), recorded before schedules and
# momentum existed: a plain rate must still give exactly these numbers. D-PSGD and SGP
# were recorded in the forms they had then (adapt-then-combine; unbounded overlap).
RECORDED = {
    ("swarmsgd", "least_squares"): (0.20164234260955793, 1.1966835815577612),
    ("swarmsgd", "mlp"): (1.066416035632433, 5.763493394585267),
    ("dpsgd", "least_squares"): (0.2542771673465078, 1.0770117728404176),
    ("dpsgd", "mlp"): (1.0707830898045076, 5.64254285317581),
    ("adpsgd", "least_squares"): (0.11829327044640592, 1.5556218419197012),
    ("adpsgd", "mlp"): (1.054684810790786, 6.385506609364196),
    ("sgp", "least_squares"): (0.10632988550290871, 0.9382099193314205),
    ("sgp", "mlp"): (1.0554893257009919, 6.222810824563891),
    ("allreduce", "least_squares"): (0.2823913339010732, 1.0842476525643476),
    ("allreduce", "mlp"): (1.072636266173483, 5.586579722226357),
    ("local_sgd", "least_squares"): (0.20025604600595742, 0.9490033250005235),
    ("local_sgd", "mlp"): (1.070321744523681, 4.891614631105234),
    ("gradient_coding", "least_squares"): (0.42552053817872953, 2.8134769031601543),
    ("gradient_coding", "mlp"): (1.2269362592143682, -0.4010529871139032),
}


RECORDED_FORM = {"dpsgd": {"variant": "atc"}, "sgp": {"overlap": "unbounded"}}


def recorded_config(kind, objective, executor, **algorithm):
    algo = {"kind": kind, "lr": 0.05, **RECORDED_FORM.get(kind, {}), **algorithm}
    if kind == "gradient_coding":
        algo["workers"] = 6
    overrides = {"objective.hidden": [4], "objective.dataset.n_classes": 3}
    return make_config(
        **{
            "algorithm": algo,
            "objective.kind": objective,
            **(overrides if objective == "mlp" else {}),
            "engine": {"executor": executor},
            "stop": {"time": 15.0},
        }
    )


def test_recorded_cases_cover_every_algorithm():
    assert {kind for kind, _ in RECORDED} == set(REGISTRY)


@pytest.mark.parametrize("executor", ["sequential", "batched"])
@pytest.mark.parametrize(("kind", "objective"), sorted(RECORDED))
def test_plain_rate_and_zero_momentum_give_the_recorded_numbers(kind, objective, executor):
    forms = [
        {},
        {"momentum": 0.0},
        {"lr": {"kind": "constant", "value": 0.05}},
        {"lr": {"kind": "step", "value": 0.05, "factor": 1.0, "every": 1.0}},
    ]
    for form in forms:
        outcome, sim = simulate(prepare(recorded_config(kind, objective, executor, **form)))
        assert (outcome.rows[-1]["loss"], float(sim.models.sum())) == RECORDED[(kind, objective)]


@pytest.mark.parametrize(
    ("kind", "form"),
    [
        ("swarmsgd", {}),
        ("adpsgd", {}),
        ("sgp", {"overlap": 0}),
        ("sgp", {"overlap": "unbounded"}),
        ("dpsgd", {"variant": "lian"}),
        ("dpsgd", {"variant": "atc"}),
        ("allreduce", {}),
        ("local_sgd", {}),
    ],
)
def test_scheduled_path_with_a_constant_rate_is_the_plain_path(kind, form):
    """The general step (schedule evaluated per step, clock counted) gives the plain
    path's numbers bit for bit when the rate is constant and there is no momentum."""
    config = recorded_config(kind, "least_squares", "batched", **form)
    reference = simulate(prepare(config))[1].models
    prepared = prepare(config)
    original = BatchedExecutor.__init__

    def general(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.plain = False

    BatchedExecutor.__init__ = general
    try:
        outcome, sim = simulate(prepared)
    finally:
        BatchedExecutor.__init__ = original
    assert not sim.executor.plain
    np.testing.assert_array_equal(sim.models, reference)


def test_linear_scaling_equals_the_scaled_rate():
    """all-reduce with lr_scaling: linear is all-reduce at n·lr (warm-up included)."""
    n = SMALL["topology"]["n"]
    scaled = make_config(
        **{
            "algorithm": {
                "kind": "allreduce",
                "lr": {"kind": "constant", "value": 0.004, "warmup": 3},
                "lr_scaling": "linear",
            }
        }
    )
    by_hand = make_config(
        **{
            "algorithm": {
                "kind": "allreduce",
                "lr": {"kind": "constant", "value": 0.004 * n, "warmup": 3},
            }
        }
    )
    plain = make_config(**{"algorithm": {"kind": "allreduce", "lr": 0.004}})
    (a, sim_a), (b, sim_b), (c, sim_c) = (simulate(prepare(x)) for x in (scaled, by_hand, plain))
    np.testing.assert_allclose(sim_a.models, sim_b.models, rtol=1e-12, atol=1e-14)
    assert a.rows[-1]["loss"] < c.rows[-1]["loss"]
    assert lr_at(sim_a.executor.schedule, 3.0) == pytest.approx(n * 0.004, abs=1e-15)


def test_epoch_clock_counts_each_nodes_shard_fraction():
    """unit: epochs — a node's clock is its steps × batch / shard size."""
    config = make_config(
        **{
            "algorithm": {
                "kind": "swarmsgd",
                "lr": {"kind": "step", "value": 0.1, "factor": 0.0, "every": 0.5, "unit": "epochs"},
            },
            "objective.partition": {"kind": "dirichlet", "alpha": 0.5},
            "stop": {"time": 30.0},
        }
    )
    outcome, sim = simulate(prepare(config))
    executor = sim.executor
    sizes = np.array([y.shape[0] for y in sim.problem.shard_y])
    np.testing.assert_array_equal(executor.per_unit, np.minimum(8, sizes) / sizes)
    # Every node passed half an epoch of its own shard: the mean model is frozen by now.
    assert (executor.steps * executor.per_unit).min() > 0.5
    last = [row["loss"] for row in outcome.rows[-3:]]
    np.testing.assert_allclose(last, last[0], rtol=0, atol=1e-12)


def test_local_momentum_is_not_averaged_and_averaged_momentum_is():
    """After a global average with momentum_averaging: averaged every buffer is the mean."""
    runs = {}
    for averaging in ("local", "averaged"):
        config = make_config(
            **{
                "algorithm": {
                    "kind": "local_sgd",
                    "lr": 0.02,
                    "momentum": 0.9,
                    "momentum_averaging": averaging,
                },
                "stop": {"iterations": 5},
            }
        )
        runs[averaging] = simulate(prepare(config))[1].executor.velocity
    averaged, local = runs["averaged"], runs["local"]
    np.testing.assert_allclose(averaged, np.broadcast_to(averaged[0], averaged.shape), atol=0)
    assert np.abs(local - local.mean(axis=0)).max() > 1e-6


def test_adpsgd_applies_the_kept_gradient_through_the_buffer():
    """AD-PSGD with momentum counts one step per applied gradient and moves its buffers."""
    config = make_config(**{"algorithm": {"kind": "adpsgd", "lr": 0.02, "momentum": 0.5}})
    outcome, sim = simulate(prepare(config))
    assert sim.executor.steps.sum() > 0
    assert sim.executor.velocity is not None and np.abs(sim.executor.velocity).max() > 0
    plain = simulate(prepare(make_config(**{"algorithm": {"kind": "adpsgd", "lr": 0.02}})))
    assert not np.allclose(plain[1].models, sim.models)


# -- config errors -----------------------------------------------------------------------------


def errors(algorithm):
    data = {**SMALL, "algorithm": algorithm}
    with pytest.raises(ConfigError) as info:
        validate_data(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (
            {"kind": "swarmsgd", "lr": {"kind": "step", "value": 0.1, "every": 2, "factor": -1}},
            r"algorithm\.lr\.factor: Input should be greater than or equal to 0",
        ),
        (
            {"kind": "swarmsgd", "lr": {"kind": "exponential", "value": 0.1}},
            r"algorithm\.lr\.kind: unknown kind 'exponential'; valid kinds: 'constant', 'step'",
        ),
        (
            {"kind": "dpsgd", "lr": {"kind": "step", "value": 0.1, "every": 2, "final": 0.0}},
            r"algorithm\.lr\.final: unknown key 'final' \(it applies to kind cosine\)",
        ),
        (
            {"kind": "sgp", "lr": {"kind": "cosine", "value": 0.1}},
            r"algorithm\.lr\.total: Field required",
        ),
        (
            {"kind": "adpsgd", "lr": {"kind": "constant", "value": 0.1, "warmup": -2}},
            r"algorithm\.lr\.warmup: Input should be greater than or equal to 0",
        ),
        (
            {"kind": "swarmsgd", "lr": {"kind": "constant", "value": 0.1, "unit": "hours"}},
            r"algorithm\.lr\.unit: Input should be 'steps' or 'epochs'",
        ),
        ({"kind": "swarmsgd", "lr": -0.1}, r"algorithm\.lr: Input should be greater than or"),
        ({"kind": "swarmsgd", "lr": {"value": 0.1}}, r"algorithm\.lr: missing 'kind'"),
        ({"kind": "swarmsgd", "momentum": -0.5}, r"algorithm\.momentum: Input should be greater"),
        (
            {"kind": "local_sgd", "momentum": 1.0},
            r"algorithm\.momentum: Input should be less than 1",
        ),
        (
            {"kind": "swarmsgd", "lr_scaling": "linear"},
            r"algorithm\.lr_scaling: unknown key 'lr_scaling' \(it applies to kind allreduce\)",
        ),
        (
            {"kind": "allreduce", "momentum_averaging": "local"},
            r"algorithm\.momentum_averaging: unknown key 'momentum_averaging'",
        ),
        (
            {"kind": "gradient_coding", "momentum_averaging": "averaged"},
            r"algorithm\.momentum_averaging: unknown key",
        ),
    ],
)
def test_bad_inputs_are_rejected_naming_the_field(algorithm, message):
    text = errors(algorithm)
    assert len(text.splitlines()) == 1, text
    assert re.search(message, text), text


def test_a_schedule_round_trips_through_the_resolved_config():
    lr_section = {"kind": "cosine", "value": 0.1, "total": 5, "warmup": 1, "unit": "epochs"}
    config = make_config(**{"algorithm": {"kind": "dpsgd", "lr": lr_section, "momentum": 0.5}})
    resolved = config.resolved()
    assert resolved["algorithm"]["lr"] == {**lr_section, "final": 0.0, "total": 5.0, "warmup": 1.0}
    again = validate_data({**resolved, "name": "again", "stop": {"time": 1.0}})
    assert again.algorithm == config.algorithm


@pytest.mark.parametrize("kind", ["allreduce", "local_sgd", "swarmsgd", "sgp"])
def test_schedules_and_momentum_under_faults_agree_across_executors(kind):
    """With faults (all-reduce then steps node by node and mixes groups), both executors
    still give the same numbers with a schedule and momentum."""
    faults = {
        "timeout": 0.5,
        "crash_recover": {"rate": 0.02, "downtime": {"kind": "exponential", "mean": 3.0}},
    }
    if REGISTRY[kind].program is not None:
        faults["message_loss"] = 0.1  # (a round of 2n(n−1) messages would hardly ever end)
    extra = REGISTRY[kind].optimizer_variants["nesterov-averaged"]
    runs = []
    for executor in ("sequential", "batched"):
        config = config_for(kind, "none", "logistic", executor, faults=faults)
        config.stop.time = 30.0
        for key, value in extra.items():
            setattr(config.algorithm, key, value)
        runs.append(simulate(prepare(config)))
    assert runs[1][1].executor.velocity is not None
    assert np.abs(runs[1][1].executor.velocity).max() > 0
    assert_same_run(*runs)
