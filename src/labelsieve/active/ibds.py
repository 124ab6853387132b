"""IBDS (Chhabra et al. 2024) as used in the salutary-labeling paper: an influence regressor.

The influence (validation-loss decrease, eq. 1 negated) of every *labeled* point under its true
label trains a regressor on the features; the regressor predicts it for the pool, and the points
with the largest predicted decrease are queried. Default regressor: a random forest (100 trees).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelsieve._validation import check_positive_int
from labelsieve.active.base import QueryState, register_strategy
from labelsieve.active.influence import check_influence_params
from labelsieve.active.surrogate import influence_view
from labelsieve.active.uncertainty import top_n
from labelsieve.errors import ParameterError


@register_strategy("ibds", tbal=False)
class IBDSQuery:
    """Query the pool points an influence regressor predicts to help most.

    Parameters
    ----------
    X_val, y_val : validation set; C : float (> 0); solver : {"auto", "dense", "cg"}
    regressor : scikit-learn regressor or None
        Cloned for every query; ``None`` = ``RandomForestRegressor(n_estimators=100, min_samples_leaf=2)``
        seeded from the query's ``rng``.
    """

    def __init__(self, *, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None, C: float = 1.0,
                 solver: str = "auto", regressor: Any = None) -> None:
        self.X_val = X_val
        self.y_val = y_val
        self.C = C
        self.solver = solver
        self.regressor = regressor

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        owner = type(self).__name__
        check_positive_int("n", n, owner=owner, minimum=0)
        check_influence_params(owner, self.C, self.solver)
        if self.regressor is not None and not all(callable(getattr(self.regressor, m, None)) for m in ("fit", "predict")):
            raise ParameterError(f"The 'regressor' parameter of {owner} must be a scikit-learn regressor (fit, "
                                 f"predict) or None. Got {self.regressor!r} instead.")
        if min(n, len(state.X_pool)) == 0:
            return np.empty(0, dtype=np.int64)
        from sklearn.base import clone
        from sklearn.ensemble import RandomForestRegressor

        inf, view = influence_view(state, self.X_val, self.y_val, C=self.C, solver=self.solver, owner=owner)
        target = inf.loss_decrease_labeled(view.Z_train, view.y_train)
        seed = int(rng.integers(2**31 - 1))
        if self.regressor is None:
            reg = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
        else:
            reg = clone(self.regressor)
        reg.fit(view.Z_train, target / np.max(np.abs(target)) if np.any(target) else target)
        return top_n(np.asarray(reg.predict(view.Z_pool), dtype=np.float64), n, rng)
