"""Algorithm registry: ``algorithm.kind`` → how it runs and the laws it declares.

Every conformance and equivalence suite runs over :data:`REGISTRY` and the declarations
of its entries, so a new algorithm is tested as soon as it is registered. Adding an
algorithm = its module (a node program for an asynchronous one, a round generator for a
synchronous one, and its config model, made of :mod:`gossipsim.experiment.sections`) and
one entry here; the loader's ``algorithm`` union is built from this registry.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from gossipsim.algorithms import coding
from gossipsim.algorithms.gossip import adpsgd, dpsgd, sgp, swarmsgd
from gossipsim.algorithms.synchronous import allreduce, local_sgd
from gossipsim.engine.program import Program
from gossipsim.engine.simulation import Simulation
from gossipsim.experiment.sections import Section
from gossipsim.system.rng import Streams

if typing.TYPE_CHECKING:
    from gossipsim.experiment.config import RunConfig

    # The config union for type checkers; at run time the loader builds it from REGISTRY.
    AlgorithmConfig = (
        swarmsgd.SwarmSGDConfig
        | dpsgd.DPSGDConfig
        | adpsgd.ADPSGDConfig
        | sgp.SGPConfig
        | allreduce.AllReduceConfig
        | local_sgd.LocalSGDConfig
        | coding.GradientCodingConfig
    )

# What an algorithm keeps invariant at lr = 0 without quantization (the conformance suite
# checks the declared law): the mean of the node models; that mean once the pending
# buffer deltas of non-blocking averaging count; push-sum's numerators and weights,
# messages in flight included; or nothing the suite can check (gradient coding: a PS).
MEAN, MEAN_WITH_BUFFERS, PUSH_SUM, NOTHING = "mean", "mean_with_buffers", "push_sum", "nothing"
# The clock of an algorithm's learning-rate schedule: each node's own local steps, or the
# synchronous rounds (a round counts as one step, however many local steps it holds).
STEPS, ROUNDS = "steps", "rounds"

# Learning-rate schedules and momentum apply to every algorithm: the equivalence and
# conformance suites run each of these on every entry (:attr:`Algorithm.optimizer_variants`
# leaves out the keys a config does not have). Every config model must have the keys
# below, so a new algorithm cannot go without them.
OPTIMIZER_KEYS = ("lr", "momentum", "nesterov")
OPTIMIZER_VARIANTS: dict[str, dict[str, Any]] = {
    "lr-step": {"lr": {"kind": "step", "value": 0.08, "factor": 0.5, "every": 3, "warmup": 2}},
    "lr-cosine-epochs": {
        "lr": {"kind": "cosine", "value": 0.08, "final": 0.01, "total": 2, "unit": "epochs"},
    },
    "momentum": {"lr": {"kind": "inverse_time", "value": 0.03, "decay": 0.2}, "momentum": 0.8},
    "nesterov-averaged": {
        "lr": 0.02,
        "momentum": 0.6,
        "nesterov": True,
        "momentum_averaging": "averaged",
    },
    "warmup-scaled": {
        "lr": {"kind": "constant", "value": 0.01, "warmup": 4},
        "momentum": 0.5,
        "lr_scaling": "linear",
    },
}


@dataclass(frozen=True)
class Algorithm:
    """One registered algorithm and what the test suites may hold it to."""

    kind: str
    config: type[Section]
    start: Callable[[Simulation], None]
    family: str  # gossip | synchronous | coding
    # Asynchronous algorithms: the node program both executors interpret.
    program: Callable[[Simulation], Program] | None = None
    # Named variants the suites run beside the default (algorithm-section overrides).
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    conserves: str = MEAN
    # Variants whose law differs from ``conserves``.
    variant_conserves: dict[str, str] = field(default_factory=dict)
    faults: bool = True  # runs under every fault of the ``faults`` section
    # What a run brings of its own instead of the configured machines (gradient coding: a
    # PS and ``algorithm.workers`` workers; the topology section does not apply). None: the
    # ``topology`` section's n nodes on its graph.
    machines: Callable[[RunConfig], int] | None = None
    graph: Callable[[RunConfig], nx.Graph] | None = None
    graph_name: str | None = None  # how ``gossipsim validate`` names that graph
    # Checks of the config against the data, before any work (raise ValueError).
    check: Callable[[RunConfig, int, Streams], None] | None = None
    # Facts for ``meta.json`` beyond the common ones, and the CLI's line about a run.
    summary: Callable[[Simulation], dict[str, Any]] | None = None
    progress_line: Callable[[dict[str, Any], dict[str, Any]], str] | None = None
    # Whether the batched executor runs it on the lean loop (else under SimPy).
    lean: bool = True
    clock: str = STEPS  # what a learning-rate schedule counts (STEPS or ROUNDS)

    @property
    def quantizers(self) -> tuple[str, ...]:
        """Quantizer kinds its config accepts (read from the config model itself)."""
        quantizer = self.config.model_fields.get("quantizer")
        if quantizer is None:
            return ("none",)
        return tuple(sorted(_kinds(quantizer.annotation)))

    @property
    def optimizer_variants(self) -> dict[str, dict[str, Any]]:
        """:data:`OPTIMIZER_VARIANTS` with only the keys this algorithm's config has."""
        fields = self.config.model_fields
        return {
            name: {key: value for key, value in extra.items() if key in fields}
            for name, extra in OPTIMIZER_VARIANTS.items()
        }

    def law(self, variant: str | None) -> str:
        return self.variant_conserves.get(variant or "", self.conserves)


