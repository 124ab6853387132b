"""Influence functions for L2-regularised multinomial logistic regression (salutary-labeling eq. 1).

Model and objective
-------------------
Parameters ``W`` of shape ``(d + 1, C)``: rows ``0..d-1`` are feature weights, row ``d`` the
intercept (absent when ``fit_intercept=False``). With ``x~ = [x, 1]`` and ``p(x) = softmax(x~ W)``
the training objective on ``N`` labeled points is the scikit-learn one divided by ``C_reg * N``::

    J(W) = (1/N) sum_i CE(p(x_i), y_i) + (l2 / 2) ||W[:d]||_F^2,      l2 = 1 / (C_reg * N)

i.e. scikit-learn's ``LogisticRegression(C=C_reg)`` (multinomial, intercept not penalised). Adding
one point to the training set with ``C_reg`` fixed adds ``(1/N) CE(x, c)`` to ``J``: an up-weight
by ``epsilon = 1/N``.

Sign convention
---------------
Koh & Liang's eq. (1) ``I(x, c) = -g_val^T H^{-1} grad l(x, c)`` is the derivative of the validation
loss with respect to up-weighting ``(x, c)``: *positive = harmful*. Everything public here returns
the opposite, a **loss decrease**::

    loss_decrease(x, c) = epsilon * g_val^T H^{-1} grad l(x, c)     (> 0: adding (x, c) helps)

which is what salutary labeling maximises (eq. 2).

Closed form
-----------
``grad l(x, c) = x~ (p(x) - e_c)^T``, so with ``S = H^{-1} g_val`` (shape ``(d + 1, C)``) and
``G = X~_pool S`` (shape ``(n, C)``)::

    loss_decrease[:, c] = epsilon * (sum_k G[:, k] p_k(x) - G[:, c])

one ``(n x (d+1)) @ ((d+1) x C)`` product for all points and all labels.

The intercept is not penalised, so ``H`` is singular along "add the same constant to every class
intercept". Every loss gradient is orthogonal to that direction (``sum_c (p_c - e_c) = 0``), so we
solve with ``H + mu u u^T`` (``u`` that unit direction); the solution is the pseudo-inverse one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import linalg, optimize
from scipy.special import log_softmax, softmax

from labelsieve._validation import check_finite_2d, check_interval, check_option, check_positive_int
from labelsieve.errors import InputError, NotEnoughDataError, ParameterError

logger = logging.getLogger(__name__)

#: Parameter count ``(d + 1) * C`` up to which the Hessian is built and factorised densely.
DENSE_MAX_PARAMS = 2000

#: Parameter count up to which :func:`fit_softmax_regression` uses Newton's method (else L-BFGS).
NEWTON_MAX_PARAMS = 800


def _small_blas():
    """One BLAS thread for the small dense factorisations (<= a few thousand parameters).

    Multi-threaded OpenBLAS gains nothing at this size and, on an oversubscribed machine, a
    650 x 650 Cholesky was measured 40x slower with 2 threads than with 1.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def check_influence_params(owner: str, C: float, solver: str, order: int | None = None) -> None:
    """The hyper-parameters every influence-based estimator shares: ``C > 0``, the Hessian
    ``solver``, and (where it has one) the influence ``order`` 1 or 2."""
    check_interval("C", C, owner=owner, low=0.0, high=np.inf, closed="neither")
    check_option("solver", solver, owner=owner, options={"auto", "dense", "cg"})
    if order is not None and (isinstance(order, bool) or order not in (1, 2)):
        raise ParameterError(f"The 'order' parameter of {owner} must be 1 or 2. Got {order!r} instead.")


def augment(X: np.ndarray, fit_intercept: bool = True) -> np.ndarray:
    """``[X, 1]`` as float64, shape (n, d + 1) (or ``X`` as float64 without intercept)."""
    X = np.asarray(X, dtype=np.float64)
    if not fit_intercept:
        return X
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _penalty_mask(n_rows: int, fit_intercept: bool) -> np.ndarray:
    mask = np.ones((n_rows, 1))
    if fit_intercept:
        mask[-1] = 0.0
    return mask


def _null_direction(n_rows: int, n_classes: int, fit_intercept: bool) -> np.ndarray | None:
    if not fit_intercept:
        return None
    u = np.zeros((n_rows, n_classes))
    u[-1] = 1.0 / np.sqrt(n_classes)
    return u


