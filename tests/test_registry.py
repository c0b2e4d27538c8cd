"""The registry is the only place that knows an algorithm by name: no special cases elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from gossipsim.algorithms import REGISTRY, node_count
from gossipsim.experiment.config import validate_data

PACKAGE = Path(__file__).resolve().parent.parent / "gossipsim"
# Where naming an algorithm is its definition or a default, not a special case.
ALLOWED = {
    "cli.py": "`gossipsim init`'s default algorithm",
    "experiment/catalog.py": "the starter config's default algorithm",
}
# Packages that are implementations of named algorithms, as algorithms/ is: real/ runs
# SwarmSGD and D-PSGD as OS processes (its own code per algorithm, not a special case of
# the simulator's).
IMPLEMENTATIONS = ("algorithms/", "real/")


def test_no_module_outside_the_algorithms_special_cases_an_algorithm_by_name():
    kinds = "|".join(re.escape(kind) for kind in REGISTRY)
    pattern = re.compile(rf"""["']({kinds})["']""")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(IMPLEMENTATIONS) or relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_machines_of_a_run_come_from_its_registry_entry():
    base = {
        "name": "n",
        "objective": {"kind": "least_squares", "dataset": {"kind": "synthetic"}},
        "topology": {"kind": "ring", "n": 12},
        "stop": {"time": 1.0},
    }
    gossip = validate_data({**base, "algorithm": {"kind": "swarmsgd"}})
    assert node_count(gossip) == 12
    coded = validate_data(
        {**base, "algorithm": {"kind": "gradient_coding", "workers": 7, "chunks": 7}}
    )
    assert node_count(coded) == 7


def test_config_models_live_beside_their_algorithms_and_the_union_is_the_registry():
    import typing

    from gossipsim.experiment.config import AlgorithmConfig

    union, *_ = typing.get_args(AlgorithmConfig)
    assert typing.get_args(union) == tuple(entry.config for entry in REGISTRY.values())
    for entry in REGISTRY.values():
        assert entry.config.__module__.startswith("gossipsim.algorithms."), entry.kind
