"""The immutable :class:`Dataset` container and the :class:`DataError` exception."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("regression", "binary", "multiclass")


class DataError(ValueError):
    """A data file is missing, empty or malformed."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test arrays of one dataset (read-only after construction).

    ``y`` is float64 for ``regression`` and int64 labels ``0..n_classes-1`` otherwise.
    """

    X_train: np.ndarray  # (N, f) float64
    y_train: np.ndarray
    X_test: np.ndarray  # (N_test, f) float64, N_test may be 0
    y_test: np.ndarray
    task: str  # "regression" | "binary" | "multiclass"
    n_classes: int | None
    name: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        f = self.X_train.shape[1] if self.X_train.ndim == 2 else -1
        for part, X, y in (
            ("train", self.X_train, self.y_train),
            ("test", self.X_test, self.y_test),
        ):
            if X.ndim != 2 or X.shape[1] != f or X.dtype != np.float64:
                raise ValueError(f"X_{part} must be float64 (n, {f}), got {X.dtype} {X.shape}")
            if y.shape != (X.shape[0],):
                raise ValueError(f"y_{part} must have shape ({X.shape[0]},), got {y.shape}")
            want = np.float64 if self.task == "regression" else np.int64
            if y.dtype != want:
                raise ValueError(f"y_{part} must be {np.dtype(want)} for {self.task}")
        if self.X_train.shape[0] < 1:
            raise ValueError("the training set is empty")
        if (self.task == "regression") != (self.n_classes is None):
            raise ValueError("n_classes must be None exactly for regression")
        for a in (self.X_train, self.y_train, self.X_test, self.y_test):
            a.setflags(write=False)

    @property
    def n_features(self) -> int:
        """Number of features ``f``."""
        return int(self.X_train.shape[1])

    @property
    def n_train(self) -> int:
        """Number of training samples ``N``."""
        return int(self.X_train.shape[0])
