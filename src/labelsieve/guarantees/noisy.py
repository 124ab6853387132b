"""Error guarantees when the validation labels themselves are noisy (crowd labels).

The noiseless certifier (:mod:`labelsieve.guarantees.certify`) counts the model's errors ``k`` among
the ``n`` validation points above a threshold and bounds the population error rate by the
Clopper-Pearson bound ``U(k, n)``. With crowd labels ``k`` is unknown: the given label of point i is
only right with posterior probability ``q_i = P(y_i = l_i | labels)``. Given the crowd labels, the
number of *true* errors above a threshold is a sum of independent Bernoullis with probabilities
``p_i = P(y_i != yhat_i | labels)``, a Poisson-binomial variable. One test then spends

* ``delta_labels``: ``Q`` = the ``1 - delta_labels`` quantile of that Poisson-binomial, so
  ``P(true errors > Q) <= delta_labels``;
* ``delta_sampling``: the usual binomial (Clopper-Pearson) test with ``Q`` errors in ``n`` points.

Both hold together with probability ``>= 1 - delta_labels - delta_sampling`` (union bound), and the
binomial bound is increasing in ``k``, so ``U(Q, n) <= epsilon`` certifies the threshold. The
fixed-sequence scan of :mod:`~labelsieve.guarantees.scan` is the same, fed by
:class:`PoissonBinomialEvidence` instead of counts. Uncertainty in the
labelers' accuracies (the third source) is spent where the posteriors are computed: see
:func:`accuracy_limits` and :func:`labelsieve.autolabel.noisy.conservative_label_confidence`, used by
:class:`~labelsieve.autolabel.crowd_oracle.CrowdOracle`. Derivation: ``docs/noisy-guarantee.md``.

With posteriors that are all 0 or 1 there is no label uncertainty, no delta is spent on it, and
:func:`certify_thresholds_noisy` returns bit-for-bit the thresholds of
:func:`~labelsieve.guarantees.certify.certify_thresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.errors import InputError
from labelsieve.guarantees.bounds import TBAL_C1, Bound, get_bound
from labelsieve.guarantees.certificate import Certificate
from labelsieve.guarantees.certify import check_certify_inputs
from labelsieve.guarantees.scan import ScanResult, resolve_min_n, scan_sorted
from labelsieve.guarantees.scope import delta_per_test, scan_by_scope

#: Default share of each test's delta spent on label uncertainty (the Poisson-binomial quantile).
DEFAULT_LABEL_SHARE = 0.5
#: With uncertain labels, ``min_n="auto"`` starts where this many errors still certify.
DEFAULT_MIN_ERRORS = 3
#: Probabilities within this distance of 0 or 1 count as certain.
CERTAIN_TOL = 0.0
#: Cells of the (prefix x frequency) matrix processed at once by the FFT quantiles.
_BLOCK_CELLS = 2_000_000
#: Slack on the CDF when reading a quantile off a floating-point FFT (errs towards a larger quantile).
_CDF_SLACK = 1e-10

PB_METHODS = ("fft", "dp")


# ----------------------------------------------------------------------------- Poisson-binomial
def _check_probs(p: np.ndarray, name: str = "p") -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"{name} must be 1-D; got shape {p.shape}.")
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}[{r}] = {p[r]} is not a probability in [0, 1].")
    return p


def _log_cf(p: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """log(1 - p_i + p_i e^{-i omega_j}) of shape (n, m): modulus clipped away from 0, angle exact.

    The sign of the exponent matches NumPy's inverse FFT, which then returns the pmf."""
    z = (1.0 - p)[:, None] + p[:, None] * np.exp(-1j * omega)[None, :]
    out: np.ndarray = np.log(np.maximum(np.abs(z), 1e-300)) + 1j * np.angle(z)
    return out


