"""Boxes: IoU and matching by hand, AP against pycocotools, thresholds, synthetic data, the audit."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelsieve.autolabel.certify import scan_threshold
from labelsieve.detect import (
    BoxThresholds,
    Detections,
    SimulatedDetector,
    average_precision,
    best_f1_threshold,
    box_outcomes,
    coco_evaluate,
    confusion_at_iou,
    decode_mask,
    iou_matrix,
    make_scenes,
    match_boxes,
    match_detections,
    pr_table,
    threshold_for_recall,
    threshold_sweep,
    write_coco_gt,
    write_coco_results,
)
from labelsieve.detect.match import pair_iou
from labelsieve.detect.synthetic import masks_to_boxes
from labelsieve.errors import ParameterError
from labelsieve.experiments.detect_audit import audit_box_guarantee


def _dets(rows, images=((1, 100, 100),), cats=None, score=True):
    """Detections from rows (image, x1, y1, x2, y2, category[, score])."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 7 if score else 6)
    img = pd.DataFrame({"image_id": [i for i, _, _ in images], "file_name": [f"{i}.png" for i, _, _ in images],
                        "width": [w for _, w, _ in images], "height": [h for _, _, h in images]})
    b = pd.DataFrame({"image_id": a[:, 0].astype(int), "x1": a[:, 1], "y1": a[:, 2], "x2": a[:, 3], "y2": a[:, 4],
                      "category_id": a[:, 5].astype(int), "score": a[:, 6] if score else np.nan})
    return Detections(b, img, cats or {1: "a", 2: "b"})


# ------------------------------------------------------------------------------------- IoU
def test_iou_hand_computed_cases():
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [2, 0, 4, 2], [5, 5, 6, 6], [0.5, 0.5, 1.5, 1.5], [1, 1, 3, 3]])
    # identical 1; half overlap 2/(4+4-2)=1/3; touching edge 0; disjoint 0; inside 1/4; corner 1/7
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 1 / 3, 0.0, 0.0, 0.25, 1 / 7])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.floats(0, 50)] * 2, *[st.floats(0.5, 30)] * 2), min_size=1, max_size=6),
       st.lists(st.tuples(*[st.floats(0, 50)] * 2, *[st.floats(0.5, 30)] * 2), min_size=1, max_size=6))
def test_iou_matrix_equals_scalar_formula_and_is_symmetric(xa, xb):
    A = np.array([[x, y, x + w, y + h] for x, y, w, h in xa])
    B = np.array([[x, y, x + w, y + h] for x, y, w, h in xb])
    M = iou_matrix(A, B)
    for i, p in enumerate(A):
        for j, q in enumerate(B):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            assert M[i, j] == pytest.approx(inter / union, abs=1e-12)
    np.testing.assert_allclose(iou_matrix(B, A), M.T)
    assert ((M >= 0) & (M <= 1 + 1e-12)).all()


# -------------------------------------------------------------------------------- matching
def test_greedy_matching_hand_case():
    gt = _dets([[1, 0, 0, 10, 10, 1], [1, 4, 0, 14, 10, 1], [1, 50, 50, 60, 60, 2]], score=False)
    pred = _dets([
        [1, 3, 0, 13, 10, 1, 0.9],    # IoU gt0 = 7/13 = .538, gt1 = 9/11 = .818 -> takes gt1
        [1, 4, 0, 14, 10, 1, 0.8],    # only gt1 (IoU 1) which is taken; gt0 IoU 6/14 < .5 -> FP
        [1, 1, 0, 11, 10, 1, 0.7],    # gt0 IoU 9/11 -> TP
        [1, 50, 50, 60, 60, 1, 0.95],  # on gt2 but wrong class -> FP
        [1, 50, 50, 60, 60, 2, 0.1],  # right class -> TP even with a low score
    ])
    m = match_detections(pred, gt)
    assert m.gt_index.tolist() == [1, -1, 0, -1, 2]
    assert m.iou[0] == pytest.approx(9 / 11)
    # class-agnostic: the 0.95 box now takes gt2 and the 0.1 box is a duplicate
    m2 = match_detections(pred, gt, class_aware=False)
    assert m2.gt_index[3] == 2 and m2.gt_index[4] == -1


