"""Tests for labelsieve.metrics: coverage, auto-labeling error, ECE, PRF, MAE and the PNG plots."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labelsieve.errors import InputError, ParameterError
from labelsieve.metrics import (
    accuracy,
    auto_labeling_error,
    confusion_matrix,
    coverage,
    expected_calibration_error,
    mae,
    precision_recall_f1,
    reliability_curve,
)

# ---------------------------------------------------------------------------------- coverage, error


def test_coverage_is_fraction_of_initial_pool():
    assert coverage(30, 120) == 0.25
    assert coverage(0, 7) == 0.0 and coverage(7, 7) == 1.0


@pytest.mark.parametrize(
    ("args", "exc", "pattern"),
    [
        ((5, 0), ParameterError, "'n_pool' parameter of coverage"),
        ((-1, 10), ParameterError, "'n_auto_labeled' parameter of coverage"),
        ((11, 10), InputError, r"n_auto_labeled \(11\) exceeds the pool size n_pool \(10\)"),
        ((1.5, 10), ParameterError, "'n_auto_labeled' parameter"),
    ],
)
def test_coverage_invalid(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        coverage(*args)


def test_auto_labeling_error_hand_computed_and_ignores_unknown_truth():
    # 4 points with truth, 1 wrong -> 1/4; the -1 row (wrong or not) is ignored
    assert auto_labeling_error([0, 1, 2, 2, -1], [0, 1, 2, 0, 1]) == 0.25
    assert np.isnan(auto_labeling_error([], []))
    assert np.isnan(auto_labeling_error([-1, -1], [0, 1]))


def test_accuracy_hand_and_complement_of_error():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    rng = np.random.default_rng(0)
    t, p = rng.integers(-1, 3, 200), rng.integers(0, 3, 200)
    assert accuracy(t, p) == pytest.approx(1 - auto_labeling_error(t, p))
    known = t != -1
    assert accuracy(t, p) == pytest.approx(np.mean(t[known] == p[known]))


@pytest.mark.parametrize("fn", [accuracy, auto_labeling_error])
def test_label_metrics_reject_bad_shapes(fn):
    with pytest.raises(InputError, match="1-D of equal length"):
        fn([0, 1], [0, 1, 1])
    with pytest.raises(InputError, match="integer codes"):
        fn([0.5, 1.0], [0, 1])


# ---------------------------------------------------------------------------------------------- ECE
CONF6 = np.array([0.1, 0.3, 0.35, 0.7, 0.9, 0.95])
CORR6 = np.array([0, 1, 0, 1, 1, 0], dtype=bool)


def test_ece_six_points_hand_computed():
    # 2 bins: (0, .5] holds .1, .3, .35 (conf .25, acc 1/3); (.5, 1] holds .7, .9, .95 (conf .85, acc 2/3)
    # ECE = 3/6*|1/3-.25| + 3/6*|2/3-.85| = 2/15
    assert expected_calibration_error(CONF6, CORR6, n_bins=2) == pytest.approx(2 / 15)
    # 5 bins: {.1}: |0-.1|, {.3,.35}: |.5-.325|*2, {.7}: |1-.7|, {.9,.95}: |.5-.925|*2  -> 1.6/6
    assert expected_calibration_error(CONF6, CORR6, n_bins=5) == pytest.approx(1.6 / 6)


def test_ece_bins_are_right_closed():
    # 0.5 belongs to (0, 0.5]: 0.5*|1-0.5| + 0.5*|0-0.6| = 0.55 (would be 0.05 if both shared a bin)
    assert expected_calibration_error([0.5, 0.6], [1, 0], n_bins=2) == pytest.approx(0.55)
    assert expected_calibration_error([0.0], [0], n_bins=3) == 0.0  # zero goes to the first bin


def _ece_reference(conf, correct, n_bins):
    """Straightforward per-bin loop, independent of the vectorized implementation."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        m = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            total += m.sum() / len(conf) * abs(correct[m].mean() - conf[m].mean())
    return total


