"""PAC labeling (issue 18): bounds, threshold scan, validity over seeds, the class and ``labelsieve pac``."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from labelsieve.cli import main
from labelsieve.errors import InputError, ParameterError
from labelsieve.guarantees.pac import (
    PACLabeler,
    betting_rejects,
    betting_upper,
    candidate_columns,
    clt_upper,
    draw_audit,
    ipw_losses,
    ipw_range,
    pac_losses,
    pac_sampling_probs,
    pac_threshold,
)

# ---------------------------------------------------------------------------------------------
# a slow, loop-by-loop betting bound written from WSR's definitions (the reference's shape)
# ---------------------------------------------------------------------------------------------


def slow_betting_accepts(x: np.ndarray, m: float, alpha: float, c: float = 0.75) -> bool:
    """True if the one-sided capital never reaches 1/alpha at mean m (x already in [0, 1])."""
    k = len(x)
    s_sum, sq_sum, s2_prev, capital = 0.0, 0.0, 0.25, 1.0
    for t in range(1, k + 1):
        lam = min(math.sqrt(2 * math.log(2 / alpha) / (k * s2_prev)), c / (1 - m))
        capital *= 1 - lam * (x[t - 1] - m)
        if capital >= 1 / alpha:
            return False
        s_sum += x[t - 1]
        mu = (0.5 + s_sum) / (1 + t)
        sq_sum += (x[t - 1] - mu) ** 2
        s2_prev = (0.25 + sq_sum) / (1 + t)
    return True


def slow_betting_upper(x: np.ndarray, alpha: float, grid: np.ndarray) -> float:
    """Largest accepted grid value, one grid value at a time."""
    acc = [m for m in grid if slow_betting_accepts(x, m, alpha)]
    return max(acc) if acc else float(grid[1])


GRID = np.linspace(1e-3, 1 - 1e-3, 999)


# ---------------------------------------------------------------------------------------------
# hand-computed values
# ---------------------------------------------------------------------------------------------


def test_ipw_losses_and_range_by_hand():
    z = ipw_losses(np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.25, 0.25]), 3)
    np.testing.assert_allclose(z, [1 / 1.5, 0.0, 1 / 0.75])
    assert ipw_range(np.array([0.5, 0.25, 0.25])) == pytest.approx(1 / 0.75)
    assert ipw_range(np.full(4, 0.25)) == pytest.approx(1.0)


def test_sampling_probs_by_hand():
    pi = pac_sampling_probs(np.array([0.0, 1.0, 3.0]), "uncertainty", mix=0.4)
    np.testing.assert_allclose(pi, [0.4 / 3, 0.6 / 4 + 0.4 / 3, 0.6 * 3 / 4 + 0.4 / 3])
    np.testing.assert_allclose(pac_sampling_probs(np.ones(4)), 0.25)
    np.testing.assert_allclose(pac_sampling_probs(np.zeros(3), "uncertainty"), 1 / 3)  # no signal: uniform
    user = pac_sampling_probs(np.zeros(2), np.array([1.0, 0.0]), mix=0.5)
    np.testing.assert_allclose(user, [0.75, 0.25])
    with pytest.raises(InputError, match="item 1"):
        pac_sampling_probs(np.zeros(2), np.array([1.0, -1.0]))


def test_unbiased_ipw_mean_exactly():
    """E[Z(u)] = sum_i pi_i Z_i(u) equals L(u) for any pi (the estimator's definition)."""
    rng = np.random.default_rng(3)
    u = rng.random(50)
    loss = (rng.random(50) < 0.3).astype(float)
    pi = pac_sampling_probs(u, "uncertainty", mix=0.2)
    z = ipw_losses(loss, pi, 50)
    for t in (0.2, 0.5, 0.9):
        assert np.sum(pi * z * (u <= t)) == pytest.approx(np.mean(loss * (u <= t)))


def test_clt_upper_by_hand():
    # mean 0.5, sd sqrt(1/3), z_0.95 = 1.644854
    assert clt_upper(np.array([0.0, 1.0, 0.0, 1.0]), 0.05) == pytest.approx(0.5 + 1.644854 * math.sqrt(1 / 3) / 2)
    assert clt_upper(np.zeros(10), 0.05) == 0.0


def test_betting_upper_one_sample_by_hand():
    # one draw y = 0: lambda_1 = sqrt(2 log 4 / 0.25) = 3.33 is capped at 0.75 / (1 - m), the capital
    # 1 + 0.75 m / (1 - m) reaches 1 / alpha = 2 at m = 4/7
    assert betting_upper(np.array([0.0]), 0.5) == pytest.approx(4 / 7, abs=1e-12)
    # in other units the bound scales
    assert betting_upper(np.array([0.0]), 0.5, upper=3.0) == pytest.approx(12 / 7, abs=1e-11)


def test_betting_bound_zero_column_needs_enough_draws():
    # all-zero draws: the per-step gain is log(1 + 0.75 m / (1 - m)); with m = 0.05, it takes
    # ceil(log(20) / log(1 + 0.75 * 0.05 / 0.95)) = 78 draws to certify the mean below 0.05
    need = math.ceil(math.log(20) / math.log(1 + 0.75 * 0.05 / 0.95))
    assert need == 78
    assert not betting_rejects(np.zeros(need - 1), 0.05, 0.05)
    assert betting_rejects(np.zeros(need), 0.05, 0.05)


# ---------------------------------------------------------------------------------------------
# vectorised = loop
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 60),
    rate=st.floats(0.0, 1.0),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
    seed=st.integers(0, 10_000),
)
def test_betting_upper_equals_loop(k, rate, alpha, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random(k) < rate) * rng.random(k)
    slow = slow_betting_upper(x, alpha, GRID)
    assert betting_upper(x, alpha, grid=GRID) == slow
    cont = betting_upper(x, alpha)  # the exact sup lies between the last accepted and the next grid value
    step = GRID[1] - GRID[0]
    assert slow - 1e-12 <= cont <= slow + step + 1e-12 or (slow == GRID[-1] and cont >= slow)
    for m in (0.05, 0.3):
        assert bool(betting_rejects(x, m, alpha)) == (not slow_betting_accepts(x, m, alpha))