def test_match_threshold_is_inclusive_and_images_are_separate():
    # IoU exactly 0.5: [0,0,2,1] vs [0,0,1,1]... use boxes with IoU 1/2 exactly
    gt = _dets([[1, 0, 0, 4, 2, 1], [2, 0, 0, 4, 2, 1]], images=((1, 10, 10), (2, 10, 10)), score=False)
    pred = _dets([[1, 0, 0, 2, 2, 1, 0.5]], images=((1, 10, 10), (2, 10, 10)))
    assert pair_iou(pred.xyxy[0], gt.xyxy[0]) == 0.5
    assert match_detections(pred, gt).gt_index.tolist() == [0]
    assert match_detections(pred, gt, iou_threshold=0.51).gt_index.tolist() == [-1]
    pred2 = _dets([[2, 0, 0, 4, 2, 1, 0.5]], images=((1, 10, 10), (2, 10, 10)))
    assert match_detections(pred2, gt).gt_index.tolist() == [1]  # only the box of its own image


def _reference_greedy(pb, ps, pi, pc, gb, gi, gc, thr):
    """Plain-loop COCO greedy matching, for comparison."""
    out = np.full(len(pb), -1)
    used = set()
    for i in sorted(range(len(pb)), key=lambda i: (-ps[i], i)):
        best, best_iou = -1, min(thr, 1 - 1e-10)
        for j in range(len(gb)):
            if gi[j] != pi[i] or gc[j] != pc[i] or j in used:
                continue
            v = iou_matrix(pb[i:i + 1], gb[j:j + 1])[0, 0]
            if v >= best_iou:
                best, best_iou = j, v
        if best >= 0:
            used.add(best)
            out[i] = best
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 25), st.integers(0, 15))
def test_vectorised_matching_equals_reference_loop(seed, n, m):
    rng = np.random.default_rng(seed)
    def boxes(k):
        xy = rng.uniform(0, 20, (k, 2))
        return np.c_[xy, xy + rng.uniform(2, 12, (k, 2))]
    pb, gb = boxes(n), boxes(m)
    ps = rng.choice([0.2, 0.5, 0.9], n) if seed % 2 else rng.random(n)  # ties half of the time
    pi, gi = rng.integers(0, 3, n), rng.integers(0, 3, m)
    pc, gc = rng.integers(0, 2, n), rng.integers(0, 2, m)
    got = match_boxes(pb, ps, pi, pc, gb, gi, gc, iou_threshold=0.3).gt_index
    assert got.tolist() == _reference_greedy(pb, ps, pi, pc, gb, gi, gc, 0.3).tolist()


# ------------------------------------------------------------------------- F1, PR and AP
def test_pr_table_and_f1_at_a_threshold_by_hand():
    s = np.array([0.9, 0.8, 0.7, 0.6])
    tp = np.array([True, False, True, False])
    tab = pr_table(s, tp, 3)
    r = tab[tab.threshold == 0.7].iloc[0]  # accept 3 boxes, 2 right, 3 true boxes
    assert (r.n_accepted, r.tp, r.fp) == (3, 2, 1)
    assert r.precision == pytest.approx(2 / 3) and r.recall == pytest.approx(2 / 3) and r.f1 == pytest.approx(2 / 3)
    t, _p, _rec, f1 = best_f1_threshold(s, tp, 3)
    # F1 by threshold: .9 -> 2*1*(1/3)/(4/3)=.5; .8 -> .4; .7 -> 2/3; .6 -> 4/7: best at .7
    assert (t, f1) == (0.7, pytest.approx(2 / 3))
    assert threshold_for_recall(s, tp, 3, 0.5)[0] == 0.7
    assert threshold_for_recall(s, tp, 3, 0.3)[0] == 0.9
    assert threshold_for_recall(s, tp, 3, 0.9)[0] == np.inf