conf_st = st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None)
@given(
    data=conf_st,
    n_bins=st.integers(1, 20),
    strategy=st.sampled_from(["uniform", "quantile"]),
    seed=st.integers(0, 1000),
)
def test_ece_properties(data, n_bins, strategy, seed):
    conf = np.array([d[0] for d in data])
    corr = np.array([d[1] for d in data])
    ece = expected_calibration_error(conf, corr, n_bins=n_bins, strategy=strategy)
    assert 0.0 <= ece <= 1.0
    perm = np.random.default_rng(seed).permutation(len(conf))
    assert expected_calibration_error(
        conf[perm], corr[perm], n_bins=n_bins, strategy=strategy
    ) == pytest.approx(ece)
    if strategy == "uniform":
        assert ece == pytest.approx(_ece_reference(conf, corr.astype(float), n_bins), abs=1e-12)
    rc = reliability_curve(conf, corr, n_bins=n_bins, strategy=strategy)
    assert rc.count.sum() == len(conf)
    filled = rc.count > 0
    ece_rc = np.sum(rc.count[filled] / len(conf) * np.abs(rc.accuracy[filled] - rc.confidence[filled]))
    assert ece == pytest.approx(ece_rc, abs=1e-12)
    assert np.all(np.isnan(rc.accuracy[~filled]))


def test_ece_near_zero_when_calibrated_and_matches_known_miscalibration():
    rng = np.random.default_rng(0)
    conf = rng.random(200_000)
    calibrated = rng.random(conf.size) < conf  # P(correct | conf) = conf
    assert expected_calibration_error(calibrated.astype(float), calibrated) == 0.0  # one-hot and right
    assert expected_calibration_error(conf, calibrated) < 0.01
    assert expected_calibration_error(conf, calibrated, strategy="quantile") < 0.01
    over = rng.random(conf.size) < conf**2  # overconfident: gap E[c - c^2] = 1/2 - 1/3 = 1/6
    assert expected_calibration_error(conf, over, n_bins=15) == pytest.approx(1 / 6, abs=0.01)


def test_quantile_bins_have_equal_mass():
    conf = np.random.default_rng(1).beta(5, 1, size=1500)
    rc = reliability_curve(conf, conf > 0.5, n_bins=15, strategy="quantile")
    assert rc.count.max() - rc.count.min() <= 1
    uni = reliability_curve(conf, conf > 0.5, n_bins=15)
    assert uni.count.max() - uni.count.min() > 100  # beta(5,1) piles up near 1


@pytest.mark.parametrize("fn", [expected_calibration_error, reliability_curve])
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_bins": 0}, "'n_bins' parameter of"),
        ({"n_bins": 2.5}, "'n_bins' parameter of"),
        ({"strategy": "kmeans"}, "'strategy' parameter of"),
    ],
)
def test_calibration_invalid_parameters(fn, kwargs, pattern):
    with pytest.raises(ParameterError, match=pattern):
        fn([0.5], [1], **kwargs)


@pytest.mark.parametrize("fn", [expected_calibration_error, reliability_curve])
def test_calibration_invalid_inputs(fn):
    with pytest.raises(InputError, match=r"confidence must lie in \[0, 1\]; got 1.5 at row 1"):
        fn([0.2, 1.5], [1, 0])
    with pytest.raises(InputError, match="equal length"):
        fn([0.2, 0.5], [1])
    with pytest.raises(InputError, match="correct must be boolean"):
        fn([0.2, 0.5], [1, 2])


def test_ece_empty_is_nan():
    assert np.isnan(expected_calibration_error([], []))


