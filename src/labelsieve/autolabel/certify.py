"""Thresholds with an error guarantee: bounds and the fixed-sequence scan.

Given validation confidences and whether the model's prediction was wrong, choose the lowest
threshold ``t`` such that the error rate of the points with confidence ``>= t`` is certified
``<= epsilon``. Candidates are scanned from the highest confidence down and the scan stops at the
first candidate that fails (fixed-sequence testing, Learn-then-Test: Angelopoulos et al. 2021,
Prop. 3 / Bauer 1991). Taking the lowest of *all* passing candidates instead is the
multiple-testing trap: it does not hold at level delta.

Bounds (upper confidence bounds on a binomial proportion, ``k`` errors out of ``n``):

* ``clopper-pearson`` (default, exact): the ``1 - delta`` quantile of Beta(k + 1, n - k).
* ``hoeffding``: k/n + sqrt(log(1/delta) / (2n)).
* ``sigma`` (heuristic, TBAL authors' code): k/n + C1 * sqrt(ê (1 - ê)), C1 = 0.25, no 1/sqrt(n).
* ``tbal-hoeffding`` (heuristic, TBAL authors' code): k/n + C1 * sqrt(1/n).

The two heuristics exist to compare with Vishwakarma et al. (NeurIPS 2023); they are not
guarantees and every certificate says so (``guaranteed=False``).

Everything is vectorised: one sort, cumulative sums, one vectorised bound evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import bdtr, betaincinv, xlogy

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.errors import InputError

GUARANTEED_BOUNDS = ("clopper-pearson", "hoeffding")
HEURISTIC_BOUNDS = ("sigma", "tbal-hoeffding")
BOUNDS = GUARANTEED_BOUNDS + HEURISTIC_BOUNDS
SCOPES = ("global", "per-class")

#: Minimum number of validation points above a candidate used by the TBAL authors' code.
TBAL_MIN_N = 25
#: C1 used in all experiments of the TBAL authors' code.
TBAL_C1 = 0.25


def upper_bound(
    k: np.ndarray | int,
    n: np.ndarray | int,
    delta: float,
    method: str = "clopper-pearson",
    *,
    c1: float = TBAL_C1,
) -> np.ndarray:
    """Upper bound on an error rate from ``k`` errors in ``n`` points, vectorised.

    >>> float(np.round(upper_bound(0, 59, 0.05), 4))  # (1 - 0.05)^(1/59) rule of three
    0.0495
    >>> float(np.round(upper_bound(2, 100, 0.05, "hoeffding"), 4))
    0.1424
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_hat = np.where(n > 0, k / np.maximum(n, 1), 1.0)
        if method == "clopper-pearson":
            # 1-delta quantile of Beta(k+1, n-k); equals 1 when k == n.
            u = np.where(k < n, betaincinv(k + 1, np.maximum(n - k, 1e-300), 1.0 - delta), 1.0)
        elif method == "hoeffding":
            u = e_hat + np.sqrt(np.log(1.0 / delta) / (2.0 * np.maximum(n, 1)))
        elif method == "sigma":
            u = e_hat + c1 * np.sqrt(e_hat * (1.0 - e_hat))
        elif method == "tbal-hoeffding":
            u = e_hat + c1 * np.sqrt(1.0 / np.maximum(n, 1))
        else:
            raise check_option("bound", method, owner="upper_bound", options=BOUNDS)  # type: ignore[misc]
    return np.where(n > 0, np.minimum(u, 1.0), 1.0)


