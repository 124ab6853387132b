"""Tests for labelsieve.confidence: post-hoc calibrators, Colander, leak-freedom, bad input."""

from __future__ import annotations

import copy
import inspect
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_softmax, softmax

from labelsieve.confidence.base import MaxSoftmax
from labelsieve.confidence.colander import Colander, colander_surrogate, empirical_coverage
from labelsieve.confidence.dirichlet import DirichletCalibration, dirichlet_objective, odir_penalty
from labelsieve.confidence.histogram import HistogramBinning, equal_mass_edges, fit_bins, top_label_ece
from labelsieve.confidence.scaling_binning import ScalingBinning, fit_platt, top_label_logit
from labelsieve.confidence.temperature import TemperatureScaling, fit_temperature, temperature_nll
from labelsieve.errors import InputError, NotEnoughDataError, NotFittedError, ParameterError
from labelsieve.models.base import Scores

torch = pytest.importorskip("torch")


def sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs``."""
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def overconfident(n: int, k: int = 5, temp: float = 3.0, seed: int = 0) -> tuple[Scores, np.ndarray]:
    """Logits whose softmax is too sharp: labels follow softmax(z / temp)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 4.0
    return Scores(z), sample_labels(softmax(z / temp, axis=1), rng)


def calibrators(seed: int = 0) -> list:
    return [
        TemperatureScaling(),
        HistogramBinning(n_bins=10),
        ScalingBinning(n_bins=10, random_state=seed),
        DirichletCalibration(),
    ]


def all_functions(seed: int = 0) -> list:
    return [MaxSoftmax(), *calibrators(seed), Colander(epochs=3, random_state=seed)]


IDS = ["max-softmax", "temperature", "histogram", "scaling-binning", "dirichlet", "colander"]


# ---------------------------------------------------------------------------------------------
# temperature scaling
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("true_t", [0.5, 2.0, 4.0])
def test_temperature_recovers_known_temperature(true_t):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 4)) * 3.0
    y = sample_labels(softmax(z / true_t, axis=1), rng)
    ts = TemperatureScaling().fit(Scores(z), y)
    assert ts.temperature_ == pytest.approx(true_t, rel=0.06)
    # the fitted T minimises the NLL: its neighbours are worse
    for f in (0.8, 1.25):
        assert temperature_nll(np.log(ts.temperature_ * f), z, y)[0] > temperature_nll(np.log(ts.temperature_), z, y)[0]


def test_temperature_nll_gradient_matches_finite_difference():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(300, 6)) * 2
    y = rng.integers(0, 6, 300)
    for log_t in (-1.0, 0.0, 0.7):
        _, g = temperature_nll(log_t, z, y)
        h = 1e-6
        fd = (temperature_nll(log_t + h, z, y)[0] - temperature_nll(log_t - h, z, y)[0]) / (2 * h)
        assert g == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_temperature_nll_hand_computed():
    # one point, logits (0, ln 3), label 1, T = 1: p = (1/4, 3/4) -> NLL = ln(4/3)
    nll, _ = temperature_nll(0.0, np.array([[0.0, np.log(3.0)]]), np.array([1]))
    assert nll == pytest.approx(np.log(4 / 3))


def test_temperature_keeps_argmax_and_is_monotone():
    s, y = overconfident(2000)
    ts = TemperatureScaling().fit(s, y)
    pred, conf = ts.confidence(s)
    np.testing.assert_array_equal(pred, s.predicted)
    assert ts.temperature_ > 1.5  # overconfident logits need flattening
    raw = MaxSoftmax().confidence(s)[1]
    assert np.all(conf <= raw + 1e-12)  # T > 1 lowers every top probability


# ---------------------------------------------------------------------------------------------
# histogram binning
# ---------------------------------------------------------------------------------------------
def two_class_scores(p_top: np.ndarray) -> Scores:
    return Scores(np.log(np.column_stack([p_top, 1.0 - p_top])))


