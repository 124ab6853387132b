"""The budget planner: error curves, per-procedure counts, simulation properties, and `labelsieve plan`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from labelsieve.autolabel.certify import certify_thresholds
from labelsieve.cli import main
from labelsieve.errors import InputError, NotEnoughDataError, ParameterError
from labelsieve.guarantees import pac
from labelsieve.guarantees.planner import (
    GUARANTEES,
    BudgetPlanner,
    conformal_auto_count,
    default_budgets,
    error_curve,
    pac_auto_count,
    platt_curve,
    summarize,
    tbal_auto_count,
)

# ------------------------------------------------------------------------------------------------
# pieces
# ------------------------------------------------------------------------------------------------


def test_isotonic_curve_hand_computed():
    # wrong = 1, 0, 1, 0 at 0.6, 0.7, 0.8, 0.9: PAVA (non-increasing) pools 0.7 and 0.8
    g = error_curve(np.array([0.9, 0.6, 0.8, 0.7]), np.array([0, 1, 1, 0]), prior_strength=0.0)
    np.testing.assert_allclose(g.knots, [0.6, 0.75, 0.9])
    np.testing.assert_allclose(g.rates, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(g(np.array([0.5, 0.675, 0.95])), [1.0, 0.75, 0.0])
    # shrinkage: one block of 3 correct items at 0.8 -> (0 + 1 * 0.2) / (3 + 1)
    np.testing.assert_allclose(error_curve(np.full(3, 0.8), np.zeros(3)).rates, [0.05])


def test_platt_curve_recovers_and_shrinks():
    rng = np.random.default_rng(1)
    c = rng.uniform(0.5, 1.0, 40000)
    z = np.log(c / (1 - c))
    w = rng.random(40000) < 1 / (1 + np.exp(-(0.5 - 2.0 * z)))  # true a = 0.5, b = -2
    f = platt_curve(c, w, prior_strength=0.0)
    assert abs(f.a - 0.5) < 0.1 and abs(f.b + 2.0) < 0.1
    # no pilot error at all: the penalty keeps a finite fit near the stated error 1 - c
    g = platt_curve(np.linspace(0.6, 0.99, 30), np.zeros(30), prior_strength=1.0)
    assert np.isfinite([g.a, g.b]).all() and 0 < g(np.array([0.9]))[0] < 0.1


def test_summarize_hand_computed():
    s = summarize(np.array([[0, 40], [10, 40], [20, 40], [30, 40], [40, 40]]), 100, 0.5)
    np.testing.assert_allclose(s["estimate"], [0.2, 0.4])
    np.testing.assert_allclose(s["low"], [0.1, 0.4])  # 25th percentile
    np.testing.assert_allclose(s["high"], [0.3, 0.4])
    np.testing.assert_allclose(s["p_zero"], [0.2, 0.0])


def test_default_budgets():
    assert default_budgets(100_000)[-1] == 50000
    assert default_budgets(420) == [25, 50, 100, 200]
    assert default_budgets(40) == [4, 8, 12, 20]


def test_tbal_count_matches_certifier():
    rng = np.random.default_rng(3)
    pool = rng.uniform(0.5, 1.0, 3000)
    val = rng.choice(3000, 400, replace=False)
    wrong = rng.random(400) > pool[val] ** 0.3
    cert = certify_thresholds(wrong.astype(int), pool[val], np.zeros(400, dtype=int), n_classes=2, epsilon=0.1,
                              delta=0.05)
    rest = np.setdiff1d(np.arange(3000), val)
    expected = int(np.sum(pool[rest] >= cert.thresholds[0]))
    assert expected > 0
    assert tbal_auto_count(np.sort(pool), pool[val], wrong, epsilon=0.1, delta=0.05) == expected


def test_conformal_count_excludes_calibration_items():
    pool = np.array([0.99, 0.95, 0.9, 0.85, 0.6])  # already in decreasing order
    drawn = np.array([False, True, False, False, False])
    # calibration: the drawn 0.95 item (correct) plus nothing else -> n = 1, p = 1/2 for all
    assert conformal_auto_count(pool, drawn, np.array([0.95]), np.array([False]), epsilon=0.5) == 4
    assert conformal_auto_count(pool, drawn, np.array([0.95]), np.array([False]), epsilon=0.4) == 0


def test_pac_count_matches_pac_labeler():
    rng = np.random.default_rng(5)
    n = 4000
    conf = rng.uniform(0.6, 1.0, n)
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < conf, y, (y + 1) % 3)
    lab = pac.PACLabeler(epsilon=0.05, alpha=0.05, audit=200, random_state=0).fit(pred, 1 - conf, lambda i: y[i])
    losses = (pred[lab.audit_idx_] != y[lab.audit_idx_]).astype(float)
    got = pac_auto_count(1 - conf, lab.pi_, lab.audit_idx_, losses, epsilon=0.05, delta=0.05)
    assert got == int(lab.auto_mask_.sum()) > 0


# ------------------------------------------------------------------------------------------------
# the planner
# ------------------------------------------------------------------------------------------------


def _pool(n, rng, *, quality=1.0):
    """Confidences and wrong flags of a model with P(wrong | c) = (1 - c) / quality (capped)."""
    c = rng.beta(6, 1, n)
    return c, rng.random(n) < np.minimum((1 - c) / quality, 1.0)


@pytest.fixture(scope="module")
def big_plan():
    rng = np.random.default_rng(0)
    c, w = _pool(20000, rng)
    pilot = rng.choice(20000, 300, replace=False)
    p = BudgetPlanner(0.1, 0.05, budgets=[50, 100, 200, 400], n_bootstrap=100, random_state=0)
    p.fit(np.zeros(300), c[pilot], w[pilot].astype(int), c)
    return p, p.plan()


def test_intervals_contain_estimate_and_columns(big_plan):
    _p, df = big_plan
    assert set(df["procedure"]) == {"tbal", "pac", "conformal"}
    assert (df["low"] <= df["estimate"] + 1e-12).all() and (df["estimate"] <= df["high"] + 1e-12).all()
    assert ((df["low"] >= 0) & (df["high"] <= 1)).all()
    assert (df["guarantee"] == df["procedure"].map(GUARANTEES)).all()
    # tbal / conformal spend m human labels; pac's humans label every item it does not keep
    tb = df[df["procedure"] != "pac"]
    assert (tb["total_human_labels"] == tb["human_labels"]).all()
    pc = df[df["procedure"] == "pac"]
    assert (pc["total_human_labels"] + pc["auto_labels"] == 20000).all()
    assert df.attrs["n_pilot"] == 300 and df.attrs["n_pool"] == 20000


def test_coverage_non_decreasing_in_budget_in_expectation(big_plan):
    p, _ = big_plan
    m = np.asarray(p.budgets_, dtype=float)
    for proc, counts in p.counts_.items():
        # coverage of the items a run does not spend on labeling: more labels, a better threshold
        rest = counts / (20000 - (0 if proc == "pac" else m))
        mean = rest.mean(axis=0)
        assert np.all(np.diff(mean) >= -0.01), (proc, mean)
        assert mean[-1] > mean[0], (proc, mean)


def test_price_ordering_on_a_good_model(big_plan):
    """Conformal (expected) is the cheapest promise; TBAL's subset bound needs the most labels at small m."""
    _, df = big_plan
    est = df.pivot(index="human_labels", columns="procedure", values="mean")
    assert (est["conformal"] >= est["tbal"] - 0.02).all()
    assert est.loc[50, "conformal"] > est.loc[50, "tbal"]


