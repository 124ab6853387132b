"""Noise-aware guarantee: Poisson-binomial quantiles, the combined bound, the crowd oracle."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from labelsieve.autolabel.certify import certify_thresholds
from labelsieve.autolabel.crowd_oracle import CrowdOracle, item_ease, threshold_collect
from labelsieve.autolabel.noisy import (
    NoiseAwareCertifier,
    accuracy_limits,
    certify_thresholds_noisy,
    conservative_label_confidence,
    error_probabilities,
    expected_wrong_labels,
    noisy_upper_bound,
    poisson_binomial_pmf,
    poisson_binomial_quantile,
    prefix_quantiles,
)
from labelsieve.data.dataset import Dataset
from labelsieve.errors import InputError, ParameterError


def enumerate_pmf(p: np.ndarray) -> np.ndarray:
    """Distribution of the sum by listing all 2^n outcomes."""
    out = np.zeros(len(p) + 1)
    for bits in itertools.product((0, 1), repeat=len(p)):
        b = np.array(bits)
        out[b.sum()] += np.prod(np.where(b == 1, p, 1 - p))
    return out


def enumerate_quantile(p: np.ndarray, level: float) -> int:
    cdf = np.cumsum(enumerate_pmf(p))
    return int(np.flatnonzero(cdf >= level - 1e-12)[0])


# ----------------------------------------------------------------------------- Poisson-binomial
@pytest.mark.parametrize("method", ["fft", "dp"])
@pytest.mark.parametrize("seed", range(6))
def test_pmf_matches_enumeration(method, seed):
    rng = np.random.default_rng(seed)
    p = rng.random(rng.integers(1, 11))
    p[rng.random(len(p)) < 0.2] = rng.choice([0.0, 1.0])
    np.testing.assert_allclose(poisson_binomial_pmf(p, method=method), enumerate_pmf(p), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=10), st.floats(0.5, 0.999))
def test_quantile_matches_enumeration(p, level):
    p = np.array(p)
    assert poisson_binomial_quantile(p, level) == enumerate_quantile(p, level)


def test_binomial_special_case():
    # identical p: the Poisson-binomial is the binomial
    p = np.full(40, 0.07)
    np.testing.assert_allclose(poisson_binomial_pmf(p), stats.binom.pmf(np.arange(41), 40, 0.07), atol=1e-13)
    assert poisson_binomial_quantile(p, 0.95) == int(stats.binom.ppf(0.95, 40, 0.07))


@pytest.mark.parametrize("block", [7, 10**7])
def test_prefix_quantiles_equal_one_at_a_time(monkeypatch, block):
    from labelsieve.guarantees import noisy as pure_noisy

    monkeypatch.setattr(pure_noisy, "_BLOCK_CELLS", block)  # small blocks exercise the carried sums
    rng = np.random.default_rng(3)
    p = rng.random(120) * 0.3
    p[rng.random(120) < 0.3] = 0.0
    p[rng.random(120) < 0.05] = 1.0
    got = prefix_quantiles(p, 0.97)
    want = [poisson_binomial_quantile(p[: m + 1], 0.97) for m in range(len(p))]
    assert got.tolist() == want
    rows = np.array([5, 60, 119])
    assert prefix_quantiles(p, 0.97, rows).tolist() == [want[r] for r in rows]


def test_bad_probabilities_raise():
    with pytest.raises(InputError, match=r"p\[1\] = 1.5"):
        poisson_binomial_pmf(np.array([0.1, 1.5]))


# ----------------------------------------------------------------------------- the bound
def _val(seed, n=400, k=3):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, k, n)
    conf = np.round(rng.random(n), 2)  # ties on purpose
    wrong = rng.random(n) < 0.3 * (1 - conf)
    y = np.where(wrong, (pred + 1) % k, pred)
    return pred, conf, y


@pytest.mark.parametrize("scope", ["global", "per-class"])
@pytest.mark.parametrize("bound", ["clopper-pearson", "hoeffding", "sigma"])
@pytest.mark.parametrize("seed", range(4))
def test_reduces_to_noiseless_when_posteriors_are_certain(scope, bound, seed):
    pred, conf, y = _val(seed)
    kw = {"n_classes": 3, "epsilon": 0.08, "delta": 0.05, "scope": scope, "bound": bound}
    a = certify_thresholds(pred, conf, y, **kw)
    for lc in (None, np.ones(len(y))):
        b = certify_thresholds_noisy(pred, conf, y, label_confidence=lc, **kw)
        assert np.array_equal(a.thresholds, b.thresholds)
        assert a.delta_per_test == b.delta_per_test
        assert [(s.n, s.errors, s.n_tested) for s in a.scans] == [(s.n, s.errors, s.n_tested) for s in b.scans]
        np.testing.assert_array_equal([s.upper for s in a.scans], [s.upper for s in b.scans])
    # a full 0/1 posterior matrix is the same statement
    post = np.eye(3)[y]
    c = certify_thresholds_noisy(pred, conf, y, label_posterior=post, **kw)
    assert np.array_equal(a.thresholds, c.thresholds)


def test_noisy_labels_need_the_noise_aware_certifier():
    pred, conf, y = _val(0)
    with pytest.raises(InputError, match="noise-aware"):
        certify_thresholds(pred, conf, y, n_classes=3, label_confidence=np.full(len(y), 0.9))


def test_error_probabilities_by_hand():
    p = error_probabilities(np.array([0, 1, 2, 2]), np.array([0, 0, 2, 1]), np.array([0.9, 0.7, 0.99, 0.6]),
                            n_classes=3)
    np.testing.assert_allclose(p, [0.1, 1.0, 0.01, 1.0])
    post = np.array([[0.2, 0.7, 0.1]])
    assert error_probabilities(np.array([1]), np.array([1]), n_classes=3, label_posterior=post)[0] == pytest.approx(0.3)


def test_bound_by_hand():
    # 100 points each wrong with prob 0.01, delta split 50/50: Q is the 0.975 quantile of Bin(100, 0.01)
    p = np.full(100, 0.01)
    u, q = noisy_upper_bound(p, 0.05)
    assert q == int(stats.binom.ppf(0.975, 100, 0.01)) == 3
    assert u == pytest.approx(stats.beta.ppf(1 - 0.025, q + 1, 100 - q))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_monotone_in_label_confidence(seed):
    """More confident labels (higher posterior) never raise the bound or the threshold."""
    rng = np.random.default_rng(seed)
    pred, conf, y = _val(seed, n=300, k=2)
    q = 1 - rng.random(300) * 0.05
    q2 = np.minimum(1.0, q + rng.random(300) * 0.03)
    kw = {"n_classes": 2, "epsilon": 0.1, "delta": 0.1}
    t1 = certify_thresholds_noisy(pred, conf, y, label_confidence=q, **kw).thresholds[0]
    t2 = certify_thresholds_noisy(pred, conf, y, label_confidence=q2, **kw).thresholds[0]
    assert t2 <= t1
    p1, p2 = error_probabilities(pred, y, q, n_classes=2), error_probabilities(pred, y, q2, n_classes=2)
    assert noisy_upper_bound(p2, 0.1)[0] <= noisy_upper_bound(p1, 0.1)[0]


def test_monotone_in_tau():
    """A higher GTX threshold tau never stops an item earlier, and every stop reached tau or kappa."""
    rng = np.random.default_rng(0)
    n, k = 500, 3
    ans = rng.integers(0, k, (n, 6))
    acc = rng.uniform(0.6, 0.95, (n, 6))
    prev = np.zeros(n, dtype=int)
    for tau in (0.6, 0.8, 0.9, 0.95, 0.99, 0.999):
        n_lab, post = threshold_collect(ans, acc, np.log(np.full(k, 1 / k)), tau=tau, kappa=6)
        assert (n_lab >= prev).all()
        assert ((post.max(axis=1) >= tau) | (n_lab == 6)).all()
        prev = n_lab


def _synthetic(seed, n=600, alpha=(0.75, 0.95), n_workers=7):
    """K=2, confidence ~ U(0.5, 1), P(model wrong | c) = 4 (1 - c)^3, so the population error
    above t is (1 - t)^3; crowd: one-coin labelers with known accuracies, GTX posterior."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    truth = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 4 * (1 - conf) ** 3, 1 - truth, truth)
    acc = rng.uniform(*alpha, n_workers)
    answers = np.where(rng.random((n, n_workers)) < acc, truth[:, None], 1 - truth[:, None])
    llr = np.where(answers == 1, 1, -1) @ np.log(acc / (1 - acc))
    p1 = 1 / (1 + np.exp(-llr))
    given = (p1 > 0.5).astype(int)
    q = np.where(given == 1, p1, 1 - p1)
    return pred, conf, given, q


