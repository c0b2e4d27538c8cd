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
    return int(getattr(config.algorithm, "workers", None) or config.topology.n)


def edge_count(config: RunConfig) -> float:
    topology = config.topology
    n = node_count(config)
    per_node = {
        "ring": 1.0,
        "torus": 2.0,
        "star": 1.0,
        "complete": (n - 1) / 2,
        "hypercube": math.log2(max(n, 2)) / 2,
        "random_regular": getattr(topology, "degree", 4) / 2,
        "small_world": getattr(topology, "k", 4) / 2,
        "erdos_renyi": getattr(topology, "p", 0.1) * (n - 1) / 2,
        "edge_list": 2.0,
    }.get(topology.kind, 2.0)
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