def passes(
    k: np.ndarray, n: np.ndarray, epsilon: float, delta: float, method: str, *, c1: float = TBAL_C1
) -> np.ndarray:
    """``upper_bound(k, n) <= epsilon``, computed without inverting the bound where possible.

    For Clopper-Pearson, U <= eps  <=>  P(Bin(n, eps) <= k) <= delta (the binomial CDF is
    decreasing in p and equals delta at p = U), which is one ``bdtr`` call instead of ``betaincinv``.
    """
    if method == "clopper-pearson":
        k = np.asarray(k, dtype=np.int64)
        n = np.asarray(n, dtype=np.int64)
        e_hat = k / np.maximum(n, 1)
        # Exact decision, cheap where it can be: U > k/n, so k/n >= eps fails for sure; the Chernoff
        # bound P(Bin(n, eps) <= k) <= exp(-n KL(k/n || eps)) passes for sure when that is <= delta.
        # Only the narrow band in between needs the binomial CDF.
        kl = xlogy(e_hat, e_hat / epsilon) + xlogy(1 - e_hat, (1 - e_hat) / (1 - epsilon))
        sure_pass = (e_hat < epsilon) & (n * kl >= math.log(1.0 / delta) * (1 + 1e-9))
        out = sure_pass & (n > 0)
        band = np.flatnonzero((e_hat < epsilon) & ~sure_pass & (n > 0))
        if len(band):
            out[band] = bdtr(k[band], n[band], epsilon) <= delta
        return out
    return upper_bound(k, n, delta, method, c1=c1) <= epsilon


def min_points_for_zero_errors(epsilon: float, delta: float, method: str = "clopper-pearson") -> int:
    """Smallest n for which 0 errors in n points certifies ``epsilon`` (used in messages).

    >>> min_points_for_zero_errors(0.05, 0.05)
    59
    """
    if method == "clopper-pearson":
        return math.ceil(math.log(delta) / math.log(1.0 - epsilon))
    if method == "hoeffding":
        return math.ceil(math.log(1.0 / delta) / (2.0 * epsilon**2))
    if method == "tbal-hoeffding":
        return math.ceil((TBAL_C1 / epsilon) ** 2)
    return 1


def min_points_for_errors(errors: int, epsilon: float, delta: float, method: str = "clopper-pearson") -> int:
    """Smallest n at which ``errors`` errors in n points still certify ``epsilon`` (bisection on n).

    It depends on (epsilon, delta, bound) only, never on the labels, so starting a fixed-sequence
    scan there keeps its validity. ``errors=0`` gives :func:`min_points_for_zero_errors`.

    >>> min_points_for_errors(1, 0.05, 0.05)
    93
    """
    if errors < 0:
        raise ValueError("errors must be >= 0")
    lo, hi = max(errors + 1, 1), max(errors + 1, 2)
    while not passes(np.array([errors]), np.array([hi]), epsilon, delta, method)[0]:
        lo, hi = hi, hi * 2
        if hi > 10**9:
            return hi
    while lo < hi:
        mid = (lo + hi) // 2
        if passes(np.array([errors]), np.array([mid]), epsilon, delta, method)[0]:
            hi = mid
        else:
            lo = mid + 1
    return int(lo)


SCANS = ("fixed-sequence", "any")


def resolve_min_n(
    min_n: int | str, epsilon: float, delta: float, bound: str, *, owner: str = "scan_threshold"
) -> int:
    """Where the scan starts: candidates covering fewer points are not tested.

    ``"auto"``: for guaranteed bounds the smallest n that still certifies with one error, so a
    single early error cannot end the scan; it depends on (epsilon, delta, bound) only, never on
    labels, so the guarantee is unchanged. 25 for the heuristics (the TBAL authors' value).
    (Measured alternatives -- a later start, or a fallback procedure with two restart points -- gave
    lower coverage on digits.)

    >>> resolve_min_n("auto", 0.05, 0.05, "clopper-pearson")
    93
    """
    if isinstance(min_n, str):
        check_option("min_n", min_n, owner=owner, options=("auto",))
        return min_points_for_errors(1, epsilon, delta, bound) if bound in GUARANTEED_BOUNDS else TBAL_MIN_N
    return check_positive_int("min_n", min_n, owner=owner)


@dataclass(frozen=True)
class ScanResult:
    """Outcome of one fixed-sequence scan (one class, or the global scope)."""

    threshold: float  #: lowest certified threshold; +inf when none passes
    n: int  #: validation points with confidence >= threshold
    errors: int  #: errors among them
    upper: float  #: the bound's value at the threshold (nan when none)
    n_tested: int  #: candidates tested before the scan stopped
    reason: str | None = None  #: why no threshold, when none