def test_guarantee_over_many_seeds_reduced_audit():
    """With one-coin crowd labels, the noise-aware threshold's population error exceeds epsilon in at
    most delta of the seeds (plus binomial slack); the labels are noisy enough that it matters."""
    eps, delta, seeds = 0.05, 0.1, 250
    viol, covered, crowd_err = 0, 0, []
    for s in range(seeds):
        pred, conf, given, q = _synthetic(s)
        crowd_err.append(np.mean(1 - q))
        t = certify_thresholds_noisy(pred, conf, given, n_classes=2, epsilon=eps, delta=delta,
                                     label_confidence=q).thresholds[0]
        if np.isfinite(t):
            covered += 1
            viol += (1 - max(t, 0.5)) ** 3 > eps
    assert np.mean(crowd_err) > 0.01  # labels really are noisy
    assert covered > seeds * 0.2  # and the bound still certifies often
    assert viol / seeds <= delta + 2.5 * math.sqrt(delta * (1 - delta) / seeds)


def test_label_noise_is_paid_for():
    """With the same data, noisy labels give a threshold no lower than the (unknowable) truth would."""
    worse = 0
    for s in range(30):
        pred, conf, given, q = _synthetic(s)
        t_noisy = certify_thresholds_noisy(pred, conf, given, n_classes=2, label_confidence=q).thresholds[0]
        t_given = certify_thresholds(pred, conf, given, n_classes=2).thresholds[0]
        worse += t_noisy >= t_given
    assert worse >= 28


