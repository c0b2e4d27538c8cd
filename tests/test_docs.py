"""The project's documents: self-contained, and covering every registered algorithm."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from gossipsim.algorithms import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
# Notes kept outside the repository that the project once pointed at; its own are in docs/.
OUTSIDE = re.compile(
    r"\.\./shared|/work/shared|shared/(?:design|papers|style|seeds)|\b(?:design|papers|style)\.md\b"
)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    suffixes = {".md", ".py", ".yaml", ".yml", ".toml", ".txt", ".cfg", ""}
    return [ROOT / name for name in listed if Path(name).suffix in suffixes]


def test_no_tracked_file_points_outside_the_repository():
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_registered_algorithm_has_a_section_in_the_algorithm_notes():
    text = (ROOT / "docs" / "algorithms.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    missing = [kind for kind in REGISTRY if not any(f"`{kind}`" in h for h in headings)]
    assert not missing, f"docs/algorithms.md has no section for {missing}"
