"""Run metrics computed from the node-model matrix: mean model, consensus distance, loss."""

from __future__ import annotations

import numpy as np


def mean_model(models: np.ndarray) -> np.ndarray:
    """μ = (1/n) Σ x_i over the rows of an ``(n, d)`` model matrix."""
    return models.mean(axis=0)


def consensus_distance(models: np.ndarray) -> float:
    """(1/n) Σ ‖x_i − μ‖²: mean squared distance of node models to their mean."""
    centred = models - models.mean(axis=0)
    return float(np.einsum("ij,ij->", centred, centred) / models.shape[0])


def gamma(models: np.ndarray) -> float:
    """Γ = Σ ‖x_i − μ‖² (the potential of the SwarmSGD analysis)."""
    return consensus_distance(models) * models.shape[0]