def test_histogram_binning_on_a_known_step():
    # 200 points, top score uniform on (0.5, 1); below 0.75 exactly 30% correct, above all correct
    s = np.linspace(0.51, 0.99, 200)
    low = s < 0.75
    correct = np.ones(200, dtype=bool)
    idx_low = np.flatnonzero(low)
    correct[idx_low] = (np.arange(idx_low.size) % 10) < 3
    y = np.where(correct, 0, 1)  # predicted class is 0 everywhere
    hb = HistogramBinning(n_bins=2, min_per_bin=10, tie_break=False).fit(two_class_scores(s), y)
    assert hb.edges_[0].size == 1 and abs(hb.edges_[0][0] - 0.75) < 0.01
    np.testing.assert_allclose(hb.values_[0], [0.3, 1.0])
    _, conf = hb.confidence(two_class_scores(np.array([0.6, 0.7, 0.8, 0.95])))
    np.testing.assert_allclose(conf, [0.3, 0.3, 1.0, 1.0])


def test_equal_mass_edges_balance_counts():
    rng = np.random.default_rng(0)
    s = rng.random(1000)
    for b in (2, 5, 10, 20):
        e = equal_mass_edges(s, b)
        counts = np.bincount(np.searchsorted(e, s, side="left"), minlength=b)
        assert counts.size == b and counts.min() >= 1000 // b - 1 and counts.max() <= 1000 // b + 1


def test_fit_bins_values_are_bin_accuracies():
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    c = np.array([1, 0, 0, 1, 1, 1])
    _, v = fit_bins(s, c, 3)
    np.testing.assert_allclose(v, [0.5, 0.5, 1.0])


def test_histogram_fallback_pools_scarce_classes():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(400, 3)) * 3
    z[:, 2] -= 10  # class 2 is (almost) never predicted
    y = np.argmax(z, 1)
    hb = HistogramBinning(n_bins=5, min_per_bin=20).fit(Scores(z), y)
    assert hb.pooled_[2] and not hb.pooled_[0]
    # a point predicted 2 still gets a finite confidence from the pooled histogram
    _, conf = hb.confidence(Scores(np.array([[0.0, 0.0, 5.0]])))
    assert np.isfinite(conf).all()


def test_histogram_too_few_points_raises():
    z = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(NotEnoughDataError, match="min_per_bin=10.*got 5"):
        HistogramBinning(min_per_bin=10).fit(Scores(z), np.zeros(5, dtype=int))


def test_top_label_ece_hand_computed():
    # bins: conf 0.95 (2 pts, both right) gap .05*2; conf .55 (2 pts, 1 right) gap .05*2 -> ECE .05
    assert top_label_ece(np.array([0.95, 0.95, 0.55, 0.55]), np.array([1, 1, 1, 0])) == pytest.approx(0.05)
    assert top_label_ece(np.array([0.7, 0.7]), np.array([1, 0])) == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------
# scaling-binning
# ---------------------------------------------------------------------------------------------
def test_platt_recovers_known_parameters():
    rng = np.random.default_rng(4)
    u = rng.normal(size=30000) * 2
    t = (rng.random(30000) < expit(0.7 * u + 0.5)).astype(float)
    a, b = fit_platt(u, t)
    assert a == pytest.approx(0.7, abs=0.05) and b == pytest.approx(0.5, abs=0.05)


def test_top_label_logit_matches_direct_formula():
    z = np.random.default_rng(5).normal(size=(50, 4))
    p = softmax(z, axis=1).max(axis=1)
    np.testing.assert_allclose(top_label_logit(z), np.log(p / (1 - p)), rtol=1e-10)


def test_scaling_binning_values_are_means_of_scaled_scores():
    s, y = overconfident(3000, seed=6)
    sb = ScalingBinning(n_bins=8, tie_break=False, random_state=0).fit(s, y)
    # Kumar et al.: each bin outputs the mean of g over the bin, so it lies inside the bin's g-range
    lo = np.concatenate([[0.0], sb.edges_])
    hi = np.concatenate([sb.edges_, [1.0]])
    assert np.all(sb.values_ >= lo - 1e-12) and np.all(sb.values_ <= hi + 1e-12)
    assert np.all(np.diff(sb.values_) > 0)
    _, conf = sb.confidence(s)
    assert np.unique(conf).size <= 8


def test_scaling_binning_too_few_points_raises():
    z = np.random.default_rng(0).normal(size=(12, 3))
    with pytest.raises(NotEnoughDataError, match="binning part"):
        ScalingBinning(min_per_bin=10).fit(Scores(z), np.zeros(12, dtype=int))


