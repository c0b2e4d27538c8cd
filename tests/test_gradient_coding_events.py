"""Gradient coding's compiled event kernels against the numpy formulation they replace.

``partial_schedule`` (:func:`gossipsim.algorithms.coding.kernels.partial_events`) and the
lazy bookkeeping's sums (``GradientCoding.queue_events``,
:func:`gossipsim.algorithms.coding.kernels.event_sums`) must give what the numpy code of
tests/oracle/coding_schedule.py gives, bit for bit: every field of the schedule, every
event row in the same order, every cumulative sum. The runs' rows and counters then stay
exactly as they were (tests/test_lr_schedules.py holds recorded numbers).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gossipsim.algorithms.coding.assignment import (
    cyclic_assignment,
    fractional_assignment,
    matrix_assignment,
)
from gossipsim.algorithms.coding.encoding import mds_encoding
from gossipsim.algorithms.coding.ordering import natural_orders, random_orders
from gossipsim.algorithms.coding.partial import positions
from gossipsim.algorithms.coding.schedule import (
    KIND_CODES,
    MessageTimes,
    Schedule,
    baseline_schedule,
    partial_schedule,
)
from tests.oracle import coding_schedule as oracle
from tests.test_gradient_coding_sim import gc_config, run

UNEVEN = np.array(  # loads 3, 2, 4, 1, 3, 2, 3: D has a column per slot of the most loaded
    [
        [1, 1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 0, 0],
        [1, 0, 0, 0, 1, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 1, 0, 1, 0, 0],
    ],
    dtype=bool,
)


def _assignments():
    return {
        "cyclic": cyclic_assignment(10, 10, 4),
        "fractional": fractional_assignment(8, 8, 2),
        "uneven": matrix_assignment(UNEVEN, 7),
    }


def _nets(n: int, rng: np.random.Generator) -> dict[str, MessageTimes]:
    def links(scale: float) -> np.ndarray:
        return scale * rng.random(n)

    return {
        "zero": MessageTimes.zero(n, 11, 2),
        "uniform": MessageTimes(0.05, 0.01, 0.02, 0.05, 64, 32, 32 * n, 96),
        "per_link": MessageTimes(
            links(0.1), links(0.02), links(0.03), links(0.1), 64, 32, 32 * n, 96
        ),
    }


def _durations(n: int, slots: int, rng: np.random.Generator) -> np.ndarray:
    D = rng.exponential(1.0, (n, slots)) + 0.2
    if rng.random() < 0.3:  # ties: several workers finish at the same instants
        D[rng.integers(n, size=n // 2)] = D[0]
    if rng.random() < 0.3:  # a crashed worker: its later chunks never finish
        D[rng.integers(n), rng.integers(slots) :] = np.inf
    if rng.random() < 0.1:  # every holder of something crashes: no snapshot without a deadline
        D[:, slots - 1 :] = np.inf
    return D


def assert_same_schedule(ours: Schedule, theirs: Schedule) -> None:
    assert type(ours.decode_time) is type(theirs.decode_time) is float
    assert ours.decode_time == theirs.decode_time or (
        math.isnan(ours.decode_time) and math.isnan(theirs.decode_time)
    )
    assert ours.snapshot_time == theirs.snapshot_time
    assert ours.slots == theirs.slots
    for name in ("senders", "state", "busy", "chunk_array", "message_array"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name, strict=True)
    if isinstance(theirs.stop_time, np.ndarray):
        np.testing.assert_array_equal(ours.stop_time, theirs.stop_time, strict=True)
    else:
        assert type(ours.stop_time) is float and ours.stop_time == theirs.stop_time
    assert ours.chunk_events == theirs.chunk_events
    assert ours.messages == theirs.messages


def test_compiled_partial_schedule_is_the_numpy_one():
    rng = np.random.default_rng(23)
    checked = 0
    for name, a in _assignments().items():
        n, slots = a.workers, int(a.loads.max())
        orders = [natural_orders(a), random_orders(a, [rng] * n)]
        for net_name, net in _nets(n, rng).items():
            for parts in sorted({1, 2, int(a.replication.min())}):
                for order in orders:
                    pos = positions(a, order)
                    for report_every in (0.0, 0.7):
                        for deadline in (None, 1.5, 4.0):
                            D = _durations(n, slots, rng)
                            args = (D, pos, net, report_every, deadline, parts, a.loads)
                            label = (name, net_name, parts, report_every, deadline)
                            try:
                                assert_same_schedule(
                                    partial_schedule(*args), oracle.partial_schedule(*args)
                                )
                            except AssertionError as exc:
                                raise AssertionError(f"{label}: {exc}") from None
                            checked += 1
    assert checked > 200


def test_compiled_partial_schedule_takes_any_layout_of_durations():
    """A view of the per-run draw buffer (not contiguous) and no loads (every slot)."""
    a = cyclic_assignment(6, 6, 3)
    pos = positions(a, natural_orders(a))
    net = MessageTimes(0.05, 0.01, 0.02, 0.05, 64, 32, 32 * 6, 96)
    buffer = np.random.default_rng(4).exponential(1.0, (6, 12))
    D = buffer[:, 3:6]
    assert not D.flags.c_contiguous
    assert_same_schedule(partial_schedule(D, pos, net), oracle.partial_schedule(D, pos, net))


def _queue_inputs(rng: np.random.Generator):
    """Schedules of every scheme, per-link or not, with the tables a run would use."""
    a = cyclic_assignment(8, 8, 3)
    B = mds_encoding(a, 1, np.random.default_rng(0))
    pos = positions(a, natural_orders(a))
    for net_name, net in _nets(8, rng).items():
        times = np.zeros(len(KIND_CODES))
        if not net.per_worker:
            for kind, seconds in (
                ("broadcast", net.model),
                ("report", net.report),
                ("signal", net.signal),
                ("coded", net.coded),
            ):
                times[KIND_CODES[kind]] = seconds
        for _ in range(8):
            D = _durations(8, 3, rng)
            yield net_name, times, partial_schedule(D, pos, net, 0.0, None, 1, a.loads)
            yield net_name, times, partial_schedule(D, pos, net, 0.5, 2.0, 2, a.loads)
            for scheme in ("uncoded", "ignore_stragglers"):
                yield net_name, times, baseline_schedule(scheme, D, net, stragglers=2)
            yield net_name, times, baseline_schedule("cr", D, net, B, loads=a.loads)


@pytest.mark.parametrize("batch", ["full", 7])
def test_compiled_event_sums_are_the_numpy_ones(batch):
    """The cumulative sums in time order, and their last row and last time without the
    ordering (what a stamp after the whole iteration adds)."""
    from gossipsim.algorithms.coding import kernels

    rng = np.random.default_rng(5)
    sizes = rng.integers(5, 20, 8).astype(np.float64)
    slot_chunk = rng.integers(0, 8, (8, 3))
    samples = sizes[slot_chunk]
    if batch != "full":
        samples = np.minimum(samples, float(batch))
    for net_name, message_times, schedule in _queue_inputs(rng):
        t0 = float(rng.random() * 100)
        args = (
            t0,
            np.ascontiguousarray(schedule.chunk_array),
            np.ascontiguousarray(schedule.message_array),
            samples,
            message_times,
        )
        times, sums = kernels.event_sums(*args)
        last, totals = kernels.event_totals(*args)
        want_times, want_sums = oracle.queue_events(
            t0, schedule, sizes, slot_chunk, batch, message_times
        )
        np.testing.assert_array_equal(times, want_times, err_msg=net_name, strict=True)
        np.testing.assert_array_equal(sums, want_sums, err_msg=net_name, strict=True)
        np.testing.assert_array_equal(totals, want_sums[-1], err_msg=net_name, strict=True)
        assert last == want_times[-1], net_name


@pytest.mark.parametrize(
    "algorithm",
    [{}, {"batch": 20, "report_every": 0.4}, {"scheme": "cr"}, {"scheme": "ignore_stragglers"}],
)
def test_queued_events_of_a_run_are_the_numpy_ones(algorithm):
    """Every iteration's queued events of a run (rows every 0.3 s: most stamps fall within
    an iteration), against the numpy bookkeeping."""
    from gossipsim.algorithms.coding import kernels
    from gossipsim.algorithms.coding.protocol import GradientCoding

    seen: list[tuple] = []
    original = GradientCoding.queue_events

    def recording(self, t0, schedule):
        original(self, t0, schedule)
        seen.append((self, t0, schedule, self._queued[-1]))

    GradientCoding.queue_events = recording  # type: ignore[method-assign]
    try:
        outcome, _, _ = run(
            gc_config(algorithm=algorithm, stop={"iterations": 15}, **{"record.every": 0.3})
        )
    finally:
        GradientCoding.queue_events = original  # type: ignore[method-assign]
    assert len(seen) == 15
    partly = 0
    for gc, t0, schedule, entry in seen:
        want_times, want_sums = oracle.queue_events(
            t0, schedule, gc.sizes, gc._slot_chunk, gc.config.batch, gc._message_times
        )
        np.testing.assert_array_equal(entry.totals, want_sums[-1], strict=True)
        assert entry.last == want_times[-1]
        if entry.sums is not None:  # a stamp fell within the iteration
            partly += 1
            np.testing.assert_array_equal(entry.times, want_times, strict=True)
            np.testing.assert_array_equal(entry.sums, want_sums, strict=True)
        times, sums = kernels.event_sums(
            t0, entry.chunks, entry.messages, gc._slot_samples, gc._message_times
        )
        np.testing.assert_array_equal(sums, want_sums, strict=True)
    assert partly > 0


def test_compiled_partial_schedule_refuses_inputs_that_disagree():
    """The kernel reads arrays without bounds checks: sizes that disagree are refused."""
    a = cyclic_assignment(6, 6, 3)
    pos = positions(a, natural_orders(a))
    net = MessageTimes(0.05, 0.01, 0.02, 0.05, 64, 32, 32 * 6, 96)
    D = np.ones((6, 3))
    for bad in (
        dict(D=np.ones((5, 3))),
        dict(loads=np.full(6, 4)),
        dict(loads=np.full(5, 3)),
        dict(net=MessageTimes(*(np.ones(5),) * 4, 64, 32, 32 * 6, 96)),
        dict(parts=0),
    ):
        args = {"D": D, "pos": pos, "net": net, "loads": a.loads, **bad}
        with pytest.raises(ValueError, match="partial_events"):
            partial_schedule(**args)
