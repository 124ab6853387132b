"""The whole-data-set guarantee for a TBAL run (``--guarantee dataset``).

TBAL's rounds run as usual: humans label the validation and training queries, the model is
retrained each round. Then, instead of keeping only the items that clear certified thresholds,
PAC labeling (Candès, Ilyas & Zrnic 2025, :mod:`labelsieve.guarantees.pac`) labels *every* item
the humans have not: the final model predicts them, a random audit of ``audit`` draws is labeled
by humans, the uncertainty threshold is chosen by the fixed-sequence scan, and the items above it
are routed to humans. With probability >= 1 - delta over the audit draws,

    (1/n) * sum over all n items of 1{final label != true label} <= epsilon      (paper, eq. 1)

when human labels are correct (the TBAL human labels count as correct; they are at most as many
as n, so the bound on the non-human items, which is what PAC certifies, is also one on all n).

How delta is spent across rounds: once. The rounds only *train*; no round's outcome is certified,
and the audit is drawn after the final model (hence every prediction and uncertainty) is fixed,
with a generator that nothing else uses. So the one PAC test at level delta is the whole
statement: no split over rounds is needed (``tests/test_pac_run.py`` checks the coverage over
seeds). TBAL's own subset certificates of the rounds are kept in ``metrics["subset"]`` for
reference only.

Noisy human labels (``--oracle crowd``, or the simulated oracle's ``--noise``): an audit label
comes with P(label is correct) (the GTX posterior); the audit loss is then an upper bound of
P(true label != prediction | audit label) (see :meth:`PACLabeler.fit_from_labels`), so the bound is
on the expected share of wrong labels under calibrated posteriors, as the certificate says.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from labelsieve.autolabel.oracles import as_answers
from labelsieve.engine.local import score_in_blocks
from labelsieve.errors import InputError
from labelsieve.guarantees.pac import PACLabeler

#: the audit's generator is seeded by (run seed, this tag): independent of the loop's and the oracle's
AUDIT_STREAM = 0x5AC
GUARANTEE_SUBSET, GUARANTEE_DATASET = "subset", "dataset"
GUARANTEES = (GUARANTEE_SUBSET, GUARANTEE_DATASET)


def _ask(oracle: Any, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels from ``oracle.ask`` and their P(label correct) (None when every answer is certain)."""
    ans = as_answers(oracle.ask(ids))
    p = ans.label_probability()
    return ans.labels, (None if p is None or np.all(p >= 1.0) else p)