def scan_threshold(
    confidence: np.ndarray,
    wrong: np.ndarray,
    *,
    epsilon: float,
    delta: float,
    bound: str = "clopper-pearson",
    min_n: int | str = "auto",
    c1: float = TBAL_C1,
    scan: str = "fixed-sequence",
) -> ScanResult:
    """Fixed-sequence scan of candidate thresholds, highest first (pure function).

    Candidates are the distinct validation confidences; a candidate ``t`` covers every point with
    confidence ``>= t`` (ties enter together). Candidates covering fewer than ``min_n`` points are
    skipped (not tested). The scan stops at the first tested candidate whose bound exceeds
    ``epsilon``; the threshold is the last one that passed.

    ``scan="any"`` instead takes the lowest of all passing candidates (what the TBAL authors' code
    does). It is kept for comparison only: it does not hold at level delta.

    Parameters
    ----------
    confidence : float array, shape (n,)
    wrong : bool array, shape (n,) — True where the prediction was wrong.
    """
    resolve_min_n(min_n, epsilon, delta, bound)  # validate early
    conf = np.asarray(confidence, dtype=np.float64)
    err = np.asarray(wrong, dtype=bool)
    if conf.shape != err.shape or conf.ndim != 1:
        raise InputError(
            f"confidence and wrong must be 1-D of equal length; got {conf.shape} and {err.shape}."
        )
    if len(conf) == 0:
        return ScanResult(math.inf, 0, 0, math.nan, 0, "no validation points")
    if not np.isfinite(conf).all():
        raise InputError(
            f"confidence has a non-finite value at position {int(np.flatnonzero(~np.isfinite(conf))[0])}."
        )
    order = np.argsort(-conf)  # order within ties is irrelevant: cuts are between distinct values
    return _scan_sorted(conf[order], err[order], epsilon, delta, bound, min_n, c1, scan)


def _scan_sorted(
    c: np.ndarray,
    err: np.ndarray,
    epsilon: float,
    delta: float,
    bound: str,
    min_n: int | str,
    c1: float,
    scan: str,
) -> ScanResult:
    """:func:`scan_threshold` on confidences already sorted in decreasing order."""
    if len(c) == 0:
        return ScanResult(math.inf, 0, 0, math.nan, 0, "no validation points")
    start = resolve_min_n(min_n, epsilon, delta, bound)
    k = np.cumsum(err, dtype=np.int64)
    n = np.arange(1, len(c) + 1, dtype=np.int64)
    is_cut = np.empty(len(c), dtype=bool)  # last position of each run of equal confidences
    is_cut[:-1] = c[:-1] != c[1:]
    is_cut[-1] = True
    cand = np.flatnonzero(is_cut & (n >= start))
    if len(cand) == 0:
        return ScanResult(
            math.inf, 0, 0, math.nan, 0, f"only {len(c)} validation points; at least {start} are needed"
        )
    ok = passes(k[cand], n[cand], epsilon, delta, bound, c1=c1)
    if scan == "any":  # the lowest passing candidate: NOT valid, for comparison only
        ok = np.arange(len(ok)) <= (np.flatnonzero(ok)[-1] if ok.any() else -1)
    first_fail = int(np.argmin(ok)) if not ok.all() else len(ok)
    if first_fail == 0:
        return _no_threshold(n[cand[0]], k[cand[0]], epsilon, delta, bound, c1, start)
    i = cand[first_fail - 1]
    u = float(upper_bound(k[i], n[i], delta, bound, c1=c1))
    return ScanResult(float(c[i]), int(n[i]), int(k[i]), u, min(first_fail + 1, len(cand)))


def _no_threshold(
    n0: int, k0: int, epsilon: float, delta: float, bound: str, c1: float, start: int
) -> ScanResult:
    allowed = np.flatnonzero(passes(np.arange(n0 + 1), np.full(n0 + 1, n0), epsilon, delta, bound, c1=c1))
    kmax = int(allowed[-1]) if len(allowed) else -1
    why = (
        f"even 0 errors are not enough: the {bound} bound needs "
        f"{max(start, min_points_for_zero_errors(epsilon, delta, bound))} error-free validation points"
        if kmax < 0
        else f"the {bound} bound allows at most {kmax}"
    )
    return ScanResult(
        math.inf,
        0,
        0,
        math.nan,
        1,
        f"the {int(n0)} most confident validation points hold {int(k0)} errors; {why} "
        f"(epsilon={epsilon:g}, delta per test={delta:.3g})",
    )


