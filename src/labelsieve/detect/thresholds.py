"""Score thresholds for boxes, per class, chosen on a verified set of images.

Three rules, all on the boxes of the verified images after greedy matching at IoU 0.5 (a box is
*wrong* when it matched no true box of its class):

* ``best-f1``: the threshold with the highest F1 (precision and recall of the accepted boxes).
* ``recall``: the highest threshold whose recall reaches ``target_recall``.
* ``guarantee``: the lowest threshold whose accepted boxes have precision >= 1 - epsilon with
  probability >= 1 - delta: the fixed-sequence scan of
  :func:`labelsieve.guarantees.scan_threshold` on (score, wrong) — precision >= 1 - eps is
  "error rate of the accepted boxes <= eps". Per-class scope spends delta / K per class (Bonferroni),
  so all classes hold together (and hence the union) with probability >= 1 - delta
  (:func:`labelsieve.guarantees.delta_per_test`). The fitted ``certificate_`` is a
  :class:`~labelsieve.guarantees.Certificate` with ``guarantee="precision"``.

Greedy matching takes boxes in decreasing score order, so whether a box above ``t`` is right does
not depend on the boxes below ``t``: the (score, wrong) pairs of the verified set describe
exactly the rule "accept every box with score >= t".

:func:`threshold_sweep` gives the downstream view (thresholds 0.2-0.5 often train better models
than high ones): precision, recall and box counts per class at each threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from labelsieve._atomic import atomic_write_path
from labelsieve._validation import check_interval, check_open_unit, check_option
from labelsieve.detect.boxes import Detections
from labelsieve.detect.match import match_detections
from labelsieve.errors import InputError
from labelsieve.guarantees import Certificate, delta_per_test, get_bound, resolve_min_n, scan_threshold

METHODS = ("guarantee", "best-f1", "recall")
SCOPES = ("per-class", "global")
#: The sweep of the guide's "0.2-0.5 trains better models" observation.
DEFAULT_SWEEP = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def box_outcomes(pred: Detections, gt: Detections, *, iou_threshold: float = 0.5) -> tuple[pd.DataFrame, pd.Series]:
    """Each predicted box's class, score and TP flag, and the number of true boxes per class.

    Only images listed in ``gt`` count (the verified images); predictions on other images are
    ignored.
    """
    verified = pred.boxes["image_id"].isin(gt.images["image_id"]).to_numpy()
    p = pred.select(verified)
    mt = match_detections(p, gt, iou_threshold=iou_threshold)
    out = pd.DataFrame({"image_id": p.boxes["image_id"].to_numpy(), "category_id": p.boxes["category_id"].to_numpy(),
                        "score": p.scores, "tp": mt.tp})
    n_gt = gt.boxes["category_id"].value_counts().reindex(gt.category_ids, fill_value=0)
    return out, n_gt


def pr_table(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> pd.DataFrame:
    """Precision, recall and F1 of "accept score >= t" at every distinct score t (pure function).

    Rows in decreasing t; ties in score enter together.

    >>> pr_table(np.array([0.9, 0.8, 0.8, 0.3]), np.array([1, 0, 1, 1], bool), 4).round(3).values.tolist()
    [[0.9, 1.0, 1.0, 0.0, 1.0, 0.25, 0.4], [0.8, 3.0, 2.0, 1.0, 0.667, 0.5, 0.571], [0.3, 4.0, 3.0, 1.0, 0.75, 0.75, 0.75]]
    """
    s = np.asarray(scores, np.float64)
    t = np.asarray(tp, bool)
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    tps = np.cumsum(t)
    n = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)
    tps, n, thr = tps[last], n[last], s[last]
    prec = tps / n
    rec = tps / n_gt if n_gt > 0 else np.zeros(len(tps))
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)  # F1 = 2PR / (P + R)
    return pd.DataFrame({"threshold": thr, "n_accepted": n, "tp": tps, "fp": n - tps, "precision": prec,
                         "recall": rec, "f1": f1})


def best_f1_threshold(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[float, float, float, float]:
    """(threshold, precision, recall, F1) at the highest F1 (the highest threshold among equal F1s).

    >>> best_f1_threshold(np.array([0.9, 0.8, 0.8, 0.3]), np.array([1, 0, 1, 1], bool), 4)[0]
    0.3
    """
    tab = pr_table(scores, tp, n_gt)
    if len(tab) == 0:
        return math.inf, math.nan, 0.0, 0.0
    i = int(np.argmax(tab["f1"].to_numpy()))
    r = tab.iloc[i]
    return float(r.threshold), float(r.precision), float(r.recall), float(r.f1)


def threshold_for_recall(scores: np.ndarray, tp: np.ndarray, n_gt: int, target: float) -> tuple[float, float, float]:
    """(threshold, precision, recall): the highest threshold whose recall is >= ``target``.

    +inf (recall 0) when no threshold reaches it.
    """
    tab = pr_table(scores, tp, n_gt)
    hit = np.flatnonzero(tab["recall"].to_numpy() >= target - 1e-12)
    if len(hit) == 0:
        return math.inf, math.nan, 0.0
    r = tab.iloc[int(hit[0])]
    return float(r.threshold), float(r.precision), float(r.recall)


def at_threshold(scores: np.ndarray, tp: np.ndarray, n_gt: int, threshold: float) -> tuple[int, int, float, float]:
    """(n accepted, TP accepted, precision, recall) of "accept score >= threshold"."""
    acc = np.asarray(scores) >= threshold
    n = int(acc.sum())
    k = int(np.asarray(tp, bool)[acc].sum())
    return n, k, (k / n if n else math.nan), (k / n_gt if n_gt else math.nan)


def prf_per_class(pred: Detections, gt: Detections, *, score_threshold: float = 0.0,
                  iou_threshold: float = 0.5) -> pd.DataFrame:
    """Per-class precision, recall and F1 of the boxes scoring ``>= score_threshold``.

    Columns: category_id, class, n_gt, n_accepted, tp, precision, recall, f1 (NaN where undefined).
    """
    return threshold_sweep(pred, gt, (score_threshold,), iou_threshold=iou_threshold).query("`class` != 'all'").assign(
        category_id=gt.category_ids, n_accepted=lambda d: d["n_boxes"]
    )[["category_id", "class", "n_gt", "n_accepted", "tp", "precision", "recall", "f1"]].reset_index(drop=True)


def threshold_sweep(
    pred: Detections, gt: Detections, thresholds: tuple[float, ...] | np.ndarray = DEFAULT_SWEEP,
    *, iou_threshold: float = 0.5,
) -> pd.DataFrame:
    """Per class and overall ("all"): boxes accepted, TP, FP, FN, precision, recall, F1 per threshold."""
    out, n_gt = box_outcomes(pred, gt, iou_threshold=iou_threshold)
    thr = np.asarray(thresholds, np.float64)
    cats = gt.category_ids
    code = np.searchsorted(cats, out["category_id"].to_numpy())
    known = np.isin(out["category_id"].to_numpy(), cats)
    acc = out["score"].to_numpy()[None, :] >= thr[:, None]  # (T, n)
    tpm = acc & out["tp"].to_numpy()[None, :]
    K = len(cats)
    # Per-class counts with one bincount over (threshold, class) cells.
    cell = np.arange(len(thr))[:, None] * K + code[None, :]
    n_acc = np.bincount(cell[acc & known], minlength=len(thr) * K).reshape(len(thr), K)
    n_tp = np.bincount(cell[tpm & known], minlength=len(thr) * K).reshape(len(thr), K)
    ngt = n_gt.to_numpy()
    names = [gt.categories[int(c)] for c in cats]
    rows = pd.DataFrame({
        "threshold": np.repeat(thr, K + 1),
        "class": np.tile([*names, "all"], len(thr)),
        "n_boxes": np.c_[n_acc, n_acc.sum(1)].ravel(),
        "tp": np.c_[n_tp, n_tp.sum(1)].ravel(),
        "n_gt": np.tile(np.r_[ngt, ngt.sum()], len(thr)),
    })
    rows["fp"] = rows["n_boxes"] - rows["tp"]
    rows["fn"] = rows["n_gt"] - rows["tp"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["precision"] = rows["tp"] / rows["n_boxes"].where(rows["n_boxes"] > 0)
        rows["recall"] = rows["tp"] / rows["n_gt"].where(rows["n_gt"] > 0)
        rows["f1"] = 2 * rows["tp"] / (rows["n_boxes"] + rows["n_gt"]).where(rows["n_boxes"] + rows["n_gt"] > 0)
    return rows


class BoxThresholds:
    """Per-class (or one global) score thresholds for auto-accepting boxes.

    Parameters
    ----------
    method : "guarantee" (default), "best-f1" or "recall" — which rule ``thresholds_`` holds;
        ``report_`` shows all three.
    epsilon, delta : float in (0, 1) — guarantee: precision >= 1 - epsilon with prob. >= 1 - delta.
    target_recall : float in (0, 1] — for ``method="recall"``.
    iou_threshold : float — a box is right when it matches a true box of its class at this IoU.
    scope : "per-class" (delta / K per class) or "global" (one threshold for every class).
    bound : a name in :data:`labelsieve.guarantees.BOUNDS` (default Clopper-Pearson).
    min_n : int or "auto" — as in :func:`~labelsieve.guarantees.scan_threshold`.

    Attributes
    ----------
    thresholds_ : dict category_id -> float
    certificate_ : Certificate — the guarantee rule's thresholds (``classes`` = category ids, in
        ``gt.category_ids`` order) and what they guarantee (:meth:`Certificate.statement`).
    report_ : DataFrame — per class: n_gt, n_pred, and for each rule its threshold, precision and
        recall on the verified set; ``recall_cost``: recall at the best-F1 threshold minus recall at
        the guaranteed one; ``upper_error``: the bound on the error at the guaranteed threshold.

    >>> from labelsieve.detect.synthetic import make_scenes, SimulatedDetector
    >>> gt, _ = make_scenes(300, render=False, random_state=1)
    >>> pred = SimulatedDetector(random_state=1).predict(gt)
    >>> bt = BoxThresholds(epsilon=0.1, delta=0.1).fit(pred, gt)
    >>> bool((bt.report_["precision_guarantee"].dropna() >= 0.85).all())
    True
    """

    def __init__(self, *, method: str = "guarantee", epsilon: float = 0.05, delta: float = 0.05,
                 target_recall: float = 0.9, iou_threshold: float = 0.5, scope: str = "per-class",
                 bound: str = "clopper-pearson", min_n: int | str = "auto") -> None:
        self.method = method
        self.epsilon = epsilon
        self.delta = delta
        self.target_recall = target_recall
        self.iou_threshold = iou_threshold
        self.scope = scope
        self.bound = bound
        self.min_n = min_n

    def _validate(self) -> None:
        own = "BoxThresholds"
        check_option("method", self.method, owner=own, options=METHODS)
        check_open_unit("epsilon", self.epsilon, owner=own)
        check_open_unit("delta", self.delta, owner=own)
        check_interval("target_recall", self.target_recall, owner=own, low=0.0, high=1.0, closed="right")
        check_interval("iou_threshold", self.iou_threshold, owner=own, low=0.0, high=1.0, closed="right")
        check_option("scope", self.scope, owner=own, options=SCOPES)
        get_bound(self.bound, owner=own)
        resolve_min_n(self.min_n, self.epsilon, self.delta, self.bound, owner=own)

    def fit(self, pred: Detections, gt: Detections) -> BoxThresholds:
        """Choose thresholds on the verified images (those listed in ``gt``)."""
        self._validate()
        if len(pred) and not pred.is_prediction:
            raise InputError(f"{pred.source}: predictions need a finite score on every box.")
        out, n_gt = box_outcomes(pred, gt, iou_threshold=self.iou_threshold)
        cats = gt.category_ids
        s_all, tp_all = out["score"].to_numpy(), out["tp"].to_numpy()
        c_all = out["category_id"].to_numpy()
        groups: list[tuple[int, str, np.ndarray]]
        d = delta_per_test(self.delta, self.scope, max(len(cats), 1), owner="BoxThresholds")
        if self.scope == "global":
            groups = [(-1, "all", np.ones(len(out), bool))]
        else:
            groups = [(int(c), gt.categories[int(c)], c_all == c) for c in cats]
        rows, scans = [], []
        for cid, name, sel in groups:  # loop over classes
            s, tp = s_all[sel], tp_all[sel]
            ng = int(n_gt.sum() if cid < 0 else n_gt.get(cid, 0))
            res = scan_threshold(s, ~tp, epsilon=self.epsilon, delta=d, bound=self.bound, min_n=self.min_n)
            scans.append(res)
            f_t, f_p, f_r, f_f1 = best_f1_threshold(s, tp, ng)
            r_t, r_p, r_r = threshold_for_recall(s, tp, ng, self.target_recall)
            g_n, _, g_p, g_r = at_threshold(s, tp, ng, res.threshold)
            rows.append({
                "category_id": cid, "class": name, "n_gt": ng, "n_pred": int(sel.sum()),
                "threshold_guarantee": res.threshold, "precision_guarantee": g_p, "recall_guarantee": g_r,
                "n_accepted_guarantee": g_n, "upper_error": res.upper,
                "threshold_best_f1": f_t, "precision_best_f1": f_p, "recall_best_f1": f_r, "f1_best": f_f1,
                "threshold_recall": r_t, "precision_recall": r_p, "recall_recall": r_r,
                "recall_all": (tp.sum() / ng) if ng else math.nan,
                "recall_cost": f_r - g_r if ng else math.nan,
                "reason": res.reason,
            })
        self.report_ = pd.DataFrame(rows)
        columns = {"guarantee": "threshold_guarantee", "best-f1": "threshold_best_f1", "recall": "threshold_recall"}
        col = columns[self.method]
        if self.scope == "global":
            t = float(self.report_[col].iloc[0])
            self.thresholds_ = {int(c): t for c in cats}
        else:
            self.thresholds_ = dict(zip(self.report_["category_id"].astype(int), self.report_[col].astype(float),
                                        strict=True))
        self.delta_per_class_ = d
        thr = np.array([float(self.report_["threshold_guarantee"].iloc[0 if self.scope == "global" else i])
                        for i in range(len(cats))], dtype=np.float64)
        self.certificate_ = Certificate(
            thresholds=thr, epsilon=float(self.epsilon), delta=float(self.delta), bound=self.bound,
            scope=self.scope, min_n=resolve_min_n(self.min_n, self.epsilon, d, self.bound, owner="BoxThresholds"),
            delta_per_test=d, n_validation=len(out), scan="fixed-sequence", scans=tuple(scans),
            reasons={i: str(r.reason) for i, r in enumerate(scans) if r.reason} if self.scope != "global"
            else ({i: str(scans[0].reason) for i in range(len(cats))} if scans[0].reason else {}),
            guarantee="precision", classes=tuple(int(c) for c in cats),
        )
        self.guaranteed_ = self.method == "guarantee" and self.certificate_.guaranteed
        self.categories_ = dict(gt.categories)
        return self

    def threshold_array(self, category_id: np.ndarray) -> np.ndarray:
        """Threshold of each box's class (+inf for a class never seen in ``fit``)."""
        if not hasattr(self, "thresholds_"):
            raise InputError("BoxThresholds is not fitted; call fit(pred, gt) first.")
        keys = np.array(sorted(self.thresholds_), dtype=np.int64)
        vals = np.array([self.thresholds_[k] for k in keys])
        c = np.asarray(category_id, np.int64)
        pos = np.searchsorted(keys, c).clip(0, max(len(keys) - 1, 0))
        return np.where((len(keys) > 0) & (keys[pos] == c), vals[pos], np.inf)

    def accept(self, pred: Detections) -> np.ndarray:
        """Boolean mask of the boxes at or above their class's threshold."""
        return pred.scores >= self.threshold_array(pred.boxes["category_id"].to_numpy())

    def transform(self, pred: Detections) -> Detections:
        """Only the accepted boxes."""
        return pred.select(self.accept(pred))


def plot_pr_curves(pred: Detections, gt: Detections, path: str, *, iou_threshold: float = 0.5,
                   thresholds: BoxThresholds | None = None) -> str:
    """Save the precision-recall curve of every class (one PNG), marking fitted thresholds.

    Drawn on a standalone Figure with its own Agg canvas (no backend selection, works headless)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out, n_gt = box_outcomes(pred, gt, iou_threshold=iou_threshold)
    fig = Figure(figsize=(5.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for c in gt.category_ids:  # loop over classes
        sel = out["category_id"].to_numpy() == c
        tab = pr_table(out["score"].to_numpy()[sel], out["tp"].to_numpy()[sel], int(n_gt.get(c, 0)))
        line, = ax.plot(tab["recall"], tab["precision"], label=gt.categories[int(c)])
        if thresholds is not None and int(c) in thresholds.thresholds_ and len(tab):
            t = thresholds.thresholds_[int(c)]
            hit = tab[tab["threshold"] >= t]
            if len(hit):
                ax.plot(hit["recall"].iloc[-1], hit["precision"].iloc[-1], "o", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"PR per class at IoU {iou_threshold:g}")
    ax.legend(loc="lower left")
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight"), suffix=".png")
    return path
