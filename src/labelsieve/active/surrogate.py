"""The convex model influence needs, and a surrogate of it for deep models.

:class:`SoftmaxRegression` is the L2 multinomial logistic regression of
:mod:`labelsieve.active.influence` behind the :class:`~labelsieve.models.base.Classifier` API, so
its parameters ``W_`` feed the influence functions directly.

For a non-convex model the paper (Sec. 5.3, App. E/F) freezes the feature extractor and fits a
logistic regression on the frozen embeddings and *the deep model's own predictions*; influence is
computed on that surrogate. :func:`fit_surrogate` does this; :func:`softmax_view` turns any
:class:`~labelsieve.active.base.QueryState` into (softmax model, training features, pool features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import softmax

from labelsieve._validation import check_finite_2d, check_interval, check_positive_int
from labelsieve.active.base import QueryState
from labelsieve.active.influence import augment, check_labeled, fit_softmax_regression
from labelsieve.errors import InputError, NotEnoughDataError, NotFittedError
from labelsieve.models.base import Scores


class SoftmaxRegression:
    """L2 multinomial logistic regression, ``C`` as in scikit-learn (see :mod:`.influence`).

    Parameters
    ----------
    n_classes : int
        Number of logit columns (>= 2), fixed even if ``y`` lacks some class.
    C : float, default 1.0
        Inverse regularisation: minimises ``C * sum_i CE_i + ||W_weights||^2 / 2``; intercept free.
    fit_intercept : bool, default True
    tol, max_iter : L-BFGS gradient tolerance and iteration cap.

    Attributes
    ----------
    W_ : array (d + 1, n_classes) (last row = intercepts); n_features_in_ : int

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> m = SoftmaxRegression(n_classes=3).fit(X, y)
    >>> bool((m.predict(X) == y).mean() > 0.95), m.W_.shape
    (True, (5, 3))
    """

    def __init__(
        self, *, n_classes: int, C: float = 1.0, fit_intercept: bool = True, tol: float = 1e-8,
        max_iter: int = 2000
    ) -> None:
        self.n_classes = n_classes
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray, *, warm_start: np.ndarray | None = None) -> SoftmaxRegression:
        """Fit on ``X`` (n, d) and codes ``y`` (n,); at least two classes must be present."""
        owner = type(self).__name__
        check_positive_int("n_classes", self.n_classes, owner=owner, minimum=2)
        check_interval("C", self.C, owner=owner, low=0.0, high=np.inf, closed="neither")
        check_interval("tol", self.tol, owner=owner, low=0.0, high=np.inf, closed="neither")
        check_positive_int("max_iter", self.max_iter, owner=owner)
        X, y = check_labeled(X, y, self.n_classes, what=f"training set of {owner}")
        self.W_ = fit_softmax_regression(
            X, y, n_classes=self.n_classes, C=float(self.C), fit_intercept=self.fit_intercept,
            W0=warm_start, tol=float(self.tol), max_iter=int(self.max_iter),
        )
        self.n_features_in_ = X.shape[1]
        return self

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        NotFittedError.check(self, "W_")
        X = check_finite_2d(X, what=f"X passed to {type(self).__name__}")
        if X.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X.shape[1]} features; {type(self).__name__} was fitted on {self.n_features_in_}."
            )
        return X

    def scores(self, X: np.ndarray) -> Scores:
        """Logits ``[X, 1] @ W_``, shape (n, n_classes)."""
        return Scores(augment(self._check_X(X), self.fit_intercept) @ self.W_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.scores(X).logits, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.scores(X).logits, axis=1)


def fit_surrogate(
    embeddings: np.ndarray, deep_predictions: np.ndarray, *, n_classes: int, C: float = 1.0
) -> SoftmaxRegression:
    """Logistic regression on frozen ``embeddings`` (n, h) fit to the deep model's predictions.

    ``deep_predictions`` is either predicted codes (n,) or probabilities (n, n_classes) (arg-max is
    taken), as in the paper's App. E/F. Returns the fitted :class:`SoftmaxRegression`.
    """
    pred = np.asarray(deep_predictions)
    if pred.ndim == 2:
        pred = np.argmax(pred, axis=1)
    return SoftmaxRegression(n_classes=n_classes, C=C).fit(embeddings, pred.astype(np.int64))


def model_features(model: Any, X: np.ndarray) -> np.ndarray:
    """Frozen embeddings of ``X`` from ``model.scores(X).embeddings``, or ``X`` itself when absent."""
    if model is None or isinstance(model, SoftmaxRegression):
        return np.asarray(X)
    emb = model.scores(X).embeddings
    return np.asarray(X) if emb is None else np.asarray(emb)


@dataclass(frozen=True)
class SoftmaxView:
    """A convex model over a query state: the model, and the features it sees."""

    model: SoftmaxRegression
    Z_train: np.ndarray
    y_train: np.ndarray
    Z_pool: np.ndarray
    is_surrogate: bool


def _n_classes(state: QueryState, *extra: np.ndarray) -> int:
    if state.model is not None and getattr(state.model, "n_classes", None):
        return int(state.model.n_classes)
    labs = [np.asarray(state.y_labeled)] + [np.asarray(e) for e in extra if e is not None]
    return max(2, int(max(int(np.max(a)) for a in labs if len(a))) + 1)


def softmax_view(state: QueryState, *, C: float = 1.0, n_classes: int | None = None) -> SoftmaxView:
    """The softmax model an influence-based strategy scores the pool with.

    * ``state.model`` is a fitted :class:`SoftmaxRegression`: used as is, on raw features;
    * another model exposing embeddings: a surrogate (:func:`fit_surrogate`) on its embeddings,
      trained on its predictions for the labeled points;
    * no model: a :class:`SoftmaxRegression` fit on the labeled points.
    """
    if state.X_labeled is None or state.y_labeled is None:
        raise NotEnoughDataError("an influence-based strategy needs the labeled set (X_labeled, y_labeled).")
    y_lab = np.asarray(state.y_labeled)
    k = n_classes or _n_classes(state)
    model = state.model
    if isinstance(model, SoftmaxRegression) and hasattr(model, "W_"):
        return SoftmaxView(model, np.asarray(state.X_labeled), y_lab, np.asarray(state.X_pool), False)
    if model is not None:
        Z_train = model_features(model, state.X_labeled)
        if state.pool_scores is not None and state.pool_scores.embeddings is not None:
            Z_pool = np.asarray(state.pool_scores.embeddings)
        else:
            Z_pool = model_features(model, state.X_pool)
        sur = fit_surrogate(Z_train, model.predict(state.X_labeled), n_classes=k, C=C)
        return SoftmaxView(sur, Z_train, y_lab, Z_pool, True)
    fitted = SoftmaxRegression(n_classes=k, C=C).fit(state.X_labeled, y_lab)
    return SoftmaxView(fitted, np.asarray(state.X_labeled), y_lab, np.asarray(state.X_pool), False)


def influence_view(
    state: QueryState,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    *,
    C: float = 1.0,
    solver: str = "auto",
    owner: str = "strategy",
    order: int = 1,
) -> tuple[Any, SoftmaxView]:
    """A fitted :class:`~labelsieve.active.influence.LogisticInfluence` for ``state`` and its view.

    Raises :class:`InputError` for a bad pool (non-finite values, wrong width) and
    :class:`NotEnoughDataError` when the validation set is missing.
    """
    from labelsieve.active.influence import LogisticInfluence

    if X_val is None or y_val is None:
        raise NotEnoughDataError(f"{owner} needs a validation set: pass X_val and y_val.")
    view = softmax_view(state, C=C, n_classes=_n_classes(state, y_val))
    Z_pool = check_finite_2d(view.Z_pool, what="pool")
    if Z_pool.shape[1] != view.Z_train.shape[1]:
        raise InputError(
            f"pool has {Z_pool.shape[1]} features; the labeled set has {view.Z_train.shape[1]}."
        )
    Z_val = model_features(state.model, X_val) if view.is_surrogate else np.asarray(X_val)
    m = view.model
    inf = LogisticInfluence(C=m.C, fit_intercept=m.fit_intercept, solver=solver, n_classes=m.n_classes,
                            order=order)
    inf.fit(view.Z_train, view.y_train, Z_val, y_val, W=m.W_)
    return inf, SoftmaxView(m, view.Z_train, view.y_train, Z_pool, view.is_surrogate)
