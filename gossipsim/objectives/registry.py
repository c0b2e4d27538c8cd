"""Registry of objectives by name and the :func:`make_objective` factory."""

from __future__ import annotations

from gossipsim.objectives.base import Objective
from gossipsim.objectives.linear import LeastSquares, Logistic, Softmax
from gossipsim.objectives.mlp import MLP

#: Objective classes by config name; add an :class:`Objective` subclass here to plug it in.
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (LeastSquares, Logistic, Softmax, MLP)
}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator adding ``cls`` to :data:`OBJECTIVES` under ``cls.name``."""
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls:
        raise ValueError(f"objective {cls.name!r} is already registered")
    OBJECTIVES[cls.name] = cls
    return cls


def make_objective(
    kind: str,
    n_features: int,
    n_classes: int | None,
    l2: float = 0.0,
    hidden: list[int] | None = None,
    activation: str = "relu",
) -> Objective:
    """Build the objective ``kind`` (a key of :data:`OBJECTIVES`).

    ``hidden``/``activation`` only apply to objectives with hidden layers (``mlp``).
    """
    try:
        cls = OBJECTIVES[kind]
    except KeyError:
        raise ValueError(
            f"unknown objective {kind!r}; valid kinds: {', '.join(sorted(OBJECTIVES))}"
        ) from None
    return cls.from_spec(n_features, n_classes, l2=l2, hidden=hidden, activation=activation)
