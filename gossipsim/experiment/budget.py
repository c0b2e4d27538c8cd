"""Memory estimate of a run from its config alone, checked before anything is allocated.

A request for a million nodes with a 10,000-dimensional model should fail in a
millisecond with the estimate, not after minutes of swapping.
"""

from __future__ import annotations

import math

from gossipsim.experiment.config import ConfigError, RunConfig

GIB = 1024**3
# networkx stores each edge twice in dicts of dicts: a few hundred bytes per edge.
BYTES_PER_EDGE = 600
BYTES_PER_NODE = 1500
# The executor keeps the model matrix, buffers / push-sum numerators and temporaries.
MODEL_COPIES = 4
KNOWN_FEATURES = {"digits": (64, 10), "breast_cancer": (30, 2)}


def model_dimension(config: RunConfig) -> int | None:
    """Number of parameters the objective will have (None when only the data file tells)."""
    objective = config.objective
    dataset = objective.dataset
    classes: int | None
    if dataset.kind in KNOWN_FEATURES:
        features, classes = KNOWN_FEATURES[dataset.kind]
    elif dataset.kind == "synthetic":
        features, classes = dataset.n_features, dataset.n_classes
    else:
        return None
    if objective.kind in ("least_squares", "logistic"):
        return features + 1
    classes = int(classes or 2)  # an estimate: softmax and mlp configs carry n_classes
    if objective.kind == "softmax":
        return (features + 1) * classes
    widths = [features, *objective.hidden, classes]
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:], strict=False))


def node_count(config: RunConfig) -> int:
    """How many machines a run has (``topology.n``, or what its algorithm brings)."""
    from gossipsim.algorithms import node_count as machines  # the registry: imported late

    return machines(config)


def edge_count(config: RunConfig) -> float:
    """About how many edges the run's graph has (for the memory estimate)."""
    n = node_count(config)
    # The topology kind's own parameters, as its config model resolved them.
    fields = config.topology.model_dump()
    kind = fields["kind"]
    if kind == "complete":
        per_node = (n - 1) / 2
    elif kind == "hypercube":
        per_node = math.log2(max(n, 2)) / 2
    elif kind == "random_regular":
        per_node = fields["degree"] / 2
    elif kind == "small_world":
        per_node = fields["k"] / 2
    elif kind == "erdos_renyi":
        per_node = fields["p"] * (n - 1) / 2
    else:  # ring, star: about one edge per node; torus two; an edge list: guess two
        per_node = {"ring": 1.0, "star": 1.0}.get(kind, 2.0)
    return per_node * n


def estimate_bytes(config: RunConfig) -> dict[str, float]:
    """Estimated peak bytes of the big allocations of a run, by part."""
    n = node_count(config)
    dim = model_dimension(config)
    dataset = config.objective.dataset
    parts: dict[str, float] = {}
    if dim is not None:
        parts["models"] = MODEL_COPIES * n * dim * 8.0
    if dataset.kind == "synthetic":
        # Features as float64, held once whole and once split into node shards.
        parts["data"] = 2 * dataset.n_samples * (dataset.n_features + 1) * 8.0
    parts["graph"] = edge_count(config) * BYTES_PER_EDGE + n * BYTES_PER_NODE
    return parts


def check_memory(config: RunConfig) -> None:
    """Refuse a run whose estimate exceeds ``engine.memory_limit_gb`` (ConfigError)."""
    parts = estimate_bytes(config)
    total = sum(parts.values())
    limit = config.engine.memory_limit_gb * GIB
    if total > limit:
        detail = ", ".join(f"{k} {v / GIB:.3g} GiB" for k, v in parts.items())
        source = config.source
        if source is None:
            where = "<config>"
        elif ("engine",) in source.positions:
            where = source.locate(("engine", "memory_limit_gb"))
        else:
            where = source.path
        raise ConfigError(
            [
                f"{where}: engine.memory_limit_gb: this run needs about {total / GIB:.3g} GiB "
                f"({detail}), over the limit of {config.engine.memory_limit_gb:g} GiB; "
                "shrink topology.n or the model, or raise engine.memory_limit_gb"
            ]
        )