def test_betting_columns_are_independent_and_blocked(monkeypatch):
    from labelsieve.guarantees import pac

    rng = np.random.default_rng(0)
    x = (rng.random((80, 7)) < 0.2) * rng.random((80, 7))
    one_by_one = np.array([betting_upper(x[:, j], 0.05) for j in range(7)])
    monkeypatch.setattr(pac, "BLOCK_ELEMENTS", 100)  # 1 column per block
    np.testing.assert_allclose(betting_upper(x, 0.05), one_by_one, rtol=0, atol=1e-14)


def _slow_scan(u, idx, losses, pi, epsilon, alpha, bound):
    """Fixed-sequence scan over every distinct *pool* value, one candidate at a time."""
    n = len(u)
    z = ipw_losses(losses, pi[idx], n)
    b = ipw_range(pi)
    best = -np.inf
    for t in np.unique(u):
        col = z * (u[idx] <= t)
        ok = clt_upper(col, alpha) <= epsilon if bound == "clt" else betting_rejects(col, epsilon, alpha, upper=b)
        if not ok:
            break
        best = t
    return best


@pytest.mark.parametrize("bound", ["betting", "clt"])
@pytest.mark.parametrize("prior", ["uniform", "uncertainty"])
def test_scan_over_audit_values_equals_scan_over_every_pool_value(bound, prior):
    rng = np.random.default_rng(1)
    for rep in range(6):
        n = 400
        u = np.round(rng.random(n), 2)  # ties on purpose
        loss = (rng.random(n) < 0.6 * u).astype(float)
        pi = pac_sampling_probs(u, prior)
        idx = draw_audit(pi, 150, rep)
        fast = pac_threshold(u, idx, loss[idx], pi, epsilon=0.1, alpha=0.1, bound=bound)
        assert fast.threshold == _slow_scan(u, idx, loss[idx], pi, 0.1, 0.1, bound)


def test_scan_stops_at_first_failure_even_if_later_candidates_pass():
    """The fixed-sequence rule: a later passing candidate must not be taken after a failure."""
    u = np.arange(10) / 10.0
    pi = pac_sampling_probs(u)
    idx = np.repeat(np.arange(10), 30)  # 300 draws, every item 30 times, fixed order
    rng = np.random.default_rng(0)
    idx = idx[rng.permutation(300)]
    loss = np.zeros(10)
    loss[1] = 1.0  # the second-lowest uncertainty is wrong: L jumps to 0.1 > epsilon at u = 0.1
    r = pac_threshold(u, idx, loss[idx], pi, epsilon=0.05, alpha=0.05, bound="clt")
    assert r.threshold == 0.0 and r.stopped_at == pytest.approx(0.1)
    assert r.passed.tolist() == [True, True, False]