def test_deterministic_given_seed():
    rng = np.random.default_rng(2)
    c, w = _pool(2000, rng)
    kw = {"budgets": [50, 200], "n_bootstrap": 30, "random_state": 7}
    a = BudgetPlanner(0.1, 0.05, **kw).fit(np.zeros(200), c[:200], w[:200].astype(int), c).plan()
    b = BudgetPlanner(0.1, 0.05, **kw).fit(np.zeros(200), c[:200], w[:200].astype(int), c).plan()
    pd.testing.assert_frame_equal(a, b)


def test_bad_model_gets_nothing_good_model_gets_much():
    rng = np.random.default_rng(4)
    c = rng.uniform(0.5, 1.0, 3000)
    bad = rng.random(3000) < 0.5  # wrong half the time whatever the confidence
    df = BudgetPlanner(0.05, 0.05, budgets=[200, 800], n_bootstrap=30, random_state=0).fit(
        np.zeros(300), c[:300], bad[:300].astype(int), c).plan()
    assert (df.loc[df["procedure"] == "tbal", "high"] == 0).all()
    # PAC may keep model labels on up to eps / 0.5 = 10% of the items: the whole set's error stays <= eps
    pac_rows = df[df["procedure"] == "pac"]
    assert (pac_rows["high"] <= 0.1).all() and (pac_rows["estimate"] > 0).any()
    perfect = np.zeros(3000, dtype=bool)
    df = BudgetPlanner(0.05, 0.05, budgets=[200, 800], n_bootstrap=30, random_state=0).fit(
        np.zeros(300), c[:300], perfect[:300].astype(int), c).plan()
    assert (df.loc[df["human_labels"] == 800, "estimate"] > 0.5).all()


def test_budget_for_target():
    rng = np.random.default_rng(6)
    c, w = _pool(1500, rng)
    p = BudgetPlanner(0.1, 0.05, budgets=[50, 100], n_bootstrap=20, random_state=0)
    p.fit(np.zeros(200), c[:200], w[:200].astype(int), c)
    df = p.plan(target_coverage=0.2)
    t = p.target_
    assert df.attrs["target"] is t and set(t) == {"tbal", "pac", "conformal"}
    for proc, r in t.items():
        if proc != "tbal":  # pac and conformal reach 20% on this pool; tbal may not (its bound is the dearest)
            assert r["budget"] is not None, proc
        if r["budget"] is None:
            assert r["best_coverage"] < 0.2
            continue
        assert r["best_coverage"] >= 0.2
        assert r["more_labels"] == max(0, r["budget"] - 200)
        assert r["budget_confident"] is None or r["budget_confident"] >= r["budget"]
    unreachable = p.budget_for(1.0)  # coverage 1 needs the whole pool auto-labeled: never below half the pool
    assert all(r["budget"] is None and r["best_coverage"] < 1 for r in unreachable.values())


