"""A project run killed (SIGKILL) at random points resumes with no label event lost or duplicated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from labelsieve.data import load_dataset
from labelsieve.store.project import Project, init_project

# simulated noise 0.02 travels with the answers into the certificate, where it leaves the subset guarantee
# nothing to certify at this budget; the whole-data-set guarantee labels every item, so the resumed run has
# auto-labels, audit and routed answers to lose or duplicate
RUN_ARGS = ["--oracle", "simulated", "--budget", "600", "--rounds", "5", "--seed", "3", "--noise", "0.02", "--epsilon", "0.1",
            "--guarantee", "dataset", "--audit", "300", "--no-progress"]
N_KILLS = 6


def _run(project_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "labelsieve", "project-run", str(project_dir), *RUN_ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _events(d: Path) -> list[tuple]:
    con = sqlite3.connect(d / "project.db")
    try:
        return con.execute("SELECT item, code, source, who, round, run_id, key FROM events ORDER BY item, source").fetchall()
    finally:
        con.close()


def test_killed_runs_resume_without_lost_or_duplicate_events(tmp_path: Path) -> None:
    ds = load_dataset("digits")
    ref, victim = tmp_path / "ref", tmp_path / "victim"
    init_project(ref, ds).close()
    init_project(victim, ds).close()

    t0 = time.perf_counter()
    p = _run(ref)
    _out, err = p.communicate(timeout=60)
    full = time.perf_counter() - t0
    assert p.returncode == 0, err.decode()
    reference = _events(ref)
    assert len(reference) > 600 and any(e[2] == "auto" for e in reference)  # 600 + audit/routed answers, auto-labels

    rng = np.random.default_rng(20240607)
    states = []
    for k in range(N_KILLS):
        p = _run(victim)
        if k % 2 == 0:  # at a random time (anywhere: start-up, training, inside a transaction)
            time.sleep(full * rng.uniform(0.3, 0.9))
        else:  # right after one or two more commits (human answers arrive in batches of 60)
            target = len(_events(victim)) + int(rng.integers(1, 120))
            while p.poll() is None and len(_events(victim)) < target:
                time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
        states.append((p.returncode, len(_events(victim))))
    print("kill states (returncode, events):", states, "full run", round(full, 2), "s")
    con = sqlite3.connect(victim / "project.db")
    finished = con.execute("SELECT COUNT(*) FROM runs WHERE status = 'complete'").fetchone()[0]
    con.close()
    if not finished:  # the last kill may have come after the end; otherwise resume to the end
        p = _run(victim)
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()

    killed_mid_run = [n for rc, n in states if rc == -signal.SIGKILL and 0 < n < len(reference)]
    assert killed_mid_run, f"no kill landed between the first and the last commit: {states}"
    got = _events(victim)
    keys = [e[6] for e in got]
    assert len(keys) == len(set(keys)), "duplicate events"
    assert sorted(got) == sorted(reference)  # nothing lost, nothing extra, same labels

    proj = Project(victim)
    cur, win = proj.store.current_labels(), proj.store.current_by_window()
    assert cur.equals(win)
    con = sqlite3.connect(victim / "project.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    status = con.execute("SELECT status, last_round FROM runs").fetchall()
    rounds = con.execute("SELECT COUNT(*) FROM run_rounds").fetchone()[0]
    con.close()
    assert status == [("complete", 5)] or status[0][0] == "complete"
    assert rounds == status[0][1]
