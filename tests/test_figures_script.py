"""experiments/figures.py: log axes only where values span decades; output under results/."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _figures():
    spec = importlib.util.spec_from_file_location("figures", ROOT / "experiments" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_narrow_range_keeps_a_linear_axis_and_decades_get_a_log_one():
    figures = _figures()
    fig, (narrow, wide, bars) = plt.subplots(1, 3)
    narrow.plot([0, 1, 2], [0.69, 0.62, 0.56])
    wide.plot([0, 1, 2], [1.0, 1e-2, 1e-4])
    bars.bar([0, 1], [2.0, 3.0])
    assert figures._auto_log_y(narrow) is False and narrow.get_yscale() == "linear"
    assert figures._auto_log_y(wide) is True and wide.get_yscale() == "log"
    assert figures._auto_log_y(bars) is False
    plt.close(fig)


def test_figures_go_under_results_by_default_and_every_option_has_help(tmp_path):
    help_text = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "figures.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(help_text.split())
    assert "(default: <results>/figures;" in flat
    options = [word for word in flat.split() if word.startswith("--") and word != "--help"]
    for option in set(options):  # each option's entry carries text beyond its metavar
        entry = flat.split(f"{option} {option.strip('-').upper()} ")[-1]
        assert len(entry.split()) > 3, option
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "figures.py"), "topologies"]
        + ["--results", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "no runs under" in done.stderr
    assert (tmp_path / "figures").is_dir()
    assert not any((tmp_path / "figures").iterdir())


def test_curves_of_runs_recorded_at_different_x_are_averaged_on_a_common_grid():
    import pandas as pd

    figures = _figures()
    frame = pd.DataFrame(
        {
            "run_id": ["a"] * 3 + ["b"] * 3,
            "epochs": [0.0, 1.0, 2.0, 0.0, 1.1, 2.1],
            "accuracy": [0.0, 0.5, 1.0, 0.0, 0.55, 1.05],  # both: accuracy = epochs / 2
        }
    )
    x, y = figures.mean_curve_interpolated(frame, "epochs", "accuracy", points=5)
    assert x[0] == 0.0 and x[-1] == 2.0  # the range both runs cover
    assert abs(y - x / 2).max() < 1e-12  # no alternation between the runs
    raw_x, _ = figures.mean_curve(frame, "epochs", "accuracy")
    assert len(raw_x) == 5  # grouping by raw values keeps single-run points