# ---------------------------------------------------------------------------------------------
# Dirichlet
# ---------------------------------------------------------------------------------------------
def test_dirichlet_scalar_constraint_is_temperature_scaling():
    s, y = overconfident(4000, k=4, seed=7)
    ts = TemperatureScaling().fit(s, y)
    dc = DirichletCalibration(parametrization="scalar").fit(s, y)
    w = dc.coef_[0, 0]
    np.testing.assert_allclose(dc.coef_, w * np.eye(4))
    assert 1.0 / w == pytest.approx(ts.temperature_, rel=1e-3)
    np.testing.assert_allclose(dc.predict_proba(s), ts.predict_proba(s), atol=1e-4)


def test_dirichlet_heavy_odir_kills_off_diagonal_and_intercept():
    s, y = overconfident(2000, k=4, seed=8)
    dc = DirichletCalibration(reg_lambda=1e6, reg_mu=1e6).fit(s, y)
    off = dc.coef_ - np.diag(np.diag(dc.coef_))
    assert np.abs(off).max() < 1e-3 and np.abs(dc.intercept_).max() < 1e-3
    free = DirichletCalibration(reg_lambda=0.0, reg_mu=0.0).fit(s, y)
    assert np.abs(free.coef_ - np.diag(np.diag(free.coef_))).max() > 10 * np.abs(off).max()


def test_dirichlet_recovers_a_known_map():
    rng = np.random.default_rng(9)
    k = 3
    W0 = np.array([[0.5, 0.2, 0.0], [0.0, 0.7, 0.1], [0.1, 0.0, 0.4]])
    b0 = np.array([0.3, -0.2, 0.1])
    z = rng.normal(size=(30000, k)) * 3
    lp = log_softmax(z, axis=1)
    y = sample_labels(softmax(lp @ W0.T + b0, axis=1), rng)
    dc = DirichletCalibration(reg_lambda=0.0, reg_mu=0.0).fit(Scores(z), y)
    q0 = softmax(lp @ W0.T + b0, axis=1)
    # W is identified only up to adding a constant to each column (softmax shift): compare probabilities
    assert np.abs(dc.predict_proba(Scores(z)) - q0).max() < 0.03


def test_dirichlet_objective_gradient_and_penalty():
    rng = np.random.default_rng(10)
    k, n = 3, 50
    lp = log_softmax(rng.normal(size=(n, k)), axis=1)
    onehot = np.eye(k)[rng.integers(0, k, n)]
    theta = rng.normal(size=k * k + k)
    _, g = dirichlet_objective(theta, lp, onehot, 0.3, 0.2)
    h = 1e-6
    fd = np.array(
        [
            (dirichlet_objective(theta + h * e, lp, onehot, 0.3, 0.2)[0]
             - dirichlet_objective(theta - h * e, lp, onehot, 0.3, 0.2)[0]) / (2 * h)
            for e in np.eye(theta.size)
        ]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)
    # penalty by hand: off-diagonal of [[1,2],[3,1]] -> 4 + 9, times 2/(2*1); intercept 1+1 times 1/2
    assert odir_penalty(np.array([[1.0, 2], [3, 1]]), np.array([1.0, 1]), 2.0, 1.0) == pytest.approx(14.0)


def test_dirichlet_missing_class_fallback_and_error(caplog):
    s, y = overconfident(600, k=4, seed=11)
    keep = y != 3
    s2, y2 = s.take(np.flatnonzero(keep)), y[keep]
    with caplog.at_level(logging.WARNING, logger="labelsieve.confidence.dirichlet"):
        dc = DirichletCalibration().fit(s2, y2)
    assert "[3]" in caplog.text
    q = dc.predict_proba(s)
    assert np.isfinite(q).all() and np.allclose(q.sum(1), 1)
    # the absent class is pushed down relative to the raw softmax
    assert q[:, 3].mean() < s.probs[:, 3].mean()
    with pytest.raises(InputError, match=r"classes \[3\] never occur"):
        DirichletCalibration(reg_mu=0.0).fit(s2, y2)


