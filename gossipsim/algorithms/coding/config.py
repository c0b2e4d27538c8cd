"""Gradient coding's configuration: the scheme, the chunk assignment, recovery and the PS step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from gossipsim.experiment.sections import (
    LrConfig,
    Momentum,
    NonNegFloat,
    PositiveFloat,
    Section,
    TopologyConfig,
)


class GraphAssignmentConfig(Section):
    """Worker i holds chunk i and the chunks of its neighbours in a regular graph."""

    kind: Literal["graph"]
    topology: TopologyConfig


class MatrixAssignmentConfig(Section):
    """An N × m 0/1 assignment matrix read from a text file (one row per worker)."""

    kind: Literal["matrix"]
    path: str

    @field_validator("path")
    @classmethod
    def _exists(cls, path: str) -> str:
        if not Path(path).is_file():
            raise ValueError(f"assignment matrix file not found: {path}")
        return path


AssignmentConfig = Annotated[
    GraphAssignmentConfig | MatrixAssignmentConfig, Field(discriminator="kind")
]


class GradientCodingConfig(Section):
    """A parameter server and workers with redundant data chunks (docs/gradient_coding.md)."""

    kind: Literal["gradient_coding"]
    scheme: Literal["uncoded", "ignore_stragglers", "fr", "cr", "original", "partial"] = "partial"
    workers: Annotated[int, Field(ge=2)] = 20
    chunks: Annotated[int, Field(ge=1)] | None = None
    load: Annotated[int, Field(ge=1)] | None = None  # chunks per worker; default 3
    parts: Annotated[int, Field(ge=1)] = 1  # ℓ: the gradient is sent in vectors of d/ℓ
    assignment: Literal["cyclic", "fractional"] | AssignmentConfig = "cyclic"
    recovery: Literal["exact", "approximate"] = "exact"
    deadline: PositiveFloat | None = None
    ordering: Literal["natural", "reversed", "random", "qmax", "expected", "optimized"] = "natural"
    report_every: NonNegFloat = 0.0
    # The PS's step w <- w - lr*g (a schedule's clock: PS iterations, or epochs of data).
    lr: LrConfig = 0.1
    momentum: Momentum = 0.0  # the PS's heavy-ball buffer
    nesterov: bool = False
    batch: Literal["full"] | Annotated[int, Field(ge=1)] = "full"

    @model_validator(mode="after")
    def _consistent(self) -> GradientCodingConfig:
        structured = isinstance(self.assignment, str) or self.scheme in ("fr", "cr")
        if self.load is None and structured:
            self.__dict__["load"] = 3  # the default for cyclic and fractional assignments
        chunks = self.chunks if self.chunks is not None else self.workers
        if self.load is not None and self.load > chunks:
            raise ValueError(f"load ({self.load}) must not exceed chunks ({chunks})")
        if self.recovery == "approximate" and self.deadline is None:
            raise ValueError("recovery: approximate needs a deadline (seconds)")
        # The exact-decoding schemes never stop at a deadline (ignore_stragglers is
        # approximate by nature: sweeps give it one to compare with partial's).
        if self.deadline is not None and (
            self.recovery == "exact" or self.scheme in ("uncoded", "fr", "cr")
        ):
            raise ValueError(
                f"deadline: applies only to recovery: approximate with scheme partial "
                f"(got scheme: {self.scheme}, recovery: {self.recovery}); remove it or set null"
            )
        return self
