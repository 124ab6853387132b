"""Influence functions of L2 multinomial logistic regression: closed form vs autograd, solves, sign."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from scipy.stats import spearmanr

from labelsieve.active.influence import (
    LogisticInfluence,
    augment,
    fit_softmax_regression,
    hessian,
    hessian_vector_product,
    softmax_objective,
    solve_hessian,
    validation_gradient,
    validation_loss,
    validation_loss_decrease,
)
from labelsieve.errors import InputError, NotEnoughDataError, ParameterError


def _problem(seed: int, n: int = 40, d: int = 3, k: int = 3, shift: float = 1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(n, d))
    X[:, 0] += shift * y
    yv = rng.integers(0, k, 25)
    Xv = rng.normal(size=(25, d))
    Xv[:, 0] += shift * yv
    Xp = rng.normal(size=(15, d)) * 1.5
    return X, y, Xv, yv, Xp


def _torch_decrease(X, y, Xv, yv, Xp, W, C, fit_intercept):
    """Independent path: autograd Hessian, autograd per-sample gradients, pseudo-inverse solve."""
    torch = pytest.importorskip("torch", reason="torch is needed for the autograd reference")
    # explicit float64 everywhere; never torch.set_default_dtype (it would leak into other tests)
    Xa = torch.tensor(augment(X, fit_intercept), dtype=torch.float64)
    Xva = torch.tensor(augment(Xv, fit_intercept), dtype=torch.float64)
    Xpa = torch.tensor(augment(Xp, fit_intercept), dtype=torch.float64)
    n, k = len(y), W.shape[1]
    l2 = 1.0 / (C * n)
    mask = torch.ones(W.shape, dtype=torch.float64)
    if fit_intercept:
        mask[-1] = 0.0

    def J(w):
        Wt = w.reshape(W.shape)
        ce = torch.nn.functional.cross_entropy(Xa @ Wt, torch.tensor(y), reduction="mean")
        return ce + 0.5 * l2 * torch.sum(mask * Wt * Wt)

    w0 = torch.tensor(W.ravel())
    H = torch.autograd.functional.hessian(J, w0)
    wv = w0.clone().requires_grad_(True)
    Lv = torch.nn.functional.cross_entropy(Xva @ wv.reshape(W.shape), torch.tensor(yv), reduction="mean")
    (g_val,) = torch.autograd.grad(Lv, wv)
    s = torch.linalg.pinv(H) @ g_val
    out = np.empty((len(Xp), k))
    for i in range(len(Xp)):
        for c in range(k):
            wi = w0.clone().requires_grad_(True)
            li = torch.nn.functional.cross_entropy((Xpa[i:i + 1] @ wi.reshape(W.shape)), torch.tensor([c]))
            (gi,) = torch.autograd.grad(li, wi)
            out[i, c] = float(s @ gi) / n  # decrease = + eps g_val^T H^-1 grad l, eps = 1/N
    return out


@pytest.mark.parametrize("seed,k,fit_intercept,C", [(0, 3, True, 1.0), (1, 2, True, 0.3), (2, 4, False, 5.0),
                                                    (3, 3, True, 20.0)])
def test_closed_form_equals_autograd_all_labels(seed, k, fit_intercept, C):
    X, y, Xv, yv, Xp = _problem(seed, k=k)
    inf = LogisticInfluence(C=C, fit_intercept=fit_intercept, n_classes=k).fit(X, y, Xv, yv)
    ours = inf.loss_decrease(Xp)
    ref = _torch_decrease(X, y, Xv, yv, Xp, inf.W_, C, fit_intercept)
    assert ours.shape == (len(Xp), k)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_hessian_matches_finite_differences_of_the_gradient():
    X, y, *_ = _problem(4, d=2, k=3)
    W = fit_softmax_regression(X, y, n_classes=3, C=1.0)
    Xa = augment(X)
    Y = np.eye(3)[y]
    mask = np.ones((3, 1))
    mask[-1] = 0
    l2, w = 1.0 / len(y), np.full(len(y), 1.0 / len(y))
    h = 1e-6
    grad = lambda t: softmax_objective(t, Xa, Y, l2, mask, w)[1]
    E = np.eye(W.size)
    H_fd = np.array([(grad(W.ravel() + h * e) - grad(W.ravel() - h * e)) / (2 * h) for e in E])
    H = hessian(Xa, softmax(Xa @ W, axis=1), l2)
    np.testing.assert_allclose(H, H_fd, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5), d=st.integers(1, 6))
def test_hessian_vector_product_equals_dense_product(seed, k, d):
    rng = np.random.default_rng(seed)
    Xa = augment(rng.normal(size=(30, d)))
    P = softmax(rng.normal(size=(30, k)), axis=1)
    V = rng.normal(size=(d + 1, k))
    H = hessian(Xa, P, 0.1)
    np.testing.assert_allclose(hessian_vector_product(Xa, P, V, 0.1).ravel(), H @ V.ravel(), atol=1e-12)
    assert np.allclose(H, H.T)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_cg_solve_equals_dense_and_pseudo_inverse(fit_intercept):
    X, y, Xv, yv, _ = _problem(5, d=6, k=4)
    W = fit_softmax_regression(X, y, n_classes=4, C=2.0, fit_intercept=fit_intercept)
    Xa = augment(X, fit_intercept)
    l2 = 1.0 / (2.0 * len(y))
    G = validation_gradient(augment(Xv, fit_intercept), yv, W)
    dense = solve_hessian(Xa, W, G, l2, fit_intercept=fit_intercept, solver="dense")
    cg = solve_hessian(Xa, W, G, l2, fit_intercept=fit_intercept, solver="cg", tol=1e-12)
    H = hessian(Xa, softmax(Xa @ W, axis=1), l2, fit_intercept=fit_intercept)
    pinv = (np.linalg.pinv(H) @ G.ravel()).reshape(W.shape)
    np.testing.assert_allclose(cg, dense, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dense, pinv, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose((H @ dense.ravel()).reshape(W.shape), G, atol=1e-10)


def test_regularisation_convention_matches_sklearn_C():
    from sklearn.linear_model import LogisticRegression

    X, y, *_ = _problem(6, n=90, d=4, k=3)
    for C in (0.05, 1.0, 10.0):
        W = fit_softmax_regression(X, y, n_classes=3, C=C, tol=1e-12)
        sk = LogisticRegression(C=C, tol=1e-12, max_iter=20_000).fit(X, y)
        np.testing.assert_allclose(W[:-1], sk.coef_.T, atol=2e-6)
        np.testing.assert_allclose(softmax(augment(X) @ W, axis=1), sk.predict_proba(X), atol=2e-6)
    # two classes: the symmetric softmax with C equals scikit-learn's binary model with 2 C
    yb = (y > 0).astype(int)
    W = fit_softmax_regression(X, yb, n_classes=2, C=0.5, tol=1e-12)
    sk = LogisticRegression(C=1.0, tol=1e-12, max_iter=20_000).fit(X, yb)
    np.testing.assert_allclose(softmax(augment(X) @ W, axis=1), sk.predict_proba(X), atol=2e-6)


def test_add_one_in_retraining_spearman_and_sign():
    """Figure 3 in small: predicted decrease vs actual decrease after re-training with the point."""
    rng = np.random.default_rng(7)
    n, d, k = 80, 4, 3
    means = rng.normal(scale=1.2, size=(k, d))
    y = np.arange(n) % k
    X = means[y] + rng.normal(size=(n, d))
    yv = rng.integers(0, k, 200)
    Xv = means[yv] + rng.normal(size=(200, d))
    yp = rng.integers(0, k, 60)
    yp[:15] = (yp[:15] + 1) % k  # some wrong labels: harmful additions
    Xp = means[(yp - np.r_[np.ones(15, int), np.zeros(45, int)]) % k] + rng.normal(size=(60, d))
    inf = LogisticInfluence(C=1.0).fit(X, y, Xv, yv)
    pred = inf.loss_decrease_labeled(Xp, yp)
    base = validation_loss(Xv, yv, inf.W_)
    actual = np.array([
        base - validation_loss(Xv, yv, fit_softmax_regression(
            np.vstack([X, Xp[i:i + 1]]), np.append(y, yp[i]), n_classes=k, C=1.0, W0=inf.W_, tol=1e-12))
        for i in range(len(yp))
    ])
    assert spearmanr(pred, actual).statistic > 0.8
    # sign: positive predicted decrease means the loss really went down
    assert np.mean(np.sign(pred[np.abs(pred) > 1e-4]) == np.sign(actual[np.abs(pred) > 1e-4])) > 0.9
    assert actual[np.argmax(pred)] > 0 > actual[np.argmin(pred)]


def test_vectorised_equals_per_sample_gradient_loop():
    X, y, Xv, yv, Xp = _problem(8, d=5, k=4)
    inf = LogisticInfluence(C=1.0).fit(X, y, Xv, yv)
    ref = np.empty((len(Xp), 4))
    for i, x in enumerate(augment(Xp)):
        p = softmax(x @ inf.W_)
        for c in range(4):
            g = np.outer(x, p - np.eye(4)[c])  # grad of CE(x, c) w.r.t. W
            ref[i, c] = inf.epsilon_ * np.sum(inf.S_ * g)
    np.testing.assert_allclose(validation_loss_decrease(Xp, inf.W_, inf.S_, epsilon=inf.epsilon_), ref,
                               rtol=1e-10, atol=1e-14)


def test_does_not_mutate_inputs():
    X, y, Xv, yv, Xp = _problem(9)
    copies = [a.copy() for a in (X, y, Xv, yv, Xp)]
    LogisticInfluence().fit(X, y, Xv, yv).loss_decrease(Xp)
    for a, b in zip((X, y, Xv, yv, Xp), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def _nan_pool(Xp):
    Xp = Xp.copy()
    Xp[3, 1] = np.nan
    return Xp


@pytest.mark.parametrize("case,exc,match", [
    ("nan_pool", InputError, r"non-finite value \(nan\) at row 3, column 1"),
    ("wide_pool", InputError, "pool has 4 features; the model was trained on 3"),
    ("one_class", NotEnoughDataError, r"only class\(es\) \[1\]"),
    ("C_zero", ParameterError, r"'C' parameter of LogisticInfluence must be in \(0.0, inf\)\. Got 0"),
    ("C_negative", ParameterError, r"'C' parameter of LogisticInfluence .* Got -1"),
    ("solver", ParameterError, "'solver' parameter of LogisticInfluence must be one of"),
    ("bad_label", InputError, "training set label 7 at row 0"),
])
def test_bad_input_is_named(case, exc, match):
    X, y, Xv, yv, Xp = _problem(10)
    kw = {}
    if case == "one_class":
        y = np.ones_like(y)
    if case == "bad_label":
        y = y.copy()
        y[0] = 7
        kw["n_classes"] = 3
    if case == "C_zero":
        kw["C"] = 0.0
    if case == "C_negative":
        kw["C"] = -1.0
    if case == "solver":
        kw["solver"] = "lu"
    with pytest.raises(exc, match=match):
        inf = LogisticInfluence(**kw).fit(X, y, Xv, yv)
        if case == "nan_pool":
            inf.loss_decrease(_nan_pool(Xp))
        if case == "wide_pool":
            inf.loss_decrease(np.hstack([Xp, Xp[:, :1]]))


def test_second_order_term_equals_explicit_quadratic_form():
    from labelsieve.active.influence import hessian, second_order_loss_decrease, validation_curvature_matrix

    X, y, Xv, yv, Xp = _problem(11, d=2, k=3)
    inf = LogisticInfluence(C=1.0, order=2).fit(X, y, Xv, yv)
    ours = inf.loss_decrease(Xp)
    W, eps = inf.W_, inf.epsilon_
    Xa, Xva = augment(X), augment(Xv)
    H = hessian(Xa, softmax(Xa @ W, axis=1), inf.l2_)
    Hv = hessian(Xva, softmax(Xva @ W, axis=1), 0.0)
    Hp = np.linalg.pinv(H)
    g = inf.g_val_.ravel()
    for i, x in enumerate(augment(Xp)):
        p = softmax(x @ W)
        for c in range(3):
            dW = -eps * Hp @ np.outer(x, p - np.eye(3)[c]).ravel()
            assert np.isclose(ours[i, c], -(g @ dW + 0.5 * dW @ Hv @ dW), rtol=1e-6, atol=1e-12)
    M = validation_curvature_matrix(Xa, Xva, W, inf.l2_)
    np.testing.assert_allclose(second_order_loss_decrease(Xp, W, inf.S_, M, epsilon=eps), ours)


def test_second_order_avoids_the_overstated_gains_of_implausible_labels():
    """First-order eq. (1) overstates the gain of adding a point under a label the model rejects;
    the curvature term removes most of that: its top salutary picks really help on average."""
    rng = np.random.default_rng(4)
    means = rng.normal(scale=2.0, size=(3, 3))
    yy = np.arange(300) % 3
    X = means[yy] + rng.normal(size=(300, 3))
    Xl, yl, Xp, Xv, yv = X[:60], yy[:60], X[60:200], X[200:], yy[200:]
    first = LogisticInfluence(order=1).fit(Xl, yl, Xv, yv)
    second = LogisticInfluence(order=2).fit(Xl, yl, Xv, yv)
    base = validation_loss(Xv, yv, first.W_)

    def actual(i, c):
        W1 = fit_softmax_regression(np.vstack([Xl, Xp[i:i + 1]]), np.append(yl, c), n_classes=3, W0=first.W_)
        return base - validation_loss(Xv, yv, W1)

    gains = {}
    for name, inf in (("first", first), ("second", second)):
        dec = inf.loss_decrease(Xp)
        top = np.argsort(-dec.max(axis=1))[:10]
        gains[name] = np.array([actual(i, int(dec[i].argmax())) for i in top])
    assert (gains["second"] > 0).all()
    assert gains["second"].mean() > gains["first"].mean()


def test_order_parameter_is_validated():
    X, y, Xv, yv, _ = _problem(12)
    with pytest.raises(ParameterError, match="'order' parameter of LogisticInfluence must be 1 or 2. Got 3"):
        LogisticInfluence(order=3).fit(X, y, Xv, yv)
