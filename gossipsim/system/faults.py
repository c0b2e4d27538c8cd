"""Faults the simulated system suffers: crashes, link failures, partitions, lost and slow messages.

Like all timing, faults never depend on model values: every fault is drawn from its own
named stream (``faults/crash``, ``faults/link``, ``faults/messages`` …, per node or edge),
so a faulty run is as reproducible as any other. Algorithms ask the :class:`FaultModel`
at their decision points whether a partner is reachable and whether a message arrives,
and how long it takes; what they do about it (skip a neighbour after a timeout, wait for a
round, keep push-sum mass) is theirs, written in their own processes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from gossipsim.system.rng import Streams

if TYPE_CHECKING:
    from gossipsim.experiment.config import Downtime, FaultsConfig

COUNTERS = (
    "crashes",
    "recoveries",
    "link_failures",
    "messages_lost",
    "latency_spikes",
    "timeouts",
    "retries",
    "stalled_rounds",
)


def _draw_downtime(downtime: Downtime, rng: np.random.Generator) -> float:
    if downtime.kind == "constant":
        return downtime.mean
    return float(rng.exponential(downtime.mean))


class FaultModel:
    """Up/down state of nodes and links over simulated time, and per-message fates."""

    def __init__(self, config: FaultsConfig, graph: nx.Graph, env: Any, streams: Streams) -> None:
        self.config = config
        self.env = env
        self.streams = streams
        self.n = graph.number_of_nodes()
        self.edges = sorted(tuple(sorted(edge)) for edge in graph.edges())
        self.node_up = np.ones(self.n, dtype=bool)
        self.permanently_down = np.zeros(self.n, dtype=bool)
        self.link_down: set[tuple[int, int]] = set()
        self._recovered: dict[int, Any] = {}
        self.counts = dict.fromkeys(COUNTERS, 0)
        # When each node crashes for good (inf: never), known once start() has drawn it.
        self.crash_time = np.full(self.n, np.inf)
        self._message_rng = streams.generators("faults/messages", self.n)
        partition = config.partition
        self.group = None
        if partition is not None:
            # Blocks of consecutive node ids: node i is in block ⌊i·groups/n⌋.
            self.group = (np.arange(self.n) * partition.groups) // self.n
        for node in config.crash.nodes if config.crash is not None else ():
            if node >= self.n:
                raise ValueError(f"faults.crash.nodes: node {node} does not exist (n = {self.n})")

    # -- the fault processes ----------------------------------------------------------------

    def start(self) -> None:
        """Start the processes that take nodes and links down and up."""
        crash = self.config.crash
        if crash is not None:
            for node in crash.nodes:
                self.crash_time[node] = min(self.crash_time[node], crash.at)
            if crash.rate > 0:
                for node in range(self.n):
                    rng = self.streams.generator("faults/crash", node)
                    at = float(rng.exponential(1 / crash.rate))
                    self.crash_time[node] = min(self.crash_time[node], at)
            for node in np.flatnonzero(np.isfinite(self.crash_time)).tolist():
                self.env.process(self._crash_at(int(node), float(self.crash_time[node])))
        recover = self.config.crash_recover
        if recover is not None and recover.rate > 0:
            for node in range(self.n):
                self.env.process(self._crash_and_recover(node))
        links = self.config.link_failure
        if links is not None and links.rate > 0:
            for edge in self.edges:
                self.env.process(self._link_failures(edge))

    def watchdog(self, sim: Any, window: float) -> Generator[Any, object, None]:
        """Stop a run with no time bound once its progress has stalled for ``window`` seconds.

        Faults can make progress impossible (every partner of a node gone, a synchronous
        round waiting for a node that never returns); a run bounded only by interactions,
        iterations or epochs would then never end. It stops with reason ``stalled``.
        """
        stop = sim.config.stop
        watched = [
            name
            for name, bound in (
                ("interactions", stop.interactions),
                ("iterations", stop.iterations),
                ("samples", stop.epochs),
            )
            if bound is not None
        ]
        last = None
        while True:
            # Only the counters a stop rule waits on: local steps may go on without any
            # interaction ever completing (every partner unreachable).
            progress = tuple(getattr(sim, name) for name in watched)
            if progress == last:
                sim.request_stop("stalled")
                return
            last = progress
            yield self.env.timeout(window)

    def _crash_at(self, node: int, at: float) -> Generator[Any, object, None]:
        yield self.env.timeout(at)
        self.permanently_down[node] = True
        self._take_down(node)

    def _crash_and_recover(self, node: int) -> Generator[Any, object, None]:
        recover = self.config.crash_recover
        assert recover is not None
        rng = self.streams.generator("faults/crash_recover", node)
        while True:
            yield self.env.timeout(float(rng.exponential(1 / recover.rate)))
            if self.permanently_down[node]:
                return
            if not self.node_up[node]:
                continue
            self._take_down(node)
            yield self.env.timeout(_draw_downtime(recover.downtime, rng))
            if self.permanently_down[node]:
                return
            self.node_up[node] = True
            self.counts["recoveries"] += 1
            self._recovered.pop(node).succeed()

    def _take_down(self, node: int) -> None:
        if self.node_up[node]:
            self.node_up[node] = False
            self.counts["crashes"] += 1
            self._recovered[node] = self.env.event()

    def _link_failures(self, edge: tuple[int, int]) -> Generator[Any, object, None]:
        links = self.config.link_failure
        assert links is not None
        rng = self.streams.generator(f"faults/link {edge[0]}-{edge[1]}")
        while True:
            yield self.env.timeout(float(rng.exponential(1 / links.rate)))
            self.link_down.add(edge)
            self.counts["link_failures"] += 1
            yield self.env.timeout(_draw_downtime(links.downtime, rng))
            self.link_down.discard(edge)

    # -- what algorithms ask --------------------------------------------------------------

    @property
    def timeout(self) -> float:
        return self.config.timeout

    def up(self, node: int) -> bool:
        return bool(self.node_up[node])

    def wait_up(self, node: int) -> Any:
        """An event that fires when ``node`` comes back (never, after a permanent crash)."""
        return self._recovered[node]

    def partitioned(self, i: int, j: int) -> bool:
        partition = self.config.partition
        if partition is None or self.group is None:
            return False
        now = self.env.now
        active = partition.start <= now and (partition.end is None or now < partition.end)
        return bool(active and self.group[i] != self.group[j])

    def reachable(self, i: int, j: int) -> bool:
        """Both nodes up, their link up, and no partition between them right now."""
        if not (self.node_up[i] and self.node_up[j]):
            return False
        if (min(i, j), max(i, j)) in self.link_down:
            return False
        return not self.partitioned(i, j)

    def message(self, sender: int, duration: float) -> float | None:
        """The time one message from ``sender`` takes, or None if it is lost."""
        rng = self._message_rng[sender]
        if self.config.message_loss > 0 and rng.random() < self.config.message_loss:
            self.counts["messages_lost"] += 1
            return None
        spikes = self.config.latency_spikes
        if spikes is not None and spikes.probability > 0 and rng.random() < spikes.probability:
            self.counts["latency_spikes"] += 1
            return duration * spikes.factor
        return duration

    def exchange(self, i: int, j: int, duration: float) -> float | None:
        """Time of a two-message exchange between ``i`` and ``j``; None if it cannot complete.

        The two messages travel at once, so the exchange takes the longer. An exchange with
        an unreachable partner or a lost message fails as a whole: nobody commits anything.
        """
        if not self.reachable(i, j):
            return None
        first = self.message(i, duration)
        second = self.message(j, duration)
        if first is None or second is None:
            return None
        return max(first, second)

    def note_failed_attempt(self, last: bool) -> None:
        """Count a timeout; unless it was the last attempt, the caller retries."""
        self.counts["timeouts"] += 1
        if not last:
            self.counts["retries"] += 1

    def alive(self) -> np.ndarray:
        """Indices of the nodes that are up now."""
        return np.flatnonzero(self.node_up)

    def usable_graph(self, graph: nx.Graph) -> nx.Graph:
        """The subgraph of up nodes and usable links (partition and failed links removed)."""
        usable = nx.Graph()
        usable.add_nodes_from(range(self.n))
        usable.add_edges_from((u, v) for u, v in self.edges if self.reachable(u, v))
        return usable

    def stops_at(self, node: int, start: float) -> float:
        """When ``node`` stops working, seen from ``start``: ``start`` if it is down now, its
        permanent crash time if that is later, inf otherwise (recoveries are not foreseen)."""
        if not self.node_up[node]:
            return start
        return float(self.crash_time[node]) if self.crash_time[node] >= start else start

    def metrics(self) -> dict[str, float]:
        """Counter columns added to every metrics row."""
        return {**self.counts, "nodes_down": int(self.n - self.node_up.sum())}
