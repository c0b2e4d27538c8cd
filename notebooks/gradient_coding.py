# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
QUICK = True  # seconds-long runs; set False for the full-size figures (a few minutes)

# %% [markdown]
# # Gradient coding with partial stragglers
#
# A parameter server (PS) and `n` workers train logistic regression by full-gradient
# descent; the data is split into `n` chunks and each worker holds `load = 3` of them. We
# compare five schemes on identical timing draws (Ramamoorthy, Meng, Girimaji, arXiv
# 2405.19509; see experiments/gradient_coding.md):
#
# * `uncoded` — chunk i on worker i, the PS waits for all workers;
# * `ignore_stragglers` — the PS waits for the fastest `n − 2` and rescales (approximate);
# * `fr` / `cr` — Tandon et al. gradient coding (fractional / cyclic repetition): a worker
#   finishes all 3 chunks, the PS decodes from any `n − 2` workers;
# * `partial` — the protocol: workers report progress after every chunk, the PS signals
#   encode-and-transmit as soon as every chunk is covered, each worker sends one vector.
#
# Straggler models are sweep *cases* (whole `compute:` sections); the figures are the time
# per iteration, the loss against simulated time, and — for the protocol's approximate mode
# — the decode error against the deadline. The experiment at full size is
# `experiments/gradient_coding.yaml` + `experiments/gradient_coding_deadline.yaml`.
# Set `GOSSIPSIM_QUICK=0` (or `QUICK = False` above) for the full-size version here.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gossipsim.analysis.plots import save_figure
from gossipsim.experiment.results import collect
from gossipsim.experiment.sweep import expand, run_sweep, summary_lines

if "GOSSIPSIM_QUICK" in os.environ:
    QUICK = os.environ["GOSSIPSIM_QUICK"].lower() not in ("0", "false", "no", "")
RESULTS = Path(os.environ.get("GOSSIPSIM_RESULTS", "results/notebooks"))
print(f"QUICK = {QUICK}; results under {RESULTS.resolve()}")

# %% [markdown]
# ## The experiment
# Each entry of `STRAGGLERS` is one straggler model (a `compute:` section: seconds per
# chunk). FR needs `workers` divisible by `load`; the baselines need `chunks = workers`.

# %%
SCHEMES = ["uncoded", "ignore_stragglers", "fr", "cr", "partial"]
BASE = {"kind": "shifted_exponential", "mean": 1.0, "shift": 0.5}
STRAGGLERS = {
    "none": BASE,
    "persistent": {**BASE, "stragglers": {"fraction": 0.0834, "slowdown": 5.0}},
    "lognormal-1": {**BASE, "heterogeneity": {"kind": "lognormal", "sigma": 1.0}},
}
if not QUICK:
    STRAGGLERS |= {
        "lognormal-0.5": {**BASE, "heterogeneity": {"kind": "lognormal", "sigma": 0.5}},
        "lognormal-2": {**BASE, "heterogeneity": {"kind": "lognormal", "sigma": 2.0}},
        "transient": {
            **BASE,
            "stragglers": {"fraction": 0.1, "slowdown": 5.0, "mode": "transient", "period": 5.0},
        },
    }
WORKERS = 12 if QUICK else 24
ITERATIONS = 25 if QUICK else 100
SEEDS = 1 if QUICK else 3


def gc_config(name: str, algorithm: dict, sweep: dict) -> dict:
    return {
        "name": name + ("-quick" if QUICK else ""),
        "seed": 7,
        "init": {"kind": "zeros"},
        "objective": {
            "kind": "logistic",
            "dataset": {
                "kind": "synthetic",
                "n_samples": 1200 if QUICK else 6000,
                "n_features": 20 if QUICK else 50,
                "noise": 0.1,
            },
            "l2": 1.0e-4,
        },
        "compute": BASE,
        "network": {"latency": 0.005, "bandwidth": 1.0e8},
        "algorithm": {
            "kind": "gradient_coding",
            "workers": WORKERS,
            "chunks": WORKERS,
            "load": 3,
            "assignment": "cyclic",
            "ordering": "expected",
            "lr": 2.0,
            "batch": "full",
            **algorithm,
        },
        "stop": {"iterations": ITERATIONS, "time": 50000},
        "record": {"every": 0.25 if QUICK else 0.5},
        "sweep": {"cases": {k: {"compute": v} for k, v in STRAGGLERS.items()}, **sweep},
    }


config = gc_config(
    "nb-gradient-coding",
    {"scheme": "partial", "recovery": "exact"},
    {"grid": {"algorithm.scheme": SCHEMES}, "seeds": SEEDS},
)
sweep = expand(config)
print(f"{len(sweep)} runs")
outcome = run_sweep(sweep, RESULTS, executor="serial" if QUICK else "process")
print("\n".join(summary_lines(outcome)))
frame = collect(RESULTS / sweep.name)
FIGURES = RESULTS / "figures" / sweep.name
final = frame.sort_values("time").groupby("run_id").tail(1)

# %% [markdown]
# ## Time per PS iteration
# Mean seconds per iteration, by scheme and straggler model (log scale). The exact schemes
# (`uncoded`, `fr`, `cr`, `partial`) all decode the full gradient; `ignore_stragglers` does
# not.

# %%
cases = list(STRAGGLERS)
per = final.groupby(["case", "algorithm.scheme"])["iteration_time"].mean().unstack()
per = per.reindex(index=cases, columns=SCHEMES)
fig = Figure(figsize=(9, 4), layout="constrained")
ax = fig.subplots()
width = 0.8 / len(SCHEMES)
for k, scheme in enumerate(SCHEMES):
    ax.bar(np.arange(len(cases)) + (k - 2) * width, per[scheme], width, label=scheme)