def scan_by_scope(
    predicted: np.ndarray,
    confidence: np.ndarray,
    payload: np.ndarray,
    *,
    n_classes: int,
    scope: str,
    scan_sorted: Callable[[np.ndarray, np.ndarray], ScanResult],
) -> tuple[np.ndarray, tuple[ScanResult, ...], dict[int, str]]:
    """Run ``scan_sorted(confidences high->low, payload in the same order)`` once (global scope) or
    once per predicted class, and collect thresholds, scans and the reasons for missing thresholds.

    The payload is what a scan needs per point: a wrong/right flag, or a probability of being wrong.
    """
    thresholds = np.full(n_classes, np.inf)
    reasons: dict[int, str] = {}
    order = np.argsort(-confidence)  # order within ties is irrelevant: cuts are between distinct values
    if scope == "global":
        res = scan_sorted(confidence[order], payload[order])
        thresholds[:] = res.threshold
        return thresholds, (res,), ({c: res.reason for c in range(n_classes)} if res.reason else {})
    # a stable (radix) sort by class after the sort by confidence: each class slice stays sorted
    order = order[np.argsort(predicted[order].astype(np.min_scalar_type(n_classes)), kind="stable")]
    c_sorted, p_sorted = confidence[order], payload[order]
    cuts = np.searchsorted(predicted[order], np.arange(n_classes + 1))
    out = []
    for c in range(n_classes):  # loop over classes, not samples
        if cuts[c] == cuts[c + 1]:
            res = ScanResult(math.inf, 0, 0, math.nan, 0, f"no validation point is predicted as class {c}")
        else:
            res = scan_sorted(c_sorted[cuts[c] : cuts[c + 1]], p_sorted[cuts[c] : cuts[c + 1]])
        thresholds[c] = res.threshold
        if res.reason:
            reasons[c] = res.reason
        out.append(res)
    return thresholds, tuple(out), reasons


