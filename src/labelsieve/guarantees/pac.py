"""PAC labeling: a guarantee on the error of the whole labeled data set.

Candès, Ilyas & Zrnic, "Probably Approximately Correct Labels", arXiv:2506.10908 (2025).
Items with uncertainty above a threshold go to humans, the rest keep the model's label, and the
threshold is chosen from a random audit sample so that, with probability >= 1 - alpha over the
audit draws,

    (1/n) * sum_i loss(Y_i, Ytilde_i) <= epsilon                                   (paper, eq. 1)

for the *fixed* set of n items and predictions (no distributional assumption on the data).

The pieces (pure NumPy/SciPy; the class :class:`PACLabeler` wires them together):

* :func:`pac_sampling_probs` — the audit distribution pi (uniform, proportional to uncertainty, or a
  user prior), mixed with uniform so every pi_i > 0.
* :func:`ipw_losses` — Z_j = loss_j / (n pi_j) for K draws with replacement from pi. For every
  threshold u, Z_j(u) = Z_j 1{U_j <= u} is an unbiased estimate of
  L(u) = (1/n) sum_i loss_i 1{U_i <= u}, the error of auto-labeling {U_i <= u}.
* :func:`clt_upper` (asymptotic) and :func:`betting_upper` (Waudby-Smith & Ramdas 2024, finite
  sample) — upper confidence bounds on the mean of Z(u), vectorised over candidate thresholds.
* :func:`pac_threshold` — the fixed-sequence scan that picks the threshold.

Why the threshold is valid at level alpha (fixed-sequence scan)
---------------------------------------------------------------
Candidates u_1 < u_2 < ... are the distinct uncertainties of the *pool* (fixed before sampling).
They are tested in increasing order; the scan stops at the first candidate whose bound exceeds
epsilon, and the items with uncertainty below it are auto-labeled. L(u) is nondecreasing in u,
so let u* be the first candidate with L(u*) > epsilon (deterministic: it depends on the data, not
on the audit). The chosen rule has error > epsilon only if the scan passed u*, i.e. only if the
bound at that single fixed u* was <= epsilon < L(u*): probability <= alpha by the validity of one
confidence bound. No monotonicity of the *bound* in u is needed (the betting bound with
data-dependent bets is not monotone in the data), and alpha is spent once, not split over
candidates. This is the paper's inf-form threshold (the first u whose bound exceeds epsilon);
the reference code binary-searches the sorted uncertainties instead, which gives the same answer
when the bound happens to be monotone in u.

Z(u) changes only at the audit sample's uncertainties, so scanning those (plus "below every audit
value", where all Z are 0) is exactly the scan over every pool value: the first failing pool
value is always an audit value ``a_f``, and the rule auto-labels ``U_i < a_f``.
For very large audits, ``max_candidates`` scans a fixed grid of pool quantiles instead (still a
fixed sequence, so still valid; the threshold is coarser by at most n / max_candidates items).

Notes
-----
* Audit draws follow importance sampling with replacement (draw i with probability pi_i, weight
  1/(n pi_i)). The reference code draws items uniformly and keeps each with probability pi_i
  (weight xi/pi_i); both give i.i.d. bounded unbiased Z, so the same bounds apply. With the
  uniform prior the two coincide (Z = loss).
* Audited items keep their human label, so the realised error is at most L(threshold).
* Squared loss: epsilon bounds the mean squared error, which needs a known bound on each
  item's loss (``loss_bound``, e.g. (label range)^2); losses above it are clipped and the
  certificate says the guarantee is then on the clipped loss.
* Losses may be any values in [0, loss_bound], e.g. the posterior probability that a crowd
  label disagrees with the prediction.

References
----------
E. J. Candès, A. Ilyas, T. Zrnic. Probably Approximately Correct Labels. arXiv:2506.10908, 2025.
I. Waudby-Smith, A. Ramdas. Estimating means of bounded random variables by betting. JRSS-B 2024.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.errors import InputError, ParameterError
from labelsieve.guarantees.certificate import Certificate

LOSSES = ("zero-one", "squared")
BOUNDS = ("betting", "clt")
PRIORS = ("uniform", "uncertainty")
#: c in the truncation lambda_t <= c / (1 - m) of the bets (WSR 2024, Sec. 5; the reference's value)
BET_TRUNCATION = 0.75
#: elements of one (draws x candidates) block; bounds memory at a few arrays of this many float64
BLOCK_ELEMENTS = 1 << 21
#: bisection steps for the betting bound (interval [0, 1] -> width 2**-50)
BISECTION_STEPS = 50


# --------------------------------------------------------------------------------------------------
# sampling and inverse-propensity weights
# --------------------------------------------------------------------------------------------------


def uncertainty_from_confidence(confidence: np.ndarray) -> np.ndarray:
    """The default uncertainty score, U = 1 - confidence.

    >>> uncertainty_from_confidence(np.array([1.0, 0.75])).tolist()
    [0.0, 0.25]
    """
    return 1.0 - np.asarray(confidence, dtype=np.float64)


def pac_sampling_probs(
    uncertainty: np.ndarray, prior: str | np.ndarray = "uniform", *, mix: float = 0.5
) -> np.ndarray:
    """Audit distribution pi over the n items (sums to 1, every entry > 0).

    Parameters
    ----------
    uncertainty : array of shape (n,)
        Non-negative uncertainty scores U_i.
    prior : "uniform", "uncertainty" or array of shape (n,)
        ``"uncertainty"``: pi proportional to U (items the model doubts are audited more, where its
        errors are). An array: non-negative user weights. Both are mixed with uniform.
    mix : float in (0, 1]
        Share of uniform: pi = (1 - mix) w / sum(w) + mix / n, so 1 / (n pi_i) <= 1 / mix bounds
        the inverse-propensity weights. Ignored for the uniform prior.

    Returns
    -------
    array of shape (n,)

    >>> pac_sampling_probs(np.array([0.0, 0.5, 1.5]), "uncertainty", mix=0.5).round(4).tolist()
    [0.1667, 0.2917, 0.5417]
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    n = len(u)
    if n == 0:
        raise InputError("no items: the pool is empty.")
    if isinstance(prior, str):
        check_option("prior", prior, owner="pac_sampling_probs", options=PRIORS)
        if prior == "uniform":
            return np.full(n, 1.0 / n)
        w = u
    else:
        w = np.asarray(prior, dtype=np.float64)
        if w.shape != (n,):
            raise InputError(f"the sampling prior has shape {w.shape}; expected ({n},), one weight per item.")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"sampling weight of item {r} is {w[r]!r}; weights must be finite and >= 0.")
    check_interval("mix", mix, owner="pac_sampling_probs", low=0.0, high=1.0, closed="right")
    total = w.sum()
    if total <= 0:
        return np.full(n, 1.0 / n)
    out: np.ndarray = (1.0 - mix) * w / total + mix / n  # mixed with uniform: pi_i >= mix / n > 0
    return out