# ---------------------------------------------------------------------------------------------
# every calibrator: ECE improves, missing class OK, bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cal", calibrators(), ids=IDS[1:5])
def test_calibrated_ece_lower_than_raw_on_held_out(cal):
    s, y = overconfident(6000, seed=12)
    fit_idx, test_idx = np.arange(3000), np.arange(3000, 6000)
    cal.fit(s.take(fit_idx), y[fit_idx])
    st_, yt = s.take(test_idx), y[test_idx]
    pred, conf = cal.confidence(st_)
    raw_pred, raw_conf = MaxSoftmax().confidence(st_)
    raw = top_label_ece(raw_conf, raw_pred == yt)
    new = top_label_ece(conf, pred == yt)
    assert raw > 0.1  # the set-up really is overconfident
    assert new < 0.5 * raw


@pytest.mark.parametrize("proto", all_functions(), ids=IDS)
def test_missing_class_in_calibration_data_still_scores_every_class(proto):
    def make():
        return copy.deepcopy(proto)

    cf = make()
    s, y = overconfident(800, k=4, seed=13)
    keep = np.flatnonzero(y != 1)
    cf.fit(s.take(keep), y[keep])
    pred, conf = cf.confidence(s)
    assert np.isfinite(conf).all() and conf.shape == (800,)
    assert (pred == 1).any()  # points predicted as the absent class still get a score


@pytest.mark.parametrize("proto", calibrators() + [Colander(epochs=1)], ids=IDS[1:])
def test_nan_logits_rejected_with_row_and_column(proto):
    def make():
        return copy.deepcopy(proto)

    s, y = overconfident(100, seed=14)
    z = s.logits.copy()
    z[7, 2] = np.nan
    with pytest.raises(InputError, match="row 7, column 2"):
        make().fit(Scores(z), y)
    fitted = make().fit(s, y)
    with pytest.raises(InputError, match="row 7, column 2"):
        fitted.confidence(Scores(z))


@pytest.mark.parametrize("proto", calibrators() + [Colander(epochs=1)], ids=IDS[1:])
def test_bad_labels_and_unfitted_use(proto):
    def make():
        return copy.deepcopy(proto)

    s, y = overconfident(100, seed=15)
    bad = y.copy()
    bad[4] = -1
    with pytest.raises(InputError, match="label code -1 at row 4"):
        make().fit(s, bad)
    with pytest.raises(InputError, match=r"expected \(100,\)"):
        make().fit(s, y[:50])
    with pytest.raises(NotFittedError, match="not fitted"):
        make().confidence(s)
    fitted = make().fit(s, y)
    with pytest.raises(InputError, match="classes"):
        fitted.confidence(Scores(np.zeros((3, 7))))


INVALID = [
    (TemperatureScaling, "max_iter", 0, "an int >= 1"),
    (HistogramBinning, "n_bins", 0, "an int >= 1"),
    (HistogramBinning, "min_per_bin", -2, "an int >= 1"),
    (ScalingBinning, "n_bins", 1.5, "an int >= 1"),
    (ScalingBinning, "scaling_fraction", 1.0, r"in \(0, 1\)"),
    (DirichletCalibration, "reg_lambda", -1.0, r"in \[0, inf\)"),
    (DirichletCalibration, "reg_mu", float("nan"), r"in \[0, inf\)"),
    (DirichletCalibration, "parametrization", "diag", "one of 'full', 'scalar'"),
    (Colander, "alpha", 0.0, r"in \(0, inf\)"),
    (Colander, "epsilon", 1.5, r"in \(0, 1\)"),
    (Colander, "epochs", 0, "an int >= 1"),
    (Colander, "selection_fraction", 1.0, r"in \[0, 1\)"),
    (Colander, "lam", -1.0, r"in \[0, inf\)"),
]


@pytest.mark.parametrize(("cls", "name", "value", "domain"), INVALID)
def test_invalid_parameters_raise_parameter_error(cls, name, value, domain):
    s, y = overconfident(100, seed=16)
    with pytest.raises(ParameterError, match=rf"The '{name}' parameter of {cls.__name__} must be {domain}"):
        cls(**{name: value}).fit(s, y)


