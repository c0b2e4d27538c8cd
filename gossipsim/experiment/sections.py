"""The config pieces algorithms are built from: the section base, numeric field types,
topologies, local steps, learning-rate schedules, momentum and quantizers.

Algorithm config models live beside their algorithms (:mod:`gossipsim.algorithms`) and are
made of these pieces; :mod:`gossipsim.experiment.config` assembles the whole run from the
registry. This module imports nothing of gossipsim, so every layer may use it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

# --------------------------------------------------------------------------------------------
# Base


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _finite(value: float, name: str = "value") -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


# --------------------------------------------------------------------------------------------
# topology


class _TopologyBase(Section):
    n: Annotated[int, Field(ge=2)] = 16


class RingTopology(_TopologyBase):
    """A cycle: node i talks to i-1 and i+1."""

    kind: Literal["ring"]


class TorusTopology(_TopologyBase):
    """A 2-D wrap-around grid of ``rows`` rows (default: as square as n allows)."""

    kind: Literal["torus"]
    rows: Annotated[int, Field(ge=3)] | None = None


class CompleteTopology(_TopologyBase):
    """Every node talks to every other."""

    kind: Literal["complete"]


class HypercubeTopology(_TopologyBase):
    """The log2(n)-dimensional hypercube (n a power of two)."""

    kind: Literal["hypercube"]


class RandomRegularTopology(_TopologyBase):
    """A random graph in which every node has ``degree`` neighbours."""

    kind: Literal["random_regular"]
    degree: Annotated[int, Field(ge=1)] = 4


class ErdosRenyiTopology(_TopologyBase):
    """Each edge present independently with probability ``p`` (must be connected)."""

    kind: Literal["erdos_renyi"]
    p: Annotated[float, Field(gt=0, le=1)] = 0.1


class SmallWorldTopology(_TopologyBase):
    """Watts-Strogatz: a ring lattice of ``k`` neighbours, edges rewired with ``p``."""

    kind: Literal["small_world"]
    k: Annotated[int, Field(ge=2)] = 4
    p: Annotated[float, Field(ge=0, le=1)] = 0.1


class StarTopology(_TopologyBase):
    """Node 0 is a hub connected to every other node."""

    kind: Literal["star"]


class EdgeListTopology(_TopologyBase):
    """A graph read from a file of ``u v`` lines (node ids 0..n-1); ``n`` defaults to the
    largest id in the file plus one."""

    kind: Literal["edge_list"]
    # Shown as "from the file" by `gossipsim list` and the reference (16 only if the file
    # has no well-formed line, which the graph builder then reports).
    n: Annotated[int, Field(ge=2, json_schema_extra={"shown_default": "from the file"})] = 16
    path: str

    @model_validator(mode="before")
    @classmethod
    def _infer_n(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("n") is None and isinstance(data.get("path"), str):
            largest = _largest_node_id(data["path"])
            if largest is not None:
                data = {**data, "n": max(largest + 1, 2)}
        return data

    @field_validator("path")
    @classmethod
    def _exists(cls, path: str) -> str:
        if not Path(path).is_file():
            raise ValueError(f"edge list file not found: {path}")
        return path


def _largest_node_id(path: str) -> int | None:
    """The largest node id on the well-formed lines of an edge-list file (None if none).

    Malformed lines are left to the graph builder, which reports them with their line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    largest = None
    for raw in text.splitlines():
        parts = raw.split("#", 1)[0].split()
        if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
            top = max(int(p) for p in parts)
            largest = top if largest is None else max(largest, top)
    return largest