# --------------------------------------------------------------------------------------- PRF and MAE
def test_confusion_and_prf_hand_computed():
    t = [0, 0, 1, 1, 2, -1]
    p = [0, 1, 1, -1, 2, 0]
    cm = confusion_matrix(t, p, 3)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    r = precision_recall_f1(t, p, 3)
    np.testing.assert_allclose(r.precision, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(r.recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(r.f1, [2 / 3, 0.5, 1.0])
    assert r.support.tolist() == [2, 2, 1]
    assert r.macro_f1 == pytest.approx((2 / 3 + 0.5 + 1) / 3)


@settings(max_examples=50, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 3)), min_size=1, max_size=100),
)
def test_prf_matches_definitions_against_sklearn(pairs):
    from sklearn.metrics import precision_recall_fscore_support

    t = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    keep = t != -1
    r = precision_recall_f1(t, p, 4)
    if not keep.any():
        assert r.support.sum() == 0 and r.macro_f1 == 0.0
        return
    ref = precision_recall_fscore_support(t[keep], p[keep], labels=[0, 1, 2, 3], zero_division=0)
    for ours, theirs in zip((r.precision, r.recall, r.f1, r.support), ref, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_prf_and_confusion_invalid():
    with pytest.raises(ParameterError, match="'n_classes' parameter of confusion_matrix"):
        precision_recall_f1([0], [0], 0)
    with pytest.raises(InputError, match=r"y_pred code 3 at row 1 is not in -1..1"):
        confusion_matrix([0, 1], [0, 3], 2)


def test_mae():
    assert mae([0.2, 0.8], [0.5, 0.5]) == pytest.approx(0.3)
    assert mae(np.eye(3), np.eye(3)) == 0.0
    with pytest.raises(InputError, match="same shape"):
        mae([0.5, 0.5], [1.0])


# -------------------------------------------------------------------------------------------- plots
def _assert_png(path, min_side=200):
    assert path.exists() and path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side
        im.verify()
    leftovers = [f for f in os.listdir(path.parent) if f.endswith(".tmp")]
    assert leftovers == []


@pytest.fixture()
def history():
    return pd.DataFrame(
        {
            "round": [0, 1, 2, 3],
            "coverage": [0.0, 0.1, 0.35, 0.5],
            "auto_label_error": [np.nan, 0.01, 0.03, 0.04],
            "error_bound": [np.nan, 0.04, 0.05, 0.06],
            "human_labels": [100, 200, 300, 400],
        }
    )


def test_plot_rounds_writes_png(tmp_path, history):
    from labelsieve.metrics.plots import plot_rounds

    before = history.copy()
    out = plot_rounds(history, tmp_path / "sub" / "rounds.png", epsilon=0.05)
    _assert_png(out)
    pd.testing.assert_frame_equal(history, before)  # caller's frame untouched
    with pytest.raises(InputError, match=r"lacks column\(s\) \['coverage'\]"):
        plot_rounds(history.drop(columns="coverage"), tmp_path / "x.png")


def test_plot_reliability_and_density(tmp_path):
    from labelsieve.metrics.plots import plot_reliability, plot_score_density

    rng = np.random.default_rng(0)
    conf = rng.random(400)
    corr = rng.random(400) < conf
    _assert_png(plot_reliability(conf, corr, tmp_path / "rel.png", n_bins=10))
    _assert_png(plot_score_density(conf, corr, tmp_path / "dens.png", threshold=0.8))
    _assert_png(plot_score_density(conf, corr, tmp_path / "dens2.png"))


def test_plot_failure_leaves_old_file_and_no_temp(tmp_path, history, monkeypatch):
    from matplotlib.figure import Figure

    from labelsieve.metrics.plots import plot_rounds

    target = tmp_path / "rounds.png"
    target.write_bytes(b"old")

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_rounds(history, target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["rounds.png"]


def test_plots_do_not_switch_global_backend(tmp_path, history):
    """Headless, the backend is usually Agg already, so a plot that called matplotlib.use("Agg") would go
    unnoticed: select another non-interactive backend first, and check it survives the plot."""
    import matplotlib

    from labelsieve.metrics.plots import plot_rounds

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plot_rounds(history, tmp_path / "r.png")
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # still a PNG, by its own canvas
    finally:
        matplotlib.use(before)
