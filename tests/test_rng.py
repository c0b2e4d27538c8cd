"""Named random streams: reproducible, independent of request order, and fast in bulk."""

from __future__ import annotations

import numpy as np
import pytest

from gossipsim.system.rng import Streams, _name_key, stream_name


def reference_generator(seed: int, purpose: str, node: int) -> np.random.Generator:
    """The definition: PCG64 seeded by SeedSequence(seed, spawn_key=hash of the name)."""
    key = _name_key(stream_name(purpose, node))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@pytest.mark.parametrize("seed", [0, 1, 7, 2**32 - 1, 2**32, 2**63 + 12345, 2**130 + 3])
@pytest.mark.parametrize("purpose", ["timing", "pairing", "sampling", "faults/messages"])
def test_bulk_generators_equal_seed_sequence_streams(seed, purpose):
    streams = Streams(seed)
    bulk = streams.generators(purpose, 40)
    for node, generator in enumerate(bulk):
        expected = reference_generator(seed, purpose, node)
        assert (generator.random(7) == expected.random(7)).all()
        assert (generator.integers(1 << 40, size=5) == expected.integers(1 << 40, size=5)).all()
        # and one at a time equals the bulk path
        single = streams.generator(purpose, node)
        reference = reference_generator(seed, purpose, node)
        assert single.exponential(2.0) == reference.exponential(2.0)


def test_streams_differ_by_name_and_seed():
    a = Streams(3).generators("timing", 3)
    b = Streams(3).generators("pairing", 3)
    c = Streams(4).generators("timing", 3)
    first = [g.random() for g in a + b + c]
    assert len(set(first)) == len(first)


def test_generators_of_zero_nodes_and_negative_seed():
    assert Streams(1).generators("timing", 0) == []
    with pytest.raises(ValueError, match="seed"):
        Streams(-1)


def test_child_streams_are_reproducible_and_distinct():
    parent = Streams(11)
    assert parent.child(2).seed == Streams(11).child(2).seed
    assert parent.child(2).seed != parent.child(3).seed
