"""Named random streams: every draw in a run comes from a stream derived from the run seed.

A stream is identified by its purpose and (optionally) a node, e.g. ``timing/node 17``.
Streams are derived with :class:`numpy.random.SeedSequence` from a stable hash of the
name, so they do not depend on the order in which they are requested.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _name_key(name: str) -> tuple[int, int]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little"))


def stream_name(purpose: str, node: int | None = None) -> str:
    """The canonical name of a stream: ``purpose`` or ``purpose/node <i>``."""
    return purpose if node is None else f"{purpose}/node {node}"


class Streams:
    """Factory of independent, reproducible generators named by purpose and node.

    >>> s = Streams(7)
    >>> a = s.generator("timing", 3).random()
    >>> b = Streams(7).generator("timing", 3).random()
    >>> a == b
    True
    """

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.seed = int(seed)

    def seed_sequence(self, purpose: str, node: int | None = None) -> np.random.SeedSequence:
        """The SeedSequence of one named stream."""
        return np.random.SeedSequence(self.seed, spawn_key=_name_key(stream_name(purpose, node)))

    def generator(self, purpose: str, node: int | None = None) -> np.random.Generator:
        """A fresh generator for one named stream (same name ⇒ same draws)."""
        return np.random.Generator(np.random.PCG64(self.seed_sequence(purpose, node)))

    def generators(self, purpose: str, n: int) -> list[np.random.Generator]:
        """One generator per node ``0..n-1`` for ``purpose``."""
        return [self.generator(purpose, i) for i in range(n)]

    def child(self, index: int) -> Streams:
        """Streams of replicate ``index`` (independent of the parent's streams)."""
        entropy = np.random.SeedSequence(self.seed, spawn_key=(0x5EED, index)).generate_state(2)
        return Streams(int(entropy[0]) << 32 | int(entropy[1]))
