"""Timing models: per-node compute time of local SGD steps (with heterogeneity and
stragglers) and the latency/bandwidth cost of messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gossipsim.system.traces import Trace

__all__ = [
    "COMPUTE_KINDS",
    "ComputeModel",
    "LinksError",
    "Network",
    "TimingError",
    "read_links",
]

__all__ = ["COMPUTE_KINDS", "TRACE_MODES", "ComputeModel", "Network", "TimingError"]

#: The parametric distributions of step times (``kind: trace`` replays measurements).
COMPUTE_KINDS = ("constant", "exponential", "shifted_exponential", "lognormal", "pareto")
TRACE_MODES = ("replay", "resample")
HETEROGENEITY_KINDS = ("none", "lognormal", "uniform")
STRAGGLER_MODES = ("persistent", "transient")


class TimingError(ValueError):
    """An invalid timing parameter; the message names the offending field."""


def _number(field: str, v: Any) -> float:
    if isinstance(v, bool):
        raise TimingError(f"{field} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TimingError(f"{field} must be a number, got {v!r}") from None
    if math.isnan(f):
        raise TimingError(f"{field} must be a number, got {v!r}")
    return f


def _finite(field: str, v: Any) -> float:
    f = _number(field, v)
    if not math.isfinite(f):
        raise TimingError(f"{field} must be finite, got {v!r}")
    return f


def _check_keys(field: str, spec: dict, allowed: set[str]) -> None:
    if not isinstance(spec, dict):
        raise TimingError(f"{field} must be a mapping, got {spec!r}")
    extra = sorted(set(spec) - allowed)
    if extra:
        raise TimingError(f"{field}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _per_node(trace: Trace) -> dict[int, np.ndarray]:
    """Each node's durations in measurement order (``Trace.durations_of`` for every node at
    once: one stable sort instead of a pass over the rows per node)."""
    if trace.time is None:
        order = np.argsort(trace.node, kind="stable")
    else:
        order = np.lexsort((trace.time, trace.node))  # by node, then time; ties: file order
    nodes = trace.node[order]
    starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]])
    groups = np.split(trace.duration[order], starts[1:])
    return {int(nodes[start]): group for start, group in zip(starts, groups, strict=True)}


class ComputeModel:
    """Compute time of local steps, per node.

    A step of node ``i`` takes ``factors[i] * X`` (times ``slowdown`` if the step starts in a
    transient slow period), where ``X`` is drawn from the base distribution ``kind`` whose
    mean is ``mean``:

    * ``constant``: ``X = mean``;
    * ``exponential``: ``X ~ Exp(mean)``;
    * ``shifted_exponential``: ``X = shift + Exp(mean - shift)``, ``0 <= shift < mean``;
    * ``lognormal``: ``X = exp(N(mu, sigma^2))``, ``mu = ln(mean) - sigma^2/2``
      (``sigma = 0`` is ``constant``);
    * ``pareto``: classical Pareto with ``alpha > 1`` and ``x_m = mean (alpha-1)/alpha``;
    * ``trace``: ``X`` comes from measured step times (``trace``: a :class:`Trace` or a
      mapping node id → durations). Node ``i`` of the run uses the durations of trace node
      ``i`` if the trace has that node; the other (untraced) nodes, in increasing order,
      take the traced ids in the order of one permutation of them drawn from ``trace_rng``
      (the ``timing/trace`` stream), cycling through it when there are more untraced nodes
      than traced ids. ``mode="replay"`` returns a node's durations in order, starting
      again from the first after the last; a node with its own trace starts at its first,
      an untraced node at an offset into its mapped trace drawn uniformly from
      ``trace_rng`` (after the permutation), so nodes sharing a trace do not move in
      lockstep. Replay draws no random numbers while the run goes on.
      ``mode="resample"`` draws each step i.i.d. uniformly among the node's durations, as
      ``values[floor(u * k)]`` with ``u`` from the node's timing stream (one ``random()``
      per step, so draws made in blocks equal draws made one by one). ``mean`` is then
      the mean of all durations of the trace, and a node's expected base step time the
      mean of its own (mapped) durations.

    ``heterogeneity`` (persistent per-node speed factors, drawn once from ``rng``):
    ``{"kind": "none"}``, ``{"kind": "lognormal", "sigma": s}`` (factor
    ``exp(N(-s^2/2, s^2))``, mean 1) or ``{"kind": "uniform", "low": a, "high": b}``.

    ``stragglers``: ``{"fraction": f, "slowdown": c, "mode": "persistent" | "transient",
    "period": T}``. Persistent: ``round(f n)`` nodes chosen with ``rng`` are always ``c``
    times slower (included in ``factors``, listed in ``straggler_nodes``). Transient: every
    node alternates normal and slow periods (exponential durations with means
    ``T (1-f)/f`` and ``T``; ``T`` defaults to ``10 * mean``), so it is slow a fraction
    ``f`` of the time; a step is slowed iff it starts in a slow period. The on/off process
    of a node is initialised (from its stationary law) at its first :meth:`duration` call
    and driven by the generator passed to that call, which must be the node's own timing
    stream; calls for one node must come with non-decreasing ``now``.
    ``straggler_nodes`` is empty in transient mode.
    """

    def __init__(
        self,
        n: int,
        kind: str,
        rng: np.random.Generator,
        *,
        mean: float = 1.0,
        sigma: float = 0.5,
        shift: float = 0.0,
        alpha: float = 3.0,
        heterogeneity: dict | None = None,
        stragglers: dict | None = None,
        trace: Trace | Mapping[int, Sequence[float] | np.ndarray] | None = None,
        mode: str = "replay",
        trace_rng: np.random.Generator | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise TimingError(f"n (number of nodes) must be an integer >= 1, got {n!r}")
        if kind not in (*COMPUTE_KINDS, "trace"):
            raise TimingError(
                f"compute.kind: unknown distribution {kind!r}; valid: "
                f"{', '.join(COMPUTE_KINDS)}, trace"
            )
        self.n = int(n)
        self.kind = kind
        # Kind trace: each node's base durations and the trace node they come from.
        self.sequences: list[np.ndarray] = []
        self.trace_source = np.arange(self.n, dtype=np.int64)
        if kind == "trace":
            mean = self._init_trace(trace, mode, trace_rng)
        elif trace is not None:
            raise TimingError(f"compute.kind {kind!r} takes no trace (only kind trace does)")
        self.mean = _finite("compute.mean", mean)
        if self.mean <= 0:
            raise TimingError(f"compute.mean must be > 0, got {mean!r}")
        self.sigma = _finite("compute.sigma", sigma)
        if self.sigma < 0:
            raise TimingError(f"compute.sigma must be >= 0, got {sigma!r}")
        self.shift = _finite("compute.shift", shift)
        if self.shift < 0:
            raise TimingError(f"compute.shift must be >= 0, got {shift!r}")
        if kind == "shifted_exponential" and self.shift >= self.mean:
            raise TimingError(f"compute.shift must be < compute.mean = {self.mean}, got {shift!r}")
        self.alpha = _finite("compute.alpha", alpha)
        if self.alpha <= 1:
            raise TimingError(f"compute.alpha must be > 1 (finite mean), got {alpha!r}")

        if kind != "trace":
            self.base_means = np.full(self.n, self.mean)

        self.factors = self._heterogeneity(heterogeneity or {"kind": "none"}, rng)
        self._init_stragglers(stragglers, rng)

    # -- construction helpers -------------------------------------------------------------

    def _init_trace(
        self,
        trace: Trace | Mapping[int, Sequence[float] | np.ndarray] | None,
        mode: str,
        rng: np.random.Generator | None,
    ) -> float:
        """Map the run's nodes onto the trace's; return the pooled mean of its durations."""
        if mode not in TRACE_MODES:
            raise TimingError(
                f"compute.mode: unknown mode {mode!r}; valid: {', '.join(TRACE_MODES)}"
            )
        self.trace_mode = mode
        if trace is None:
            raise TimingError("compute.path: kind trace needs a trace of measured step times")
        if isinstance(trace, Trace):
            durations = _per_node(trace)
        else:
            durations = {int(node): np.asarray(v, dtype=np.float64) for node, v in trace.items()}
        for node, values in durations.items():
            if values.ndim != 1 or values.size == 0:
                raise TimingError(f"compute.path: trace node {node} has no durations")
            if not np.all(np.isfinite(values) & (values > 0)):
                raise TimingError(f"compute.path: trace node {node}: durations must be > 0")
        if not durations:
            raise TimingError("compute.path: the trace has no nodes")
        traced = np.array(sorted(durations), dtype=np.int64)
        untraced = [i for i in range(self.n) if i not in durations]
        source = np.arange(self.n, dtype=np.int64)
        if untraced:
            if rng is None:
                raise TimingError(
                    "compute.path: the trace lacks nodes of the run; mapping them onto "
                    "traced ids needs a generator (trace_rng)"
                )
            order = rng.permutation(traced)
            source[untraced] = order[np.arange(len(untraced)) % len(order)]
        self.trace_source = source
        self.sequences = [durations[int(s)] for s in source]
        self.base_means = np.array([float(values.mean()) for values in self.sequences])
        self._cursor = np.zeros(self.n, dtype=np.int64)
        if untraced and rng is not None:
            # Nodes that borrow a trace start at a seeded offset into it: two of them on
            # the same trace would otherwise repeat each other's durations step by step.
            lengths = np.array([self.sequences[i].size for i in untraced], dtype=np.int64)
            self._cursor[untraced] = np.floor(rng.random(len(untraced)) * lengths)
        pooled = np.concatenate([durations[int(node)] for node in traced])
        return float(pooled.mean())

    def _heterogeneity(self, spec: dict, rng: np.random.Generator) -> np.ndarray:
        field = "compute.heterogeneity"
        _check_keys(field, spec, {"kind", "sigma", "low", "high"})
        hk = spec.get("kind", "none")
        if hk not in HETEROGENEITY_KINDS:
            raise TimingError(
                f"{field}.kind: unknown kind {hk!r}; valid: {', '.join(HETEROGENEITY_KINDS)}"
            )
        if hk == "none":
            return np.ones(self.n)
        if hk == "lognormal":
            s = _finite(f"{field}.sigma", spec.get("sigma", 0.5))
            if s < 0:
                raise TimingError(f"{field}.sigma must be >= 0, got {spec.get('sigma')!r}")
            if s == 0:
                return np.ones(self.n)
            return np.exp(rng.normal(-0.5 * s * s, s, size=self.n))
        if "low" not in spec or "high" not in spec:
            raise TimingError(f"{field}: uniform needs both 'low' and 'high'")
        low = _finite(f"{field}.low", spec["low"])
        high = _finite(f"{field}.high", spec["high"])
        if low <= 0:
            raise TimingError(f"{field}.low must be > 0, got {spec['low']!r}")
        if high < low:
            raise TimingError(f"{field}.high must be >= {field}.low = {low}, got {spec['high']!r}")
        return rng.uniform(low, high, size=self.n)

    def _init_stragglers(self, spec: dict | None, rng: np.random.Generator) -> None:
        field = "compute.stragglers"
        spec = spec or {}
        _check_keys(field, spec, {"fraction", "slowdown", "mode", "period"})
        self.fraction = _finite(f"{field}.fraction", spec.get("fraction", 0.0))
        if not 0.0 <= self.fraction <= 1.0:
            raise TimingError(f"{field}.fraction must be in [0, 1], got {spec.get('fraction')!r}")
        self.slowdown = _finite(f"{field}.slowdown", spec.get("slowdown", 1.0))
        if self.slowdown < 1.0:
            raise TimingError(f"{field}.slowdown must be >= 1, got {spec.get('slowdown')!r}")
        self.mode = spec.get("mode", "persistent")
        if self.mode not in STRAGGLER_MODES:
            raise TimingError(
                f"{field}.mode: unknown mode {self.mode!r}; valid: {', '.join(STRAGGLER_MODES)}"
            )
        period = spec.get("period")
        self.period = 10.0 * self.mean if period is None else _finite(f"{field}.period", period)
        if not self.period > 0:
            raise TimingError(f"{field}.period must be > 0, got {period!r}")

        self.straggler_nodes = np.zeros(0, dtype=np.int64)
        # Transient state: is the node slow, and when does its current period end.
        self._transient = self.mode == "transient" and self.fraction > 0 and self.slowdown > 1
        self._slow = np.zeros(self.n, dtype=bool)
        self._until = np.full(self.n, -math.inf)
        self._last_now = np.full(self.n, -math.inf)
        if self.mode == "persistent":
            count = round(self.fraction * self.n)
            if count > 0:
                chosen = rng.choice(self.n, size=count, replace=False)
                self.straggler_nodes = np.sort(chosen).astype(np.int64)
                self.factors[self.straggler_nodes] *= self.slowdown

    # -- sampling -------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, size: int, node: int) -> np.ndarray:
        """The next ``size`` base step times of ``node`` (before factors and slowdowns).

        ``rng`` is the node's timing stream. Successive calls continue one sequence: the
        values of ``_draw(rng, a, i)`` then ``_draw(rng, b, i)`` are those of
        ``_draw(rng, a + b, i)`` (numpy draws a vector element by element; a replayed trace
        advances the node's cursor), so blocks drawn ahead give the same steps.
        """
        k = self.kind
        if k == "trace":
            values = self.sequences[node]
            if self.trace_mode == "replay":
                start = int(self._cursor[node])
                self._cursor[node] = (start + size) % values.size
                return values[(start + np.arange(size)) % values.size]
            index = (rng.random(size) * values.size).astype(np.int64)
            return values[np.minimum(index, values.size - 1)]
        if k == "constant" or (k == "lognormal" and self.sigma == 0):
            return np.full(size, self.mean)
        if k == "exponential":
            return rng.exponential(self.mean, size=size)
        if k == "shifted_exponential":
            return self.shift + rng.exponential(self.mean - self.shift, size=size)
        if k == "lognormal":
            mu = math.log(self.mean) - 0.5 * self.sigma**2
            return rng.lognormal(mu, self.sigma, size=size)
        x_m = self.mean * (self.alpha - 1.0) / self.alpha  # pareto
        return x_m * (1.0 + rng.pareto(self.alpha, size=size))

    def _period_mean(self, slow: bool) -> float:
        if slow:
            return self.period
        return self.period * (1.0 - self.fraction) / self.fraction

    def _advance(self, node: int, t: float, rng: np.random.Generator) -> None:
        """Bring the node's on/off process to time ``t`` (so that ``until > t``)."""
        if self._until[node] == -math.inf:  # first use: stationary initial state
            if self.fraction >= 1.0:
                self._slow[node], self._until[node] = True, math.inf
                return
            slow = bool(rng.random() < self.fraction)
            self._slow[node] = slow
            self._until[node] = t + rng.exponential(self._period_mean(slow))
        while self._until[node] <= t:
            slow = not self._slow[node]
            self._slow[node] = slow
            self._until[node] += rng.exponential(self._period_mean(slow))

    def step_times(self, node: int, steps: int, rng: np.random.Generator) -> np.ndarray:
        """The times of ``steps`` consecutive single steps of ``node``, drawn in one call:
        the values ``steps`` calls of ``duration(node, 1, …)`` would return one by one
        (numpy draws a vector element by element). Not for transient stragglers, whose
        slow periods depend on when each step starts."""
        if self._transient:
            raise ValueError("step_times: transient stragglers need duration() per step")
        return self._draw(rng, steps, node) * self.factors[node]

    def duration(self, node: int, steps: int, now: float, rng: np.random.Generator) -> float:
        """Total time of ``steps`` consecutive local steps of ``node`` starting at ``now``.

        Each step is an independent draw from ``rng`` (the node's own timing stream), or
        the node's next measured durations for a replayed trace: the ``steps`` base times
        come from one vectorised :meth:`_draw`, then transient straggler periods (if any)
        are advanced through the steps using the same generator.
        """
        if not 0 <= node < self.n:
            raise IndexError(f"node {node} out of range 0..{self.n - 1}")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if steps == 0:
            return 0.0
        times = self._draw(rng, steps, node) * self.factors[node]
        if not self._transient:
            return float(times.sum())
        if now < self._last_now[node]:
            raise ValueError(
                f"node {node}: duration() called at now={now} before a previous call at "
                f"{self._last_now[node]}; calls for one node must be in time order"
            )
        self._last_now[node] = now
        elapsed = 0.0
        i = 0
        while i < steps:
            self._advance(node, now + elapsed, rng)
            seg = times[i:] * self.slowdown if self._slow[node] else times[i:]
            ends = elapsed + np.cumsum(seg)
            # Steps i, i+1, ... start at elapsed, ends[0], ends[1], ...; keep those that
            # start before the current period ends (at least the first one).
            starts_abs = now + np.concatenate(([elapsed], ends[:-1]))
            cnt = max(1, int(np.searchsorted(starts_abs, self._until[node], side="left")))
            elapsed = float(ends[cnt - 1])
            i += cnt
        return elapsed

    def expected_step_times(self) -> np.ndarray:
        """Expected time of one step, per node.

        For transient stragglers this is the long-run time per step (steps short against the
        periods): a node is slow a fraction ``f`` of the *time*, so it completes
        ``(1 - f) + f / slowdown`` steps per unit of normal step time.
        """
        per_node = self.base_means * self.factors
        if self._transient:
            per_node = per_node / (1.0 - self.fraction + self.fraction / self.slowdown)
        return per_node

    def mean_step_time(self) -> float:
        """Mean over nodes of the expected step time (for progress and ETA estimates)."""
        return float(self.expected_step_times().mean())


LINK_KINDS = ("constant", "lognormal", "uniform")


def _link_spec(field: str, spec: Any, minimum: float, strict: bool) -> tuple[float, dict | None]:
    """A latency or bandwidth config: ``(value of a link without a draw, distribution)``.

    A number (or ``{kind: constant, value}``) is every link's value and no distribution;
    ``lognormal`` (``mean``, ``sigma``) and ``uniform`` (``low``, ``high``) are drawn per
    link, and the number returned is their mean.
    """

    def check(name: str, v: Any) -> float:
        f = _number(f"{field}.{name}" if name else field, v)
        if (f <= minimum) if strict else (f < minimum):
            raise TimingError(
                f"{field}{'.' + name if name else ''} must be {'>' if strict else '>='} "
                f"{minimum:g}, got {v!r}"
            )
        if name and not math.isfinite(f):
            raise TimingError(f"{field}.{name} must be finite, got {v!r}")
        return f

    if not isinstance(spec, dict):
        value = check("", spec)
        if field.endswith("latency") and not math.isfinite(value):
            raise TimingError(f"{field} must be finite, got {spec!r}")
        return value, None
    kind = spec.get("kind")
    if kind not in LINK_KINDS:
        raise TimingError(f"{field}.kind: unknown kind {kind!r}; valid: {', '.join(LINK_KINDS)}")
    if kind == "constant":
        _check_keys(field, spec, {"kind", "value"})
        return check("value", spec.get("value")), None
    if kind == "lognormal":
        _check_keys(field, spec, {"kind", "mean", "sigma"})
        mean = _finite(f"{field}.mean", spec.get("mean"))
        if mean <= 0:
            raise TimingError(f"{field}.mean must be > 0, got {spec.get('mean')!r}")
        sigma = _finite(f"{field}.sigma", spec.get("sigma", 0.5))
        if sigma < 0:
            raise TimingError(f"{field}.sigma must be >= 0, got {spec.get('sigma')!r}")
        return mean, {"kind": kind, "mean": mean, "sigma": sigma}
    _check_keys(field, spec, {"kind", "low", "high"})
    low, high = check("low", spec.get("low")), check("high", spec.get("high"))
    if high < low:
        raise TimingError(f"{field}.high must be >= {field}.low = {low}, got {high!r}")
    return 0.5 * (low + high), {"kind": kind, "low": low, "high": high}


def _draw_links(spec: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    if spec["kind"] == "lognormal":
        sigma = spec["sigma"]
        return rng.lognormal(math.log(spec["mean"]) - 0.5 * sigma * sigma, sigma, size=size)
    return rng.uniform(spec["low"], spec["high"], size=size)


def _draw_one(spec: dict, rng: np.random.Generator) -> float:
    return float(_draw_links(spec, rng, 1)[0])


class Network:
    """Point-to-point message cost over a link: ``latency + bits / bandwidth`` (seconds,
    bits/second).

    ``latency`` and ``bandwidth`` are numbers (every link alike: the network is
    :attr:`uniform`) or distributions (``{"kind": "lognormal", "mean", "sigma"}``,
    ``{"kind": "uniform", "low", "high"}``; ``{"kind": "constant", "value"}`` is a number)
    drawn once per link by :meth:`draw_links`. :meth:`set_links` gives listed links their
    own values (a links file). A link is an unordered pair: both directions cost the same.
    A pair that has no values of its own (a link off the topology that an algorithm uses,
    e.g. all-reduce's ring or SGP's exponential peers) gets them on first use through
    :meth:`link_values`: drawn from a stream of its own (whatever the order of use), or
    the numbers.

    ``float_bits`` (32 or 64) is the width of one full-precision number on the wire; the
    algorithms size their unquantized payloads (model and gradient vectors, push-sum
    weights, coded vectors) with it.
    """

    def __init__(self, latency: Any = 0.0, bandwidth: Any = math.inf, float_bits: int = 32) -> None:
        if isinstance(float_bits, bool) or float_bits not in (32, 64):
            raise TimingError(f"network.float_bits must be 32 or 64, got {float_bits!r}")
        self.float_bits = int(float_bits)
        # The numbers (or the distributions' means) are the values of a link without its own.
        self.latency, self._latency_law = _link_spec("network.latency", latency, 0.0, False)
        self.bandwidth, self._bandwidth_law = _link_spec("network.bandwidth", bandwidth, 0.0, True)
        self._links: dict[tuple[int, int], tuple[float, float]] = {}
        self._extra: Callable[[list[int]], list[np.random.Generator]] | None = None
        self._n = 0
        self._from_file = False

    @property
    def uniform(self) -> bool:
        """Whether every link has the same latency and bandwidth (no draws, no links file)."""
        return self._latency_law is None and self._bandwidth_law is None and not self._from_file

    # -- per-link values ------------------------------------------------------------------

    def draw_links(
        self,
        edges: Any,
        rng: np.random.Generator,
        extra: Callable[[list[int]], list[np.random.Generator]] | None = None,
        n: int = 0,
    ) -> None:
        """Draw the latency and bandwidth of every edge (those that are distributions).

        Edges go in sorted order of ``(u, v)`` with ``u < v``; all latencies are drawn,
        then all bandwidths, so the values depend only on the seed and the edge set.
        ``extra(keys)`` gives the generators of pairs off the edges (key ``u·n + v``): such
        a pair draws its latency, then its bandwidth, from its own stream, whenever and in
        whatever order it is first asked for.
        """
        pairs = sorted({(min(u, v), max(u, v)) for u, v in edges})
        self._extra = extra
        self._n = n
        m = len(pairs)
        lat: list[float] = [self.latency] * m
        bw: list[float] = [self.bandwidth] * m
        if self._latency_law is not None:
            lat = _draw_links(self._latency_law, rng, m).tolist()
        if self._bandwidth_law is not None:
            bw = _draw_links(self._bandwidth_law, rng, m).tolist()
        for pair, a, b in zip(pairs, lat, bw, strict=True):
            self._links[pair] = (a, b)

    def _assign_extra(self, pairs: list[tuple[int, int]]) -> None:
        """Values of pairs off the drawn edges: each from its own stream, or the numbers."""
        if not pairs:
            return
        if self._extra is None:
            for pair in pairs:
                self._links[pair] = (self.latency, self.bandwidth)
            return
        for pair, rng in zip(pairs, self._extra([u * self._n + v for u, v in pairs]), strict=True):
            a = self.latency if self._latency_law is None else _draw_one(self._latency_law, rng)
            b = (
                self.bandwidth
                if self._bandwidth_law is None
                else _draw_one(self._bandwidth_law, rng)
            )
            self._links[pair] = (a, b)

    def set_links(self, links: dict[tuple[int, int], tuple[float, float]]) -> None:
        """Give links their own ``(latency, bandwidth)`` (both directions), over any draw."""
        for (u, v), values in links.items():
            self._links[(min(u, v), max(u, v))] = (float(values[0]), float(values[1]))
        self._from_file = self._from_file or bool(links)

    def link(self, u: int, v: int) -> tuple[float, float]:
        """``(latency, bandwidth)`` of the link between ``u`` and ``v``."""
        pair = (u, v) if u < v else (v, u)
        values = self._links.get(pair)
        if values is None:
            self.link_values([pair])
            values = self._links[pair]
        return values

    def link_values(self, pairs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Latencies and bandwidths of the links ``(u, v)`` of ``pairs``, in their order.

        Pairs without values of their own get them now (sorted, from the extra stream).
        """
        pairs = [(int(u), int(v)) for u, v in pairs]
        missing = sorted({(min(p), max(p)) for p in pairs} - set(self._links))
        self._assign_extra(missing)
        values = [self._links[(min(p), max(p))] for p in pairs]
        lat = np.array([v[0] for v in values], dtype=np.float64)
        bw = np.array([v[1] for v in values], dtype=np.float64)
        return lat, bw

    def neighbour_links(self, neighbours: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Latency and bandwidth per directed edge, aligned with the neighbour tables:
        entry ``offset[i] + k`` is the link from ``i`` to ``neighbours[i][k]``, where
        ``offset`` is the running sum of the table lengths."""
        return self.link_values(
            [(i, int(j)) for i, table in enumerate(neighbours) for j in table.tolist()]
        )

    # -- message times --------------------------------------------------------------------

    def message_time(self, bits: float, u: int | None = None, v: int | None = None) -> float:
        """Time to deliver a message of ``bits`` bits (over the link ``u``–``v`` if given)."""
        if bits < 0:
            raise ValueError(f"bits must be >= 0, got {bits}")
        if u is None or v is None or self.uniform:
            return self.latency + float(bits) / self.bandwidth
        latency, bandwidth = self.link(u, v)
        return latency + float(bits) / bandwidth

    def allreduce_time(self, n: int, bits: float) -> float:
        """Ring all-reduce of a ``bits``-bit vector over ``n`` nodes (the ring 0→1→…→n−1→0).

        Reduce-scatter then all-gather: 2(n−1) sequential steps; in each, every node sends
        a 1/n slice of the vector to its successor, and the step ends when the slowest ring
        link has delivered: 2(n−1)·max over ring links of (latency + bits/n/bandwidth). With
        uniform links that is 2(n−1)·latency + 2(n−1)/n·bits/bandwidth.
        """
        if n < 2:
            return 0.0
        if self.uniform:
            return 2 * (n - 1) * self.latency + 2 * (n - 1) / n * float(bits) / self.bandwidth
        lat, bw = self.link_values([(i, (i + 1) % n) for i in range(n)])
        step = float(np.max(lat + (float(bits) / n) / bw))
        return 2 * (n - 1) * step

    @staticmethod
    def allreduce_bits_per_node(n: int, bits: float) -> float:
        """Bits each node sends in a ring all-reduce of a ``bits``-bit vector: 2(n−1)/n·bits."""
        return 2 * (n - 1) / n * float(bits) if n > 1 else 0.0

    def __repr__(self) -> str:
        return (
            f"Network(latency={self.latency}, bandwidth={self.bandwidth}, "
            f"float_bits={self.float_bits}, uniform={self.uniform})"
        )


class LinksError(ValueError):
    """A links file that cannot be read or holds an invalid line."""


def read_links(
    path: str | Path, graph: Any, field: str = "network.links"
) -> dict[tuple[int, int], tuple[float, float]]:
    """Read a links file: ``u v latency bandwidth`` per line (whitespace separated, ``#``
    comments and blank lines skipped), each an edge of ``graph`` (nodes ``0..N−1``).

    Raises :class:`LinksError` naming ``file:line`` (prefixed with ``field``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LinksError(f"{field}: links file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LinksError(f"{field}: cannot read links file {path}: {exc}") from None
    n = graph.number_of_nodes()
    links: dict[tuple[int, int], tuple[float, float]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{field}: {path}:{lineno}"
        parts = line.split()
        if len(parts) != 4:
            raise LinksError(
                f"{where}: expected 'u v latency bandwidth', got {len(parts)} field(s): "
                f"{raw.strip()!r}"
            )
        try:
            u, v = int(parts[0]), int(parts[1])
        except ValueError:
            raise LinksError(f"{where}: node ids must be integers, got {raw.strip()!r}") from None
        try:
            latency, bandwidth = float(parts[2]), float(parts[3])
        except ValueError:
            raise LinksError(
                f"{where}: latency and bandwidth must be numbers, got {raw.strip()!r}"
            ) from None
        for node in (u, v):
            if not 0 <= node < n:
                raise LinksError(f"{where}: node id {node} out of range 0..{n - 1}")
        if not (math.isfinite(latency) and latency >= 0):
            raise LinksError(f"{where}: latency must be finite and >= 0, got {parts[2]}")
        if not bandwidth > 0:  # also NaN
            raise LinksError(f"{where}: bandwidth must be > 0, got {parts[3]}")
        if not graph.has_edge(u, v):
            raise LinksError(f"{where}: {u}–{v} is not an edge of the run's topology")
        links[(min(u, v), max(u, v))] = (latency, bandwidth)
    return links
