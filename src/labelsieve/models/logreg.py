"""Multinomial logistic regression (scikit-learn) behind the :class:`~labelsieve.models.base.Classifier` API.

Classes missing from the training labels
----------------------------------------
The TBAL loop fits on the human-labeled points gathered so far, which may lack some of the
``n_classes`` classes. Every model in :mod:`labelsieve.models` still returns ``n_classes`` logit
columns: the column of a class absent from the training labels is set, row by row, to the smallest
logit of the present classes minus :data:`MISSING_CLASS_LOGIT_GAP` (100). Such a class therefore
never wins the arg-max and gets softmax probability below ``exp(-100)`` (exactly 0 in float32),
while all logits stay finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from labelsieve._validation import check_finite_2d, check_interval, check_positive_int
from labelsieve.errors import InputError, NotEnoughDataError
from labelsieve.models.base import Scores

#: Logit gap below the row's smallest present-class logit given to classes absent at fit time.
MISSING_CLASS_LOGIT_GAP = 100.0


def fill_missing_logits(present_logits: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Expand logits over the present classes to all ``n_classes`` columns.

    Parameters
    ----------
    present_logits : float array, shape (n, k)
        Logits of the ``k`` classes seen at fit time, in the order of ``present``.
    present : int array, shape (k,)
        Sorted class codes seen at fit time.
    n_classes : int
        Total number of classes.

    Returns
    -------
    float array, shape (n, n_classes)
        Absent columns hold ``min(row of present_logits) - MISSING_CLASS_LOGIT_GAP``.

    >>> fill_missing_logits(np.array([[1.0, 3.0]]), np.array([0, 2]), 3).tolist()
    [[1.0, -99.0, 3.0]]
    """
    present_logits = np.asarray(present_logits)
    out_dtype = np.result_type(present_logits.dtype, np.float32)
    n = present_logits.shape[0]
    low = present_logits.min(axis=1, keepdims=True) - MISSING_CLASS_LOGIT_GAP
    out = np.broadcast_to(low, (n, n_classes)).astype(out_dtype, copy=True)
    out[:, present] = present_logits
    return out


def check_n_classes(n_classes: Any, *, owner: str) -> int:
    """Validate the ``n_classes`` constructor argument (an int >= 2)."""
    return check_positive_int("n_classes", n_classes, owner=owner, minimum=2)


def check_fit_data(X: Any, y: Any, n_classes: int, *, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate training data: finite 2-D ``X`` and integer codes ``y`` in ``[0, n_classes)``.

    Returns ``X`` as float64 (a copy-free view when possible) and ``y`` as int64. Raises
    :class:`InputError` naming the first bad row and value, :class:`NotEnoughDataError` when empty.
    """
    X = check_finite_2d(X, what=f"X passed to {owner}.fit")
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise InputError(f"y passed to {owner}.fit must be 1-D; got shape {y_arr.shape}.")
    if len(y_arr) != X.shape[0]:
        raise InputError(f"{owner}.fit got {X.shape[0]} rows in X but {len(y_arr)} labels in y.")
    if len(y_arr) == 0:
        raise NotEnoughDataError(f"{owner}.fit needs at least one labeled point; got 0.")
    if y_arr.dtype.kind == "f":
        frac = ~np.isfinite(y_arr) | (y_arr != np.round(y_arr))
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            raise InputError(f"y passed to {owner}.fit has a non-integer label ({y_arr[row]}) at row {row}.")
    elif y_arr.dtype.kind not in "iub":
        raise InputError(f"y passed to {owner}.fit must hold integer class codes; got dtype {y_arr.dtype}.")
    y_int = y_arr.astype(np.int64)
    bad = (y_int < 0) | (y_int >= n_classes)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"y passed to {owner}.fit has label {y_int[row]} at row {row}; class codes must be in "
            f"[0, {n_classes - 1}] (-1 = unlabeled is not allowed when fitting)."
        )
    return X.astype(np.float64, copy=False), y_int


def check_predict_data(X: Any, n_features: int, *, owner: str) -> np.ndarray:
    """Validate ``X`` at scoring time against the number of features seen in ``fit``."""
    X = check_finite_2d(X, what=f"X passed to {owner}.scores")
    if X.shape[1] != n_features:
        raise InputError(f"X passed to {owner}.scores has {X.shape[1]} features; the model was fitted on "
                         f"{n_features}.")
    return X


def require_fitted(model: Any, attr: str) -> None:
    """Raise scikit-learn's ``NotFittedError`` when ``fit`` has not been called."""
    if not hasattr(model, attr):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"This {type(model).__name__} instance is not fitted yet; call 'fit' first.")


