"""Live label collection for the web app: which item a labeler sees next, and what an answer does.

The crowd collector (:class:`~labelsieve.crowd.ThresholdCollector` with a GTX aggregator) holds
each item's posterior. This module adds what a multi-user server needs on top:

* leases -- an item is handed to at most ``kappa - n_labels`` labelers at once, and an answer is
  accepted only from a labeler holding a lease (a live one, or their own that expired while the
  item still needs them: a long pause re-acquires it), so no item ever gets more than ``kappa``
  votes; the page renews its lease (:meth:`LabelingSession.heartbeat`);
* a labeler never sees an item twice (nor one they skipped), and a re-asked ``next`` returns the
  item they already hold;
* each answer is one transaction: the ``vote`` event and, when it finishes the item, the
  ``aggregate`` event. Request ids make retried posts harmless;
* skip (a ``skip`` event with a reason; ``broken`` items are served to no one and listed by
  :func:`skipped_items`) and undo (a ``withdraw`` event naming the vote or skip it cancels:
  nothing is deleted, the vote no longer counts, the item's aggregate is recomputed).

When an item is done (no longer served, its ``aggregate`` event written; the reason is the
event's ``note``):

* ``tau``: its GTX confidence reached ``tau`` (GTX §2.3 strategy 1) -- e.g. one answer of a
  labeler registered with an accuracy >= ``tau`` (an expert), since one vote of accuracy ``a``
  gives a one-coin GTX posterior of exactly ``a`` under the uniform prior;
* ``kappa``: it has ``kappa`` votes;
* ``team``: every labeler of the project (registered humans who can use the app) voted on it, so
  no further vote can come. This is what lets a team of one finish items with the defaults. It is
  honest because it changes only *when collection stops*, never the label or its confidence: the
  aggregate carries the GTX posterior of the votes it has (0.8 for a single labeler at the
  prior-mean accuracy, say), and a project run that uses it passes that confidence to the
  noise-aware certifier as the label's probability of being right.

What is served: while a project run waits for human labels, only the items it queued (its
queue first, and nothing else unless the labeler asks to go beyond it); otherwise items without
a current label (auto, human, aggregate, import or review), or also auto-labeled ones when the
owner asks for relabeling (project setting ``labeling.relabel``). Labels written meanwhile by
other processes (a run, an import, a review) are picked up before every choice, so an item a run
labeled is not served again.

Order: ``threshold`` (GTX §2.3 strategy 1) serves items in arrival order, queued items first;
``uncertainty`` (strategy 2, eq. 5) serves the most uncertain item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
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
#: Human labeler ids that never use the app (a simulated run's oracle): not part of the team.
NON_WEB_LABELERS = PSEUDO_LABELERS | {"simulated-oracle"}
#: Why a labeler skips an item; ``broken`` (the item cannot be shown) stops serving it to anyone.
SKIP_REASONS = ("unsure", "broken", "other")
#: Why an item is done (the ``note`` of its aggregate event): see the module docstring.
DONE_REASONS = ("tau", "kappa", "team")
#: Project settings (``project_meta`` keys) the session reads.
SETTING_RELABEL = "labeling.relabel"
SETTING_SHOW_VOTES = "labeling.show_votes_to_reviewers"
SETTING_INSTRUCTIONS = "instructions"
#: A lease that expired is still re-acquired by its labeler for this long (a long pause, a laptop lid).
REACQUIRE_SECONDS = 24 * 3600.0
MAX_COMMENT = 2000
MAX_INSTRUCTIONS = 100_000


class ConflictError(InputError):
    """The answer cannot be taken (no live lease, item already done, answered twice)."""


@dataclass
class Lease:
    labeler: str
    expires: float


class _LiveCollector(ThresholdCollector):
    """A threshold collector whose answers can be withdrawn (undo)."""

    def remove_label(self, task: Any, worker: Any) -> None:
        """Take ``worker``'s answer for ``task`` out of the item's posterior (the inverse of add_label)."""
        i = self._index[task]
        for k in range(len(self._log) - 1, -1, -1):
            if self._log[k][0] == task and self._log[k][1] == worker:
                break
        else:
            raise InputError(f"{self._owner}: worker {worker!r} has no answer for item {task!r}")
        same, other = self._terms(worker)
        code = self._code[self._log[k][2]]
        self._scores[i] -= other
        self._scores[i, code] -= same - other
        self._n[i] -= 1
        self._seen.discard((task, worker))
        del self._log[k]


def live_events(store: Any, sources: Sequence[str], conn: sa.Connection | None = None) -> pd.DataFrame:
    """Events of ``sources`` that no ``withdraw`` event cancelled, in order:
    ``seq, item, code, source, who, confidence, note, created``."""
    e, w = S.events, S.events.alias("w")
    q = (sa.select(e.c.seq, e.c.item, e.c.code, e.c.source, e.c.who, e.c.confidence, e.c.note, e.c.created)
         .where(e.c.source.in_(list(sources)), ~sa.exists().where(w.c.target == e.c.seq)).order_by(e.c.seq))
    if conn is None:
        with store.read() as c:
            rows = c.execute(q).fetchall()
    else:
        rows = conn.execute(q).fetchall()
    return pd.DataFrame(rows, columns=["seq", "item", "code", "source", "who", "confidence", "note", "created"])


class LabelingSession:
    """Serves items to labelers and records their answers (thread-safe; one per server process).

    Parameters
    ----------
    project : Project
    strategy : "threshold" | "uncertainty"
    tau : float in (0.5, 1]
        An item is done once its GTX confidence reaches ``tau`` ...
    kappa : int >= 1
        ... or once it has ``kappa`` labels, or once every labeler of the team voted on it.
    lease_seconds : float > 0
        How long a served item stays reserved for its labeler (the page renews it).
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
        self.collector = _LiveCollector(GTX(accuracies=self._accuracies or None), classes=list(self.project.classes),
                                        budget=max(1, n * self.kappa), tau=self.tau, kappa=self.kappa)
        self._agg: dict[int, tuple[int, float]] = {}  # item -> (code, confidence) of its live aggregate
        self._agg_seqs: dict[int, list[int]] = {}  # item -> seqs of its live aggregate events
        self._since_fit = 0
        self._correct: dict[str, float] = {}
        self._pos_to_idx: dict[int, int] = {}
        self._idx_pos: list[int] = []
        self._queued = np.zeros(0, dtype=bool)
        self._qrun = np.zeros(0, dtype=np.int64)  # run that queued the item (-1: none / the owner)
        self._qround = np.zeros(0, dtype=np.int64)
        self._finished = np.zeros(0, dtype=bool)  # live aggregate written
        self._cur = np.zeros(0, dtype=np.int8)  # precedence of the current label (-1: none)
        self._broken = np.zeros(0, dtype=bool)
        self._voters: dict[int, dict[str, int]] = {}  # item -> labeler -> seq of their live vote
        self._skips: dict[int, tuple[int, str, str]] = {}  # seq of a live skip -> (item, labeler, reason)
        self._skipped: dict[str, set[int]] = {}
        self._history: dict[str, list[tuple[str, int, int]]] = {}  # labeler -> live (kind, item, seq)
        self._leases: dict[int, dict[str, Lease]] = {}
        self._held: dict[str, int] = {}
        self._lapsed: dict[str, dict[int, float]] = {}  # labeler -> item -> when their lease expired
        self._queue_seq = 0
        self._open_runs: set[int] = set()
        self._team: frozenset[str] = frozenset()
        self._settings: dict[str, Any] = {}
        with st.read() as c:
            self._ev_seq = int(c.execute(sa.select(sa.func.coalesce(sa.func.max(S.events.c.seq), 0))).scalar_one())
            cur = {int(r[0]): int(r[1]) for r in c.execute(sa.select(S.current_label.c.item,
                                                                         S.current_label.c.precedence))}
            ev = live_events(st, ("vote", "aggregate", "skip"), conn=c)
        votes = ev[ev["source"] == "vote"]
        self._refresh_queue()
        self._add(sorted(set(votes["item"].astype(int)) | set(ev[ev["source"] == "skip"]["item"].astype(int))))
        unlabeled = np.setdiff1d(np.arange(n), np.fromiter(cur, dtype=np.int64, count=len(cur)))
        self._add([int(p) for p in unlabeled])
        for p, k in cur.items():
            if p in self._pos_to_idx:
                self._cur[self._pos_to_idx[p]] = k
        names = self.project.classes
        for r in ev.itertuples(index=False):  # replay of the live events into the session state
            p, who = int(r.item), str(r.who)
            if r.source == "vote":
                self.collector.add_label(p, who, names[int(r.code)])
                self._voters.setdefault(p, {})[who] = int(r.seq)
                self._history.setdefault(who, []).append(("vote", p, int(r.seq)))
            elif r.source == "skip":
                self._note_skip(int(r.seq), p, who, _reason(r.note))
            else:
                self._agg[p] = (int(r.code), float(r.confidence) if pd.notna(r.confidence) else float("nan"))
                self._agg_seqs.setdefault(p, []).append(int(r.seq))
        for p in self._agg:
            if p in self._pos_to_idx:
                self._finished[self._pos_to_idx[p]] = True
        with st.read() as c:
            self._refresh(c)
        rows: list[dict[str, Any]] = []
        if len(votes):
            # projects written before accuracies were estimated hold aggregates computed with an
            # uninformative default, and items a team of one answered were never finished:
            # both are repaired here, as new events
            rows = self._refit()
        self._write(rows)

    def _note_skip(self, seq: int, p: int, who: str, reason: str) -> None:
        self._skips[seq] = (p, who, reason)
        self._skipped.setdefault(who, set()).add(p)
        self._history.setdefault(who, []).append(("skip", p, seq))
        if reason == "broken" and p in self._pos_to_idx:
            self._broken[self._pos_to_idx[p]] = True

    def _refresh(self, c: sa.Connection) -> None:
        """Pick up what other writers did: the team, open runs, settings, current labels of changed items."""
        lab = c.execute(sa.select(S.labelers.c.id).where(S.labelers.c.kind == "human")).fetchall()
        self._team = frozenset(str(r[0]) for r in lab) - NON_WEB_LABELERS
        self._open_runs = {int(r[0]) for r in c.execute(sa.select(S.runs.c.id).where(
            S.runs.c.status.in_(["waiting", "running"])))}
        self._settings = {k: v for k, v in self._meta(c).items() if k.startswith("labeling.")}
        rows = c.execute(sa.select(S.events.c.seq, S.events.c.item).where(S.events.c.seq > self._ev_seq)).fetchall()
        if not rows:
            return
        self._ev_seq = max(int(r[0]) for r in rows)
        items = sorted({int(r[1]) for r in rows})
        cur: dict[int, int] = {}
        for k in range(0, len(items), 900):
            part = items[k:k + 900]
            cur.update({int(r[0]): int(r[1]) for r in c.execute(sa.select(
                S.current_label.c.item, S.current_label.c.precedence).where(S.current_label.c.item.in_(part)))})
        self._add([p for p in items if p not in self._pos_to_idx])
        for p in items:
            self._cur[self._pos_to_idx[p]] = cur.get(p, -1)

    @staticmethod
    def _meta(c: sa.Connection) -> dict[str, Any]:
        import json

        return {str(k): json.loads(v) for k, v in c.execute(sa.select(S.project_meta.c.key, S.project_meta.c.value))}

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
        over all the project's live votes, reviewed/imported items as gold, Beta(4, 1) prior: see
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

        Returns the aggregate events to write: finished items whose label or confidence moved, and
        voted items that the new scores (or the team) finish.
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
        gold_all = np.full(len(self._idx_pos), -1, dtype=np.int64)
        for p, k in self._gold_codes().items():
            if p in self._pos_to_idx:
                gold_all[self._pos_to_idx[p]] = k
        # the EM over the voted items only: items without votes (a fixed uniform prior) change no
        # accuracy, and a 100k-item pool made every answer cost seconds
        voted, task_c = np.unique(task, return_inverse=True)
        acc, correct, _, _ = one_coin_em(task_c, wcode, code, len(voted), len(workers), len(names),
                                         gold=gold_all[voted], fixed=fixed)
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
                out.append(self._aggregate_row(p, post, self._done_reason(i) or "tau",
                                               f"aggregate:{p}:refit:{self.collector.n_spent}:{k}:{float(post[k]):.6f}"))
        for p in self._voters:
            i = self._pos_to_idx[p]
            reason = None if self._finished[i] or p in self._agg else self._done_reason(i)
            if reason is not None:
                last = max(self._voters[p].values())
                out.append(self._aggregate_row(p, self.collector.proba_array(i), reason,
                                               f"aggregate:{p}:{reason}:{last}"))
        return out

    def _aggregate_row(self, p: int, post: np.ndarray, reason: str, key: str) -> dict[str, Any]:
        k = int(post.argmax())
        return {"item": p, "code": k, "source": "aggregate", "who": AGGREGATOR_ID, "confidence": float(post[k]),
                "note": reason, "key": key}

    def _write(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Append ``rows`` in one transaction and apply them to the session; returns key -> seq."""
        if not rows:
            return {}
        st = self.project.store
        with st.transaction() as c:
            st.append_events(pd.DataFrame(rows), conn=c)
            keys = [r["key"] for r in rows]
            seqs = {str(r[1]): int(r[0]) for r in c.execute(
                sa.select(S.events.c.seq, S.events.c.key).where(S.events.c.key.in_(keys)))}
        for r in rows:
            p, seq = int(r["item"]), seqs.get(r["key"])
            if r["source"] == "aggregate" and seq is not None:
                self._agg[p] = (int(r["code"]), float(r["confidence"]))
                self._agg_seqs.setdefault(p, []).append(seq)
                self._finished[self._pos_to_idx[p]] = True
        return seqs

    def _add(self, positions: list[int], queued: bool = False) -> None:
        new = [p for p in positions if p not in self._pos_to_idx]
        if not new:
            return
        start = len(self._idx_pos)
        self.collector.add_items(new)
        for k, p in enumerate(new):
            self._pos_to_idx[p] = start + k
        self._idx_pos.extend(new)
        m = len(new)
        self._queued = np.concatenate([self._queued, np.full(m, queued)])
        self._qrun = np.concatenate([self._qrun, np.full(m, -1, dtype=np.int64)])
        self._qround = np.concatenate([self._qround, np.full(m, -1, dtype=np.int64)])
        self._finished = np.concatenate([self._finished, np.zeros(m, dtype=bool)])
        self._cur = np.concatenate([self._cur, np.full(m, -1, dtype=np.int8)])
        self._broken = np.concatenate([self._broken, np.zeros(m, dtype=bool)])

    def _refresh_queue(self) -> None:
        with self.project.store.read() as c:
            rows = c.execute(sa.select(S.queue.c.seq, S.queue.c.item, S.queue.c.run_id, S.queue.c.round)
                             .where(S.queue.c.seq > self._queue_seq).order_by(S.queue.c.seq)).fetchall()
        if not rows:
            return
        self._queue_seq = int(rows[-1][0])
        pos = [int(r[1]) for r in rows]
        self._add(pos, queued=True)
        for _, p, run, rnd in rows:
            i = self._pos_to_idx[int(p)]
            self._queued[i] = True
            self._qrun[i] = -1 if run is None else int(run)
            self._qround[i] = -1 if rnd is None else int(rnd)

    # ------------------------------------------------------------------ what is served
    def _expire(self, now: float) -> None:
        for p in [p for p, ls in self._leases.items() if any(v.expires <= now for v in ls.values())]:
            for w in [w for w, v in self._leases[p].items() if v.expires <= now]:
                del self._leases[p][w]
                self._lapsed.setdefault(w, {})[p] = now
                if self._held.get(w) == p:
                    del self._held[w]
        for w in list(self._lapsed):
            self._lapsed[w] = {p: t for p, t in self._lapsed[w].items() if now - t < REACQUIRE_SECONDS}

    def _done_reason(self, i: int) -> str | None:
        """Why item ``i`` needs no more votes (one of :data:`DONE_REASONS`), or None."""
        p = self._idx_pos[i]
        voters = self._voters.get(p, {})
        if not voters:
            return None
        if len(voters) >= self.kappa:
            return "kappa"
        if float(self.collector.proba_array(i).max()) >= self.tau:
            return "tau"
        if self._team and self._team <= set(voters):
            return "team"
        return None

    def _open_queue(self) -> np.ndarray:
        open_runs = np.fromiter(self._open_runs, dtype=np.int64, count=len(self._open_runs))
        return self._queued & ((self._qrun < 0) | np.isin(self._qrun, open_runs))

    def _wanted(self) -> tuple[np.ndarray, np.ndarray]:
        """Items still wanted: those of an open run's queue, and the others (see the module docstring)."""
        openq = self._open_queue()
        closed = self._finished | self._broken
        in_queue = openq & ~closed & (self._cur < S.PRECEDENCE["human"])
        free = (self._cur < 0) | (bool(self._settings.get(SETTING_RELABEL)) & (self._cur == S.PRECEDENCE["auto"]))
        return in_queue, ~openq & ~closed & free

    def _can_take(self, i: int, labeler: str) -> bool:
        p = self._idx_pos[i]
        voters = self._voters.get(p, {})
        if labeler in voters or p in self._skipped.get(labeler, ()):
            return False
        others = sum(1 for w in self._leases.get(p, {}) if w != labeler)
        return len(voters) + others < self.kappa

    def _first(self, mask: np.ndarray, labeler: str) -> int | None:
        cand = np.flatnonzero(mask)
        if len(cand) == 0:
            return None
        if self.strategy == "uncertainty":
            u = uncertainty(self.collector.proba_array(cand))
            n_lab = np.array([len(self._voters.get(self._idx_pos[i], ())) for i in cand])
            cand = cand[np.lexsort((cand, n_lab, -u))]  # most uncertain, then fewest labels, then arrival
        for i in cand:  # stops at the first item this labeler may take
            if self._can_take(int(i), labeler):
                return int(i)
        return None

    def _choose(self, labeler: str, beyond_queue: bool) -> int | None:
        in_queue, free = self._wanted()
        i = self._first(in_queue, labeler)
        if i is not None:
            return i
        # while a run waits for its queue, other items are served only to those who ask for them
        if self._open_queue().any() and not beyond_queue:
            return None
        return self._first(free, labeler)

    def _servable(self, i: int) -> bool:
        in_queue, free = self._wanted()
        return bool(in_queue[i] or free[i])

    def next_item(self, labeler: str, *, beyond_queue: bool = False, reveal: bool = False) -> dict[str, Any] | None:
        """The item ``labeler`` should label now (leased to them), or None when nothing is left for them.

        ``beyond_queue``: serve items no run asked for even while a run's queue is open. ``reveal``:
        include the live posterior (the app sets it for reviewers when the project allows it);
        otherwise labelers see no aggregate before they answer.
        """
        self.project.store.require_labeler(labeler)
        with self.lock:
            now = time.time()
            self._expire(now)
            self._refresh_queue()
            with self.project.store.read() as c:
                self._refresh(c)
            held = self._held.get(labeler)
            if held is not None:
                h = self._pos_to_idx[held]
                if self._servable(h) and labeler not in self._voters.get(held, {}):
                    self._leases[held][labeler].expires = now + self.lease_seconds
                    return self._describe(held, reveal)
                self._release(labeler)  # done or labeled elsewhere meanwhile
            i = self._choose(labeler, beyond_queue)
            if i is None:
                return None
            p = self._idx_pos[i]
            self._lease(labeler, p, now)
            return self._describe(p, reveal)

    def _lease(self, labeler: str, p: int, now: float) -> None:
        self._release(labeler)
        self._leases.setdefault(p, {})[labeler] = Lease(labeler, now + self.lease_seconds)
        self._held[labeler] = p
        self._lapsed.get(labeler, {}).pop(p, None)

    def _release(self, labeler: str) -> None:
        p = self._held.pop(labeler, None)
        if p is not None:
            self._leases.get(p, {}).pop(labeler, None)
            self._lapsed.setdefault(labeler, {})[p] = time.time()  # another tab may still answer it

    def heartbeat(self, labeler: str, pos: int) -> bool:
        """Renew ``labeler``'s lease on ``pos`` (re-acquire it if it lapsed and the item still needs
        them); False when the item is no longer theirs to answer (answered, done, taken by others)."""
        self.project.store.require_labeler(labeler)
        with self.lock:
            now = time.time()
            self._expire(now)
            return self._hold(labeler, pos, now)

    def _hold(self, labeler: str, pos: int, now: float) -> bool:
        """Whether ``labeler`` holds ``pos`` now, re-acquiring their own lapsed lease if possible."""
        lease = self._leases.get(pos, {}).get(labeler)
        if lease is not None and lease.expires > now:
            lease.expires = now + self.lease_seconds
            return True
        i = self._pos_to_idx.get(pos)
        if i is None or pos not in self._lapsed.get(labeler, {}):
            return False
        if self._finished[i] or not self._can_take(i, labeler):
            return False
        self._lease(labeler, pos, now)
        return True

    def _describe(self, p: int, reveal: bool = True) -> dict[str, Any]:
        i = self._pos_to_idx[p]
        post = self.collector.proba_array(i)
        return {"pos": p, "n_labels": len(self._voters.get(p, ())), "posterior": post.tolist() if reveal else None,
                "done": bool(self._finished[i])}

    def status(self, pos: int) -> dict[str, Any]:
        """Why item ``pos`` is done or what it still needs: ``done, reason, confidence, n_votes, tau,
        kappa, can_still_vote`` (team members who have not voted) and a sentence saying it."""
        with self.lock:
            i = self._pos_to_idx[pos]
            voters = set(self._voters.get(pos, {}))
            conf = float(self.collector.proba_array(i).max()) if voters else None
            reason = self._done_reason(i) if self._finished[i] or voters else None
            if self._finished[i] and reason is None:
                reason = "tau"
            left = sorted(self._team - voters)
            if reason == "tau":
                text = f"done: the aggregate's confidence {conf:.3f} reached τ = {self.tau:g}"
            elif reason == "kappa":
                text = f"done: {len(voters)} votes, the most an item gets (κ = {self.kappa})"
            elif reason == "team":
                text = (f"done: every labeler of the project has voted; its confidence stays {conf:.3f} "
                        f"(below τ = {self.tau:g}), as GTX computes it")
            elif voters:
                text = (f"needs more votes: confidence {conf:.3f} < τ = {self.tau:g} and {len(voters)} of κ = "
                        f"{self.kappa} votes; {len(left)} other labeler(s) can still vote")
            else:
                text = "no votes yet"
            return {"done": reason is not None, "reason": reason, "confidence": conf, "n_votes": len(voters),
                    "tau": self.tau, "kappa": self.kappa, "can_still_vote": len(left), "text": text}

    # ------------------------------------------------------------------ answers
    def _seen_key(self, key: str) -> bool:
        with self.project.store.read() as c:
            return c.execute(sa.select(S.events.c.seq).where(S.events.c.key == key)).first() is not None

    def answer(self, labeler: str, pos: int, label: str, request_id: str) -> dict[str, Any]:
        """Record ``labeler``'s ``label`` for item ``pos``; returns the item's new state and status.

        Raises :class:`ConflictError` unless the labeler holds the item (a live lease, or their own
        lapsed one on an item that still needs them), :class:`InputError` for a label outside the
        classes or an unknown labeler. A repeated ``request_id`` returns the state without a new event.
        """
        st = self.project.store
        st.require_labeler(labeler)
        names = self.project.classes
        if label not in names:
            raise InputError(f"label {str(label)[:100]!r} is not one of the classes {list(names)}")
        key = f"vote:{_request_id(request_id)}"
        with self.lock:
            if self._seen_key(key):
                return {**self._describe(pos), "duplicate": True, "status": self.status(pos)}
            if pos not in self._pos_to_idx:
                raise ConflictError("this item is not being collected; ask for the next item")
            if labeler in self._voters.get(pos, {}):
                raise ConflictError(f"labeler {labeler!r} already answered this item (in another tab?); "
                                    "ask for the next item")
            now = time.time()
            self._expire(now)
            if not self._hold(labeler, pos, now):
                raise ConflictError(f"labeler {labeler!r} holds no lease on this item (it is done, or was "
                                    "never served to them); ask for the next item")
            i = self._pos_to_idx[pos]
            code = names.index(label)
            self.collector.add_label(pos, labeler, label)
            self._voters.setdefault(pos, {})[labeler] = -1
            self._release(labeler)
            self._since_fit += 1
            # accuracies are re-estimated from all votes after every answer while the project is small,
            # then after every 1% of the votes (EM is O(votes) per iteration)
            refreshed = self._refit() if self._since_fit >= max(1, self.collector.n_spent // 100) else []
            refreshed = [r for r in refreshed if r["item"] != pos]
            post = self.collector.proba_array(i)
            reason = self._done_reason(i)
            rows = [{"item": pos, "code": code, "source": "vote", "who": labeler, "key": key}]
            if reason is not None:
                # keyed by the vote: after an undo, the item's next aggregate must not collide with the withdrawn one
                rows.append(self._aggregate_row(pos, post, reason, f"aggregate:{pos}:{key}"))
            try:
                seqs = self._write(rows + refreshed)
            except Exception:
                self._load()  # the write failed: rebuild the in-memory state from the store
                raise
            self._voters[pos][labeler] = seqs[key]
            self._history.setdefault(labeler, []).append(("vote", pos, seqs[key]))
            return {"pos": pos, "n_labels": len(self._voters[pos]), "posterior": post.tolist(),
                    "done": reason is not None, "duplicate": False, "status": self.status(pos)}

    def skip(self, labeler: str, pos: int, reason: str, request_id: str, note: str = "") -> dict[str, Any]:
        """Pass on item ``pos`` (a ``skip`` event; ``reason`` one of :data:`SKIP_REASONS`).

        The labeler is not served the item again; a ``broken`` item is served to no one and listed
        by :func:`skipped_items` for the owner. Needs the item's lease, like an answer.
        """
        st = self.project.store
        st.require_labeler(labeler)
        if reason not in SKIP_REASONS:
            raise InputError(f"skip reason must be one of {list(SKIP_REASONS)}; got {str(reason)[:50]!r}")
        key = f"skip:{_request_id(request_id)}"
        text = reason + (f": {str(note).strip()[:500]}" if str(note or "").strip() else "")
        with self.lock:
            if self._seen_key(key):
                return {"pos": pos, "duplicate": True}
            now = time.time()
            self._expire(now)
            if pos not in self._pos_to_idx or not self._hold(labeler, pos, now):
                raise ConflictError(f"labeler {labeler!r} holds no lease on this item; ask for the next item")
            self._release(labeler)
            seqs = self._write([{"item": pos, "code": None, "source": "skip", "action": "skip", "who": labeler,
                                 "note": text, "key": key}])
            self._note_skip(seqs[key], pos, labeler, reason)
            return {"pos": pos, "duplicate": False, "reason": reason}

    def undo(self, labeler: str, request_id: str) -> dict[str, Any] | None:
        """Withdraw ``labeler``'s last answer or skip (a ``withdraw`` event; repeat to go further back).

        The vote no longer counts: the item's posterior drops it, and an aggregate it finished is
        withdrawn too (or rewritten, if the remaining votes still finish the item). The item is
        leased back to the labeler. Returns ``{"pos", "undone": "vote"|"skip", "label"}`` or None
        when there is nothing to undo. An answer a project run already used cannot be withdrawn.
        """
        st = self.project.store
        st.require_labeler(labeler)
        key = f"undo:{_request_id(request_id)}"
        with self.lock:
            if self._seen_key(key):
                return {"duplicate": True}
            hist = self._history.get(labeler, [])
            if not hist:
                return None
            kind, pos, seq = hist[-1]
            i = self._pos_to_idx[pos]
            rows = [{"item": pos, "code": None, "source": "withdraw", "action": "withdraw", "who": labeler,
                     "target": seq, "note": f"undo of {kind}", "key": key}]
            label, unfinish = None, False
            if kind == "vote":
                with st.read() as c:
                    used = c.execute(sa.select(S.run_answers.c.run_id).where(S.run_answers.c.item == pos)).first()
                if used is not None:
                    raise ConflictError(f"run {used[0]} already used this item's label; it cannot be withdrawn "
                                        "(a reviewer can relabel the item)")
                label = next(y for t, w, y in reversed(self.collector._log) if t == pos and w == labeler)
                self.collector.remove_label(pos, labeler)
                del self._voters[pos][labeler]
                if self._finished[i]:
                    reason = self._done_reason(i)
                    if reason is None:  # the vote finished the item: its aggregate goes too
                        unfinish = True
                        rows += [{"item": pos, "code": None, "source": "withdraw", "action": "withdraw",
                                  "who": labeler, "target": s, "note": "undo of the vote it aggregated",
                                  "key": f"{key}:aggregate:{s}"} for s in self._agg_seqs.get(pos, [])]
                    else:
                        rows.append(self._aggregate_row(pos, self.collector.proba_array(i), reason,
                                                        f"aggregate:{pos}:{key}"))
            try:
                self._write(rows)
            except Exception:
                self._load()
                raise
            hist.pop()
            if unfinish:
                self._finished[i] = False
                self._agg.pop(pos, None)
                self._agg_seqs.pop(pos, None)
            if kind == "skip":
                self._skips.pop(seq, None)
                self._skipped.get(labeler, set()).discard(pos)
                self._broken[i] = any(p == pos and r == "broken" for p, _, r in self._skips.values())
            if self._can_take(i, labeler):  # served back to the labeler, to answer again
                self._lease(labeler, pos, time.time())
            return {"pos": pos, "undone": kind, "label": label, "duplicate": False}

    # ------------------------------------------------------------------ progress
    def progress(self, labeler: str | None = None) -> dict[str, Any]:
        """Counts for the dashboard and the label page.

        ``items, done, queued, queued_left, votes`` over the session; ``runs``: per open run and
        round, the items it queued and how many still need a label (``left``); ``labelers``: live
        votes and skips per labeler; ``broken``: positions reported broken. With ``labeler``, also
        ``you``: their votes, skips, and the wanted items they may still take (``left_for_you``) and
        those that wait for other labelers only (``waiting_for_others``).
        """
        with self.lock:
            in_queue, free = self._wanted()
            openq = self._open_queue()
            labeled = self._finished | (self._cur >= S.PRECEDENCE["human"])
            runs = []
            for run, rnd in sorted({(int(a), int(b)) for a, b in zip(self._qrun[openq], self._qround[openq],
                                                                       strict=True)}):
                sel = openq & (self._qrun == run) & (self._qround == rnd)
                runs.append({"run_id": None if run < 0 else run, "round": None if rnd < 0 else rnd,
                             "total": int(sel.sum()), "left": int((sel & ~labeled & ~self._broken).sum())})
            votes: dict[str, int] = {}
            for vs in self._voters.values():
                for w in vs:
                    votes[w] = votes.get(w, 0) + 1
            skips: dict[str, int] = {}
            for _, w, _ in self._skips.values():
                skips[w] = skips.get(w, 0) + 1
            done = self._finished
            out: dict[str, Any] = {
                "items": len(self._idx_pos), "done": int(done.sum()), "queued": int(self._queued.sum()),
                "queued_left": int((self._queued & ~labeled).sum()), "votes": self.collector.n_spent,
                "open_queue": bool(openq.any()), "runs": runs,
                "labelers": [{"labeler": w, "votes": votes.get(w, 0), "skips": skips.get(w, 0)}
                             for w in sorted(self._team | set(votes) | set(skips))],
                "broken": [int(self._idx_pos[i]) for i in np.flatnonzero(self._broken)[:1000]],
            }
            if labeler is not None:
                mine = in_queue if openq.any() else free
                seen = {p for k, p, _ in self._history.get(labeler, [])}
                idx = np.fromiter((self._pos_to_idx[p] for p in seen), dtype=np.int64, count=len(seen))
                waiting = int(mine[idx].sum())  # wanted, but this labeler already answered or skipped them
                mine_left = int(mine.sum()) - waiting
                out["you"] = {"labeler": labeler, "votes": votes.get(labeler, 0), "skips": skips.get(labeler, 0),
                              "left_for_you": int(mine_left), "waiting_for_others": int(waiting),
                              "can_undo": bool(self._history.get(labeler)),
                              "free_left": int(free.sum()) if openq.any() else None}
            return out


def _request_id(request_id: Any) -> str:
    rid = "" if request_id is None else str(request_id)
    if not rid or len(rid) > 100:
        raise InputError("request_id must be 1-100 characters")
    return rid


def _reason(note: Any) -> str:
    text = "" if note is None or (isinstance(note, float) and np.isnan(note)) else str(note)
    head = text.split(":", 1)[0].strip()
    return head if head in SKIP_REASONS else "other"


# ---------------------------------------------------------------------------------- reviews, notes
def unreject(project: Project, positions: Sequence[int], *, who: str, key: str) -> int:
    """Reverse review rejections: for each item whose current label is a rejection, a ``withdraw``
    event cancelling it, so the label before the rejection is current again (and can be accepted).

    Items not currently rejected are refused, naming the first. Keyed ``unreject:<key>:<pos>``;
    returns the number of new events.
    """
    pos = sorted({int(p) for p in positions})
    if not pos:
        raise InputError("ids must list at least one item")
    keys = {p: f"unreject:{key}:{p}" for p in pos}
    cl = S.current_label
    with project.store.read() as c:
        cur = {int(r[0]): (int(r[1]), r[2], str(r[3])) for r in c.execute(
            sa.select(cl.c.item, cl.c.seq, cl.c.code, cl.c.source).where(cl.c.item.in_(pos)))}
        done = {str(r[0]) for r in c.execute(sa.select(S.events.c.key).where(S.events.c.key.in_(list(keys.values()))))}
    todo = [p for p in pos if keys[p] not in done]  # a retried request: those items are already un-rejected
    for p in todo:
        if p not in cur or cur[p][1] is not None or cur[p][2] != "review":
            raise InputError(f"item at position {p} has no review rejection to reverse")
    if not todo:
        return 0
    return project.store.append_events([{"item": p, "code": None, "source": "withdraw", "action": "withdraw",
                                         "who": who, "target": cur[p][0], "note": "un-reject",
                                         "key": keys[p]} for p in todo])


def skipped_items(project: Project) -> pd.DataFrame:
    """Live skips (not undone): ``id, pos, who, reason, note, created``, newest first."""
    ev = live_events(project.store, ("skip",))
    ids = project.store.items(("pos", "id")).set_index("pos")["id"]
    return pd.DataFrame({"id": ids.reindex(ev["item"].astype(int)).to_numpy(), "pos": ev["item"].astype(int),
                         "who": ev["who"], "reason": [_reason(n) for n in ev["note"]], "note": ev["note"],
                         "created": ev["created"]}).iloc[::-1].reset_index(drop=True)


def add_comment(project: Project, pos: int, *, who: str, text: str, key: str) -> bool:
    """Append a comment on item ``pos`` (never edited or deleted); False if ``key`` was already used."""
    text = str(text or "").strip()
    if not text or len(text) > MAX_COMMENT:
        raise InputError(f"a comment must be 1-{MAX_COMMENT} characters")
    t = S.comments
    with project.store.transaction() as c:
        if c.execute(sa.select(t.c.seq).where(t.c.key == f"comment:{key}")).first():
            return False
        c.execute(sa.insert(t).values(item=int(pos), who=str(who), text=text, created=time.time(),
                                      key=f"comment:{key}"))
    return True


def comments(project: Project, pos: int) -> list[dict[str, Any]]:
    """Comments on item ``pos`` in order: ``who, text, created``."""
    t = S.comments
    with project.store.read() as c:
        rows = c.execute(sa.select(t.c.who, t.c.text, t.c.created).where(t.c.item == int(pos))
                         .order_by(t.c.seq)).fetchall()
    return [{"who": str(w), "text": str(x), "created": float(k)} for w, x, k in rows]


def set_instructions(project: Project, text: str) -> None:
    """The project's instructions for labelers (markdown; the label page shows a safe subset of it)."""
    text = str(text)
    if len(text) > MAX_INSTRUCTIONS:
        raise InputError(f"instructions are limited to {MAX_INSTRUCTIONS} characters; got {len(text)}")
    project.store.set_meta({SETTING_INSTRUCTIONS: text})


def instructions(project: Project) -> str:
    return str(project.store.meta().get(SETTING_INSTRUCTIONS, ""))


def labeler_accuracy(project: Project, interval: float = 0.95) -> pd.DataFrame:
    """Each human labeler's accuracy on gold items (current label from a review or an import).

    Columns: labeler, n_votes, n_gold, n_correct, posterior_mean, lower, upper (Beta(1, 1) prior),
    and the accuracy registered for the labeler (``registered``), if any. Withdrawn votes do not count.
    """
    st = project.store
    votes = live_events(st, ("vote",))
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
