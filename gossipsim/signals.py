"""Signal handling shared by the code that starts worker processes (sweeps, real runs)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back meanwhile, then raise it as KeyboardInterrupt.

    Processes started meanwhile (the fork server, the workers) inherit this thread's
    blocked SIGINT, so a Ctrl-C cannot hit them half-way through their imports. Other
    threads of this process may still receive it: a recording handler defers it here.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
