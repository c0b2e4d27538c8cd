"""``load_dataset``: synthetic, scikit-learn bundled and LIBSVM datasets, split and standardised."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gossipsim.data.dataset import TASKS, DataError, Dataset
from gossipsim.data.libsvm import read_libsvm
from gossipsim.data.synthetic import synthetic_binary, synthetic_multiclass, synthetic_regression

DATASET_KINDS = ("synthetic", "digits", "breast_cancer", "libsvm")


def _synthetic(
    task: str, rng: np.random.Generator, n: int, f: int, n_classes: int, noise: float
) -> tuple[np.ndarray, np.ndarray, int | None]:
    if f < 1:
        raise ValueError(f"n_features must be >= 1, got {f}")
    if task == "regression":
        X, y = synthetic_regression(rng, n, f, noise)
        return X, y, None
    if noise > 1.0:
        raise ValueError(f"noise is a label-flip probability for {task}: need <= 1, got {noise}")
    if task == "binary":
        X, y = synthetic_binary(rng, n, f, noise)
        return X, y, 2
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    X, y = synthetic_multiclass(rng, n, f, n_classes, noise)
    return X, y, n_classes


def _sklearn(kind: str, task: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    from sklearn import datasets

    loader: Callable[..., tuple[np.ndarray, np.ndarray]]
    if kind == "digits":
        if task != "multiclass":
            raise ValueError(
                f"digits has 10 classes: task must be 'multiclass' (use the softmax or mlp "
                f"objective), got {task!r}"
            )
        loader = datasets.load_digits
    else:
        if task == "regression":
            raise ValueError("breast_cancer is a classification dataset: task must be 'binary'")
        loader = datasets.load_breast_cancer
    X, y = loader(return_X_y=True)
    return (
        np.asarray(X, dtype=np.float64),
        np.asarray(y, dtype=np.int64),
        10 if kind == "digits" else 2,
    )


def _libsvm(task: str, path: str | None) -> tuple[np.ndarray, np.ndarray, int | None]:
    if path is None:
        raise ValueError("path is required for kind 'libsvm'")
    X, raw = read_libsvm(path)
    if task == "regression":
        return X, raw, None
    classes, y = np.unique(raw, return_inverse=True)
    if task == "binary" and classes.size != 2:
        raise DataError(
            f"{path}: binary task needs exactly 2 distinct labels, found {classes.size}: "
            f"{classes[:10].tolist()}"
        )
    if classes.size < 2:
        raise DataError(f"{path}: multiclass task needs >= 2 distinct labels, found 1")
    return X, y.astype(np.int64), int(classes.size)


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with ``rng`` and hold out ``round(test_fraction·n)`` samples (at least 1 if the
    fraction is positive, keeping at least 1 for training)."""
    n = X.shape[0]
    n_test = int(round(test_fraction * n))
    if test_fraction > 0:
        n_test = min(max(n_test, 1), n - 1)
    perm = rng.permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return X[train], y[train], X[test], y[test]


def standardize_features(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score both sets with the training mean/std (constant features get std 1).

    Works in place on float arrays (the split's own copies; the same numbers as
    ``(X - X.mean(0)) / X.std(0)``, without its temporaries).
    """
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    mean = X_train.mean(axis=0)
    X_train -= mean
    X_test -= mean
    # numpy's std: the root of the mean squared deviation from the mean, as computed here
    # (the column sums of squares, without a squared copy of the set).
    std = np.sqrt(np.einsum("ij,ij->j", X_train, X_train) / max(X_train.shape[0], 1))
    std[std < 1e-12] = 1.0
    X_train /= std
    X_test /= std
    return X_train, X_test


def load_dataset(
    kind: str,
    task: str,
    rng: np.random.Generator,
    *,
    n_samples: int = 10000,
    n_features: int = 20,
    n_classes: int | None = 10,
    noise: float = 0.1,
    path: str | None = None,
    test_fraction: float = 0.2,
    standardize: bool = True,
) -> Dataset:
    """Load dataset ``kind`` for ``task``, split train/test with ``rng``, optionally standardise.

    ``n_samples``, ``n_features``, ``n_classes`` and ``noise`` only apply to ``synthetic``
    (``noise``: target noise std for regression, label-flip probability otherwise).
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(DATASET_KINDS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if kind == "synthetic":
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite number >= 0, got {noise}")
        classes = 10 if n_classes is None else int(n_classes)  # None: not a multiclass task
        X, y, c = _synthetic(task, rng, int(n_samples), int(n_features), classes, noise)
        name = f"synthetic_{task}"
    elif kind == "libsvm":
        X, y, c = _libsvm(task, path)
        name = f"libsvm:{Path(str(path)).name}"
    else:
        X, y, c = _sklearn(kind, task)
        name = kind
    if X.shape[0] < 2:
        raise DataError(f"{name}: need at least 2 samples to split, got {X.shape[0]}")
    X_tr, y_tr, X_te, y_te = train_test_split(X, y, test_fraction, rng)
    if standardize:
        X_tr, X_te = standardize_features(X_tr, X_te)
    return Dataset(
        X_train=np.ascontiguousarray(X_tr, dtype=np.float64),
        y_train=y_tr,
        X_test=np.ascontiguousarray(X_te, dtype=np.float64),
        y_test=y_te,
        task=task,
        n_classes=c,
        name=name,
    )
