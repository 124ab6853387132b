"""Labeler accuracy from gold: eq. 4 MLE, Beta posterior, interval coverage, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from labelsieve.crowd import GTX, accuracies_from_estimate, beta_posterior, estimate_accuracies
from labelsieve.errors import InputError, ParameterError


def labels_df(rows):
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


GOLD = pd.DataFrame({"task": ["g1", "g2", "g3", "g4"], "label": ["y", "n", "y", "y"]})


def test_hand_computed_mle_and_posterior():
    labels = labels_df([
        ("g1", "a", "y"), ("g2", "a", "n"), ("g3", "a", "n"), ("g4", "a", "y"),  # a: 3 of 4
        ("g1", "b", "y"), ("g2", "b", "n"),                                      # b: 2 of 2
        ("t9", "c", "y"),                                                        # c: no gold
        ("t9", "a", "y"),
    ])
    est = estimate_accuracies(labels, GOLD, prior=(2.0, 1.0), interval=0.9).set_index("worker")
    assert est.loc["a", ["n_gold", "n_correct"]].tolist() == [4, 3]
    assert est.loc["b", ["n_gold", "n_correct"]].tolist() == [2, 2]
    assert est.loc["c", ["n_gold", "n_correct"]].tolist() == [0, 0]
    assert est.loc["a", "mle"] == 0.75 and est.loc["b", "mle"] == 1.0 and np.isnan(est.loc["c", "mle"])
    # posterior mean (a + c) / (a + b + n)
    np.testing.assert_allclose(est["posterior_mean"].to_numpy(), [5 / 7, 4 / 5, 2 / 3])
    # equal-tailed 90% interval of Beta(a + c, b + n - c): 5% of mass on each side
    for w, (pa, pb) in {"a": (5, 2), "b": (4, 1), "c": (2, 1)}.items():
        lo, hi = est.loc[w, "lower"], est.loc[w, "upper"]
        assert stats.beta.cdf(lo, pa, pb) == pytest.approx(0.05)
        assert stats.beta.cdf(hi, pa, pb) == pytest.approx(0.95)
    assert list(est.index) == ["a", "b", "c"]


def test_beta_interval_coverage_when_accuracies_come_from_the_prior():
    # Bayesian calibration: with alpha ~ Beta(a, b) and c ~ Bin(n, alpha), the 95% credible
    # interval contains alpha with probability exactly 0.95.
    rng = np.random.default_rng(0)
    n_sim, a, b = 6000, 4.0, 1.5
    alpha = rng.beta(a, b, size=n_sim)
    n = rng.integers(0, 30, size=n_sim)
    c = rng.binomial(n, alpha)
    _, lo, hi = beta_posterior(c, n, a, b, 0.95)
    cover = np.mean((lo <= alpha) & (alpha <= hi))
    assert abs(cover - 0.95) < 4 * np.sqrt(0.95 * 0.05 / n_sim)


@pytest.mark.parametrize("alpha", [0.7, 0.9])
def test_beta_interval_frequentist_coverage_over_seeds(alpha):
    # for a fixed accuracy and 60 gold answers the uniform-prior interval is close to nominal
    covered = []
    for seed in range(2000):
        rng = np.random.default_rng(seed)
        c = rng.binomial(60, alpha)
        _, lo, hi = beta_posterior(np.array([c]), np.array([60]), 1.0, 1.0, 0.95)
        covered.append(lo[0] <= alpha <= hi[0])
    assert 0.925 <= np.mean(covered) <= 0.975


def test_few_gold_answers_are_shrunk_and_posterior_plugs_into_gtx():
    labels = labels_df([("g1", "lucky", "y"), ("g2", "lucky", "n"), ("t", "lucky", "y"), ("t", "pro", "n")]
                       + [(f"p{i}", "pro", "y") for i in range(40)])
    gold = pd.concat([GOLD.iloc[:2], pd.DataFrame({"task": [f"p{i}" for i in range(40)],
                                                   "label": ["y"] * 36 + ["n"] * 4})])
    est = estimate_accuracies(labels, gold).set_index("worker")
    assert est.loc["lucky", "mle"] == 1.0 and est.loc["lucky", "posterior_mean"] == pytest.approx(0.75)
    assert est.loc["pro", "posterior_mean"] == pytest.approx(37 / 42)
    acc = accuracies_from_estimate(est.reset_index())
    p = GTX(accuracies=acc).fit_predict_proba(labels[labels.task == "t"])
    # the 2-for-2 labeler does not outvote the 36-of-40 one
    assert p.loc["t"].idxmax() == "n"
    with pytest.raises(ParameterError, match="must hold accuracies in"):
        GTX(accuracies=accuracies_from_estimate(est.reset_index(), "mle")).fit(labels)


@pytest.mark.parametrize(
    ("gold", "match"),
    [
        (pd.DataFrame({"task": ["g1", "g1"], "label": ["y", "n"]}), "row 1: task 'g1' has a second gold label"),
        (pd.DataFrame({"task": ["g1", None], "label": ["y", "n"]}), "row 1: missing value in column 'task'"),
        (pd.DataFrame({"task": ["g1"]}), "missing required column.*label"),
        (pd.DataFrame({"task": ["g1"], "label": ["maybe"]}), "gold label 'maybe' of task 'g1' is not one of"),
    ],
)
def test_bad_gold(gold, match):
    with pytest.raises(InputError, match=match):
        estimate_accuracies(labels_df([("g1", "a", "y"), ("g1", "b", "n")]), gold)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prior": (0.0, 1.0)}, "'prior' parameter of estimate_accuracies"),
        ({"prior": (1.0,)}, "'prior' parameter of estimate_accuracies"),
        ({"prior": (1.0, float("nan"))}, "'prior' parameter of estimate_accuracies"),
        ({"interval": 1.0}, r"'interval' parameter of estimate_accuracies must be in \(0, 1\)"),
        ({"interval": 0}, r"'interval' parameter of estimate_accuracies must be in \(0, 1\)"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        estimate_accuracies(labels_df([("g1", "a", "y")]), GOLD, **kwargs)
