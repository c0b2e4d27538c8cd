"""What a config may contain, derived from the pydantic models (never a hand-kept table).

Used by ``gossipsim list``, ``gossipsim init``, ``gossipsim schema`` and the generated
``docs/config-reference.md``. A new kind added to a union in
:mod:`gossipsim.experiment.config` (or an algorithm added to
:data:`gossipsim.algorithms.ALGORITHMS`) appears here by itself.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, Discriminator, Tag
from pydantic_core import PydanticUndefined

from gossipsim.experiment import config as cfg

#: ``gossipsim list`` categories → the union annotation whose members are the kinds.
CATEGORIES: dict[str, Any] = {
    "algorithms": cfg.AlgorithmConfig,
    "topologies": cfg.TopologyConfig,
    "compute": cfg.ComputeConfig,
    "quantizers": cfg.QuantizerConfig,
    "objectives": cfg.ObjectiveConfig,
    "datasets": cfg.DatasetConfig,
    "partitions": cfg.PartitionConfig,
    "local_steps": cfg.LocalStepsConfig,
    "heterogeneity": cfg.HeterogeneityConfig,
    "lr_schedules": cfg.LrScheduleConfig,
}


@dataclass
class Kind:
    """One ``kind`` of a config section: its model, one-line description and keys."""

    name: str
    model: type[BaseModel]

    @property
    def description(self) -> str:
        return describe(self.model)

    @property
    def keys(self) -> dict[str, Any]:
        """Key → default (``...`` when required), ``kind`` left out."""
        return {k: shown_default(f) for k, f in self.model.model_fields.items() if k != "kind"}


def describe(model: type[BaseModel]) -> str:
    """First sentence-line of a model's docstring (its own, not inherited)."""
    doc = model.__dict__.get("__doc__") or ""
    lines = [line.strip() for line in doc.strip().split("\n\n")[0].splitlines()]
    return " ".join(line for line in lines if line)


def shown_default(field: Any) -> Any:
    """The default as listings show it: a field may describe it (``shown_default``)."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra["shown_default"] if "shown_default" in extra else default_of(field)


def default_of(field: Any) -> Any:
    """A field's default as plain data (``...`` if the field is required)."""
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return ...
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def kinds(category: str) -> list[Kind]:
    """The kinds of a ``gossipsim list`` category, in the order the config declares them."""
    members = cfg._union_members(CATEGORIES[category]) or {}
    found = [Kind(name, model) for name, model in members.items()]
    if category == "algorithms":
        from gossipsim.algorithms import ALGORITHMS

        order = list(ALGORITHMS)
        found = [k for k in found if k.name in ALGORITHMS]
        found.sort(key=lambda k: order.index(k.name))
    return found


def metrics() -> dict[str, str]:
    """Metric columns of ``metrics.parquet`` with a description (from the plot labels)."""
    from gossipsim.analysis.plots import LABELS

    return {k: v for k, v in LABELS.items() if k != "iteration"}


def _text(value: Any) -> str:
    if value is ...:
        return "(required)"
    return json.dumps(value) if not isinstance(value, str) else value


def list_lines(category: str) -> list[str]:
    """``gossipsim list CATEGORY``: one line per kind with its description and keys."""
    if category == "metrics":
        width = max(len(k) for k in metrics())
        return [f"{k.ljust(width)}  {v}" for k, v in metrics().items()]
    found = kinds(category)
    width = max(len(k.name) for k in found)
    lines = []
    for kind in found:
        lines.append(f"{kind.name.ljust(width)}  {kind.description}")
        keys = ", ".join(f"{k}={_text(v)}" for k, v in kind.keys.items())
        if keys:
            lines.append(f"{' ' * width}  keys: {keys}")
    return lines


# --------------------------------------------------------------------------------------------
# gossipsim init


