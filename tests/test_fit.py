"""Reading compute traces and fitting the built-in distributions to them (`gossipsim fit`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from gossipsim.cli import main
from gossipsim.system.fit import fit_durations, fit_family, fit_trace
from gossipsim.system.timing import ComputeModel
from gossipsim.system.traces import TraceError, read_trace

N = 20_000


def draws(kind: str, rng: np.random.Generator, size: int, **params: float) -> np.ndarray:
    """Samples from the simulator's own compute model (so the parameterization is its)."""
    model = ComputeModel(1, kind, np.random.default_rng(0), **params)
    return model.step_times(0, size, rng)


def write_csv(path: Path, nodes, durations, header: str = "node,duration") -> Path:
    lines = [header] + [f"{int(i)},{float(d)!r}" for i, d in zip(nodes, durations, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "kind, params",
    [
        ("lognormal", {"mean": 2.0, "sigma": 0.5}),
        ("shifted_exponential", {"mean": 1.5, "shift": 0.5}),
        ("pareto", {"mean": 1.0, "alpha": 3.0}),
        ("exponential", {"mean": 0.7}),
    ],
)
def test_fit_recovers_the_parameters_and_picks_the_family(kind, params):
    x = draws(kind, np.random.default_rng(11), N, **params)
    fits = fit_durations(x)
    assert fits[0].kind == kind, [(f.kind, f.aic) for f in fits]
    fitted = fits[0].params
    # Within sampling error: a few standard errors of each estimator at N = 20,000.
    sd = float(x.std())
    assert fitted["mean"] == pytest.approx(params["mean"], abs=4 * sd / math.sqrt(N) + 0.01)
    if kind == "lognormal":
        assert fitted["sigma"] == pytest.approx(0.5, abs=4 * 0.5 / math.sqrt(2 * N))
    if kind == "shifted_exponential":
        assert fitted["shift"] == pytest.approx(0.5, abs=0.001)  # the minimum: error ~ 1/N
    if kind == "pareto":
        assert fitted["alpha"] == pytest.approx(3.0, abs=4 * 3.0 / math.sqrt(N))
    assert fits[0].ks < 0.015


def test_the_likelihood_and_ks_are_those_of_scipy():
    from scipy import stats

    x = draws("lognormal", np.random.default_rng(2), 500, mean=1.0, sigma=0.3)
    fit = fit_family("lognormal", x)
    law = stats.lognorm(s=fit.params["sigma"], scale=math.exp(np.log(x).mean()))
    assert fit.loglik == pytest.approx(float(law.logpdf(x).sum()), rel=1e-12)
    assert fit.ks == pytest.approx(float(stats.kstest(x, law.cdf).statistic), rel=1e-12)


def test_pareto_with_an_infinite_mean_is_reported_as_not_usable():
    x = 1.0 + np.random.default_rng(0).pareto(0.8, size=2000)  # alpha 0.8 < 1
    fit = fit_family("pareto", x)
    assert not fit.usable and "infinite mean" in fit.note


def test_constant_durations_give_a_constant_fit(tmp_path):
    path = write_csv(tmp_path / "c.csv", [0, 0, 1, 1], [0.25] * 4)
    result = fit_trace(read_trace(path))
    assert result.compute_section() == {"kind": "constant", "mean": 0.25}


def test_heterogeneity_sigma_is_recovered_and_written(tmp_path):
    rng = np.random.default_rng(5)
    nodes, durations = [], []
    factors = np.exp(rng.normal(-0.5 * 0.4**2, 0.4, size=60))
    for node, factor in enumerate(factors):
        x = factor * draws("exponential", rng, 400, mean=1.0)
        nodes += [node] * len(x)
        durations += list(x)
    result = fit_trace(read_trace(write_csv(tmp_path / "h.csv", nodes, durations)))
    realized = float(np.log(factors).std(ddof=1))
    # What is left of the factors' spread after the sampling noise of 400 draws per node.
    assert result.heterogeneity_sigma == pytest.approx(realized, abs=0.03)
    section = result.compute_section()
    assert section["kind"] == "exponential"
    assert section["heterogeneity"]["kind"] == "lognormal"


def test_identical_nodes_get_no_heterogeneity(tmp_path):
    rng = np.random.default_rng(6)
    nodes = np.repeat(np.arange(8), 500)
    x = draws("lognormal", rng, len(nodes), mean=1.0, sigma=0.5)
    result = fit_trace(read_trace(write_csv(tmp_path / "same.csv", nodes, x)))
    assert result.heterogeneity_sigma == 0.0
    assert "heterogeneity" not in result.compute_section()


def test_gossipsim_fit_writes_a_section_a_config_accepts(tmp_path, capsys):
    rng = np.random.default_rng(7)
    nodes = np.repeat(np.arange(4), 300)
    x = draws("shifted_exponential", rng, len(nodes), mean=2.0, shift=1.0)
    trace = write_csv(tmp_path / "t.csv", nodes, x)
    out = tmp_path / "compute.yaml"
    assert main(["fit", str(trace), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "<- best" in printed and "compute:" in printed and "KS" in printed
    section = yaml.safe_load(out.read_text())["compute"]
    assert section["kind"] == "shifted_exponential"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "fitted",
                "objective": {"kind": "least_squares", "dataset": {"kind": "synthetic"}},
                "topology": {"kind": "ring", "n": 4},
                "algorithm": {"kind": "swarmsgd"},
                "compute": section,
                "stop": {"time": 5.0},
            }
        )
    )
    assert main(["validate", str(config)]) == 0


