"""``gossipsim fit``: the built-in compute distributions fitted to a measured trace.

The simulator draws a node's step time as ``factor_i · X``: ``X`` from one distribution
(``compute.kind`` with its ``mean`` and shape), ``factor_i`` a persistent per-node speed
factor (``compute.heterogeneity``, mean 1). Fitting follows the same split:

* **per node**: every family fitted to that node's own durations;
* **pooled**: each node's durations divided by its speed factor (its mean over the mean of
  the node means), then every family fitted to all of them together — the base
  distribution ``X``;
* **heterogeneity**: whether nodes differ in speed at all (Kruskal–Wallis test on the
  nodes' durations, at the 1% level) and, if they do, the log-scale ``sigma`` of lognormal
  factors: the spread of the log node means with the part that sampling noise alone
  would give (``CV²/n_i`` per node) taken out.

Estimators (maximum likelihood unless noted), in the simulator's own parameters:
``exponential`` mean = sample mean; ``shifted_exponential`` the unbiased pair
``scale = n(x̄ − min)/(n − 1)``, ``shift = min − scale/n`` (clipped at 0), so the mean is the
sample mean; ``lognormal`` ``sigma`` = standard deviation of ``log x``, mean =
``exp(mean(log x) + sigma²/2)``; ``pareto`` ``x_m = min``, ``alpha = n / Σ log(x/x_m)``,
mean = ``alpha·x_m/(alpha − 1)`` (usable only when ``alpha > 1``). All-equal durations are
``constant``. Goodness of fit: the Kolmogorov–Smirnov statistic against the fitted law
(parameters come from the same data, so it is for comparing families, not a test) and
the log-likelihood; the best family is the one of least AIC (2·parameters − 2·log-lik).
Stragglers (a slow fraction) are not fitted: a trace with them shows up as a heavier tail
or as heterogeneity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from gossipsim.system.traces import Trace

__all__ = ["Fit", "TraceFit", "fit_durations", "fit_family", "fit_trace"]

FAMILIES = ("exponential", "shifted_exponential", "lognormal", "pareto")
PARAMETERS = {"exponential": 1, "shifted_exponential": 2, "lognormal": 2, "pareto": 2}
MIN_PER_NODE = 5  # fewer measurements than this: the node is pooled but not fitted alone
HETEROGENEITY_LEVEL = 0.01  # Kruskal–Wallis p-value below which nodes differ in speed


@dataclass(frozen=True)
class Fit:
    """One family fitted to a sample: its parameters in the simulator's terms."""

    kind: str
    params: dict[str, float]
    ks: float
    loglik: float
    n: int
    usable: bool = True  # False: the simulator cannot draw it (pareto with alpha <= 1)
    note: str = ""

    @property
    def aic(self) -> float:
        return 2 * PARAMETERS.get(self.kind, 0) - 2 * self.loglik

    def describe(self) -> str:
        return " ".join(f"{k}={_g(v)}" for k, v in self.params.items())


def _g(value: float) -> str:
    return f"{value:.4g}"


def _law(kind: str, params: dict[str, float]) -> Any:
    """The scipy.stats distribution of ``kind`` with the simulator's ``params``."""
    mean = params["mean"]
    if kind == "exponential":
        return stats.expon(scale=mean)
    if kind == "shifted_exponential":
        return stats.expon(loc=params["shift"], scale=mean - params["shift"])
    if kind == "lognormal":
        sigma = params["sigma"]
        return stats.lognorm(s=sigma, scale=math.exp(math.log(mean) - 0.5 * sigma * sigma))
    alpha = params["alpha"]
    return stats.pareto(b=alpha, scale=mean * (alpha - 1.0) / alpha)


