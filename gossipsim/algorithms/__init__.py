"""Algorithm registry: ``algorithm.kind`` → the function that starts its processes.

Adding an algorithm = its config model in ``gossipsim.config`` (added to
``ALGORITHM_CONFIGS``) plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

from gossipsim.algorithms import coding
from gossipsim.algorithms.gossip import adpsgd, allreduce, dpsgd, local_sgd, sgp, swarmsgd
from gossipsim.engine.simulation import Simulation

ALGORITHMS: dict[str, Callable[[Simulation], None]] = {
    "swarmsgd": swarmsgd.start,
    "dpsgd": dpsgd.start,
    "adpsgd": adpsgd.start,
    "sgp": sgp.start,
    "allreduce": allreduce.start,
    "local_sgd": local_sgd.start,
    "gradient_coding": coding.start,
}


def get_algorithm(kind: str) -> Callable[[Simulation], None]:
    try:
        return ALGORITHMS[kind]
    except KeyError:
        valid = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"algorithm.kind: unknown algorithm '{kind}'; valid: {valid}") from None
