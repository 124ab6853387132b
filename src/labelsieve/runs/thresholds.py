"""The threshold page's store code: a run's coverage–bound curve and applying its certified threshold.

The curve comes from :func:`labelsieve.guarantees.curve.bound_curve` on the validation points the
run's last certifying round certified on (stored at commit time in ``run_evidence``), with the
run's bound, delta and scope; no bound is computed here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import sqlalchemy as sa

from labelsieve.errors import InputError
from labelsieve.guarantees.curve import bound_curve
from labelsieve.runs.project import load_evidence
from labelsieve.store import schema as S
from labelsieve.store.project import Project

ALL = "all"


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _curves(meta: dict[str, Any], a: dict[str, np.ndarray], scope: str) -> tuple[Any, list[Any]]:
    kw: dict[str, Any] = {}
    if meta.get("noise_aware"):
        kw = {"noise_aware": True, "label_share": meta["label_share"], "min_errors": meta["min_errors"],
              "label_confidence": a["val_label_confidence"] if meta.get("label_confidence") else None}
    return bound_curve(a["val_pred"], a["val_conf"], a["val_label"], n_classes=int(meta["n_classes"]),
                       epsilon=meta["epsilon"], delta=meta["delta"], bound=meta["bound"], scope=scope,
                       min_n=meta["min_n"], scan=meta["scan"], **kw)


def threshold_curve(project: Project, cls: str | None = None, run_id: int | None = None) -> dict[str, Any]:
    """The coverage–bound curve of one group (``cls``: a class name, or ``"all"`` for one global
    threshold; default: the run's own scope) with each position's pool count, and the certificate."""
    rid, meta, a = load_evidence(project, run_id)
    classes = list(project.classes)
    K = int(meta["n_classes"])
    if cls in (None, ""):
        cls = ALL if meta["scope"] == "global" else classes[0]
    if cls != ALL and cls not in classes:
        raise InputError(f"class must be {ALL!r} or one of the project's classes; got {str(cls)[:200]!r}")
    scope = "global" if cls == ALL else "per-class"
    cert, groups = _curves(meta, a, scope)
    k = 0 if cls == ALL else classes.index(cls)
    g = groups[k]
    in_group = np.ones(len(a["val_pred"]), bool) if cls == ALL else a["val_pred"] == k
    pool_conf = a["pool_conf"] if cls == ALL else a["pool_conf"][a["pool_pred"] == k]
    srt = np.sort(pool_conf)
    pool_count = len(srt) - np.searchsorted(srt, g.threshold, side="left")  # pool items with conf >= t
    sr = g.scan
    certified = None
    if np.isfinite(sr.threshold):
        certified = {"threshold": float(sr.threshold), "n": sr.n, "errors": sr.errors, "upper": float(sr.upper),
                     "pool_count": int(len(srt) - np.searchsorted(srt, sr.threshold, side="left")),
                     "index": int(np.flatnonzero(g.threshold == sr.threshold)[0])}
    n_val = int(in_group.sum())
    return {
        "run_id": rid, "round": int(meta["round"]), "class": cls, "classes": [ALL, *classes],
        "scope": scope, "run_scope": meta["scope"], "scope_of_run": scope == meta["scope"],
        "epsilon": meta["epsilon"], "delta": meta["delta"], "delta_per_test": cert.delta_per_test,
        "delta_bound": g.delta, "bound": cert.bound, "min_n": cert.min_n, "guaranteed": cert.guaranteed,
        "statement": cert.statement(), "n_validation": n_val, "n_validation_all": len(a["val_pred"]),
        "n_pool": len(srt), "n_pool_all": len(a["pool_conf"]), "k": K,
        "certified": certified, "reason": sr.reason,
        "curve": {"threshold": g.threshold.tolist(), "n": g.n.tolist(),
                  "coverage": (g.n / max(n_val, 1)).tolist(), "errors": g.errors.tolist(),
                  "error": (g.errors / np.maximum(g.n, 1)).tolist(), "upper": g.upper.tolist(),
                  "tested": g.tested.tolist(), "in_sequence": g.in_sequence.tolist(),
                  "pool_count": pool_count.tolist()},
    }


def certified_selection(project: Project, run_id: int | None = None) -> tuple[int, dict[str, Any], np.ndarray,
                                                                             np.ndarray, np.ndarray, np.ndarray]:
    """``(run_id, meta, thresholds, pool positions, predictions, confidences)`` of the pool items the
    run's certificate (its own scope) auto-labels."""
    rid, meta, a = load_evidence(project, run_id)
    cert, _ = _curves(meta, a, meta["scope"])
    acc = cert.accept(a["pool_pred"], a["pool_conf"])
    return rid, meta, cert.thresholds, a["pool_pos"][acc], a["pool_pred"][acc], a["pool_conf"][acc]


def apply_certified(project: Project, *, who: str, run_id: int | None = None) -> dict[str, Any]:
    """Record auto-label events at the run's certified thresholds as a new run (kind ``apply``).

    Items whose current label came from a human (vote aggregate, review, import, ...) are left
    alone; every other pool item the certificate accepts gets one ``auto`` event carrying its
    confidence and threshold. Returns the new run's id and the number of events.
    """
    rid, meta, thr, pos, pred, conf = certified_selection(project, run_id)
    st = project.store
    cl = S.current_label
    with st.read() as c:
        human = {int(r[0]) for r in c.execute(sa.select(cl.c.item).where(cl.c.precedence > S.PRECEDENCE["auto"]))}
    keep = np.array([int(p) not in human for p in pos], dtype=bool)
    pos, pred, conf = pos[keep], pred[keep], conf[keep]
    config = {"from_run": rid, "round": meta["round"], "applied_by": who, "epsilon": meta["epsilon"],
              "delta": meta["delta"], "bound": meta["bound"], "scope": meta["scope"],
              "thresholds": [_num(t) for t in thr]}
    import pandas as pd

    with st.transaction() as c:
        pk = c.execute(sa.insert(S.runs).values(kind="apply", config=json.dumps(config), status="complete",
                                                started=time.time(), finished=time.time())).inserted_primary_key
        assert pk is not None  # an INSERT of one row has a primary key
        new = int(pk[0])
        n = st.append_events(pd.DataFrame({
            "item": pos, "code": pred, "source": "auto", "who": meta.get("model") or "model",
            "version": f"run{rid}", "confidence": conf, "threshold": thr[pred], "round": int(meta["round"]),
            "run_id": new, "key": [f"run{new}:auto:{int(p)}" for p in pos],
        }), conn=c)
    return {"run_id": new, "from_run": rid, "events": int(n), "thresholds": config["thresholds"]}