def finish_dataset_guarantee(result: Any, dataset: Any, oracle: Any, spec: Any) -> Any:
    """PAC-label every item TBAL's humans did not label; return the run's result for all n items.

    ``spec`` gives ``epsilon``, ``delta``, ``seed`` and optionally ``audit`` (K, default 500),
    ``audit_prior`` ("uniform" | "uncertainty") and ``pac_bound`` ("betting" | "clt").
    ``result`` is what :meth:`TBAL.run` returned with the same ``oracle`` (its human answers are
    reused; the audit and the routed items are asked from ``oracle`` too, so a recording oracle
    makes a killed run resume with the same draws and answers).
    """
    n = len(dataset.ids)
    audit = int(getattr(spec, "audit", 500))
    labels = result.labels
    human = labels[labels["source"] == "human"]
    pos = pd.Index(dataset.ids).get_indexer(human["id"].to_numpy())
    is_human = np.zeros(n, dtype=bool)
    is_human[pos] = True
    rest = np.flatnonzero(~is_human)
    if audit > len(rest):
        raise InputError(f"--audit {audit} is more than the {len(rest)} items left after TBAL's {len(human)} human "
                         f"labels (of {n}); lower --audit or --budget.")
    if not result.rules:
        raise InputError("the TBAL run trained no model, so there is nothing to predict the pool with.")
    model, cf, _ = result.rules[-1]
    pred, conf = cf.confidence(score_in_blocks(model.scores, dataset.X[rest]))
    pred = np.asarray(pred, dtype=np.int64)
    u = 1.0 - np.asarray(conf, dtype=np.float64)
    lab = PACLabeler(
        epsilon=float(spec.epsilon), alpha=float(spec.delta), audit=audit,
        prior=getattr(spec, "audit_prior", "uniform"), bound=getattr(spec, "pac_bound", "betting"),
        random_state=np.random.default_rng([int(spec.seed), AUDIT_STREAM]),
    )
    first = lab.split(u)
    y_first, p_first = _ask(oracle, dataset.ids[rest[first]])
    lab.fit_from_labels(pred, u, first, y_first, audit_p_correct=p_first)
    routed = np.flatnonzero(lab.routed_mask_)
    p_routed = None
    if len(routed):
        y_routed, p_routed = _ask(oracle, dataset.ids[rest[routed]])
        lab.set_routed_labels(y_routed)
    cert = lab.certificate_

    last_round = int(result.history["round"].max()) if len(result.history) else 0
    role = lab.roles_
    p_correct = np.ones(len(rest))
    if p_first is not None:
        p_correct[first] = p_first
    if p_routed is not None:
        p_correct[routed] = p_routed
    new = pd.DataFrame({
        "id": dataset.ids[rest],
        "label": np.asarray(dataset.classes, dtype=object)[np.asarray(lab.labels_, dtype=np.int64)],
        "code": np.asarray(lab.labels_, dtype=np.int64),
        "source": np.where(role == "auto", "auto", "human"),
        "role": role,
        "confidence": np.where(role == "auto", 1.0 - u, p_correct),
        "threshold": 1.0 - cert.threshold if np.isfinite(cert.threshold) else np.nan,
        "round": last_round + 1,
    })
    kept = human.copy()
    out = pd.concat([kept, new], ignore_index=True)
    order = pd.Index(dataset.ids).get_indexer(out["id"].to_numpy())
    out = out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)  # row i is dataset item i
    out["guarantee"] = GUARANTEE_DATASET

    m = dict(result.metrics)
    subset = {k: m[k] for k in ("coverage", "n_auto_labeled", "auto_label_error", "error_bound", "guaranteed",
                                "bound_statement") if k in m}
    n_auto = int(lab.auto_mask_.sum())
    human_total = len(human) + int(lab.audited_mask_.sum()) + int(lab.routed_mask_.sum())
    m.update({
        "guarantee": GUARANTEE_DATASET,
        "subset": subset,
        "pac": lab.summary(),
        "coverage": n_auto / n,
        "coverage_of_unlabeled": n_auto / max(len(rest), 1),  # of the items TBAL's humans left
        "n_auto_labeled": n_auto,
        "saved_fraction": n_auto / n,
        "tbal_human_labels": len(human),
        "human_labels": human_total,
        "error_bound": float(cert.error_bound),
        "guaranteed": bool(cert.guaranteed),
        "bound": f"pac-{cert.bound}",
        "bound_statement": (
            f"{cert.statement()}; with the run's {len(human)} TBAL human labels (assumed correct) the share of wrong "
            f"labels among all {n} items is then <= {cert.epsilon * len(rest) / n:.4g}"),
    })
    if getattr(dataset, "has_truth", False):
        truth = np.asarray(dataset.y)
        known = truth >= 0
        m["dataset_error"] = float((out["code"].to_numpy()[known] != truth[known]).mean()) if known.any() else None
        auto = (out["source"] == "auto").to_numpy() & known
        m["auto_label_error"] = float((out["code"].to_numpy()[auto] != truth[auto]).mean()) if auto.any() else None
    y_known = np.asarray(dataset.y)[rest] if getattr(dataset, "has_truth", False) else None
    auto_rest = lab.auto_mask_
    pac_row = {  # the PAC step as one more row of the run's history (history.csv, rounds.png, the store)
        "round": last_round + 1, "n_auto_round": n_auto, "n_auto_total": n_auto, "coverage": n_auto / n,
        "auto_label_error": (float((pred[auto_rest] != y_known[auto_rest]).mean())
                             if y_known is not None and auto_rest.any() and (y_known[auto_rest] >= 0).all()
                             else np.nan),
        "error_bound": float(cert.error_bound), "human_labels": human_total,
        "n_queried": int(lab.audited_mask_.sum()) + int(lab.routed_mask_.sum()), "n_validation_active": 0,
        "delta_round": float(spec.delta), "thresholds": [float(1.0 - cert.threshold)] if np.isfinite(cert.threshold)
        else [], "reasons": {} if cert.guaranteed else {"global": "PAC: no threshold certified; all routed"},
        "guarantee": GUARANTEE_DATASET,
    }
    hist = pd.concat([result.history, pd.DataFrame([pac_row])], ignore_index=True)
    return dataclasses.replace(result, labels=out, metrics=m, history=hist)
