"""Shared fixtures: small, fast configs built in code."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gossipsim.experiment.config import RunConfig, validate_data

SMALL: dict[str, Any] = {
    "name": "small",
    "seed": 3,
    "init": {"kind": "normal", "scale": 1.0, "identical": False},
    "objective": {
        "kind": "logistic",
        "dataset": {"kind": "synthetic", "n_samples": 800, "n_features": 5},
        "partition": {"kind": "iid"},
        "batch_size": 8,
    },
    "topology": {"kind": "random_regular", "n": 12, "degree": 4},
    "compute": {"kind": "exponential", "mean": 1.0},
    "network": {"latency": 0.01, "bandwidth": 1.0e6},
    "algorithm": {"kind": "swarmsgd", "lr": 0.05},
    "stop": {"time": 20.0},
    "record": {"every": 2.0},
}


def make_config(**overrides: Any) -> RunConfig:
    """SMALL with dotted-key overrides, e.g. make_config(**{"algorithm.lr": 0.0})."""
    data = copy.deepcopy(SMALL)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return validate_data(data)


@pytest.fixture
def small_config() -> RunConfig:
    return make_config()
