"""Conformance suite run over every registered objective, plus objective-specific checks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from gossipsim.objectives import (
    MLP,
    OBJECTIVES,
    LeastSquares,
    Objective,
    Softmax,
    make_objective,
    optimum_least_squares,
    register_objective,
)
from gossipsim.objectives.heads import SquaredHead
from gossipsim.objectives.network import DenseNet

N_FEATURES = 5
N_CLASSES = {"regression": None, "binary": 2, "multiclass": 3}
ARCHITECTURES = [([4], "relu"), ([4], "tanh"), ([4, 3], "relu"), ([3, 4], "tanh")]


def _cases() -> Iterator[object]:
    for kind, cls in OBJECTIVES.items():
        archs = ARCHITECTURES if cls.has_hidden_layers else [(None, "relu")]
        for hidden, activation in archs:
            for l2 in (0.0, 0.3):
                arch = "" if hidden is None else f"-{hidden}-{activation}"
                yield pytest.param(kind, hidden, activation, l2, id=f"{kind}{arch}-l2={l2}")


CASES = list(_cases())


def _build(kind: str, hidden: list[int] | None, activation: str, l2: float) -> Objective:
    n_classes = N_CLASSES[OBJECTIVES[kind].task]
    return make_objective(kind, N_FEATURES, n_classes, l2=l2, hidden=hidden, activation=activation)


def _targets(obj: Objective, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if obj.task == "regression":
        return rng.standard_normal(shape)
    return rng.integers(0, obj.n_classes or 2, size=shape)


def _problem(
    obj: Objective, seed: int = 0, n: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_FEATURES))
    y = _targets(obj, rng, (n,))
    w = obj.init_params(rng, 1.0) + 0.3 * rng.standard_normal(obj.dim)
    return w, X, y


@pytest.mark.parametrize(("kind", "hidden", "activation", "l2"), CASES)
class TestConformance:
    def test_gradient_matches_central_differences(self, kind, hidden, activation, l2):
        obj = _build(kind, hidden, activation, l2)
        w, X, y = _problem(obj)
        g = obj.grad(w, X, y)
        eps = 1e-6
        fd = np.empty(obj.dim)
        for i in range(obj.dim):
            e = np.zeros(obj.dim)
            e[i] = eps
            fd[i] = (obj.loss(w + e, X, y) - obj.loss(w - e, X, y)) / (2 * eps)
        rel = np.linalg.norm(g - fd) / max(np.linalg.norm(g), np.linalg.norm(fd), 1e-12)
        assert rel < 1e-6

    def test_shapes_and_dtypes(self, kind, hidden, activation, l2):
        obj = _build(kind, hidden, activation, l2)
        w, X, y = _problem(obj)
        assert obj.name == kind
        assert isinstance(obj.dim, int) and obj.dim == w.shape[0]
        loss = obj.loss(w, X, y)
        assert isinstance(loss, float) and np.isfinite(loss)
        g = obj.grad(w, X, y)
        assert g.shape == (obj.dim,) and g.dtype == np.float64
        w0 = obj.init_params(np.random.default_rng(1), 0.5)
        assert w0.shape == (obj.dim,) and w0.dtype == np.float64 and np.any(w0 != 0)
        with pytest.raises(ValueError):
            obj.grad(w[:-1], X, y)
        with pytest.raises(ValueError):
            obj.loss(w, X[:, :-1], y)

    def test_loss_and_grad_consistent(self, kind, hidden, activation, l2):
        obj = _build(kind, hidden, activation, l2)
        w, X, y = _problem(obj)
        loss, g = obj.loss_and_grad(w, X, y)
        assert loss == pytest.approx(obj.loss(w, X, y), rel=1e-14, abs=1e-14)
        np.testing.assert_allclose(g, obj.grad(w, X, y), rtol=1e-14, atol=1e-14)

    def test_deterministic(self, kind, hidden, activation, l2):
        a, b = _build(kind, hidden, activation, l2), _build(kind, hidden, activation, l2)
        np.testing.assert_array_equal(
            a.init_params(np.random.default_rng(5), 1.0),
            b.init_params(np.random.default_rng(5), 1.0),
        )
        w, X, y = _problem(a, seed=3)
        assert a.loss(w, X, y) == b.loss(w, X, y)
        np.testing.assert_array_equal(a.grad(w, X, y), b.grad(w, X, y))

    def test_grad_many_equals_rowwise_grad(self, kind, hidden, activation, l2):
        obj = _build(kind, hidden, activation, l2)
        rng = np.random.default_rng(11)
        k, b = 4, 6
        W = np.stack([obj.init_params(rng, 1.0) for _ in range(k)])
        W += 0.3 * rng.standard_normal(W.shape)
        Xb = rng.standard_normal((k, b, N_FEATURES))
        yb = _targets(obj, rng, (k, b))
        G = obj.grad_many(W, Xb, yb)
        assert G.shape == (k, obj.dim) and G.dtype == np.float64
        for r in range(k):
            np.testing.assert_allclose(G[r], obj.grad(W[r], Xb[r], yb[r]), rtol=0, atol=1e-12)
        losses = obj.loss_many(W, Xb, yb)
        expected = [obj.loss(W[r], Xb[r], yb[r]) for r in range(k)]
        np.testing.assert_allclose(losses, expected, rtol=1e-12, atol=1e-12)

    def test_huge_parameters_stay_finite_without_warnings(self, kind, hidden, activation, l2):
        obj = _build(kind, hidden, activation, l2)
        w, X, y = _problem(obj, seed=2)
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
            warnings.simplefilter("error")
            for scale in (1e2, 1e4):
                loss, g = obj.loss_and_grad(w * scale, X, y)
                assert np.isfinite(loss) and np.all(np.isfinite(g))
                W = np.stack([w * scale, -w * scale])
                G = obj.grad_many(W, np.stack([X, X]), np.stack([y, y]))
                assert np.all(np.isfinite(G))

    def test_accuracy(self, kind, hidden, activation, l2):
        obj = _build(kind, hidden, activation, l2)
        w, X, y = _problem(obj, n=40)
        if not obj.has_accuracy:
            with pytest.raises(ValueError):
                obj.accuracy(w, X, y)
            return
        acc = obj.accuracy(w, X, y)
        assert isinstance(acc, float) and 0.0 <= acc <= 1.0
        pred = obj.predict(w, X)
        assert pred.dtype == np.int64 and pred.shape == y.shape
        assert set(np.unique(pred)) <= set(range(obj.n_classes or 2))


def test_registry_covers_all_builtin_objectives():
    assert {"least_squares", "logistic", "softmax", "mlp"} <= set(OBJECTIVES)
    assert all(cls.name == kind for kind, cls in OBJECTIVES.items())


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match="least_squares.*logistic.*mlp.*softmax"):
        make_objective("svm", 3, 2)


@pytest.mark.parametrize(
    ("kind", "n_classes", "kwargs"),
    [
        ("logistic", 3, {}),
        ("softmax", None, {}),
        ("softmax", 1, {}),
        ("mlp", 3, {"hidden": []}),
        ("mlp", 3, {"hidden": [0]}),
        ("mlp", 3, {"activation": "sigmoid"}),
        ("least_squares", None, {"l2": -1.0}),
    ],
)
def test_invalid_specs(kind, n_classes, kwargs):
    with pytest.raises(ValueError):
        make_objective(kind, 4, n_classes, **kwargs)


def test_registered_objective_plugs_into_factory(monkeypatch):
    monkeypatch.setattr("gossipsim.objectives.registry.OBJECTIVES", dict(OBJECTIVES))
    from gossipsim.objectives import registry

    class Scaled(LeastSquares):
        name = "scaled_least_squares"

        def __init__(self, n_features: int, l2: float = 0.0) -> None:
            Objective.__init__(self, DenseNet([n_features, 1]), SquaredHead(), None, l2)

    register_objective(Scaled)
    obj = registry.make_objective("scaled_least_squares", 3, None)
    assert isinstance(obj, Scaled) and obj.dim == 4


def test_known_values_and_mean_convention():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    y_reg = rng.standard_normal(8)
    y_bin = np.array([0, 1] * 4)
    y_cls = rng.integers(0, 4, 8)
    assert make_objective("least_squares", 3, None).loss(np.zeros(4), X, y_reg) == pytest.approx(
        0.5 * np.mean(y_reg**2)
    )
    assert make_objective("logistic", 3, 2).loss(np.zeros(4), X, y_bin) == pytest.approx(np.log(2))
    assert make_objective("softmax", 3, 4).loss(np.zeros(16), X, y_cls) == pytest.approx(np.log(4))
    # the L2 penalty is (λ/2)·‖w‖² on every parameter
    w = rng.standard_normal(16)
    plain, reg = Softmax(3, 4), Softmax(3, 4, l2=0.7)
    assert reg.loss(w, X, y_cls) - plain.loss(w, X, y_cls) == pytest.approx(0.35 * w @ w)


def test_linear_layouts():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 3))
    y = rng.standard_normal(6)
    w = rng.standard_normal(4)
    resid = X @ w[:3] + w[3] - y
    assert LeastSquares(3).loss(w, X, y) == pytest.approx(0.5 * np.mean(resid**2))
    labels = rng.integers(0, 2, 6)
    p = 1 / (1 + np.exp(-(X @ w[:3] + w[3])))
    bce = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert make_objective("logistic", 3, 2).loss(w, X, labels) == pytest.approx(bce)
    Wfull = rng.standard_normal((4, 5))  # (f + 1, C), last row is the bias
    cls = rng.integers(0, 5, 6)
    logits = X @ Wfull[:3] + Wfull[3]
    ce = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(6), cls])
    assert Softmax(3, 5).loss(Wfull.ravel(), X, cls) == pytest.approx(ce)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_layout_matches_manual_forward(activation):
    rng = np.random.default_rng(2)
    f, h1, h2, c = 3, 4, 2, 3
    mlp = MLP(f, c, [h1, h2], activation)
    shapes = [(f, h1), (h1,), (h1, h2), (h2,), (h2, c), (c,)]
    assert mlp.dim == sum(int(np.prod(s)) for s in shapes)
    w = rng.standard_normal(mlp.dim)
    parts, offset = [], 0
    for s in shapes:
        size = int(np.prod(s))
        parts.append(w[offset : offset + size].reshape(s))
        offset += size
    act = (lambda z: np.maximum(z, 0)) if activation == "relu" else np.tanh
    X = rng.standard_normal((7, f))
    y = rng.integers(0, c, 7)
    a1 = act(X @ parts[0] + parts[1])
    a2 = act(a1 @ parts[2] + parts[3])
    logits = a2 @ parts[4] + parts[5]
    ce = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(7), y])
    assert mlp.loss(w, X, y) == pytest.approx(ce)
    np.testing.assert_array_equal(mlp.predict(w, X), logits.argmax(1))


def test_mlp_init_is_he_or_glorot_scaled_with_zero_biases():
    relu = MLP(400, 3, [300], "relu")
    w = relu.init_params(np.random.default_rng(0), 0.5)
    W1 = w[: 400 * 300]
    assert W1.std() == pytest.approx(0.5 * np.sqrt(2 / 400), rel=0.02)
    assert np.all(w[400 * 300 : 400 * 300 + 300] == 0)
    tanh = MLP(400, 3, [300], "tanh")
    W1 = tanh.init_params(np.random.default_rng(0), 1.0)[: 400 * 300]
    assert W1.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_least_squares_optimum_has_zero_gradient(l2):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4)) + 1.0
    y = X @ rng.standard_normal(4) + 2.0 + 0.1 * rng.standard_normal(50)
    obj = make_objective("least_squares", 4, None, l2=l2)
    w_star = optimum_least_squares(X, y, l2)
    assert w_star.shape == (obj.dim,)
    assert np.linalg.norm(obj.grad(w_star, X, y)) < 1e-10
    # it is a minimum: any perturbation increases the loss
    for _ in range(5):
        assert obj.loss(w_star + 1e-3 * rng.standard_normal(5), X, y) > obj.loss(w_star, X, y)


def test_optimum_least_squares_underdetermined_is_stationary():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((3, 6)), rng.standard_normal(3)
    w_star = optimum_least_squares(X, y)
    assert np.linalg.norm(LeastSquares(6).grad(w_star, X, y)) < 1e-10


def test_labels_are_validated():
    X = np.zeros((2, 3))
    with pytest.raises(ValueError, match="0 or 1"):
        make_objective("logistic", 3, 2).loss(np.zeros(4), X, np.array([-1, 1]))
    with pytest.raises(ValueError, match="0..2"):
        Softmax(3, 3).loss(np.zeros(12), X, np.array([0, 3]))
