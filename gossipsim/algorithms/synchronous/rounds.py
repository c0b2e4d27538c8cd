"""Pieces shared by the synchronous methods (D-PSGD, all-reduce, local SGD): round timing."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import scipy.sparse
import simpy

from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import FixedLocalSteps, GeometricLocalSteps

ROUND_BLOCK = 64  # step times drawn ahead per node


def draw_local_steps(
    local_steps: FixedLocalSteps | GeometricLocalSteps, rng: np.random.Generator
) -> int:
    """H for one interaction or round: the fixed value, or a geometric draw on {1, 2, ...}."""
    if isinstance(local_steps, GeometricLocalSteps):
        return int(rng.geometric(1.0 / local_steps.mean))
    return local_steps.value


class SynchronousClock:
    """Per-node compute times of synchronous rounds, drawn from each node's timing stream.

    A round lasts as long as its slowest node plus the communication phase; the others
    idle for the difference. Communication time is charged when the round has elapsed (when
    its messages are counted), so a run stopped mid-round never charges a round it did not
    finish; idle time that has already passed in a round under way is counted in recorded
    rows (``Simulation.idle_in_progress``).

    With faults, :meth:`members` decides who takes part: ``faults.sync: wait`` holds the
    round until every crashed node is back (forever, after a permanent crash — the run
    stalls and says so in ``stalled_rounds``); ``faults.sync: timeout`` waits
    ``faults.timeout`` seconds for the missing nodes and goes on without them. A lost
    message is resent after the timeout (a ring or a neighbourhood exchange cannot skip one).
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.timing = sim.streams.generators("timing", sim.n)
        self.everyone = np.arange(sim.n)
        self.faults = sim.faults
        self.fault_rng = sim.streams.generator("faults/rounds") if sim.faults else None
        # Step times are drawn ahead in blocks per node (the same values, in the same order,
        # as one draw at a time), so that a round's n durations are one vectorized product.
        # Transient stragglers interleave their on/off draws: those come one call at a time.
        compute = sim.compute
        self.blocks: np.ndarray | None = None
        if not compute._transient:
            self.width = ROUND_BLOCK
            self.blocks = np.zeros((sim.n, ROUND_BLOCK))
            self.cursor = np.full(sim.n, ROUND_BLOCK)
            self.factors = np.asarray(compute.factors, dtype=np.float64)

    def _take(self, nodes: np.ndarray) -> np.ndarray:
        """The next base step time of each of ``nodes`` (distinct), refilling empty blocks."""
        assert self.blocks is not None
        cursor = self.cursor[nodes]
        for node in nodes[cursor >= self.width].tolist():
            self.blocks[node] = self.sim.compute._draw(self.timing[node], self.width, node)
            self.cursor[node] = 0
        cursor = self.cursor[nodes]
        self.cursor[nodes] = cursor + 1
        return self.blocks[nodes, cursor]

    def durations(self, nodes: np.ndarray, steps: list[int] | None, now: float) -> np.ndarray:
        """Compute time of each node's steps this round (as ``ComputeModel.duration``)."""
        compute = self.sim.compute
        if self.blocks is None:
            return np.array(
                [
                    compute.duration(int(i), 1 if steps is None else steps[i], now, self.timing[i])
                    for i in nodes
                ]
            )
        if steps is None:
            # One step: draw × factor, the same IEEE product as duration(i, 1).
            return self._take(nodes) * self.factors[nodes]
        out = np.empty(len(nodes))
        blocks, cursor, width = self.blocks, self.cursor, self.width
        wanted = np.asarray(steps, dtype=np.int64)[nodes]
        start = cursor[nodes]
        fits = start + wanted <= width
        # The common case, a node whose block holds all its steps: the nodes with the same
        # count at once, a gather and a row sum (numpy sums each row as it sums the 1-D
        # slice ``blocks[node, start : start + wanted]``: the same bits).
        rows = np.flatnonzero(fits)
        counts = wanted[rows]
        for count in np.unique(counts).tolist():
            group = rows[counts == count]
            members = nodes[group]
            first = start[group]
            draws = blocks[members[:, None], first[:, None] + np.arange(count)]
            out[group] = (draws * self.factors[members][:, None]).sum(axis=1)
            cursor[members] = first + count
        for r in np.flatnonzero(~fits).tolist():  # blocks run out: refills, one node at a time
            node = int(nodes[r])
            begin, left = int(start[r]), int(wanted[r])
            parts = [blocks[node, begin:width].copy()]
            left -= width - begin
            while left > 0:
                blocks[node] = self.sim.compute._draw(self.timing[node], width, node)
                take = min(left, width)
                parts.append(blocks[node, :take].copy())
                cursor[node] = take
                left -= take
            out[r] = float((np.concatenate(parts) * self.factors[node]).sum())
        return out

    def members(self) -> Generator[simpy.Event, object, np.ndarray]:
        """Wait until a round can start; return the nodes that take part in it."""
        faults = self.faults
        if faults is None:
            return self.everyone
        if faults.config.sync == "wait":
            down = [int(node) for node in np.flatnonzero(~faults.node_up)]
            if down:
                faults.counts["stalled_rounds"] += 1
                assert isinstance(self.sim.env, simpy.Environment)  # faults run on SimPy
                yield self.sim.env.all_of([faults.wait_up(node) for node in down])
            return self.everyone
        return faults.alive()

    def round(
        self,
        communication: float,
        steps: list[int] | None = None,
        nodes: np.ndarray | None = None,
        messages: int = 0,
        overlap: np.ndarray | None = None,
    ) -> Generator[simpy.Event, object, np.ndarray]:
        """Wait out one round: node i computes ``steps[i]`` steps (default 1), then all talk.

        ``overlap`` (one time per node of the run) is communication node i does *while* it
        computes: its busy part of the round is then max(compute_i, overlap[i]), and the
        round waits for the slowest node before the ``communication`` phase (if any).

        Returns the nodes whose work counts: those of ``nodes`` still up at the end.
        """
        sim = self.sim
        now = sim.env.now
        nodes = self.everyone if nodes is None else nodes
        durations = self.durations(nodes, steps, now)
        if overlap is not None:
            durations = np.maximum(durations, overlap[nodes])
        slowest = float(durations.max()) if len(durations) else 0.0
        extra = 0.0
        faults = self.faults
        if faults is not None:
            if len(nodes) < sim.n:
                faults.counts["timeouts"] += 1
                extra += faults.timeout
            if faults.config.message_loss > 0 and messages > 0:
                assert self.fault_rng is not None
                lost = int(self.fault_rng.binomial(messages, faults.config.message_loss))
                faults.counts["messages_lost"] += lost
                faults.counts["retries"] += lost
                extra += lost * faults.timeout
        waits = slowest - durations  # each node's idle time, once the slowest is done

        def idle_so_far(t: float) -> float:
            return float(np.clip(t - now - durations, 0.0, waits).sum())

        sim.idle_in_progress = idle_so_far
        yield sim.env.timeout(slowest + communication + extra)
        sim.idle_in_progress = None
        sim.idle_time += float(waits.sum())
        sim.comm_time += len(nodes) * communication
        if overlap is not None:
            sim.comm_time += float(overlap[nodes].sum())
        return nodes if faults is None else nodes[faults.node_up[nodes]]


def group_average_weights(groups: list[list[int]], n: int) -> scipy.sparse.csr_matrix:
    """Matrix that averages the models inside each of ``groups`` (a partition of ``0..n−1``)."""
    rows, cols, values = [], [], []
    for members in groups:
        weight = 1.0 / len(members)
        for i in members:
            rows.extend([i] * len(members))
            cols.extend(members)
            values.extend([weight] * len(members))
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, n))
