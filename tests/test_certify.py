"""Thresholds with guarantees: hand-computed cases, exactness, and coverage over many seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import bdtr
from scipy.stats import beta, binom

from labelsieve.autolabel.certify import (
    certify_thresholds,
    min_points_for_errors,
    min_points_for_zero_errors,
    passes,
    scan_threshold,
    upper_bound,
)
from labelsieve.errors import InputError, ParameterError

# ---------------------------------------------------------------- bounds on hand-computed cases


def test_clopper_pearson_matches_beta_quantile_and_rule_of_three():
    # 0 errors in n: U = 1 - delta^(1/n) exactly.
    for n in (10, 59, 300):
        assert upper_bound(0, n, 0.05) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-10)
    assert upper_bound(3, 40, 0.1) == pytest.approx(beta.ppf(0.9, 4, 37), rel=1e-10)
    assert upper_bound(5, 5, 0.1) == 1.0


def test_hoeffding_and_tbal_heuristics_formulas():
    # hoeffding: k/n + sqrt(log(1/delta)/(2n))
    assert upper_bound(4, 200, 0.05, "hoeffding") == pytest.approx(0.02 + math.sqrt(math.log(20) / 400))
    # sigma (TBAL code): e + 0.25 sqrt(e(1-e)), no 1/sqrt(n): the same for any n
    e = 0.1
    for n in (10, 1000):
        assert upper_bound(e * n, n, 0.05, "sigma") == pytest.approx(e + 0.25 * math.sqrt(e * (1 - e)))
    # tbal-hoeffding (TBAL code): e + 0.25 sqrt(1/n)
    assert upper_bound(2, 100, 0.05, "tbal-hoeffding") == pytest.approx(0.02 + 0.25 * 0.1)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 3000),
    frac=st.floats(0, 1),
    eps=st.floats(0.001, 0.5),
    delta=st.floats(1e-6, 0.5),
)
def test_fast_clopper_pearson_decision_is_exact(n, frac, eps, delta):
    k = int(frac * n)
    exact = k < n and bdtr(k, n, eps) <= delta
    assert bool(passes(np.array([k]), np.array([n]), eps, delta, "clopper-pearson")[0]) == exact
    # and it agrees with inverting the bound
    u = float(upper_bound(k, n, delta))
    if abs(u - eps) > 1e-9:
        assert exact == (u <= eps)


def test_min_points():
    assert min_points_for_zero_errors(0.05, 0.05) == 59  # 0.95^59 < 0.05 < 0.95^58
    assert 0.95**59 <= 0.05 < 0.95**58
    n1 = min_points_for_errors(1, 0.05, 0.05)
    assert binom.cdf(1, n1, 0.05) <= 0.05 < binom.cdf(1, n1 - 1, 0.05)


# ---------------------------------------------------------------- the scan on hand-made cases

CONF = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6])
WRONG = np.array([0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)


def test_fixed_sequence_stops_at_first_failure_but_any_does_not():
    # tbal-hoeffding with c1 = 0.25, eps = 0.45, min_n = 1:
    # n=1: 0 + .25 = .25 pass; n=2: .5 + .177 = .677 FAIL -> fixed sequence stops at t = .95
    # 'any' continues: n=3 .478 fail, n=4 .375 pass, ..., n=8 .125 + .088 = .213 pass -> t = .6
    fs = scan_threshold(CONF, WRONG, epsilon=0.45, delta=0.05, bound="tbal-hoeffding", min_n=1)
    assert fs.threshold == 0.95 and fs.n == 1 and fs.errors == 0
    assert fs.upper == pytest.approx(0.25)
    anyscan = scan_threshold(
        CONF, WRONG, epsilon=0.45, delta=0.05, bound="tbal-hoeffding", min_n=1, scan="any"
    )
    assert anyscan.threshold == 0.6 and anyscan.n == 8 and anyscan.errors == 1


def test_min_n_skips_small_candidates_without_failing():
    # with min_n = 4 the first test is at n=4 (.375 pass), and the scan goes down to .6
    res = scan_threshold(CONF, WRONG, epsilon=0.45, delta=0.05, bound="tbal-hoeffding", min_n=4)
    assert res.threshold == 0.6


def test_ties_enter_together():
    conf = np.array([0.9, 0.9, 0.9, 0.5])
    wrong = np.array([0, 0, 1, 0], dtype=bool)
    # candidates: t=.9 (n=3, k=1) and t=.5 (n=4, k=1); tbal-hoeffding eps=.6: .333+.144=.478 pass, .25+.125 pass
    res = scan_threshold(conf, wrong, epsilon=0.6, delta=0.05, bound="tbal-hoeffding", min_n=1)
    assert res.threshold == 0.5 and res.n == 4
    res = scan_threshold(conf, wrong, epsilon=0.45, delta=0.05, bound="tbal-hoeffding", min_n=1)
    assert math.isinf(res.threshold) and "3 most confident" in res.reason


def test_clopper_pearson_scan_by_hand():
    # 100 points, all correct: CP(0, n) <= .05 iff n >= 59; min_n auto is the one-error count (93)
    conf = np.linspace(1, 0.01, 100)
    wrong = np.zeros(100, dtype=bool)
    cert = certify_thresholds(
        np.zeros(100, int), conf, np.zeros(100, int), n_classes=2, epsilon=0.05, delta=0.05
    )
    assert cert.thresholds[0] == conf[-1] and cert.scans[0].n == 100
    # an error at rank 95 (after the start at 93): 1 error in 95..100 -> CP(1, 100) = .0466 passes
    wrong[94] = True
    y = np.where(wrong, 1, 0)
    cert = certify_thresholds(np.zeros(100, int), conf, y, n_classes=2, epsilon=0.05, delta=0.05)
    assert cert.scans[0].n == 100 and cert.scans[0].errors == 1
    assert cert.scans[0].upper == pytest.approx(beta.ppf(0.95, 2, 99))
    # a second error at rank 97: 2 errors in 97 -> CP = .063 fails, the scan stops at n = 96
    wrong[96] = True
    y = np.where(wrong, 1, 0)
    cert = certify_thresholds(np.zeros(100, int), conf, y, n_classes=2, epsilon=0.05, delta=0.05)
    assert cert.scans[0].n == 96


def test_per_class_splits_delta_and_reports_classes_without_threshold():
    rng = np.random.default_rng(0)
    n = 3000
    pred = rng.integers(0, 2, n)  # class 2 is never predicted
    conf = rng.random(n)
    y = pred.copy()
    cert = certify_thresholds(pred, conf, y, n_classes=3, epsilon=0.05, delta=0.06, scope="per-class")
    assert cert.delta_per_test == pytest.approx(0.02)
    assert math.isinf(cert.thresholds[2]) and "no validation point is predicted as class 2" in cert.reasons[2]
    assert np.isfinite(cert.thresholds[:2]).all()
    # accept() applies the class's own threshold
    mask = cert.accept(np.array([0, 2]), np.array([1.0, 1.0]))
    assert mask.tolist() == [True, False]


def test_global_scope_single_threshold_and_statement():
    rng = np.random.default_rng(1)
    conf = rng.random(500)
    pred = rng.integers(0, 4, 500)
    y = np.where(rng.random(500) < 0.02, (pred + 1) % 4, pred)
    cert = certify_thresholds(pred, conf, y, n_classes=4)
    assert len(set(cert.thresholds.tolist())) == 1
    assert cert.guaranteed and cert.describe() == cert.statement()
    assert cert.statement() == (
        "with probability >= 0.95, the population error rate of the auto-labeling rule is <= 0.05 "
        "(clopper-pearson bound, fixed-sequence scan, delta 0.05 per test)"
    )
    heur = certify_thresholds(pred, conf, y, n_classes=4, bound="sigma")
    assert not heur.guaranteed and heur.statement() == "HEURISTIC (sigma, fixed-sequence scan): no guarantee"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"epsilon": 1.5},
            r"The 'epsilon' parameter of certify_thresholds must be in \(0, 1\). Got 1.5 instead.",
        ),
        ({"epsilon": 0.0}, r"'epsilon' parameter .* must be in \(0, 1\)"),
        ({"delta": 1.0}, r"'delta' parameter .* must be in \(0, 1\)"),
        ({"bound": "wilson"}, r"'bound' parameter .* must be one of"),
        ({"scope": "classwise"}, r"'scope' parameter"),
        ({"scan": "lowest"}, r"'scan' parameter"),
        ({"min_n": 0}, r"'min_n' parameter"),
        ({"n_classes": 1}, r"'n_classes' parameter"),
    ],
)
def test_invalid_parameters(kwargs, match):
    args = {"n_classes": 2, **kwargs}
    with pytest.raises(ParameterError, match=match):
        certify_thresholds(np.array([0, 1]), np.array([0.5, 0.6]), np.array([0, 1]), **args)


def test_bad_arrays():
    with pytest.raises(InputError, match="equal length"):
        certify_thresholds(np.array([0, 1]), np.array([0.5]), np.array([0, 1]), n_classes=2)
    with pytest.raises(InputError, match=r"y_true\[1\] = 7 is not a class code"):
        certify_thresholds(np.array([0, 1]), np.array([0.5, 0.6]), np.array([0, 7]), n_classes=2)
    with pytest.raises(InputError, match="non-finite"):
        scan_threshold(np.array([0.5, np.nan]), np.array([False, True]), epsilon=0.1, delta=0.1)


# ---------------------------------------------------------------- the guarantee, over many seeds


def _population_error(t: float) -> float:
    """err(t) = P(wrong | c >= t) for c ~ U(0, 1) and P(wrong | c) = 0.4 (1 - c)^2."""
    return 0.4 * (1 - t) ** 3 / 3 / (1 - t) if t < 1 else 0.0


@pytest.mark.parametrize(
    ("bound", "scan", "n", "should_hold"),
    [
        ("clopper-pearson", "fixed-sequence", 400, True),
        ("hoeffding", "fixed-sequence", 5000, True),  # Hoeffding needs >= 599 points at eps = delta = .05
        ("tbal-hoeffding", "any", 400, False),
    ],
)
def test_guarantee_holds_over_many_seeds(bound, scan, n, should_hold):
    """Fraction of seeds where the chosen threshold's population error exceeds eps is <= delta.

    The same experiment with the TBAL authors' heuristic (e + 0.25/sqrt(n), lowest passing
    threshold) fails far more often than delta: the test tells a valid procedure from an invalid one.
    """
    eps, delta, seeds = 0.05, 0.05, 1500
    rng = np.random.default_rng(12345)
    conf = rng.random((seeds, n))
    wrong = rng.random((seeds, n)) < 0.4 * (1 - conf) ** 2
    viol, covered = 0, 0.0
    for s in range(seeds):
        res = scan_threshold(conf[s], wrong[s], epsilon=eps, delta=delta, bound=bound, scan=scan)
        if np.isfinite(res.threshold):
            viol += _population_error(res.threshold) > eps
            covered += 1 - res.threshold
    rate = viol / seeds
    # binomial slack: 3 standard deviations of a rate-delta proportion
    slack = 3 * math.sqrt(delta * (1 - delta) / seeds)
    if should_hold:
        assert rate <= delta + slack, rate
        # not vacuous: the best threshold covers 1 - t* = 0.6124 of the mass; we get a good part of it
        assert covered / seeds > 0.2
    else:
        assert rate > delta + slack, rate


def _bump(c: np.ndarray) -> np.ndarray:
    """A non-monotone error curve: a band of confident mistakes around c = 0.87."""
    return 0.3 * (1 - c) ** 2 + 0.06 * ((c > 0.84) & (c < 0.9))


def test_guarantee_holds_on_a_non_monotone_error_curve():
    eps, delta, n, seeds = 0.05, 0.05, 600, 1500
    grid = np.linspace(0, 1, 200_001)
    eta = _bump(grid)
    # population err(t) = mean of eta over [t, 1] (confidence uniform), from a cumulative integral
    tail = np.cumsum(eta[::-1])[::-1] / np.arange(len(grid), 0, -1)
    rng = np.random.default_rng(7)
    viol = covered = 0
    for _ in range(seeds):
        conf = rng.random(n)
        wrong = rng.random(n) < _bump(conf)
        res = scan_threshold(conf, wrong, epsilon=eps, delta=delta)
        if np.isfinite(res.threshold):
            viol += tail[round(res.threshold * 200_000)] > eps
            covered += 1 - res.threshold
    assert viol / seeds <= delta + 3 * math.sqrt(delta * (1 - delta) / seeds)
    assert covered / seeds > 0.1  # measured 0.146; the bump makes the scan stop early in many seeds
