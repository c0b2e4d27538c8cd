"""Small wording helpers shared by the command line, sweeps and reports."""

from __future__ import annotations


def count_of(count: int, noun: str, plural: str | None = None) -> str:
    """``"1 run"``, ``"3 runs"``: a count with its noun in the right number."""
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"
