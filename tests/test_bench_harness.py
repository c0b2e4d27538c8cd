"""The benchmark harness is well formed (the benchmarks themselves run only in ``make bench``).

Every workload YAML validates as a gossipsim config, every named reference exists and
runs on a tiny problem, and the target checks read a results dictionary as intended.
"""

from __future__ import annotations

import importlib

import pytest
import yaml

from benchmarks import run as bench
from gossipsim.experiment.config import validate_data
from gossipsim.experiment.runner import prepare
from tests.conftest import make_config


@pytest.mark.parametrize("name", bench.ORDER)
def test_workload_is_valid(name):
    spec = yaml.safe_load((bench.WORKLOADS / f"{name}.yaml").read_text())
    assert spec["kind"] in ("simulation", "sweep")
    data = dict(spec["config"])
    data.pop("sweep", None)
    if spec.get("requires_algorithm") == "gradient_coding":
        from gossipsim.algorithms import ALGORITHMS

        if "gradient_coding" not in ALGORITHMS:
            pytest.skip("gradient coding is not in the package yet")
    validate_data(data)


@pytest.mark.parametrize("module", ["swarm_logistic", "mlp_digits"])
def test_reference_runs(module):
    reference = importlib.import_module(f"benchmarks.reference.{module}")
    if module == "mlp_digits":
        config = make_config(
            **{"objective": {"kind": "mlp", "hidden": [8], "dataset": {"kind": "digits"}}}
        )
    else:
        config = make_config()
    result = reference.run(prepare(config), interactions=200, evaluations=2)
    assert result["wall_time"] > 0
    assert result["loss"] == result["loss"]  # finite, not NaN


def test_targets_and_table():
    results = {
        "swarm-1k": {
            "status": "ok",
            "unit": "interactions",
            "wall_s": 1.0,
            "rate_per_s": 100_000.0,
            "peak_memory_mib": 900.0,
            "reference": {"wall_s": 4.0},
            "speedup_vs_reference": 4.0,
            "profile": {"event_loop_fraction": 0.3},
            "scaling": {"interactions": {"time_ratio": 9.5}, "nodes": {"time_ratio": 2.5}},
        },
        "gc-100": {"status": "pending", "reason": "not yet"},
    }
    checks = {c["target"]: c["met"] for c in bench.targets(results)}
    assert checks["swarm-1k: >= 3x the interactions/s of the numpy reference"] is True
    assert checks["swarm-1k: event-loop share of time < 25%"] is False
    assert checks["10x interactions costs <= 11x time"] is True
    assert checks["10x nodes at fixed interactions costs <= 2x time"] is False
    assert checks["gc-100: runs"] is None
    text = bench.table(results)
    assert "| swarm-1k | 1.00 |" in text and "4.00x" in text and "pending" in text


def test_machine_facts():
    facts = bench.machine()
    assert facts["numpy"] and facts["python"]
    assert isinstance(facts["blas"], list)
    assert all(key.startswith("OPENBLAS_") for key in facts["openblas_env"])