def poisson_binomial_pmf(p: np.ndarray, *, method: str = "fft") -> np.ndarray:
    """Distribution of the number of successes of independent Bernoulli(p_i), shape (n + 1,).

    ``fft``: the characteristic function prod_i (1 - p_i + p_i e^{iw}) on the n + 1 roots of
    unity, inverted by a real FFT (Hong 2013, "DFT-CF"); ``dp``: the exact recursion adding one
    Bernoulli at a time (O(n^2), the reference).

    >>> poisson_binomial_pmf(np.array([0.5, 0.5])).round(6).tolist()
    [0.25, 0.5, 0.25]
    """
    check_option("method", method, owner="poisson_binomial_pmf", options=PB_METHODS)
    p = _check_probs(p)
    n = len(p)
    if method == "dp":
        pmf = np.zeros(n + 1)
        pmf[0] = 1.0
        for i, pi in enumerate(p):  # the reference recursion; the default path is the FFT
            pmf[1 : i + 2] = pmf[1 : i + 2] * (1.0 - pi) + pmf[: i + 1] * pi
            pmf[0] *= 1.0 - pi
        return pmf
    m = n + 1
    omega = 2.0 * np.pi * np.arange(m // 2 + 1) / m
    phi = np.exp(_log_cf(p, omega).sum(axis=0))
    return np.clip(np.fft.irfft(phi, n=m), 0.0, 1.0)


def poisson_binomial_quantile(p: np.ndarray, level: float) -> int:
    """Smallest k with P(sum of Bernoulli(p_i) <= k) >= level (exact, via the FFT pmf).

    >>> poisson_binomial_quantile(np.full(10, 0.5), 0.95)  # Binomial(10, 1/2): P(<= 7) = 0.945
    8
    """
    check_interval("level", level, owner="poisson_binomial_quantile", low=0.0, high=1.0, closed="right")
    cdf = np.cumsum(poisson_binomial_pmf(p))
    return min(int(np.searchsorted(cdf, level - _CDF_SLACK, side="left")), len(p))


def prefix_quantiles(p: np.ndarray, level: float, rows: np.ndarray | None = None) -> np.ndarray:
    """Poisson-binomial ``level``-quantiles of every prefix p[:m+1] (or of the prefixes ``rows``).

    Vectorised across prefixes: the log characteristic functions are cumulative sums over items,
    so all prefixes come from one ``cumsum`` and one batched inverse FFT (processed in blocks of
    rows to bound memory). Certain items (p in {0, 1}) are exact: they add 0 or shift by 1.

    Parameters
    ----------
    p : float array, shape (n,)
    level : float in (0, 1]
    rows : int array, optional
        Prefix end positions (0-based, inclusive) to return; default all n.

    Returns
    -------
    int array of shape (len(rows),)

    >>> prefix_quantiles(np.array([1.0, 0.0, 0.5, 0.5]), 0.7).tolist()  # 1, 1, 1 or 2, 1..3
    [1, 1, 2, 2]
    """
    p = _check_probs(p)
    n = len(p)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if n == 0 or len(rows) == 0:
        return np.zeros(len(rows), dtype=np.int64)
    certain = (p <= CERTAIN_TOL) | (p >= 1.0 - CERTAIN_TOL)
    shift = np.cumsum(certain & (p >= 0.5))[rows]
    u = np.where(certain, 0.0, p)  # uncertain part only; certain ones are the shift
    n_unc = np.cumsum(~certain)
    if n_unc[-1] == 0:
        return shift.astype(np.int64)
    keep = np.flatnonzero(~certain)
    pu = u[keep]
    m = len(pu) + 1
    omega = 2.0 * np.pi * np.arange(m // 2 + 1) / m
    # prefix row r (in all items) = prefix of the uncertain items up to n_unc[r]
    urow = n_unc[rows]  # number of uncertain items in each requested prefix
    out = shift.astype(np.int64)
    need = np.flatnonzero(urow > 0)
    if len(need) == 0:
        return out
    order = need[np.argsort(urow[need], kind="stable")]
    targets = urow[order] - 1  # row in the cumulative sums of the uncertain items
    block = max(1, _BLOCK_CELLS // len(omega))
    carry = np.zeros(len(omega), dtype=np.complex128)
    start = 0  # first uncertain item not yet added to carry
    t_pos = 0
    while t_pos < len(order):
        stop = min(len(pu), start + block)
        cs = np.cumsum(_log_cf(pu[start:stop], omega), axis=0) + carry
        sel = t_pos + int(np.searchsorted(targets[t_pos:], stop, side="left"))
        if sel > t_pos:
            phi = np.exp(cs[targets[t_pos:sel] - start])
            cdf = np.cumsum(np.clip(np.fft.irfft(phi, n=m, axis=1), 0.0, 1.0), axis=1)
            k = (cdf < level - _CDF_SLACK).sum(axis=1)
            out[order[t_pos:sel]] += np.minimum(k, urow[order[t_pos:sel]])
            t_pos = sel
        carry = cs[-1]
        start = stop
    return out


# ----------------------------------------------------------------------------- labels -> P(wrong)
def error_probabilities(
    predicted: np.ndarray,
    given: np.ndarray,
    label_confidence: np.ndarray | None = None,
    *,
    n_classes: int,
    label_posterior: np.ndarray | None = None,
) -> np.ndarray:
    """P(true label != prediction | crowd labels) for each validation point (an upper bound).

    * With ``label_posterior`` (n, K): ``1 - posterior[i, predicted_i]`` (exact).
    * Else with ``label_confidence`` q_i = P(y_i = given_i | labels): ``1 - q_i`` where the
      prediction agrees with the given label; 1 where it disagrees (P(y_i = yhat_i) <= 1 - q_i is
      all we know for K > 2, and ``q_i`` may be a lower limit, see
      :func:`conservative_label_confidence`). Without either, the labels are taken as true.

    >>> error_probabilities(np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([0.9, 0.8, 1.0]), n_classes=3).tolist()
    [0.09999999999999998, 1.0, 0.0]
    """
    pred = np.asarray(predicted)
    lab = np.asarray(given)
    if label_posterior is not None:
        post = np.asarray(label_posterior, dtype=np.float64)
        if post.shape != (len(pred), n_classes):
            raise InputError(f"label_posterior must have shape ({len(pred)}, {n_classes}); got {post.shape}.")
        _check_probs(post.ravel(), "label_posterior")
        out: np.ndarray = np.clip(1.0 - post[np.arange(len(pred)), pred], 0.0, 1.0)
        return out
    wrong: np.ndarray = (pred != lab).astype(np.float64)
    if label_confidence is None:
        return wrong
    q = _check_probs(np.asarray(label_confidence, dtype=np.float64), "label_confidence")
    if q.shape != pred.shape:
        raise InputError(f"label_confidence must have shape {pred.shape}; got {q.shape}.")
    return np.where(pred == lab, 1.0 - q, 1.0)


# ----------------------------------------------------------------------------- the combined bound
def split_delta(delta: float, label_share: float, uncertain: bool) -> tuple[float, float]:
    """(delta_sampling, delta_labels) for one test: all to sampling when no label is uncertain.

    >>> split_delta(0.05, 0.5, True), split_delta(0.05, 0.5, False)
    ((0.025, 0.025), (0.05, 0.0))
    """
    if not uncertain:
        return delta, 0.0
    d_lab = delta * label_share
    return delta - d_lab, d_lab


def noisy_upper_bound(
    p_wrong: np.ndarray,
    delta: float,
    *,
    label_share: float = DEFAULT_LABEL_SHARE,
    bound: str | Bound = "clopper-pearson",
) -> tuple[float, int]:
    """Upper bound on the error rate of a set whose true errors are Bernoulli(p_i) given the labels.

    Returns (U(Q, n, delta_sampling), Q) with Q the 1 - delta_labels Poisson-binomial quantile;
    valid with probability >= 1 - delta.

    >>> noisy_upper_bound(np.zeros(59), 0.05)[0] < 0.05  # certain labels: the noiseless bound
    True
    """
    p = _check_probs(p_wrong, "p_wrong")
    uncertain = bool(((p > CERTAIN_TOL) & (p < 1 - CERTAIN_TOL)).any())
    d_s, d_l = split_delta(delta, label_share, uncertain)
    q = int(prefix_quantiles(p, 1.0 - d_l, np.array([len(p) - 1]))[0]) if len(p) else 0
    return float(get_bound(bound, owner="noisy_upper_bound").upper(q, len(p), d_s)), q


@dataclass(frozen=True)
class PoissonBinomialEvidence:
    """Evidence from noisy labels for :func:`~labelsieve.guarantees.scan.scan_sorted`.

    ``p[i]`` is the probability that the i-th most confident prediction is truly wrong given the
    labels. At a candidate covering the first m points the scan tests Q = the ``1 - delta_labels``
    Poisson-binomial quantile of their number of true errors (``P(true errors > Q) <=
    delta_labels``); with ``delta_labels = 0`` (labels certain) the errors are counted.
    """

    p: np.ndarray
    delta_labels: float
    delta_name: str = "delta_sampling"

    def errors(self, cand: np.ndarray) -> np.ndarray:
        if self.delta_labels > 0:
            return prefix_quantiles(self.p, 1.0 - self.delta_labels, cand)
        out: np.ndarray = np.cumsum(self.p >= 0.5, dtype=np.int64)[cand]  # labels certain: errors are counted
        return out

    def held(self, i: int, errors: int) -> str:
        if self.delta_labels > 0:
            return (
                f"hold at most {errors} true errors (label posteriors expect {float(self.p[: i + 1].sum()):.1f}, "
                f"quantile at delta_labels={self.delta_labels:.3g})"
            )
        return f"hold {errors} errors"

    def too_few(self, n: int, start: int) -> str:
        return f"only {n} validation points; at least min_n={start} are needed"


def certify_thresholds_noisy(
    predicted: np.ndarray,
    confidence: np.ndarray,
    y_true: np.ndarray,
    *,
    n_classes: int,
    epsilon: float = 0.05,
    delta: float = 0.05,
    bound: str | Bound = "clopper-pearson",
    scope: str = "global",
    min_n: int | str = "auto",
    c1: float = TBAL_C1,
    scan: str = "fixed-sequence",
    label_confidence: np.ndarray | None = None,
    label_posterior: np.ndarray | None = None,
    label_share: float = DEFAULT_LABEL_SHARE,
    min_errors: int = DEFAULT_MIN_ERRORS,
    error_probability: np.ndarray | None = None,
) -> Certificate:
    """Thresholds certified against the *true* labels when the validation labels are noisy.

    Same keywords and result as :func:`~labelsieve.guarantees.certify.certify_thresholds`, plus:

    Parameters
    ----------
    y_true : int array (n,)
        The given (e.g. aggregated crowd) label of each validation point.
    label_confidence : float array (n,), optional
        P(true label == given label | crowd labels), e.g. a GTX posterior (a lower limit is fine).
        ``None`` or all ones: labels are certain and the result equals ``certify_thresholds``.
    label_posterior : float array (n, n_classes), optional
        Full posterior; used instead of ``label_confidence`` when given (tighter where the
        prediction disagrees with the given label).
    error_probability : float array (n,), optional
        Upper bounds of P(true label != prediction | crowd labels), e.g.
        ``CrowdOracle.prediction_error_probability``; used instead of the two above when given
        (tighter than "a disagreement is a certain error").
    label_share : float in (0, 1)
        Share of each test's delta spent on label uncertainty (the Poisson-binomial quantile); the
        rest goes to the binomial bound. Spent only when some label is uncertain.
    min_errors : int >= 1
        With uncertain labels, ``min_n="auto"`` starts the scan at the smallest n at which
        ``min_errors`` errors still certify (the noiseless ``auto`` uses 1), since a few
        label-uncertainty errors are expected even at the top. It depends on (epsilon, delta,
        bound) only, never on the labels.

    Returns
    -------
    Certificate
        ``scans[c].errors`` is the bounded number of true errors Q (the quantile), ``upper`` is
        U(Q, n) at ``delta_sampling``. With probability >= 1 - delta (given the posteriors are
        valid), the population error of the auto-labels is <= epsilon.

    >>> pred = np.zeros(200, dtype=int); conf = np.linspace(1, 0.5, 200); y = pred.copy()
    >>> certify_thresholds_noisy(pred, conf, y, n_classes=2, label_confidence=np.full(200, 0.999)).scans[0].n
    200
    """
    owner = "certify_thresholds_noisy"
    label_share = check_open_unit("label_share", label_share, owner=owner)
    epsilon, delta, b, pred, conf, y = check_certify_inputs(
        predicted, confidence, y_true, n_classes=n_classes, epsilon=epsilon, delta=delta, bound=bound,
        scope=scope, c1=c1, scan=scan, owner=owner,
    )
    if error_probability is not None:
        p = _check_probs(error_probability, "error_probability")
        if p.shape != pred.shape:
            raise InputError(f"error_probability must have shape {pred.shape}; got {p.shape}.")
    else:
        p = error_probabilities(pred, y, label_confidence, n_classes=n_classes, label_posterior=label_posterior)
    uncertain = bool(((p > CERTAIN_TOL) & (p < 1.0 - CERTAIN_TOL)).any())
    d = delta_per_test(delta, scope, n_classes, owner=owner)
    d_s, d_l = split_delta(d, label_share, uncertain)
    check_positive_int("min_errors", min_errors, owner=owner)
    if uncertain and min_n == "auto" and b.guaranteed:
        min_n = b.min_n(min_errors, epsilon, d_s)
    start = resolve_min_n(min_n, epsilon, d_s, b, owner=owner)

    def scan_group(c: np.ndarray, q: np.ndarray) -> ScanResult:
        return scan_sorted(c, PoissonBinomialEvidence(q, d_l), epsilon=epsilon, delta=d_s, bound=b, start=start,
                           scan=scan)

    thresholds, scans, reasons = scan_by_scope(
        pred, conf, p, n_classes=n_classes, scope=scope, scan_sorted=scan_group
    )
    return Certificate(
        thresholds=thresholds,
        epsilon=epsilon,
        delta=delta,
        bound=b.name,
        scope=scope,
        min_n=start,
        delta_per_test=d,
        n_validation=len(conf),
        scan=scan,
        scans=scans,
        reasons=reasons,
        noise_aware=True,
    )


class NoiseAwareCertifier:
    """Drop-in ``TBAL(certifier=...)`` that bounds the error against the true labels.

    Parameters
    ----------
    label_share : float in (0, 1)
        Share of each test's delta spent on label uncertainty (see :func:`certify_thresholds_noisy`).

    The run's total failure probability is TBAL's ``delta`` plus whatever the oracle spent to make
    its posteriors conservative (``CrowdOracle.delta_accuracy``).

    >>> cert = NoiseAwareCertifier()(np.zeros(100, int), np.ones(100), np.zeros(100, int), n_classes=2)
    >>> bool(np.isfinite(cert.thresholds).all())
    True
    """

    def __init__(self, *, label_share: float = DEFAULT_LABEL_SHARE, min_errors: int = DEFAULT_MIN_ERRORS) -> None:
        self.label_share = label_share
        self.min_errors = min_errors

    def __call__(self, predicted: np.ndarray, confidence: np.ndarray, y_true: np.ndarray, **kw: Any) -> Certificate:
        return certify_thresholds_noisy(predicted, confidence, y_true, label_share=self.label_share,
                                        min_errors=self.min_errors, **kw)

    def __repr__(self) -> str:
        return f"NoiseAwareCertifier(label_share={self.label_share!r}, min_errors={self.min_errors!r})"


# ----------------------------------------------------------------------------- accuracy uncertainty
def accuracy_limits(
    n_correct: np.ndarray, n_gold: np.ndarray, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous lower/upper limits of every labeler's accuracy from gold answers.

    Clopper-Pearson limits, i.e. quantiles of Beta(c, n - c + 1) and Beta(c + 1, n - c), each
    tail at delta / (2 J) for J labelers (Bonferroni), so all J accuracies lie inside their limits
    together with probability >= 1 - delta. (The Beta(1 + c, 1 + n - c) posterior's credible
    limits are slightly narrower and carry no frequentist guarantee.) Labelers with no gold get
    (0, 1).

    >>> lo, hi = accuracy_limits(np.array([45]), np.array([50]), 0.05)
    >>> round(float(lo[0]), 3), round(float(hi[0]), 3)
    (0.782, 0.967)
    """
    from scipy import stats  # lazy: scipy.stats is slow to import and only this needs it

    c = np.asarray(n_correct, dtype=np.float64)
    n = np.asarray(n_gold, dtype=np.float64)
    a = delta / (2 * max(len(c), 1))
    with np.errstate(invalid="ignore"):
        lo = np.where(c > 0, stats.beta.ppf(a, np.maximum(c, 1e-12), n - c + 1), 0.0)
        hi = np.where(c < n, stats.beta.ppf(1 - a, c + 1, np.maximum(n - c, 1e-12)), 1.0)
    return np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=1.0)


# ----------------------------------------------------------------------------- provenance
@dataclass(frozen=True)
class WrongLabelSummary:
    """Expected number of wrong labels in a labeled set and an upper bound on it."""

    n_labels: int
    expected: float  #: sum of the per-label error probabilities
    upper: int  #: the 1 - delta quantile of the Poisson-binomial with those probabilities
    delta: float

    def describe(self) -> str:
        return (
            f"{self.n_labels} labels: expected wrong {self.expected:.1f}; "
            f"at most {self.upper} with probability >= {1 - self.delta:g}"
        )


def expected_wrong_labels(p_wrong: np.ndarray, *, delta: float = 0.05) -> WrongLabelSummary:
    """Expected count of wrong labels and its 1 - delta upper bound.

    ``p_wrong[i]`` is label i's probability of being wrong: ``1 - posterior`` for an aggregated
    human label; for an auto-label, the certified error bound of its threshold (epsilon, or the
    cell's bound). Given the human labels' posteriors and the auto-labeling rule, wrong labels
    are independent Bernoullis whose means are at most these (the auto-labels' only when the
    run's certificate holds, probability >= 1 - delta_run), so the count is at most the
    Poisson-binomial 1 - delta quantile with probability >= 1 - delta (- delta_run).

    >>> s = expected_wrong_labels(np.r_[np.full(100, 0.05), np.zeros(50)])
    >>> round(s.expected, 2), s.upper  # Binomial(100, 0.05): P(<= 8) = 0.937, P(<= 9) = 0.972
    (5.0, 9)
    """
    delta = check_open_unit("delta", delta, owner="expected_wrong_labels")
    p = _check_probs(p_wrong, "p_wrong")
    if len(p) == 0:
        return WrongLabelSummary(0, 0.0, 0, delta)
    up = int(prefix_quantiles(p, 1.0 - delta, np.array([len(p) - 1]))[0])
    return WrongLabelSummary(len(p), float(p.sum()), up, delta)