class LogisticRegressionClassifier(BaseEstimator):
    """Multinomial logistic regression (lbfgs) on standardized features.

    A ``StandardScaler`` followed by scikit-learn's ``LogisticRegression`` inside a ``Pipeline``.
    Logits are the decision function, expanded to all ``n_classes`` columns (see the module
    docstring for classes absent from the training labels). For two present classes scikit-learn
    returns one score ``f``; the logits are ``[0, f]``, whose softmax is the same sigmoid model.

    When only one class is present in ``y`` the model is the constant classifier: logit 0 for that
    class and ``-MISSING_CLASS_LOGIT_GAP`` for the others (probability ~1 for the seen class).

    Parameters
    ----------
    n_classes : int
        Number of classes the logits cover (>= 2), fixed even if ``y`` lacks some.
    C : float
        Inverse L2 regularization strength (> 0).
    max_iter : int
        lbfgs iterations.
    random_state : int, Generator or None
        Kept for API symmetry; lbfgs is deterministic.

    Attributes
    ----------
    classes_ : int array, shape (k,)
        Class codes present in the training labels.
    coef_ : float array, shape (k, n_features)
        Weights on the *original* (unscaled) features; ``logits[:, classes_] = X @ coef_.T + intercept_``.
    intercept_ : float array, shape (k,)
    pipeline_ : sklearn Pipeline or None
        The fitted scaler + logistic regression (``None`` for a single present class).

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegressionClassifier(n_classes=3).fit(X, y)
    >>> clf.scores(X[:2]).logits.shape, bool((clf.predict(X) == y).mean() > 0.9)
    ((2, 3), True)
    """

    def __init__(self, *, n_classes: int, C: float = 1.0, max_iter: int = 1000, random_state: Any = None):
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_n_classes(self.n_classes, owner=owner)
        check_interval("C", self.C, owner=owner, low=0.0, high=np.inf, closed="neither")
        check_positive_int("max_iter", self.max_iter, owner=owner)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRegressionClassifier:
        """Fit on features ``X`` (n, d) and class codes ``y`` (n,) in ``[0, n_classes)``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        self._check_params()
        X, y = check_fit_data(X, y, self.n_classes, owner=type(self).__name__)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        if len(self.classes_) == 1:
            self.pipeline_ = None
            self.coef_ = np.zeros((1, X.shape[1]))
            self.intercept_ = np.zeros(1)
            return self
        seed = None
        if self.random_state is not None:
            seed = int(np.random.default_rng(self.random_state).integers(2**31 - 1))
        pipe = Pipeline([
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=float(self.C), max_iter=int(self.max_iter), solver="lbfgs",
                                          random_state=seed)),
        ])
        pipe.fit(X, y)
        self.pipeline_ = pipe
        scaler, lr = pipe.named_steps["scale"], pipe.named_steps["logreg"]
        w = lr.coef_ / scaler.scale_  # fold the scaler: (x - m)/s @ W.T + b
        b = lr.intercept_ - w @ scaler.mean_
        if len(self.classes_) == 2:  # sklearn's single column is the logit of classes_[1] vs classes_[0]
            w = np.vstack([np.zeros_like(w), w])
            b = np.concatenate([[0.0], b])
        self.coef_, self.intercept_ = w, b
        return self

    def scores(self, X: np.ndarray) -> Scores:
        """Logits of shape (n, n_classes); ``embeddings`` is ``None``."""
        require_fitted(self, "classes_")
        X = check_predict_data(X, self.n_features_in_, owner=type(self).__name__)
        if self.pipeline_ is None or X.shape[0] == 0:
            present = np.zeros((X.shape[0], max(len(self.classes_), 1)))
        else:
            f = self.pipeline_.decision_function(X)
            present = np.column_stack([np.zeros_like(f), f]) if f.ndim == 1 else f
        return Scores(logits=fill_missing_logits(present, self.classes_, self.n_classes), embeddings=None)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the logits, shape (n, n_classes)."""
        return self.scores(X).probs

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Arg-max class codes, shape (n,)."""
        return self.scores(X).predicted