# ----------------------------------------------------------------------------- accuracy uncertainty
def test_accuracy_limits_cover_all_labelers_together():
    """Clopper-Pearson limits split over 10 labelers contain all 10 accuracies in >= 1 - delta of draws."""
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.6, 0.95, 10)
    delta, draws = 0.1, 600
    c = rng.binomial(50, alpha, size=(draws, 10))
    lims = [accuracy_limits(ci, np.full(10, 50), delta) for ci in c]
    lo, hi = np.stack([a for a, _ in lims]), np.stack([b for _, b in lims])
    assert ((lo <= alpha) & (alpha <= hi)).all(axis=1).mean() >= 1 - delta
    # one labeler by hand: the Beta(c, n - c + 1) quantile at delta / (2 J)
    assert lo[0, 0] == pytest.approx(stats.beta.ppf(delta / 20, c[0, 0], 50 - c[0, 0] + 1))
    assert accuracy_limits(np.array([0, 50]), np.array([50, 50]), delta)[0][0] == 0.0
    assert accuracy_limits(np.array([0, 50]), np.array([50, 50]), delta)[1][1] == 1.0


def test_conservative_confidence_is_the_worst_corner():
    rng = np.random.default_rng(1)
    k, n_items, n_w = 3, 6, 3
    task = np.repeat(np.arange(n_items), n_w)
    worker = np.tile(np.arange(n_w), n_items)
    label = rng.integers(0, k, len(task))
    given = rng.integers(0, k, n_items)
    lower, upper = np.array([0.6, 0.7, 0.5]), np.array([0.8, 0.9, 0.85])
    log_prior = np.log(np.full(k, 1 / k))
    got = conservative_label_confidence(task, label, worker, given, lower, upper, log_prior)
    from labelsieve.crowd.gtx import gtx_posterior

    best = np.full(n_items, np.inf)
    for corner in itertools.product(*zip(lower, upper, strict=True)):
        post = gtx_posterior(task, label, np.array(corner)[worker], log_prior, n_items)
        best = np.minimum(best, post[np.arange(n_items), given])
    np.testing.assert_allclose(got, best, rtol=1e-12)
    inner = rng.uniform(lower, upper)  # any accuracies inside the box give at least as much
    post = gtx_posterior(task, label, inner[worker], log_prior, n_items)
    assert (post[np.arange(n_items), given] >= got - 1e-12).all()


