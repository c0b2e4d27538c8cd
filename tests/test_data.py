"""Tests of dataset loading (synthetic, bundled, LIBSVM) and partitioning over nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gossipsim.data import (
    DataError,
    Dataset,
    load_dataset,
    partition,
    pseudo_labels,
    read_libsvm,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- synthetic


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_synthetic_shapes_dtypes_and_determinism(task):
    kw = {"n_samples": 400, "n_features": 7, "n_classes": 4, "test_fraction": 0.25}
    a = load_dataset("synthetic", task, rng(1), **kw)
    b = load_dataset("synthetic", task, rng(1), **kw)
    c = load_dataset("synthetic", task, rng(2), **kw)
    assert isinstance(a, Dataset) and a.task == task and a.name == f"synthetic_{task}"
    assert a.X_train.shape == (300, 7) and a.X_test.shape == (100, 7)
    assert a.X_train.dtype == np.float64 and a.X_test.dtype == np.float64
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X_train, c.X_train)
    if task == "regression":
        assert a.n_classes is None and a.y_train.dtype == np.float64
    else:
        k = 2 if task == "binary" else 4
        assert a.n_classes == k and a.y_train.dtype == np.int64
        assert set(np.unique(a.y_train)) == set(range(k))
    assert not a.X_train.flags.writeable


def test_synthetic_classification_is_learnable_but_not_trivial():
    from sklearn.linear_model import LogisticRegression

    for task in ("binary", "multiclass"):
        ds = load_dataset("synthetic", task, rng(3), n_samples=2000)
        score = LogisticRegression(max_iter=500).fit(ds.X_train, ds.y_train)
        acc = score.score(ds.X_test, ds.y_test)
        assert 0.6 < acc < 0.97, (task, acc)


def test_synthetic_regression_is_linear_plus_noise():
    ds = load_dataset("synthetic", "regression", rng(4), n_samples=3000, noise=0.1)
    A = np.hstack([ds.X_train, np.ones((ds.n_train, 1))])
    resid = ds.y_train - A @ np.linalg.lstsq(A, ds.y_train, rcond=None)[0]
    assert resid.std() == pytest.approx(0.1, rel=0.1)


def test_standardization_uses_train_statistics():
    kw = {"n_samples": 200, "n_features": 5}
    raw = load_dataset("synthetic", "regression", rng(5), standardize=False, **kw)
    std = load_dataset("synthetic", "regression", rng(5), standardize=True, **kw)
    mean, sd = raw.X_train.mean(0), raw.X_train.std(0)
    np.testing.assert_allclose(std.X_train, (raw.X_train - mean) / sd, atol=1e-12)
    np.testing.assert_allclose(std.X_test, (raw.X_test - mean) / sd, atol=1e-12)
    np.testing.assert_allclose(std.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(std.X_train.std(0), 1, atol=1e-12)
    assert not np.allclose(std.X_test.mean(0), 0, atol=1e-6)


def test_test_fraction_zero_keeps_everything_for_training():
    ds = load_dataset("synthetic", "binary", rng(), n_samples=50, test_fraction=0.0)
    assert ds.n_train == 50 and ds.X_test.shape == (0, 20) and ds.y_test.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "mnist"}, "digits"),
        ({"task": "ranking"}, "multiclass"),
        ({"n_samples": 1}, "n_samples"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"noise": -1.0}, "noise"),
        ({"noise": 1.5}, "noise"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_features": 0}, "n_features"),
        ({"kind": "libsvm"}, "path"),
    ],
)
def test_invalid_parameters(kwargs, match):
    args = {"kind": "synthetic", "task": "multiclass", "n_samples": 20} | kwargs
    with pytest.raises(ValueError, match=match):
        load_dataset(args.pop("kind"), args.pop("task"), rng(), **args)


# ---------------------------------------------------------------- bundled datasets


def test_digits_and_breast_cancer():
    digits = load_dataset("digits", "multiclass", rng())
    assert digits.n_train + digits.X_test.shape[0] == 1797
    assert digits.X_train.shape[1] == 64 and digits.n_classes == 10
    assert digits.X_test.shape[0] == round(0.2 * 1797)
    assert np.all(np.isfinite(digits.X_train))  # constant pixels are guarded
    cancer = load_dataset("breast_cancer", "binary", rng())
    assert cancer.n_train + cancer.X_test.shape[0] == 569
    assert cancer.X_train.shape[1] == 30 and cancer.n_classes == 2
    assert set(np.unique(cancer.y_train)) == {0, 1}


def test_bundled_datasets_reject_wrong_tasks():
    with pytest.raises(ValueError, match="softmax"):
        load_dataset("digits", "binary", rng())
    with pytest.raises(ValueError):
        load_dataset("digits", "regression", rng())
    with pytest.raises(ValueError):
        load_dataset("breast_cancer", "regression", rng())


# ---------------------------------------------------------------- libsvm

LIBSVM_TEXT = """# a comment line
+1 1:0.5 3:-2   # trailing comment
-1 2:1.5

