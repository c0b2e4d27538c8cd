"""Very large requests are refused before allocation, with the estimate."""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.experiment.budget import estimate_bytes, model_dimension
from gossipsim.experiment.config import ConfigError
from gossipsim.experiment.runner import prepare
from tests.conftest import make_config


def test_model_dimension_matches_the_objective():
    for objective in (
        {"kind": "logistic"},
        {"kind": "softmax", "dataset": {"kind": "synthetic", "n_features": 5, "n_classes": 3}},
        {"kind": "mlp", "hidden": [7, 4], "dataset": {"kind": "digits"}},
    ):
        config = make_config(objective={**make_config().objective.model_dump(), **objective})
        prepared = prepare(config)
        assert model_dimension(config) == prepared.problem.objective.dim


def test_huge_request_refused_with_estimate():
    config = make_config(
        topology={"kind": "ring", "n": 2_000_000},
        objective={"kind": "softmax", "dataset": {"kind": "synthetic", "n_features": 500}},
    )
    with pytest.raises(
        ConfigError, match=r"engine.memory_limit_gb: this run needs about [\d.]+ GiB"
    ):
        prepare(config)
    parts = estimate_bytes(config)
    assert parts["models"] == pytest.approx(4 * 2_000_000 * 501 * 10 * 8)


def test_limit_is_configurable():
    config = make_config(engine={"memory_limit_gb": 1e-4})
    with pytest.raises(ConfigError, match="over the limit of 0.0001 GiB"):
        prepare(config)
    assert np.isfinite(prepare(make_config()).spectral_gap)