def softmax_objective(
    W_flat: np.ndarray, Xa: np.ndarray, Y: np.ndarray, l2: float, mask: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Objective ``J`` and its gradient for flattened ``W`` (row-major, shape ((d+1)*C,)).

    ``Y`` is one-hot (n, C); ``weights`` (n,) sum to 1 (``1/N`` each for the plain mean).
    """
    W = W_flat.reshape(Xa.shape[1], Y.shape[1])
    Z = Xa @ W
    logp = log_softmax(Z, axis=1)
    loss = -float(np.sum(weights * np.sum(Y * logp, axis=1)))
    Wm = W * mask
    loss += 0.5 * l2 * float(np.sum(Wm * W))
    grad = Xa.T @ (weights[:, None] * (np.exp(logp) - Y)) + l2 * Wm
    return loss, grad.ravel()


def fit_softmax_regression(
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    C: float = 1.0,
    fit_intercept: bool = True,
    W0: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 2000,
) -> np.ndarray:
    """Minimise ``J`` (module docstring, ``l2 = 1/(C N)``) by L-BFGS; returns ``W`` (d + 1, n_classes).

    Matches ``sklearn.linear_model.LogisticRegression(C=C)`` for 3+ classes; for 2 classes it is the
    symmetric softmax form, equal to scikit-learn's binary model with ``C_binary = 2 C``.
    ``W0`` warm-starts (add-one-in retraining).

    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> W = fit_softmax_regression(X, y, n_classes=2, C=10.0)
    >>> W.shape, bool(W[0, 1] > W[0, 0])
    ((2, 2), True)
    """
    Xa = augment(X, fit_intercept)
    n = Xa.shape[0]
    Y = np.zeros((n, n_classes))
    Y[np.arange(n), y] = 1.0
    mask = _penalty_mask(Xa.shape[1], fit_intercept)
    l2 = 1.0 / (C * n)
    w = np.full(n, 1.0 / n)
    x0 = np.zeros(Xa.shape[1] * n_classes) if W0 is None else np.asarray(W0, dtype=np.float64).ravel()
    if Xa.shape[1] * n_classes <= NEWTON_MAX_PARAMS:
        with _small_blas():
            W = _newton(x0, Xa, Y, l2, mask, w, fit_intercept, tol=tol, max_iter=min(max_iter, 100))
        if W is not None:
            if fit_intercept:
                W[-1] -= W[-1].mean()
            return W
    res = optimize.minimize(
        softmax_objective,
        x0,
        args=(Xa, Y, l2, mask, w),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 30},
    )
    W = res.x.reshape(Xa.shape[1], n_classes)
    if fit_intercept:  # fix the free intercept shift: centred intercepts
        W[-1] -= W[-1].mean()
    return W


def _newton(
    x0: np.ndarray, Xa: np.ndarray, Y: np.ndarray, l2: float, mask: np.ndarray, w: np.ndarray,
    fit_intercept: bool, *, tol: float, max_iter: int,
) -> np.ndarray | None:
    """Damped Newton with Armijo backtracking (small problems); None if it fails to converge."""
    D1, Cn = Xa.shape[1], Y.shape[1]
    u = _null_direction(D1, Cn, fit_intercept)
    x = x0.copy()
    f, g = softmax_objective(x, Xa, Y, l2, mask, w)
    for _ in range(max_iter):
        if np.max(np.abs(g)) <= tol:
            return x.reshape(D1, Cn)
        P = softmax(Xa @ x.reshape(D1, Cn), axis=1)
        H = hessian(Xa, P, l2, fit_intercept=fit_intercept)
        if u is not None:
            H += np.outer(u.ravel(), u.ravel())
        try:
            step = linalg.cho_solve(linalg.cho_factor(H), g)
        except (linalg.LinAlgError, ValueError):
            return None
        t = 1.0
        while True:
            f_new, g_new = softmax_objective(x - t * step, Xa, Y, l2, mask, w)
            if f_new <= f - 1e-4 * t * float(g @ step) or t < 1e-10:
                break
            t *= 0.5
        if t < 1e-10:
            return None
        x, f, g = x - t * step, f_new, g_new
    return x.reshape(D1, Cn) if np.max(np.abs(g)) <= 100 * tol else None


def validation_gradient(Xa_val: np.ndarray, y_val: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Gradient of the mean validation cross-entropy, ``(1/M) X~_val^T (P_val - Y_val)``, shape (d+1, C)."""
    P = softmax(Xa_val @ W, axis=1)
    P[np.arange(len(y_val)), y_val] -= 1.0
    return Xa_val.T @ P / len(y_val)


def hessian(Xa: np.ndarray, P: np.ndarray, l2: float, *, fit_intercept: bool = True) -> np.ndarray:
    """Dense Hessian of ``J`` at the training probabilities ``P`` (n, C); shape (D, D), D = (d+1) C.

    Row-major vectorisation: entry ``j * C + c`` is ``W[j, c]``. Needs no labels::

        H = (1/N) sum_i (x~_i x~_i^T) kron (diag(p_i) - p_i p_i^T) + l2 * diag(mask)
    """
    n, D1 = Xa.shape
    Cn = P.shape[1]
    # first term: block-diagonal in the class index -> einsum over samples
    H = np.zeros((D1, Cn, D1, Cn))
    for c in range(Cn):  # loop over classes (C matrix products), not samples
        H[:, c, :, c] = (Xa * (P[:, c:c + 1] / n)).T @ Xa
    Z = (Xa[:, :, None] * P[:, None, :]).reshape(n, D1 * Cn)
    H = H.reshape(D1 * Cn, D1 * Cn) - Z.T @ Z / n
    H[np.diag_indices_from(H)] += l2 * np.repeat(_penalty_mask(D1, fit_intercept).ravel(), Cn)
    return H


def hessian_vector_product(
    Xa: np.ndarray, P: np.ndarray, V: np.ndarray, l2: float, *, fit_intercept: bool = True
) -> np.ndarray:
    """``H V`` without forming ``H``; ``V`` and the result have shape (d+1, C). Cost O(n (d+1) C)."""
    T = Xa @ V  # (n, C)
    PT = P * T
    R = PT - P * PT.sum(axis=1, keepdims=True)
    return Xa.T @ R / Xa.shape[0] + l2 * _penalty_mask(Xa.shape[1], fit_intercept) * V


def conjugate_gradient(
    matvec, B: np.ndarray, *, tol: float = 1e-10, max_iter: int = 1000
) -> tuple[np.ndarray, int]:
    """Solve ``A X = B`` for symmetric positive definite ``A`` given by ``matvec``; returns (X, iterations)."""
    X = np.zeros_like(B)
    R = B.copy()
    Pd = R.copy()
    rs = float(np.sum(R * R))
    stop = (tol * np.sqrt(rs)) ** 2
    it = 0
    while rs > stop and it < max_iter:
        AP = matvec(Pd)
        alpha = rs / float(np.sum(Pd * AP))
        X += alpha * Pd
        R -= alpha * AP
        rs_new = float(np.sum(R * R))
        Pd = R + (rs_new / rs) * Pd
        rs = rs_new
        it += 1
    return X, it


def solve_hessian(
    Xa: np.ndarray,
    W: np.ndarray,
    G: np.ndarray,
    l2: float,
    *,
    fit_intercept: bool = True,
    solver: str = "auto",
    tol: float = 1e-10,
    max_iter: int = 2000,
) -> np.ndarray:
    """``S = H^{-1} G`` (shape (d+1, C)) at parameters ``W`` on training inputs ``Xa`` (augmented).

    ``solver``: ``"dense"`` (Cholesky of the explicit Hessian), ``"cg"`` (conjugate gradients on
    Hessian-vector products) or ``"auto"`` (dense up to :data:`DENSE_MAX_PARAMS` parameters).
    The intercept null direction is handled as in the module docstring.
    """
    D1, Cn = W.shape
    P = softmax(Xa @ W, axis=1)
    u = _null_direction(D1, Cn, fit_intercept)
    mu = max(l2, 1e-12) + float(np.mean(np.sum(Xa * Xa, axis=1))) / Cn
    if solver == "auto":
        solver = "dense" if D1 * Cn <= DENSE_MAX_PARAMS else "cg"
    if solver == "dense":
        with _small_blas():
            H = hessian(Xa, P, l2, fit_intercept=fit_intercept)
            if u is not None:
                H += mu * np.outer(u.ravel(), u.ravel())
            S = linalg.cho_solve(linalg.cho_factor(H), G.ravel())
        return S.reshape(D1, Cn)

    def matvec(V: np.ndarray) -> np.ndarray:
        out = hessian_vector_product(Xa, P, V, l2, fit_intercept=fit_intercept)
        if u is not None:
            out += mu * float(np.sum(u * V)) * u
        return out

    S, it = conjugate_gradient(matvec, np.asarray(G, dtype=np.float64), tol=tol, max_iter=max_iter)
    if it >= max_iter:
        logger.warning("conjugate gradients stopped after %d iterations without reaching tol=%g", it, tol)
    return S


def validation_loss_decrease(
    X_pool: np.ndarray, W: np.ndarray, S: np.ndarray, *, epsilon: float, fit_intercept: bool = True,
    chunk: int = 16384,
) -> np.ndarray:
    """Predicted decrease of the validation loss if each pool point were added with each label.

    Parameters
    ----------
    X_pool : array, shape (n, d)
    W : array, shape (d + 1, C)
        Trained parameters.
    S : array, shape (d + 1, C)
        ``H^{-1} g_val`` from :func:`solve_hessian`.
    epsilon : float
        Weight of the added point in ``J`` (``1/N`` when adding one point at fixed ``C``).
    chunk : int
        Rows per matrix product. A float32 pool is multiplied in float32 (relative error ~1e-6,
        the benchmark checks it); anything else in float64.

    Returns
    -------
    loss_decrease : array, shape (n, C)
        ``-epsilon * I(x, c)`` with ``I`` the paper's eq. (1); positive means adding helps.
    """
    X_pool = np.asarray(X_pool)
    d = X_pool.shape[1]
    Cn = W.shape[1]
    # one product for logits and G: X~ [W | S]; float32 pools stay float32 in the product
    M = np.hstack([W, S])
    Mx = M[:d].astype(np.float32) if X_pool.dtype == np.float32 else M[:d]
    out = np.empty((X_pool.shape[0], Cn))
    for s in range(0, X_pool.shape[0], chunk):  # chunks bound the temporaries, no per-sample work
        Z = (X_pool[s:s + chunk] @ Mx).astype(np.float64, copy=False)
        if fit_intercept:
            Z += M[d]
        P = softmax(Z[:, :Cn], axis=1)
        G = Z[:, Cn:]
        # eq. (1) with grad l = x~ (p - e_c)^T:  g^T H^-1 grad l = <G, p> - G[:, c]
        out[s:s + chunk] = epsilon * ((G * P).sum(axis=1, keepdims=True) - G)
    return out


def labeled_loss_decrease(
    X: np.ndarray, y: np.ndarray, W: np.ndarray, S: np.ndarray, *, epsilon: float, fit_intercept: bool = True
) -> np.ndarray:
    """:func:`validation_loss_decrease` at the given labels ``y``, shape (n,)."""
    full = validation_loss_decrease(X, W, S, epsilon=epsilon, fit_intercept=fit_intercept)
    return full[np.arange(len(y)), np.asarray(y)]


def validation_curvature_matrix(
    Xa_train: np.ndarray, Xa_val: np.ndarray, W: np.ndarray, l2: float, *, fit_intercept: bool = True
) -> np.ndarray:
    """``M = H^{-1} H_val H^{-1}`` (dense, shape (D, D)) for :func:`second_order_loss_decrease`."""
    D1, Cn = W.shape
    with _small_blas():
        H = hessian(Xa_train, softmax(Xa_train @ W, axis=1), l2, fit_intercept=fit_intercept)
        u = _null_direction(D1, Cn, fit_intercept)
        if u is not None:
            H += float(np.mean(np.diag(H))) * np.outer(u.ravel(), u.ravel())
        H_val = hessian(Xa_val, softmax(Xa_val @ W, axis=1), 0.0, fit_intercept=fit_intercept)
        cho = linalg.cho_factor(H)
        Hi_Hv = linalg.cho_solve(cho, H_val)
        return linalg.cho_solve(cho, Hi_Hv.T).T


def second_order_loss_decrease(
    X_pool: np.ndarray, W: np.ndarray, S: np.ndarray, M: np.ndarray, *, epsilon: float,
    fit_intercept: bool = True, chunk: int = 4096,
) -> np.ndarray:
    """First-order decrease minus the validation loss's curvature along the predicted step.

    With ``dW = -epsilon H^{-1} grad l(x, c)`` (the step eq. (1) linearises), the validation loss
    changes by ``g_val . dW + dW^T H_val dW / 2``. The first term is
    :func:`validation_loss_decrease`; the second, always a loss *increase*, is
    ``epsilon^2 / 2 * a_c^T Q(x) a_c`` with ``a_c = p(x) - e_c`` and
    ``Q(x) = (x~ kron I)^T M (x~ kron I)``, ``M = H^{-1} H_val H^{-1}``
    (:func:`validation_curvature_matrix`). It matters for points added with a label the model finds
    implausible: their gradient is large and the linear term alone overstates the gain.

    Returns
    -------
    loss_decrease : array, shape (n, C)
    """
    X_pool = np.asarray(X_pool, dtype=np.float64)
    D1, Cn = W.shape
    M4 = M.reshape(D1, Cn * D1 * Cn)
    out = np.empty((len(X_pool), Cn))
    for s in range(0, len(X_pool), chunk):
        Xa = augment(X_pool[s:s + chunk], fit_intercept)
        first = validation_loss_decrease(X_pool[s:s + chunk], W, S, epsilon=epsilon, fit_intercept=fit_intercept)
        P = softmax(Xa @ W, axis=1)
        Q = np.einsum("nkml,nm->nkl", (Xa @ M4).reshape(len(Xa), Cn, D1, Cn), Xa)
        Qp = np.einsum("nkl,nl->nk", Q, P)
        quad = np.einsum("nk,nk->n", P, Qp)[:, None] - 2.0 * Qp + np.einsum("nkk->nk", Q)  # a_c^T Q a_c
        out[s:s + chunk] = first - 0.5 * epsilon**2 * quad
    return out


def validation_loss(X_val: np.ndarray, y_val: np.ndarray, W: np.ndarray, *, fit_intercept: bool = True) -> float:
    """Mean cross-entropy of ``W`` on ``(X_val, y_val)``."""
    logp = log_softmax(augment(X_val, fit_intercept) @ W, axis=1)
    return -float(np.mean(logp[np.arange(len(y_val)), y_val]))


def check_labeled(X: np.ndarray, y: np.ndarray, n_classes: int, *, what: str, min_classes: int = 2):
    """Validate a labeled block: finite 2-D ``X``, codes in range, at least ``min_classes`` classes."""
    X = check_finite_2d(X, what=f"{what} features")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise InputError(f"{what} labels have shape {y.shape}; expected ({X.shape[0]},).")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{what} labels must be integer class codes; got dtype {y.dtype}.")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{what} label {y[r]} at row {r} is not a class code in [0, {n_classes - 1}].")
    present = np.unique(y)
    if len(present) < min_classes:
        raise NotEnoughDataError(
            f"{what} holds only class(es) {present.tolist()}; influence needs at least {min_classes} "
            f"classes among the labeled points."
        )
    return X, y.astype(np.int64)