def test_average_precision_hand_cases():
    # One TP at recall 1/2 with precision 1, then FPs: COCO reads precision 1 at recall 0..0.50.
    p, r = np.array([1.0, 0.5]), np.array([0.5, 0.5])
    assert average_precision(p, r, "coco101") == pytest.approx(51 / 101)
    assert average_precision(p, r, "voc") == pytest.approx(0.5)
    assert average_precision(p, r, "voc11") == pytest.approx(6 / 11)
    # TP, FP, TP with 2 true boxes: VOC all-point = .5*1 + .5*(2/3)
    p, r = np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    assert average_precision(p, r, "voc") == pytest.approx(0.5 + 1 / 3)
    # perfect detector
    assert average_precision(np.ones(4), np.arange(1, 5) / 4, "coco101") == pytest.approx(1.0)


def _pycocotools_stats(gt, pred, tmp_path):
    pytest.importorskip("pycocotools", reason="pycocotools is needed to compare AP")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    write_coco_gt(gt, tmp_path / "gt.json")
    write_coco_results(pred, tmp_path / "res.json")
    with contextlib.redirect_stdout(io.StringIO()):
        C = COCO(str(tmp_path / "gt.json"))
        D = C.loadRes(str(tmp_path / "res.json"))
        E = COCOeval(C, D, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


@pytest.mark.parametrize("seed,round_scores", [(0, False), (1, False), (2, True), (3, True)])
def test_ap_equals_pycocotools(tmp_path, seed, round_scores):
    gt, _ = make_scenes(150, random_state=seed, render=False)
    pred = SimulatedDetector(random_state=seed, fp_per_image=2.0, jitter=0.12).predict(gt)
    if round_scores:  # many ties: the order among equal scores must be COCO's too
        pred.boxes["score"] = pred.boxes["score"].round(1)
    ours = coco_evaluate(pred, gt)
    E = _pycocotools_stats(gt, pred, tmp_path)
    assert ours["AP"] == pytest.approx(E.stats[0], abs=1e-12)
    assert ours["AP50"] == pytest.approx(E.stats[1], abs=1e-12)
    assert ours["AP75"] == pytest.approx(E.stats[2], abs=1e-12)
    assert ours["AR"] == pytest.approx(E.stats[8], abs=1e-12)
    # per class: COCOeval precision[T, R, K, area=all, maxDet=100]
    per = E.eval["precision"][:, :, :, 0, 2].mean(axis=(0, 1))
    np.testing.assert_allclose(ours["per_class"]["AP"].to_numpy(), per, atol=1e-12)


def test_ap_with_max_dets_and_a_class_without_detections(tmp_path):
    gt, _ = make_scenes(40, random_state=5, render=False, objects_per_image=(4, 8))
    pred = SimulatedDetector(random_state=5, fp_per_image=4).predict(gt)
    pred = pred.select(pred.boxes["category_id"].to_numpy() != 2)  # class 2 never predicted: AP 0
    ours = coco_evaluate(pred, gt, max_dets=100)
    assert ours["per_class"].set_index("category_id").loc[2, "AP"] == 0.0
    assert ours["AP"] == pytest.approx(_pycocotools_stats(gt, pred, tmp_path).stats[0], abs=1e-12)
    # keeping only the top 2 boxes per image and class can only lower recall
    assert coco_evaluate(pred, gt, max_dets=2)["AR"] < ours["AR"]


def test_confusion_counts_by_hand():
    gt = _dets([[1, 0, 0, 10, 10, 1], [1, 20, 20, 30, 30, 2], [1, 40, 40, 50, 50, 2]], score=False)
    pred = _dets([[1, 0, 0, 10, 10, 1, 0.9], [1, 20, 20, 30, 30, 1, 0.8], [1, 70, 70, 80, 80, 2, 0.7]])
    M = confusion_at_iou(pred, gt)
    assert M.loc["a", "a"] == 1 and M.loc["b", "a"] == 1  # a "b" object predicted as "a"
    assert M.loc["background", "b"] == 1  # a "b" box on nothing
    assert M.loc["b", "missed"] == 1 and M.loc["a", "missed"] == 0
    assert M.to_numpy().sum() == 4


def test_per_class_precision_recall_f1_by_hand():
    from labelsieve.detect.thresholds import prf_per_class

    gt = _dets([[1, 0, 0, 10, 10, 1], [1, 20, 20, 30, 30, 2], [1, 40, 40, 50, 50, 2]], score=False)
    pred = _dets([[1, 0, 0, 10, 10, 1, 0.9], [1, 20, 20, 30, 30, 1, 0.8], [1, 70, 70, 80, 80, 2, 0.7]])
    t = prf_per_class(pred, gt).set_index("class")
    # a: 2 accepted, 1 right, 1 true box -> P 1/2, R 1, F1 2/3;  b: 1 accepted, 0 right, 2 true boxes
    assert (t.loc["a", "n_accepted"], t.loc["a", "tp"], t.loc["a", "n_gt"]) == (2, 1, 1)
    assert t.loc["a", "precision"] == 0.5 and t.loc["a", "recall"] == 1.0 and t.loc["a", "f1"] == pytest.approx(2 / 3)
    assert (t.loc["b", "precision"], t.loc["b", "recall"], t.loc["b", "f1"]) == (0.0, 0.0, 0.0)
    t = prf_per_class(pred, gt, score_threshold=0.85).set_index("class")
    assert t.loc["a", "precision"] == 1.0 and t.loc["a", "f1"] == 1.0
    assert np.isnan(t.loc["b", "precision"]) and t.loc["b", "recall"] == 0.0


# ----------------------------------------------------------------------------- thresholds
@pytest.fixture(scope="module")
def verified():
    gt, _ = make_scenes(400, random_state=11, render=False)
    pred = SimulatedDetector(random_state=12).predict(gt)
    return gt, pred


def test_guarantee_threshold_is_the_certify_scan_on_matched_boxes(verified):
    gt, pred = verified
    bt = BoxThresholds(epsilon=0.1, delta=0.1).fit(pred, gt)
    out, n_gt = box_outcomes(pred, gt)
    for c in gt.category_ids:
        sel = out.category_id.to_numpy() == c
        res = scan_threshold(out.score.to_numpy()[sel], ~out.tp.to_numpy()[sel], epsilon=0.1, delta=0.1 / 3)
        assert bt.thresholds_[int(c)] == res.threshold
        r = bt.report_.set_index("category_id").loc[c]
        if np.isfinite(res.threshold):
            acc = sel & (out.score.to_numpy() >= res.threshold)
            assert r.precision_guarantee == pytest.approx(out.tp.to_numpy()[acc].mean())
            assert r.recall_guarantee == pytest.approx(out.tp.to_numpy()[acc].sum() / n_gt[c])
            assert r.recall_cost == pytest.approx(r.recall_best_f1 - r.recall_guarantee)
    assert np.isfinite(list(bt.thresholds_.values())).any()
    # the accepted boxes are exactly those at or above their class's threshold
    keep = bt.accept(pred)
    thr = pred.boxes.category_id.map(bt.thresholds_).to_numpy()
    np.testing.assert_array_equal(keep, pred.scores >= thr)
    assert len(bt.transform(pred)) == keep.sum()


def test_best_f1_and_recall_methods_by_brute_force(verified):
    gt, pred = verified
    out, n_gt = box_outcomes(pred, gt)
    f1 = BoxThresholds(method="best-f1").fit(pred, gt)
    rec = BoxThresholds(method="recall", target_recall=0.6).fit(pred, gt)
    for c in gt.category_ids:
        sel = out.category_id.to_numpy() == c
        s, tp = out.score.to_numpy()[sel], out.tp.to_numpy()[sel]
        cand = np.unique(s)
        f1s = [2 * tp[s >= t].sum() / ((s >= t).sum() + n_gt[c]) for t in cand]
        assert f1.thresholds_[int(c)] == cand[int(np.argmax(f1s))] or np.isclose(
            max(f1s), f1s[list(cand).index(f1.thresholds_[int(c)])])
        t = rec.thresholds_[int(c)]
        assert tp[s >= t].sum() / n_gt[c] >= 0.6
        higher = cand[cand > t]
        if len(higher):
            assert tp[s >= higher.min()].sum() / n_gt[c] < 0.6


def test_global_scope_gives_one_threshold(verified):
    gt, pred = verified
    bt = BoxThresholds(scope="global", epsilon=0.1, delta=0.1).fit(pred, gt)
    assert len(set(bt.thresholds_.values())) == 1 and bt.delta_per_class_ == 0.1


def test_sweep_counts(verified):
    gt, pred = verified
    sw = threshold_sweep(pred, gt)
    out, n_gt = box_outcomes(pred, gt)
    r = sw[(sw.threshold == 0.3) & (sw["class"] == "disk")].iloc[0]
    sel = (out.category_id == 2).to_numpy() & (out.score.to_numpy() >= 0.3)
    assert r.n_boxes == sel.sum() and r.tp == out.tp.to_numpy()[sel].sum() and r.tp + r.fn == n_gt[2]
    allrows = sw[sw["class"] == "all"]
    assert (np.diff(allrows.n_boxes.to_numpy()) <= 0).all()  # fewer boxes at higher thresholds
    assert (allrows.tp + allrows.fn == len(gt)).all()
    assert sorted(sw.threshold.unique()) == pytest.approx([0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])


def test_boxes_on_unverified_images_are_ignored(verified):
    gt, pred = verified
    half = gt.subset_images(gt.images.image_id.to_numpy()[:200])
    out, n_gt = box_outcomes(pred, half)
    assert set(out.image_id) <= set(half.images.image_id) and n_gt.sum() == len(half)


# ---------------------------------------------------------------- the guarantee, audited
def test_box_precision_guarantee_over_100_seeds():
    res = audit_box_guarantee(n_seeds=100, epsilon=0.1, delta=0.1, n_verified=250, n_pool=10000, random_state=3)
    s = res.summary
    assert s["violation_rate_guarantee"] <= 0.1
    # the detector is over-confident: trusting its score, or the best-F1 threshold, breaks precision
    assert s["violation_rate_naive"] > 0.5 and s["violation_rate_best_f1"] > 0.5
    # the guarantee is not vacuous and its recall is reported next to best-F1's
    assert s["share_no_threshold"] < 0.9 and 0 < s["mean_recall_guarantee"] < s["mean_recall_best_f1"]
    assert {"pool_recall_guarantee", "pool_recall_best_f1"} <= set(res.table.columns)
    assert res.table.seed.nunique() == 100


# ---------------------------------------------------------------------------- synthetic
def test_scenes_have_exact_masks_and_boxes():
    gt, pics = make_scenes(6, random_state=4)
    assert len(pics) == 6 and pics[0].shape == (96, 128, 3) and pics[0].dtype == np.uint8
    masks = np.stack([decode_mask(m) for m in gt.boxes["mask"]])
    np.testing.assert_array_equal(masks_to_boxes(masks), gt.xyxy)
    for img_id in gt.images.image_id:  # objects never overlap
        sel = (gt.boxes.image_id == img_id).to_numpy()
        assert masks[sel].sum(axis=0).max() <= 1
    # seeded: the same seed gives the same scenes
    assert make_scenes(6, random_state=4)[0].boxes.drop(columns="mask").equals(gt.boxes.drop(columns="mask"))
    square = (gt.boxes.category_id == 1).to_numpy()
    if square.any():  # a square fills its box
        i = int(np.flatnonzero(square)[0])
        x1, y1, x2, y2 = gt.xyxy[i]
        assert masks[i].sum() == (x2 - x1) * (y2 - y1)


def test_simulated_detector_calibration_is_controllable():
    gt, _ = make_scenes(1500, random_state=0, render=False)
    kw = {"fp_per_image": 0.0, "image_effect": 0.0, "quality": (2.0, 2.0)}
    cal, _ = box_outcomes(SimulatedDetector(random_state=1, **kw).predict(gt), gt)
    over, _ = box_outcomes(SimulatedDetector(random_state=1, overconfidence=3.0, **kw).predict(gt), gt)
    for lo, hi in [(0.2, 0.4), (0.6, 0.8)]:
        b = cal[(cal.score >= lo) & (cal.score < hi)]
        assert abs(b.tp.mean() - b.score.mean()) < 0.05  # calibrated: P(TP | score) ~ score
    hi = over[over.score >= 0.9]
    assert hi.tp.mean() < hi.score.mean() - 0.05  # over-confident: high scores overstate


# ------------------------------------------------------------------ invalid parameters
GT_SMALL, _ = make_scenes(5, random_state=0, render=False)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: BoxThresholds(epsilon=1.5).fit(GT_SMALL, GT_SMALL), "'epsilon' parameter of BoxThresholds"),
        (lambda: BoxThresholds(delta=0).fit(GT_SMALL, GT_SMALL), "'delta' parameter of BoxThresholds"),
        (lambda: BoxThresholds(method="max").fit(GT_SMALL, GT_SMALL), "'method' parameter of BoxThresholds"),
        (lambda: BoxThresholds(scope="x").fit(GT_SMALL, GT_SMALL), "'scope' parameter of BoxThresholds"),
        (lambda: BoxThresholds(bound="x").fit(GT_SMALL, GT_SMALL), "'bound' parameter of BoxThresholds"),
        (lambda: BoxThresholds(target_recall=0).fit(GT_SMALL, GT_SMALL), "'target_recall' parameter"),
        (lambda: BoxThresholds(iou_threshold=1.2).fit(GT_SMALL, GT_SMALL), "'iou_threshold' parameter"),
        (lambda: BoxThresholds(min_n=0).fit(GT_SMALL, GT_SMALL), "'min_n' parameter of BoxThresholds"),
        (lambda: SimulatedDetector(recall=0).predict(GT_SMALL), "'recall' parameter of SimulatedDetector"),
        (lambda: SimulatedDetector(overconfidence=-1).predict(GT_SMALL), "'overconfidence' parameter"),
        (lambda: SimulatedDetector(fp_per_image=-1).predict(GT_SMALL), "'fp_per_image' parameter"),
        (lambda: SimulatedDetector(quality=(0, 1)).predict(GT_SMALL), r"'quality\[0\]' parameter"),
        (lambda: make_scenes(0), "'n_images' parameter of make_scenes"),
        (lambda: make_scenes(2, n_classes=9), "'n_classes' parameter of make_scenes"),
        (lambda: make_scenes(2, objects_per_image=(3, 99)), "'objects_per_image' parameter"),
        (lambda: audit_box_guarantee(n_seeds=0), "'n_seeds' parameter of audit_box_guarantee"),
        (lambda: audit_box_guarantee(epsilon=2), "'epsilon' parameter of audit_box_guarantee"),
        (lambda: match_detections(GT_SMALL, GT_SMALL, iou_threshold=0), "'iou_threshold' parameter"),
        (lambda: average_precision(np.ones(1), np.ones(1), "voc07"), "'method' parameter of average_precision"),
    ],
)
def test_invalid_parameters_raise(call, match):
    with pytest.raises(ParameterError, match=match):
        call()


def test_report_is_json_serialisable_summary():
    res = audit_box_guarantee(n_seeds=3, n_verified=60, n_pool=200)
    json.dumps(res.summary)  # the CLI prints it; tuples/np types would fail here
    assert res.summary["n_seeds"] == 3
