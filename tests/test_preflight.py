"""What ``run --project`` says before spending (issue 16, defect 11): the certifier's floor, and a
forecast from the human labels a project already holds (a pilot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelsieve.cli import main
from labelsieve.data import load_dataset
from labelsieve.runs.directory import RunConfig
from labelsieve.runs.preflight import MIN_PILOT_LABELS, budget_preflight, pilot_forecast
from labelsieve.runs.project import run_project, will_resume
from labelsieve.store.project import import_labels, init_project


def _project(tmp_path: Path, n_pilot: int, seed: int = 0):
    ds = load_dataset("digits")
    p = init_project(tmp_path / "p", ds)
    if n_pilot:
        pick = np.random.default_rng(seed).choice(len(ds), n_pilot, replace=False)
        pd.DataFrame({"id": np.asarray(ds.ids)[pick], "label": np.asarray(ds.classes)[ds.y[pick]]}).to_csv(
            tmp_path / "pilot.csv", index=False)
        import_labels(p, tmp_path / "pilot.csv")
    return p


def test_no_forecast_without_enough_human_labels(tmp_path):
    p = _project(tmp_path, MIN_PILOT_LABELS - 1)
    assert pilot_forecast(p, RunConfig(dataset="project", budget=400)) is None


def _dataset_run(p, seed=0):
    cfg = RunConfig(dataset="project", oracle="simulated", budget=400, epsilon=0.05, delta=0.05, seed=seed,
                    guarantee="dataset", audit=500)
    f = pilot_forecast(p, cfg)
    _, res = run_project(p, cfg, new=True)
    return f, res.metrics["saved_fraction"]


def test_dataset_forecast_with_a_pilot_as_large_as_the_budget_matches_the_run(tmp_path):
    """The forecast maps the run's spending (its TBAL budget, then K audit draws) onto the planner;
    with a pilot as large as the run's budget its model is as good as the run's, and the forecast
    lands on the share the run model-labels. (Reading the budget as the audit, it said 0.78 against
    a realised 0.53.)"""
    f, realised = _dataset_run(_project(tmp_path, 400))
    assert f is not None and f.procedure == "pac" and f.n_pilot == 400
    assert 0.0 <= f.low <= f.estimate <= f.high <= (1797 - 400) / 1797  # at most what is not TBAL-labeled
    assert abs(f.estimate - realised) <= 0.03


def test_forecast_from_a_small_pilot_is_conservative(tmp_path):
    f, realised = _dataset_run(_project(tmp_path, 150))
    assert f is not None and f.n_pilot == 150 and f.estimate <= realised and "conservative" in f.message
    cfg = RunConfig(dataset="project", oracle="simulated", budget=400, seed=0)
    g = pilot_forecast(_project(tmp_path / "b", 150), cfg)
    assert g is not None and g.procedure == "tbal" and g.estimate <= g.high


def test_subset_forecast_is_zero_when_the_budget_cannot_certify(tmp_path):
    p = _project(tmp_path, 150)
    cfg = RunConfig(dataset="project", budget=60, epsilon=0.01, delta=0.05)  # 24 validation labels, eps 1%
    assert not budget_preflight(cfg, 1797, 10).can_certify
    f = pilot_forecast(p, cfg)
    assert f is not None and f.procedure == "tbal" and f.high == 0.0


@pytest.mark.parametrize("guarantee", ["subset", "dataset"])
def test_run_project_prints_the_forecast_before_a_new_run_only(tmp_path, capsys, guarantee):
    p = _project(tmp_path, 100)
    argv = ["run", "--project", str(p.path), "--budget", "300", "--seed", "1", "--guarantee", guarantee,
            "--no-progress"]
    cfg_like = RunConfig(dataset="project", oracle="app", budget=300, seed=1, guarantee=guarantee)
    assert main(argv) == 0  # the app oracle queues the first round's items and stops
    err = capsys.readouterr().err
    assert "pilot of 100 human labels" in err
    assert ("whole-data-set" in err) == (guarantee == "dataset")
    assert will_resume(p, cfg_like)
    assert main(argv) == 0  # a resume: nothing new is forecast
    assert "pilot of" not in capsys.readouterr().err