def test_max_candidates_grid_is_coarser_but_fixed():
    rng = np.random.default_rng(2)
    n = 5000
    u = rng.random(n)
    loss = (rng.random(n) < u * 0.4).astype(float)
    pi = pac_sampling_probs(u)
    idx = draw_audit(pi, 1000, 0)
    exact = pac_threshold(u, idx, loss[idx], pi, epsilon=0.05, alpha=0.05)
    coarse = pac_threshold(u, idx, loss[idx], pi, epsilon=0.05, alpha=0.05, max_candidates=50)
    grid = np.unique(np.quantile(u, np.linspace(0, 1, 50), method="inverted_cdf"))
    assert coarse.threshold in grid
    assert coarse.threshold <= exact.threshold  # no exact pool value between passes that the grid skipped
    assert coarse.n_candidates == len(grid) + 1


# ---------------------------------------------------------------------------------------------
# the class
# ---------------------------------------------------------------------------------------------


def _calibrated(n, seed, k=4):
    rng = np.random.default_rng(seed)
    conf = np.clip(rng.beta(5, 1.2, n), 1 / k, 1)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < conf, y, (y + 1 + rng.integers(0, k - 1, n)) % k)
    return conf, y, pred


def test_labeler_calls_oracle_twice_and_labels_are_consistent():
    conf, y, pred = _calibrated(1500, 0)
    calls = []

    def oracle(idx):
        calls.append(np.asarray(idx).copy())
        return y[idx]

    lab = PACLabeler(epsilon=0.05, audit=400, random_state=3).fit(pred, 1 - conf, oracle)
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[0], np.unique(lab.audit_idx_))
    np.testing.assert_array_equal(calls[1], np.flatnonzero(lab.routed_mask_))
    u = 1 - conf
    np.testing.assert_array_equal(lab.routed_mask_, (u > lab.threshold_) & ~lab.audited_mask_)
    np.testing.assert_array_equal(lab.labels_[~lab.auto_mask_], y[~lab.auto_mask_])
    np.testing.assert_array_equal(lab.labels_[lab.auto_mask_], pred[lab.auto_mask_])
    assert lab.auto_mask_.sum() + lab.certificate_.human_labels == 1500
    assert (u[lab.auto_mask_] <= lab.threshold_).all()
    assert lab.certificate_.guaranteed and lab.certificate_.guarantee == "dataset"
    assert "with probability >= 0.95" in lab.certificate_.statement()
    assert lab.result_.error_bound <= 0.05


def test_labeler_parameter_errors():
    conf, y, pred = _calibrated(100, 0)
    for kw, match in [({"epsilon": 1.5}, "epsilon"), ({"alpha": 0.0}, "alpha"), ({"audit": 101}, "audit"),
                      ({"loss": "hinge"}, "loss"), ({"bound": "hoeffding"}, "bound"),
                      ({"loss": "squared"}, "loss_bound"), ({"prior": "loss"}, "prior")]:
        with pytest.raises(ParameterError, match=match):
            PACLabeler(**{"audit": 50, **kw}).fit(pred, 1 - conf, lambda i: y[i])


def test_squared_loss_clips_and_says_so():
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.normal(size=n)
    pred = y + rng.normal(scale=0.1, size=n)
    pred[:5] += 10  # five wild predictions
    u = np.abs(pred - y) + rng.random(n) * 0.01
    lab = PACLabeler(epsilon=0.05, audit=1000, loss="squared", loss_bound=4.0, random_state=0)
    lab.fit(pred, u, lambda i: y[i])
    assert pac_losses(np.array([0.0]), np.array([3.0]), "squared", loss_bound=4.0).tolist() == [4.0]
    # the loss bound was wrong for the wild items: the statement says the guarantee is on the clipped
    # loss, which holds, while the true MSE (one wild item auto-labeled) does not
    assert lab.n_clipped_ > 0 and "clipped at 4" in lab.certificate_.statement()
    d2 = (lab.labels_ - y) ** 2
    assert np.mean(np.minimum(d2, 4.0)) <= 0.05
    assert np.mean(d2) > 0.05


# ---------------------------------------------------------------------------------------------
# validity over seeds (binomial test) and the negative control
# ---------------------------------------------------------------------------------------------

SEEDS = 200
ALPHA = 0.05


def _binomial_ok(fails: int, seeds: int = SEEDS, alpha: float = ALPHA, level: float = 0.001) -> bool:
    """Reject validity only if this many failures is implausible under P(fail) = alpha."""
    return binom.sf(fails - 1, seeds, alpha) >= level


