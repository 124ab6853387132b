"""The coverage–bound curve behind a certificate: the bound at *every* threshold position.

A scan (:mod:`~labelsieve.guarantees.scan`) tests candidate thresholds from the most confident
down and stops at the first failure. :func:`bound_curve` evaluates, for the same validation data,
the same grouping (:func:`~labelsieve.guarantees.scope.scan_by_scope`), the same delta split (per
class, and between sampling and label noise for the noise-aware certifier), the same evidence and
the same :class:`~labelsieve.guarantees.bounds.Bound`, the value the scan tests at each distinct
confidence -- so at the certified position the curve's bound *is* the certificate's bound. Points
past the first failure are shown for exploration only: picking one of them is the multiple-testing
trap the fixed-sequence scan avoids (``in_sequence`` marks the positions the scan may certify).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelsieve.guarantees.bounds import TBAL_C1, Bound
from labelsieve.guarantees.certificate import Certificate
from labelsieve.guarantees.certify import certify_thresholds, check_certify_inputs
from labelsieve.guarantees.noisy import (
    CERTAIN_TOL,
    DEFAULT_LABEL_SHARE,
    DEFAULT_MIN_ERRORS,
    PoissonBinomialEvidence,
    certify_thresholds_noisy,
    error_probabilities,
    split_delta,
)
from labelsieve.guarantees.scan import CountEvidence, Evidence, ScanResult, resolve_min_n, scan_sorted
from labelsieve.guarantees.scope import delta_per_test, scan_by_scope


@dataclass(frozen=True)
class GroupCurve:
    """The curve of one scope group (the global scope, or one predicted class), high to low."""

    threshold: NDArray[np.float64]  #: distinct validation confidences (a cut: points >= it are covered)
    n: NDArray[np.int64]  #: validation points covered
    errors: NDArray[np.int64]  #: errors the scan tests there (noisy labels: the bounded true errors)
    upper: NDArray[np.float64]  #: the bound at the scan's delta
    tested: NDArray[np.bool_]  #: covers >= min_n points (the scan tests it)
    in_sequence: NDArray[np.bool_]  #: tested before the scan's first failure (certifiable)
    scan: ScanResult  #: what the scan certified in this group
    delta: float  #: the delta the bound is evaluated at (delta_sampling for the noise-aware certifier)


def _curve(c: NDArray[np.float64], evidence: Evidence, bound: Bound, delta: float, start: int,
           epsilon: float, scan: str) -> GroupCurve:
    res = scan_sorted(c, evidence, epsilon=epsilon, delta=delta, bound=bound, start=start, scan=scan)
    if len(c) == 0:
        e = np.zeros(0)
        return GroupCurve(e, e.astype(np.int64), e.astype(np.int64), e, e.astype(bool), e.astype(bool), res, delta)
    n = np.arange(1, len(c) + 1, dtype=np.int64)
    is_cut = np.empty(len(c), dtype=bool)
    is_cut[:-1] = c[:-1] != c[1:]
    is_cut[-1] = True
    cand = np.flatnonzero(is_cut)
    q = np.asarray(evidence.errors(cand), dtype=np.int64)
    upper = np.asarray(bound.upper(q, n[cand], delta), dtype=np.float64)
    tested = n[cand] >= start
    seq = tested & (np.asarray(c[cand]) >= res.threshold) if np.isfinite(res.threshold) else np.zeros_like(tested)
    return GroupCurve(c[cand].astype(np.float64), n[cand], q, upper, tested, seq, res, delta)


def bound_curve(
    predicted: ArrayLike,
    confidence: ArrayLike,
    y_true: ArrayLike,
    *,
    n_classes: int,
    epsilon: float = 0.05,
    delta: float = 0.05,
    bound: str | Bound = "clopper-pearson",
    scope: str = "global",
    min_n: int | str = "auto",
    c1: float = TBAL_C1,
    scan: str = "fixed-sequence",
    noise_aware: bool = False,
    label_confidence: ArrayLike | None = None,
    label_share: float = DEFAULT_LABEL_SHARE,
    min_errors: int = DEFAULT_MIN_ERRORS,
) -> tuple[Certificate, list[GroupCurve]]:
    """The certificate (from the certifier itself) and one :class:`GroupCurve` per scope group.

    Same keywords as :func:`~labelsieve.guarantees.certify.certify_thresholds`; with
    ``noise_aware`` those of :func:`~labelsieve.guarantees.noisy.certify_thresholds_noisy`
    (``label_confidence``, ``label_share``, ``min_errors``). Groups: one (global scope) or one per
    class code (per-class scope).

    >>> pred = np.zeros(200, dtype=int); conf = np.linspace(1, 0.5, 200)
    >>> cert, (g,) = bound_curve(pred, conf, pred, n_classes=2)
    >>> bool(g.upper[g.n == cert.scans[0].n][0] == cert.scans[0].upper)
    True
    """
    owner = "bound_curve"
    kw: dict[str, Any] = {"n_classes": n_classes, "epsilon": epsilon, "delta": delta, "bound": bound,
                          "scope": scope, "min_n": min_n, "c1": c1, "scan": scan}
    eps, dlt, b, pred, conf, y = check_certify_inputs(
        predicted, confidence, y_true, n_classes=n_classes, epsilon=epsilon, delta=delta, bound=bound,
        scope=scope, c1=c1, scan=scan, owner=owner,
    )
    d = delta_per_test(dlt, scope, n_classes, owner=owner)
    if noise_aware:
        lc = None if label_confidence is None else np.asarray(label_confidence, dtype=np.float64)
        cert = certify_thresholds_noisy(pred, conf, y, label_confidence=lc, label_share=label_share,
                                        min_errors=min_errors, **kw)
        p = error_probabilities(pred, y, lc, n_classes=n_classes)
        uncertain = bool(((p > CERTAIN_TOL) & (p < 1.0 - CERTAIN_TOL)).any())
        d_s, d_l = split_delta(d, label_share, uncertain)
        mn = b.min_n(min_errors, eps, d_s) if uncertain and min_n == "auto" and b.guaranteed else min_n
        start = resolve_min_n(mn, eps, d_s, b, owner=owner)

        def group(c: NDArray[np.float64], w: NDArray[np.generic]) -> ScanResult:
            curves.append(_curve(c, PoissonBinomialEvidence(w, d_l), b, d_s, start, eps, scan))
            return curves[-1].scan

        payload: NDArray[np.generic] = p
    else:
        cert = certify_thresholds(pred, conf, y, label_confidence=label_confidence, **kw)
        start = resolve_min_n(min_n, eps, d, b, owner=owner)

        def group(c: NDArray[np.float64], w: NDArray[np.generic]) -> ScanResult:
            curves.append(_curve(c, CountEvidence(w.astype(bool, copy=False)), b, d, start, eps, scan))
            return curves[-1].scan

        payload = pred != y
    curves: list[GroupCurve] = []
    thresholds, _, _ = scan_by_scope(pred, conf, payload, n_classes=n_classes, scope=scope, scan_sorted=group)
    if scope == "per-class" and len(curves) < n_classes:  # classes nobody predicted: no curve, no threshold
        have = set(np.unique(pred).tolist())
        full: list[GroupCurve] = []
        it = iter(curves)
        empty = _curve(np.zeros(0), CountEvidence(np.zeros(0, bool)), b, d, start, eps, scan)
        for k in range(n_classes):
            full.append(next(it) if k in have else empty)
        curves = full
    if not np.array_equal(thresholds, cert.thresholds):  # pragma: no cover - a guard on the mirror
        raise AssertionError("bound_curve diverged from the certifier's thresholds")
    return cert, curves