# ---------------------------------------------------------------------------------------------
# leak-freedom and the shared contract
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("proto", all_functions(), ids=IDS)
def test_confidence_depends_only_on_each_points_scores(proto):
    def make():
        return copy.deepcopy(proto)

    """The score of a point is a function of its own Scores row: no labels, no batch effects."""
    cf = make()
    assert getattr(type(cf), "requires_fit", True) in (True, False)
    params = list(inspect.signature(cf.confidence).parameters)
    assert params == ["scores"]  # there is no way to hand the truth to confidence()
    s, y = overconfident(600, seed=17)
    emb = np.random.default_rng(0).normal(size=(600, 3))
    s = Scores(s.logits, emb)
    cf.fit(s.take(np.arange(300)), y[:300])
    batch = s.take(np.arange(300, 600))
    pred, conf = cf.confidence(batch)
    np.testing.assert_array_equal(pred, batch.predicted)  # always the classifier's arg-max
    # permute the batch, and mix it with other rows: each row keeps its score
    perm = np.random.default_rng(1).permutation(300)
    _, conf_p = cf.confidence(batch.take(perm))
    np.testing.assert_allclose(conf_p, conf[perm], rtol=1e-12, atol=1e-12)
    sub = cf.confidence(batch.take(np.arange(0, 300, 7)))[1]
    np.testing.assert_allclose(sub, conf[::7], rtol=1e-12, atol=1e-12)


def test_colander_scores_predicted_class_not_true_class():
    """A leaky Colander (as the authors' code before 2026) would index g with the true label."""
    s, y = overconfident(1000, seed=18)
    cf = Colander(epochs=5, random_state=0).fit(s.take(np.arange(500)), y[:500])
    batch, yb = s.take(np.arange(500, 1000)), y[500:]
    g = cf.predict_proba(batch)
    pred, conf = cf.confidence(batch)
    rows = np.arange(500)
    np.testing.assert_array_equal(conf, g[rows, pred])
    wrong = pred != yb
    assert wrong.sum() > 50
    assert not np.allclose(conf[wrong], g[rows, yb][wrong])  # the leaky score would differ
    # refit on the same scores with the labels shuffled: g changes (the labels are really used), but the
    # prediction is still the classifier's arg-max and the confidence still g at that predicted class --
    # never g's own arg-max, which a shuffled fit moves away from the classifier's prediction
    y_shuffled = np.random.default_rng(5).permutation(y[:500])
    cf2 = Colander(epochs=5, random_state=0).fit(s.take(np.arange(500)), y_shuffled)
    g2 = cf2.predict_proba(batch)
    pred2, conf2 = cf2.confidence(batch)
    assert not np.allclose(g2, g)
    np.testing.assert_array_equal(pred, batch.predicted)
    np.testing.assert_array_equal(pred2, batch.predicted)
    np.testing.assert_array_equal(conf2, g2[rows, pred])
    assert (np.argmax(g2, axis=1) != pred).any()  # so the two readings differ on this batch


# ---------------------------------------------------------------------------------------------
# Colander
# ---------------------------------------------------------------------------------------------
def surrogate_grad_by_hand(g, t, e, alpha, lam):
    s = expit(alpha * (g - t))
    ds = alpha * s * (1 - s)
    big_s = s.sum()
    err = (s * e).sum() / big_s
    return -ds / g.size + lam * ds * (e - err) / big_s


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20),
    st.floats(0.1, 20.0),
    st.floats(0.0, 50.0),
    st.integers(0, 2**16),
)
def test_colander_surrogate_gradient_matches_formula(gs, alpha, lam, seed):
    rng = np.random.default_rng(seed)
    g = np.asarray(gs)
    t = rng.random(g.size)
    e = (rng.random(g.size) < 0.3).astype(float)
    gt = torch.tensor(g, dtype=torch.float64, requires_grad=True)
    loss, _, _ = colander_surrogate(gt, torch.tensor(t), torch.tensor(e), alpha, lam)
    loss.backward()
    np.testing.assert_allclose(gt.grad.numpy(), surrogate_grad_by_hand(g, t, e, alpha, lam), rtol=1e-8, atol=1e-12)


def test_colander_surrogate_limit_is_hard_coverage_and_error():
    rng = np.random.default_rng(19)
    g = rng.random(500)
    t = np.full(500, 0.6)
    g[np.abs(g - t) < 1e-3] += 0.01  # keep points off the threshold
    e = (rng.random(500) < 0.2).astype(float)
    above = g > t
    hard_c, hard_e = above.mean(), e[above].mean()
    gaps = []
    for alpha in (1.0, 100.0, 1e4, 1e6):
        _, c, err = colander_surrogate(torch.tensor(g), torch.tensor(t), torch.tensor(e), alpha, 1.0)
        gaps.append(abs(float(c) - hard_c) + abs(float(err) - hard_e))
    assert gaps[-1] < 1e-6
    assert gaps[0] > 0.05 and gaps[-1] < gaps[1] < gaps[0]


