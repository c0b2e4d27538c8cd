"""Validated configuration: pydantic models of every YAML section, loading with file:line errors.

Nothing below this layer reads YAML. ``load_config`` turns a file (plus ``--set`` overrides)
into a :class:`RunConfig`; every error names the field path and, for YAML, the file and line.
"""

from __future__ import annotations

import difflib
import functools
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from gossipsim.algorithms import REGISTRY
from gossipsim.experiment.sections import (
    LR_FORMS,
    LocalStepsConfig,
    LrScheduleConfig,
    NonNegFloat,
    PositiveFloat,
    QuantizerConfig,
    RingTopology,
    Section,
    TopologyConfig,
)
from gossipsim.system.traces import Trace, read_trace

# --------------------------------------------------------------------------------------------
# init


class InitConfig(Section):
    """Initial node models: zeros, or a normal draw (one shared draw or one per node)."""

    kind: Literal["zeros", "normal"] = "normal"
    scale: NonNegFloat = 1.0
    identical: bool = True


# --------------------------------------------------------------------------------------------
# objective: dataset, partition


class _DatasetBase(Section):
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    standardize: bool = True


class SyntheticData(_DatasetBase):
    """Generated data: Gaussian clusters (classes) or a noisy linear model (regression)."""

    kind: Literal["synthetic"] = "synthetic"
    n_samples: Annotated[int, Field(ge=2)] = 10000
    n_features: Annotated[int, Field(ge=1)] = 20
    # Multiclass objectives only (softmax, mlp; default 10); none for logistic/least_squares.
    n_classes: Annotated[int, Field(ge=2)] | None = None
    noise: NonNegFloat = 0.1


class DigitsData(_DatasetBase):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes)."""

    kind: Literal["digits"]


class BreastCancerData(_DatasetBase):
    """scikit-learn's breast-cancer data set (569 samples, 30 features, binary)."""

    kind: Literal["breast_cancer"]


class LibsvmData(_DatasetBase):
    """A LIBSVM/SVMlight text file of ``label index:value ...`` lines."""

    kind: Literal["libsvm"]
    path: str

    @field_validator("path")
    @classmethod
    def _exists(cls, path: str) -> str:
        if not Path(path).is_file():
            raise ValueError(f"data file not found: {path}")
        return path


DatasetConfig = Annotated[
    SyntheticData | DigitsData | BreastCancerData | LibsvmData, Field(discriminator="kind")
]


class IidPartition(Section):
    """Shuffle and deal the training set evenly to the nodes."""

    kind: Literal["iid"] = "iid"


class DirichletPartition(Section):
    """Label skew: each class split across nodes by a Dirichlet(alpha) draw."""

    kind: Literal["dirichlet"]
    alpha: PositiveFloat = 0.5


class ShardsPartition(Section):
    """Each node holds samples of only ``classes_per_node`` classes."""

    kind: Literal["shards"]
    classes_per_node: Annotated[int, Field(ge=1)] = 2


PartitionConfig = Annotated[
    IidPartition | DirichletPartition | ShardsPartition, Field(discriminator="kind")
]


_TASKS = {
    "least_squares": "regression",
    "logistic": "binary",
    "softmax": "multiclass",
    "mlp": "multiclass",
}
#: Classes of a synthetic multiclass data set when ``dataset.n_classes`` is not given.
DEFAULT_CLASSES = 10


class _ObjectiveBase(Section):
    """The training problem: model family, data, how it is split across nodes, batch size."""

    dataset: DatasetConfig = Field(default_factory=SyntheticData)
    partition: PartitionConfig = Field(default_factory=IidPartition)
    batch_size: Annotated[int, Field(ge=1)] = 32
    l2: NonNegFloat = 0.0

    @property
    def task(self) -> str:
        return _TASKS[self.kind]  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _classes(self) -> _ObjectiveBase:
        dataset = self.dataset
        if isinstance(dataset, SyntheticData):
            if self.task == "multiclass":
                if dataset.n_classes is None:
                    dataset.n_classes = DEFAULT_CLASSES
            elif dataset.n_classes is not None:
                raise ValueError(
                    f"dataset.n_classes: does not apply to {self.kind} "  # type: ignore[attr-defined]
                    f"({self.task} labels); only softmax and mlp take a number of classes"
                )
        return self