def _flow(value: Any) -> str:
    """A value as one line of YAML (sections in flow style, ``kind`` first)."""
    text = yaml.safe_dump(_kind_first(value), default_flow_style=True, sort_keys=False, width=1000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _kind_first(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = {"kind": value["kind"]} if "kind" in value else {}
        ordered.update({k: _kind_first(v) for k, v in value.items() if k != "kind"})
        return ordered
    return value


def starter_config(algorithm: str = "swarmsgd", name: str | None = None) -> str:
    """A commented, valid starting config for ``algorithm`` (every key at its default)."""
    members = cfg._union_members(cfg.AlgorithmConfig) or {}
    if algorithm not in members:
        valid = ", ".join(k.name for k in kinds("algorithms"))
        raise ValueError(f"init: unknown algorithm '{algorithm}'; valid: {valid}")
    model = members[algorithm]
    algo = {"kind": algorithm, **{k: v for k, v in Kind(algorithm, model).keys.items()}}
    config = cfg.validate_data(
        {
            "name": name or f"my-{algorithm}".replace("_", "-"),
            "algorithm": algo,
            "stop": {"time": 100.0},
        }
    )
    resolved = config.resolved()
    lines = [
        f"# gossipsim starting config: {algorithm} — {describe(model)}",
        "# Every key is shown at its default. Check it: gossipsim validate THIS_FILE",
        "# Kinds and their keys: gossipsim list algorithms|topologies|compute|objectives|...",
        "",
    ]
    fields = cfg.RunConfig.model_fields
    for section, value in resolved.items():
        field = fields[section]
        comment = field.description or _section_doc(config, section)
        if comment:
            lines.append(f"# {comment}")
        if isinstance(value, dict):
            lines.append(f"{section}:")
            sub = getattr(config, section)
            for key, item in _kind_first(value).items():
                note = _key_note(sub, key)
                line = f"  {key}: {_flow(item)}"
                lines.append(f"{line.ljust(40)}  # {note}" if note else line)
        else:
            lines.append(f"{section}: {_flow(value)}")
        lines.append("")
    return "\n".join(lines)


def _section_doc(config: cfg.RunConfig, section: str) -> str:
    value = getattr(config, section)
    if isinstance(value, BaseModel):
        return describe(type(value))
    return {
        "name": "names the results directory: results/<name>/<run-id>/",
        "seed": "every random draw of the run derives from this seed",
    }.get(section, "")


def _key_note(section: BaseModel, key: str) -> str:
    """For a ``kind`` key: the other kinds of that union; for a sub-section: its docstring."""
    field = type(section).model_fields.get(key)
    if field is None:
        return ""
    if key == "kind":
        for union in CATEGORIES.values():
            members: dict[str, type[BaseModel]] = cfg._union_members(union) or {}
            if type(section) in members.values():
                return " | ".join(members)
        return ""
    field_members = cfg._union_members(field.annotation)
    if field_members:
        return "kind: " + " | ".join(field_members)
    value = getattr(section, key)
    if isinstance(value, BaseModel):
        return describe(type(value))
    return ""


# --------------------------------------------------------------------------------------------
# gossipsim schema and the config reference


def json_schema() -> dict[str, Any]:
    """JSON Schema of a config file (for editors: completion and checks of YAML)."""
    schema = cfg.RunConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gossipsim config"
    return schema


def _type_text(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    for prefix in ("Annotated[", "Literal["):
        text = text.replace(prefix, "" if prefix == "Annotated[" else "one of [")
    return text if len(text) < 60 else text[:57] + "..."


def _model_rows(model: type[BaseModel]) -> list[str]:
    rows = []
    for key, field in model.model_fields.items():
        default = shown_default(field)
        args = typing.get_args(field.annotation)
        kind_values = (
            args if key == "kind" and typing.get_origin(field.annotation) is typing.Literal else ()
        )
        if kind_values:
            shown = " \\| ".join(map(str, kind_values))
        elif isinstance(default, dict):
            shown = "a section (below)"
        else:
            shown = _text(default).replace("|", "\\|")
        metadata = _metadata(field)
        parts = [_constraint(m) for m in metadata]
        constraints = ", ".join(dict.fromkeys(q for p in parts for q in p.split(", ") if q))
        if any(isinstance(m, Tag) and m.tag == "schedule" for m in metadata):
            constraints += "; or a schedule section (see lr_schedules)"
        if any(isinstance(m, Tag) and m.tag == "distribution" for m in metadata):
            constraints += "; or a per-link distribution {kind: constant \\| lognormal \\| uniform}"
        choices = [str(a) for a in typing.get_args(field.annotation) if isinstance(a, str | int)]
        if key != "kind" and typing.get_origin(field.annotation) is typing.Literal:
            constraints = "one of " + " \\| ".join(choices)
        rows.append(f"| `{key}` | {shown} | {constraints} |")
    return rows


def _metadata(field: Any) -> list[Any]:
    """Constraints of a field, also those inside ``Annotated[...] | None``."""
    found = list(field.metadata)
    for arg in typing.get_args(field.annotation):
        found += list(getattr(arg, "__metadata__", ()))
        for inner in typing.get_args(arg):
            found += [m for m in getattr(inner, "metadata", ())]
    return found


def _constraint(item: Any) -> str:
    if isinstance(item, Discriminator | Tag):  # how a union picks its member, not a limit
        return ""
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for attribute, symbol in symbols.items():
        value = getattr(item, attribute, None)
        if value is not None and type(item).__name__.lower() == attribute:
            return f"{symbol} {value}"
    if getattr(item, "max_length", None) is not None:
        return f"at most {item.max_length} characters"
    if getattr(item, "pattern", None):
        return f"matches `{item.pattern}`"
    if hasattr(item, "metadata"):  # a FieldInfo inside an Annotated member
        return ", ".join(_constraint(m) for m in item.metadata)
    if getattr(item, "allow_inf_nan", None) is False:
        return "finite"
    return str(item)


def config_reference() -> str:
    """Markdown reference of every config section and kind, generated from the models."""
    out = [
        "# Config reference",
        "",
        "Generated from the pydantic models by `gossipsim schema --reference`; "
        "`tests/test_catalog.py` fails when it is out of date. "
        "`gossipsim schema` prints the JSON Schema for editors.",
        "",
        "## Top level",
        "",
        "| key | default | constraints |",
        "|---|---|---|",
        *_model_rows(cfg.RunConfig),
        "",
    ]
    plain: list[tuple[str, type[BaseModel]]] = [
        ("init", cfg.InitConfig),
        ("network", cfg.NetworkConfig),
        ("stop", cfg.StopConfig),
        ("record", cfg.RecordConfig),
        ("engine", cfg.EngineConfig),
        ("faults", cfg.FaultsConfig),
        ("compute.stragglers", cfg.StragglerConfig),
    ]
    for section, model in plain:
        out += [f"## `{section}`", "", describe(model), "", "| key | default | constraints |"]
        out += ["|---|---|---|", *_model_rows(model), ""]
    for category in CATEGORIES:
        out += [f"## {category}", ""]
        for kind in kinds(category):
            out += [f"### `kind: {kind.name}`", "", kind.description, ""]
            out += [
                "| key | default | constraints |",
                "|---|---|---|",
                *_model_rows(kind.model),
                "",
            ]
    out += ["## metrics (columns of metrics.parquet)", "", "| column | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in metrics().items()]
    return "\n".join(out) + "\n"