@dataclass(frozen=True)
class Certificate:
    """Thresholds and what they guarantee.

    ``thresholds[c]`` applies to points *predicted* as class ``c`` (all equal in the global scope);
    ``+inf`` means class ``c`` gets no auto-labels (``reasons[c]`` says why).
    With a guaranteed bound: with probability >= 1 - delta, the population error rate of the
    points auto-labeled by these thresholds is <= epsilon (per class with per-class scope, hence
    also overall).
    """

    thresholds: np.ndarray
    epsilon: float
    delta: float
    bound: str
    scope: str
    min_n: int
    delta_per_test: float
    n_validation: int
    scan: str
    scans: tuple[ScanResult, ...]
    reasons: dict[int, str] = field(default_factory=dict)

    @property
    def guaranteed(self) -> bool:
        return self.bound in GUARANTEED_BOUNDS and self.scan == "fixed-sequence"

    def accept(self, predicted: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """Boolean mask of the points these thresholds auto-label."""
        return np.asarray(confidence) >= self.thresholds[np.asarray(predicted)]

    def describe(self) -> str:
        kind = "guarantee" if self.guaranteed else "HEURISTIC, not a guarantee"
        return (
            f"{self.bound} bound ({kind}), fixed-sequence scan, {self.scope} thresholds, "
            f"epsilon={self.epsilon:g}, delta={self.delta:g} (per test {self.delta_per_test:.3g}), "
            f"n_validation={self.n_validation}"
        )


def check_certify_inputs(
    predicted: np.ndarray,
    confidence: np.ndarray,
    y_true: np.ndarray,
    *,
    n_classes: int,
    epsilon: float,
    delta: float,
    bound: str,
    scope: str,
    c1: float,
    scan: str,
    owner: str,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
    """The parameter and array checks every certifier shares; returns (epsilon, delta, pred, conf, y)."""
    epsilon = check_open_unit("epsilon", epsilon, owner=owner)
    delta = check_open_unit("delta", delta, owner=owner)
    check_option("bound", bound, owner=owner, options=BOUNDS)
    check_option("scope", scope, owner=owner, options=SCOPES)
    check_positive_int("n_classes", n_classes, owner=owner, minimum=2)
    check_interval("c1", c1, owner=owner, low=0.0, high=math.inf, closed="neither")
    check_option("scan", scan, owner=owner, options=SCANS)
    pred = np.asarray(predicted)
    conf = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(y_true)
    if not (pred.shape == conf.shape == y.shape) or pred.ndim != 1:
        raise InputError(
            f"predicted, confidence and y_true must be 1-D of equal length; got {pred.shape}, {conf.shape}, {y.shape}."
        )
    for name, arr in (("predicted", pred), ("y_true", y)):
        if len(arr) and (arr.min() < 0 or arr.max() >= n_classes):
            r = int(np.flatnonzero((arr < 0) | (arr >= n_classes))[0])
            raise InputError(f"{name}[{r}] = {arr[r]} is not a class code in [0, {n_classes}).")
    if not np.isfinite(conf).all():
        r = int(np.flatnonzero(~np.isfinite(conf))[0])
        raise InputError(f"confidence[{r}] = {conf[r]} is not finite.")
    return epsilon, delta, pred, conf, y


def certify_thresholds(
    predicted: np.ndarray,
    confidence: np.ndarray,
    y_true: np.ndarray,
    *,
    n_classes: int,
    epsilon: float = 0.05,
    delta: float = 0.05,
    bound: str = "clopper-pearson",
    scope: str = "global",
    min_n: int | str = "auto",
    c1: float = TBAL_C1,
    scan: str = "fixed-sequence",
    label_confidence: np.ndarray | None = None,
) -> Certificate:
    """Choose auto-labeling thresholds on validation data (pure function).

    Parameters
    ----------
    predicted, confidence, y_true : arrays of shape (n,)
        Model prediction, its confidence, and the human label of each validation point.
    n_classes : int
    epsilon, delta : float in (0, 1)
        Target error and failure probability. Per-class scope spends ``delta / n_classes`` per
        class (Bonferroni), so the union of the classes' auto-labels also has error <= epsilon.
    bound : one of ``BOUNDS``
    min_n : int or "auto"
        Candidates covering fewer validation points are skipped (a choice that depends on counts
        only, never on labels, so validity is kept). ``"auto"``: for guaranteed bounds, the
        smallest n at which one error can still be certified (so one early error cannot end the
        scan); 25 (the TBAL authors' value) for the heuristics.
    label_confidence : array of shape (n,), optional
        P(true label == given label) per validation point. This certifier assumes correct labels:
        values below 1 raise, pointing to a noise-aware certifier.
    scan : "fixed-sequence" (valid) or "any" (lowest passing candidate; the multiple-testing
        trap, for comparison only — the certificate then reports ``guaranteed=False``).

    Returns
    -------
    Certificate
    """
    epsilon, delta, pred, conf, y = check_certify_inputs(
        predicted, confidence, y_true, n_classes=n_classes, epsilon=epsilon, delta=delta, bound=bound,
        scope=scope, c1=c1, scan=scan, owner="certify_thresholds",
    )
    d = delta if scope == "global" else delta / n_classes
    min_n = resolve_min_n(min_n, epsilon, d, bound, owner="certify_thresholds")
    if label_confidence is not None and np.any(np.asarray(label_confidence) < 1.0):
        raise InputError(
            "validation labels are noisy (label_confidence < 1): this certifier assumes correct labels; "
            "pass a noise-aware certifier (TBAL(certifier=...))."
        )
    wrong = pred != y
    thresholds, scans, reasons = scan_by_scope(
        pred,
        conf,
        wrong,
        n_classes=n_classes,
        scope=scope,
        scan_sorted=lambda c, w: _scan_sorted(c, w, epsilon, d, bound, min_n, c1, scan),
    )
    return Certificate(
        thresholds=thresholds,
        epsilon=epsilon,
        delta=delta,
        bound=bound,
        scope=scope,
        min_n=min_n,
        delta_per_test=d,
        n_validation=len(conf),
        scan=scan,
        scans=scans,
        reasons=reasons,
    )
