"""The set-up and notebook tools print nothing alarming (warnings a user would have to judge)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")


def test_rendering_a_notebook_prints_no_warnings(tmp_path):
    source = tmp_path / "tiny.py"
    source.write_text(
        textwrap.dedent(
            """\
            # %%
            QUICK = True
            print("rendered", 6 * 7)
            """
        )
    )
    target = tmp_path / "build" / "tiny.ipynb"
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[3]);"
        "from tools.render_notebooks import render; render(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(target), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    noise = (done.stdout + done.stderr).lower()
    for word in ("warn", "untrusted", "encrypt", "traceback"):
        assert word not in noise, done.stdout + done.stderr
    assert "rendered 42" in target.read_text()


@pytest.mark.slow
def test_installing_prints_no_editable_install_warning(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    done = subprocess.run(["make", "venv"], cwd=clone, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Please be careful with folders" not in done.stdout + done.stderr
    assert "#" not in done.stdout  # no recipe comments echoed
