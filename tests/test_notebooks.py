"""Every notebook in notebooks/ executes top to bottom in quick mode (so none of them rots)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"swarmsgd.py", "topologies_and_heterogeneity.py"} <= names


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    notebook = jupytext.read(path)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first.source.startswith("QUICK = True"), "the first code cell sets QUICK = True"
    assert "parameters" in first.metadata.get("tags", [])
    monkeypatch.setenv("GOSSIPSIM_QUICK", "1")
    monkeypatch.setenv("GOSSIPSIM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the notebook shows its figures"
    assert list((tmp_path / "results" / "figures").rglob("*.png"))
