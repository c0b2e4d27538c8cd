"""Training objectives (losses with hand-written gradients) on flat float64 parameter vectors."""

from gossipsim.objectives.base import Objective
from gossipsim.objectives.linear import LeastSquares, Logistic, Softmax, optimum_least_squares
from gossipsim.objectives.mlp import MLP
from gossipsim.objectives.network import DenseNet
from gossipsim.objectives.registry import OBJECTIVES, make_objective, register_objective

__all__ = [
    "MLP",
    "OBJECTIVES",
    "DenseNet",
    "LeastSquares",
    "Logistic",
    "Objective",
    "Softmax",
    "make_objective",
    "optimum_least_squares",
    "register_objective",
]
