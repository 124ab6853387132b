"""Conformal labeling (Huang et al. 2025): p-values, BH, and FDR control in expectation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelsieve.errors import InputError, NotEnoughDataError, ParameterError
from labelsieve.guarantees.conformal import (
    GUARANTEE_NOTE,
    ConformalLabeler,
    bh_select,
    conformal_coverage_sorted,
    conformal_label,
    conformal_pvalues,
    min_calibration_size,
)

# ------------------------------------------------------------------------------------------------
# hand-computed cases
# ------------------------------------------------------------------------------------------------


def test_pvalues_hand_computed_with_ties():
    # wrong calibration confidences: 0.8 and 0.6 (and a tie at 0.8 with a correct item)
    cal = np.array([0.9, 0.8, 0.8, 0.7, 0.6])
    wrong = np.array([False, True, False, False, True])
    # n = 5 -> denominator 6; test 0.8 ties the wrong 0.8 and counts it (conservative)
    p = conformal_pvalues(cal, wrong, np.array([0.95, 0.8, 0.79, 0.6, 0.1]))
    np.testing.assert_allclose(p, np.array([1, 2, 2, 3, 3]) / 6)


def test_bh_hand_computed():
    # m = 5, level 0.1: thresholds 0.02, 0.04, 0.06, 0.08, 0.10; sorted p: .01 .03 .07 .075 .5
    # p_(4) = 0.075 <= 0.08 -> k* = 4 even though p_(3) = 0.07 > 0.06 (step-up)
    p = np.array([0.5, 0.07, 0.01, 0.075, 0.03])
    assert bh_select(p, 0.1).tolist() == [False, True, True, True, True]
    assert bh_select(np.array([0.03, 0.5]), 0.05).tolist() == [False, False]
    assert bh_select(np.array([]), 0.1).tolist() == []


def test_conformal_label_hand_computed():
    # calibration: wrong at confidences 0.8 and 0.6, n = 4
    r = conformal_label([0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 1], [0.95, 0.85, 0.75, 0.5], epsilon=0.45)
    # p = [1, 1, 2, 3] / 5 = .2 .2 .4 .6; BH level .45, m = 4: .1125 .225 .3375 .45
    # k=2: .2 <= .225 ok; k=3: .4 > .3375; k=4: .6 > .45  -> k* = 2
    np.testing.assert_allclose(r.pvalues, [0.2, 0.2, 0.4, 0.6])
    assert r.selected.tolist() == [True, True, False, False]
    assert r.threshold == 0.85 and r.coverage == 0.5
    assert r.n_calibration == 4 and r.n_calibration_wrong == 2
    assert r.guarantee == "expected" and r.guaranteed is False
    assert "NOT a high-probability bound" in r.statement() and GUARANTEE_NOTE in r.statement()


def test_min_calibration_size():
    assert min_calibration_size(0.05) == 19  # 1/20 <= 0.05
    assert min_calibration_size(0.1) == 9
    assert min_calibration_size(0.3) == 3  # 1/4 <= 0.3 < 1/3
    # with n = min size, a perfect calibration set selects everything; with one fewer, nothing
    n = min_calibration_size(0.1)
    pool = np.full(50, 0.99)
    assert conformal_label(np.zeros(n), np.full(n, 0.9), np.zeros(n), pool, epsilon=0.1).coverage == 1.0
    assert conformal_label(np.zeros(n - 1), np.full(n - 1, 0.9), np.zeros(n - 1), pool, epsilon=0.1).coverage == 0.0


# ------------------------------------------------------------------------------------------------
# properties: vectorised code against the definitions
# ------------------------------------------------------------------------------------------------

conf_list = st.lists(st.sampled_from([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), min_size=1, max_size=30)


@given(cal=conf_list, flags=st.lists(st.booleans(), min_size=30, max_size=30), test=conf_list)
@settings(max_examples=200, deadline=None)
def test_pvalues_match_definition(cal, flags, test):
    cal, test = np.array(cal), np.array(test)
    wrong = np.array(flags[: len(cal)])
    brute = [(1 + sum(1 for c, w in zip(cal, wrong, strict=True) if w and c >= t)) / (len(cal) + 1) for t in test]
    np.testing.assert_allclose(conformal_pvalues(cal, wrong, test), brute)


@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), level=st.floats(0.01, 0.5))
@settings(max_examples=200, deadline=None)
def test_bh_matches_definition(p, level):
    p = np.array(p)
    m = len(p)
    ks = [k for k in range(1, m + 1) if np.sort(p)[k - 1] <= level * k / m]
    expected = p <= level * max(ks) / m if ks else np.zeros(m, dtype=bool)
    assert bh_select(p, level).tolist() == expected.tolist()


@given(cal=conf_list, flags=st.lists(st.booleans(), min_size=30, max_size=30), test=conf_list,
       eps=st.sampled_from([0.05, 0.1, 0.3, 0.5]))
@settings(max_examples=200, deadline=None)
def test_selection_is_a_threshold_and_fast_path_agrees(cal, flags, test, eps):
    cal, test = np.array(cal), np.array(test)
    wrong = np.array(flags[: len(cal)])
    r = conformal_label(np.zeros(len(cal)), cal, wrong.astype(int), test, epsilon=eps)
    if r.selected.any():  # every pool item at or above the lowest selected confidence is selected
        assert r.selected.tolist() == (test >= r.threshold).tolist()
    else:
        assert math.isinf(r.threshold)
    assert conformal_coverage_sorted(np.sort(test)[::-1], cal, wrong, eps) == int(r.selected.sum())


# ------------------------------------------------------------------------------------------------
# the guarantee: FDR <= epsilon in expectation, with a negative control
# ------------------------------------------------------------------------------------------------


def _overconfident(rng, n):
    """A model whose stated confidence overstates accuracy: P(wrong | c) = 2.5 (1 - c), capped."""
    c = rng.uniform(0.5, 1.0, n)
    return c, rng.random(n) < np.minimum(2.5 * (1.0 - c), 0.95)


def _calibrated(rng, n):
    c = rng.uniform(0.3, 1.0, n)
    return c, rng.random(n) > c


def _mean_fdp(select, model, *, seeds=600, n_cal=150, m=400):
    """Mean false-discovery proportion over seeds and its standard error."""
    fdp = np.empty(seeds)
    for s in range(seeds):
        rng = np.random.default_rng(s)
        c, w = model(rng, n_cal + m)
        sel = select(c[:n_cal], w[:n_cal], c[n_cal:])
        fdp[s] = w[n_cal:][sel].mean() if sel.any() else 0.0
    return fdp.mean(), fdp.std(ddof=1) / math.sqrt(seeds), fdp


@pytest.mark.parametrize("model", [_overconfident, _calibrated])
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_fdr_controlled_in_expectation(model, eps):
    def conformal(cc, cw, pc):
        return conformal_label(np.zeros(len(cc)), cc, cw.astype(int), pc, epsilon=eps).selected

    mean, se, fdp = _mean_fdp(conformal, model)
    assert mean <= eps + 3 * se, (mean, se)
    # the promise is on the mean only: single runs above epsilon are expected, and the bound is not vacuous
    assert (fdp > eps).any()
    assert mean > eps / 4


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_harness_flags_invalid_rules(eps):
    """Negative controls: the same harness rejects rules that do not control the FDR at epsilon."""
    def naive(cc, cw, pc):  # auto-label when confidence >= 1 - epsilon, ignoring the calibration set
        return pc >= 1.0 - eps

    def bh_double(cc, cw, pc):  # conformal labeling run at twice the level
        return bh_select(conformal_pvalues(cc, cw, pc), 2 * eps)

    for rule in (naive, bh_double):
        mean, se, _ = _mean_fdp(rule, _overconfident)
        assert mean > eps + 3 * se, (rule.__name__, mean, se)


# ------------------------------------------------------------------------------------------------
# the class and input errors
# ------------------------------------------------------------------------------------------------


def test_labeler_matches_function_and_checks():
    rng = np.random.default_rng(0)
    c, w = _calibrated(rng, 700)
    lab = ConformalLabeler(epsilon=0.1).fit(np.zeros(200), c[:200], w[:200].astype(int))
    r = lab.select(c[200:])
    ref = conformal_label(np.zeros(200), c[:200], w[:200].astype(int), c[200:], epsilon=0.1)
    assert r.selected.tolist() == ref.selected.tolist() and lab.result_ is r
    with pytest.raises(NotEnoughDataError, match="at least 19"):
        ConformalLabeler(epsilon=0.05).fit(np.zeros(10), c[:10], np.zeros(10))
    with pytest.raises(ParameterError, match="epsilon"):
        ConformalLabeler(epsilon=1.5).fit(np.zeros(10), c[:10], np.zeros(10))
    with pytest.raises(InputError, match="equal length"):
        conformal_label(np.zeros(3), c[:4], np.zeros(4), c, epsilon=0.1)
    with pytest.raises(InputError, match="not finite"):
        conformal_label(np.zeros(2), [0.5, np.nan], np.zeros(2), c, epsilon=0.1)