class _LinearObjective(_ObjectiveBase):
    # Read by the problem builder for every kind; linear models have no hidden layers.
    @property
    def hidden(self) -> list[int]:
        return [64]

    @property
    def activation(self) -> str:
        return "relu"


class LeastSquaresObjective(_LinearObjective):
    """Linear regression, mean squared error."""

    kind: Literal["least_squares"]


class LogisticObjective(_LinearObjective):
    """Binary logistic regression."""

    kind: Literal["logistic"] = "logistic"


class SoftmaxObjective(_LinearObjective):
    """Multiclass (softmax) logistic regression."""

    kind: Literal["softmax"]


class MLPObjective(_ObjectiveBase):
    """A multilayer perceptron with 1 or 2 hidden layers and a softmax output."""

    kind: Literal["mlp"]
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [64])
    activation: Literal["relu", "tanh"] = "relu"

    @field_validator("hidden")
    @classmethod
    def _layers(cls, hidden: list[int]) -> list[int]:
        if not 1 <= len(hidden) <= 2:
            raise ValueError(f"the MLP supports 1 or 2 hidden layers, got {len(hidden)}")
        return hidden


ObjectiveConfig = Annotated[
    LeastSquaresObjective | LogisticObjective | SoftmaxObjective | MLPObjective,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------------------------
# compute (timing) and network


class NoHeterogeneity(Section):
    """All nodes equally fast."""

    kind: Literal["none"] = "none"


class LognormalHeterogeneity(Section):
    """Persistent per-node speed factors drawn from a lognormal of log-scale ``sigma``."""

    kind: Literal["lognormal"]
    sigma: NonNegFloat = 0.3


class UniformHeterogeneity(Section):
    """Persistent per-node speed factors drawn uniformly from [``low``, ``high``]."""

    kind: Literal["uniform"]
    low: PositiveFloat = 0.5
    high: PositiveFloat = 1.5

    @model_validator(mode="after")
    def _order(self) -> UniformHeterogeneity:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


HeterogeneityConfig = Annotated[
    NoHeterogeneity | LognormalHeterogeneity | UniformHeterogeneity,
    Field(discriminator="kind"),
]


class StragglerConfig(Section):
    """A fraction of nodes slowed by a factor, always (persistent) or in on/off episodes."""

    fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    slowdown: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 5.0
    mode: Literal["persistent", "transient"] = "persistent"
    period: PositiveFloat | None = None


class _ComputeCommon(Section):
    """What every compute kind has: node speed factors and stragglers on top of its steps."""

    heterogeneity: HeterogeneityConfig = Field(default_factory=NoHeterogeneity)
    stragglers: StragglerConfig = Field(default_factory=StragglerConfig)


class _ComputeBase(_ComputeCommon):
    """A parametric distribution of step times, of this ``mean``."""

    mean: PositiveFloat = 1.0


class ConstantCompute(_ComputeBase):
    """Every local step takes exactly ``mean`` seconds (times node factors)."""

    kind: Literal["constant"]


class ExponentialCompute(_ComputeBase):
    """Step times drawn from an exponential distribution of this ``mean``."""

    kind: Literal["exponential"]


class ShiftedExponentialCompute(_ComputeBase):
    """``shift`` plus an exponential draw; the mean is ``mean``."""

    kind: Literal["shifted_exponential"]
    shift: NonNegFloat = 0.5

    @model_validator(mode="after")
    def _shift_below_mean(self) -> ShiftedExponentialCompute:
        if self.shift >= self.mean:
            raise ValueError(f"shift ({self.shift}) must be below mean ({self.mean})")
        return self


class LognormalCompute(_ComputeBase):
    """Lognormal step times of this ``mean`` and log-scale ``sigma``."""

    kind: Literal["lognormal"]
    sigma: NonNegFloat = 0.5


class ParetoCompute(_ComputeBase):
    """Heavy-tailed Pareto step times of this ``mean`` and tail index ``alpha``."""

    kind: Literal["pareto"]
    alpha: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 3.0


class TraceCompute(_ComputeCommon):
    """Step times replayed or resampled from a measured trace (CSV or Parquet file).

    ``path`` is read when the config is validated (relative to the working directory, as
    every file path of a config). Node ``i`` uses trace node ``i``'s durations; nodes the
    trace lacks are mapped onto its node ids by a permutation drawn from the seed.
    ``replay`` takes a node's durations in order, cycling; ``resample`` draws them i.i.d.
    """

    kind: Literal["trace"]
    path: str
    mode: Literal["replay", "resample"] = "replay"

    @field_validator("path")
    @classmethod
    def _readable(cls, path: str) -> str:
        _load_trace(path)  # a TraceError (a ValueError) names the file and, for CSV, the line
        return path

    @property
    def trace(self) -> Trace:
        """The measurements in ``path`` (read once per file version)."""
        return _load_trace(self.path)


def _load_trace(path: str) -> Trace:
    """``read_trace(path)``, reused while the file is unchanged (sweeps validate every run)."""
    file = Path(path)
    try:
        stat = file.stat()
    except OSError:
        return read_trace(file)  # raises the reader's own message (not found, ...)
    return _read_trace_version(path, str(file.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_trace_version(path: str, resolved: str, mtime_ns: int, size: int) -> Trace:
    return read_trace(path)


ComputeConfig = Annotated[
    (
        ConstantCompute
        | ExponentialCompute
        | ShiftedExponentialCompute
        | LognormalCompute
        | ParetoCompute
        | TraceCompute
    ),
    Field(discriminator="kind"),
]


class ConstantLink(Section):
    """Every link the same ``value`` (a plain number means the same)."""

    kind: Literal["constant"]
    value: NonNegFloat


class LognormalLink(Section):
    """Per link, ``exp(N(mu, sigma^2))`` with ``mu = ln(mean) - sigma^2/2`` (mean ``mean``)."""

    kind: Literal["lognormal"]
    mean: PositiveFloat
    sigma: NonNegFloat = 0.5


class UniformLink(Section):
    """Per link, uniform on [``low``, ``high``]."""

    kind: Literal["uniform"]
    low: NonNegFloat
    high: NonNegFloat

    @model_validator(mode="after")
    def _order(self) -> UniformLink:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


LinkDistribution = Annotated[
    ConstantLink | LognormalLink | UniformLink, Field(discriminator="kind")
]


def _link_form(value: Any) -> str:
    return "distribution" if isinstance(value, dict | BaseModel) else "number"


# ``network.latency`` / ``network.bandwidth``: a number (every link) or a distribution
# drawn once per link (as ``algorithm.lr``, tags keep errors from being reported twice).
_LATENCY_FORMS = Union[  # noqa: UP007
    Annotated[NonNegFloat, Tag("number")], Annotated[LinkDistribution, Tag("distribution")]
]
_BANDWIDTH_FORMS = Union[  # noqa: UP007
    Annotated[float, Field(gt=0), Tag("number")],
    Annotated[LinkDistribution, Tag("distribution")],
]
LatencyConfig = Annotated[_LATENCY_FORMS, Discriminator(_link_form)]
BandwidthConfig = Annotated[_BANDWIDTH_FORMS, Discriminator(_link_form)]


class NetworkConfig(Section):
    """Message time over a link = latency + bits / bandwidth (seconds, bits per second).

    ``latency`` and ``bandwidth`` are numbers (every link alike) or distributions drawn
    once per link of the topology (stream ``network/links``, edges ``u < v`` in sorted
    order): ``{kind: lognormal, mean, sigma}``, ``{kind: uniform, low, high}`` or
    ``{kind: constant, value}``. ``links`` names a file of ``u v latency bandwidth``
    lines (``#`` comments; each pair an edge of the run's graph) that sets the listed
    links, both directions, over the numbers or draws; a relative path is taken from the
    working directory, as ``topology.path``.

    ``float_bits`` is the width of one full-precision number on the wire: every coordinate
    of an unquantized model or gradient, a quantizer's scale, SGP's push-sum weight, a
    gradient-coding vector entry. 32 (fp32, the default) or 64 (fp64).
    """

    latency: LatencyConfig = 0.0
    bandwidth: BandwidthConfig = 1.0e9
    links: str | None = None
    float_bits: Literal[32, 64] = 32

    @field_validator("links")
    @classmethod
    def _links_exist(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"links file not found: {path}")
        return path

    @field_validator("bandwidth")
    @classmethod
    def _positive_bandwidth(cls, b: Any) -> Any:
        if isinstance(b, ConstantLink | UniformLink):
            low = b.value if isinstance(b, ConstantLink) else b.low
            if low <= 0:
                raise ValueError("every link needs a bandwidth > 0")
        return b


# --------------------------------------------------------------------------------------------
# algorithms: each config model lives beside its algorithm; the union is the registry's


if typing.TYPE_CHECKING:  # a type checker sees the registry's members spelled out
    from gossipsim.algorithms import AlgorithmConfig
else:
    _MEMBERS = tuple(entry.config for entry in REGISTRY.values())
    AlgorithmConfig = Annotated[Union[_MEMBERS], Field(discriminator="kind")]  # noqa: UP007


# --------------------------------------------------------------------------------------------
# stop, record, the whole run


class StopConfig(Section):
    """Stop rules: the run ends at whichever comes first."""

    time: PositiveFloat | None = None
    interactions: Annotated[int, Field(ge=1)] | None = None
    iterations: Annotated[int, Field(ge=1)] | None = None
    epochs: PositiveFloat | None = None
    target_loss: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> StopConfig:
        bounds = (self.time, self.interactions, self.iterations, self.epochs)
        if all(bound is None for bound in bounds):
            raise ValueError(
                "set at least one of stop.time, stop.interactions, stop.iterations or stop.epochs "
                "(target_loss alone may never be reached)"
            )
        return self


class Downtime(Section):
    """How long a crashed node or a failed link stays down (seconds)."""

    kind: Literal["exponential", "constant"] = "exponential"
    mean: PositiveFloat = 10.0


class CrashConfig(Section):
    """Permanent crashes: the listed ``nodes`` at time ``at``, and/or each node at ``rate``."""

    nodes: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    at: NonNegFloat = 0.0
    rate: NonNegFloat = 0.0


class CrashRecoverConfig(Section):
    """Each node crashes at ``rate`` (per second) and comes back with its last model."""

    rate: NonNegFloat = 0.0
    downtime: Downtime = Field(default_factory=Downtime)


class LinkFailureConfig(Section):
    """Each edge fails at ``rate`` (per second) and recovers after a downtime draw."""

    rate: NonNegFloat = 0.0
    downtime: Downtime = Field(default_factory=Downtime)


class NetworkPartitionConfig(Section):
    """From ``start`` to ``end`` the nodes form ``groups`` blocks of consecutive ids.

    No message crosses between blocks while the partition lasts.
    """

    groups: Annotated[int, Field(ge=2)] = 2
    start: NonNegFloat = 0.0
    end: NonNegFloat | None = None  # None: the partition never heals

    @model_validator(mode="after")
    def _order(self) -> NetworkPartitionConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class LatencySpikeConfig(Section):
    """Each message independently takes ``factor`` times its usual time with ``probability``."""

    probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    factor: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 10.0


class FaultsConfig(Section):
    """Faults the simulated system suffers. Timing only: drawn from their own streams."""

    crash: CrashConfig | None = None
    crash_recover: CrashRecoverConfig | None = None
    link_failure: LinkFailureConfig | None = None
    partition: NetworkPartitionConfig | None = None
    message_loss: Annotated[float, Field(ge=0, lt=1)] = 0.0
    latency_spikes: LatencySpikeConfig | None = None
    # Gossip: seconds an initiator waits on an unreachable or silent partner before it gives
    # up and picks another neighbour. Synchronous methods: seconds a round waits for missing
    # nodes before it goes on without them (sync: timeout), or wait forever (sync: wait).
    timeout: PositiveFloat = 1.0
    sync: Literal["wait", "timeout"] = "timeout"

    @property
    def active(self) -> bool:
        return any(
            (
                self.crash is not None and (self.crash.nodes or self.crash.rate > 0),
                self.crash_recover is not None and self.crash_recover.rate > 0,
                self.link_failure is not None and self.link_failure.rate > 0,
                self.partition is not None,
                self.message_loss > 0,
                self.latency_spikes is not None and self.latency_spikes.probability > 0,
            )
        )


class EngineConfig(Section):
    """How the simulation is executed: the same events either way, numbers within 1e-12.

    ``batched`` (the default, the fast path): the events from the compiled interpreter of
    the algorithm's node program (or, for synchronous methods, the lean loop), operations
    applied in vectorized waves. ``sequential``: the same program interpreted by SimPy
    processes, one operation at a time (the reference).
    """

    executor: Literal["sequential", "batched"] = "batched"
    # Runs whose estimated memory (models, data, graph) exceeds this are refused up front.
    memory_limit_gb: PositiveFloat = 8.0


class RecordConfig(Section):
    """Recording grid in simulated seconds (first row at 0, last at the stop)."""

    every: PositiveFloat = 1.0


class RunConfig(Section):
    """One simulation run, fully described."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]
    seed: Annotated[int, Field(ge=0)] = 0
    init: InitConfig = Field(default_factory=InitConfig)
    objective: ObjectiveConfig = Field(default_factory=LogisticObjective)
    topology: TopologyConfig = Field(default_factory=lambda: RingTopology(kind="ring"))
    compute: ComputeConfig = Field(default_factory=lambda: ConstantCompute(kind="constant"))
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    algorithm: AlgorithmConfig
    stop: StopConfig
    record: RecordConfig = Field(default_factory=RecordConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    sweep: dict[str, Any] | None = None
    _source: ConfigSource | None = PrivateAttr(default=None)

    @field_validator("objective", mode="before")
    @classmethod
    def _default_objective_kind(cls, value: Any) -> Any:
        if isinstance(value, dict) and "kind" not in value:
            return {**value, "kind": "logistic"}  # the documented default
        return value

    @property
    def source(self) -> ConfigSource | None:
        """Where this config came from (file, line of each key, overridden keys), if known."""
        return self._source

    def resolved(self) -> dict[str, Any]:
        """All values with defaults filled in, as plain data (the sweep section dropped)."""
        return self.model_dump(mode="json", exclude={"sweep"})


# --------------------------------------------------------------------------------------------
# loading: YAML positions, overrides, readable errors


class ConfigSource:
    """The file a config was read from, the line of each key path, and the --set keys."""

    def __init__(
        self,
        path: str,
        positions: dict[tuple[str | int, ...], int] | None = None,
        overridden: set[tuple[str, ...]] | None = None,
    ) -> None:
        self.path = path
        self.positions = positions or {}
        self.overridden = overridden or set()

    def locate(self, path: tuple[Any, ...]) -> str:
        """``file:line`` of the nearest key on ``path`` (or ``--set`` if it was overridden)."""
        string_path = tuple(str(p) for p in path)
        if any(string_path[: len(o)] == o for o in self.overridden):
            return "--set"
        # A section that only an override created (``--set foo.bar=1``) is not in the file.
        if path not in self.positions and any(
            o[: len(string_path)] == string_path for o in self.overridden
        ):
            return "--set"
        probe: tuple[Any, ...] = tuple(path)
        while probe and probe not in self.positions:
            probe = probe[:-1]
        line = self.positions.get(probe)
        return f"{self.path}:{line}" if line is not None else self.path


class ConfigError(ValueError):
    """A configuration problem; ``str()`` lists one ``where: field: message`` line per issue."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _yaml_positions(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each key path in a YAML document to the 1-based line where it appears."""
    positions: dict[tuple[str | int, ...], int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                positions[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                positions[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    if root is not None:
        positions[()] = root.start_mark.line + 1
        walk(root, ())
    return positions


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value in YAML syntax) into (["a", "b", "c"], value)."""
    if "=" not in text:
        raise ConfigError([f"--set {text}: expected KEY=VALUE, e.g. algorithm.lr=0.02"])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError([f"--set {text}: empty key"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError([f"--set {text}: value is not valid YAML ({exc})"]) from None
    return parts, value


def apply_override(data: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set a dotted key in nested dicts, creating intermediate sections as needed."""
    node = data
    for index, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: index + 1])
            raise ConfigError([f"--set {'.'.join(parts)}: {where} is not a section"])
        node = child
    node[parts[-1]] = value


def _union_members(annotation: Any) -> dict[str, type[BaseModel]] | None:
    """For a discriminated union of models, map each ``kind`` tag to its model."""
    args = typing.get_args(annotation)
    if args and typing.get_origin(annotation) is Annotated:
        return _union_members(args[0])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members: dict[str, type[BaseModel]] = {}
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel) and "kind" in arg.model_fields:
                tags = typing.get_args(arg.model_fields["kind"].annotation)
                for tag in tags:
                    members[str(tag)] = arg
        return members or None
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _resolve_loc(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """Drop union tags from a pydantic error location; return it and the innermost model."""
    model: type[BaseModel] | None = RunConfig
    path: list[Any] = []
    pending_union: dict[str, type[BaseModel]] | None = None
    lr_form = False
    for item in loc:
        if lr_form and item in ("number", "schedule", "distribution"):
            # A number-or-section field's form tag: a number has nothing inside, the
            # section (a schedule, a link distribution) is a union.
            lr_form = False
            inner = LinkDistribution if item == "distribution" else LrScheduleConfig
            pending_union = _union_members(inner) if item != "number" else None
            continue
        lr_form = False
        if pending_union is not None and isinstance(item, str) and item in pending_union:
            model = pending_union[item]
            pending_union = None
            continue
        pending_union = None
        path.append(item)
        if model is None or not isinstance(item, str) or item not in model.model_fields:
            model = None
            continue
        field = model.model_fields[item]
        annotation: Any = field.annotation
        if annotation in (LR_FORMS, _LATENCY_FORMS, _BANDWIDTH_FORMS):
            lr_form, model = True, None
            continue
        if field.discriminator and isinstance(annotation, type):  # a one-member union collapses
            annotation = Union[annotation, None]  # noqa: UP007
        members = _union_members(annotation)
        if members:
            pending_union = members
            model = None
        else:
            model = _model_of(annotation)
    return tuple(path), model


def _parent_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    _, model = _resolve_loc(loc[:-1])
    return model


def _kinds_with(model: type[BaseModel], key: str) -> list[str]:
    """Other kinds of the union ``model`` belongs to that do have ``key``."""
    unions = (
        AlgorithmConfig,
        TopologyConfig,
        ComputeConfig,
        QuantizerConfig,
        ObjectiveConfig,
        DatasetConfig,
        PartitionConfig,
        LocalStepsConfig,
        LrScheduleConfig,
        HeterogeneityConfig,
    )
    for union in unions:
        members = _union_members(union) or {}
        if model in members.values():
            return [tag for tag, member in members.items() if key in member.model_fields]
    return []


def _format_errors(error: ValidationError, source: ConfigSource) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path, _ = _resolve_loc(loc)
        dotted = ".".join(str(p) for p in path) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            parent = _parent_model(loc)
            key = str(path[-1]) if path else ""
            message = f"unknown key '{key}'"
            if parent is not None:
                valid = sorted(k for k in parent.model_fields)
                elsewhere = _kinds_with(parent, key)
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
                if elsewhere:
                    message += f" (it applies to kind {' | '.join(elsewhere)})"
                elif close:
                    message += f" (did you mean '{close[0]}'?)"
                message += f"; valid keys: {', '.join(valid)}"
        elif item["type"] == "union_tag_invalid":
            tags = item.get("ctx", {}).get("expected_tags", "")
            found = item.get("ctx", {}).get("tag", "?")
            message = f"unknown kind '{found}'; valid kinds: {tags}"
            path = (*path, "kind")
            dotted = ".".join(str(p) for p in path)
        elif item["type"] == "union_tag_not_found":
            message = "missing 'kind'"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(f"{source.locate(path)}: {dotted}: {message}")
    return problems


def validate_data(data: Any, source: ConfigSource | None = None) -> RunConfig:
    """Validate plain data into a RunConfig, raising ConfigError with located messages."""
    source = source or ConfigSource("<config>")
    if not isinstance(data, dict):
        raise ConfigError([f"{source.path}: the config must be a mapping of sections"])
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    config._source = source
    return config


def load_yaml(path: str | Path) -> tuple[dict[str, Any], dict[tuple[str | int, ...], int]]:
    """Read a YAML file; return its data and the line of every key path."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError([f"{path}: is a directory, expected a YAML config file"])
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
        positions = _yaml_positions(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    if data is None:
        data = {}
    return data, positions


def section_model(data: dict[str, Any], parts: Sequence[str]) -> type[BaseModel] | None:
    """The pydantic model of the section at ``parts`` given the kinds written in ``data``."""
    model: type[BaseModel] | None = RunConfig
    node: Any = data
    for part in parts:
        if model is None or part not in model.model_fields or not isinstance(node, dict):
            return None
        node = node.get(part)
        annotation = model.model_fields[part].annotation
        members = _union_members(annotation)
        if members:
            kind = node.get("kind") if isinstance(node, dict) else None
            model = members.get(str(kind)) if kind is not None else None
        else:
            model = _model_of(annotation)
    return model


def drop_foreign_keys(
    data: dict[str, Any], kind_keys: Iterable[tuple[str, ...]], swept: set[tuple[str, ...]]
) -> list[str]:
    """After a swept or overridden ``kind``, drop the section's keys the new kind lacks.

    ``kind_keys`` are the paths of the changed ``kind`` keys; keys in ``swept`` are kept (a
    key set explicitly for the new kind that it lacks is still an error). Returns the
    dropped keys, dotted.
    """
    dropped = []
    for parts in kind_keys:
        section_path = parts[:-1]
        node: Any = data
        for part in section_path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        model = section_model(data, section_path)
        if model is None:
            continue
        for key in list(node):
            if key in model.model_fields or (*section_path, key) in swept:
                continue
            del node[key]
            dropped.append(".".join((*section_path, key)))
    return dropped


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str]
) -> tuple[set[tuple[str, ...]], list[str]]:
    """Apply ``--set`` overrides to ``data``; return the overridden key paths and the notes
    on keys dropped because an overridden ``kind`` lacks them (as sweeps drop them)."""
    overridden: set[tuple[str, ...]] = set()
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(data, parts, value)
        overridden.add(tuple(parts))
    notes = []
    for kind_key in sorted(p for p in overridden if p[-1] == "kind"):
        for key in drop_foreign_keys(data, [kind_key], overridden):
            section = ".".join(kind_key[:-1])
            kind = _get(data, list(kind_key))
            notes.append(
                f"--set {'.'.join(kind_key)}={kind}: dropped {key} "
                f"({section} kind {kind} has no such key)"
            )
    return overridden, notes


def _get(data: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def warn_dropped(note: str) -> None:
    """Tell the user (stderr) about a key an overridden kind made inapplicable."""
    print(f"note: {note}", file=sys.stderr)


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load and validate a YAML config, applying ``--set`` style overrides first.

    An overridden ``kind`` drops the section's keys the new kind lacks (with a note on
    stderr), so ``--set topology.kind=ring`` works on a ``random_regular`` file.
    """
    data, positions = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config must be a mapping of sections"])
    overridden, notes = apply_overrides(data, overrides or [])
    for note in notes:
        warn_dropped(note)
    return validate_data(data, ConfigSource(str(path), positions, overridden))


def config_to_yaml(config: RunConfig) -> str:
    """The resolved config as YAML text (loads back to an equal RunConfig)."""
    return yaml.safe_dump(config.resolved(), sort_keys=False)
