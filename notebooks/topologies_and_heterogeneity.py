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
# # Topologies and compute heterogeneity
#
# How does SwarmSGD react when nodes compute at uneven speeds? Each local step takes a
# lognormal time with mean 1 s; `compute.sigma` is its spread (0 = every step takes
# exactly the mean). We sweep it against the topology, with seeds, and look at the loss in
# simulated time, at the time nodes spend idle waiting for a busy partner (blocking
# averaging), and at the final loss as a function of heterogeneity.
#
# Set `GOSSIPSIM_QUICK=0` (or `QUICK = False` above) for the full-size version.

# %%
# %matplotlib inline
import os
from pathlib import Path

from matplotlib.figure import Figure

from gossipsim.analysis.plots import plot_table, save_figure
from gossipsim.experiment.results import collect, runs_table
from gossipsim.experiment.sweep import expand, run_sweep, summary_lines

if "GOSSIPSIM_QUICK" in os.environ:
    QUICK = os.environ["GOSSIPSIM_QUICK"].lower() not in ("0", "false", "no", "")
RESULTS = Path(os.environ.get("GOSSIPSIM_RESULTS", "results/notebooks"))
print(f"QUICK = {QUICK}; results under {RESULTS.resolve()}")

# %% [markdown]
# ## The experiment
# Add algorithms to `ALGORITHMS` to compare them under the same heterogeneity (each becomes
# a sweep case); the plots below colour by topology and split panels by sigma.

# %%
ALGORITHMS = {
    "swarmsgd-blocking": {"kind": "swarmsgd", "lr": 0.1, "nonblocking": False},
}
SIGMAS = [0.0, 1.0] if QUICK else [0.0, 0.5, 1.0, 1.5]
TOPOLOGIES = ["ring", "complete"] if QUICK else ["ring", "torus", "complete"]

config = {
    "name": "nb-heterogeneity" + ("-quick" if QUICK else ""),
    "seed": 11,
    "objective": {
        "kind": "logistic",
        "dataset": {
            "kind": "synthetic",
            "n_samples": 600 if QUICK else 10000,
            "n_features": 5 if QUICK else 20,
        },
        "partition": {"kind": "iid"},
        "batch_size": 16,
    },
    "topology": {"kind": "ring", "n": 8 if QUICK else 16},
    "compute": {
        "kind": "lognormal",
        "mean": 1.0,
        "sigma": 0.5,
        "heterogeneity": {"kind": "lognormal", "sigma": 0.3},
    },
    "network": {"latency": 0.01, "bandwidth": 1.0e7},
    "algorithm": next(iter(ALGORITHMS.values())),
    "stop": {"time": 12 if QUICK else 150},
    "record": {"every": 2 if QUICK else 5},
    "sweep": {
        "cases": {name: {"algorithm": spec} for name, spec in ALGORITHMS.items()},
        "grid": {"topology.kind": TOPOLOGIES, "compute.sigma": SIGMAS},
        "seeds": 2 if QUICK else 3,
    },
}
sweep = expand(config)
print(f"{len(sweep)} runs")

# %%
outcome = run_sweep(sweep, RESULTS, executor="serial" if QUICK else "process")
print("\n".join(summary_lines(outcome)))
frame = collect(RESULTS / sweep.name)
FIGURES = RESULTS / "figures" / sweep.name

# %% [markdown]
# ## Loss against simulated time, one panel per sigma

# %%
fig = plot_table(frame, x="time", y="loss", hue="topology.kind", col="compute.sigma")
save_figure(fig, FIGURES / "loss_vs_time.png")
fig

# %% [markdown]
# ## Idle time: blocking averages wait for busy partners
# Slower, more variable nodes keep their partners waiting; idle time grows with sigma.

# %%
fig = plot_table(frame, x="time", y="idle_time", hue="compute.sigma", col="topology.kind")
save_figure(fig, FIGURES / "idle_time_vs_time.png")
fig

# %% [markdown]
# ## Final loss against heterogeneity

# %%
runs = runs_table(RESULTS / sweep.name)
final = (
    runs.groupby(["topology.kind", "compute.sigma"])["final_loss"]
    .agg(["mean", "std", "count"])
    .reset_index()
)
fig = Figure(figsize=(6, 4), layout="constrained")
ax = fig.subplots()
for kind, group in final.groupby("topology.kind"):
    ax.errorbar(group["compute.sigma"], group["mean"], yerr=group["std"], marker="o", label=kind)
ax.set_xlabel("compute.sigma (spread of step times, lognormal)")
ax.set_ylabel("final training loss of the mean model")
ax.set_title(f"{sweep.name}: final loss at t = {config['stop']['time']} s (mean ± sd over seeds)")
ax.legend(title="topology.kind")
ax.grid(True, alpha=0.3)
save_figure(fig, FIGURES / "final_loss_vs_sigma.png")
fig

# %%
final