def draw_audit(pi: np.ndarray, size: int, random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """``size`` item indices drawn with replacement from ``pi``, in draw order (the bets' order).

    >>> draw_audit(np.array([0.0, 1.0]), 3, 0).tolist()
    [1, 1, 1]
    """
    rng = np.random.default_rng(random_state)
    return rng.choice(len(pi), size=size, replace=True, p=pi)


def ipw_losses(losses: np.ndarray, pi: np.ndarray, n: int) -> np.ndarray:
    """Inverse-propensity-weighted losses Z_j = loss_j / (n pi_j) of the audit draws.

    ``losses`` and ``pi`` are the drawn items' loss and sampling probability (shape (K,)).
    E[Z 1{U <= u}] = sum_i pi_i loss_i 1{U_i <= u} / (n pi_i) = L(u).

    >>> ipw_losses(np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.25, 0.25]), 3).round(4).tolist()
    [0.6667, 0.0, 1.3333]
    """
    return np.asarray(losses, dtype=np.float64) / (n * np.asarray(pi, dtype=np.float64))


def ipw_range(pi: np.ndarray, loss_bound: float = 1.0) -> float:
    """Upper end B of the range of Z: loss_bound / (n min_i pi_i) (1 for uniform 0-1 loss)."""
    pi = np.asarray(pi, dtype=np.float64)
    return float(loss_bound / (len(pi) * pi.min()))


# --------------------------------------------------------------------------------------------------
# upper confidence bounds on a mean, one per column
# --------------------------------------------------------------------------------------------------


def _as_columns(x: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None], True
    if a.ndim != 2:
        raise InputError(f"samples must have shape (K,) or (K, candidates); got {a.shape}.")
    return a, False


def clt_upper(x: np.ndarray, alpha: float) -> np.ndarray | float:
    """One-sided CLT upper bound mean + z_{1-alpha} s / sqrt(K) per column (asymptotic only).

    ``s`` is the sample standard deviation (ddof = 1; 0 for K = 1).

    >>> round(float(clt_upper(np.array([0.0, 1.0, 0.0, 1.0]), 0.05)), 5)  # 0.5 + 1.6449 * 0.57735 / 2
    0.97483
    """
    a, flat = _as_columns(x)
    k = a.shape[0]
    sd = a.std(axis=0, ddof=1) if k > 1 else np.zeros(a.shape[1])
    out = a.mean(axis=0) + ndtri(1.0 - alpha) * sd / math.sqrt(k)  # normal approximation
    return float(out[0]) if flat else out


def _bets(y: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable plug-in bets lambda_t for each row of y (rows: candidates, columns: draws).

    mu_t = (1/2 + sum_{s<=t} y_s) / (1 + t), sigma2_t = (1/4 + sum_{s<=t} (y_s - mu_s)^2) / (1 + t),
    lambda_t = sqrt(2 log(2/alpha) / (K sigma2_{t-1})), sigma2_0 = 1/4          (WSR 2024, eq. 26,
    the fixed-sample-size tuning the reference uses) — lambda_t uses only y_1..y_{t-1}.
    """
    k = y.shape[1]
    inv = 1.0 / np.arange(2, k + 2, dtype=np.float64)
    d = np.cumsum(y, axis=1)
    d += 0.5
    d *= inv  # mu_t
    np.subtract(y, d, out=d)
    d *= d
    np.cumsum(d, axis=1, out=d)
    d += 0.25
    d *= inv  # sigma2_t
    lam = np.empty_like(d)
    lam[:, 0] = 0.25
    lam[:, 1:] = d[:, :-1]  # sigma2_{t-1}
    lam *= k / (2.0 * math.log(2.0 / alpha))
    np.sqrt(lam, out=lam)
    np.divide(1.0, lam, out=lam)
    return lam


def _max_log_capital(y: np.ndarray, lam: np.ndarray, m: np.ndarray, c: float) -> np.ndarray:
    """max_t log K_t(m) per row, for the capital that bets the mean is below m.

    K_t(m) = prod_{s<=t} (1 - min(lambda_s, c/(1-m)) (y_s - m))        (WSR 2024, eq. 24, theta = 0)

    Each factor is nondecreasing in m (for either sign of y_s - m), so the set of rejected m
    (max_t K_t >= 1/alpha) is an upper interval and bisection on m is exact.
    """
    with np.errstate(divide="ignore"):
        cap = np.where(m < 1.0, c / np.maximum(1.0 - m, 0.0), np.inf)
    f = np.minimum(lam, cap[:, None])
    d = y - m[:, None]
    d *= f
    np.negative(d, out=d)
    np.log1p(d, out=d)
    np.cumsum(d, axis=1, out=d)
    best: np.ndarray = d.max(axis=1)
    return best


def _rows_rejected(y: np.ndarray, m: np.ndarray, alpha: float, truncation: float) -> np.ndarray:
    """For rows y in [0, 1] and levels m (rescaled), whether "mean >= m" is rejected; in blocks."""
    out = np.empty(y.shape[0], dtype=bool)
    width = max(1, BLOCK_ELEMENTS // max(y.shape[1], 1))
    log_level = math.log(1.0 / alpha)
    for s in range(0, y.shape[0], width):
        yb, mb = y[s : s + width], m[s : s + width]
        logk = _max_log_capital(yb, _bets(yb, alpha), np.minimum(mb, 1.0), truncation)
        out[s : s + width] = (mb >= 1.0) | (logk >= log_level)  # m >= the range's top: trivially certified
    return out


def betting_rejects(
    x: np.ndarray, m: float | np.ndarray, alpha: float, *, upper: float = 1.0, truncation: float = BET_TRUNCATION
) -> np.ndarray | bool:
    """Whether the betting test rejects "mean >= m" at level alpha, per column.

    ``x`` in [0, upper], shape (K,) or (K, C); ``m`` in the units of ``x``. True means the upper
    confidence bound :func:`betting_upper` is <= m (the mean is certified below m).

    >>> bool(betting_rejects(np.zeros(200), 0.05, 0.05))
    True
    """
    a, flat = _as_columns(x)
    y = np.ascontiguousarray(a.T) / upper
    mm = np.broadcast_to(np.asarray(m, dtype=np.float64) / upper, (a.shape[1],))
    out = _rows_rejected(y, mm, alpha, truncation)
    return bool(out[0]) if flat else out


def _rows_upper(y: np.ndarray, alpha: float, grid: np.ndarray | None, truncation: float) -> np.ndarray:
    """Betting upper bound (rescaled units) of each row of y in [0, 1]; see :func:`betting_upper`."""
    n_rows, k = y.shape
    log_level = math.log(1.0 / alpha)
    out = np.empty(n_rows)
    width = max(1, BLOCK_ELEMENTS // max(k, 1))
    for s in range(0, n_rows, width):
        yb = y[s : s + width]
        lam = _bets(yb, alpha)
        nb = yb.shape[0]

        def rejected(m: np.ndarray, yb: np.ndarray = yb, lam: np.ndarray = lam) -> np.ndarray:
            return _max_log_capital(yb, lam, m, truncation) >= log_level

        if grid is None:
            lo, hi = np.zeros(nb), np.ones(nb)  # m = 0 is never rejected (every factor <= 1)
            top_ok = ~rejected(hi)
            for _ in range(BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                r = rejected(mid)
                hi = np.where(r, mid, hi)
                lo = np.where(r, lo, mid)
            out[s : s + nb] = np.where(top_ok, 1.0, hi)
        else:
            g = np.asarray(grid, dtype=np.float64)
            lo_i, hi_i = np.full(nb, -1), np.full(nb, len(g))  # invariant: g[lo] accepted, g[hi] rejected
            while np.any(hi_i - lo_i > 1):
                mid_i = (lo_i + hi_i) // 2
                active = hi_i - lo_i > 1
                r = rejected(g[np.clip(mid_i, 0, len(g) - 1)])
                hi_i = np.where(active & r, mid_i, hi_i)
                lo_i = np.where(active & ~r, mid_i, lo_i)
            # no grid value accepted: the reference falls back to its second grid value
            out[s : s + nb] = np.where(lo_i >= 0, g[np.maximum(lo_i, 0)], g[min(1, len(g) - 1)])
    return out


def betting_upper(
    x: np.ndarray,
    alpha: float,
    *,
    upper: float = 1.0,
    grid: np.ndarray | None = None,
    truncation: float = BET_TRUNCATION,
) -> np.ndarray | float:
    """Waudby-Smith–Ramdas betting upper confidence bound on the mean, per column, vectorised.

    The bound is sup{m : max_t K_t(m) < 1/alpha} for the capital process of
    :func:`_max_log_capital` on y = x / upper in [0, 1] (Ville's inequality makes
    P(true mean rejected) <= alpha for a fixed sample size K). All columns are bisected on m at once
    (in blocks of columns): no Python loop over candidates or over values of m.

    Parameters
    ----------
    x : array of shape (K,) or (K, C)
        Samples in draw order (the bets are predictable, so order matters), values in [0, upper].
    alpha : float in (0, 1)
    upper : float
        Upper end of the samples' range (the inverse-propensity bound of :func:`ipw_range`).
    grid : array, optional
        Increasing values of m in (0, 1) (rescaled units). The bound is then the largest grid value
        not rejected, as the reference code reports it (it loops over 100,000 grid values); found by
        bisection on the grid index. Default: continuous bisection to width 2**-50.
    truncation : float
        c in lambda_t <= c / (1 - m).

    Returns
    -------
    float or array of shape (C,), in the units of ``x``.

    >>> round(float(betting_upper(np.array([0.0]), 0.5)), 6)  # 1 + 0.75 m / (1 - m) = 2 at m = 4/7
    0.571429
    """
    a, flat = _as_columns(x)
    out = _rows_upper(np.ascontiguousarray(a.T) / upper, alpha, grid, truncation) * upper
    return float(out[0]) if flat else out


def upper_bound(x: np.ndarray, alpha: float, bound: str = "betting", *, upper: float = 1.0) -> np.ndarray | float:
    """The ``bound`` ("betting" or "clt") upper confidence bound per column of ``x``."""
    check_option("bound", bound, owner="upper_bound", options=BOUNDS)
    if bound == "clt":
        return clt_upper(x, alpha)
    return betting_upper(x, alpha, upper=upper)


# --------------------------------------------------------------------------------------------------
# the threshold
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PACThreshold:
    """Result of :func:`pac_threshold`.

    ``threshold``: auto-label the items with uncertainty ``<= threshold`` (``-inf``: none).
    ``error_bound``: the upper confidence bound on L(threshold) (0 when nothing is auto-labeled).
    ``estimate``: the inverse-propensity estimate of L(threshold).
    ``stopped_at``: uncertainty of the first candidate whose bound exceeded epsilon (None: none did).
    ``candidates`` / ``passed``: the candidates tested, in order, and which passed (``-inf`` stands
    for "below every audit value", where every Z is 0).
    """

    threshold: float
    error_bound: float
    estimate: float
    stopped_at: float | None
    n_candidates: int
    candidates: np.ndarray = field(repr=False)
    passed: np.ndarray = field(repr=False)


def candidate_columns(z: np.ndarray, u_audit: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Z_j(u) = Z_j 1{U_j <= u} for every candidate u: array of shape (K, len(candidates))."""
    return candidate_rows(z, u_audit, candidates).T


def candidate_rows(z: np.ndarray, u_audit: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The transpose of :func:`candidate_columns`, shape (len(candidates), K), C-contiguous."""
    return np.where(u_audit[None, :] <= candidates[:, None], z[None, :], 0.0)


def pac_threshold(
    uncertainty: np.ndarray,
    audit_idx: np.ndarray,
    audit_losses: np.ndarray,
    pi: np.ndarray,
    *,
    epsilon: float,
    alpha: float,
    bound: str = "betting",
    loss_bound: float = 1.0,
    max_candidates: int | None = None,
) -> PACThreshold:
    """The largest uncertainty threshold that the fixed-sequence scan certifies (see module doc).

    Parameters
    ----------
    uncertainty : array of shape (n,)
        U_i of every item of the pool.
    audit_idx : int array of shape (K,)
        The audit draws (with replacement, in draw order) from ``pi``.
    audit_losses : array of shape (K,)
        loss(Y, Yhat) of each draw, in [0, loss_bound].
    pi : array of shape (n,)
        The sampling distribution the draws came from (:func:`pac_sampling_probs`).
    epsilon, alpha : float in (0, 1)
        Target data-set error and failure probability (all of alpha goes to the one scan).
    bound : "betting" (finite-sample) or "clt" (asymptotic)
    loss_bound : float
        Upper end of the loss range (1 for 0-1 loss); with pi it fixes the range of Z.
    max_candidates : int, optional
        Scan at most this many fixed pool quantiles instead of every distinct audit value.

    Returns
    -------
    PACThreshold

    >>> u = np.linspace(0, 1, 1000); lossy = (u > 0.8).astype(float)     # errors only above 0.8
    >>> pi = pac_sampling_probs(u); idx = draw_audit(pi, 500, 0)
    >>> r = pac_threshold(u, idx, lossy[idx], pi, epsilon=0.05, alpha=0.05)
    >>> 0.8 <= r.threshold < 0.85
    True
    """
    check_open_unit("epsilon", epsilon, owner="pac_threshold")
    check_open_unit("alpha", alpha, owner="pac_threshold")
    check_option("bound", bound, owner="pac_threshold", options=BOUNDS)
    u = np.asarray(uncertainty, dtype=np.float64)
    idx = np.asarray(audit_idx, dtype=np.int64)
    pi = np.asarray(pi, dtype=np.float64)
    n, k = len(u), len(idx)
    if k == 0:
        raise InputError("the audit sample is empty.")
    losses = np.asarray(audit_losses, dtype=np.float64)
    if losses.shape != (k,):
        raise InputError(f"audit_losses has shape {losses.shape}; expected ({k},), one loss per draw.")
    z = ipw_losses(losses, pi[idx], n)
    b = ipw_range(pi, loss_bound)
    u_a = u[idx]
    if max_candidates is not None and len(np.unique(u_a)) > max_candidates:
        check_positive_int("max_candidates", max_candidates, owner="pac_threshold")
        grid = np.unique(np.quantile(u, np.linspace(0.0, 1.0, max_candidates), method="inverted_cdf"))
        exact = False
    else:
        grid = np.unique(u_a)
        exact = True
    cands = np.concatenate([[-np.inf], grid])  # -inf: below every audit value, all Z = 0
    passed = np.zeros(len(cands), dtype=bool)
    first_fail: int | None = None
    widest = max(1, BLOCK_ELEMENTS // k)
    width, s = max(1, min(widest, 64)), 0
    while s < len(cands):  # blocks grow geometrically: little wasted work past the first failure
        rows = candidate_rows(z, u_a, cands[s : s + width])
        if bound == "clt":
            ok = np.asarray(clt_upper(rows.T, alpha) <= epsilon, dtype=bool)
        else:
            rows /= b
            ok = _rows_rejected(rows, np.full(len(rows), epsilon / b), alpha, BET_TRUNCATION)
        passed[s : s + len(ok)] = ok
        fails = np.flatnonzero(~ok)
        if len(fails):
            first_fail = s + int(fails[0])
            break
        s += len(ok)
        width = min(widest, 2 * width)
    tested = len(cands) if first_fail is None else first_fail + 1
    if first_fail is None:
        threshold, best = float(u.max()), len(cands) - 1
    elif first_fail == 0:
        threshold, best = -np.inf, None
    else:
        best = first_fail - 1
        if exact:  # every pool value below the failing audit value has the passing Z of cands[best]
            su = np.sort(u)
            pos = int(np.searchsorted(su, cands[first_fail], side="left")) - 1
            threshold = float(su[pos]) if pos >= 0 else -np.inf
        else:
            threshold = float(cands[best])
    if best is None or threshold == -np.inf:
        err, est = 0.0, 0.0  # nothing auto-labeled: the error is 0 with certainty
    else:
        col = candidate_columns(z, u_a, np.array([cands[best]]))[:, 0]
        est = float(col.mean())
        err = float(clt_upper(col, alpha)) if bound == "clt" else float(betting_upper(col, alpha, upper=b))
    return PACThreshold(
        threshold=threshold,
        error_bound=err,
        estimate=est,
        stopped_at=None if first_fail is None else float(cands[first_fail]),
        n_candidates=len(cands),
        candidates=cands[:tested],
        passed=passed[:tested],
    )


# --------------------------------------------------------------------------------------------------
# losses, certificate, class
# --------------------------------------------------------------------------------------------------


def pac_losses(y_true: np.ndarray, y_pred: np.ndarray, loss: str = "zero-one", *, loss_bound: float = 1.0) -> np.ndarray:
    """Per-item loss: 1{y != yhat} or min((y - yhat)^2, loss_bound).

    >>> pac_losses(np.array([1.0, 3.0]), np.array([1.0, 0.0]), "squared", loss_bound=4.0).tolist()
    [0.0, 4.0]
    """
    check_option("loss", loss, owner="pac_losses", options=LOSSES)
    if loss == "zero-one":
        wrong: np.ndarray = np.asarray(np.asarray(y_true) != np.asarray(y_pred)).astype(np.float64)
        return wrong
    d = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return np.minimum(d * d, loss_bound)


@dataclass(frozen=True)
class PACCertificate(Certificate):
    """What a PAC labeling run guarantees: the one :class:`Certificate` with ``guarantee="dataset"``.

    With probability >= 1 - delta over the audit draws, the mean loss of the final labels over
    all ``n_items`` items is <= ``epsilon`` — a finite-sample statement with the betting bound
    (``guaranteed``), an asymptotic one with the CLT bound (not ``guaranteed``). ``thresholds[0]`` is
    the uncertainty threshold (``-inf``: nothing auto-labeled); ``n_validation`` the audit draws.
    """

    error_bound: float = float("nan")
    human_labels: int = 0
    auto_labels: int = 0
    loss: str = "zero-one"
    prior: str = "uniform"
    n_clipped: int = 0
    loss_bound: float = 1.0
    noisy_audit: bool = False  #: audit labels carried posteriors (crowd labels): an expected-error statement

    @classmethod
    def make(cls, *, epsilon: float, delta: float, bound: str, threshold: float, error_bound: float, n: int,
             audit: int, **details: Any) -> PACCertificate:
        """The certificate of one fixed-sequence scan at level ``delta`` over an audit of ``audit`` draws."""
        return cls(thresholds=np.array([threshold], dtype=np.float64), epsilon=epsilon, delta=delta, bound=bound,
                   scope="global", min_n=1, delta_per_test=delta, n_validation=audit, scan="fixed-sequence",
                   scans=(), guarantee="dataset", n_items=n, bound_guaranteed=bound == "betting",
                   error_bound=error_bound, **details)

    @property
    def threshold(self) -> float:
        return float(self.thresholds[0])

    @property
    def n(self) -> int:
        return int(self.n_items or 0)

    @property
    def audit(self) -> int:
        return int(self.n_validation)

    def statement(self, *, delta: float | None = None, spent: str | None = None) -> str:
        what = "0-1 loss (share of wrong labels)" if self.loss == "zero-one" else "squared error"
        if self.loss == "squared" and self.n_clipped:
            what = f"squared error clipped at {self.loss_bound:g} ({self.n_clipped} audited losses were clipped)"
        kind = ("Waudby-Smith-Ramdas betting bound, finite-sample" if self.bound == "betting"
                else "CLT bound, asymptotic only: NOT a finite-sample guarantee")
        d = self.delta if delta is None else delta
        kept = "none" if self.threshold == -np.inf else f"uncertainty <= {self.threshold:.6g}"
        return (
            f"with probability >= {1 - d:g} over the {self.audit} audit draws ({self.prior} prior), the mean "
            f"{what} of the final labels of all {self.n} items (human and model labels together) is <= "
            f"{self.epsilon:g}; {self.human_labels} human labels, {self.auto_labels} model labels kept "
            f"({kept}); {kind}, fixed-sequence scan over uncertainty thresholds; "
            + ("audit labels are noisy (crowd posteriors): the bound is on the expected share of wrong labels "
               "given calibrated posteriors, and the routed items' human labels are assumed correct"
               if self.noisy_audit else "assumes the human labels are correct")
        )


Oracle = Callable[[np.ndarray], np.ndarray]


class PACLabeler:
    """PAC labeling of a pool of model predictions (Candès, Ilyas & Zrnic 2025).

    Parameters
    ----------
    epsilon : float in (0, 1)
        Bound on the final data set's mean loss (share of wrong labels for 0-1 loss).
    alpha : float in (0, 1)
        Failure probability of the guarantee (``delta`` in the CLI).
    audit : int
        K, the audit draws (with replacement); the unique drawn items are labeled by humans.
    prior : "uniform", "uncertainty" or array of shape (n,)
        Audit sampling prior (see :func:`pac_sampling_probs`), mixed with uniform by ``mix``.
    mix : float in (0, 1]
    loss : "zero-one" or "squared"
    loss_bound : float, optional
        Required for squared loss: a bound on (y - yhat)^2 (e.g. (label range)^2).
    bound : "betting" (finite-sample) or "clt" (asymptotic)
    max_candidates : int, optional
        See :func:`pac_threshold`.
    random_state : int or Generator, optional

    Attributes
    ----------
    pi_ : sampling probabilities, shape (n,)
    audit_idx_ : the K draws in draw order (repeats possible)
    audited_mask_, routed_mask_, auto_mask_ : boolean masks of shape (n,); routed = uncertainty
        above the threshold and not audited; auto = keeps the model's label
    threshold_ : float (``-inf``: nothing auto-labeled)
    labels_ : final labels, shape (n,)
    result_ : :class:`PACThreshold`;  certificate_ : :class:`PACCertificate`

    Examples
    --------
    >>> rng = np.random.default_rng(0); n = 2000
    >>> conf = rng.uniform(0.5, 1.0, n); y = rng.integers(0, 2, n)
    >>> pred = np.where(rng.random(n) < conf, y, 1 - y)      # calibrated: P(correct) = conf
    >>> lab = PACLabeler(epsilon=0.05, audit=500, random_state=0).fit(pred, 1 - conf, lambda i: y[i])
    >>> bool(np.mean(lab.labels_ != y) <= 0.05), lab.certificate_.guarantee
    (True, 'dataset')
    """

    def __init__(
        self,
        *,
        epsilon: float = 0.05,
        alpha: float = 0.05,
        audit: int = 500,
        prior: str | np.ndarray = "uniform",
        mix: float = 0.5,
        loss: str = "zero-one",
        loss_bound: float | None = None,
        bound: str = "betting",
        max_candidates: int | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.alpha = alpha
        self.audit = audit
        self.prior = prior
        self.mix = mix
        self.loss = loss
        self.loss_bound = loss_bound
        self.bound = bound
        self.max_candidates = max_candidates
        self.random_state = random_state

    def _check(self, n: int) -> float:
        owner = type(self).__name__
        check_open_unit("epsilon", self.epsilon, owner=owner)
        check_open_unit("alpha", self.alpha, owner=owner)
        check_positive_int("audit", self.audit, owner=owner)
        if self.audit > n:
            raise ParameterError(f"The 'audit' parameter of {owner} must be <= the number of items ({n}). "
                                 f"Got {self.audit!r} instead.")
        check_option("loss", self.loss, owner=owner, options=LOSSES)
        check_option("bound", self.bound, owner=owner, options=BOUNDS)
        if isinstance(self.prior, str):
            check_option("prior", self.prior, owner=owner, options=PRIORS)
        if self.max_candidates is not None:
            check_positive_int("max_candidates", self.max_candidates, owner=owner)
        if self.loss == "zero-one":
            return 1.0
        if self.loss_bound is None:
            raise ParameterError(f"The 'loss_bound' parameter of {owner} must be a number > 0 for squared loss "
                                 "(a bound on (y - yhat)^2). Got None instead.")
        return check_interval("loss_bound", self.loss_bound, owner=owner, low=0.0, high=math.inf, closed="neither")

    def split(self, uncertainty: np.ndarray) -> np.ndarray:
        """Set ``pi_`` and draw the audit (``audit_idx_``); return the unique items to label first."""
        u = np.asarray(uncertainty, dtype=np.float64)
        self._check(len(u))
        self.pi_ = pac_sampling_probs(u, self.prior, mix=self.mix)
        self.audit_idx_ = draw_audit(self.pi_, self.audit, self.random_state)
        return np.unique(self.audit_idx_)

    def fit(self, predictions: np.ndarray, uncertainty: np.ndarray, oracle: Oracle) -> PACLabeler:
        """Draw the audit, ask ``oracle`` for it, choose the threshold, ask ``oracle`` for the routed items.

        ``oracle(indices) -> labels`` (same order) is called twice: with the unique audited items,
        then with the items above the threshold that were not audited (skipped when there are none).
        """
        pred = np.asarray(predictions)
        u = np.asarray(uncertainty, dtype=np.float64)
        if pred.shape != u.shape or pred.ndim != 1:
            raise InputError(f"predictions {pred.shape} and uncertainty {u.shape} must be 1-D of the same length.")
        bad = ~np.isfinite(u) | (u < 0)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise InputError(f"uncertainty of item {r} is {u[r]!r}; it must be finite and >= 0.")
        first = self.split(u)
        y_first = np.asarray(oracle(first))
        if len(y_first) != len(first):
            raise InputError(f"the oracle returned {len(y_first)} labels for {len(first)} items.")
        return self.fit_from_labels(pred, u, first, y_first, oracle)

    def fit_from_labels(
        self, predictions: np.ndarray, uncertainty: np.ndarray, audited: np.ndarray, audit_labels: np.ndarray,
        oracle: Oracle | None = None, *, audit_p_correct: np.ndarray | None = None,
    ) -> PACLabeler:
        """Finish after :meth:`split` with the audited items' labels (e.g. read from a file).

        Without ``oracle`` the routed items keep a placeholder (the prediction) and
        ``routed_mask_`` says which labels must still come from humans (see :meth:`set_routed_labels`).

        ``audit_p_correct`` (0-1 loss only; one value per unique audited item): P(audit label is the
        true label), e.g. a crowd label's GTX posterior. The audit loss of a draw is then an upper
        bound on P(true label != prediction | audit label): ``1 - p`` where the audit label agrees
        with the prediction, 1 where it does not, so the certificate bounds the *expected* share of
        wrong labels under calibrated posteriors (the same assumption as the noise-aware subset bound).
        """
        pred = np.asarray(predictions)
        u = np.asarray(uncertainty, dtype=np.float64)
        n = len(u)
        lb = self._check(n)
        audited = np.asarray(audited, dtype=np.int64)
        if not np.array_equal(audited, np.unique(self.audit_idx_)):
            raise InputError("audit labels must be given for exactly the unique audited items of split().")
        y_aud = np.asarray(audit_labels)
        pos = np.searchsorted(audited, self.audit_idx_)
        raw = pac_losses(y_aud[pos], pred[self.audit_idx_], self.loss, loss_bound=math.inf)
        self.n_clipped_ = int(np.sum(raw > lb)) if self.loss == "squared" else 0
        losses = np.minimum(raw, lb)
        self.noisy_audit_ = audit_p_correct is not None
        if audit_p_correct is not None:
            if self.loss != "zero-one":
                raise ParameterError("audit_p_correct needs loss='zero-one' (a posterior of a class label).")
            p = np.asarray(audit_p_correct, dtype=np.float64)
            if p.shape != audited.shape or not np.all((p >= 0) & (p <= 1)):
                raise InputError(f"audit_p_correct must be {audited.shape[0]} probabilities in [0, 1], one per "
                                 f"unique audited item; got shape {p.shape}.")
            losses = np.where(losses > 0, 1.0, 1.0 - p[pos])  # upper bound on P(Y != prediction | audit label)
        self.result_ = pac_threshold(
            u, self.audit_idx_, losses, self.pi_, epsilon=self.epsilon, alpha=self.alpha, bound=self.bound,
            loss_bound=lb, max_candidates=self.max_candidates,
        )
        self.threshold_ = self.result_.threshold
        self.audited_mask_ = np.zeros(n, dtype=bool)
        self.audited_mask_[audited] = True
        self.routed_mask_ = (u > self.threshold_) & ~self.audited_mask_
        self.auto_mask_ = ~self.audited_mask_ & ~self.routed_mask_
        labels = pred.copy() if pred.dtype.kind != "U" else pred.astype(object)
        labels = labels.astype(np.result_type(labels.dtype, y_aud.dtype)) if labels.dtype != object else labels
        labels[audited] = y_aud
        self.labels_ = labels
        self._lb = lb
        routed = np.flatnonzero(self.routed_mask_)
        if oracle is not None and len(routed):
            self.set_routed_labels(oracle(routed))
        self._certify(n)
        return self

    def set_routed_labels(self, labels: np.ndarray) -> PACLabeler:
        """The human labels of the routed items (in index order of ``routed_mask_``)."""
        routed = np.flatnonzero(self.routed_mask_)
        labels = np.asarray(labels)
        if len(labels) != len(routed):
            raise InputError(f"got {len(labels)} labels for {len(routed)} routed items.")
        if self.labels_.dtype != object:
            self.labels_ = self.labels_.astype(np.result_type(self.labels_.dtype, labels.dtype))
        self.labels_[routed] = labels
        return self

    def _certify(self, n: int) -> None:
        self.certificate_ = PACCertificate.make(
            epsilon=float(self.epsilon), delta=float(self.alpha), bound=self.bound, threshold=self.threshold_,
            error_bound=self.result_.error_bound, n=n, audit=int(self.audit),
            human_labels=int(self.audited_mask_.sum() + self.routed_mask_.sum()),
            auto_labels=int(self.auto_mask_.sum()), loss=self.loss,
            prior=self.prior if isinstance(self.prior, str) else "user", n_clipped=self.n_clipped_,
            loss_bound=float(self._lb), noisy_audit=bool(getattr(self, "noisy_audit_", False)),
        )

    @property
    def roles_(self) -> np.ndarray:
        """Per item: "audit", "routed" or "auto"."""
        out = np.full(len(self.auto_mask_), "auto", dtype=object)
        out[self.routed_mask_] = "routed"
        out[self.audited_mask_] = "audit"
        return out

    def summary(self) -> dict[str, Any]:
        """Counts and the certificate as plain values (what ``metrics.json`` holds)."""
        c = self.certificate_
        return {
            "n": c.n, "audit_draws": c.audit, "audited": int(self.audited_mask_.sum()),
            "routed": int(self.routed_mask_.sum()), "human_labels": c.human_labels, "auto_labeled": c.auto_labels,
            "saved_fraction": c.auto_labels / c.n,
            "threshold": None if c.threshold == -np.inf else c.threshold,
            "error_bound": c.error_bound, "ipw_estimate": self.result_.estimate,
            "epsilon": c.epsilon, "delta": c.delta, "bound": c.bound, "prior": c.prior, "loss": c.loss,
            "guarantee": c.guarantee, "guaranteed": c.guaranteed, "n_clipped": c.n_clipped,
            "statement": c.statement(),
        }
