"""The project's own docs: self-contained, and covering every registered algorithm.

* No tracked file refers to files outside the repository (notes kept beside a checkout, a
  shared folder): the docs must stand on their own.
* ``docs/algorithms.md`` has a section for every ``algorithm.kind`` of the registry (a
  heading naming the kind in backticks), so a new algorithm cannot go undocumented.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gossipsim.algorithms import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# References to files outside the repository. ``seeds/`` only as the start of a path (not
# "grid/zip/seeds/cases" or a word like "seeds/replicates" after a slash).
OUTSIDE = re.compile(
    r"\.\./shared"
    r"|/work/shared"
    r"|\bdesign\.md\b"
    r"|\bpapers\.md\b"
    r"|(?:^|[\s`'\"(\[<]|\.\./|\./)seeds/",
    re.MULTILINE,
)


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [name for name in listing.decode().split("\0") if name]


def outside_references(text: str) -> list[str]:
    """Each line of ``text`` that refers to a file outside the repository."""
    lines = [
        text[text.rfind("\n", 0, m.start()) + 1 : text.find("\n", m.end())].strip()
        for m in OUTSIDE.finditer(text)
    ]
    return list(dict.fromkeys(lines))  # a line matching twice is listed once


def test_the_pattern_tells_outside_references_from_ordinary_words():
    assert outside_references("see ../shared/papers.md")
    assert outside_references("notes in `seeds/`")
    assert outside_references("read /work/shared/x")
    assert outside_references("the design.md says")
    assert not outside_references("Expand grid/zip/seeds/cases; validate every run first")
    assert not outside_references("--seeds 3 replicates")
    assert not outside_references("a design decision; papers matter")


def test_no_tracked_file_refers_outside_the_repository():
    found = []
    for name in tracked_files():
        if name == THIS:
            continue  # the patterns themselves
        path = ROOT / name
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [f"{name}: {line}" for line in outside_references(text)]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


def test_every_algorithm_has_a_section_in_algorithms_md():
    text = (ROOT / "docs" / "algorithms.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    missing = [kind for kind in REGISTRY if not any(f"`{kind}`" in heading for heading in headings)]
    assert not missing, f"docs/algorithms.md has no heading for: {missing}"


@pytest.mark.parametrize(
    ("document", "link"),
    [("README.md", "docs/algorithms.md"), ("docs/architecture.md", "algorithms.md")],
)
def test_algorithms_md_is_linked(document, link):
    assert f"]({link}" in (ROOT / document).read_text()
