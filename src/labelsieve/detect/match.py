"""IoU, greedy matching of predicted to true boxes, and COCO/VOC average precision.

Matching follows the COCO rule: within one (image, category) group, predictions are taken in
decreasing score order and each takes the still-unmatched true box with the highest IoU, if that
IoU is ``>= iou_threshold`` (ties in IoU go to the later true box, as in ``pycocotools``). A
prediction that takes a box is a true positive (TP); the others are false positives (FP).

Vectorised without a loop over boxes: all (prediction, true box) pairs of a group are built at
once, and the greedy pass loops over the *rank* of a prediction within its group — at rank r every
group's r-th prediction chooses at the same time (they never compete, being in different groups).
The loop therefore runs (largest group size) times, each step a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from labelsieve._validation import check_interval, check_option
from labelsieve.detect.boxes import Detections
from labelsieve.errors import InputError

#: COCO's ten IoU thresholds 0.50:0.05:0.95 (built as pycocotools builds them, for equal floats).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
#: COCO's 101 recall points.
COCO_RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AP_METHODS = ("coco101", "voc", "voc11")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Parameters
    ----------
    a : array, shape (n, 4) — xyxy.
    b : array, shape (m, 4) — xyxy.

    Returns
    -------
    array, shape (n, m)

    >>> iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])).round(4).tolist()
    [[0.1429, 1.0, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return pair_iou(a[:, None, :], b[None, :, :])


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box pairs, broadcasting over leading axes (last axis: xyxy)."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass(frozen=True)
class Matching:
    """Result of :func:`match_boxes`.

    ``gt_index[i]``: the true box prediction ``i`` took (-1: none, a FP); ``iou[i]`` its IoU;
    ``rank[i]``: its position by score within its group (0 = highest); ``kept[i]``: False for
    predictions beyond ``max_dets`` in their group (neither TP nor FP, ignored as COCO does).
    """

    gt_index: np.ndarray
    iou: np.ndarray
    rank: np.ndarray
    kept: np.ndarray

    @property
    def tp(self) -> np.ndarray:
        return self.gt_index >= 0


def _group_codes(img_p: np.ndarray, cls_p: np.ndarray, img_g: np.ndarray, cls_g: np.ndarray) -> tuple:
    img_codes, _ = pd.factorize(np.concatenate([img_p, img_g]))
    cls_codes, cls_uniq = pd.factorize(np.concatenate([cls_p, cls_g]))
    codes, uniq = pd.factorize(img_codes.astype(np.int64) * max(len(cls_uniq), 1) + cls_codes)
    return codes[: len(img_p)], codes[len(img_p) :], len(uniq)


@dataclass(frozen=True)
class _Pairs:
    """Candidate (prediction, true box) pairs of the same group with IoU >= the lowest threshold."""

    n: int
    m: int
    p_idx: np.ndarray
    t_idx: np.ndarray
    iou: np.ndarray
    t_pos: np.ndarray
    rank: np.ndarray
    kept: np.ndarray


def match_boxes(
    pred_xyxy: np.ndarray,
    pred_score: np.ndarray,
    pred_image: np.ndarray,
    pred_class: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_image: np.ndarray,
    gt_class: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    max_dets: int | None = None,
    class_aware: bool = True,
) -> Matching:
    """Greedy COCO-style matching of predictions to true boxes (pure function).

    Parameters
    ----------
    pred_xyxy : (n, 4); pred_score, pred_image, pred_class : (n,)
    gt_xyxy : (m, 4); gt_image, gt_class : (m,)
    iou_threshold : float — a match needs IoU ``>=`` this.
    max_dets : int, optional — keep only the top ``max_dets`` predictions per group (COCO: 100).
    class_aware : bool — False matches regardless of class (groups are images), for confusion.

    Returns
    -------
    Matching

    >>> m = match_boxes(np.array([[0, 0, 10, 10], [0, 0, 10, 9]]), np.array([0.6, 0.9]), np.array([1, 1]),
    ...                 np.array([0, 0]), np.array([[0, 0, 10, 10]]), np.array([1]), np.array([0]))
    >>> m.gt_index.tolist()  # the higher-scored box takes the only true box
    [-1, 0]
    """
    pairs = _candidate_pairs(pred_xyxy, pred_score, pred_image, pred_class, gt_xyxy, gt_image, gt_class,
                             min_iou=iou_threshold, max_dets=max_dets, class_aware=class_aware)
    return _greedy(pairs, iou_threshold)


def _candidate_pairs(pred_xyxy, pred_score, pred_image, pred_class, gt_xyxy, gt_image, gt_class, *,
                     min_iou: float, max_dets: int | None, class_aware: bool) -> _Pairs:
    pb = np.asarray(pred_xyxy, np.float64).reshape(-1, 4)
    gb = np.asarray(gt_xyxy, np.float64).reshape(-1, 4)
    ps = np.asarray(pred_score, np.float64)
    pi, gi = np.asarray(pred_image), np.asarray(gt_image)
    pc = np.asarray(pred_class) if class_aware else np.zeros(len(pi), np.int64)
    gc = np.asarray(gt_class) if class_aware else np.zeros(len(gi), np.int64)
    n, m = len(pb), len(gb)
    if not (len(ps) == len(pi) == len(pc) == n) or not (len(gi) == len(gc) == m):
        raise InputError(f"match_boxes: inconsistent lengths (predictions {n}, true boxes {m}).")
    empty = np.zeros(0, np.int64)
    if n == 0:
        return _Pairs(n, m, empty, empty, np.zeros(0), np.zeros(m, np.int64), empty, np.ones(0, bool))
    gp, gg, n_groups = _group_codes(pi, pc, gi, gc)
    # Predictions: sort by (group, -score, original position) -> rank within group.
    order = np.lexsort((np.arange(n), -ps, gp))
    gp_sorted = gp[order]
    starts = np.flatnonzero(np.r_[True, gp_sorted[1:] != gp_sorted[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    kept = np.ones(n, bool) if max_dets is None else rank < max_dets
    if m == 0:
        return _Pairs(n, m, empty, empty, np.zeros(0), np.zeros(0, np.int64), rank, kept)
    # True boxes sorted by group (stable: original order inside a group).
    g_order = np.argsort(gg, kind="stable")
    g_count = np.bincount(gg, minlength=n_groups)
    g_start = np.r_[0, np.cumsum(g_count)[:-1]]
    # All (prediction, true box) pairs inside each group.
    cand = np.flatnonzero(kept)
    per = g_count[gp[cand]]
    p_idx = np.repeat(cand, per)
    offs = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    t_idx = g_order[np.repeat(g_start[gp[cand]], per) + offs]
    ious = pair_iou(pb[p_idx], gb[t_idx])
    ok = ious >= min(float(min_iou), 1 - 1e-10)
    p_idx, t_idx, ious = p_idx[ok], t_idx[ok], ious[ok]
    t_pos = np.empty(m, np.int64)
    t_pos[g_order] = np.arange(m)
    # Sort pairs by (rank of prediction, prediction, IoU desc, true-box position desc).
    srt = np.lexsort((-t_pos[t_idx], -ious, p_idx, rank[p_idx]))
    return _Pairs(n, m, p_idx[srt], t_idx[srt], ious[srt], t_pos, rank, kept)


def _greedy(pairs: _Pairs, iou_threshold: float) -> Matching:
    gt_index = np.full(pairs.n, -1, np.int64)
    best_iou = np.zeros(pairs.n)
    ok = pairs.iou >= min(float(iou_threshold), 1 - 1e-10)
    p_idx, t_idx, ious = pairs.p_idx[ok], pairs.t_idx[ok], pairs.iou[ok]
    if len(p_idx) == 0:
        return Matching(gt_index, best_iou, pairs.rank, pairs.kept)
    r_of_pair = pairs.rank[p_idx]
    bounds = np.searchsorted(r_of_pair, np.arange(r_of_pair[-1] + 2))
    taken = np.zeros(pairs.m, bool)
    for r in range(r_of_pair[-1] + 1):  # loop over ranks, not boxes (see module docstring)
        lo, hi = bounds[r], bounds[r + 1]
        if lo == hi:
            continue
        pp, tt, ii = p_idx[lo:hi], t_idx[lo:hi], ious[lo:hi]
        free = ~taken[tt]
        if not free.any():
            continue
        pp, tt, ii = pp[free], tt[free], ii[free]
        first = np.r_[True, pp[1:] != pp[:-1]]  # best remaining true box of each prediction
        gt_index[pp[first]] = tt[first]
        best_iou[pp[first]] = ii[first]
        taken[tt[first]] = True
    return Matching(gt_index, best_iou, pairs.rank, pairs.kept)


def match_detections(
    pred: Detections, gt: Detections, *, iou_threshold: float = 0.5, max_dets: int | None = None,
    class_aware: bool = True,
) -> Matching:
    """:func:`match_boxes` on two :class:`Detections` tables."""
    check_interval("iou_threshold", iou_threshold, owner="match_detections", low=0.0, high=1.0, closed="right")
    return match_boxes(
        pred.xyxy, pred.scores, pred.boxes["image_id"].to_numpy(), pred.boxes["category_id"].to_numpy(),
        gt.xyxy, gt.boxes["image_id"].to_numpy(), gt.boxes["category_id"].to_numpy(),
        iou_threshold=iou_threshold, max_dets=max_dets, class_aware=class_aware,
    )


# ------------------------------------------------------------------------------- PR and AP
def pr_curve(scores: np.ndarray, tp: np.ndarray, n_gt: int, *, tie_order: np.ndarray | None = None) -> tuple:
    """Precision and recall after each prediction, in decreasing score order.

    Parameters
    ----------
    scores, tp : (n,) — score and TP flag of each (kept) prediction.
    n_gt : int — number of true boxes.
    tie_order : (n,), optional — secondary sort key (ascending) among equal scores.

    Returns
    -------
    precision, recall, sorted_scores : arrays of shape (n,)

    >>> p, r, s = pr_curve(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 4)
    >>> p.round(3).tolist(), r.tolist()
    ([1.0, 0.5, 0.667], [0.25, 0.25, 0.5])
    """
    s = np.asarray(scores, np.float64)
    t = np.asarray(tp, bool)
    keys = (np.arange(len(s)),) if tie_order is None else (np.arange(len(s)), np.asarray(tie_order))
    order = np.lexsort((*keys, -s))
    tps = np.cumsum(t[order], dtype=np.float64)
    fps = np.cumsum(~t[order], dtype=np.float64)
    recall = tps / n_gt if n_gt > 0 else np.zeros_like(tps)
    precision = tps / (tps + fps + np.spacing(1))  # pycocotools adds spacing(1)
    return precision, recall, s[order]


def average_precision(precision: np.ndarray, recall: np.ndarray, method: str = "coco101") -> float:
    """Area under a PR curve.

    ``coco101``: precision made non-increasing, read at the 101 recall points 0:0.01:1 (0 beyond
    the last recall reached), averaged (COCO). ``voc``: all-point interpolation (VOC 2010+): the
    sum of recall steps times the interpolated precision. ``voc11``: 11 recall points 0:0.1:1.

    >>> round(average_precision(np.array([1.0, 0.5, 2 / 3]), np.array([0.25, 0.25, 0.5]), "voc"), 4)
    0.4167
    """
    check_option("method", method, owner="average_precision", options=AP_METHODS)
    p = np.asarray(precision, np.float64)
    r = np.asarray(recall, np.float64)
    if len(p) == 0:
        return 0.0
    env = np.maximum.accumulate(p[::-1])[::-1]  # interpolated precision: max to the right
    if method == "coco101":
        idx = np.searchsorted(r, COCO_RECALL_POINTS, side="left")
        q = np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0.0)
        return float(q.mean())
    if method == "voc11":
        pts = np.linspace(0, 1, 11)
        idx = np.searchsorted(r, pts, side="left")
        return float(np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0.0).mean())
    r_prev = np.r_[0.0, r[:-1]]
    return float(np.sum((r - r_prev) * env))


def coco_evaluate(
    pred: Detections,
    gt: Detections,
    *,
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
    max_dets: int = 100,
) -> dict:
    """COCO box AP/AR, computed as pycocotools' ``COCOeval`` (area range "all").

    Returns a dict with ``AP`` (mean over IoU 0.50:0.95 and classes with true boxes), ``AP50``,
    ``AP75``, ``AR`` (recall at ``max_dets``), and ``per_class`` (DataFrame: category_id, name,
    n_gt, n_pred, AP, AP50, AP75, AR). Classes without true boxes are excluded from the means
    (they get NaN), as in COCOeval. Crowd regions are not supported.
    """
    ious = np.asarray(iou_thresholds, np.float64)
    cats = gt.category_ids
    pc = pred.boxes["category_id"].to_numpy()
    gc = gt.boxes["category_id"].to_numpy()
    n_gt = np.bincount(np.searchsorted(cats, gc), minlength=len(cats)) if len(cats) else np.zeros(0, int)
    pimg = pred.boxes["image_id"].to_numpy()
    ap = np.full((len(ious), len(cats)), np.nan)
    ar = np.full((len(ious), len(cats)), np.nan)
    in_gt_images = np.isin(pimg, gt.images["image_id"].to_numpy())
    pairs = _candidate_pairs(pred.xyxy, pred.scores, pimg, pc, gt.xyxy, gt.boxes["image_id"].to_numpy(), gc,
                             min_iou=float(ious.min()), max_dets=max_dets, class_aware=True)
    for t, thr in enumerate(ious):  # ten thresholds; pairs and IoUs are computed once
        mt = _greedy(pairs, float(thr))
        keep = mt.kept & in_gt_images & np.isin(pc, cats)
        kc = np.searchsorted(cats, pc[keep])
        s, tp, rk, im = pred.scores[keep], mt.tp[keep], mt.rank[keep], pimg[keep]
        # pycocotools' order: images by id, then rank in the image, then a stable sort by score.
        order = np.lexsort((rk, im, -s, kc))
        kc, s, tp = kc[order], s[order], tp[order]
        bounds = np.searchsorted(kc, np.arange(len(cats) + 1))
        for k in range(len(cats)):  # loop over classes
            if n_gt[k] == 0:
                continue
            sl = slice(bounds[k], bounds[k + 1])
            tps = np.cumsum(tp[sl], dtype=np.float64)
            fps = np.cumsum(~tp[sl], dtype=np.float64)
            rc = tps / n_gt[k]
            prec = tps / (tps + fps + np.spacing(1))
            ap[t, k] = average_precision(prec, rc, "coco101")
            ar[t, k] = rc[-1] if len(rc) else 0.0
    valid = n_gt > 0
    n_pred = np.bincount(np.searchsorted(cats, pc[np.isin(pc, cats)]), minlength=len(cats))
    i50 = int(np.argmin(np.abs(ious - 0.5)))
    i75 = int(np.argmin(np.abs(ious - 0.75)))
    per_class = pd.DataFrame(
        {
            "category_id": cats,
            "name": [gt.categories[int(c)] for c in cats],
            "n_gt": n_gt,
            "n_pred": n_pred,
            "AP": ap.mean(axis=0),
            "AP50": ap[i50],
            "AP75": ap[i75],
            "AR": ar.mean(axis=0),
        }
    )

    def mean(x: np.ndarray) -> float:
        return float(x[:, valid].mean()) if valid.any() else float("nan")

    return {
        "AP": mean(ap),
        "AP50": mean(ap[[i50]]),
        "AP75": mean(ap[[i75]]),
        "AR": mean(ar),
        "per_class": per_class,
    }


def confusion_at_iou(pred: Detections, gt: Detections, *, iou_threshold: float = 0.5,
                     score_threshold: float = 0.0) -> pd.DataFrame:
    """Class confusion at an IoU threshold: rows are true classes + "background" (a prediction
    that matched no true box), columns predicted classes + "missed" (a true box no prediction took).

    Matching ignores classes (greedy by score per image), so a box of the wrong class that sits on
    a true object counts in that object's row.
    """
    keep = pred.scores >= score_threshold
    p = pred.select(keep)
    mt = match_detections(p, gt, iou_threshold=iou_threshold, class_aware=False)
    cats = gt.category_ids
    names = [gt.categories[int(c)] for c in cats]
    K = len(cats)
    pc = np.searchsorted(cats, p.boxes["category_id"].to_numpy())
    gcodes = np.searchsorted(cats, gt.boxes["category_id"].to_numpy())
    true_row = np.where(mt.tp, gcodes[np.maximum(mt.gt_index, 0)], K)
    M = np.zeros((K + 1, K + 1), np.int64)
    np.add.at(M, (true_row, pc), 1)
    took = np.zeros(len(gcodes), bool)
    took[mt.gt_index[mt.tp]] = True
    M[:K, K] = np.bincount(gcodes[~took], minlength=K)
    return pd.DataFrame(M, index=[*names, "background"], columns=[*names, "missed"])