def test_selection_score_does_not_saturate_when_classifier_error_is_below_epsilon():
    from labelsieve.confidence.colander import selection_score

    wrong = np.array([0] * 18 + [1, 1])  # 10% error overall, epsilon 0.2
    good = np.linspace(1, 0, 20)  # errors ranked last
    bad = good[::-1].copy()  # errors ranked first
    assert empirical_coverage(good, wrong, 0.2) == empirical_coverage(bad, wrong, 0.2) == 1.0
    assert selection_score(good, wrong, 0.2) > selection_score(bad, wrong, 0.2)


def test_empirical_coverage_respects_ties():
    conf = np.array([0.9, 0.9, 0.5, 0.5])
    wrong = np.array([0, 1, 0, 0])
    # the top group is two tied points, error 1/2; all four: 1/4
    assert empirical_coverage(conf, wrong, 0.3) == 1.0
    assert empirical_coverage(conf, wrong, 0.2) == 0.0


def test_colander_learns_per_class_reliability_softmax_misses():
    """Predictions of class 0 are wrong half the time whatever their softmax; other classes never.

    Max-softmax mixes the classes, so no global threshold reaches 5% error; Colander learns to
    push g[0] down and keeps ~the 3/4 of points predicted 1..3.
    """
    rng = np.random.default_rng(20)
    n, k = 4000, 4
    z = rng.normal(size=(n, k)) * 3
    pred = np.argmax(z, 1)
    wrong = (pred == 0) & (rng.random(n) < 0.5)
    y = np.where(wrong, (pred + 1) % k, pred)
    s = Scores(z)
    tr, te = np.arange(2000), np.arange(2000, n)
    cf = Colander(epochs=15, random_state=0).fit(s.take(tr), y[tr])
    p, c = cf.confidence(s.take(te))
    w = (p != y[te]).astype(float)
    col = empirical_coverage(c, w, 0.05)
    soft = empirical_coverage(MaxSoftmax().confidence(s.take(te))[1], w, 0.05)
    assert soft < 0.1 and col > 0.7
    scores = np.array([h[2] for h in cf.history_])
    assert cf.best_epoch_ == int(np.flatnonzero(scores == scores.max())[-1])  # best, ties -> later


def test_colander_is_deterministic_given_random_state():
    s, y = overconfident(400, seed=21)
    a = Colander(epochs=3, random_state=5).fit(s, y).confidence(s)[1]
    b = Colander(epochs=3, random_state=5).fit(s, y).confidence(s)[1]
    np.testing.assert_array_equal(a, b)
    state = torch.random.get_rng_state()
    Colander(epochs=1, random_state=5).fit(s, y)
    assert torch.equal(state, torch.random.get_rng_state())  # global torch RNG untouched


def test_fit_temperature_does_not_mutate_inputs():
    s, y = overconfident(200, seed=22)
    z0, y0 = s.logits.copy(), y.copy()
    for cf in all_functions():
        cf.fit(s, y)
        cf.confidence(s)
    np.testing.assert_array_equal(s.logits, z0)
    np.testing.assert_array_equal(y, y0)
    assert fit_temperature(z0, y0) > 0


