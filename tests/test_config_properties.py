"""Property tests: generated configs are either rejected with a located ConfigError, or run.

Configs are drawn valid-by-construction, then about half get one corruption a user might
make (a typo'd key, a wrong type, a negative rate, an unknown kind, a size the topology
cannot have). Never another exception: a traceback from deep inside numpy or networkx is a
bug. Every valid small config runs to completion (or is reported diverged).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossipsim.experiment.config import ConfigError, validate_data
from gossipsim.experiment.runner import prepare, simulate

FIELD = re.compile(r"(^|: )[a-z_]+(\.[a-z_0-9]+)*: ")
EXAMPLES = 150

positive = st.floats(min_value=0.05, max_value=3.0, allow_nan=False)

topologies = st.one_of(
    st.builds(lambda n: {"kind": "ring", "n": n}, st.integers(3, 12)),
    st.builds(lambda n: {"kind": "torus", "n": n}, st.sampled_from([9, 12, 16])),
    st.builds(lambda n: {"kind": "complete", "n": n}, st.integers(2, 10)),
    st.builds(lambda n: {"kind": "hypercube", "n": n}, st.sampled_from([2, 4, 8, 16])),
    st.builds(
        lambda n, d: {"kind": "random_regular", "n": n, "degree": d},
        st.integers(5, 12),
        st.sampled_from([2, 4]),
    ),
    st.builds(
        lambda n, p: {"kind": "erdos_renyi", "n": n, "p": p},
        st.integers(4, 10),
        st.floats(0.5, 1.0),
    ),
    st.builds(
        lambda n, k, p: {"kind": "small_world", "n": n, "k": k, "p": p},
        st.integers(6, 12),
        st.sampled_from([2, 4]),
        st.floats(0.0, 0.5),
    ),
    st.builds(lambda n: {"kind": "star", "n": n}, st.integers(2, 10)),
)
datasets = st.one_of(
    st.builds(
        lambda s, f, c: {"kind": "synthetic", "n_samples": s, "n_features": f, "n_classes": c},
        st.integers(120, 300),
        st.integers(1, 5),
        st.integers(2, 4),
    ),
    st.just({"kind": "breast_cancer"}),
    st.just({"kind": "digits"}),
)
partitions = st.one_of(
    st.just({"kind": "iid"}),
    st.builds(lambda a: {"kind": "dirichlet", "alpha": a}, st.floats(0.05, 5.0)),
    st.builds(lambda c: {"kind": "shards", "classes_per_node": c}, st.integers(1, 3)),
)


def _objective(kind: str, dataset: dict, partition: dict, batch: int, hidden: list) -> dict:
    """Keys only where they apply: hidden for mlp, n_classes for multiclass kinds."""
    if kind not in ("softmax", "mlp"):
        dataset = {k: v for k, v in dataset.items() if k != "n_classes"}
    objective = {"kind": kind, "dataset": dataset, "partition": partition, "batch_size": batch}
    if kind == "mlp":
        objective["hidden"] = hidden
    return objective


objectives = st.builds(
    _objective,
    st.sampled_from(["least_squares", "logistic", "softmax", "mlp"]),
    datasets,
    partitions,
    st.integers(1, 16),
    st.lists(st.integers(1, 8), min_size=1, max_size=2),
)
computes = st.one_of(
    st.builds(lambda m: {"kind": "constant", "mean": m}, positive),
    st.builds(lambda m: {"kind": "exponential", "mean": m}, positive),
    st.builds(
        lambda m, f: {"kind": "shifted_exponential", "mean": m, "shift": m * f},
        positive,
        st.floats(0.0, 0.9),
    ),
    st.builds(
        lambda m, s, f, mode: {
            "kind": "lognormal",
            "mean": m,
            "sigma": s,
            "heterogeneity": {"kind": "lognormal", "sigma": s},
            "stragglers": {"fraction": f, "slowdown": 4.0, "mode": mode},
        },
        positive,
        st.floats(0.0, 1.5),
        st.floats(0.0, 1.0),
        st.sampled_from(["persistent", "transient"]),
    ),
    st.builds(lambda m, a: {"kind": "pareto", "mean": m, "alpha": a}, positive, st.floats(1.2, 4)),
)
quantizers = st.one_of(
    st.just({"kind": "none"}),
    st.builds(lambda b: {"kind": "stochastic", "bits": b}, st.integers(2, 12)),
    st.builds(lambda b: {"kind": "lattice", "bits": b, "epsilon": 1e-3}, st.integers(1, 12)),
)


def _algorithm(kind: str, lr: float, quantizer: dict, nonblocking: bool, steps: int) -> dict:
    algorithm: dict = {"kind": kind, "lr": lr}
    if kind in ("swarmsgd", "dpsgd", "adpsgd") or (
        kind == "sgp" and quantizer["kind"] != "lattice"
    ):
        algorithm["quantizer"] = quantizer
    if kind == "swarmsgd":
        algorithm["nonblocking"] = nonblocking
    if kind in ("swarmsgd", "local_sgd"):
        algorithm["local_steps"] = {"kind": "geometric", "mean": steps}
    return algorithm


algorithms = st.builds(
    _algorithm,
    st.sampled_from(["swarmsgd", "dpsgd", "adpsgd", "sgp", "allreduce", "local_sgd"]),
    st.floats(0.0, 0.3),
    quantizers,
    st.booleans(),
    st.integers(1, 4),
)
stops = st.one_of(
    st.builds(lambda t: {"time": t}, st.floats(0.5, 5.0)),
    st.builds(lambda i: {"interactions": i}, st.integers(1, 60)),
    st.builds(lambda e: {"epochs": e, "time": 50.0}, st.floats(0.05, 0.5)),
)
faults = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "crash": st.builds(
                lambda nodes, at: {"nodes": nodes, "at": at},
                st.lists(st.integers(0, 1), max_size=2, unique=True),
                st.floats(0.0, 3.0),
            ),
            "crash_recover": st.builds(
                lambda r, m: {"rate": r, "downtime": {"kind": "exponential", "mean": m}},
                st.floats(0.0, 0.5),
                positive,
            ),
            "link_failure": st.builds(
                lambda r, m: {"rate": r, "downtime": {"kind": "constant", "mean": m}},
                st.floats(0.0, 0.5),
                positive,
            ),
            "partition": st.builds(
                lambda g, a: {"groups": g, "start": a, "end": a + 1.0}, st.integers(2, 3), positive
            ),
            "message_loss": st.floats(0.0, 0.5),
            "latency_spikes": st.builds(
                lambda p, f: {"probability": p, "factor": f}, st.floats(0, 1), st.floats(1, 20)
            ),
            "sync": st.sampled_from(["wait", "timeout"]),
            "timeout": positive,
        },
    ),
)
configs = st.builds(
    lambda seed, obj, topo, comp, alg, stop, every, identical, flt: {
        "name": "prop",
        "seed": seed,
        "init": {"kind": "normal", "scale": 1.0, "identical": identical},
        "objective": obj,
        "topology": topo,
        "compute": comp,
        "network": {"latency": 0.01, "bandwidth": 1e6},
        "algorithm": alg,
        "stop": stop,
        "record": {"every": every},
        "faults": flt,
    },
    st.integers(0, 2**31),
    objectives,
    topologies,
    computes,
    algorithms,
    stops,
    st.floats(0.5, 3.0),
    st.booleans(),
    faults,
)

junk = st.one_of(
    st.floats(min_value=-5, max_value=-0.01),
    st.text(min_size=1, max_size=4),
    st.none(),
    st.lists(st.integers(), max_size=2),
)

CORRUPTIONS = [
    lambda d, v: d["objective"].__setitem__("batchsize", 8),
    lambda d, v: d["algorithm"].__setitem__("lr", v),
    lambda d, v: d["topology"].__setitem__("n", v),
    lambda d, v: d["compute"].__setitem__("mean", v),
    lambda d, v: d["network"].__setitem__("latency", v),
    lambda d, v: d["record"].__setitem__("every", v),
    lambda d, v: d["topology"].__setitem__("kind", "mesh"),
    lambda d, v: d["algorithm"].__setitem__("kind", "gossip"),
    lambda d, v: d.__setitem__("topology", {"kind": "hypercube", "n": 12}),
    lambda d, v: d.__setitem__("topology", {"kind": "random_regular", "n": 7, "degree": 3}),
    lambda d, v: d["objective"]["dataset"].__setitem__("kind", "imagenet"),
    lambda d, v: d.__setitem__("stop", {}),
    lambda d, v: d["faults"].__setitem__("message_loss", v),
    lambda d, v: d["faults"].__setitem__("partition", {"groups": 1}),
]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(configs, st.integers(-len(CORRUPTIONS), len(CORRUPTIONS) - 1), junk)
def test_generated_configs_are_rejected_clearly_or_run(data, corruption, value):
    if corruption >= 0:
        CORRUPTIONS[corruption](data, value)
    try:
        config = validate_data(data)
        prepared = prepare(config)
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert FIELD.search(problem), problem
        return
    assert corruption < 0 or corruption in (1, 4, 5) and value is None, "corruption accepted"
    outcome, _ = simulate(prepared)
    assert outcome.status in ("complete", "diverged")
    assert outcome.rows[0]["time"] == 0.0
