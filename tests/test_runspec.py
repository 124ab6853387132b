"""One run spec (issue 17 item 2, issue 18 item 2): the flags of `run`, `run --project` and
`project-run` are generated from RunSpec, none is dropped, `--confidence` and `--guarantee dataset`
reach the run on both sinks, and the budget preflight says what a budget can buy (issue 16 #11)."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from labelsieve.cli import build_parser, main
from labelsieve.data import load_dataset
from labelsieve.runs.directory import build_tbal
from labelsieve.runs.preflight import budget_preflight
from labelsieve.runs.spec import RunSpec, spec_dict
from labelsieve.store.project import init_project


def _dests(cmd: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return {a.dest for a in sub.choices[cmd]._actions}


def test_every_spec_field_is_a_flag_of_both_commands():
    spec = {f.name for f in fields(RunSpec)} - {"dataset", "compare_expert"}
    assert spec <= _dests("run") and spec <= _dests("project-run")
    # and the engine flags, which a project run used to drop
    assert {"engine", "ray_address", "block_size"} <= _dests("project-run")


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("p") / "proj"
    init_project(d, load_dataset("breast-cancer"), embedder="hashing").close()
    return d


@pytest.mark.parametrize("flag, value", [("--labeler", "hashing"), ("--classes", "a,b"), ("--crowd-workers", "5"),
                                         ("--dataset", "digits"), ("--oracle", "crowd"), ("--tau", "0.9")])
def test_project_refuses_a_flag_it_cannot_honour_naming_it(project_dir, flag, value, capsys):
    # before: run --project dropped --labeler, --classes and --engine silently
    args = ["run", "--project", str(project_dir), flag, value, "--no-progress"]
    assert main(args if flag == "--oracle" else [*args, "--oracle", "simulated"]) == 2
    err = capsys.readouterr().err
    assert (flag if flag != "--oracle" else "--oracle crowd") in err and "error" in err


def test_dir_refuses_app_oracle_and_new(tmp_path, capsys):
    assert main(["run", "--dataset", "digits", "--out", str(tmp_path / "r"), "--oracle", "app"]) == 2
    assert "--oracle app needs --project" in capsys.readouterr().err
    assert main(["run", "--dataset", "digits", "--out", str(tmp_path / "r"), "--new"]) == 2
    assert "--new is for --project" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_confidence_flag_builds_the_registered_function(tmp_path, capsys):
    assert type(build_tbal(RunSpec(confidence="temperature"), 2, progress=False).confidence).__name__ == \
        "TemperatureScaling"
    assert build_tbal(RunSpec(), 2, progress=False).confidence is None  # softmax: TBAL's default, unchanged
    out = tmp_path / "r"
    assert main(["run", "--dataset", "breast-cancer", "--budget", "200", "--confidence", "histogram",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["confidence"] == "histogram"


def test_stored_spec_omits_new_fields_at_default():
    # a run stored before the new fields existed still matches (resume), outputs stay byte-identical
    d = spec_dict(RunSpec(dataset="x"))
    assert not {"confidence", "guarantee", "audit", "audit_prior", "pac_bound"} & set(d)
    assert spec_dict(RunSpec(dataset="x", guarantee="dataset"))["guarantee"] == "dataset"


def test_guarantee_dataset_on_a_run_directory(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--dataset", "digits", "--budget", "300", "--guarantee", "dataset", "--audit", "300",
                 "--epsilon", "0.05", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    lab = pd.read_csv(out / "labels.csv")
    ds = load_dataset("digits")
    assert len(lab) == len(ds) == m["n_items"] and set(lab["guarantee"]) == {"dataset"}
    assert m["guarantee"] == "dataset" and m["human_labels"] == int((lab.source == "human").sum())
    assert m["human_labels"] == 300 + int(lab.role.isin(["audit", "routed"]).sum())
    assert m["saved_fraction"] == pytest.approx((lab.source == "auto").mean())
    truth = dict(zip(ds.ids, np.asarray(ds.classes)[ds.y], strict=True))
    assert m["dataset_error"] == pytest.approx((lab.label.astype(str) != lab.id.map(truth).astype(str)).mean())
    hist = pd.read_csv(out / "history.csv")
    assert hist["n_auto_total"].iloc[-1] == (lab.source == "auto").sum()  # the PAC step is the last row


def test_guarantee_dataset_on_a_project_commits_every_label(tmp_path, capsys):
    d = tmp_path / "proj"
    init_project(d, load_dataset("breast-cancer"), embedder="hashing").close()
    assert main(["project-run", str(d), "--oracle", "simulated", "--budget", "120", "--guarantee", "dataset",
                 "--audit", "150", "--epsilon", "0.1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "before spending" in err and "--guarantee dataset" in err
    out = tmp_path / "e.csv"
    main(["export", str(d), "--out", str(out)])
    exp = pd.read_csv(out)
    assert len(exp) == 569  # every item labeled: human (TBAL, audit, routed) or auto
    assert set(exp["guarantee"]) == {"dataset"}  # the export says which guarantee each label came under
    assert main(["import", str(d), str(_one_label(tmp_path, exp))]) == 0  # a label outside any run
    main(["export", str(d), "--out", str(out)])
    exp2 = pd.read_csv(out).set_index("id")
    assert exp2.loc[exp.id.iloc[0], "guarantee"] == "none" and (exp2["guarantee"] == "dataset").sum() == 568


def _one_label(tmp_path, exp):
    f = tmp_path / "one.csv"
    pd.DataFrame({"id": [exp.id.iloc[0]], "label": [exp.label.iloc[0]]}).to_csv(f, index=False)
    return f


def _cp_floor(eps: float, delta: float) -> int:
    # Clopper-Pearson: 1 error in n certifies eps iff P(Bin(n, eps) <= 1) <= delta (exact binomial tail)
    from scipy.stats import binom

    return next(n for n in range(2, 10_000) if binom.cdf(1, n, eps) <= delta)


def test_preflight_matches_the_certifiers_floor():
    pre = budget_preflight(RunSpec(budget=400), 1797, 10)
    assert pre.min_validation == _cp_floor(0.05, 0.05)
    assert pre.n_validation == 160 and pre.can_certify
    pc = budget_preflight(RunSpec(budget=400, scope="per-class"), 1797, 10)
    assert pc.min_validation == _cp_floor(0.05, 0.005)  # delta / 10 classes
    assert pc.n_validation == 16 and not pc.can_certify and "--guarantee dataset" in pc.message
    assert pc.min_budget * 0.4 / 10 >= pc.min_validation > (pc.min_budget - 1) * 0.4 / 10


def test_preflight_floor_is_the_one_the_run_reports(tmp_path):
    # the same number the certifier names when it refuses: "at least N are needed"
    from labelsieve.runs.directory import run_in_directory

    spec = RunSpec(dataset="digits", budget=200, scope="per-class")
    res = run_in_directory(spec, tmp_path / "r")
    need = budget_preflight(spec, 1797, 10).min_validation
    assert all(f"at least {need} are needed" in why for why in res.metrics["no_threshold_reasons"].values())


def test_uncertified_rounds_show_a_dash_not_a_zero_bound(tmp_path):
    from labelsieve.runs.directory import run_in_directory, summary_table

    res = run_in_directory(RunSpec(dataset="digits", budget=200, scope="per-class"), tmp_path / "r")
    rows = [ln for ln in summary_table(res).splitlines() if ln[:5].strip().isdigit()]
    assert len(rows) == 5 and all(ln.split()[5] == "—" for ln in rows)
    assert "error bound         —" in summary_table(res)
