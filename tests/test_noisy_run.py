"""Issue #12 wiring: `labelsieve run --oracle crowd`, per-label p_wrong in run directories and project
exports, and the expected wrong-label count against its bound on held-out simulated runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from labelsieve.autolabel.crowd_oracle import CrowdOracle
from labelsieve.autolabel.noisy import expected_wrong_labels
from labelsieve.cli import main
from labelsieve.data import load_dataset
from labelsieve.runs import directory as rundir
from labelsieve.runs.project import find_or_create_run
from labelsieve.store.project import (
    BASIS_AUTO,
    BASIS_EXPERT,
    BASIS_NOISE,
    BASIS_POSTERIOR,
    BASIS_STATED,
    export_labels,
    init_project,
    wrong_label_summary,
)

CROWD = ["run", "--dataset", "breast-cancer", "--oracle", "crowd", "--budget", "300", "--rounds", "2",
         "--epsilon", "0.1", "--delta", "0.1", "--seed", "4", "--gold-size", "60", "--crowd-accuracy", "0.8,1.0",
         "--tau", "0.99", "--kappa", "5", "--no-progress"]


def _cli(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def crowd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("crowd") / "run"
    assert main(CROWD + ["--out", str(out)]) == 0
    return out


def test_crowd_run_spends_answers_and_certifies_against_the_truth(crowd_run):
    m = json.loads((crowd_run / "metrics.json").read_text())
    labels = pd.read_csv(crowd_run / "labels.csv")
    human = labels[labels.source == "human"]
    c = m["cost"]
    # the budget counts items; the oracle counts answers: between 1 and kappa per item
    assert len(human) == m["human_labels"] == 300
    assert 300 <= c["crowd_answers"] <= 5 * 300
    assert c["queries"] == pytest.approx(c["crowd_answers"] * 1.0)
    assert c["gold_set"] == pytest.approx(60 * m["crowd"]["labelers"] * 1.0 + 60 * 10.0)
    n_auto = m["n_auto_labeled"]
    assert c["cost_per_auto_label"] == (pytest.approx(c["queries"] / n_auto) if n_auto else None)
    assert c["expert_same_items"]["cost"] == pytest.approx(300 * 10.0)
    e = c["expert_same_cost"]
    assert e["items"] == int(c["queries"] // 10.0) and e["cost"] <= c["queries"]
    # delta: the accuracy share comes off TBAL's; the statement names the noise-aware bound
    assert m["delta_tbal"] == pytest.approx(0.1 - 0.01)
    assert "noise-aware" in m["bound_statement"] and "TRUE labels" in m["bound_statement"]
    assert (m["auto_label_error"] or 0.0) <= 0.1


def test_crowd_run_p_wrong_is_the_posterior_and_epsilon(crowd_run):
    labels = pd.read_csv(crowd_run / "labels.csv")
    assert set(labels.columns) >= {"p_wrong", "p_wrong_basis"}
    assert pd.read_parquet(crowd_run / "labels.parquet")["p_wrong"].tolist() == pytest.approx(labels.p_wrong.tolist())
    auto, human = labels[labels.source == "auto"], labels[labels.source == "human"]
    assert (auto.p_wrong == 0.1).all() and (auto.p_wrong_basis == rundir.BASIS_AUTO).all()
    # the same crowd, rebuilt from the stored configuration, gives the same conservative posteriors
    cfg = rundir.RunConfig.from_json(crowd_run / "config.json")
    oracle = rundir.build_crowd_oracle(cfg, load_dataset("breast-cancer", seed=cfg.seed))
    ids = human.id.to_numpy(dtype=object)
    codes = oracle.ask(ids).labels
    ds = load_dataset("breast-cancer")
    assert (np.asarray(ds.classes, dtype=object)[codes] == human.label.to_numpy()).all()
    np.testing.assert_allclose(human.p_wrong, 1 - oracle.label_confidence(ids), atol=1e-12)
    assert (human.p_wrong_basis == rundir.BASIS_CROWD).all()
    m = json.loads((crowd_run / "metrics.json").read_text())["wrong_labels"]
    assert m["expected"] == pytest.approx(labels.p_wrong.sum())
    assert m["upper"] == expected_wrong_labels(labels.p_wrong.to_numpy(), delta=0.1).upper
    truth = dict(zip(ds.ids, np.asarray(ds.classes)[ds.y], strict=True))
    assert m["realised"] == int((labels.label != labels.id.map(truth)).sum())


def test_simulated_noisy_run_gets_its_noise_rate_as_p_wrong(tmp_path, capsys):
    out = tmp_path / "noisy"
    rc, _, _ = _cli(["run", "--dataset", "breast-cancer", "--budget", "200", "--rounds", "2", "--noise", "0.1",
                     "--epsilon", "0.1", "--delta", "0.1", "--no-progress", "--out", str(out)], capsys)
    assert rc == 0
    labels = pd.read_csv(out / "labels.csv")
    human = labels[labels.source == "human"]
    assert (human.p_wrong == 0.1).all() and (human.p_wrong_basis == rundir.BASIS_NOISE).all()
    m = json.loads((out / "metrics.json").read_text())
    n_auto = int((labels.source == "auto").sum())
    assert m["wrong_labels"]["expected"] == pytest.approx(0.1 * 200 + 0.1 * n_auto)
    assert m["cost"]["total"] == pytest.approx(200 * 10.0)


def test_user_labeler_table(tmp_path, capsys):
    table = tmp_path / "labelers.csv"
    table.write_text("labeler,accuracy\nann,0.9\nbob,0.85\ncid,0.95\n")
    out = tmp_path / "t"
    rc, _, err = _cli(CROWD[:-1] + ["--kappa", "3", "--crowd-table", str(table), "--no-expert-comparison",
                                    "--out", str(out)], capsys)
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["crowd"]["labelers"] == 3 and "expert_same_cost" not in m["cost"]
    assert m["crowd"]["answers_per_item"] <= 3


@pytest.mark.parametrize("extra,match", [
    (["--crowd-accuracy", "0.9,0.5"], "The 'crowd_accuracy' parameter of labelsieve run"),
    (["--crowd-accuracy", "high"], "The 'crowd_accuracy' parameter of labelsieve run"),
    (["--delta-accuracy", "0.2"], "The 'delta_accuracy' parameter of labelsieve run must be < delta"),
    (["--tau", "0.3"], "The 'tau' parameter of CrowdOracle"),
    (["--kappa", "50"], "The 'kappa' parameter of CrowdOracle"),
    (["--crowd-strategy", "uncertainty", "--answers-per-item", "0.5"], "The 'answers_per_item' parameter"),
])
def test_bad_crowd_parameters_exit_2_before_writing(tmp_path, capsys, extra, match):
    out = tmp_path / "bad"
    rc, _, err = _cli(CROWD + extra + ["--out", str(out)], capsys)
    assert rc == 2 and match in err
    assert not (out / "config.json").exists()


@pytest.mark.parametrize("text,match", [
    ("labeler,acc\nann,0.9\n", "missing column"),
    ("labeler,accuracy\nann,0.9\nbob,1.5\n", "line 3, field 'accuracy': '1.5'"),
    ("labeler,accuracy\nann,0.9\nann,0.8\n", "line 3, field 'labeler': 'ann' appears twice"),
])
def test_bad_labeler_table_names_file_line_field(tmp_path, capsys, text, match):
    table = tmp_path / "labelers.csv"
    table.write_text(text)
    rc, _, err = _cli(CROWD + ["--crowd-table", str(table), "--out", str(tmp_path / "x")], capsys)
    assert rc == 2 and match in err and str(table) in err


def test_crowd_is_refused_for_projects(tmp_path, capsys):
    rc, _, err = _cli(["run", "--project", str(tmp_path), "--oracle", "crowd"], capsys)
    assert rc == 2 and "--oracle crowd is for run directories" in err


# ----------------------------------------------------------------------------- project exports
def _aggregate_events(items, codes, conf, key):
    return pd.DataFrame({"item": items, "code": codes, "source": "aggregate", "who": "gtx", "confidence": conf,
                         "key": [f"{key}:{i}" for i in items]})


def test_export_carries_p_wrong_in_every_format(tmp_path, capsys):
    p = init_project(tmp_path / "p", load_dataset("breast-cancer"))
    cfg = rundir.RunConfig(dataset="project", epsilon=0.07, oracle="simulated", noise=0.2)
    run_id, _ = find_or_create_run(p, cfg)
    p.store.append_events([
        {"item": 0, "code": 1, "source": "import", "who": "import", "confidence": 0.9, "key": "a"},
        {"item": 1, "code": 0, "source": "import", "who": "import", "key": "b"},
        {"item": 2, "code": 1, "source": "auto", "who": "logreg", "confidence": 0.99, "round": 1, "run_id": run_id,
         "key": "c"},
        {"item": 3, "code": 1, "source": "human", "who": "simulated-oracle", "round": 0, "run_id": run_id, "key": "d"},
    ])
    p.store.append_events(_aggregate_events([4], [0], [0.8], "agg"))
    want_p = [0.1, 0.0, 0.07, 0.2, 0.2]
    want_basis = [BASIS_STATED, BASIS_EXPERT, BASIS_AUTO, BASIS_NOISE, BASIS_POSTERIOR]
    for fmt in ("csv", "parquet", "jsonl"):
        path = tmp_path / f"out.{fmt}"
        assert export_labels(p, fmt, path) == 5
        df = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path) if fmt == "parquet" else \
            pd.read_json(path, lines=True)
        assert df.p_wrong.tolist() == pytest.approx(want_p)
        assert df.p_wrong_basis.tolist() == want_basis
    export_labels(p, "manifest", tmp_path / "m.jsonl")
    meta = [json.loads(s)["label-metadata"] for s in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [m["labelsieve-p-wrong"] for m in meta] == pytest.approx(want_p)
    assert [m["labelsieve-p-wrong-basis"] for m in meta] == want_basis
    s = wrong_label_summary(p)
    assert s["expected"] == pytest.approx(sum(want_p))
    assert s["upper"] == expected_wrong_labels(np.array(want_p)).upper
    rc, out, _ = _cli(["export", str(tmp_path / "p"), "--out", str(tmp_path / "cli.csv")], capsys)
    assert rc == 0 and "wrong labels: 5 labels: expected wrong 0.6" in out


def test_export_wrong_label_count_within_its_bound_on_held_out_runs(tmp_path):
    """Held-out simulated runs through the export path: crowd labels (calibrated one-coin posteriors)
    plus auto-labels of a rule with error 0.04 <= epsilon = 0.05. The exported expected count is an
    upper estimate on average, and the realised count is <= the 0.9-quantile bound in >= 90% of runs."""
    ds = load_dataset("breast-cancer")
    p = init_project(tmp_path / "p", ds)
    run_id, _ = find_or_create_run(p, rundir.RunConfig(dataset="project", epsilon=0.05))
    crowd_items, auto_items = np.arange(300), np.arange(300, 500)
    delta, seeds = 0.1, 40
    counts, expected, uppers = [], [], []
    for s in range(seeds):
        o = CrowdOracle(ds, accuracy_range=(0.6, 0.8), tau=0.9, kappa=3, difficulty=0.0, confusion="uniform",
                        accuracy_source="true", conservative=False, random_state=s)
        ids = ds.ids[crowd_items]
        ans = o.ask(ids)
        lab, q = ans.labels, ans.p_correct
        p.store.append_events(_aggregate_events(crowd_items, lab, q, f"s{s}"))
        rng = np.random.default_rng(s)
        wrong = rng.random(len(auto_items)) < 0.04
        auto_codes = np.where(wrong, 1 - ds.y[auto_items], ds.y[auto_items])
        p.store.append_events(pd.DataFrame({"item": auto_items, "code": auto_codes, "source": "auto", "who": "m",
                                            "run_id": run_id, "key": [f"s{s}:auto:{i}" for i in auto_items]}))
        path = tmp_path / "out.parquet"
        export_labels(p, "parquet", path)
        df = pd.read_parquet(path)
        truth = np.asarray(ds.classes, dtype=object)[ds.y[df.id.map({i: k for k, i in enumerate(ds.ids)})]]
        summary = wrong_label_summary(p, delta=delta)
        assert summary["expected"] == pytest.approx(df.p_wrong.sum())
        counts.append(int((df.label.to_numpy() != truth).sum()))
        expected.append(summary["expected"])
        uppers.append(summary["upper"])
    counts, expected, uppers = map(np.array, (counts, expected, uppers))
    held = (counts <= uppers).mean()
    # held-out coverage of the bound: >= 1 - delta up to binomial slack over the seeds
    assert held >= 1 - delta - 2.5 * math.sqrt(delta * (1 - delta) / seeds)
    # expected is an upper estimate: the auto part counts at epsilon (10 per run) where the truth is 0.04
    assert counts.mean() <= expected.mean() + 2 * stats.sem(counts)
    assert counts.mean() >= expected.mean() - 0.01 * 200 - 4 * stats.sem(counts) - 1


# ----------------------------------------------------------------------------- error_probability hook
def test_prediction_error_probability_and_the_certifier():
    from labelsieve.autolabel.noisy import certify_thresholds_noisy, error_probabilities, noisy_upper_bound

    rng = np.random.default_rng(3)
    n, k = 900, 3
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, 2)) + 2.0 * np.eye(k)[y][:, :2]
    from labelsieve.data.dataset import Dataset

    ds = Dataset(ids=[f"i{i}" for i in range(n)], X=X, classes=("a", "b", "c"), y=y, name="t")
    kw = {"accuracy_range": (0.6, 0.8), "tau": 0.95, "kappa": 3, "gold_size": 80, "difficulty": 0.0,
          "confusion": "uniform", "random_state": 1}
    cons, plain = CrowdOracle(ds, **kw), CrowdOracle(ds, conservative=False, **kw)
    ids = ds.ids[:400]
    got = cons.ask(ids)
    lab = got.labels
    assert (plain.ask(ids).labels == lab).all()
    good = rng.random(400) < 0.85
    pred = np.where(good, y[:400], rng.integers(0, k, 400))
    pe = cons.prediction_error_probability(ids, pred)
    agree = pred == lab
    # agrees: exactly 1 - label_confidence; disagrees: a bound below the certain error
    np.testing.assert_allclose(pe[agree], 1 - cons.label_confidence(ids)[agree], atol=1e-12)
    assert (pe[~agree] < 1).all()
    # the answers' posterior gives the same bound for any prediction
    np.testing.assert_array_equal(np.clip(1 - got.posterior[np.arange(400), pred], 0, 1), pe)
    # without the accuracy box the posteriors are exact: one minus the error probabilities of all
    # classes sums to one, and the box only makes each class less likely
    all_pe = np.stack([plain.prediction_error_probability(ids, np.full(400, c)) for c in range(k)], axis=1)
    np.testing.assert_allclose((1 - all_pe).sum(axis=1), 1.0, atol=1e-9)
    cons_pe = np.stack([cons.prediction_error_probability(ids, np.full(400, c)) for c in range(k)], axis=1)
    assert ((1 - cons_pe).sum(axis=1) <= 1 + 1e-9).all()
    # the certifier: error_probability replaces the label_confidence path; smaller p, lower threshold
    conf = np.where(pred == y[:400], 0.5 + 0.5 * rng.random(400), rng.random(400))
    q = cons.label_confidence(ids)
    by_conf = certify_thresholds_noisy(pred, conf, lab, n_classes=k, epsilon=0.4, label_confidence=q)
    same = certify_thresholds_noisy(pred, conf, lab, n_classes=k, epsilon=0.4,
                                    error_probability=error_probabilities(pred, lab, q, n_classes=k))
    hook = certify_thresholds_noisy(pred, conf, lab, n_classes=k, epsilon=0.4, error_probability=pe)
    assert np.array_equal(by_conf.thresholds, same.thresholds)
    assert (hook.thresholds <= by_conf.thresholds).all()
    ep = error_probabilities(pred, lab, q, n_classes=k)
    assert (pe <= ep + 1e-12).all()
    # fewer bounded true errors in the whole set (many disagreements no longer count as certain)
    assert noisy_upper_bound(pe, 0.05)[1] < noisy_upper_bound(ep, 0.05)[1]
    with pytest.raises(Exception, match="error_probability must have shape"):
        certify_thresholds_noisy(pred, conf, lab, n_classes=k, error_probability=pe[:3])


def test_tbal_passes_error_probability_to_a_custom_certifier():
    from labelsieve.autolabel.noisy import NoiseAwareCertifier
    from labelsieve.autolabel.tbal import TBAL
    from labelsieve.data.dataset import Dataset
    from labelsieve.models import make_model

    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    ds = Dataset(ids=[f"g{i}" for i in range(n)], X=rng.normal(size=(n, 2)) + 2.5 * y[:, None], classes=("a", "b"),
                 y=y, name="g")
    oracle = CrowdOracle(ds, accuracy_range=(0.7, 0.9), tau=0.99, kappa=5, gold_size=100, difficulty=0.0,
                         confusion="uniform", random_state=0)
    seen = []

    def spy(pred, conf, given, **kw):
        seen.append((pred, given, kw))
        return NoiseAwareCertifier()(pred, conf, given, **kw)

    TBAL(model=make_model("logreg", n_classes=2, random_state=0), budget=200, rounds=2, delta_schedule="uniform",
         certifier=spy, random_state=0).run(ds, oracle)
    assert len(seen) == 2
    for pred, given, kw in seen:
        pe, q = kw["error_probability"], kw["label_confidence"]
        np.testing.assert_allclose(pe[pred == given], 1 - q[pred == given], atol=1e-12)
        assert (pe[pred != given] < 1).all()
