"""Salutary labeling (eq. 2, Algorithm 1): pick the pool points whose best label helps most.

For each pool point the *salutary label* is the label with the largest predicted validation-loss
decrease (eq. 2, with the sign convention of :mod:`labelsieve.active.influence`); the ``b`` points
with the largest decrease under their salutary label are added with that label, no human involved.
"Ours w/ GT" keeps the same selection rule but adds the ground-truth labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labelsieve._validation import check_option, check_positive_int
from labelsieve.active.base import QueryState, register_strategy
from labelsieve.active.influence import LogisticInfluence, check_influence_params, check_labeled
from labelsieve.active.surrogate import influence_view
from labelsieve.errors import InputError, ParameterError


def salutary_labels(loss_decrease: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. (2): best label per point and its loss decrease.

    Parameters
    ----------
    loss_decrease : array, shape (n, C)

    Returns
    -------
    labels : int array (n,) ``argmax_c loss_decrease[:, c]``; gain : array (n,) the maximum.

    >>> salutary_labels(np.array([[0.1, 0.3], [-0.2, -0.5]]))[0].tolist()
    [1, 0]
    """
    labels = np.argmax(loss_decrease, axis=1)
    return labels.astype(np.int64), loss_decrease[np.arange(len(labels)), labels]


def salutary_select(
    loss_decrease: np.ndarray, b: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Algorithm 1, lines 3-6: the ``b`` points with the largest salutary gain.

    Returns ``(positions, labels, gains)``, each of length ``b``, sorted by decreasing gain (ties at
    random when ``rng`` is given). Raises :class:`ParameterError` when ``b`` exceeds the pool.

    >>> pos, lab, _ = salutary_select(np.array([[0.1, 0.3], [0.5, -0.5], [0.0, 0.0]]), 2)
    >>> pos.tolist(), lab.tolist()
    ([1, 0], [0, 1])
    """
    n = int(loss_decrease.shape[0])
    check_positive_int("b", b, owner="salutary_select")
    if b > n:
        raise ParameterError(f"The 'b' parameter of salutary_select must be <= the pool size {n}. Got {b} instead.")
    labels, gain = salutary_labels(loss_decrease)
    tie = np.zeros(n) if rng is None else rng.random(n)
    order = np.lexsort((tie, -gain))[:b]
    return order.astype(np.int64), labels[order], gain[order]


@dataclass
class SalutaryRun:
    """Result of :meth:`SalutaryLabeler.run`: what was added each round."""

    positions: list[np.ndarray] = field(default_factory=list)  # positions into the original pool
    labels: list[np.ndarray] = field(default_factory=list)  # labels that were added
    salutary: list[np.ndarray] = field(default_factory=list)  # salutary labels of those points
    gains: list[np.ndarray] = field(default_factory=list)
    model: LogisticInfluence | None = None


class SalutaryLabeler:
    """Salutary labeling with an L2 logistic regression (Algorithm 1).

    Parameters
    ----------
    C : float, default 1.0
        scikit-learn inverse regularisation of the logistic regression (> 0).
    solver : {"auto", "dense", "cg"}
        Hessian solve (see :func:`~labelsieve.active.influence.solve_hessian`).
    labels : {"salutary", "ground-truth"}
        Which labels :meth:`run` adds: eq. (2)'s ("Ours w/ SL") or the truth ("Ours w/ GT").
    order : {1, 2}, default 1
        1 = the paper's first-order influence; 2 = with the validation-curvature correction
        (:func:`~labelsieve.active.influence.second_order_loss_decrease`).

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)); y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    >>> run = SalutaryLabeler().run(X[:40], y[:40], X[40:200], X[200:], y[200:], rounds=2, b=5)
    >>> [len(p) for p in run.positions]
    [5, 5]
    """

    def __init__(self, *, C: float = 1.0, solver: str = "auto", labels: str = "salutary", order: int = 1) -> None:
        self.C = C
        self.solver = solver
        self.labels = labels
        self.order = order

    def _validate(self) -> None:
        owner = type(self).__name__
        check_influence_params(owner, self.C, self.solver, self.order)
        check_option("labels", self.labels, owner=owner, options={"salutary", "ground-truth"})

    def run(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_pool: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        rounds: int,
        b: int,
        y_pool: np.ndarray | None = None,
        n_classes: int | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> SalutaryRun:
        """Run ``rounds`` rounds of ``b`` additions; ``y_pool`` is required for ``labels="ground-truth"``."""
        self._validate()
        owner = type(self).__name__
        check_positive_int("rounds", rounds, owner=owner)
        check_positive_int("b", b, owner=owner)
        k = n_classes or int(max(np.max(y), np.max(y_val))) + 1
        X, y = check_labeled(X, y, k, what="labeled set")
        X_pool = np.asarray(X_pool)
        if rounds * b > len(X_pool):
            raise ParameterError(
                f"The 'b' parameter of {owner} must satisfy rounds * b <= pool size {len(X_pool)}. "
                f"Got b={b} with rounds={rounds} instead."
            )
        if self.labels == "ground-truth" and y_pool is None:
            raise InputError("labels='ground-truth' needs y_pool, the true labels of the pool.")
        rng = np.random.default_rng(random_state)
        remaining = np.arange(len(X_pool))
        out = SalutaryRun()
        for _ in range(rounds):
            inf = LogisticInfluence(C=self.C, solver=self.solver, n_classes=k, order=self.order).fit(
                X, y, X_val, y_val)
            dec = inf.loss_decrease(X_pool[remaining])
            pos, sal, gain = salutary_select(dec, b, rng)
            chosen = remaining[pos]
            added = sal if self.labels == "salutary" else np.asarray(y_pool)[chosen]
            X = np.vstack([X, X_pool[chosen]])
            y = np.concatenate([y, added])
            remaining = np.delete(remaining, pos)
            out.positions.append(chosen)
            out.labels.append(added)
            out.salutary.append(sal)
            out.gains.append(gain)
        out.model = LogisticInfluence(C=self.C, solver=self.solver, n_classes=k).fit(X, y, X_val, y_val)
        return out


@register_strategy("salutary", tbal=False)
class SalutaryQuery:
    """Salutary selection as a query strategy (eq. 2); :meth:`query_with_labels` also gives the labels.

    Parameters
    ----------
    X_val, y_val : validation set the influence is measured on
    C : float, default 1.0 (used when the state's model is not a fitted SoftmaxRegression)
    solver : {"auto", "dense", "cg"}
    order : {1, 2}, default 1 (see :class:`SalutaryLabeler`)
    """

    def __init__(self, *, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None, C: float = 1.0,
                 solver: str = "auto", order: int = 1) -> None:
        self.X_val = X_val
        self.y_val = y_val
        self.C = C
        self.solver = solver
        self.order = order

    def query_with_labels(
        self, state: QueryState, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``min(n, m)`` positions and their salutary labels."""
        owner = type(self).__name__
        check_positive_int("n", n, owner=owner, minimum=0)
        check_influence_params(owner, self.C, self.solver, self.order)
        m = len(state.X_pool)
        if min(n, m) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        inf, view = influence_view(state, self.X_val, self.y_val, C=self.C, solver=self.solver, owner=owner,
                                   order=self.order)
        pos, labels, _ = salutary_select(inf.loss_decrease(view.Z_pool), min(n, m), rng)
        return pos, labels

    def query(self, state: QueryState, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.query_with_labels(state, n, rng)[0]
