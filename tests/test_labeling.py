"""The labeling session (issue 16, defects 4-9 and the features skip, undo, progress, comments,
instructions): what a labeler is served, when an item is done, and what a withdrawal does to the
derived labels.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as hst

from labelsieve.cli import main
from labelsieve.data import Dataset
from labelsieve.errors import InputError
from labelsieve.store import PRECEDENCE, Store
from labelsieve.store import labeling as L
from labelsieve.store import schema as S
from labelsieve.store.labeling import ConflictError, LabelingSession
from labelsieve.store.project import Project, export_labels, init_project


def _project(tmp_path: Path, labelers: dict[str, float | None], n: int = 8, k: int = 10) -> Project:
    rng = np.random.default_rng(0)
    ds = Dataset(ids=[f"i{j}" for j in range(n)], X=rng.normal(size=(n, 3)).astype(np.float32),
                 classes=tuple(str(c) for c in range(k)), name="p")
    p = init_project(tmp_path / "p", ds)
    for w, acc in labelers.items():
        p.store.add_labeler(w, gold_accuracy=acc)
    return p


def _answer(s: LabelingSession, who: str, label: str, **kw) -> dict:
    got = s.next_item(who, **kw)
    assert got is not None
    return s.answer(who, got["pos"], label, request_id=f"{who}-{got['pos']}-{label}-{time.monotonic_ns()}")


def _queue(p: Project, positions: list[int], run_id: int = 1, rnd: int = 0, status: str = "waiting") -> None:
    with p.store.transaction() as c:
        if not c.execute(sa.select(S.runs.c.id).where(S.runs.c.id == run_id)).first():
            c.execute(sa.insert(S.runs).values(id=run_id, kind="tbal", config="{}", status=status, started=0.0))
        c.execute(sa.insert(S.queue), [{"item": q, "run_id": run_id, "round": rnd, "created": 0.0} for q in positions])


# ---------------------------------------------------------------------------------- defect 4
def test_a_team_of_one_finishes_items_with_the_defaults_and_keeps_the_gtx_confidence(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None})
    s = LabelingSession(p)  # tau 0.95, kappa 3
    r = _answer(s, "ann", "4")
    # one labeler at the prior-mean accuracy 0.8 over 10 classes: GTX gives 0.8, below tau
    assert r["done"] and r["status"]["reason"] == "team"
    assert r["posterior"][4] == pytest.approx(0.8) and "every labeler" in r["status"]["text"]
    cur = p.store.current_labels().set_index("pos")
    assert cur.loc[r["pos"], "label"] == "4" and cur.loc[r["pos"], "source"] == "aggregate"
    assert float(cur.loc[r["pos"], "confidence"]) == pytest.approx(0.8)  # not inflated to tau
    assert s.next_item("ann")["pos"] != r["pos"]
    assert export_labels(p, "csv", tmp_path / "out.csv") == 1


def test_two_labelers_need_both_and_an_expert_finishes_alone(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None, "bob": None, "pro": 0.97})
    s = LabelingSession(p)
    r = _answer(s, "ann", "3")
    assert not r["done"] and r["status"]["can_still_vote"] == 2
    assert "needs more votes: confidence 0.800 < τ = 0.95 and 1 of κ = 3 votes" in r["status"]["text"]
    e = _answer(s, "pro", "5")  # served the next item? no: threshold strategy keeps asking about the first
    assert e["pos"] == r["pos"]
    # an expert alone: one vote of registered accuracy 0.97 >= tau gives a GTX confidence of 0.97
    e2 = _answer(s, "pro", "6")
    assert e2["done"] and e2["status"]["reason"] == "tau" and max(e2["posterior"]) == pytest.approx(0.97)


def test_items_a_lone_labeler_answered_before_are_finished_on_load(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None})
    p.store.append_events([{"item": j, "code": 2, "source": "vote", "who": "ann", "key": f"v{j}"} for j in range(3)])
    assert len(p.store.current_labels()) == 0  # what the old session left: votes, no label
    LabelingSession(p)
    cur = p.store.current_labels()
    assert sorted(cur["pos"]) == [0, 1, 2] and set(cur["source"]) == {"aggregate"}
    assert np.allclose(cur["confidence"], 0.8)


# ---------------------------------------------------------------------------------- defect 5: undo
def test_undo_withdraws_the_vote_and_the_aggregate_it_made_and_nothing_is_deleted(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None})
    s = LabelingSession(p)
    r = _answer(s, "ann", "4")
    n_events = p.store.n_events()
    u = s.undo("ann", "u1")
    assert u["undone"] == "vote" and u["label"] == "4" and u["pos"] == r["pos"]
    assert s.undo("ann", "u1") == {"duplicate": True}  # a retried undo does nothing more
    ev = p.store.events()
    assert len(ev) == n_events + 2  # the vote and the aggregate are withdrawn, both still stored
    assert list(ev["source"].iloc[-2:]) == ["withdraw", "withdraw"]
    assert len(p.store.current_labels()) == 0 and p.store.current_labels().equals(p.store.current_by_window())
    # the item comes back to the labeler with a prior posterior, and they answer again
    again = s.next_item("ann", reveal=True)
    assert again["pos"] == r["pos"] and again["n_labels"] == 0 and max(again["posterior"]) == pytest.approx(0.1)
    r2 = s.answer("ann", r["pos"], "9", "second")
    assert r2["done"] and int(np.argmax(r2["posterior"])) == 9
    assert p.store.current_labels().set_index("pos").loc[r["pos"], "label"] == "9"
    assert s.undo("ann", "u2")["label"] == "9" and s.undo("ann", "u3") is None  # nothing further back
    votes = L.live_events(p.store, ("vote",))
    assert len(votes) == 0 and L.labeler_accuracy(p).set_index("labeler").loc["ann", "n_votes"] == 0
    # a restarted session replays the withdrawals: no vote counts
    s2 = LabelingSession(p)
    assert s2.collector.n_spent == 0 and s2.progress("ann")["you"]["votes"] == 0


def test_undo_of_a_skip_and_of_a_vote_a_run_used(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None, "bob": None})
    s = LabelingSession(p)
    got = s.next_item("ann")
    s.skip("ann", got["pos"], "unsure", "s1")
    assert s.next_item("ann")["pos"] != got["pos"]
    assert s.undo("ann", "u1")["undone"] == "skip"
    assert s.next_item("ann")["pos"] == got["pos"]  # served again
    r = s.answer("ann", got["pos"], "1", "a1")
    with p.store.transaction() as c:
        c.execute(sa.insert(S.runs).values(id=7, kind="tbal", config="{}", status="waiting", started=0.0))
        c.execute(sa.insert(S.run_answers).values(run_id=7, item=r["pos"], code=1))
    with pytest.raises(ConflictError, match="run 7 already used"):
        s.undo("ann", "u2")


def test_unreject_restores_the_label_before_the_rejection(tmp_path: Path) -> None:
    from labelsieve.store import queries as Q

    p = _project(tmp_path, {"rev": None})
    p.store.append_events([{"item": 0, "code": 3, "source": "auto", "who": "m", "confidence": 0.7, "round": 1}])
    Q.review_items(p, [0], "reject", who="rev", key="r1")
    assert Q.review_queue(p)[0] == 0 and len(p.store.current_labels()) == 0
    with pytest.raises(InputError, match="no review rejection"):
        L.unreject(p, [1], who="rev", key="x")
    assert L.unreject(p, [0], who="rev", key="k") == 1 and L.unreject(p, [0], who="rev", key="k") == 0
    cur = p.store.current_labels().set_index("pos")
    assert cur.loc[0, "source"] == "auto" and cur.loc[0, "label"] == "3"
    assert Q.review_queue(p)[0] == 1
    assert Q.review_items(p, [0], "accept", who="rev", key="a1") == 1  # accept works again
    assert p.store.current_labels().set_index("pos").loc[0, "source"] == "review"


_EV = hst.tuples(hst.integers(0, 4), hst.integers(0, 2), hst.sampled_from(sorted(PRECEDENCE)))


@settings(max_examples=60, deadline=None)
@given(hst.lists(hst.one_of(_EV, hst.integers(0, 40)), min_size=1, max_size=40), hst.integers(1, 6))
def test_withdrawals_keep_the_materialised_labels_equal_to_the_window_query(stream, batch) -> None:
    """Random streams of label events and withdrawals of earlier ones (an int: withdraw the n-th live
    event, modulo), written in batches: current_label == window query == a brute-force derivation."""
    st = Store("sqlite://")
    st.set_classes(["a", "b", "c"])
    st.add_items(pd.DataFrame({"id": [f"i{k}" for k in range(5)]}))
    log: list[dict] = []  # what was written: seq, item, code, precedence
    withdrawn: set[int] = set()
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            st.append_events(pending)
            pending.clear()

    for step in stream:
        if isinstance(step, tuple):
            i, c, src = step
            pending.append({"item": i, "code": c, "source": src, "who": "w"})
            log.append({"seq": len(log) + 1, "item": i, "code": c, "prec": PRECEDENCE[src], "withdraw": False})
        else:
            flush()  # a withdrawal names a stored event
            live = [e for e in log if not e["withdraw"] and e["seq"] not in withdrawn]
            if not live:
                continue
            t = live[step % len(live)]
            pending.append({"item": t["item"], "code": None, "source": "withdraw", "action": "withdraw",
                            "who": "w", "target": t["seq"]})
            log.append({"seq": len(log) + 1, "item": t["item"], "code": None, "prec": 0, "withdraw": True})
            withdrawn.add(t["seq"])
        if len(pending) >= batch:
            flush()
    flush()
    cur = st.current_labels(include_rejected=True)
    assert cur.equals(st.current_by_window(include_rejected=True))
    expect: dict[int, tuple[tuple[int, int], int]] = {}
    for e in log:
        live = e["prec"] > 0 and e["seq"] not in withdrawn
        if live and (e["item"] not in expect or (e["prec"], e["seq"]) >= expect[e["item"]][0]):
            expect[e["item"]] = ((e["prec"], e["seq"]), e["code"])
    assert dict(zip(cur["pos"], cur["code"].astype(int), strict=True)) == {i: v[1] for i, v in expect.items()}
    st.rebuild_current()
    assert st.current_labels(include_rejected=True).equals(cur)


def test_bad_withdrawals_are_refused(tmp_path: Path) -> None:
    st = Store("sqlite://")
    st.set_classes(["a", "b"])
    st.add_items(pd.DataFrame({"id": ["x", "y"]}))
    st.append_events([{"item": 0, "code": 1, "source": "auto", "who": "m"}])
    w = {"code": None, "source": "withdraw", "action": "withdraw", "who": "w"}
    with pytest.raises(InputError, match="does not exist"):
        st.append_events([{**w, "item": 0, "target": 99}])
    with pytest.raises(InputError, match="belongs to item 0"):
        st.append_events([{**w, "item": 1, "target": 1}])
    with pytest.raises(InputError, match="needs the seq"):
        st.append_events([{**w, "item": 0}])
    st.append_events([{**w, "item": 0, "target": 1}])
    with pytest.raises(InputError, match="itself a withdrawal"):
        st.append_events([{**w, "item": 0, "target": 2}])
    with pytest.raises(InputError, match="skip"):
        st.append_events([{"item": 0, "code": 1, "source": "skip", "action": "skip", "who": "w"}])


def test_a_store_of_version_4_gets_the_columns_and_the_comments_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        S.migrate(c, target=1)
        c.execute(sa.text("ALTER TABLE events DROP COLUMN note"))
        c.execute(sa.text("DROP INDEX ix_events_target"))
        c.execute(sa.text("ALTER TABLE events DROP COLUMN target"))
        S.migrate(c, target=4)
    eng.dispose()
    st = Store(url)
    assert st.schema_version == S.SCHEMA_VERSION
    with st.read() as c:
        cols = {col["name"] for col in sa.inspect(c).get_columns("events")}
        assert {"target", "note"} <= cols and sa.inspect(c).has_table("comments")


# ---------------------------------------------------------------------------------- defect 6
def test_labelers_see_no_aggregate_before_they_answer(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None, "bob": None, "cy": None})
    s = LabelingSession(p)
    _answer(s, "ann", "2")
    got = s.next_item("bob")
    assert got["posterior"] is None  # bob is served ann's item without her answer in it
    assert s.next_item("bob", reveal=True)["posterior"][2] == pytest.approx(0.8)


# ---------------------------------------------------------------------------------- defect 7: skip
def test_a_broken_item_is_skipped_reported_and_served_to_no_one(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None, "bob": None})
    s = LabelingSession(p)
    got = s.next_item("ann")
    with pytest.raises(InputError, match="skip reason"):
        s.skip("ann", got["pos"], "bored", "x")
    with pytest.raises(ConflictError):
        s.skip("bob", got["pos"], "broken", "x")  # bob holds another item, not this one
    s.skip("ann", got["pos"], "broken", "s1", note="image does not load")
    assert s.skip("ann", got["pos"], "broken", "s1")["duplicate"]
    assert s.next_item("bob")["pos"] != got["pos"]
    sk = L.skipped_items(p)
    assert sk[["pos", "who", "reason"]].values.tolist() == [[got["pos"], "ann", "broken"]]
    assert "image does not load" in sk["note"].iloc[0]
    assert s.progress()["broken"] == [got["pos"]]
    assert LabelingSession(p).progress()["broken"] == [got["pos"]]  # replayed on load


# ---------------------------------------------------------------------------------- defect 8
def test_the_runs_queue_is_served_first_and_alone_and_its_progress_is_counted(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None}, n=10)
    _queue(p, [5, 7, 9], run_id=3, rnd=2)
    s = LabelingSession(p)
    pr = s.progress("ann")
    assert pr["runs"] == [{"run_id": 3, "round": 2, "total": 3, "left": 3}]
    served = [_answer(s, "ann", "1")["pos"] for _ in range(3)]
    assert served == [5, 7, 9]  # the queue, in its order, and nothing else
    assert s.next_item("ann") is None  # queue done: other items only when asked for
    pr = s.progress("ann")
    assert pr["runs"][0]["left"] == 0 and pr["open_queue"] and pr["you"]["free_left"] == 7
    assert s.next_item("ann", beyond_queue=True)["pos"] == 0
    # once the run is complete its queue is no longer open: free labeling
    with p.store.transaction() as c:
        c.execute(sa.update(S.runs).values(status="complete"))
    assert s.next_item("ann")["pos"] == 0 and not s.progress()["open_queue"]


def test_items_labeled_elsewhere_while_serving_are_not_served(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None, "bob": None}, n=10)
    s = LabelingSession(p)
    # a run auto-labels items 0-4 while the app is up (9 of 10 served in the issue)
    p.store.append_events([{"item": j, "code": 1, "source": "auto", "who": "m"} for j in range(5)])
    p.store.append_events([{"item": 5, "code": 1, "source": "human", "who": "simulated-oracle"}])
    got = s.next_item("ann")
    assert got["pos"] == 6
    # unless the owner asks for relabeling: auto-labeled items come back, human ones do not
    p.store.set_meta({L.SETTING_RELABEL: True})
    assert s.next_item("bob")["pos"] == 0
    assert all(s.next_item(w) is None or s.next_item(w)["pos"] != 5 for w in ("ann", "bob"))


def test_a_queued_item_with_an_auto_label_is_served_but_one_with_a_human_label_is_not(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None}, n=6)
    p.store.append_events([{"item": 1, "code": 1, "source": "auto", "who": "m"},
                           {"item": 2, "code": 1, "source": "import", "who": "import"}])
    _queue(p, [1, 2, 3])
    s = LabelingSession(p)
    assert [_answer(s, "ann", "0")["pos"] for _ in range(2)] == [1, 3]
    assert s.next_item("ann") is None


# ---------------------------------------------------------------------------------- defect 9
def test_a_lapsed_lease_is_reacquired_and_a_second_tab_gets_a_conflict(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(L.time, "time", lambda: clock[0])
    p = _project(tmp_path, {"ann": None, "bob": None, "cy": None})
    s = LabelingSession(p, lease_seconds=300)
    got = s.next_item("ann")
    clock[0] += 200
    assert s.heartbeat("ann", got["pos"])  # renewed to 1500
    clock[0] += 250
    assert s.heartbeat("ann", got["pos"])  # still live thanks to the renewal
    clock[0] += 10_000  # a long pause: the lease lapsed
    r = s.answer("ann", got["pos"], "3", "after-pause")  # re-acquired: the item still needs ann
    assert r["n_labels"] == 1
    # a second tab still shows the same item: its answer is a conflict, not an error page
    with pytest.raises(ConflictError, match="already answered"):
        s.answer("ann", got["pos"], "3", "other-tab")
    assert not s.heartbeat("ann", got["pos"])
    with pytest.raises(ConflictError, match="holds no lease"):
        s.answer("bob", got["pos"], "3", "never-served")  # bob never held it


# ---------------------------------------------------------------------------------- features
def test_progress_per_labeler(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None, "bob": None}, n=6)
    s = LabelingSession(p)
    _answer(s, "ann", "1")
    got = s.next_item("ann")
    s.skip("ann", got["pos"], "unsure", "s")
    _answer(s, "bob", "1")
    pr = s.progress("ann")
    assert {r["labeler"]: (r["votes"], r["skips"]) for r in pr["labelers"]} == {"ann": (1, 1), "bob": (1, 0)}
    assert pr["you"]["votes"] == 1 and pr["you"]["skips"] == 1 and pr["you"]["can_undo"]
    # 6 unlabeled items, one finished by both: 5 wanted; ann answered or skipped 1 of those still open
    assert pr["you"]["left_for_you"] + pr["you"]["waiting_for_others"] == 5 and pr["you"]["waiting_for_others"] == 1


def test_comments_are_append_only_and_idempotent(tmp_path: Path) -> None:
    p = _project(tmp_path, {"ann": None})
    assert L.add_comment(p, 0, who="ann", text="blurry <b>", key="c1")
    assert not L.add_comment(p, 0, who="ann", text="blurry <b>", key="c1")
    assert L.add_comment(p, 0, who="ann", text="second", key="c2")
    assert [c["text"] for c in L.comments(p, 0)] == ["blurry <b>", "second"] and L.comments(p, 1) == []
    with pytest.raises(InputError, match="1-2000"):
        L.add_comment(p, 0, who="ann", text="  ", key="c3")


def test_init_and_serve_set_the_instructions(tmp_path: Path) -> None:
    md = tmp_path / "guide.md"
    md.write_text("# Guide\n\nPress **the digit**.\n", encoding="utf-8")
    assert main(["init", str(tmp_path / "d"), "--dataset", "digits", "--instructions", str(md)]) == 0
    assert L.instructions(Project(tmp_path / "d")).startswith("# Guide")
    with pytest.raises(InputError, match="limited to"):
        L.set_instructions(Project(tmp_path / "d"), "x" * (L.MAX_INSTRUCTIONS + 1))