# ----------------------------------------------------------------------------- the crowd oracle
@pytest.fixture(scope="module")
def blobs() -> Dataset:
    rng = np.random.default_rng(0)
    n, k = 600, 3
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, 2)) + 2.5 * np.eye(k)[y][:, :2] + np.where(y == 2, -2.0, 0.0)[:, None]
    return Dataset(ids=[f"b{i}" for i in range(n)], X=X, classes=("a", "b", "c"), y=y, name="blobs")


def test_threshold_collect_equals_the_live_collector():
    from labelsieve.crowd import GTX, ThresholdCollector

    rng = np.random.default_rng(2)
    n, k, n_w = 40, 3, 5
    ans = rng.integers(0, k, (n, n_w))
    acc_w = rng.uniform(0.6, 0.95, n_w)
    order = np.argsort(rng.random((n, n_w)), axis=1)
    n_lab, _ = threshold_collect(ans[np.arange(n)[:, None], order], acc_w[order], np.log(np.full(k, 1 / k)),
                                 tau=0.9, kappa=4)
    col = ThresholdCollector(GTX(accuracies=dict(enumerate(acc_w)), classes=[0, 1, 2]), classes=[0, 1, 2],
                             budget=10_000, tau=0.9, kappa=4)
    col.add_items(range(n))
    used = np.zeros(n, dtype=int)
    while (t := col.next_item()) is not None:
        j = order[t, used[t]]
        col.add_label(t, int(j), int(ans[t, j]))
        used[t] += 1
    assert used.tolist() == n_lab.tolist()


def test_oracle_answers_and_accounting(blobs):
    o = CrowdOracle(blobs, accuracy_range=(0.7, 0.9), tau=0.99, kappa=5, gold_size=100, random_state=0)
    ids = blobs.ids[:200]
    ans = o.ask(ids)
    lab, q = ans.labels, o.label_confidence(ids)
    assert lab.shape == q.shape == (200,)
    np.testing.assert_array_equal(ans.p_correct, q)  # the answers carry their posterior
    assert o.answers_spent == int(o.n_answers_[:200].sum()) and 200 <= o.answers_spent <= 1000
    assert o.cost == pytest.approx(o.answers_spent + 100 * 10 + 5.0 * 100)
    again = o.ask(ids[::-1]).labels  # asking again costs nothing and answers the same
    assert (again == lab[::-1]).all() and o.answers_spent == int(o.n_answers_[:200].sum())
    plain = CrowdOracle(blobs, accuracy_range=(0.7, 0.9), tau=0.99, kappa=5, gold_size=100, random_state=0,
                        conservative=False)
    plain.ask(ids)
    assert (q <= plain.label_confidence(ids) + 1e-12).all()
    assert (lab == plain.ask(ids).labels).all()
    with pytest.raises(InputError, match="never asked"):
        o.label_confidence(blobs.ids[300:301])
    with pytest.raises(InputError, match="unknown item id 'nope'"):
        o.ask(np.array(["nope"]))


def test_difficulty_makes_labelers_err_near_the_boundary(blobs):
    o = CrowdOracle(blobs, accuracy_range=(0.7, 0.9), difficulty=1.0, random_state=1, confusion="uniform")
    o.ask(blobs.ids)
    from labelsieve.autolabel.crowd_oracle import reference_probabilities

    ref = reference_probabilities(blobs)
    ease = item_ease(ref[np.arange(len(blobs)), blobs.y])
    right = o.answers_ == blobs.y[:, None]
    assert right[ease < -0.5].mean() < right[ease > 0.5].mean() - 0.1


def test_uncertainty_strategy_spends_its_budget(blobs):
    o = CrowdOracle(blobs, strategy="uncertainty", answers_per_item=2.0, random_state=0, difficulty=0.0,
                    confusion="uniform")
    o.ask(blobs.ids[:50])
    assert o.answers_spent == 100 and (o.n_answers_[:50] >= 1).all()