class LogisticInfluence:
    """Fit the L2 logistic regression and pre-solve ``H^{-1} g_val`` once; score pools against it.

    Parameters
    ----------
    C : float, default 1.0
        scikit-learn's inverse regularisation (``l2 = 1/(C N)``, module docstring). Must be > 0.
    fit_intercept : bool, default True
    solver : {"auto", "dense", "cg"}
    n_classes : int or None
        Number of classes (default: ``max(y) + 1`` over train and validation labels).
    order : {1, 2}, default 1
        1: the paper's eq. (1). 2: add the validation loss's curvature along the predicted step
        (:func:`second_order_loss_decrease`; dense, at most :data:`DENSE_MAX_PARAMS` parameters).

    Attributes
    ----------
    W_ : array (d + 1, C); S_ : array (d + 1, C) ``= H^{-1} g_val``; l2_ : float; epsilon_ : float (1/N)

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    >>> inf = LogisticInfluence(C=1.0).fit(X[:40], y[:40], X[40:], y[40:])
    >>> inf.loss_decrease(X[:5]).shape
    (5, 2)
    """

    def __init__(
        self, *, C: float = 1.0, fit_intercept: bool = True, solver: str = "auto", n_classes: int | None = None,
        order: int = 1,
    ) -> None:
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.n_classes = n_classes
        self.order = order

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        W: np.ndarray | None = None,
    ) -> LogisticInfluence:
        """Train on ``(X, y)`` (or take given parameters ``W``) and solve ``H^{-1} g_val``."""
        owner = type(self).__name__
        check_influence_params(owner, self.C, self.solver, self.order)
        n_classes = self.n_classes
        if n_classes is None:
            n_classes = int(max(np.max(y), np.max(y_val))) + 1
        check_positive_int("n_classes", n_classes, owner=owner, minimum=2)
        X, y = check_labeled(X, y, n_classes, what="training set")
        X_val, y_val = check_labeled(X_val, y_val, n_classes, what="validation set", min_classes=1)
        if X_val.shape[1] != X.shape[1]:
            raise InputError(
                f"validation set has {X_val.shape[1]} features; the training set has {X.shape[1]}."
            )
        if W is None:
            W = fit_softmax_regression(
                X, y, n_classes=n_classes, C=float(self.C), fit_intercept=self.fit_intercept
            )
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = n_classes
        self.l2_ = 1.0 / (float(self.C) * len(y))
        self.epsilon_ = 1.0 / len(y)
        self.W_ = np.asarray(W, dtype=np.float64)
        Xa = augment(X, self.fit_intercept)
        self.g_val_ = validation_gradient(augment(X_val, self.fit_intercept), y_val, self.W_)
        self.S_ = solve_hessian(
            Xa, self.W_, self.g_val_, self.l2_, fit_intercept=self.fit_intercept, solver=self.solver
        )
        if self.order == 2:
            if self.W_.size > DENSE_MAX_PARAMS:
                raise ParameterError(
                    f"The 'order' parameter of {owner} must be 1 for more than {DENSE_MAX_PARAMS} parameters "
                    f"(here {self.W_.size}). Got 2 instead."
                )
            self.M_ = validation_curvature_matrix(
                Xa, augment(X_val, self.fit_intercept), self.W_, self.l2_, fit_intercept=self.fit_intercept
            )
        return self

    def _check_pool(self, X_pool: np.ndarray) -> np.ndarray:
        X_pool = check_finite_2d(X_pool, what="pool")
        if X_pool.shape[1] != self.n_features_in_:
            raise InputError(
                f"pool has {X_pool.shape[1]} features; the model was trained on {self.n_features_in_}."
            )
        return X_pool

    def loss_decrease(
        self, X_pool: Any, *, engine: Any = None, block_size: int = 65_536
    ) -> np.ndarray:
        """Predicted validation-loss decrease for every pool point and every label, shape (n, C).

        With ``engine`` (``"local"``, ``"ray"`` or an engine instance) the pool -- an array or
        Parquet path(s) -- is scored block by block where the engine runs blocks, against the
        broadcast ``W_`` and ``S_``; the result is the same.
        """
        if engine is not None:
            from labelsieve.engine import resolve_engine

            out = resolve_engine(engine).map_blocks(self._block_decrease, X_pool, block_size=block_size)
            return out["decrease"]  # type: ignore[index]
        X_pool = self._check_pool(X_pool)
        if self.order == 2:
            return second_order_loss_decrease(
                X_pool, self.W_, self.S_, self.M_, epsilon=self.epsilon_, fit_intercept=self.fit_intercept
            )
        return validation_loss_decrease(
            X_pool, self.W_, self.S_, epsilon=self.epsilon_, fit_intercept=self.fit_intercept
        )

    def _block_decrease(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"decrease": self.loss_decrease(block["X"])}

    def top_salutary(
        self, X_pool: Any, b: int, *, engine: Any = None, block_size: int = 65_536
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``b`` pool rows with the largest salutary gain (eq. 2), best first, ties to the lowest row.

        A distributed top-k: each block keeps its own best ``b`` where it runs. Returns
        ``(rows, salutary labels, gains)``; equals ``salutary_select(self.loss_decrease(X_pool), b)``.
        """
        from labelsieve.engine import resolve_engine

        check_positive_int("b", b, owner="top_salutary")

        def block_gain(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            dec = self.loss_decrease(block["X"])
            lab = np.argmax(dec, axis=1)
            return {"label": lab.astype(np.int64), "gain": dec[np.arange(len(lab)), lab]}

        top = resolve_engine(engine).top_k(block_gain, X_pool, b, "gain", block_size=block_size)
        return top["_row"], top["label"], top["gain"]

    def loss_decrease_labeled(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Predicted validation-loss decrease for points with given labels, shape (n,)."""
        return self.loss_decrease(X)[np.arange(len(y)), np.asarray(y)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of the trained model, shape (n, C)."""
        return softmax(augment(self._check_pool(X), self.fit_intercept) @ self.W_, axis=1)