def test_planner_input_errors():
    c = np.linspace(0.5, 1, 100)
    with pytest.raises(ParameterError, match="epsilon"):
        BudgetPlanner(0.0, 0.05).fit(np.zeros(50), c[:50], np.zeros(50), c)
    with pytest.raises(NotEnoughDataError, match="at least 20"):
        BudgetPlanner(0.1, 0.05).fit(np.zeros(5), c[:5], np.zeros(5), c)
    with pytest.raises(InputError, match="not below the pool size"):
        BudgetPlanner(0.1, 0.05, budgets=[100]).fit(np.zeros(50), c[:50], np.zeros(50), c)
    with pytest.raises(InputError, match=r"pool_conf\[3\]"):
        BudgetPlanner(0.1, 0.05).fit(np.zeros(50), c[:50], np.zeros(50), np.r_[c[:3], 1.5])
    with pytest.raises(InputError, match="procedures"):
        BudgetPlanner(0.1, 0.05, procedures=["tbal", "magic"]).fit(np.zeros(50), c[:50], np.zeros(50), c)


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def _write_predictions(path, n=600, n_labeled=150, seed=0):
    rng = np.random.default_rng(seed)
    c, w = _pool(n, rng)
    y = rng.choice(["cat", "dog"], n)
    pred = np.where(w, np.where(y == "cat", "dog", "cat"), y)
    label = np.where(np.arange(n) < n_labeled, y, "")
    df = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "prediction": pred, "confidence": c, "label": label})
    df.to_csv(path, index=False)
    return df


def _run(tmp_path, *extra, file=None):
    f = file or tmp_path / "p.csv"
    return main(["plan", "--predictions", str(f), "--epsilon", "0.1", "--delta", "0.05", "--seed", "0",
                 "--bootstrap", "20", "--out", str(tmp_path / "out"), *extra])


def test_cli_writes_outputs(tmp_path, capsys):
    _write_predictions(tmp_path / "p.csv")
    assert _run(tmp_path, "--budgets", "50,100", "--target-coverage", "0.2") == 0
    out = capsys.readouterr().out
    assert "pilot 150 human labels" in out
    for g in GUARANTEES.values():
        assert g in out
    assert "target coverage" in out and "not a guarantee" in out
    df = pd.read_csv(tmp_path / "out" / "plan.csv")
    assert sorted(df["human_labels"].unique()) == [50, 100] and len(df) == 6
    meta = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert meta["n_pool"] == 600 and meta["n_pilot"] == 150 and meta["target"]["tbal"]["target_coverage"] == 0.2
    assert len(meta["rows"]) == 6 and "prediction interval" in meta["interval"]
    assert (tmp_path / "out" / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_pilot_subsample_and_parquet(tmp_path, capsys):
    df = _write_predictions(tmp_path / "p.csv", n_labeled=600)
    df.to_parquet(tmp_path / "p.parquet")
    assert _run(tmp_path, "--pilot", "100", "--budgets", "50", file=tmp_path / "p.parquet") == 0
    assert "pilot 100 human labels" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mutate, extra, message",
    [
        (lambda d: d.drop(columns=["confidence"]), (), "missing column"),
        (lambda d: d.assign(confidence=d["confidence"].where(d.index != 3, 1.5)), (), "line 5.*outside"),
        (lambda d: d.assign(id=d["id"].where(d.index != 7, "i0")), (), "appears twice"),
        (lambda d: d.assign(label=""), (), "no row has a label"),
        (lambda d: d.assign(label=d["label"].where(d.index < 10, "")), (), "at least 20"),
        (lambda d: d, ("--pilot", "500"), "more than the 150 labeled rows"),
        (lambda d: d, ("--budgets", "50,abc"), "not an integer"),
        (lambda d: d, ("--budgets", "600"), "not below the 600 rows"),
        (lambda d: d, ("--target-coverage", "1.5"), "target-coverage"),
        (lambda d: d, ("--level", "1"), "--level"),
    ],
)
def test_cli_bad_input_exit_2(tmp_path, capsys, mutate, extra, message):
    df = _write_predictions(tmp_path / "p.csv")
    mutate(df).to_csv(tmp_path / "p.csv", index=False)
    assert _run(tmp_path, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("labelsieve: error:")
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "out" / "plan.csv").exists()


def test_cli_bad_epsilon_and_missing_file(tmp_path, capsys):
    _write_predictions(tmp_path / "p.csv")
    rc = main(["plan", "--predictions", str(tmp_path / "p.csv"), "--epsilon", "1.2", "--delta", "0.05",
               "--seed", "0", "--out", str(tmp_path / "out")])
    assert rc == 2 and "--epsilon must be in (0, 1)" in capsys.readouterr().err
    rc = main(["plan", "--predictions", str(tmp_path / "nope.csv"), "--epsilon", "0.1", "--delta", "0.05",
               "--seed", "0", "--out", str(tmp_path / "out")])
    assert rc == 2 and "no such file" in capsys.readouterr().err
