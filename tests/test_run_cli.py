"""`labelsieve run`: the contract outputs, the file oracle with --resume, crash recovery, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelsieve.autolabel.oracles import RecordingOracle
from labelsieve.cli import main
from labelsieve.data import load_dataset
from labelsieve.runs import directory as rundir

BASE = ["run", "--epsilon", "0.1", "--delta", "0.1", "--seed", "3", "--no-progress"]


def _run(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def _gauss_csv(path: Path, n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 3)) + 3.0 * y[:, None]
    df = pd.DataFrame(X, columns=["f1", "f2", "f3"])
    df.insert(0, "id", [f"item{i}" for i in range(n)])
    df["label"] = np.where(y == 1, "cat", "dog")
    df.to_csv(path, index=False)
    return df


def test_run_writes_contract_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    rc, stdout, _ = _run(BASE + ["--dataset", "breast-cancer", "--budget", "200", "--out", str(out)], capsys)
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("coverage", "auto_label_error", "error_bound", "human_labels", "epsilon", "delta", "seed"):
        assert key in m
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns[:3]) == ["id", "label", "source"]
    assert {"confidence", "round"} <= set(labels.columns)
    pq = pd.read_parquet(out / "labels.parquet")
    assert list(pq.columns) == list(labels.columns) and pq.id.tolist() == labels.id.tolist()
    assert (pq.source == labels.source).all() and np.allclose(pq.confidence, labels.confidence, equal_nan=True)
    n_auto = (labels.source == "auto").sum()
    assert m["coverage"] == pytest.approx(n_auto / 569)
    assert m["human_labels"] == (labels.source == "human").sum()
    assert m["epsilon"] == 0.1 and m["delta"] == 0.1 and m["seed"] == 3
    # the true error in metrics.json is the error of labels.csv against the embedded truth
    ds = load_dataset("breast-cancer")
    truth = dict(zip(ds.ids, np.asarray(ds.classes)[ds.y]))
    auto = labels[labels.source == "auto"]
    assert m["auto_label_error"] == pytest.approx((auto.label != auto.id.map(truth)).mean())
    assert "coverage" in stdout and "error bound" in stdout
    assert (out / "rounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".staging-*"))


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(BASE + ["--dataset", "breast-cancer", "--budget", "200", "--out", str(out)], capsys)[0] == 0
    before = (out / "labels.csv").read_bytes()
    rc, _, err = _run(BASE + ["--dataset", "breast-cancer", "--budget", "200", "--out", str(out)], capsys)
    assert rc == 2 and "already holds a run" in err
    assert (out / "labels.csv").read_bytes() == before


def test_file_oracle_resume_equals_simulated_run(tmp_path, capsys):
    csv = tmp_path / "pool.csv"
    df = _gauss_csv(csv)
    truth = dict(zip(df.id, df.label))
    sim = tmp_path / "sim"
    assert _run(BASE + ["--dataset", str(csv), "--budget", "150", "--out", str(sim)], capsys)[0] == 0
    out = tmp_path / "files"
    args = BASE + ["--dataset", str(csv), "--budget", "150", "--out", str(out), "--oracle", "file"]
    rc, stdout, _ = _run(args, capsys)
    for _ in range(20):  # answer each request as a human would, then resume
        assert rc == 0
        if (out / "metrics.json").exists():
            break
        assert "waiting for human labels" in stdout and not (out / "labels.csv").exists()
        pending = [
            q for q in sorted((out / "queries").glob("*.csv")) if not (out / "answers" / q.name).exists()
        ]
        assert len(pending) == 1
        ids = pd.read_csv(pending[0], dtype=str).id
        pd.DataFrame({"id": ids, "label": ids.map(truth)}).to_csv(
            out / "answers" / pending[0].name, index=False
        )
        rc, stdout, _ = _run(["run", "--resume", "--out", str(out), "--no-progress"], capsys)
    a = pd.read_csv(sim / "labels.csv")
    b = pd.read_csv(out / "labels.csv")
    pd.testing.assert_frame_equal(a, b)
    # round 0 is one request: the validation set and the seed set together
    first = set(pd.read_csv(out / "queries" / "request-001.csv", dtype=str).id)
    r0 = b[(b.source == "human") & (b["round"] == 0)]
    assert first == set(r0.id.astype(str)) and set(r0.role) == {"validation", "train"}
    rec = pd.read_csv(out / "state" / "answers.csv", dtype=str)
    assert rec.id.is_unique and len(rec) == json.loads((out / "metrics.json").read_text())["human_labels"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("id,label\n{0},cat\n{1},zebra\n", r"row 3 \(id '.*'\): unknown class 'zebra'"),
        ("id,label\n{0},cat\n", r"asked ids have no answer"),
        ("id,answer\n{0},cat\n", r"missing column\(s\) \['label'\]"),
        ("id,label\n{0},cat\n{0},dog\n", r"row 3: id '.*' answered twice"),
        ("id,label\n{0},cat\nnot-asked,dog\n", r"row 3: id 'not-asked' was not asked for"),
        ("id,label\n{0},\n", r"row 2 .* has an empty label"),
    ],
)
def test_malformed_answers_file_is_refused_and_nothing_changes(tmp_path, capsys, content, match):
    csv = tmp_path / "pool.csv"
    _gauss_csv(csv, n=200)
    out = tmp_path / "files"
    args = BASE + ["--dataset", str(csv), "--budget", "100", "--out", str(out), "--oracle", "file"]
    assert _run(args, capsys)[0] == 0
    q = out / "queries" / "request-001.csv"
    ids = pd.read_csv(q, dtype=str).id.tolist()
    (out / "answers" / q.name).write_text(content.format(*ids[:2]))
    snapshot = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    rc, _, err = _run(["run", "--resume", "--out", str(out), "--no-progress"], capsys)
    assert rc == 2
    assert str(out / "answers" / q.name) in err and len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == snapshot
    assert not (out / "state" / "answers.csv").exists()


def test_crash_mid_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    cfg = rundir.RunConfig(dataset="breast-cancer", epsilon=0.1, delta=0.1, budget=200, seed=1)
    ref = rundir.run_in_directory(cfg, tmp_path / "ref")
    calls = {"n": 0}
    real_ask = RecordingOracle.ask

    def crashing(self, ids):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process is killed between two rounds
        return real_ask(self, ids)

    monkeypatch.setattr(RecordingOracle, "ask", crashing)
    with pytest.raises(KeyboardInterrupt):
        rundir.run_in_directory(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()
    n_recorded = len(pd.read_csv(tmp_path / "run" / "state" / "answers.csv"))
    monkeypatch.setattr(RecordingOracle, "ask", real_ask)
    res = rundir.run_in_directory(None, tmp_path / "run", resume=True)
    pd.testing.assert_frame_equal(ref.labels, res.labels)
    rec = pd.read_csv(tmp_path / "run" / "state" / "answers.csv", dtype=str)
    assert rec.id.is_unique and len(rec) > n_recorded


@pytest.mark.parametrize(
    ("make", "extra", "match"),
    [
        (lambda p: p.write_text("id,f1,label\na,1.0,x\nb,nan,y\n"), [], r"row 1.*column|NaN|nan"),
        (lambda p: p.write_text("id,f1,label\na,1.0,x\nb,inf,y\n"), [], r"inf"),
        (lambda p: p.write_text("id,f1,label\na,1.0,x\na,2.0,y\n"), [], r"duplicate"),
        (lambda p: p.write_text("id,f1,label\n"), [], r"empty|0 rows|no rows"),
        (lambda p: None, [], r"does not exist|not found|No such"),
        (
            lambda p: p.write_text("id,f1,label\na,1.0,x\nb,2.0,y\nc,3.0,x\n"),
            ["--epsilon", "1.5"],
            r"'epsilon' parameter of TBAL must be in \(0, 1\)",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, make, extra, match):
    csv = tmp_path / "pool.csv"
    make(csv)
    out = tmp_path / "out"
    rc, _, err = _run(
        ["run", "--dataset", str(csv), "--budget", "2", "--out", str(out), "--no-progress"] + extra, capsys
    )
    assert rc == 2
    assert err.startswith("labelsieve: error:") and len(err.strip().splitlines()) == 1
    assert re.search(match, err, re.IGNORECASE), err
    assert not out.exists()


def test_per_class_reports_classes_without_threshold(tmp_path, capsys):
    out = tmp_path / "pc"
    rc, stdout, _ = _run(
        BASE + ["--dataset", "digits", "--budget", "100", "--scope", "per-class", "--out", str(out)], capsys
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    # 40 validation points over 10 classes cannot certify any class: each one says why
    assert len(m["no_threshold_reasons"]) == 10 and m["coverage"] == 0.0
    assert "no threshold for class" in stdout  # per-class scope names each class


def test_readme_commands_and_ci_agree():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text().splitlines()
    ci = (root / ".ci" / "run").read_text()
    blocks = [line for line in readme[:12] if line.startswith("pip install")]
    assert len(blocks) == 2 and "labelsieve run --dataset digits" in blocks[0]
    assert blocks[1] in ci  # CI runs exactly README's test command


def test_unlabeled_pool_runs_with_declared_classes_and_the_file_oracle(tmp_path, capsys):
    csv = tmp_path / "pool.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"id": [f"u{i}" for i in range(100)], "f1": rng.normal(size=100)}).to_csv(csv, index=False)
    out = tmp_path / "o"
    args = ["run", "--dataset", str(csv), "--oracle", "file", "--classes", "cat,dog", "--budget", "20"]
    rc, stdout, _ = _run(args + ["--out", str(out), "--no-progress"], capsys)
    assert rc == 0 and "waiting for human labels" in stdout
    ids = pd.read_csv(out / "queries" / "request-001.csv", dtype=str).id
    pd.DataFrame({"id": ids, "label": "zebra"}).to_csv(out / "answers" / "request-001.csv", index=False)
    rc, _, err = _run(["run", "--resume", "--out", str(out), "--no-progress"], capsys)
    assert rc == 2 and "unknown class 'zebra'" in err and "['cat', 'dog']" in err


def test_resume_refuses_flags_that_contradict_the_stored_run(tmp_path, capsys):
    out = tmp_path / "r"
    assert _run(BASE + ["--dataset", "breast-cancer", "--budget", "100", "--out", str(out)], capsys)[0] == 0
    before = (out / "metrics.json").read_bytes()
    rc, _, err = _run(["run", "--resume", "--out", str(out), "--epsilon", "0.2"], capsys)
    assert rc == 2 and "epsilon: stored 0.1, given 0.2" in err
    # the same values as stored are fine, and resuming a finished run reproduces it
    assert _run(["run", "--resume", "--out", str(out), "--epsilon", "0.1", "--no-progress"], capsys)[0] == 0
    assert (out / "metrics.json").read_bytes() == before


def test_simulated_label_noise_is_not_certified_as_clean(tmp_path, capsys):
    out = tmp_path / "n"
    assert _run(BASE + ["--dataset", "breast-cancer", "--budget", "200", "--noise", "0.1", "--out", str(out)], capsys)[0] == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "noise-aware" in m["bound_statement"]
    labels = pd.read_csv(out / "labels.csv")
    assert np.allclose(labels.loc[labels.source == "human", "p_wrong"], 0.1)