def test_parquet_traces_are_read_with_an_optional_time_column(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table(
        {"time": [3.0, 1.0, 2.0], "node": [0, 0, 0], "duration": [0.3, 0.1, 0.2], "x": [1, 2, 3]}
    )
    pq.write_table(table, path)
    trace = read_trace(path)
    assert list(trace.durations_of(0)) == [0.1, 0.2, 0.3]  # in the order of their start


@pytest.mark.parametrize(
    "text, message",
    [
        ("node,duration\n0,1.0\n1,-2\n", "bad.csv:3: duration: must be > 0 seconds, got -2"),
        ("node,duration\n0,1.0\nx,2\n", "bad.csv:3: node: not a number: 'x'"),
        ("node,duration\n0.5,1.0\n", "bad.csv:2: node: must be an integer id >= 0"),
        ("node,duration\n0,nan\n", "bad.csv:2: duration: must be finite"),
        ("# measured\nnode,seconds\n0,1\n", "bad.csv:2: missing column(s) duration"),
        ("node,duration\n0,1,2\n", "bad.csv:2: 3 fields, the header has 2"),
        ("node,duration\n", "bad.csv: no measurements after the header"),
        ("", "bad.csv: empty trace"),
    ],
)
def test_bad_trace_files_are_named_with_their_line(tmp_path, text, message, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert message in str(caught.value)
    assert main(["fit", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_missing_trace_and_an_unwritable_output_fail_before_any_work(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: trace file not found" in capsys.readouterr().err
    trace = write_csv(tmp_path / "t.csv", [0, 0, 0], [1.0, 2.0, 3.0])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["fit", str(trace), "--output", str(blocker / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"--output {blocker / 'x.yaml'}" in err and "Traceback" not in err


def test_a_fit_whose_mean_misses_the_measured_mean_is_flagged(tmp_path, capsys):
    """Short steps with rare very long pauses (preemptions): the best family by AIC follows
    the bulk, and its mean falls far below the measured one — the report says so."""
    rng = np.random.default_rng(4)
    durations = rng.lognormal(np.log(3e-5), 0.2, size=4000)
    pauses = rng.random(4000) < 0.01
    durations[pauses] = rng.uniform(5e-3, 4e-2, size=int(pauses.sum()))
    path = tmp_path / "pauses.csv"
    path.write_text(
        "node,duration\n" + "".join(f"{i % 4},{float(d)!r}\n" for i, d in enumerate(durations))
    )
    assert main(["fit", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: the best fit's mean" in out and "below the measured mean" in out
    calm = tmp_path / "calm.csv"
    steady = rng.lognormal(np.log(3e-5), 0.2, size=2000)
    calm.write_text(
        "node,duration\n" + "".join(f"{i % 4},{float(d)!r}\n" for i, d in enumerate(steady))
    )
    assert main(["fit", str(calm)]) == 0
    assert "warning" not in capsys.readouterr().out
