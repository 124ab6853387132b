"""Live label collection for the web app: which item a labeler sees next, and what an answer does.

The crowd collector (:class:`~labelsieve.crowd.ThresholdCollector` with a GTX aggregator) holds
each item's posterior and decides when an item is done (confidence >= ``tau`` or ``kappa`` labels).
This module adds what a multi-user server needs on top:

* leases -- an item is handed to at most ``kappa - n_labels`` labelers at once, and an answer is
  accepted only from a labeler holding a live lease, so no item ever gets more than ``kappa`` votes;
* a labeler never sees an item twice, and a re-asked ``next`` returns the item they already hold;
* each answer is one transaction: the ``vote`` event and, when it finishes the item, the
  ``aggregate`` event. Request ids make retried posts harmless.

Order: ``threshold`` (GTX §2.3 strategy 1) serves items in arrival order, queued items (asked for
by a project run) first; ``uncertainty`` (strategy 2, eq. 5) serves the most uncertain item.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labelsieve._validation import check_interval, check_option, check_positive_int
from labelsieve.crowd import GTX, ThresholdCollector, estimate_accuracies, uncertainty
from labelsieve.crowd.accuracy import EM_ACCURACY_PRIOR, beta_posterior, one_coin_em
from labelsieve.errors import InputError
from labelsieve.store import schema as S
from labelsieve.store.project import Project

STRATEGIES = ("threshold", "uncertainty")
AGGREGATOR_ID = "GTX"
#: An aggregate is rewritten when re-estimated accuracies move its confidence by more than this.
REFRESH_TOL = 1e-3
#: Labeler ids the store uses for itself; they never vote.
PSEUDO_LABELERS = frozenset({AGGREGATOR_ID, "import"})


class ConflictError(InputError):
    """The answer cannot be taken (no live lease, item already done, answered twice)."""


@dataclass
class Lease:
    labeler: str
    expires: float


class LabelingSession:
    """Serves items to labelers and records their answers (thread-safe; one per server process).

    Parameters
    ----------
    project : Project
    strategy : "threshold" | "uncertainty"
    tau : float in (0.5, 1]
        An item is done once its GTX confidence reaches ``tau`` ...
    kappa : int >= 1
        ... or once it has ``kappa`` labels.
    lease_seconds : float > 0
        How long a served item stays reserved for its labeler.
    """

    def __init__(self, project: Project, *, strategy: str = "threshold", tau: float = 0.95, kappa: int = 3,
                 lease_seconds: float = 300.0) -> None:
        owner = "LabelingSession"
        check_option("strategy", strategy, owner=owner, options=STRATEGIES)
        check_interval("tau", tau, owner=owner, low=0.5, high=1.0, closed="right")
        check_positive_int("kappa", kappa, owner=owner)
        check_interval("lease_seconds", lease_seconds, owner=owner, low=0.0, high=float("inf"), closed="neither")
        self.project, self.strategy, self.tau, self.kappa = project, strategy, tau, kappa
        self.lease_seconds = lease_seconds
        self.lock = threading.RLock()
        st = project.store
        if AGGREGATOR_ID not in set(st.labelers()["id"]):
            st.add_labeler(AGGREGATOR_ID, kind="aggregator", name="GTX aggregate of web-app votes")
        self._load()

    # ------------------------------------------------------------------ state from the store
    def _load(self) -> None:
        st = self.project.store
        labelers = st.labelers()
        acc = labelers.dropna(subset=["gold_accuracy"])
        self._registered = dict(zip(acc["id"], acc["gold_accuracy"].astype(float), strict=True))
        self._accuracies: dict[str, float] = dict(self._registered)
        n = st.n_items()
        self.collector = ThresholdCollector(GTX(accuracies=self._accuracies or None), classes=list(self.project.classes),
                                            budget=max(1, n * self.kappa), tau=self.tau, kappa=self.kappa)
        self._agg: dict[int, tuple[int, float]] = {}  # item -> (code, confidence) of its latest aggregate
        self._since_fit = 0
        self._correct: dict[str, float] = {}
        self._pos_to_idx: dict[int, int] = {}
        self._idx_pos: list[int] = []
        self._queued = np.zeros(0, dtype=bool)
        self._finished = np.zeros(0, dtype=bool)  # aggregate written
        self._voters: dict[int, set[str]] = {}
        self._leases: dict[int, dict[str, Lease]] = {}
        self._held: dict[str, int] = {}
        self._queue_seq = 0
        with st.read() as c:
            cur = {int(r[0]): int(r[1]) for r in c.execute(sa.select(S.current_label.c.item,
                                                                         S.current_label.c.precedence))}
            votes = c.execute(sa.select(S.events.c.item, S.events.c.who, S.events.c.code)
                              .where(S.events.c.source == "vote").order_by(S.events.c.seq)).fetchall()
            for r in c.execute(sa.select(S.events.c.item, S.events.c.code, S.events.c.confidence)
                               .where(S.events.c.source == "aggregate").order_by(S.events.c.seq)):
                self._agg[int(r[0])] = (int(r[1]), float(r[2]) if r[2] is not None else float("nan"))
        aggs = set(self._agg)
        self._refresh_queue()
        voted = sorted({int(v[0]) for v in votes} - set(self._pos_to_idx))
        self._add([p for p in voted])
        unlabeled = np.setdiff1d(np.arange(n), np.fromiter(cur, dtype=np.int64, count=len(cur)))
        self._add([int(p) for p in unlabeled if int(p) not in self._pos_to_idx])
        names = self.project.classes
        for item, who, code in votes:  # replay of the stored votes into the aggregate state
            self.collector.add_label(int(item), who, names[int(code)])
            self._voters.setdefault(int(item), set()).add(who)
        for p in aggs:
            if p in self._pos_to_idx:
                self._finished[self._pos_to_idx[p]] = True
        if votes:
            # projects written before accuracies were estimated hold aggregates computed with an
            # uninformative default; re-estimating repairs them here, as new events
            refreshed = self._refit()
            if refreshed:
                st.append_events(pd.DataFrame(refreshed))
                for r in refreshed:
                    self._agg[int(r["item"])] = (int(r["code"]), float(r["confidence"]))

    # ------------------------------------------------------------------ labeler accuracies
    def _gold_codes(self) -> dict[int, int]:
        with self.project.store.read() as c:
            return {int(r[0]): int(r[1]) for r in c.execute(
                sa.select(S.current_label.c.item, S.current_label.c.code)
                .where(S.current_label.c.source.in_(["review", "import"]), S.current_label.c.code.is_not(None)))}

    def accuracy_table(self, interval: float = 0.95) -> pd.DataFrame:
        """Accuracy used for each human labeler who voted or is registered.

        Columns ``labeler, n_votes, accuracy, lower, upper, basis``. ``basis`` is ``registered`` (the
        accuracy given to ``labelsieve labeler --accuracy``, used as is), ``estimated`` (one-coin EM
        over all the project's votes, reviewed/imported items as gold, Beta(4, 1) prior: see
        :func:`~labelsieve.crowd.accuracy.one_coin_em`) or ``prior`` (no votes yet). The interval of an
        estimate is the equal-tailed Beta(a + c, b + n - c) interval with the EM's expected correct
        count c: it treats the estimated truths as observed, so it is narrower than an interval that
        also carried their uncertainty.
        """
        with self.lock:
            log = self.collector.labels()
            humans = self.project.store.labelers()
            humans = [h for h in humans[humans["kind"] == "human"]["id"].tolist() if h not in PSEUDO_LABELERS]
            workers = list(dict.fromkeys(humans + log["worker"].tolist()))
            n_votes = log["worker"].value_counts().reindex(workers, fill_value=0).to_numpy(dtype=float)
            correct = np.array([self._correct.get(w, np.nan) for w in workers])
            a, b = EM_ACCURACY_PRIOR
            _, lo, hi = beta_posterior(np.nan_to_num(correct), n_votes, a, b, interval)
            rows = []
            for j, w in enumerate(workers):
                if w in self._registered:
                    rows.append((w, int(n_votes[j]), self._registered[w], np.nan, np.nan, "registered"))
                else:
                    basis = "estimated" if n_votes[j] > 0 else "prior"
                    rows.append((w, int(n_votes[j]), self._accuracies.get(w, a / (a + b)), lo[j], hi[j], basis))
            return pd.DataFrame(rows, columns=["labeler", "n_votes", "accuracy", "lower", "upper", "basis"])

    def _refit(self) -> list[dict[str, Any]]:
        """Re-estimate unregistered labelers' accuracies from all votes and rescore every item.

        Returns the aggregate events to write for finished items whose label or confidence moved.
        """
        self._since_fit = 0
        log = self.collector.labels()
        self._correct = {}
        if len(log) == 0:
            return []
        names = self.project.classes
        task = np.fromiter((self._pos_to_idx[int(t)] for t in log["task"]), dtype=np.int64, count=len(log))
        code = np.fromiter((names.index(y) for y in log["label"]), dtype=np.int64, count=len(log))
        wcode, workers = pd.factorize(log["worker"].astype(object))
        fixed = np.array([self._registered.get(w, np.nan) for w in workers], dtype=float)
        gold = np.full(len(self._idx_pos), -1, dtype=np.int64)
        for p, k in self._gold_codes().items():
            if p in self._pos_to_idx:
                gold[self._pos_to_idx[p]] = k
        acc, correct, _, _ = one_coin_em(task, wcode, code, len(self._idx_pos), len(workers), len(names),
                                         gold=gold, fixed=fixed)
        self._accuracies = {**self._registered, **{w: float(acc[j]) for j, w in enumerate(workers)}}
        self._correct = {w: float(correct[j]) for j, w in enumerate(workers)}
        self.collector.set_aggregator(GTX(accuracies=self._accuracies))
        out = []
        for p, (k_old, c_old) in self._agg.items():
            i = self._pos_to_idx.get(p)
            if i is None:
                continue
            post = self.collector.proba_array(i)
            k = int(post.argmax())
            if k != k_old or not abs(float(post[k]) - c_old) <= REFRESH_TOL:
                out.append({"item": p, "code": k, "source": "aggregate", "who": AGGREGATOR_ID,
                            "confidence": float(post[k]),
                            "key": f"aggregate:{p}:refit:{self.collector.n_spent}:{k}:{float(post[k]):.6f}"})
        return out

    def _add(self, positions: list[int], queued: bool = False) -> None:
        new = [p for p in positions if p not in self._pos_to_idx]
        if not new:
            return
        start = len(self._idx_pos)
        self.collector.add_items(new)
        for k, p in enumerate(new):
            self._pos_to_idx[p] = start + k
        self._idx_pos.extend(new)
        self._queued = np.concatenate([self._queued, np.full(len(new), queued)])
        self._finished = np.concatenate([self._finished, np.zeros(len(new), dtype=bool)])

    def _refresh_queue(self) -> None:
        with self.project.store.read() as c:
            rows = c.execute(sa.select(S.queue.c.seq, S.queue.c.item).where(S.queue.c.seq > self._queue_seq)
                             .order_by(S.queue.c.seq)).fetchall()
        if not rows:
            return
        self._queue_seq = int(rows[-1][0])
        pos = [int(r[1]) for r in rows]
        self._add(pos, queued=True)
        for p in pos:
            self._queued[self._pos_to_idx[p]] = True

    # ------------------------------------------------------------------ serving
    def _expire(self, now: float) -> None:
        for p in [p for p, ls in self._leases.items() if any(v.expires <= now for v in ls.values())]:
            for w in [w for w, v in self._leases[p].items() if v.expires <= now]:
                del self._leases[p][w]
                if self._held.get(w) == p:
                    del self._held[w]

    def _done(self, i: int) -> bool:
        return bool(self._finished[i]) or self.collector.is_done(i)

    def _eligible(self, i: int, labeler: str) -> bool:
        p = self._idx_pos[i]
        if self._done(i) or labeler in self._voters.get(p, ()):
            return False
        n_votes = len(self._voters.get(p, ()))
        return n_votes + len(self._leases.get(p, {})) < self.kappa

    def next_item(self, labeler: str) -> dict[str, Any] | None:
        """The item ``labeler`` should label now (leased to them), or None when nothing is left."""
        self.project.store.require_labeler(labeler)
        with self.lock:
            now = time.time()
            self._expire(now)
            self._refresh_queue()
            held = self._held.get(labeler)
            if held is not None:
                self._leases[held][labeler].expires = now + self.lease_seconds
                return self._describe(held)
            i = self._choose(labeler)
            if i is None:
                return None
            p = self._idx_pos[i]
            self._leases.setdefault(p, {})[labeler] = Lease(labeler, now + self.lease_seconds)
            self._held[labeler] = p
            return self._describe(p)

    def _choose(self, labeler: str) -> int | None:
        n = len(self._idx_pos)
        if n == 0:
            return None
        if self.strategy == "threshold":
            order = np.concatenate([np.flatnonzero(self._queued), np.flatnonzero(~self._queued)])
            for i in order:  # stops at the first eligible item; done items are skipped cheaply
                if self._eligible(int(i), labeler):
                    return int(i)
            return None
        u = uncertainty(self.collector.proba_array())
        n_lab = np.array([len(self._voters.get(p, ())) for p in self._idx_pos])
        # queued first, then most uncertain, then fewest labels, then arrival
        for i in np.lexsort((np.arange(n), n_lab, -u, ~self._queued)):
            if self._eligible(int(i), labeler):
                return int(i)
        return None

    def _describe(self, p: int) -> dict[str, Any]:
        i = self._pos_to_idx[p]
        post = self.collector.proba_array(i)
        return {"pos": p, "n_labels": len(self._voters.get(p, ())), "posterior": post.tolist(),
                "done": self._done(i)}

    # ------------------------------------------------------------------ answers
    def answer(self, labeler: str, pos: int, label: str, request_id: str) -> dict[str, Any]:
        """Record ``labeler``'s ``label`` for item ``pos``; returns the item's new state.

        Raises :class:`ConflictError` without a live lease, :class:`InputError` for a label outside the
        classes or an unknown labeler. A repeated ``request_id`` returns the state without a new event.
        """
        st = self.project.store
        st.require_labeler(labeler)
        names = self.project.classes
        if label not in names:
            raise InputError(f"label {str(label)[:100]!r} is not one of the classes {list(names)}")
        if not request_id or len(request_id) > 100:
            raise InputError("request_id must be 1-100 characters")
        key = f"vote:{request_id}"
        with self.lock:
            with st.read() as c:
                if c.execute(sa.select(S.events.c.seq).where(S.events.c.key == key)).first():
                    return {**self._describe(pos), "duplicate": True}
            lease = self._leases.get(pos, {}).get(labeler)
            if lease is None or lease.expires <= time.time():
                raise ConflictError(f"labeler {labeler!r} holds no live lease on this item (expired, or the item "
                                    "is done); ask for the next item")
            i = self._pos_to_idx[pos]
            code = names.index(label)
            self.collector.add_label(pos, labeler, label)
            self._voters.setdefault(pos, set()).add(labeler)
            del self._leases[pos][labeler]
            self._held.pop(labeler, None)
            self._since_fit += 1
            # accuracies are re-estimated from all votes after every answer while the project is small,
            # then after every 1% of the votes (EM is O(votes) per iteration)
            refreshed = self._refit() if self._since_fit >= max(1, self.collector.n_spent // 100) else []
            refreshed = [r for r in refreshed if r["item"] != pos]
            post = self.collector.proba_array(i)
            done = self.collector.is_done(i)
            rows = [{"item": pos, "code": code, "source": "vote", "who": labeler, "key": key}]
            if done:
                k = int(post.argmax())
                rows.append({"item": pos, "code": k, "source": "aggregate", "who": AGGREGATOR_ID,
                             "confidence": float(post[k]),
                             "key": f"aggregate:{pos}" if pos not in self._agg else f"aggregate:{pos}:{key}"})
            rows += refreshed
            try:
                st.append_events(pd.DataFrame(rows))
            except Exception:
                self._load()  # the write failed: rebuild the in-memory state from the store
                raise
            for r in rows[1:]:
                self._agg[int(r["item"])] = (int(r["code"]), float(r["confidence"]))
            if done:
                self._finished[i] = True
            return {"pos": pos, "n_labels": len(self._voters[pos]), "posterior": post.tolist(), "done": done,
                    "duplicate": False}

    def progress(self) -> dict[str, int]:
        with self.lock:
            fin = np.array([self._done(i) for i in range(len(self._idx_pos))], dtype=bool)
            return {"items": len(self._idx_pos), "done": int(fin.sum()), "queued": int(self._queued.sum()),
                    "queued_left": int((self._queued & ~fin).sum()), "votes": self.collector.n_spent}


def labeler_accuracy(project: Project, interval: float = 0.95) -> pd.DataFrame:
    """Each human labeler's accuracy on gold items (current label from a review or an import).

    Columns: labeler, n_votes, n_gold, n_correct, posterior_mean, lower, upper (Beta(1, 1) prior),
    and the accuracy registered for the labeler (``registered``), if any.
    """
    st = project.store
    votes = st.events(source="vote")
    labelers = st.labelers()
    humans = labelers[labelers["kind"] == "human"]
    cur = st.current_labels()
    gold = cur[cur["source"].isin(["review", "import"])]
    base = pd.DataFrame({"labeler": humans["id"].to_numpy(), "registered": humans["gold_accuracy"].to_numpy()})
    if len(votes) == 0:
        return base.assign(n_votes=0, n_gold=0, n_correct=0, posterior_mean=np.nan, lower=np.nan, upper=np.nan)
    table = pd.DataFrame({"task": votes["item"], "worker": votes["who"], "label": votes["code"].astype(int)})
    est = estimate_accuracies(table, pd.DataFrame({"task": gold["pos"], "label": gold["code"].astype(int)}),
                              classes=list(range(len(project.classes))), interval=interval)
    n_votes = table.groupby("worker").size()
    est = est.rename(columns={"worker": "labeler"})
    est["n_votes"] = est["labeler"].map(n_votes).astype(int)
    out = base.merge(est, on="labeler", how="outer")
    out["n_votes"] = out["n_votes"].fillna(0).astype(int)
    out["n_gold"] = out["n_gold"].fillna(0).astype(int)
    out["n_correct"] = out["n_correct"].fillna(0).astype(int)
    return out[["labeler", "n_votes", "n_gold", "n_correct", "posterior_mean", "lower", "upper", "registered"]]


