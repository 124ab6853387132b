"""The fixed-sequence scan of candidate thresholds, fed by evidence.

Given validation confidences sorted from high to low, a candidate threshold ``t`` covers every
point with confidence ``>= t`` (ties enter together). Candidates are tested from the highest
confidence down and the scan stops at the first candidate that fails (fixed-sequence testing,
Learn-then-Test: Angelopoulos et al. 2021, Prop. 3 / Bauer 1991), so each test may spend all of
delta. Taking the lowest of *all* passing candidates instead (``scan="any"``, what the TBAL
authors' code does) is the multiple-testing trap: it does not hold at level delta.

What is tested at a candidate covering ``n`` points is ``bound.passes(errors, n, epsilon, delta)``
where ``errors`` comes from the *evidence*:

* :class:`CountEvidence` -- validation labels are true: the number of wrong predictions;
* :class:`~labelsieve.guarantees.noisy.PoissonBinomialEvidence` -- validation labels are noisy: the
  ``1 - delta_labels`` Poisson-binomial quantile of the number of true errors.

Everything is vectorised: one sort, cumulative sums, one vectorised bound evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelsieve._validation import check_interval, check_open_unit, check_option, check_positive_int
from labelsieve.errors import InputError
from labelsieve.guarantees.bounds import TBAL_C1, Bound, get_bound

SCANS = ("fixed-sequence", "any")
#: Minimum number of validation points above a candidate used by the TBAL authors' code.
TBAL_MIN_N = 25

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class ScanResult:
    """Outcome of one fixed-sequence scan (one class, or the global scope)."""

    threshold: float  #: lowest certified threshold; +inf when none passes
    n: int  #: validation points with confidence >= threshold
    errors: int  #: errors among them (with noisy labels: the bounded number of true errors)
    upper: float  #: the bound's value at the threshold (nan when none)
    n_tested: int  #: candidates tested before the scan stopped
    reason: str | None = None  #: why no threshold, when none


class Evidence(Protocol):
    """What a scan tests at each candidate: an error count among the first points (high -> low)."""

    @property
    def delta_name(self) -> str:
        """How the per-test delta is named in messages."""
        ...

    def errors(self, cand: IntArray) -> IntArray:
        """Errors (or an upper bound on them) among points ``0..cand[j]``, for every j."""
        ...

    def held(self, i: int, errors: int) -> str:
        """What the ``i + 1`` most confident points hold, e.g. "hold 3 errors"."""
        ...

    def too_few(self, n: int, start: int) -> str:
        """Why no candidate is tested when ``n`` points are fewer than ``start``."""
        ...


@dataclass(frozen=True)
class CountEvidence:
    """Evidence from true labels: ``wrong[i]`` is True where the i-th most confident prediction is wrong."""

    wrong: NDArray[np.bool_]
    delta_name: str = "delta per test"

    def errors(self, cand: IntArray) -> IntArray:
        out: IntArray = np.cumsum(self.wrong, dtype=np.int64)[cand]
        return out

    def held(self, i: int, errors: int) -> str:
        return f"hold {errors} errors"

    def too_few(self, n: int, start: int) -> str:
        return f"only {n} validation points; at least {start} are needed"


def resolve_min_n(
    min_n: int | str, epsilon: float, delta: float, bound: str | Bound, *, owner: str = "scan_threshold"
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
        b = get_bound(bound, owner=owner)
        return b.min_n(1, epsilon, delta) if b.guaranteed else TBAL_MIN_N
    return check_positive_int("min_n", min_n, owner=owner)


def scan_sorted(
    c: NDArray[np.float64],
    evidence: Evidence,
    *,
    epsilon: float,
    delta: float,
    bound: Bound,
    start: int,
    scan: str = "fixed-sequence",
) -> ScanResult:
    """The scan on confidences ``c`` already sorted in decreasing order (pure; no checks).

    Candidates are the last positions of each run of equal confidences covering ``>= start``
    points; the threshold is the last candidate that passed before the first failure.
    """
    if len(c) == 0:
        return ScanResult(math.inf, 0, 0, math.nan, 0, "no validation points")
    n = np.arange(1, len(c) + 1, dtype=np.int64)
    is_cut = np.empty(len(c), dtype=bool)  # last position of each run of equal confidences
    is_cut[:-1] = c[:-1] != c[1:]
    is_cut[-1] = True
    cand = np.flatnonzero(is_cut & (n >= start))
    if len(cand) == 0:
        return ScanResult(math.inf, 0, 0, math.nan, 0, evidence.too_few(len(c), start))
    q = evidence.errors(cand)
    ok = bound.passes(q, n[cand], epsilon, delta)
    if scan == "any":  # the lowest passing candidate: NOT valid, for comparison only
        ok = np.arange(len(ok)) <= (np.flatnonzero(ok)[-1] if ok.any() else -1)
    first_fail = int(np.argmin(ok)) if not ok.all() else len(ok)
    if first_fail == 0:
        return _no_threshold(int(cand[0]), int(q[0]), evidence, epsilon, delta, bound, start)
    j = first_fail - 1
    i = cand[j]
    u = float(bound.upper(q[j], n[i], delta))
    return ScanResult(float(c[i]), int(n[i]), int(q[j]), u, min(first_fail + 1, len(cand)))


def _no_threshold(
    i: int, q0: int, evidence: Evidence, epsilon: float, delta: float, bound: Bound, start: int
) -> ScanResult:
    n0 = i + 1
    allowed = np.flatnonzero(bound.passes(np.arange(n0 + 1), np.full(n0 + 1, n0), epsilon, delta))
    kmax = int(allowed[-1]) if len(allowed) else -1
    why = (
        f"even 0 errors are not enough: the {bound.name} bound needs "
        f"{max(start, bound.zero_error_n(epsilon, delta))} error-free validation points"
        if kmax < 0
        else f"the {bound.name} bound allows at most {kmax}"
    )
    return ScanResult(
        math.inf,
        0,
        0,
        math.nan,
        1,
        f"the {n0} most confident validation points {evidence.held(i, q0)}; {why} "
        f"(epsilon={epsilon:g}, {evidence.delta_name}={delta:.3g})",
    )


def check_scan_parameters(
    epsilon: float, delta: float, bound: str | Bound, scan: str, c1: float, *, owner: str
) -> tuple[float, float, Bound]:
    """The parameter checks every scan and certifier shares; returns (epsilon, delta, bound)."""
    epsilon = check_open_unit("epsilon", epsilon, owner=owner)
    delta = check_open_unit("delta", delta, owner=owner)
    check_interval("c1", c1, owner=owner, low=0.0, high=math.inf, closed="neither")
    b = get_bound(bound, c1=c1, owner=owner)
    check_option("scan", scan, owner=owner, options=SCANS)
    return epsilon, delta, b


def scan_threshold(
    confidence: ArrayLike,
    wrong: ArrayLike,
    *,
    epsilon: float,
    delta: float,
    bound: str | Bound = "clopper-pearson",
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
    wrong : bool array, shape (n,) -- True where the prediction was wrong.
    epsilon, delta : float in (0, 1)

    >>> r = scan_threshold(np.linspace(1, 0, 300), np.zeros(300, bool), epsilon=0.05, delta=0.05)
    >>> r.n, r.errors
    (300, 0)
    """
    epsilon, delta, b = check_scan_parameters(epsilon, delta, bound, scan, c1, owner="scan_threshold")
    start = resolve_min_n(min_n, epsilon, delta, b)
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
    return scan_sorted(conf[order], CountEvidence(err[order]), epsilon=epsilon, delta=delta, bound=b,
                       start=start, scan=scan)