def _kinds(annotation: Any) -> set[str]:
    kinds: set[str] = set()
    for member in typing.get_args(annotation) or (annotation,):
        if isinstance(member, type) and issubclass(member, Section):
            kinds.update(typing.get_args(member.model_fields["kind"].annotation))
        else:
            kinds.update(_kinds(member))
    return kinds


REGISTRY: dict[str, Algorithm] = {
    entry.kind: entry
    for entry in (
        Algorithm(
            "swarmsgd",
            swarmsgd.SwarmSGDConfig,
            swarmsgd.start,
            "gossip",
            program=swarmsgd.program,
            variants={
                "nonblocking": {"nonblocking": True},
                "local-steps": {"local_steps": {"kind": "geometric", "mean": 3}},
            },
            variant_conserves={"nonblocking": MEAN_WITH_BUFFERS},
        ),
        Algorithm(
            "dpsgd",
            dpsgd.DPSGDConfig,
            dpsgd.start,
            "gossip",
            variants={"atc": {"variant": "atc"}},
            clock=ROUNDS,
        ),
        Algorithm("adpsgd", adpsgd.ADPSGDConfig, adpsgd.start, "gossip", program=adpsgd.program),
        Algorithm(
            "sgp",
            sgp.SGPConfig,
            sgp.start,
            "gossip",
            program=sgp.program,
            variants={
                "topology-peers": {"peers": "topology"},
                "overlap-1": {"overlap": 1},
                "unbounded": {"overlap": "unbounded"},
            },
            conserves=PUSH_SUM,
        ),
        Algorithm(
            "allreduce", allreduce.AllReduceConfig, allreduce.start, "synchronous", clock=ROUNDS
        ),
        Algorithm(
            "local_sgd",
            local_sgd.LocalSGDConfig,
            local_sgd.start,
            "synchronous",
            clock=ROUNDS,
            variants={"local-steps": {"local_steps": {"kind": "geometric", "mean": 2}}},
        ),
        Algorithm(
            "gradient_coding",
            coding.GradientCodingConfig,
            coding.start,
            "coding",
            conserves=NOTHING,
            machines=coding.machines,
            graph=coding.graph,
            graph_name="the parameter-server star",
            check=coding.check,
            summary=coding.summary,
            progress_line=coding.progress_line,
            lean=False,
        ),
    )
}
ALGORITHMS: dict[str, Callable[[Simulation], None]] = {
    kind: entry.start for kind, entry in REGISTRY.items()
}
_mislabelled = [kind for kind, entry in REGISTRY.items() if _kinds(entry.config) != {kind}]
assert not _mislabelled, f"registry entries whose config model has another kind: {_mislabelled}"
_unstepped = [
    entry.config.__name__
    for entry in REGISTRY.values()
    if not set(OPTIMIZER_KEYS) <= set(entry.config.model_fields)
]
assert not _unstepped, f"algorithm configs without {', '.join(OPTIMIZER_KEYS)}: {_unstepped}"


def node_count(config: RunConfig) -> int:
    """How many machines a run has: ``topology.n``, or what its algorithm brings."""
    machines = REGISTRY[config.algorithm.kind].machines
    return machines(config) if machines is not None else config.topology.n


def get_algorithm(kind: str) -> Callable[[Simulation], None]:
    try:
        return ALGORITHMS[kind]
    except KeyError:
        valid = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"algorithm.kind: unknown algorithm '{kind}'; valid: {valid}") from None
