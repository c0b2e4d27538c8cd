"""A small, strict reader for LIBSVM/SVMlight text files (``label idx:val ...``, 1-based)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gossipsim.data.dataset import DataError


def _bad(path: Path, line_no: int, msg: str) -> DataError:
    return DataError(f"{path}:{line_no}: {msg}")


def read_libsvm(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``X (n, max index)`` float64 and raw float64 labels ``y (n,)`` from ``path``.

    ``#`` starts a comment; blank lines are skipped; ``qid:`` tokens are ignored; absent
    features are 0. Raises :class:`DataError` (``"{path}:{line_no}: ..."`` for bad lines).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read LIBSVM file ({exc})") from None

    labels: list[float] = []
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split("#", 1)[0].split()
        if not tokens:
            continue
        try:
            label = float(tokens[0])
        except ValueError:
            raise _bad(path, line_no, f"label {tokens[0]!r} is not a number") from None
        if not math.isfinite(label):
            raise _bad(path, line_no, f"label {tokens[0]!r} is not finite")
        seen: set[int] = set()
        for tok in tokens[1:]:
            key, sep, value = tok.partition(":")
            if not sep:
                raise _bad(path, line_no, f"expected 'index:value', got {tok!r}")
            if key == "qid":
                continue
            try:
                idx = int(key)
                val = float(value)
            except ValueError:
                raise _bad(path, line_no, f"expected 'index:value', got {tok!r}") from None
            if idx < 1:
                raise _bad(path, line_no, f"feature index must be >= 1 (1-based), got {idx}")
            if idx in seen:
                raise _bad(path, line_no, f"duplicate feature index {idx}")
            if not math.isfinite(val):
                raise _bad(path, line_no, f"value of feature {idx} is not finite")
            seen.add(idx)
            rows.append(len(labels))
            cols.append(idx - 1)
            vals.append(val)
        labels.append(label)

    if not labels:
        raise DataError(f"{path}: empty file (no samples)")
    if not cols:
        raise DataError(f"{path}: no features in any sample")
    X = np.zeros((len(labels), max(cols) + 1))
    X[np.asarray(rows), np.asarray(cols)] = vals
    return X, np.asarray(labels, dtype=np.float64)