-1 3:4 1:1 qid:7
+1 1:2e-1
"""


def _write(tmp_path: Path, text: str, name: str = "data.svm") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_read_libsvm_parses_sparse_rows(tmp_path):
    X, y = read_libsvm(_write(tmp_path, LIBSVM_TEXT))
    np.testing.assert_array_equal(X, [[0.5, 0, -2], [0, 1.5, 0], [1, 0, 4], [0.2, 0, 0]])
    np.testing.assert_array_equal(y, [1, -1, -1, 1])


def test_read_libsvm_fixture_file():
    X, y = read_libsvm(Path(__file__).parent / "data" / "tiny.libsvm")
    assert X.shape == (8, 4) and set(y) == {-1.0, 1.0}


@pytest.mark.parametrize(
    ("task", "labels", "expected"),
    [
        ("binary", ["-1", "+1", "-1", "1"], [0, 1, 0, 1]),
        ("binary", ["0", "1", "1", "1"], [0, 1, 1, 1]),
        ("multiclass", ["3", "7", "5", "3"], [0, 2, 1, 0]),
        ("regression", ["0.5", "-2", "3.25", "1"], [0.5, -2, 3.25, 1]),
    ],
)
def test_libsvm_label_mapping(tmp_path, task, labels, expected):
    text = "".join(f"{lab} 1:{i} 2:{i * i}\n" for i, lab in enumerate(labels))
    path = _write(tmp_path, text)
    ds = load_dataset("libsvm", task, rng(), path=path, test_fraction=0.0, standardize=False)
    assert ds.name == "libsvm:data.svm"
    order = np.argsort(ds.X_train[:, 0])  # feature 1 holds the original row number
    np.testing.assert_array_equal(ds.y_train[order], expected)
    assert ds.y_train.dtype == (np.float64 if task == "regression" else np.int64)


def test_libsvm_binary_needs_two_labels(tmp_path):
    path = _write(tmp_path, "1 1:1\n2 1:2\n3 1:3\n")
    with pytest.raises(DataError, match="2 distinct labels"):
        load_dataset("libsvm", "binary", rng(), path=path)


@pytest.mark.parametrize(
    "bad_line",
    ["1 a:2", "x 1:2", "1 0:1", "1 2:1 2:3", "1 3", "1 1:nan", "1 1:"],
)
def test_libsvm_bad_line_reports_path_and_line(tmp_path, bad_line):
    path = _write(tmp_path, f"# header\n1 1:1\n{bad_line}\n-1 2:1\n")
    with pytest.raises(DataError, match=f"^{path}:3: ") as info:
        read_libsvm(path)
    assert isinstance(info.value, ValueError)


def test_libsvm_missing_file(tmp_path):
    missing = str(tmp_path / "nope.svm")
    with pytest.raises(DataError, match="nope.svm"):
        load_dataset("libsvm", "binary", rng(), path=missing)


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_libsvm_empty_file(tmp_path, text):
    with pytest.raises(DataError, match="empty"):
        read_libsvm(_write(tmp_path, text))


def test_libsvm_constant_feature_standardizes_finite(tmp_path):
    path = _write(tmp_path, "".join(f"{i % 2} 1:{i} 2:5\n" for i in range(10)))
    ds = load_dataset("libsvm", "binary", rng(), path=path)
    assert np.all(np.isfinite(ds.X_train)) and np.all(ds.X_train[:, 1] == 0)


# ---------------------------------------------------------------- partition

KINDS = ["iid", "dirichlet", "shards"]


def _labels(n: int = 600, n_classes: int = 10, seed: int = 0) -> np.ndarray:
    return rng(seed).permutation(np.arange(n) % n_classes)


def _check_partition(parts: list[np.ndarray], n: int, n_nodes: int) -> None:
    assert len(parts) == n_nodes
    assert all(p.dtype == np.int64 and p.size >= 1 for p in parts)
    joined = np.concatenate(parts)
    assert joined.size == n
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "n_nodes"), [(600, 1), (600, 7), (600, 50), (61, 60), (40, 40)])
def test_partition_is_disjoint_covering_and_nonempty(kind, n, n_nodes):
    y = _labels(n)
    parts = partition(y, n_nodes, kind, rng(1), alpha=0.05, classes_per_node=2)
    _check_partition(parts, n, n_nodes)


@pytest.mark.parametrize("kind", KINDS)
def test_partition_is_deterministic(kind):
    y = _labels()
    a = partition(y, 8, kind, rng(9))
    b = partition(y, 8, kind, rng(9))
    c = partition(y, 8, kind, rng(10))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_iid_sizes_are_near_equal():
    sizes = [p.size for p in partition(_labels(603), 10, "iid", rng())]
    assert max(sizes) - min(sizes) <= 1


def _mean_label_entropy(y: np.ndarray, parts: list[np.ndarray]) -> float:
    ent = []
    for p in parts:
        q = np.bincount(y[p], minlength=int(y.max()) + 1) / p.size
        q = q[q > 0]
        ent.append(-(q * np.log(q)).sum())
    return float(np.mean(ent))


def test_dirichlet_small_alpha_is_skewed():
    y = _labels(2000)
    iid = _mean_label_entropy(y, partition(y, 10, "iid", rng(2)))
    skewed = _mean_label_entropy(y, partition(y, 10, "dirichlet", rng(2), alpha=0.1))
    mild = _mean_label_entropy(y, partition(y, 10, "dirichlet", rng(2), alpha=100.0))
    assert skewed < 0.6 * iid
    assert mild > 0.9 * iid


@pytest.mark.parametrize("classes_per_node", [1, 2, 3])
def test_shards_limit_classes_per_node(classes_per_node):
    y = _labels(600, n_classes=10)  # 60 per class; 20·cpn shards of 30/cpn samples each
    parts = partition(y, 20, "shards", rng(3), classes_per_node=classes_per_node)
    _check_partition(parts, 600, 20)
    assert all(np.unique(y[p]).size <= classes_per_node for p in parts)
    assert all(p.size == 30 for p in parts)


def test_regression_partition_uses_quantile_bins():
    y = rng(4).standard_normal(1000)
    bins = pseudo_labels(y, "regression")
    np.testing.assert_array_equal(np.bincount(bins), [100] * 10)
    for kind in KINDS:
        _check_partition(partition(y, 12, kind, rng(5), task="regression"), 1000, 12)
    parts = partition(y, 10, "shards", rng(5), task="regression", classes_per_node=1)
    assert all(np.ptp(y[p]) < 0.5 * np.ptp(y) for p in parts)  # contiguous value ranges


def test_partition_errors():
    y = _labels(30)
    with pytest.raises(ValueError, match="training set has 30 samples but topology has 31 nodes"):
        partition(y, 31, "iid", rng())
    with pytest.raises(ValueError, match="iid, dirichlet, shards"):
        partition(y, 3, "random", rng())
    with pytest.raises(ValueError, match="alpha"):
        partition(y, 3, "dirichlet", rng(), alpha=0.0)
    with pytest.raises(ValueError, match="classes_per_node"):
        partition(y, 3, "shards", rng(), classes_per_node=0)
    with pytest.raises(ValueError, match="n_nodes"):
        partition(y, 0, "iid", rng())
