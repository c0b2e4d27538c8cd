"""A damaged run directory is skipped (with a warning naming it) by collect, plot and report,
and rerun by a resumed sweep instead of being counted complete."""

from __future__ import annotations

import textwrap

import pyarrow.parquet as pq
import pytest

from gossipsim.cli import main
from gossipsim.experiment.results import run_directories

SWEEP = """\
name: dmg
objective:
  dataset: {kind: synthetic, n_samples: 200, n_features: 3}
topology: {kind: ring, n: 4}
algorithm: {kind: swarmsgd}
stop: {time: 4}
record: {every: 2}
sweep:
  grid: {algorithm.lr: [0.01, 0.02]}
"""


@pytest.fixture
def swept(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SWEEP))
    args = ["sweep", str(path), "--out", str(tmp_path / "out"), "--executor", "serial", "--quiet"]
    assert main(args) == 0
    runs = run_directories(tmp_path / "out" / "dmg")
    assert len(runs) == 2
    return args, runs


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing meta"])
def test_collect_plot_and_report_skip_a_damaged_run_naming_it(tmp_path, capsys, swept, damage):
    _, (good, bad) = swept
    if damage == "garbage":
        (bad / "metrics.parquet").write_bytes(b"not parquet at all")
    elif damage == "truncated":
        data = (bad / "metrics.parquet").read_bytes()
        (bad / "metrics.parquet").write_bytes(data[: len(data) // 2])
    else:
        (bad / "meta.json").unlink()
    capsys.readouterr()
    sweep_dir = str(tmp_path / "out" / "dmg")
    assert main(["collect", sweep_dir]) == 0
    captured = capsys.readouterr()
    assert "from 1 run," in captured.out
    assert f"warning: skipping {bad}: unreadable run directory" in captured.err
    assert "Traceback" not in captured.err
    assert main(["plot", sweep_dir]) == 0
    assert main(["report", sweep_dir]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_resumed_sweep_reruns_a_run_with_corrupt_metrics(tmp_path, capsys, swept):
    args, (good, bad) = swept
    (bad / "metrics.parquet").write_bytes(b"PAR1 garbage")
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "1 already done, skipped" in captured.out
    assert f"rerunning {bad}: damaged" in captured.err
    assert pq.read_table(bad / "metrics.parquet").num_rows == 3
