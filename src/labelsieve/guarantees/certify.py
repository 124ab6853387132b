"""Auto-labeling thresholds with an error guarantee, on validation data with true labels.

Given validation predictions, confidences and human labels, choose per scope (one global
threshold, or one per predicted class) the lowest threshold ``t`` such that the error rate of the
points with confidence ``>= t`` is certified ``<= epsilon`` with probability ``>= 1 - delta``:
:mod:`~labelsieve.guarantees.scope` splits delta, :mod:`~labelsieve.guarantees.scan` scans each
group with :class:`~labelsieve.guarantees.scan.CountEvidence`, and the result is a
:class:`~labelsieve.guarantees.certificate.Certificate`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelsieve._validation import check_option, check_positive_int
from labelsieve.errors import InputError
from labelsieve.guarantees.bounds import TBAL_C1, Bound
from labelsieve.guarantees.certificate import Certificate
from labelsieve.guarantees.scan import (
    CountEvidence,
    ScanResult,
    check_scan_parameters,
    resolve_min_n,
    scan_sorted,
)
from labelsieve.guarantees.scope import SCOPES, delta_per_test, scan_by_scope


def check_certify_inputs(
    predicted: ArrayLike,
    confidence: ArrayLike,
    y_true: ArrayLike,
    *,
    n_classes: int,
    epsilon: float,
    delta: float,
    bound: str | Bound,
    scope: str,
    c1: float,
    scan: str,
    owner: str,
) -> tuple[float, float, Bound, NDArray[np.integer], NDArray[np.float64], NDArray[np.integer]]:
    """The parameter and array checks every certifier shares; returns (epsilon, delta, bound, pred, conf, y)."""
    epsilon, delta, b = check_scan_parameters(epsilon, delta, bound, scan, c1, owner=owner)
    check_option("scope", scope, owner=owner, options=SCOPES)
    check_positive_int("n_classes", n_classes, owner=owner, minimum=2)
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
    return epsilon, delta, b, pred, conf, y


def certify_thresholds(
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
    label_confidence: ArrayLike | None = None,
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
    bound : a name in ``BOUNDS`` (or a :class:`~labelsieve.guarantees.bounds.Bound`)
    min_n : int or "auto"
        Candidates covering fewer validation points are skipped (a choice that depends on counts
        only, never on labels, so validity is kept). ``"auto"``: for guaranteed bounds, the
        smallest n at which one error can still be certified (so one early error cannot end the
        scan); 25 (the TBAL authors' value) for the heuristics.
    label_confidence : array of shape (n,), optional
        P(true label == given label) per validation point. This certifier assumes correct labels:
        values below 1 raise, pointing to a noise-aware certifier.
    scan : "fixed-sequence" (valid) or "any" (lowest passing candidate; the multiple-testing
        trap, for comparison only -- the certificate then reports ``guaranteed=False``).

    Returns
    -------
    Certificate

    >>> pred = np.zeros(200, dtype=int); conf = np.linspace(1, 0.5, 200)
    >>> certify_thresholds(pred, conf, pred, n_classes=2).scans[0].n
    200
    """
    owner = "certify_thresholds"
    epsilon, delta, b, pred, conf, y = check_certify_inputs(
        predicted, confidence, y_true, n_classes=n_classes, epsilon=epsilon, delta=delta, bound=bound,
        scope=scope, c1=c1, scan=scan, owner=owner,
    )
    d = delta_per_test(delta, scope, n_classes, owner=owner)
    start = resolve_min_n(min_n, epsilon, d, b, owner=owner)
    if label_confidence is not None and np.any(np.asarray(label_confidence) < 1.0):
        raise InputError(
            "validation labels are noisy (label_confidence < 1): this certifier assumes correct labels; "
            "pass a noise-aware certifier (TBAL(certifier=...))."
        )
    wrong = pred != y

    def scan_group(c: NDArray[np.float64], w: NDArray[np.generic]) -> ScanResult:
        return scan_sorted(c, CountEvidence(w.astype(bool, copy=False)), epsilon=epsilon, delta=d, bound=b,
                           start=start, scan=scan)

    thresholds, scans, reasons = scan_by_scope(
        pred, conf, wrong, n_classes=n_classes, scope=scope, scan_sorted=scan_group
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
    )
