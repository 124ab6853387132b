"""TBAL runs bound to a project store: resumable after a kill at any point.

The TBAL loop is deterministic given its seed, so a run resumes by replaying: every human answer
a run used is stored (``run_answers``, in the same transaction as its label event) and served
again without asking, and each finished round is committed in one transaction (its auto-label
events, its statistics, the run's ``last_round``). Events carry idempotency keys
(``run<R>:human:<item>``, ``run<R>:auto:<item>``), so replaying a committed step writes nothing.

Oracles: ``simulated`` answers from truth.npy; ``app`` answers from human-level labels already in
the store (aggregates of web-app votes, imports, reviews) and otherwise queues the items for the
web app and stops with :class:`AwaitingLabels`; run the same command again once they are labeled.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labelsieve.autolabel.oracles import Answers, AwaitingAnswers, SimulatedOracle, as_answers
from labelsieve.autolabel.tbal import TBALResult
from labelsieve.errors import InputError, LabelsieveError
from labelsieve.runs.directory import RunConfig, _check_config, build_tbal
from labelsieve.runs.spec import spec_json
from labelsieve.store import schema as S
from labelsieve.store.project import Project

log = logging.getLogger(__name__)
ORACLES = ("simulated", "app")


class AwaitingLabels(AwaitingAnswers):
    """The run queued items for the web app; run it again once they are labeled."""

    def __init__(self, project: Project, n_items: int, run_id: int) -> None:
        self.n_items, self.run_id = n_items, run_id
        self.query_path = self.answer_path = project.path
        LabelsieveError.__init__(
            self,
            f"run {run_id}: {n_items} items are queued for human labels; start `labelsieve serve {project.path}`, "
            f"let the labelers answer, then run this same command again (it resumes from the store)",
        )


class StoreOracle:
    """Answers a run's queries from the store (see the module docstring).

    Parameters
    ----------
    project : Project
    run_id : int
    inner : Oracle, optional
        Asked for items without a stored answer (simulated mode); None: queue them for the web app.
    """

    def __init__(self, project: Project, run_id: int, inner: Any = None) -> None:
        self.project, self.run_id, self.inner = project, run_id, inner
        self._calls = 0
        self._pos = {i: p for p, i in enumerate(project.store.items(("id",))["id"])}

    def _stored(self, pos: np.ndarray) -> dict[int, int]:
        t = S.run_answers
        with self.project.store.read() as c:
            rows = c.execute(sa.select(t.c.item, t.c.code).where(t.c.run_id == self.run_id)).fetchall()
        return {int(i): int(k) for i, k in rows}

    def ask(self, ids: np.ndarray) -> Answers:
        """The run's labels of ``ids``, with ``p_correct`` always set: :meth:`label_confidence`,
        lowered to the inner (simulated) oracle's own ``p_correct`` where it has one (``--noise``),
        so the certificate carries the same noise as the export's ``p_wrong``.
        """
        # TBAL asks twice in round 0 (validation, seed), then once per round
        self._calls += 1
        rnd = 0 if self._calls <= 2 else self._calls - 2
        pos = np.array([self._pos[str(i)] for i in ids], dtype=np.int64)
        have = self._stored(pos)
        # the inner oracle is asked always, to keep its RNG in step
        inner = as_answers(self.inner.ask(ids)) if self.inner is not None else None
        todo = np.array([p not in have for p in pos])
        if todo.any():
            if inner is not None:
                new = dict(zip(pos[todo].tolist(), inner.labels[todo].tolist(), strict=True))
                self._record(new, rnd, source="human", who="simulated-oracle")
            else:
                self._from_store_or_queue(pos[todo], rnd)
            have = self._stored(pos)
        p = self.label_confidence(ids)
        if inner is not None and inner.p_correct is not None:  # simulated noise: the answers carry it
            p = np.minimum(p, inner.p_correct)
        return Answers(np.array([have[int(q)] for q in pos], dtype=np.int64), p_correct=p)

    def label_confidence(self, ids: np.ndarray) -> np.ndarray:
        """P(true label == the run's label) per item from the store: the GTX posterior for labels
        the web app aggregated from several labelers' votes, 1 for expert labels (human, import,
        review).

        :meth:`ask` returns these as ``p_correct``, so validation on crowd labels collected live
        carries their noise into the guarantee (docs/noisy-guarantee.md).
        """
        pos = [self._pos[str(i)] for i in ids]
        cl = S.current_label
        with self.project.store.read() as c:
            rows = c.execute(
                sa.select(cl.c.item, cl.c.confidence).where(cl.c.item.in_(pos), cl.c.source == "aggregate")
            ).fetchall()
        post = {int(i): float(q) for i, q in rows if q is not None}
        return np.array([post.get(p, 1.0) for p in pos], dtype=np.float64)

    def _record(self, answers: dict[int, int], rnd: int, *, source: str, who: str) -> None:
        st = self.project.store
        with st.transaction() as c:
            t = S.run_answers
            done = {int(r[0]) for r in c.execute(sa.select(t.c.item).where(t.c.run_id == self.run_id))}
            answers = {p: k for p, k in answers.items() if p not in done}
            if not answers:
                return
            st.append_events(pd.DataFrame({
                "item": list(answers), "code": list(answers.values()), "source": source, "who": who,
                "round": rnd, "run_id": self.run_id, "key": [f"run{self.run_id}:human:{p}" for p in answers],
            }), conn=c)
            c.execute(sa.insert(t), [{"run_id": self.run_id, "item": p, "code": k} for p, k in answers.items()])

    def _from_store_or_queue(self, pos: np.ndarray, rnd: int) -> None:
        st = self.project.store
        with st.transaction() as c:
            cl = S.current_label
            rows = c.execute(sa.select(cl.c.item, cl.c.code, cl.c.seq).where(
                cl.c.item.in_(pos.tolist()), cl.c.precedence >= S.PRECEDENCE["human"], cl.c.code.is_not(None))).fetchall()
            known = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
            t = S.run_answers
            done = {int(r[0]) for r in c.execute(sa.select(t.c.item).where(t.c.run_id == self.run_id))}
            new = [{"run_id": self.run_id, "item": p, "code": k, "event_seq": s}
                   for p, (k, s) in known.items() if p not in done]
            if new:
                c.execute(sa.insert(t), new)
            wait = [int(p) for p in pos if int(p) not in known]
            if wait:
                q = S.queue
                queued = {int(r[0]) for r in c.execute(sa.select(q.c.item).where(q.c.item.in_(wait)))}
                add = [{"item": p, "run_id": self.run_id, "round": rnd, "created": time.time()}
                       for p in wait if p not in queued]
                if add:
                    c.execute(sa.insert(q), add)
                c.execute(sa.update(S.runs).where(S.runs.c.id == self.run_id).values(status="waiting"))
        if wait:
            raise AwaitingLabels(self.project, len(wait), self.run_id)


def _config_json(cfg: RunConfig) -> str:
    return spec_json(cfg, sort_keys=True)


def _latest_unfinished(c: sa.Connection) -> Any:
    """The latest run still running or waiting: ``(id, config, last_round)``, or None."""
    t = S.runs
    return c.execute(sa.select(t.c.id, t.c.config, t.c.last_round)
                     .where(t.c.status.in_(["running", "waiting"])).order_by(t.c.id.desc())).first()


def will_resume(project: Project, cfg: RunConfig) -> bool:
    """Whether :func:`find_or_create_run` would resume an unfinished run of ``cfg`` (read-only)."""
    with project.store.read() as c:
        row = _latest_unfinished(c)
    return row is not None and row[1] == _config_json(cfg)


def find_or_create_run(project: Project, cfg: RunConfig, *, new: bool = False) -> tuple[int, int]:
    """Latest unfinished run with this configuration (resume), else a new one: ``(run_id, last_round)``.

    Without ``new``, a configuration whose latest run is complete is refused (it would redo the work).
    """
    st, t = project.store, S.runs
    with st.transaction() as c:
        last = c.execute(sa.select(t.c.id, t.c.status).where(t.c.config == _config_json(cfg))
                         .order_by(t.c.id.desc())).first()
        if last is not None and last[1] == "complete" and not new:
            raise InputError(f"run {last[0]} with this configuration is already complete; "
                             "pass --new to run it again")
        row = _latest_unfinished(c)
        if row is not None and row[1] == _config_json(cfg):
            return int(row[0]), int(row[2])
        if row is not None:
            log.warning("run %s has another configuration; starting a new run", row[0])
            c.execute(sa.update(t).where(t.c.id == row[0]).values(status="abandoned"))
        pk = c.execute(sa.insert(t).values(kind="tbal", config=_config_json(cfg), status="running",
                                           started=time.time())).inserted_primary_key
        assert pk is not None  # an INSERT of one row has a primary key
        rid = pk[0]
        return int(rid), -1


def run_project(project: Project, cfg: RunConfig, *, progress: bool = False, new: bool = False,
                engine: Any = None) -> tuple[int, TBALResult]:
    """Run or resume TBAL on ``project``; returns ``(run_id, result)``.

    Raises :class:`AwaitingLabels` when the app oracle needs human labels first.
    """
    if cfg.oracle not in ORACLES:
        raise InputError(f"oracle must be one of {list(ORACLES)} for a project run; got {cfg.oracle!r}")
    dataset = project.dataset()
    tbal = build_tbal(cfg, dataset.n_classes, progress=progress)
    if tbal.certifier is None:
        # app-aggregated labels are noisy: the noise-aware certifier is exactly the plain one
        # when every label is an expert's (label confidence 1), and bounds the true error otherwise
        from labelsieve.autolabel.noisy import NoiseAwareCertifier

        tbal.certifier = NoiseAwareCertifier()
    tbal.engine = engine
    tbal._plan(len(dataset))  # validate every parameter before anything is written
    _check_config(cfg)
    inner = None
    if cfg.oracle == "simulated":
        if not dataset.has_truth:
            raise InputError(f"{project.path}: no ground truth (truth.npy); use --oracle app.")
        inner = SimulatedOracle(dataset, noise=cfg.noise, random_state=cfg.seed + 1)
    run_id, _last = find_or_create_run(project, cfg, new=new)
    st = project.store
    model_name = f"{cfg.model}"
    known = set(st.labelers()["id"])
    for name, kind in ((model_name, "model"), ("simulated-oracle", "human")):
        if (cfg.oracle == "simulated" or kind == "model") and name not in known:
            st.add_labeler(name, kind=kind, name=name)
    oracle = StoreOracle(project, run_id, inner)
    result = tbal.run(dataset, oracle)
    if cfg.guarantee == "dataset":  # audit and routed items are asked through the store: queued for the app
        from labelsieve.autolabel.pac_run import finish_dataset_guarantee

        result = finish_dataset_guarantee(result, dataset, oracle, cfg)
    commit_rounds(project, run_id, result, model=model_name)
    if result.evidence:
        save_evidence(project, run_id, result, tbal, dataset.ids, model=model_name)
    return run_id, result


def commit_rounds(project: Project, run_id: int, result: TBALResult, *, model: str) -> None:
    """Write each round not yet committed, one transaction per round; check committed ones replayed alike."""
    st = project.store
    labels = result.labels
    auto = labels[labels["source"] == "auto"]
    pos = st.item_positions(auto["id"])
    codes = {c: i for i, c in enumerate(project.classes)}
    with st.read() as c:
        done = {int(r[0]): json.loads(r[1]) for r in c.execute(
            sa.select(S.run_rounds.c.round, S.run_rounds.c.stats).where(S.run_rounds.c.run_id == run_id))}
    for row in result.history.to_dict("records"):
        r = int(row["round"])
        stats = json.loads(json.dumps(row, default=_num))
        if r in done:
            if done[r]["n_auto_round"] != stats["n_auto_round"]:
                raise LabelsieveError(f"run {run_id}, round {r}: the replay auto-labeled {stats['n_auto_round']} "
                                      f"items but the committed round has {done[r]['n_auto_round']}")
            continue
        sel = (auto["round"] == r).to_numpy()
        ev = pd.DataFrame({
            "item": pos[sel], "code": auto["label"][sel].map(codes).to_numpy(), "source": "auto", "who": model,
            "version": f"run{run_id}", "confidence": auto["confidence"][sel].to_numpy(),
            "threshold": auto["threshold"][sel].to_numpy(), "round": r, "run_id": run_id,
            "key": [f"run{run_id}:auto:{p}" for p in pos[sel]],
        })
        with st.transaction() as c:
            st.append_events(ev, conn=c)
            c.execute(sa.insert(S.run_rounds).values(run_id=run_id, round=r, stats=json.dumps(stats),
                                                     committed=time.time()))
            c.execute(sa.update(S.runs).where(S.runs.c.id == run_id).values(last_round=r))
    with st.transaction() as c:
        c.execute(sa.update(S.runs).where(S.runs.c.id == run_id).values(
            status="complete", finished=time.time(), config=S.runs.c.config))


EVIDENCE_ARRAYS = ("val_pos", "val_pred", "val_conf", "val_label", "val_label_confidence",
                   "pool_pos", "pool_pred", "pool_conf")


def save_evidence(project: Project, run_id: int, result: TBALResult, tbal: Any, ids: np.ndarray, *,
                  model: str) -> None:
    """Store what the run's last certifying round certified on (validation points exactly as the
    certifier got them) and the pool's scores then, with the certifier's parameters (``run_evidence``).

    A replayed run overwrites nothing: the row of a run is written once.
    """
    import io

    from labelsieve.autolabel.noisy import NoiseAwareCertifier

    ev = result.evidence
    r = int(ev["round"])
    cert = result.certificates[r - 1]
    st = project.store
    lc = ev["val_label_confidence"]
    arrays = {
        "val_pos": st.item_positions(ids[ev["val_index"]]), "val_pred": np.asarray(ev["val_pred"], np.int64),
        "val_conf": np.asarray(ev["val_conf"], np.float64), "val_label": np.asarray(ev["val_label"], np.int64),
        "val_label_confidence": np.ones(len(ev["val_index"])) if lc is None else np.asarray(lc, np.float64),
        "pool_pos": st.item_positions(ids[ev["pool_index"]]), "pool_pred": np.asarray(ev["pool_pred"], np.int64),
        "pool_conf": np.asarray(ev["pool_conf"], np.float64),
    }
    cf = tbal.certifier
    noisy = isinstance(cf, NoiseAwareCertifier)
    meta = {"round": r, "epsilon": float(tbal.epsilon), "delta": float(cert.delta), "run_delta": float(tbal.delta),
            "bound": tbal.bound if isinstance(tbal.bound, str) else cert.bound, "scope": tbal.scope,
            "min_n": tbal.min_n, "scan": tbal.scan, "n_classes": len(project.classes), "model": model,
            "noise_aware": noisy, "label_confidence": lc is not None,
            **({"label_share": cf.label_share, "min_errors": cf.min_errors} if noisy else {}),
            "thresholds": [None if not np.isfinite(t) else float(t) for t in cert.thresholds]}
    buf = io.BytesIO()
    save: Any = np.savez_compressed  # numpy's stub types **kwds as its allow_pickle flag
    save(buf, **arrays)
    t = S.run_evidence
    with st.transaction() as c:
        if c.execute(sa.select(t.c.run_id).where(t.c.run_id == run_id)).first() is None:
            c.execute(sa.insert(t).values(run_id=run_id, round=r, meta=json.dumps(meta), data=buf.getvalue()))


def load_evidence(project: Project, run_id: int | None = None) -> tuple[int, dict[str, Any], dict[str, np.ndarray]]:
    """``(run_id, meta, arrays)`` of ``run_id`` (default: the latest run that stored its evidence)."""
    import io

    t = S.run_evidence
    q = sa.select(t.c.run_id, t.c.meta, t.c.data)
    q = q.where(t.c.run_id == run_id) if run_id is not None else q.order_by(t.c.run_id.desc())
    with project.store.read() as c:
        row = c.execute(q).first()
    if row is None:
        raise InputError("no project run has stored its certification data yet: run `labelsieve project-run` "
                         "(runs made before this version did not store it)")
    with np.load(io.BytesIO(row[2])) as z:
        arrays = {k: z[k] for k in EVIDENCE_ARRAYS}
    return int(row[0]), json.loads(row[1]), arrays


def _num(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def run_history(project: Project) -> pd.DataFrame:
    """One row per committed round of every run: run_id, round, and the round's statistics."""
    t = S.run_rounds
    with project.store.read() as c:
        rows = c.execute(sa.select(t.c.run_id, t.c.round, t.c.stats).order_by(t.c.run_id, t.c.round)).fetchall()
    recs = [{"run_id": int(a), "round": int(b), **{k: v for k, v in json.loads(s).items() if k != "round"}}
            for a, b, s in rows]
    return pd.DataFrame(recs)
