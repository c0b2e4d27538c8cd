"""gossipsim --version, list, init, schema, ls and sweep --grid/--seeds."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

import gossipsim
from gossipsim.algorithms import ALGORITHMS
from gossipsim.cli import main
from gossipsim.experiment import catalog
from gossipsim.experiment import config as cfg

ROOT = Path(__file__).resolve().parent.parent


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gossipsim {gossipsim.__version__}"


@pytest.mark.parametrize("category", [*catalog.CATEGORIES])
def test_list_shows_every_kind_of_the_models_with_a_description(category, capsys):
    assert main(["list", category]) == 0
    out = capsys.readouterr().out
    members = cfg._union_members(catalog.CATEGORIES[category])
    assert members
    for kind, model in members.items():
        line = next(line for line in out.splitlines() if line.split()[:1] == [kind])
        assert len(line.split()) > 2, f"{kind} has no description: {line!r}"
        for key in model.model_fields:
            if key != "kind":
                assert f"{key}=" in out, (kind, key)


def test_list_algorithms_follows_the_registry(capsys):
    assert main(["list", "algorithms"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:1] != " "]
    assert names == list(ALGORITHMS)


def test_list_without_a_category_lists_all_and_metrics(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for category in [*catalog.CATEGORIES, "metrics"]:
        assert f"{category}:" in out
    assert "consensus" in out


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_init_writes_a_valid_commented_config(tmp_path, capsys, algorithm):
    target = tmp_path / "start.yaml"
    assert main(["init", algorithm, "-o", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# gossipsim starting config")
    assert sum(line.lstrip().startswith("#") or "  # " in line for line in text.splitlines()) > 8
    config = cfg.load_config(target)
    assert config.algorithm.kind == algorithm
    assert main(["validate", str(target)]) == 0
    assert main(["init", algorithm, "-o", str(target)]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["init", algorithm, "-o", str(target), "--force"]) == 0


def test_init_of_an_unknown_algorithm_names_the_valid_ones(capsys):
    assert main(["init", "swarmsdg"]) == 2
    assert "unknown algorithm 'swarmsdg'; valid: swarmsgd, dpsgd" in capsys.readouterr().err


def test_schema_is_json_schema_that_accepts_and_rejects_like_the_loader(capsys):
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    good = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    # PyYAML (YAML 1.1) reads 1.0e9 as text, which pydantic converts; editors read a number.
    good["network"]["bandwidth"] = float(good["network"]["bandwidth"])
    jsonschema.validate(good, schema)
    bad = {**good, "topology": {**good["topology"], "degre": 4}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_schema_names_every_section():
    schema = catalog.json_schema()
    assert set(schema["properties"]) == set(cfg.RunConfig.model_fields)


def test_docs_config_reference_is_in_sync_with_the_models():
    committed = (ROOT / "docs" / "config-reference.md").read_text()
    assert committed == catalog.config_reference(), (
        "docs/config-reference.md is stale: "
        "run `gossipsim schema --reference > docs/config-reference.md`"
    )
    for category in catalog.CATEGORIES:
        for kind in catalog.kinds(category):
            assert f"### `kind: {kind.name}`" in committed


SWEEPABLE = """\
name: grid
objective:
  dataset: {kind: synthetic, n_samples: 200, n_features: 3}
topology: {kind: random_regular, n: 9, degree: 4}
algorithm: {kind: swarmsgd}
stop: {time: 3}
"""


def test_sweep_grid_and_seeds_from_the_command_line_then_ls(tmp_path, capsys):
    path = tmp_path / "base.yaml"
    path.write_text(textwrap.dedent(SWEEPABLE))
    out = tmp_path / "results"
    args = ["sweep", str(path), "--out", str(out), "--executor", "serial", "--quiet"]
    grid = ["--grid", "algorithm.lr=0.05,0.1", "--grid", "topology.kind=ring,torus"]
    assert main([*args, *grid, "--seeds", "2", "--dry-run"]) == 0
    assert "8 runs of grid" in capsys.readouterr().out
    assert main([*args, *grid, "--seeds", "2"]) == 0
    assert "8 runs (8 complete" in capsys.readouterr().out
    assert main(["ls", str(out / "grid")]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == f"{out / 'grid'}: 8 runs (8 complete)"
    header = listing[1].split()
    for column in ("run_id", "status", "algorithm.lr", "topology.kind", "replicate", "final_loss"):
        assert column in header
    assert len(listing) == 2 + 8
    assert sum("torus" in line for line in listing) == 4
    assert main(["ls", str(out)]) == 0  # the results directory: every sweep in it
    assert capsys.readouterr().out.splitlines()[0] == listing[0]


def test_bad_grid_and_ls_arguments_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "base.yaml"
    path.write_text(textwrap.dedent(SWEEPABLE))
    assert main(["sweep", str(path), "--grid", "algorithm.lr", "--dry-run"]) == 2
    assert "--grid algorithm.lr: expected KEY=V1,V2" in capsys.readouterr().err
    assert main(["ls", str(tmp_path / "nothing")]) == 2
    assert "no such results directory" in capsys.readouterr().err


def test_edge_list_size_is_listed_as_read_from_the_file(capsys):
    assert main(["list", "topologies"]) == 0
    listing = capsys.readouterr().out
    edge = listing[listing.index("edge_list") :]
    assert "n=from the file" in edge.splitlines()[1]