def test_calibrated_posteriors_and_wrong_label_count(blobs):
    """Held-out simulated runs: with one-coin labelers and known accuracies, the expected number of
    wrong labels matches the truth on average and the upper bound holds in >= 1 - delta of runs."""
    counts, expected, uppers = [], [], []
    for s in range(60):
        o = CrowdOracle(blobs, accuracy_range=(0.6, 0.8), tau=0.9, kappa=3, difficulty=0.0, confusion="uniform",
                        accuracy_source="true", conservative=False, random_state=s)
        ids = blobs.ids[s : s + 300]
        lab = o.ask(ids).labels
        truth = blobs.y[s : s + 300]
        rng = np.random.default_rng(s)
        auto_wrong = rng.random(200) < 0.04  # 200 auto-labels from a rule with error 0.04 <= eps = 0.05
        summary = expected_wrong_labels(np.r_[1 - o.label_confidence(ids), np.full(200, 0.05)], delta=0.1)
        counts.append(int((lab != truth).sum() + auto_wrong.sum()))
        expected.append(summary.expected)
        uppers.append(summary.upper)
    counts, expected, uppers = map(np.array, (counts, expected, uppers))
    assert (counts <= uppers).mean() >= 0.9 - 2.5 * math.sqrt(0.09 / 60)
    assert counts.mean() <= expected.mean() + 2.0  # expected is an upper estimate (auto part at eps)
    assert counts.mean() >= expected.mean() - 10 - 2.0


def test_tbal_with_the_crowd_oracle(blobs):
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.models import make_model

    rng = np.random.default_rng(5)
    n = 4000
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 2)) + 3.0 * y[:, None]
    big = Dataset(ids=[f"g{i}" for i in range(n)], X=X, classes=("a", "b"), y=y, name="big")
    o = CrowdOracle(big, accuracy_range=(0.85, 1.0), tau=0.999, kappa=9, gold_size=300, difficulty=0.0,
                    confusion="uniform", random_state=0)
    res = TBAL(model=make_model("logreg", n_classes=2, random_state=0), budget=1000, rounds=2, delta=0.04,
               certifier=NoiseAwareCertifier(), random_state=0).run(big, o)
    assert o.answers_spent >= 1000  # the budget counts items; the oracle counts answers
    m = res.metrics
    # the loop passed the posteriors to the noise-aware certifier: it either certified or says why in
    # terms of true errors, and whatever it auto-labeled is within epsilon
    assert m["coverage"] > 0 or "true errors" in next(iter(m["no_threshold_reasons"].values()))
    assert (m["auto_label_error"] or 0.0) <= 0.05
    with pytest.raises(InputError, match="noise-aware"):  # the noiseless certifier refuses crowd labels
        TBAL(model=make_model("logreg", n_classes=3, random_state=0), budget=400, rounds=2,
             random_state=0).run(blobs, CrowdOracle(blobs, random_state=0))


# ----------------------------------------------------------------------------- parameters
BAD_CERT = [("epsilon", 1.5, "epsilon"), ("delta", 0.0, "delta"), ("label_share", 1.0, "label_share"),
            ("bound", "wilson", "bound"), ("scope", "local", "scope"), ("scan", "all", "scan")]


@pytest.mark.parametrize("name,value,match", BAD_CERT)
def test_invalid_certifier_parameters(name, value, match):
    pred, conf, y = _val(0)
    kw = {"n_classes": 3, name: value}
    with pytest.raises(ParameterError, match=f"The '{match}' parameter of certify_thresholds_noisy"):
        certify_thresholds_noisy(pred, conf, y, **kw)


BAD_ORACLE = [("strategy", "random"), ("tau", 0.4), ("kappa", 20), ("accuracy_range", (0.9, 0.5)),
              ("delta_accuracy", 1.0), ("confusion", "x"), ("difficulty", -1.0), ("accuracies", [0.5, 1.5]),
              ("gold_size", -1), ("answers_per_item", 0.5)]


@pytest.mark.parametrize("name,value", BAD_ORACLE)
def test_invalid_oracle_parameters(blobs, name, value):
    o = CrowdOracle(blobs, reference=np.full((len(blobs), 3), 1 / 3), **{name: value})
    with pytest.raises(ParameterError, match=f"The '{name}' parameter of CrowdOracle"):
        o.ask(blobs.ids[:3])


def test_bench_noisy_command(capsys):
    from labelsieve.cli import main

    rc = main(["bench", "noisy", "--dataset", "breast-cancer", "--seeds", "2", "--cost-seeds", "0",
               "--settings", "U(0.8,1.0)", "--budget", "200", "--rounds", "2", "--gold-size", "100"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "noise-aware" in out and "naive" in out and "err>eps" in out
