"""ISAL (Liu et al. 2021) as used in the salutary-labeling paper: influence under pseudo-labels.

Each pool point is scored by the predicted validation-loss decrease of adding it with the model's
own prediction as its label; the ``n`` largest are sent to humans.
"""

from __future__ import annotations

import numpy as np

from labelsieve._validation import check_positive_int
from labelsieve.active.base import QueryState, register_strategy
from labelsieve.active.influence import check_influence_params
from labelsieve.active.surrogate import influence_view
from labelsieve.active.uncertainty import top_n


def pseudo_label_gain(loss_decrease: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``loss_decrease[i, argmax p_i]``, shape (n,).

    >>> pseudo_label_gain(np.array([[1.0, 2.0]]), np.array([[0.9, 0.1]])).tolist()
    [1.0]
    """
    return loss_decrease[np.arange(len(probs)), np.argmax(probs, axis=1)]


@register_strategy("isal", tbal=False)
class ISALQuery:
    """Largest pseudo-label influence first.

    Parameters
    ----------
    X_val, y_val : validation set; C : float (> 0); solver : {"auto", "dense", "cg"}
    """

    def __init__(self, *, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None, C: float = 1.0,
                 solver: str = "auto") -> None:
        self.X_val = X_val
        self.y_val = y_val
        self.C = C
        self.solver = solver

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        owner = type(self).__name__
        check_positive_int("n", n, owner=owner, minimum=0)
        check_influence_params(owner, self.C, self.solver)
        if min(n, len(state.X_pool)) == 0:
            return np.empty(0, dtype=np.int64)
        inf, view = influence_view(state, self.X_val, self.y_val, C=self.C, solver=self.solver, owner=owner)
        dec = inf.loss_decrease(view.Z_pool)
        return top_n(pseudo_label_gain(dec, inf.predict_proba(view.Z_pool)), n, rng)
