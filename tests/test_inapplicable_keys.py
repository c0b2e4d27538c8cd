"""Keys that do not apply to the chosen kind are rejected like unknown keys; an overridden
kind drops the keys it lacks, with a note."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from gossipsim.cli import main
from gossipsim.experiment.config import ConfigError, config_to_yaml, load_config, validate_data

BASE = """\
name: keys
objective:
  kind: logistic
  dataset: {kind: synthetic, n_samples: 200, n_features: 3}
topology: {kind: random_regular, n: 8, degree: 3}
algorithm: {kind: swarmsgd}
stop: {time: 4}
"""


def write(tmp_path, text=BASE):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "objective.hidden=[8]",
            r"c\.yaml:4: objective\.hidden: unknown key 'hidden' \(it applies to kind mlp\)",
        ),
        ("objective.activation=tanh", r"objective\.activation: unknown key 'activation'"),
        ("objective.dataset.n_classes=5", r"objective: dataset\.n_classes: does not apply"),
    ],
)
def test_keys_of_other_objective_kinds_are_rejected(tmp_path, override, message):
    key, value = override.split("=")
    text = BASE.replace(
        "  kind: logistic\n", f"  kind: logistic\n  {key.split('.', 1)[1]}: {value}\n"
    )
    if "dataset" in key:
        text = BASE.replace("n_features: 3}", f"n_features: 3, n_classes: {value}}}")
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_logistic_resolved_config_has_no_mlp_or_class_keys(tmp_path):
    resolved = yaml.safe_load(config_to_yaml(load_config(write(tmp_path))))
    assert "hidden" not in resolved["objective"] and "activation" not in resolved["objective"]
    assert resolved["objective"]["dataset"]["n_classes"] is None
    assert load_config(write(tmp_path, config_to_yaml(load_config(write(tmp_path)))))


def test_multiclass_objectives_keep_their_keys_and_default_classes(tmp_path):
    text = BASE.replace("kind: logistic", "kind: mlp\n  hidden: [8, 4]\n  activation: tanh")
    config = load_config(write(tmp_path, text))
    assert config.objective.hidden == [8, 4] and config.objective.activation == "tanh"
    assert config.objective.dataset.n_classes == 10
    softmax = load_config(write(tmp_path, BASE.replace("kind: logistic", "kind: softmax")))
    assert softmax.objective.dataset.n_classes == 10


def gradient_coding(**algorithm):
    data = yaml.safe_load(BASE)
    data["algorithm"] = {"kind": "gradient_coding", "workers": 6, **algorithm}
    return data


@pytest.mark.parametrize(
    "algorithm",
    [
        {"scheme": "partial", "recovery": "exact", "deadline": 2.0},
        {"scheme": "cr", "recovery": "exact", "deadline": 2.0},
        {"scheme": "cr", "recovery": "approximate", "deadline": 2.0},
    ],
)
def test_a_deadline_that_does_not_apply_is_rejected(algorithm):
    with pytest.raises(
        ConfigError,
        match=r"algorithm: deadline: applies only to recovery: approximate with scheme partial",
    ):
        validate_data(gradient_coding(**algorithm))


def test_a_deadline_with_approximate_partial_recovery_is_accepted():
    config = validate_data(gradient_coding(scheme="partial", recovery="approximate", deadline=2.0))
    assert config.algorithm.deadline == 2.0


def test_overriding_a_kind_drops_the_keys_it_lacks_and_says_which(tmp_path, capsys):
    path = write(tmp_path)
    assert main(["validate", str(path), "--set", "topology.kind=ring"]) == 0
    captured = capsys.readouterr()
    assert "ok — swarmsgd on ring" in captured.out
    assert (
        "note: --set topology.kind=ring: dropped topology.degree "
        "(topology kind ring has no such key)" in captured.err
    )
    # A key set explicitly next to the kind is still checked.
    assert (
        main(["validate", str(path), "--set", "topology.kind=ring", "--set", "topology.degree=3"])
        == 2
    )
    err = capsys.readouterr().err
    assert "--set: topology.degree: unknown key 'degree' (it applies to kind random_regular)" in err
