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
# # SwarmSGD: convergence in time, in interactions, and consensus
#
# Paper-style figures for SwarmSGD (Nadiradze et al., arXiv 1910.12308): the loss of the
# mean model against simulated time and against the number of pairwise interactions, and
# the consensus distance (how far the node models are from their mean), on a sparse and a
# dense topology, averaged over seeds with a 95% band.
#
# Everything goes through the public Python API: a config dict with a `sweep:` section,
# `gossipsim.experiment.sweep.expand` / `run_sweep`, `gossipsim.experiment.results.collect` and
# `gossipsim.analysis.plots.plot_table`. Runs already in the results directory are not run again.
# Set `GOSSIPSIM_QUICK=0` (or `QUICK = False` above) for the full-size version.

# %%
# %matplotlib inline
import os
from pathlib import Path

from IPython.display import Markdown, display

from gossipsim.analysis.plots import plot_table, save_figure
from gossipsim.analysis.report import summarize
from gossipsim.experiment.results import collect
from gossipsim.experiment.sweep import expand, run_sweep, summary_lines

if "GOSSIPSIM_QUICK" in os.environ:
    QUICK = os.environ["GOSSIPSIM_QUICK"].lower() not in ("0", "false", "no", "")
RESULTS = Path(os.environ.get("GOSSIPSIM_RESULTS", "results/notebooks"))
print(f"QUICK = {QUICK}; results under {RESULTS.resolve()}")

# %% [markdown]
# ## The experiment
#
# One entry per algorithm in `ALGORITHMS`; each becomes a named sweep *case*, crossed with the
# topologies and replicated over seeds. To compare a baseline, add its algorithm section here
# (e.g. `"adpsgd": {"kind": "adpsgd", "lr": 0.1}`) — nothing else changes.

# %%
ALGORITHMS = {
    "swarmsgd": {
        "kind": "swarmsgd",
        "lr": 0.1,
        "local_steps": {"kind": "geometric", "mean": 2},
        "nonblocking": True,
    },
    "swarmsgd-8bit": {
        "kind": "swarmsgd",
        "lr": 0.1,
        "local_steps": {"kind": "geometric", "mean": 2},
        "nonblocking": True,
        "quantizer": {"kind": "lattice", "bits": 8, "epsilon": 2.0e-3},
    },
}
TOPOLOGIES = ["ring", "complete"] if QUICK else ["ring", "torus", "random_regular", "complete"]

config = {
    "name": "nb-swarmsgd" + ("-quick" if QUICK else ""),
    "seed": 7,
    "init": {"kind": "normal", "scale": 1.0, "identical": True},
    "objective": {
        "kind": "logistic",
        "dataset": {
            "kind": "synthetic",
            "n_samples": 600 if QUICK else 10000,
            "n_features": 5 if QUICK else 20,
        },
        "partition": {"kind": "dirichlet", "alpha": 0.5},
        "batch_size": 16,
    },
    "topology": {"kind": "ring", "n": 8 if QUICK else 32},
    "compute": {"kind": "lognormal", "mean": 1.0, "sigma": 0.5},
    "network": {"latency": 0.01, "bandwidth": 1.0e7},
    "algorithm": ALGORITHMS["swarmsgd"],
    "stop": {"time": 12 if QUICK else 200},
    "record": {"every": 2 if QUICK else 5},
    "sweep": {
        "cases": {name: {"algorithm": spec} for name, spec in ALGORITHMS.items()},
        "grid": {"topology.kind": TOPOLOGIES},
        "seeds": 2 if QUICK else 3,
    },
}

sweep = expand(config)  # every run is validated here, before any starts
print(sweep.format_table(RESULTS))

# %%
outcome = run_sweep(sweep, RESULTS, executor="serial" if QUICK else "process")
print("\n".join(summary_lines(outcome)))
frame = collect(RESULTS / sweep.name)
frame.head()

# %% [markdown]
# ## Loss of the mean model against simulated time
# Sparse graphs mix slowly, so the ring lags the complete graph in time to a given loss.

# %%
FIGURES = RESULTS / "figures" / sweep.name
fig = plot_table(frame, x="time", y="loss", hue="topology.kind", col="case")
save_figure(fig, FIGURES / "loss_vs_time.png")
fig

# %% [markdown]
# ## Loss against pairwise interactions
# Interactions count communication: the x axis a network engineer pays for.

# %%
fig = plot_table(frame, x="interactions", y="loss", hue="topology.kind", col="case")
save_figure(fig, FIGURES / "loss_vs_interactions.png")
fig

# %% [markdown]
# ## Consensus distance (1/n) Σ‖x_i − μ‖²
# Local steps on non-iid shards push models apart; averaging pulls them together.

# %%
fig = plot_table(frame, x="time", y="consensus", hue="topology.kind", col="case")
save_figure(fig, FIGURES / "consensus_vs_time.png")
fig

# %% [markdown]
# ## Bits: what quantization buys

# %%
fig = plot_table(frame, x="bits", y="loss", hue="case", col="topology.kind")
save_figure(fig, FIGURES / "loss_vs_bits.png")
fig

# %% [markdown]
# ## Summary per configuration

# %%
table, target = summarize(RESULTS / sweep.name)
display(Markdown(f"Target loss {target:.4g}"))
table

# %% [markdown]
# ## The experiments of `experiments/`
#
# The six experiment sweeps (`experiments/*.yaml`, each with a note) reproduce the paper's
# claims at small scale. Full mode loads their results from `results/` (run
# `gossipsim sweep experiments/<name>.yaml --out results` first; missing runs are run here)
# and draws the same figures as `python experiments/figures.py <name>`. Quick mode runs two
# of them shrunk to a few simulated seconds.

# %%
import importlib.util  # noqa: E402

import gossipsim  # noqa: E402
from gossipsim.experiment.sweep import load_sweep  # noqa: E402

EXPERIMENTS_DIR = Path(gossipsim.__file__).resolve().parent.parent / "experiments"
spec = importlib.util.spec_from_file_location("figures", EXPERIMENTS_DIR / "figures.py")
experiment_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(experiment_figures)

if QUICK:
    EXPERIMENTS = {"heterogeneity": ["stop.time=6"], "communication": ["stop.epochs=0.3"]}
    EXPERIMENT_RESULTS = RESULTS / "experiments"
else:
    EXPERIMENTS = {name: [] for name in experiment_figures.EXPERIMENTS}
    EXPERIMENT_RESULTS = Path("results")
EXPERIMENT_FIGURES = RESULTS / "figures" / "experiments"
for name, overrides in EXPERIMENTS.items():
    experiment = load_sweep(EXPERIMENTS_DIR / f"{name}.yaml", overrides)
    print("\n".join(summary_lines(run_sweep(experiment, out=EXPERIMENT_RESULTS, progress=False))))
    summary = experiment_figures.EXPERIMENTS[name](EXPERIMENT_RESULTS, EXPERIMENT_FIGURES)
    display(Markdown(f"### {name}\n\n{summary}"))

# %%
from IPython.display import Image  # noqa: E402

for png in sorted(EXPERIMENT_FIGURES.glob("*.png")):
    display(Image(filename=str(png)))