def fit_family(kind: str, x: np.ndarray) -> Fit:
    """Fit ``kind`` to the positive sample ``x`` (at least 2 values)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least 2 durations to fit, got {n}")
    low, mean = float(x.min()), float(x.mean())
    if kind == "exponential":
        params = {"mean": mean}
    elif kind == "shifted_exponential":
        scale = n * (mean - low) / (n - 1)
        shift = max(low - scale / n, 0.0)
        params = {"mean": shift + scale, "shift": shift}
    elif kind == "lognormal":
        logs = np.log(x)
        sigma = float(logs.std())
        params = {"mean": math.exp(float(logs.mean()) + 0.5 * sigma * sigma), "sigma": sigma}
    elif kind == "pareto":
        total = float(np.log(x / low).sum())
        alpha = n / total if total > 0 else math.inf
        if not alpha > 1.0 or not math.isfinite(alpha):
            reason = "alpha <= 1: infinite mean" if alpha <= 1 else "all durations equal"
            return Fit(kind, {"alpha": alpha}, math.inf, -math.inf, n, usable=False, note=reason)
        params = {"mean": alpha * low / (alpha - 1.0), "alpha": alpha}
    else:
        raise ValueError(f"unknown family {kind!r}; valid: {', '.join(FAMILIES)}")
    if kind == "shifted_exponential" and params["mean"] <= params["shift"]:
        return Fit(kind, params, math.inf, -math.inf, n, usable=False, note="no spread")
    if kind == "lognormal" and params["sigma"] == 0:
        return Fit(kind, params, math.inf, -math.inf, n, usable=False, note="no spread")
    law = _law(kind, params)
    with np.errstate(divide="ignore"):
        loglik = float(np.sum(law.logpdf(x)))
    ks = float(stats.kstest(x, law.cdf).statistic)
    return Fit(kind, params, ks, loglik, n)


def fit_durations(x: np.ndarray) -> list[Fit]:
    """Every family fitted to ``x``, best (least AIC among the usable ones) first."""
    x = np.asarray(x, dtype=np.float64)
    if np.ptp(x) <= 1e-12 * float(x.mean()):
        return [Fit("constant", {"mean": float(x.mean())}, 0.0, math.inf, len(x))]
    fits = [fit_family(kind, x) for kind in FAMILIES]
    return sorted(fits, key=lambda f: (not f.usable, f.aic))


@dataclass
class TraceFit:
    """What :func:`fit_trace` found."""

    trace: Trace
    pooled: list[Fit]
    factors: dict[int, float]  # node → its speed factor (node mean / mean of node means)
    heterogeneity_p: float | None  # Kruskal–Wallis p-value (None: fewer than 2 nodes)
    heterogeneity_sigma: float  # lognormal factor sigma (0: no heterogeneity)
    per_node: dict[int, list[Fit]] = field(default_factory=dict)
    too_few: list[int] = field(default_factory=list)
    pooled_mean: float = math.nan  # mean of the pooled (factor-normalized) durations

    def mean_gap(self) -> float:
        """(best fit's mean − measured mean) / measured mean, of the pooled durations."""
        mean = self.best.params.get("mean", math.nan)
        return (mean - self.pooled_mean) / self.pooled_mean

    @property
    def best(self) -> Fit:
        return self.pooled[0]

    def compute_section(self) -> dict[str, Any]:
        """The ``compute:`` section of the best pooled fit, heterogeneity included."""
        best = self.best
        section: dict[str, Any] = {"kind": best.kind}
        section.update({k: float(f"{v:.4g}") for k, v in best.params.items()})
        if self.heterogeneity_sigma > 0:
            sigma = float(f"{self.heterogeneity_sigma:.4g}")
            section["heterogeneity"] = {"kind": "lognormal", "sigma": sigma}
        return section


def fit_trace(trace: Trace) -> TraceFit:
    """Fit the trace per node and pooled; estimate the nodes' speed heterogeneity."""
    nodes = [int(i) for i in trace.nodes]
    samples = {i: trace.durations_of(i) for i in nodes}
    means = {i: float(x.mean()) for i, x in samples.items()}
    overall = float(np.mean(list(means.values())))
    factors = {i: means[i] / overall for i in nodes}
    normalized = np.concatenate([samples[i] / factors[i] for i in nodes])
    if len(normalized) < 2:
        raise ValueError(f"{trace.path}: need at least 2 measurements to fit, got 1")
    pooled = fit_durations(normalized)
    per_node = {i: fit_durations(x) for i, x in samples.items() if len(x) >= MIN_PER_NODE}
    too_few = [i for i, x in samples.items() if len(x) < MIN_PER_NODE]
    p_value: float | None = None
    sigma = 0.0
    testable = [samples[i] for i in nodes if len(samples[i]) >= 2]
    if len(testable) >= 2:
        all_values = np.concatenate(testable)
        if np.ptp(all_values) > 0:
            p_value = float(stats.kruskal(*testable).pvalue)
        if p_value is not None and p_value < HETEROGENEITY_LEVEL:
            counted = [i for i in nodes if len(samples[i]) >= 2]
            logs = np.log([factors[i] for i in counted])
            # Sampling noise alone spreads log node means by about CV²/n_i (delta method).
            cv2 = float(normalized.var() / normalized.mean() ** 2)
            noise = float(np.mean([cv2 / len(samples[i]) for i in counted]))
            sigma = math.sqrt(max(float(logs.var(ddof=1)) - noise, 0.0))
    return TraceFit(
        trace, pooled, factors, p_value, sigma, per_node, too_few, float(normalized.mean())
    )


# Above this relative difference between the best fit's mean and the measured mean, the
# report warns (a simulated run's progress follows the mean step time).
MEAN_GAP = 0.2


def report_lines(result: TraceFit, per_node: int = 10) -> list[str]:
    """The fit as ``gossipsim fit`` prints it."""
    trace = result.trace
    nodes = len(result.factors)
    lines = [
        f"{trace.path}: {len(trace.duration):,} durations of {nodes} "
        f"{'node' if nodes == 1 else 'nodes'} (mean {_g(float(trace.duration.mean()))} s)",
        "",
        "pooled (each node's durations divided by its speed factor):",
        f"  {'family':20s} {'parameters':34s} {'KS':>7s} {'log-lik':>12s} {'AIC':>12s}",
    ]
    for index, fit in enumerate(result.pooled):
        if not fit.usable:
            lines.append(f"  {fit.kind:20s} not usable: {fit.note}")
            continue
        mark = "  <- best" if index == 0 else ""
        lines.append(
            f"  {fit.kind:20s} {fit.describe():34s} {fit.ks:7.4f} {fit.loglik:12.6g} "
            f"{fit.aic:12.6g}{mark}"
        )
    gap = result.mean_gap() if result.best.usable else math.nan
    if math.isfinite(gap) and abs(gap) > MEAN_GAP:
        lines.append(
            f"  warning: the best fit's mean, {_g(result.best.params['mean'])} s, is "
            f"{abs(gap):.0%} {'below' if gap < 0 else 'above'} the measured mean, "
            f"{_g(result.pooled_mean)} s: the fit follows the bulk of the durations, not their "
            "tail. Simulated step counts and times follow the mean; to keep it, replay the "
            "trace (compute: {kind: trace, path: ...}) or pick a family whose mean matches."
        )
    lines.append("")
    if result.heterogeneity_p is None:
        lines.append("heterogeneity: one node (or no spread): none")
    elif result.heterogeneity_sigma > 0:
        lines.append(
            f"heterogeneity: nodes differ in speed (Kruskal-Wallis p = "
            f"{result.heterogeneity_p:.2g}); lognormal factors, sigma = "
            f"{_g(result.heterogeneity_sigma)}"
        )
    else:
        lines.append(
            f"heterogeneity: none detected (Kruskal-Wallis p = {result.heterogeneity_p:.2g})"
        )
    if result.per_node:
        shown = list(result.per_node)[:per_node]
        more = len(result.per_node) - len(shown)
        suffix = (
            f"; first {len(shown)} of {len(result.per_node)}, --per-node N for more" if more else ""
        )
        lines += ["", f"per node (best family by AIC{suffix}):"]
        for node in shown:
            fit = result.per_node[node][0]
            lines.append(
                f"  node {node}: {fit.n} durations, factor {_g(result.factors[node])}, "
                f"{fit.kind} {fit.describe()} (KS {fit.ks:.3f})"
            )
    if result.too_few:
        lines.append(
            f"  ({len(result.too_few)} nodes with fewer than {MIN_PER_NODE} durations: "
            "pooled, not fitted alone)"
        )
    return lines
