"""A lean event loop with SimPy's ordering, for the fast path of the simulation.

SimPy processes events in ``(time, priority, insertion order)`` order; every event here
has SimPy's NORMAL priority except process starts, which, like SimPy's ``Initialize``
events, are URGENT. The loop keeps three queues that together give exactly that order:

* ``urgent``: process starts, first-in first-out;
* ``heap``: events in the future when they were scheduled, by ``(time, insertion)``;
* ``soon``: events scheduled for the current instant, first-in first-out. Every heap entry
  for the current instant was inserted before any of them, so heap entries of the current
  instant go first.

It runs SimPy-style generator processes that yield :meth:`LeanEnvironment.timeout`, and
plain callbacks (``schedule(delay, function, argument)``), which is what the hand-written
state machines of the fast paths use. A test holds the fast paths to the SimPy processes:
same operations, at the same times, in the same order.

A compiled fast path may take the loop over (:meth:`LeanEnvironment.attach`): its kernel
then owns the three queues, and the Python processes (the recorder, the timer) and the
stop event go through it with the same ordering rules.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Generator
from heapq import heappop, heappush
from typing import Any, Protocol

Callback = Callable[[Any], None]


class _Stop(Exception):
    """Raised inside the loop when the stop event is processed."""


class LeanEvent:
    """An event: ``succeed()`` resumes what waits on it at the current instant.

    The event a run waits for (``run(until=...)``) is the stop event: its ``succeed()``
    schedules the end of the run. Any other event (a crashed node's recovery, say) resumes
    its waiters in the order they started waiting, as SimPy's event processing does:
    Python callbacks, and nodes of a compiled loop (``(instruction, node)`` pairs), which
    resume as the event itself is processed.
    """

    def __init__(self, env: LeanEnvironment) -> None:
        self.env = env
        self.triggered = False
        self.is_stop = False
        self.waiters: list[Any] = []

    def succeed(self) -> LeanEvent:
        if self.triggered:
            raise RuntimeError("event already triggered")
        self.triggered = True
        kernel = self.env.kernel
        if self.is_stop:
            if kernel is None:
                self.env.soon.append((_raise_stop, None))
            else:
                kernel.trigger_stop()
            return self
        for waiter in self.waiters:
            if callable(waiter):
                self.env.schedule(0.0, waiter, self)
            else:
                assert kernel is not None
                kernel.resume_node(*waiter)
        return self


def _raise_stop(_: object) -> None:
    raise _Stop


class Kernel(Protocol):
    """A compiled event loop that has taken over a :class:`LeanEnvironment`."""

    def schedule(self, delay: float, callback: Callback, argument: Any) -> None: ...
    def start(self, callback: Callback, argument: Any) -> None: ...
    def trigger_stop(self) -> None: ...
    def resume_node(self, instruction: int, node: int) -> None: ...
    def run(self, until: LeanEvent) -> None: ...


class LeanEnvironment:
    """The subset of ``simpy.Environment`` the engine uses, with the same event order."""

    def __init__(self) -> None:
        self.kernel: Kernel | None = None
        self.now = 0.0
        self.heap: list[tuple[float, int, Callback, Any]] = []
        self.soon: deque[tuple[Callback, Any]] = deque()
        self.urgent: deque[tuple[Callback, Any]] = deque()
        # Insertion counter of the heap (fast paths that push to ``heap`` directly use it).
        self.insertion = itertools.count()

    # -- scheduling ------------------------------------------------------------------------

    def attach(self, kernel: Kernel) -> None:
        """Hand the event loop to a compiled kernel.

        Events scheduled so far (the processes of the fault model, say) move to the kernel's
        queues in their order.
        """
        urgent, heap, soon = list(self.urgent), sorted(self.heap), list(self.soon)
        self.urgent.clear()
        self.heap.clear()
        self.soon.clear()
        self.kernel = kernel
        for callback, argument in urgent:
            kernel.start(callback, argument)
        for at, _, callback, argument in heap:
            kernel.schedule(at - self.now, callback, argument)
        for callback, argument in soon:
            kernel.schedule(0.0, callback, argument)

    def schedule(self, delay: float, callback: Callback, argument: Any = None) -> None:
        """Call ``callback(argument)`` after ``delay`` (like a SimPy timeout it waits on)."""
        if self.kernel is not None:
            self.kernel.schedule(delay, callback, argument)
            return
        at = self.now + delay
        if at == self.now:
            self.soon.append((callback, argument))
        else:
            heappush(self.heap, (at, next(self.insertion), callback, argument))

    def start(self, callback: Callback, argument: Any = None) -> None:
        """Start a process at the current instant (SimPy's URGENT ``Initialize``)."""
        if self.kernel is not None:
            self.kernel.start(callback, argument)
            return
        self.urgent.append((callback, argument))

    # -- SimPy-compatible surface (generator processes yielding timeouts) -------------------

    def timeout(self, delay: float) -> Any:  # the delay, which stands in for SimPy's Timeout
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        return delay

    def process(self, generator: Generator[Any, object, object]) -> Generator[Any, object, object]:
        self.start(self._resume, generator)
        return generator

    def _resume(self, generator: Generator[float, object, None]) -> None:
        try:
            delay = next(generator)
        except StopIteration:
            return
        self.schedule(delay, self._resume, generator)

    def event(self) -> LeanEvent:
        return LeanEvent(self)

    def run(self, until: LeanEvent) -> None:
        """Process events until ``until`` has been processed."""
        until.is_stop = True
        if self.kernel is not None:
            self.kernel.run(until)
            return
        heap = self.heap
        soon = self.soon
        urgent = self.urgent
        next_soon = soon.popleft
        now = self.now
        try:
            while True:
                while urgent:
                    callback, argument = urgent.popleft()
                    callback(argument)
                if soon and not (heap and heap[0][0] == now):
                    callback, argument = next_soon()
                    callback(argument)
                elif heap:
                    now, _, callback, argument = heappop(heap)
                    self.now = now
                    callback(argument)
                else:
                    raise RuntimeError(
                        f'No scheduled events left but "until" event was not triggered: {until}'
                    )
        except _Stop:
            return
