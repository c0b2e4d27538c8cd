"""Compiled kernels work without a writable cache and under NUMBA_DISABLE_JIT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

import gossipsim.engine.jit

ROOT = Path(__file__).resolve().parent.parent


def test_jit_compiles_without_cache_when_numba_has_no_cache_location(monkeypatch):
    calls = []

    def njit(**options):
        calls.append(options)
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return numba.njit(**options)

    monkeypatch.setattr(gossipsim.engine.jit, "njit", njit)

    @gossipsim.engine.jit.jit(nogil=True)
    def add(a, b):
        return a + b

    assert add(2, 3) == 5
    assert calls == [{"cache": True, "nogil": True}, {"cache": False, "nogil": True}]


def test_jit_does_not_hide_other_errors(monkeypatch):
    def njit(**options):
        raise RuntimeError("something else")

    monkeypatch.setattr(gossipsim.engine.jit, "njit", njit)
    with pytest.raises(RuntimeError, match="something else"):
        gossipsim.engine.jit.jit()(lambda: 1)


RUN = """
import json, sys
sys.path.insert(0, {root!r})
from tests.conftest import make_config
from gossipsim.experiment.runner import prepare, simulate
config = make_config(**{{"engine": {{"executor": "batched"}}, "stop": {{"interactions": 300}}}})
outcome, sim = simulate(prepare(config))
print(json.dumps([outcome.rows[-1]["loss"], sim.interactions, type(sim.env.kernel).__name__]))
"""


def _run(disable: bool) -> list:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1" if disable else "0"}
    out = subprocess.run(
        [sys.executable, "-c", RUN.format(root=str(ROOT))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_disable_jit_runs_the_same_kernels_in_python():
    """NUMBA_DISABLE_JIT=1 (for debuggers and coverage) runs the same code, same numbers."""
    compiled, python = _run(False), _run(True)
    assert compiled[1:] == python[1:] == [300, "ProgramKernel"]
    assert python[0] == pytest.approx(compiled[0], rel=1e-12)
