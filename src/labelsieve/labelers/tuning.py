"""Threshold tuning on a small verified set, next to the TBAL guaranteed threshold.

Auto-labeling view of precision and recall. An item is *accepted* when its confidence is at least
the threshold of its predicted class; it then gets the predicted label.

* precision = correct accepted / accepted  (= 1 - auto-labeling error)
* recall    = correct accepted / all items (an item left unlabeled is a miss)
* coverage  = accepted / all items
* F1 = 2 P R / (P + R)

Per class ``c`` (items *predicted* ``c``): precision_c = TP_c / accepted_c, recall_c = TP_c / n_c with
``n_c`` the items whose true class is ``c``. Every candidate threshold is a distinct confidence
(ties enter together), found with one sort and cumulative sums.

The empirical rules (best F1, precision at a recall, recall at a precision) fit the verified set
and promise nothing about new data; the TBAL threshold (:func:`certify_thresholds`) bounds the
auto-labeling error with probability ``1 - delta``. :func:`compare_thresholds` puts them side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labelsieve._validation import check_interval, check_open_unit, check_positive_int
from labelsieve.errors import InputError


@dataclass(frozen=True)
class PRCurve:
    """Precision/recall per candidate threshold, thresholds decreasing (arrays of equal length)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    coverage: np.ndarray
    f1: np.ndarray
    n_accepted: np.ndarray

    def as_frame(self):
        import pandas as pd

        return pd.DataFrame({
            "threshold": self.thresholds, "precision": self.precision, "recall": self.recall,
            "coverage": self.coverage, "f1": self.f1, "n_accepted": self.n_accepted,
        })


def _check(pred: np.ndarray, conf: np.ndarray, y: np.ndarray, n_classes: int | None = None):
    pred, conf, y = np.asarray(pred), np.asarray(conf, dtype=np.float64), np.asarray(y)
    if not (pred.shape == conf.shape == y.shape) or pred.ndim != 1:
        raise InputError(f"pred, conf and y must be 1-D of equal length; got {pred.shape}, {conf.shape}, {y.shape}.")
    if len(y) == 0:
        raise InputError("no verified items to tune thresholds on.")
    if not np.isfinite(conf).all():
        r = int(np.flatnonzero(~np.isfinite(conf))[0])
        raise InputError(f"conf[{r}] = {conf[r]} is not finite.")
    if n_classes is not None:
        for name, a in (("pred", pred), ("y", y)):
            bad = (a < 0) | (a >= n_classes)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise InputError(f"{name}[{r}] = {a[r]} is not a class code in [0, {n_classes}).")
    return pred, conf, y


