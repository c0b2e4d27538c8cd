"""Config validation: unknown keys, types, ranges, positions, overrides, round trip."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from gossipsim.experiment.config import (
    ConfigError,
    RunConfig,
    config_to_yaml,
    load_config,
    validate_data,
)
from tests.conftest import SMALL, make_config


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
name: t
objective:
  kind: logistic
  dataset: {kind: synthetic, n_samples: 500, n_features: 4}
topology: {kind: ring, n: 8}
algorithm:
  kind: swarmsgd
  lr: 0.1
stop: {time: 5}
"""


def test_defaults_fill_in_and_round_trip(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.compute.kind == "constant"
    assert config.algorithm.quantizer.kind == "none"
    again = validate_data(yaml.safe_load(config_to_yaml(config)))
    assert again.resolved() == config.resolved()
    assert isinstance(again, RunConfig)


def test_unknown_key_names_field_line_and_suggestion(tmp_path):
    path = write(tmp_path, BASE.replace("lr: 0.1", "lr: 0.1\n  nonblockng: true"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}:9: algorithm.nonblockng: unknown key" in message
    assert "did you mean 'nonblocking'" in message


def test_wrong_type_and_negative_value_name_field_and_line(tmp_path):
    text = BASE.replace("n: 8", "n: eight").replace("lr: 0.1", "lr: -0.1")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.problems
    assert any(p.startswith(f"{path}:5: topology.n:") for p in problems)
    assert any(
        p.startswith(f"{path}:8: algorithm.lr:") and "greater than or equal" in p for p in problems
    )


def test_unknown_kind_lists_valid_kinds(tmp_path):
    path = write(tmp_path, BASE.replace("kind: ring", "kind: rnig"))
    with pytest.raises(ConfigError, match=r":5: topology.kind: unknown kind 'rnig'.*'ring'"):
        load_config(path)


def test_unknown_algorithm_is_rejected(tmp_path):
    path = write(tmp_path, BASE.replace("kind: swarmsgd", "kind: swarm"))
    with pytest.raises(ConfigError, match=r":7: algorithm.kind: unknown kind 'swarm'"):
        load_config(path)


def test_overrides_are_validated_and_attributed(tmp_path):
    path = write(tmp_path, BASE)
    config = load_config(path, ["algorithm.lr=0.02", "topology.n=128", "compute.kind=lognormal"])
    assert config.algorithm.lr == 0.02 and config.topology.n == 128
    assert config.compute.kind == "lognormal"
    with pytest.raises(ConfigError, match=r"^--set: algorithm.lr: .*greater than or equal to 0"):
        load_config(path, ["algorithm.lr=-1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["algorithm.lr"])


def test_stop_needs_a_bound(tmp_path):
    path = write(tmp_path, BASE.replace("stop: {time: 5}", "stop: {target_loss: 0.1}"))
    with pytest.raises(ConfigError, match="stop: set at least one of"):
        load_config(path)


def test_missing_data_file_named(tmp_path):
    text = BASE.replace(
        "dataset: {kind: synthetic, n_samples: 500, n_features: 4}",
        "dataset: {kind: libsvm, path: nowhere.svm}",
    )
    path = write(tmp_path, text)
    with pytest.raises(
        ConfigError, match=r":4: objective.dataset.path: data file not found: nowhere"
    ):
        load_config(path)


def test_invalid_yaml_reports_line(tmp_path):
    path = write(tmp_path, "name: t\nstop: {time: 5\nalgorithm: x\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: invalid YAML"):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("does/not/exist.yaml")


def test_shifted_exponential_shift_below_mean():
    with pytest.raises(ConfigError, match="compute: shift"):
        make_config(compute={"kind": "shifted_exponential", "mean": 1.0, "shift": 2.0})


def test_small_fixture_is_valid():
    assert make_config().name == SMALL["name"]