@pytest.mark.parametrize("bound", ["betting", "clt"])
@pytest.mark.parametrize("prior", ["uniform", "uncertainty"])
def test_validity_known_posterior(bound, prior):
    """Fixed data (model 20% wrong, calibrated confidences); over audit seeds the data-set error
    exceeds epsilon in at most alpha of seeds."""
    conf, y, pred = _calibrated(1000, 7)
    assert np.mean(pred != y) > 0.15  # auto-labeling everything would fail: the threshold matters
    fails = saved = 0
    for s in range(SEEDS):
        lab = PACLabeler(epsilon=0.05, alpha=ALPHA, audit=300, prior=prior, bound=bound, random_state=s)
        lab.fit(pred, 1 - conf, lambda i: y[i])
        fails += np.mean(lab.labels_ != y) > 0.05
        saved += lab.auto_mask_.mean()
    assert _binomial_ok(fails), f"{fails}/{SEEDS} seeds exceed epsilon"
    assert saved / SEEDS > 0.1  # and it is not valid by auto-labeling nothing


def _overconfident(n, seed):
    """Reported confidence 0.97-1.0 on 70% of items whose true accuracy is 0.88."""
    rng = np.random.default_rng(seed)
    hi = rng.random(n) < 0.7
    conf = np.where(hi, rng.uniform(0.97, 1.0, n), rng.uniform(0.5, 0.9, n))
    p_true = np.where(hi, 0.88, conf - 0.2)
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < p_true, y, (y + 1) % 3)
    return conf, y, pred