TopologyConfig = Annotated[
    (
        RingTopology
        | TorusTopology
        | CompleteTopology
        | HypercubeTopology
        | RandomRegularTopology
        | ErdosRenyiTopology
        | SmallWorldTopology
        | StarTopology
        | EdgeListTopology
    ),
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------------------------
# algorithm pieces


class FixedLocalSteps(Section):
    """H = ``value`` local SGD steps before every interaction."""

    kind: Literal["fixed"]
    value: Annotated[int, Field(ge=1)] = 1


class GeometricLocalSteps(Section):
    """H drawn per interaction from a geometric distribution on {1, 2, ...} with this mean."""

    kind: Literal["geometric"]
    mean: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.0


LocalStepsConfig = Annotated[FixedLocalSteps | GeometricLocalSteps, Field(discriminator="kind")]


class _LrScheduleBase(Section):
    """Fields every learning-rate schedule has (see :mod:`gossipsim.engine.schedule`)."""

    kind: str  # each schedule narrows it to its own tag (declared here to come first)
    # The base rate η the schedule starts from (after any warm-up).
    value: NonNegFloat
    # Linear ramp from 0 to the schedule's value over the first ``warmup`` units (0: none).
    warmup: NonNegFloat = 0.0
    # The clock: the node's own local steps (rounds for synchronous methods, PS iterations
    # for gradient coding), or its own epochs (steps x batch size / shard size).
    unit: Literal["steps", "epochs"] = "steps"


class ConstantLr(_LrScheduleBase):
    """lr = value at every step (after the warm-up)."""

    kind: Literal["constant"]


class StepLr(_LrScheduleBase):
    """lr = value x factor^floor(t / every): multiplied by ``factor`` every ``every`` units."""

    kind: Literal["step"]
    factor: NonNegFloat = 0.1  # 0 allowed: learning stops after the first drop
    every: PositiveFloat


class CosineLr(_LrScheduleBase):
    """lr falls from value to ``final`` along half a cosine over ``total`` units, then stays."""

    kind: Literal["cosine"]
    final: NonNegFloat = 0.0
    total: PositiveFloat


class InverseTimeLr(_LrScheduleBase):
    """lr = value / (1 + decay x t)."""

    kind: Literal["inverse_time"]
    decay: NonNegFloat


LrScheduleConfig = Annotated[
    ConstantLr | StepLr | CosineLr | InverseTimeLr, Field(discriminator="kind")
]


def _lr_form(value: Any) -> str:
    return "schedule" if isinstance(value, dict | BaseModel) else "number"


# ``algorithm.lr``: a number (a constant rate) or a schedule mapping. The tags keep pydantic
# from reporting a schedule's errors twice (once per form); error paths drop them.
LR_FORMS = Union[  # noqa: UP007
    Annotated[NonNegFloat, Tag("number")], Annotated[LrScheduleConfig, Tag("schedule")]
]
LrConfig = Annotated[LR_FORMS, Discriminator(_lr_form)]
# Heavy-ball momentum coefficient μ (0: plain SGD; below 1, or it diverges).
Momentum = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class NoQuantizer(Section):
    """Send full-precision models (``network.float_bits`` bits per coordinate)."""

    kind: Literal["none"] = "none"


class StochasticQuantizer(Section):
    """Unbiased stochastic rounding to ``bits`` bits per coordinate."""

    kind: Literal["stochastic"]
    bits: Annotated[int, Field(ge=2, le=32)] = 8


class LatticeQuantizer(Section):
    """Lattice quantization relative to the receiver's model (Davies et al.)."""

    kind: Literal["lattice"]
    bits: Annotated[int, Field(ge=1, le=32)] = 8
    epsilon: PositiveFloat = 1.0e-3
    dither: bool = True


QuantizerConfig = Annotated[
    NoQuantizer | StochasticQuantizer | LatticeQuantizer, Field(discriminator="kind")
]


# --------------------------------------------------------------------------------------------
# what every SGD-stepping algorithm config has


class OptimizerSection(Section):
    """The step every SGD-based algorithm takes: its rate (or schedule) and heavy-ball momentum."""

    kind: str  # each algorithm narrows it to its own tag (declared here to come first)
    lr: LrConfig = 0.05
    # Heavy ball: v <- momentum*v + g, x <- x - lr*v (nesterov: x <- x - lr*(g + momentum*v)).
    momentum: Momentum = 0.0
    nesterov: bool = False


class AveragingOptimizerSection(OptimizerSection):
    """An optimizer whose models are averaged, and the choice of what happens to buffers."""

    # Whether averaging steps also average the momentum buffers (averaged) or every node
    # keeps its own (local, the default: buffers are never sent).
    momentum_averaging: Literal["local", "averaged"] = "local"
