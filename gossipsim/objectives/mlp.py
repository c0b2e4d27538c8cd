"""Multi-layer perceptron classifier: dense hidden layers, softmax cross-entropy output."""

from __future__ import annotations

import numpy as np

from gossipsim.objectives.base import Objective
from gossipsim.objectives.heads import SoftmaxHead
from gossipsim.objectives.linear import _check_n_classes, _check_n_features
from gossipsim.objectives.network import DenseNet

DEFAULT_HIDDEN = (64,)


class MLP(Objective):
    """``f → hidden[0] → … → C`` with relu/tanh hidden units and mean softmax cross-entropy.

    Parameter layout (see :class:`DenseNet`): for each layer in order, ``W_l`` of shape
    ``(fan_in, fan_out)`` flattened row-major, then ``b_l``. The L2 penalty applies to all
    parameters, biases included. Backpropagation is hand-written and vectorised over vectors.
    """

    name = "mlp"
    task = "multiclass"
    has_accuracy = True
    has_hidden_layers = True

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = DEFAULT_HIDDEN,
        activation: str = "relu",
        l2: float = 0.0,
    ) -> None:
        hidden = list(hidden)
        if not hidden or any(int(h) != h or h < 1 for h in hidden):
            raise ValueError(f"mlp needs >= 1 hidden layer of positive sizes, got {hidden}")
        c = _check_n_classes(n_classes, "mlp")
        net = DenseNet([_check_n_features(n_features), *hidden, c], activation)
        super().__init__(net, SoftmaxHead(c), c, l2)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation

    @classmethod
    def from_spec(
        cls,
        n_features: int,
        n_classes: int | None,
        l2: float = 0.0,
        hidden: list[int] | None = None,
        activation: str = "relu",
    ) -> MLP:
        """``hidden=None`` means one hidden layer of 64 units."""
        return cls(
            n_features,
            _check_n_classes(n_classes, "mlp"),
            DEFAULT_HIDDEN if hidden is None else hidden,
            activation,
            l2,
        )

    def init_params(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """He-normal (relu) or Glorot-normal (tanh) weights times ``scale``; zero biases.

        ``scale = 1`` is the standard initialisation. (All-zero parameters are a dead network.)
        """
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        return self.net.init_scaled(rng, scale)