def test_negative_control_naive_rule_fails_pac_does_not():
    naive_fails = pac_fails = 0
    for s in range(SEEDS // 4):
        conf, y, pred = _overconfident(1000, s)
        auto = conf >= 1 - 0.05  # the naive rule: trust confidence >= 1 - epsilon, humans do the rest
        naive_fails += np.mean(np.where(auto, pred, y) != y) > 0.05
        lab = PACLabeler(epsilon=0.05, audit=300, random_state=s).fit(pred, 1 - conf, lambda i, y=y: y[i])
        pac_fails += np.mean(lab.labels_ != y) > 0.05
    assert naive_fails >= 0.9 * (SEEDS // 4)
    assert _binomial_ok(pac_fails, SEEDS // 4)


# ---------------------------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------------------------


def _write_predictions(path, n=600, seed=0, with_label=True, **over):
    conf, y, pred = _calibrated(n, seed, k=3)
    names = np.array(["cat", "dog", "eel"])
    df = pd.DataFrame({"id": [f"i{j}" for j in range(n)], "prediction": names[pred], "confidence": conf})
    if with_label:
        df["label"] = names[y]
    for col, (row, value) in over.items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    if str(path).endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return df


def _args(pred, out, *extra, audit="200"):
    return ["pac", "--predictions", str(pred), "--epsilon", "0.05", "--delta", "0.05", "--audit", audit,
            "--seed", "0", "--out", str(out), *extra]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_metrics_consistent_with_labels(tmp_path, capsys, suffix):
    pred = tmp_path / f"p{suffix}"
    df = _write_predictions(pred)
    assert main(_args(pred, tmp_path / "out")) == 0
    labels = pd.read_csv(tmp_path / "out" / "labels.csv", dtype=str, keep_default_na=False)
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(labels.columns) == ["id", "label", "source", "role"]
    assert labels["id"].tolist() == df["id"].tolist()
    human = labels["role"].isin(["audit", "routed"])
    assert (labels["source"] == np.where(human, "human", "auto")).all()
    assert m["human_labels"] == int(human.sum()) == m["audited"] + m["routed"]
    assert m["saved_fraction"] == pytest.approx((labels["role"] == "auto").sum() / len(df))
    assert m["dataset_error"] == pytest.approx(np.mean(labels["label"].to_numpy() != df["label"].to_numpy()))
    auto = labels["role"] == "auto"
    assert (labels.loc[auto, "label"] == df.loc[auto, "prediction"]).all()
    assert (labels.loc[human, "label"] == df.loc[human, "label"]).all()
    assert (1 - df.loc[auto, "confidence"] <= m["threshold"]).all()
    for key in ("n", "threshold", "epsilon", "delta", "bound", "guaranteed", "seed", "statement"):
        assert key in m
    assert m["n"] == 600 and m["guaranteed"] is True and m["seed"] == 0
    assert "saved fraction" in capsys.readouterr().out


def test_cli_resume_with_answers_matches_simulated(tmp_path, capsys):
    with_label = tmp_path / "p.csv"
    truth = _write_predictions(with_label).set_index("id")["label"]
    without = tmp_path / "q.csv"
    _write_predictions(without, with_label=False)
    assert main(_args(with_label, tmp_path / "sim")) == 0
    out = tmp_path / "hum"
    assert main(_args(without, out)) == 0
    assert "request-001.csv" in capsys.readouterr().out
    assert not (out / "metrics.json").exists()
    for q in (1, 2):
        asked = pd.read_csv(out / "queries" / f"request-00{q}.csv", dtype=str)["id"]
        ans = tmp_path / f"a{q}.csv"
        pd.DataFrame({"id": asked, "label": truth.loc[asked].to_numpy()}).to_csv(ans, index=False)
        assert main(_args(without, out, "--answers", str(ans))) == 0
        if q == 1:
            assert "request-002.csv" in capsys.readouterr().out
    assert (out / "labels.csv").read_text() == (tmp_path / "sim" / "labels.csv").read_text()
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset_error"] is None
    # a changed setting on the same directory is refused
    assert main(["pac", "--predictions", str(without), "--epsilon", "0.1", "--delta", "0.05", "--audit", "200",
                 "--seed", "0", "--out", str(out)]) == 2
    assert "epsilon" in capsys.readouterr().err


@pytest.mark.parametrize(
    "over, flags, match",
    [
        ({}, {"--epsilon": "1.5"}, "--epsilon must be in"),
        ({}, {"--delta": "0"}, "--delta must be in"),
        ({}, {"--audit": "601"}, "--audit 601 is more than the 600 items"),
        ({"confidence": (7, 1.5)}, {}, r"line 9 \(id 'i7'\), column 'confidence': 1.5 is outside \[0, 1\]"),
        ({"confidence": (3, "")}, {}, r"line 5 \(id 'i3'\), column 'confidence': '' is not a finite number"),
        ({"confidence": (4, "nan")}, {}, r"line 6 .*column 'confidence': 'nan' is not a finite number"),
        ({"confidence": (2, "high")}, {}, r"line 4 .*column 'confidence': 'high'"),
        ({"id": (5, "i1")}, {}, r"line 7, column 'id': 'i1' appears twice \(first at .*line 3\)"),
        ({"label": (9, "")}, {}, r"line 11 .*column 'label': empty label"),
        ({"prediction": (0, "")}, {}, r"line 2 .*column 'prediction': empty prediction"),
        ({}, {"--loss": "squared"}, r"line 2 \(id 'i0'\), column 'prediction': 'cat' is not a number"),
    ],
)
def test_cli_bad_input_exit_2_names_the_place(tmp_path, capsys, over, flags, match):
    import re

    pred = tmp_path / "p.csv"
    _write_predictions(pred, **over)
    args = _args(pred, tmp_path / "out")
    for flag, value in flags.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(match, err), err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_missing_column_and_missing_file(tmp_path, capsys):
    pred = tmp_path / "p.csv"
    pd.DataFrame({"id": ["a"], "prediction": ["x"]}).to_csv(pred, index=False)
    assert main(_args(pred, tmp_path / "o", audit="1")) == 2
    assert "missing column(s) ['confidence']" in capsys.readouterr().err
    assert main(_args(tmp_path / "nope.csv", tmp_path / "o", audit="1")) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_bad_answers_file(tmp_path, capsys):
    pred = tmp_path / "q.csv"
    _write_predictions(pred, with_label=False)
    out = tmp_path / "o"
    assert main(_args(pred, out)) == 0
    ans = tmp_path / "a.csv"
    pd.DataFrame({"id": ["i0", "zzz"], "label": ["cat", "dog"]}).to_csv(ans, index=False)
    assert main(_args(pred, out, "--answers", str(ans))) == 2
    assert "line 3, id 'zzz': id not in the predictions file" in capsys.readouterr().err


def test_cli_squared_loss(tmp_path):
    rng = np.random.default_rng(0)
    n = 500
    y = rng.normal(size=n)
    p = y + rng.normal(scale=0.1, size=n)
    err = np.abs(p - y)
    conf = 1 - err / err.max()
    pd.DataFrame({"id": range(n), "prediction": p, "confidence": conf, "label": y}).to_csv(tmp_path / "r.csv", index=False)
    args = _args(tmp_path / "r.csv", tmp_path / "o", "--loss", "squared", "--loss-bound", "4", audit="300")
    assert main(args[:-2]) == 2  # no --loss-bound
    assert main(args) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    lab = pd.read_csv(tmp_path / "o" / "labels.csv")
    assert m["dataset_error"] == pytest.approx(np.mean((lab["label"].to_numpy() - y) ** 2))
    assert m["dataset_error"] <= 0.05


def test_candidate_columns_shape():
    z = np.array([1.0, 2.0, 3.0])
    cols = candidate_columns(z, np.array([0.1, 0.5, 0.9]), np.array([-np.inf, 0.5, 1.0]))
    np.testing.assert_array_equal(cols, [[0, 1, 1], [0, 2, 2], [0, 0, 3]])
