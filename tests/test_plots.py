"""Figures and reports from collected tables: grouping, seed bands, axes, files written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gossipsim.analysis.plots import plot_results, plot_table, standard_figures
from gossipsim.analysis.report import summarize, write_report
from gossipsim.cli import main
from gossipsim.experiment.results import metrics_table, run_id, write_run
from tests.test_results import fake_run


@pytest.fixture
def sweep_dir(tmp_path):
    for kind in ("ring", "complete"):
        for sigma in (0.0, 1.0):
            for replicate, seed in enumerate((11, 12, 13)):
                fake_run(tmp_path, kind=kind, sigma=sigma, seed=seed, replicate=replicate, rows=6)
    return tmp_path / "fake"


def test_defaults_colour_by_first_swept_key_and_panel_by_second(sweep_dir):
    from gossipsim.experiment.results import collect

    frame = collect(sweep_dir)
    fig = plot_table(frame)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["compute.sigma = 0", "compute.sigma = 1"]
    assert sorted(line.get_label() for line in axes[0].lines) == ["complete", "ring"]
    assert axes[0].get_legend().get_title().get_text() == "topology.kind"
    assert "mean and 95% CI over 3 seeds" in fig._suptitle.get_text()
    assert axes[0].get_xlabel() == "simulated time (s)"
    assert axes[0].get_ylabel() == "training loss of the mean model"
    # The line is the mean over the three seeds; the band surrounds it.
    ring = frame[(frame["topology.kind"] == "ring") & (frame["compute.sigma"] == 0.0)]
    expected = ring.groupby("time")["loss"].mean().to_numpy()
    line = next(line for line in axes[0].lines if line.get_label() == "ring")
    np.testing.assert_allclose(line.get_ydata(), expected)
    assert len(axes[0].collections) == 2  # one band per line


def test_loss_spanning_decades_gets_a_log_axis(sweep_dir):
    from gossipsim.experiment.results import collect

    frame = collect(sweep_dir)
    assert plot_table(frame, y="loss").axes[0].get_yscale() == "log"
    assert plot_table(frame, y="accuracy").axes[0].get_yscale() == "linear"


def test_explicit_hue_and_no_panels(sweep_dir):
    from gossipsim.experiment.results import collect

    fig = plot_table(collect(sweep_dir), x="bits", y="consensus", hue="compute.sigma", col=None)
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(line.get_label() for line in ax.lines) == [
        "compute.sigma=0, topology.kind=complete",
        "compute.sigma=0, topology.kind=ring",
        "compute.sigma=1, topology.kind=complete",
        "compute.sigma=1, topology.kind=ring",
    ]
    assert ax.get_xlabel() == "data sent (bits, all nodes)"
    with pytest.raises(ValueError, match="--hue: unknown column 'topology.knd'"):
        plot_table(collect(sweep_dir), hue="topology.knd")


def test_runs_on_different_x_grids_are_interpolated():
    rows = []
    for run, scale in (("a", 1.0), ("b", 2.0)):
        for t in range(5):
            rows.append({"run_id": run, "status": "complete", "interactions": t * scale,
                         "loss": 1.0 + t, "name": "x"})  # fmt: skip
    fig = plot_table(pd.DataFrame(rows), x="interactions", y="loss", hue=None, col=None)
    (line,) = fig.axes[0].lines
    xs, ys = line.get_xdata(), line.get_ydata()
    assert xs[-1] == 8.0 and ys[-1] == 5.0  # beyond run a's range only run b counts
    assert ys[list(xs).index(4.0)] == pytest.approx((5.0 + 3.0) / 2)


def test_plot_cli_without_flags_writes_png_and_pdf(sweep_dir, capsys):
    assert main(["plot", str(sweep_dir)]) == 0
    png, pdf = sweep_dir / "loss_vs_time.png", sweep_dir / "loss_vs_time.pdf"
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    assert main(["collect", str(sweep_dir)]) == 0
    table = sweep_dir.parent / "fake.parquet"
    out = sweep_dir.parent / "figs" / "acc.png"
    assert main(["plot", str(table), "--y", "accuracy", "--hue", "none", "-o", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".pdf").is_file()
    assert main(["plot", str(sweep_dir), "--y", "nonsense"]) == 2
    assert "unknown column 'nonsense'" in capsys.readouterr().err


def test_plot_results_and_standard_figures(sweep_dir, tmp_path):
    paths = plot_results(sweep_dir, x="interactions", y="loss", output=tmp_path / "f.pdf")
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    from gossipsim.experiment.results import collect

    written = standard_figures(collect(sweep_dir), tmp_path / "std", formats=("png",))
    names = [p.name for _, p in written]
    assert names[0] == "loss_vs_time.png" and "consensus_vs_time.png" in names


def test_report_summarises_each_configuration(sweep_dir, capsys):
    fake_run(sweep_dir.parent, kind="star", sigma=0.0, status="diverged")
    table, target = summarize(sweep_dir)
    assert len(table) == 5 and set(table.columns) >= {
        "topology.kind",
        "runs",
        "final loss (training objective)",
    }
    assert target is not None and np.isfinite(target)
    assert main(["report", str(sweep_dir), "--target", "0.1"]) == 0
    text = (sweep_dir / "report.md").read_text()
    assert text.startswith("# Sweep `fake`")
    assert "Target loss: **0.1**" in text
    assert "| topology.kind | compute.sigma | runs | status |" in text
    assert "## Runs that did not complete" in text and "diverged" in text
    assert "![loss vs time](loss_vs_time.png)" in text
    assert (sweep_dir / "loss_vs_time.png").is_file()


def test_write_report_without_figures(sweep_dir, tmp_path):
    path = write_report(sweep_dir, output=tmp_path / "r.md", figures=False)
    text = path.read_text()
    assert "Figures" not in text and "time to target (simulated s)" in text


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def _tour_frame(tmp_path):
    """The README tour: the quickstart, then lr 0.02 on 128 nodes (both keys change)."""
    from gossipsim.experiment.results import collect

    for lr, n, horizon in ((0.1, 32, 4), (0.02, 128, 8)):
        config = {"name": "tour", "seed": 7, "algorithm": {"lr": lr}, "topology": {"n": n}}
        rows = [
            {"time": float(t), "loss": 0.7 - 0.01 * t * (1 + lr), "bits": 10 * t}
            for t in range(horizon + 1)
        ]
        meta = {"status": "complete", "seed": 7}
        table = metrics_table(rows, list(rows[0]))
        write_run(tmp_path, "tour", run_id(config), config, meta, table)
    return collect(tmp_path / "tour")


def test_every_line_has_a_legend_entry_when_colour_and_panel_both_vary(tmp_path):
    fig = plot_table(_tour_frame(tmp_path))
    drawn = {line.get_label() for ax in fig.axes for line in ax.lines}
    assert len(drawn) == 2
    texts = _legend_texts(fig)
    for label in drawn:
        assert label in texts, (label, texts)
    assert sorted(texts) == sorted(drawn)  # one entry each


def test_panels_get_their_own_x_range_when_the_ranges_differ(tmp_path):
    fig = plot_table(_tour_frame(tmp_path))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert axes[0].get_xlim()[1] < 6 < axes[1].get_xlim()[1]


def test_report_has_one_column_per_changed_key_of_a_swept_section_and_mean_gap(tmp_path):
    for lr in (0.05, 0.1):
        for replicate, gap in enumerate((0.2, 0.4)):
            config = {"name": "sec", "seed": replicate, "algorithm": {"kind": "swarmsgd", "lr": lr}}
            meta = {
                "status": "complete",
                "seed": replicate,
                "spectral_gap": gap,
                "wall_time": 1.5,
                "sweep": {"keys": ["algorithm"], "replicate": replicate, "index": 0},
            }
            rows = [
                {"time": float(t), "interactions": t, "loss": 1.0 / (1 + t * lr), "bits": 10 * t}
                for t in range(4)
            ]
            write_run(
                tmp_path,
                "sec",
                run_id(config),
                config,
                meta,
                metrics_table(rows, list(rows[0])),
            )
    table, _ = summarize(tmp_path / "sec")
    assert "algorithm" not in table.columns and "algorithm.kind" not in table.columns
    assert sorted(table["algorithm.lr"]) == [0.05, 0.1]
    assert list(table["λ₂ (mean over runs)"]) == ["0.3", "0.3"]
    assert list(table["wall time (real s, mean)"]) == ["1.5", "1.5"]


def _legend_title_and_texts(fig) -> tuple[str, list[str]]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    (legend,) = legends
    return legend.get_title().get_text(), [text.get_text() for text in legend.get_texts()]


def test_cases_told_apart_by_one_key_are_labelled_by_that_key(tmp_path):
    from gossipsim.experiment.results import collect

    for case, kind in (("baseline", "ring"), ("hub", "complete")):
        for sigma in (0.0, 1.0):
            fake_run(tmp_path, kind=kind, sigma=sigma, case=case)
    fig = plot_table(collect(tmp_path / "fake"))
    title, labels = _legend_title_and_texts(fig)
    assert (title, sorted(labels)) == ("topology.kind", ["complete", "ring"])
    panels = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert panels == ["compute.sigma = 0", "compute.sigma = 1"]


def test_cases_that_differ_in_several_keys_are_labelled_by_their_names_alone(tmp_path):
    from gossipsim.experiment.results import collect

    fake_run(tmp_path, kind="ring", sigma=0.0, case="slow-ring")
    fake_run(tmp_path, kind="complete", sigma=1.0, case="fast-complete")
    fig = plot_table(collect(tmp_path / "fake"))
    title, labels = _legend_title_and_texts(fig)
    assert (title, sorted(labels)) == ("", ["fast-complete", "slow-ring"])
    # The case names are the labels: no 'case=' and no keys the case already fixes.
    fig = plot_table(collect(tmp_path / "fake"), col="case")
    panels = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert sorted(panels) == ["fast-complete", "slow-ring"]


def test_a_diverged_run_does_not_flatten_the_healthy_curves():
    """Healthy losses 0.9 → 0.005 beside a run that blows up to 1e303: a log axis sized
    to the healthy curves (the diverged one leaves through the top, its label says so)."""
    rows = []
    for run, lr, losses in (
        ("ok", 0.1, [0.9 * 0.5**t for t in range(8)]),
        ("bad", 1e8, [0.9 * 1e43**t for t in range(8)]),
    ):
        for t, loss in enumerate(losses):
            status = "diverged" if run == "bad" else "complete"
            rows.append({"run_id": run, "status": status, "time": float(t), "loss": loss,
                         "algorithm.lr": lr, "name": "x"})  # fmt: skip
    fig = plot_table(pd.DataFrame(rows), y="loss", hue="algorithm.lr", col=None)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert low <= 0.9 * 0.5**7 and 0.9 <= high < 1e3
    assert any("diverged" in line.get_label() for line in ax.lines)


def test_title_says_up_to_when_lines_have_different_numbers_of_seeds():
    rows = []
    for run, lr in (("a", 0.1), ("b", 0.1), ("c", 0.1), ("d", 0.2)):
        for t in range(4):
            rows.append({"run_id": run, "status": "complete", "time": float(t),
                         "loss": 1.0 / (1 + t), "algorithm.lr": lr, "name": "x"})  # fmt: skip
    fig = plot_table(pd.DataFrame(rows), y="loss", hue="algorithm.lr", col=None)
    assert fig._suptitle.get_text().endswith("over up to 3 seeds")
