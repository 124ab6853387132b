"""``labelsieve aggregate`` and ``labelsieve bench gtx`` end to end."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from labelsieve.cli import main
from labelsieve.crowd import GTX, MajorityVote, accuracies_from_estimate, estimate_accuracies
from labelsieve.crowd.simulator import SimulatedCrowd


@pytest.fixture
def files(tmp_path):
    crowd = SimulatedCrowd.draw(120, accuracy_range=(0.6, 0.95), rng=np.random.default_rng(0))
    names = ["no", "yes"]
    rows = [(f"t{i}", f"w{w}", names[crowd.answers[i, w]]) for i in range(120) for w in crowd.order[i, : 1 + i % 4]]
    labels = pd.DataFrame(rows, columns=["task", "worker", "label"])
    gold = pd.DataFrame({"task": [f"t{i}" for i in range(60)], "label": [names[y] for y in crowd.truth[:60]]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    gold.to_csv(tmp_path / "gold.csv", index=False)
    return tmp_path, labels, gold


def test_aggregate_gtx_with_gold_matches_library(files):
    d, labels, gold = files
    rc = main(["aggregate", str(d / "labels.csv"), "--method", "gtx", "--gold", str(d / "gold.csv"),
               "--out", str(d / "out.csv")])
    assert rc == 0
    out = pd.read_csv(d / "out.csv", dtype={"label": str})
    assert list(out.columns) == ["task", "label", "confidence", "n_labels"]
    assert len(out) == labels.task.nunique() and out.task.is_unique
    acc = accuracies_from_estimate(estimate_accuracies(labels, gold))
    ref = GTX(accuracies=acc).fit(labels)
    out = out.set_index("task")
    assert out["label"].tolist() == ref.labels_.loc[out.index].tolist()
    np.testing.assert_allclose(out["confidence"], ref.confidence_.loc[out.index])
    assert out["n_labels"].tolist() == [1 + int(t[1:]) % 4 for t in out.index]
    assert not list(d.glob(".out.csv*")), "no temporary file left behind"


def test_aggregate_mv_and_accuracies_file(files, tmp_path):
    d, labels, _ = files
    assert main(["aggregate", str(d / "labels.csv"), "--method", "mv", "--out", str(d / "mv.csv")]) == 0
    mv = pd.read_csv(d / "mv.csv").set_index("task")
    np.testing.assert_allclose(mv["confidence"], MajorityVote().fit(labels).confidence_.loc[mv.index])
    pd.DataFrame({"worker": [f"w{j}" for j in range(10)], "accuracy": 0.8}).to_csv(d / "acc.csv", index=False)
    for method in ("wmv", "sv", "gtx", "ds", "onecoin"):
        assert main(["aggregate", str(d / "labels.csv"), "--method", method, "--accuracies", str(d / "acc.csv"),
                     "--out", str(d / f"{method}.csv")]) == 0
        assert len(pd.read_csv(d / f"{method}.csv")) == 120


@pytest.mark.parametrize(
    ("labels_text", "extra", "match"),
    [
        ("task,worker,label\nt1,w1,yes\nt1,w1,no\n", [], r"labels.csv, line 3: task 't1' was already labeled"),
        ("task,worker,label\nt1,w1,yes\nt2,w1,\n", [], r"labels.csv, line 3: missing value in column 'label'"),
        ("task,worker\nt1,w1\n", [], r"labels.csv: missing required column\(s\) label"),
        ("task,worker,label\n", [], r"labels.csv: the table has no rows"),
        ("task,worker,label\nt1,w1,yes\nt2,w1,maybe\n", ["--classes", "yes,no"],
         r"labels.csv, line 3: label 'maybe' is not one of the declared classes"),
        ("task,worker,label\nt1,w1,yes\n", ["--method", "gtx"], r"--method gtx needs labeler accuracies"),
        ("task,worker,label\nt1,w1,yes\n", ["--method", "gtx", "--accuracies", "ACC"],
         r"acc.csv, line 3: accuracy '1.0' of worker 'w2' must be a number in \(0, 1\)"),
        ("task,worker,label\nt1,w1,yes\nt1,w3,no\n", ["--method", "gtx", "--accuracies", "ACCOK",
                                                     "--unknown-worker", "error"], r"worker 'w3' has no accuracy"),
        ("task,worker,label\nt1,w1,yes\n", ["--method", "gtx", "--gold", "GOLD"],
         r"gold.csv, line 3: task 't1' has a second gold label"),
    ],
)
def test_aggregate_errors_name_file_and_line(tmp_path, capsys, labels_text, extra, match):
    (tmp_path / "labels.csv").write_text(labels_text)
    (tmp_path / "acc.csv").write_text("worker,accuracy\nw1,0.9\nw2,1.0\n")
    (tmp_path / "acc_ok.csv").write_text("worker,accuracy\nw1,0.9\n")
    (tmp_path / "gold.csv").write_text("task,label\nt1,yes\nt1,no\n")
    paths = {"ACC": "acc.csv", "ACCOK": "acc_ok.csv", "GOLD": "gold.csv"}
    extra = [str(tmp_path / paths[e]) if e in paths else e for e in extra]
    if "--method" not in extra:
        extra = ["--method", "mv", *extra]
    rc = main(["aggregate", str(tmp_path / "labels.csv"), *extra, "--out", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
    assert not (tmp_path / "out.csv").exists()


def test_bench_gtx_tables_print_paper_values_and_save_figures(tmp_path, capsys):
    assert main(["bench", "gtx", "--table", "1", "--repeats", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "paper N" in out and "4517 ± 67" in out and "more_accurate" in out and "less_accurate" in out
    assert (tmp_path / "figure1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t1 = pd.read_csv(tmp_path / "table1_more_accurate.csv")
    assert list(t1.method) == ["MV", "WMV", "SV", "GTX"]
    assert main(["bench", "gtx", "--table", "2", "--repeats", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0.29 ± 0.07" in out  # the paper's GTX error, printed beside ours
    assert (tmp_path / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["bench", "gtx", "--table", "1", "--repeats", "0", "--out", str(tmp_path)]) == 2