# ---------------------------------------------------------------------------------------------
# the grid (library code behind `labelsieve bench confidence`)
# ---------------------------------------------------------------------------------------------
def test_grid_summary_hand_computed():
    import pandas as pd

    from labelsieve.experiments.confidence_grid import format_table, summarize

    runs = pd.DataFrame(
        {
            "dataset": "d", "epsilon": 0.05, "train_time": "ce",
            "post_hoc": ["softmax", "softmax", "colander", "colander"],
            "seed": [0, 1, 0, 1],
            "coverage": [0.2, 0.4, 0.5, 0.7],
            "auto_label_error": [0.01, 0.03, 0.02, 0.08],
            "human_labels": 100, "fallbacks": [0, 0, 1, 0],
        }
    )
    s = summarize(runs).set_index("post_hoc")
    assert s.loc["colander", "coverage_mean"] == pytest.approx(0.6)
    assert s.loc["colander", "coverage_sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s.loc["colander", "frac_over_eps"] == 0.5 and s.loc["softmax", "frac_over_eps"] == 0.0
    assert s.loc["colander", "fallbacks"] == 1
    assert s.loc["colander", "seeds_over_eps"] == 1
    text = format_table(s.reset_index())
    assert "colander*" in text and "softmax*" not in text
    assert "1/2" in text.splitlines()[2]  # the colander line: 1 seed of 2 over epsilon


def test_validity_check_counts_cells_and_binomial_tail():
    import pandas as pd
    from scipy.stats import binom

    from labelsieve.experiments.confidence_grid import validity_check

    err = [0.06, 0.01, 0.01, 0.01] + [0.06, 0.06, 0.01, 0.01]
    runs = pd.DataFrame({"dataset": "d", "epsilon": 0.05, "train_time": "ce",
                         "post_hoc": ["softmax"] * 4 + ["colander"] * 4, "seed": [0, 1, 2, 3] * 2,
                         "auto_label_error": err})
    text = validity_check(runs, 0.25)
    # softmax 1/4 <= floor(0.25 * 4) = 1 passes, colander 2/4 does not; the worst is colander
    assert "3/8 cell-seeds" in text and "1/2 cells at or below delta" in text
    assert "ce/colander 2/4" in text and f"= {binom.sf(1, 4, 0.25):.3f}" in text


def test_colander_comparison_is_paired_by_seed():
    import pandas as pd

    from labelsieve.experiments.confidence_grid import colander_comparison, format_comparison

    runs = pd.DataFrame(
        {
            "dataset": "d", "epsilon": 0.05, "train_time": "ce",
            "post_hoc": ["softmax"] * 3 + ["colander"] * 3 + ["histogram"] * 2,
            "seed": [0, 1, 2, 0, 1, 2, 0, 2],
            "coverage": [0.2, 0.4, 0.6, 0.5, 0.3, 0.6, 0.1, 0.9],
            "auto_label_error": 0.0,
        }
    )
    c = colander_comparison(runs).set_index("other")
    assert c.loc["softmax", "difference"] == pytest.approx((0.3 - 0.1 + 0.0) / 3)
    assert (c.loc["softmax", "wins"], c.loc["softmax", "losses"], c.loc["softmax", "seeds"]) == (1, 1, 3)
    # histogram has no seed 1: only seeds 0 and 2 are compared
    assert c.loc["histogram", "colander_coverage"] == pytest.approx(0.55)
    assert c.loc["histogram", "difference"] == pytest.approx((0.4 - 0.3) / 2)
    assert "1/1" in format_comparison(c.reset_index())


def test_run_grid_jobs_equal_serial_and_population_error():
    from labelsieve.data.dataset import Dataset
    from labelsieve.experiments.confidence_grid import run_cell, run_grid

    rng = np.random.default_rng(27)

    def blobs(n: int) -> Dataset:
        y = rng.integers(0, 3, n)
        X = rng.normal(size=(n, 4)) + 3.0 * np.eye(3, 4)[y]
        return Dataset(ids=np.arange(n), X=X, classes=("a", "b", "c"), y=y, name="blobs")

    ds, fresh = blobs(500), blobs(3000)
    kw = {"budget": 250, "rounds": 1, "epochs": 10, "hidden": 8, "fresh": fresh}
    serial = run_grid(ds, train_times=["ce"], post_hocs=["softmax", "temperature"], seeds=[0, 1], **kw)
    par = run_grid(ds, train_times=["ce"], post_hocs=["softmax", "temperature"], seeds=[0, 1], jobs=2, **kw)
    cols = ["post_hoc", "seed", "coverage", "auto_label_error", "population_error", "population_coverage"]
    import pandas.testing

    pandas.testing.assert_frame_equal(serial[cols], par[cols])
    # the population columns are the final rule applied to the fresh sample, by hand
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.experiments.confidence_grid import DELTA_SCHEDULE, make_cell_confidence
    from labelsieve.models import MLPClassifier

    res = TBAL(model=MLPClassifier(n_classes=3, hidden=(8,), epochs=10, loss="ce", random_state=1),
               confidence=make_cell_confidence("temperature", 1), budget=250, rounds=1, val_fraction=0.5,
               delta_schedule=DELTA_SCHEDULE, random_state=1).run(ds)
    model, cf, cert = res.rules[-1]
    pred, conf = cf.confidence(model.scores(fresh.X))
    acc = cert.accept(pred, conf)
    row = serial[(serial.post_hoc == "temperature") & (serial.seed == 1)].iloc[0]
    assert row["population_coverage"] == pytest.approx(acc.mean())
    assert row["population_error"] == pytest.approx((pred[acc] != fresh.y[acc]).mean() if acc.any() else 0.0)
    assert run_cell(ds, "ce", "softmax", 0, budget=250, rounds=1, epochs=10, hidden=8).keys().isdisjoint(
        {"population_error"})


def test_scarce_data_fallback_counts_across_copies():
    from labelsieve.experiments.confidence_grid import ScarceDataFallback

    s, y = overconfident(30, seed=23)
    proto = ScarceDataFallback(HistogramBinning(min_per_bin=50))
    a, b = copy.deepcopy(proto), copy.deepcopy(proto)
    a.fit(s, y)
    b.fit(s, y)
    assert proto.counter == [2]
    np.testing.assert_allclose(a.confidence(s)[1], MaxSoftmax().confidence(s)[1])


def test_grid_one_cell_runs_tbal_and_respects_epsilon():
    from labelsieve.data.dataset import Dataset
    from labelsieve.experiments.confidence_grid import run_cell

    rng = np.random.default_rng(24)
    n = 1200
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 4)) + 6.0 * np.eye(3, 4)[y]
    ds = Dataset(ids=np.arange(n), X=X, classes=("a", "b", "c"), y=y, name="blobs")
    row = run_cell(ds, "ce", "temperature", 0, budget=600, rounds=1, epochs=40, hidden=16)
    assert row["human_labels"] == 600 and 0.0 <= row["coverage"] <= 1.0
    assert row["coverage"] > 0.1  # well-separated blobs: a real share is auto-labeled
    assert row["auto_label_error"] <= 0.05 + 0.03  # guarantee is on the population; small slack