ax.set_xticks(np.arange(len(cases)), cases)
ax.set_yscale("log")
ax.set_ylabel("seconds per PS iteration")
ax.set_xlabel("straggler model")
ax.set_title(f"{WORKERS} workers, load 3")
ax.legend(fontsize=8, ncol=len(SCHEMES))
save_figure(fig, FIGURES / "time_per_iteration.png")
fig

# %%
speed = per.drop(columns="partial").div(per["partial"], axis=0).add_suffix(" / partial")
display_table = pd.concat([per.round(3), speed.round(2)], axis=1)
display_table

# %% [markdown]
# ## Loss against simulated time
# Distance to the best loss reached by any run (log scale, cut at 1e-7, where the exact
# schemes differ only by rounding). The exact schemes follow the same iterates, so their
# curves are the same staircase stretched in time.

# %%
best = frame["loss"].min()
fig = Figure(figsize=(4.2 * len(cases), 3.4), layout="constrained")
axes = fig.subplots(1, len(cases), sharey=True, squeeze=False)[0]
first_seed = frame["seed"].min()
for ax, case in zip(axes, cases, strict=True):
    for scheme in SCHEMES:
        sel = frame[
            (frame["case"] == case)
            & (frame["algorithm.scheme"] == scheme)
            & (frame["seed"] == first_seed)
        ].sort_values("time")
        gap = sel["loss"] - best
        keep = gap > 1e-7  # below that the exact schemes differ only by rounding
        ax.plot(sel["time"][keep], gap[keep], label=scheme)
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-7)
    ax.set_title(case)
    ax.set_xlabel("simulated time (s)")
    ax.grid(True, alpha=0.3)
axes[0].set_ylabel("loss − best loss")
axes[0].legend(fontsize=7)
save_figure(fig, FIGURES / "loss_vs_time.png")
fig

# %% [markdown]
# ## Approximate mode: decode error against the deadline
# The PS sends encode-and-transmit when every chunk is covered or at the deadline,
# whichever comes first; uncovered chunks are missing from ĝ. With `lr = 0` the model stays
# at w = 0, so every iteration decodes the same gradient and the error measures the code
# alone. `ignore_stragglers` (no deadline: it waits for the fastest n − 2) is the star.

# %%
DEADLINES = [0.5, 1.0, 1.5, 2.0, 3.0] if QUICK else [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0]
dconfig = gc_config(
    "nb-gradient-coding-deadline",
    {"scheme": "partial", "recovery": "approximate", "deadline": 1.0, "lr": 0.0},
    {
        "zip": {
            "algorithm.scheme": ["ignore_stragglers"] + ["partial"] * len(DEADLINES),
            "algorithm.deadline": [DEADLINES[-1], *DEADLINES],
        },
        "seeds": SEEDS,
    },
)
dsweep = expand(dconfig)
print(f"{len(dsweep)} runs")
outcome = run_sweep(dsweep, RESULTS, executor="serial" if QUICK else "process")
print("\n".join(summary_lines(outcome)))
dframe = collect(RESULTS / dsweep.name)
# Rows are recorded more often than most iterations end: the first row after an iteration
# carries its decode_error (a sample of the iterations when they are shorter).
its = dframe[dframe["iteration"] >= 1].sort_values("time")
its = its.drop_duplicates(["run_id", "iteration"]).assign(sq=lambda f: f["decode_error"] ** 2)
dtable = (
    its.groupby(["case", "algorithm.scheme", "algorithm.deadline"])
    .agg(mse=("sq", "mean"), exact=("decode_error", lambda e: float((e < 1e-8).mean())))
    .join(
        dframe.sort_values("time")
        .groupby("run_id")
        .tail(1)
        .groupby(["case", "algorithm.scheme", "algorithm.deadline"])["iteration_time"]
        .mean()
    )
    .reset_index()
)
FLOOR = 1e-8
fig = Figure(figsize=(11, 4), layout="constrained")
axes = fig.subplots(1, 2)
for k, case in enumerate(cases):
    color = f"C{k}"
    part = dtable[(dtable["case"] == case) & (dtable["algorithm.scheme"] == "partial")]
    ign = dtable[(dtable["case"] == case) & (dtable["algorithm.scheme"] == "ignore_stragglers")]
    mse = part["mse"].clip(lower=FLOOR)
    axes[0].plot(part["algorithm.deadline"], mse, "o-", color=color, label=case)
    axes[0].axhline(float(ign["mse"].iloc[0]), color=color, ls=":", lw=1)
    axes[1].plot(part["iteration_time"], mse, "o-", color=color, label=case)
    axes[1].plot(ign["iteration_time"], ign["mse"], "*", ms=13, color=color, mec="k")
for ax in axes:
    ax.set_yscale("log")
    ax.set_ylabel("decode MSE  mean ‖ĝ − g‖² / ‖g‖²")
    ax.grid(True, alpha=0.3)
axes[0].set_xlabel("deadline (s after the model broadcast)")
axes[0].set_title(f"dotted: ignore_stragglers; exact decodes drawn at {FLOOR:g}", fontsize=9)
axes[1].set_xlabel("seconds per iteration")
axes[1].set_title("error vs time per iteration (stars: ignore_stragglers)", fontsize=9)
axes[0].legend(fontsize=8)
save_figure(fig, FIGURES / "decode_error_vs_deadline.png")
fig

# %%
dtable