def _curve_sorted(c: np.ndarray, correct: np.ndarray, n_total: int) -> PRCurve:
    """Curve from confidences sorted decreasingly and their correctness; recall over ``n_total``."""
    if len(c) == 0:
        e = np.empty(0)
        return PRCurve(e, e, e, e, e, np.empty(0, dtype=np.int64))
    tp = np.cumsum(correct, dtype=np.int64)
    acc = np.arange(1, len(c) + 1, dtype=np.int64)
    cut = np.r_[c[:-1] != c[1:], True]  # last position of each run of equal confidences
    tp, acc = tp[cut], acc[cut]
    precision = tp / acc
    recall = tp / max(n_total, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    return PRCurve(c[cut], precision, recall, acc / max(n_total, 1), f1, acc)


def pr_curve(pred: np.ndarray, conf: np.ndarray, y: np.ndarray) -> PRCurve:
    """Global precision/recall/coverage/F1 at every distinct confidence (thresholds decreasing).

    >>> c = pr_curve(np.array([0, 0, 1, 1]), np.array([.9, .8, .7, .6]), np.array([0, 1, 1, 1]))
    >>> c.thresholds.tolist(), c.precision.tolist(), c.recall.tolist()
    ([0.9, 0.8, 0.7, 0.6], [1.0, 0.5, 0.6666666666666666, 0.75], [0.25, 0.25, 0.5, 0.75])
    """
    pred, conf, y = _check(pred, conf, y)
    order = np.argsort(-conf, kind="stable")
    return _curve_sorted(conf[order], (pred == y)[order], len(y))


def per_class_pr_curves(pred: np.ndarray, conf: np.ndarray, y: np.ndarray, n_classes: int) -> list[PRCurve]:
    """One curve per class over the items predicted as that class (recall over the true class size)."""
    pred, conf, y = _check(pred, conf, y, n_classes)
    order = np.argsort(-conf, kind="stable")
    order = order[np.argsort(pred[order], kind="stable")]  # by class, confidence decreasing inside
    cuts = np.searchsorted(pred[order], np.arange(n_classes + 1))
    support = np.bincount(y, minlength=n_classes)
    correct = (pred == y)[order]
    cs = conf[order]
    return [_curve_sorted(cs[cuts[k]:cuts[k + 1]], correct[cuts[k]:cuts[k + 1]], int(support[k]))
            for k in range(n_classes)]  # loop over classes, not items


def best_f1_threshold(curve: PRCurve) -> float:
    """Threshold of maximal F1 (the highest such threshold on ties); +inf for an empty curve."""
    if len(curve.f1) == 0 or curve.f1.max() <= 0:
        return math.inf
    return float(curve.thresholds[int(np.argmax(curve.f1))])


def precision_at_recall(curve: PRCurve, target_recall: float) -> tuple[float, float, float]:
    """``(threshold, precision, recall)`` of highest precision among points with recall >= target.

    ``(inf, nan, 0.0)`` when no threshold reaches the recall.
    """
    check_interval("target_recall", target_recall, owner="precision_at_recall", low=0.0, high=1.0, closed="right")
    ok = np.flatnonzero(curve.recall >= target_recall)
    if len(ok) == 0:
        return math.inf, math.nan, 0.0
    i = ok[np.argmax(curve.precision[ok])]
    return float(curve.thresholds[i]), float(curve.precision[i]), float(curve.recall[i])


def recall_at_precision(curve: PRCurve, target_precision: float) -> tuple[float, float, float]:
    """``(threshold, precision, recall)`` of highest recall among points with precision >= target.

    ``(inf, nan, 0.0)`` when no threshold reaches the precision.

    >>> c = pr_curve(np.array([0, 0, 1, 1]), np.array([.9, .8, .7, .6]), np.array([0, 1, 1, 1]))
    >>> recall_at_precision(c, 0.7)
    (0.6, 0.75, 0.75)
    """
    check_interval("target_precision", target_precision, owner="recall_at_precision", low=0.0, high=1.0,
                   closed="right")
    ok = np.flatnonzero(curve.precision >= target_precision)
    if len(ok) == 0:
        return math.inf, math.nan, 0.0
    i = ok[np.argmax(curve.recall[ok])]
    return float(curve.thresholds[i]), float(curve.precision[i]), float(curve.recall[i])


def evaluate_thresholds(thresholds: np.ndarray, pred: np.ndarray, conf: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Coverage, accepted count and (with ``y``) auto-labeling error of per-class ``thresholds`` (K,).

    >>> evaluate_thresholds(np.array([.5, .9]), np.array([0, 1, 1]), np.array([.6, .8, .95]), np.array([0, 0, 1]))
    {'coverage': 0.6666666666666666, 'n_accepted': 2, 'error': 0.0}
    """
    pred, conf = np.asarray(pred), np.asarray(conf, dtype=np.float64)
    ok = conf >= np.asarray(thresholds, dtype=np.float64)[pred]
    out = {"coverage": float(ok.mean()) if len(ok) else 0.0, "n_accepted": int(ok.sum())}
    if y is not None:
        wrong = (pred != np.asarray(y))[ok]
        out["error"] = float(wrong.mean()) if ok.any() else math.nan
    return out


def tune_thresholds(
    pred: np.ndarray,
    conf: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    epsilon: float = 0.05,
    delta: float = 0.05,
    target_recall: float | None = None,
    bound: str = "clopper-pearson",
) -> dict[str, tuple[np.ndarray, bool]]:
    """Thresholds (K,) per rule, and whether the rule carries a guarantee.

    Rules: ``best-f1/global``, ``best-f1/per-class``, ``precision>=1-eps/global`` (highest recall whose
    verified precision is >= 1 - epsilon: the empirical twin of TBAL), ``precision@recall>=r`` (when
    ``target_recall``), ``tbal/global`` and ``tbal/per-class`` (:func:`certify_thresholds`).
    """
    from labelsieve.guarantees import certify_thresholds

    check_positive_int("n_classes", n_classes, owner="tune_thresholds", minimum=2)
    epsilon = check_open_unit("epsilon", epsilon, owner="tune_thresholds")
    delta = check_open_unit("delta", delta, owner="tune_thresholds")
    pred, conf, y = _check(pred, conf, y, n_classes)
    K = n_classes
    curve = pr_curve(pred, conf, y)
    rules: dict[str, tuple[np.ndarray, bool]] = {}
    rules["best-f1/global"] = (np.full(K, best_f1_threshold(curve)), False)
    rules["best-f1/per-class"] = (
        np.array([best_f1_threshold(c) for c in per_class_pr_curves(pred, conf, y, K)]), False)
    rules[f"precision>={1 - epsilon:g}/global"] = (np.full(K, recall_at_precision(curve, 1 - epsilon)[0]), False)
    if target_recall is not None:
        check_open_unit("target_recall", target_recall, owner="tune_thresholds")
        rules[f"precision@recall>={target_recall:g}/global"] = (
            np.full(K, precision_at_recall(curve, target_recall)[0]), False)
    for scope in ("global", "per-class"):
        cert = certify_thresholds(pred, conf, y, n_classes=K, epsilon=epsilon, delta=delta, bound=bound, scope=scope)
        rules[f"tbal/{scope}"] = (cert.thresholds.copy(), cert.guaranteed)
    return rules


def compare_thresholds(
    pred: np.ndarray,
    conf: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    epsilon: float = 0.05,
    delta: float = 0.05,
    target_recall: float | None = None,
    bound: str = "clopper-pearson",
    test: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
):
    """Side-by-side table of every rule of :func:`tune_thresholds`: what each costs in coverage and risk.

    Parameters
    ----------
    pred, conf, y : arrays (n,) — the verified set (prediction, confidence, human label).
    test : (pred, conf, y or None), optional — the rest of the pool, to show coverage (and the
        true error when ``y`` is known) the thresholds reach on data they were not tuned on.

    Returns
    -------
    pandas.DataFrame with columns ``rule, guaranteed, threshold`` (a number, or "per-class"),
    ``val_coverage, val_error`` and, with ``test``, ``test_coverage, test_error``.
    """
    import pandas as pd

    rules = tune_thresholds(pred, conf, y, n_classes=n_classes, epsilon=epsilon, delta=delta,
                            target_recall=target_recall, bound=bound)
    rows = []
    for name, (thr, guaranteed) in rules.items():
        row = {"rule": name, "guaranteed": guaranteed,
               "threshold": float(thr[0]) if np.all(thr == thr[0]) else "per-class"}
        v = evaluate_thresholds(thr, pred, conf, y)
        row.update(val_coverage=v["coverage"], val_error=v["error"])
        if test is not None:
            t = evaluate_thresholds(thr, test[0], test[1], test[2])
            row.update(test_coverage=t["coverage"], test_error=t.get("error", math.nan))
        rows.append(row)
    return pd.DataFrame(rows)