def test_cli_registers_bench_confidence():
    from labelsieve.cli import build_parser

    args = build_parser().parse_args(["bench", "confidence", "--dataset", "digits", "--seeds", "2"])
    assert args.seeds == 2 and args.dataset == "digits" and callable(args.func)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "confidence", "--dataset", "nope"])


def test_colander_search_picks_best_selection_coverage():
    s, y = overconfident(600, seed=25)
    grid = {"lam": [1.0, 100.0], "alpha": [1.0, 10.0]}
    cf = Colander(epochs=4, search=grid, random_state=3).fit(s, y)
    single = {
        (lam, a): Colander(epochs=4, lam=lam, alpha=a, random_state=3).fit(s, y).selection_coverage_
        for lam in grid["lam"]
        for a in grid["alpha"]
    }
    assert cf.selection_coverage_ == max(single.values())
    assert single[(cf.best_params_["lam"], cf.best_params_["alpha"])] == cf.selection_coverage_
    with pytest.raises(ParameterError, match="The 'search key' parameter of Colander must be one of"):
        Colander(search={"depth": [1, 2]}).fit(s, y)
    with pytest.raises(ParameterError, match="non-empty list"):
        Colander(search={"lam": []}).fit(s, y)


def test_colander_input_scale_floor_and_clip():
    from labelsieve.confidence.colander import CLIP, feature_scale, standardize

    rng = np.random.default_rng(26)
    X = rng.normal(size=(200, 4))
    X[:, 3] = 0.0
    X[0, 3] = 1e-4  # a nearly dead ReLU unit on the calibration set
    sd = X.std(axis=0)
    scale = feature_scale(X)
    np.testing.assert_allclose(scale[:3], sd[:3])
    assert scale[3] == pytest.approx(0.1 * np.median(sd))
    # a pool point where the dead unit fires stays bounded instead of ~1e4 standard deviations out
    z = standardize(np.array([[0.0, 0.0, 0.0, 3.0]]), X.mean(axis=0), scale)
    assert np.abs(z).max() == CLIP
