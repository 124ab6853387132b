"""Votes of labelers with no registered accuracy must count (issue 16, defect 1).

A one-coin labeler of accuracy 1/K carries no information, so the old default (0.5, the mean of a
Beta(1, 1) prior) made two-class votes vanish: three unanimous votes left the item at class 0 with
confidence 0.5. Accuracies are now estimated from the project's own votes (one-coin EM, Beta(4, 1)
prior, gold = reviewed/imported items); a registered accuracy is used as given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelsieve.crowd.accuracy import EM_ACCURACY_PRIOR, one_coin_em
from labelsieve.crowd.gtx import gtx_posterior
from labelsieve.data import Dataset
from labelsieve.store.labeling import LabelingSession
from labelsieve.store.project import Project, init_project


def _project(tmp_path: Path, k: int, registered: float | None, n: int = 6) -> Project:
    rng = np.random.default_rng(k)
    ds = Dataset(ids=[f"i{j}" for j in range(n)], X=rng.normal(size=(n, 3)).astype(np.float32),
                 classes=tuple(f"c{j}" for j in range(k)), name=f"k{k}")
    p = init_project(tmp_path / f"k{k}-{registered}", ds)
    for w in ("ann", "bob", "cy"):
        p.store.add_labeler(w, gold_accuracy=registered)
    return p


def _vote(s: LabelingSession, who: str, label: str) -> dict:
    got = s.next_item(who)
    assert got is not None
    return s.answer(who, got["pos"], label, request_id=f"{who}-{got['pos']}-{label}")


@pytest.mark.parametrize("k", [2, 3, 10])
@pytest.mark.parametrize("registered", [None, 0.9])
def test_unanimous_votes_decide_the_item_for_any_number_of_classes(tmp_path: Path, k: int,
                                                                    registered: float | None) -> None:
    p = _project(tmp_path, k, registered)
    s = LabelingSession(p, tau=0.95, kappa=3)
    target = p.classes[1]  # not class 0, which an uninformative vote would fall back to
    last = None
    for w in ("ann", "bob", "cy"):
        last = _vote(s, w, target)
        if last["done"]:
            break
    assert last is not None and last["done"]
    post = np.asarray(last["posterior"])
    assert int(post.argmax()) == 1 and post[1] >= 0.95
    cur = p.store.current_labels()
    row = cur[cur["pos"] == last["pos"]].iloc[0]
    assert int(row["code"]) == 1 and row["source"] == "aggregate" and float(row["confidence"]) >= 0.95
    table = s.accuracy_table().set_index("labeler")
    if registered is None:
        assert set(table.loc[["ann", "bob"], "basis"]) == {"estimated"}
        # agreeing labelers are estimated above the prior mean, inside their interval
        for w in ("ann", "bob"):
            acc, lo, hi = table.loc[w, ["accuracy", "lower", "upper"]]
            assert acc > EM_ACCURACY_PRIOR[0] / sum(EM_ACCURACY_PRIOR) and lo < acc < hi
    else:
        assert (table.loc[["ann", "bob", "cy"], "accuracy"] == registered).all()
        assert set(table["basis"]) == {"registered"}


@pytest.mark.parametrize("k", [2, 3, 10])
def test_split_votes_follow_the_majority_with_less_confidence(tmp_path: Path, k: int) -> None:
    p = _project(tmp_path, k, None)
    s = LabelingSession(p, tau=0.999, kappa=3)  # tau out of reach: every item gets all three votes
    _vote(s, "ann", p.classes[1])
    _vote(s, "bob", p.classes[1])
    split = _vote(s, "cy", p.classes[0])
    assert split["done"]
    post = np.asarray(split["posterior"])
    assert int(post.argmax()) == 1
    # the same accuracies on a unanimous item give a higher confidence
    acc = s.accuracy_table().set_index("labeler")["accuracy"]
    unanimous = gtx_posterior(np.zeros(3, int), np.ones(3, int), acc.loc[["ann", "bob", "cy"]].to_numpy(),
                              np.full(k, -np.log(k)), 1)[0]
    assert 1.0 / k < post[1] < unanimous[1]


def test_aggregates_written_with_the_old_default_are_repaired_on_load(tmp_path: Path) -> None:
    p = _project(tmp_path, 2, None)
    # what the defect wrote: three votes for c1 and an aggregate at class 0 with confidence 0.5
    p.store.append_events([{"item": 0, "code": 1, "source": "vote", "who": w, "key": f"v{w}"} for w in ("ann", "bob", "cy")]
                          + [{"item": 0, "code": 0, "source": "aggregate", "who": "GTX", "confidence": 0.5,
                              "key": "aggregate:0"}])
    s = LabelingSession(p, tau=0.95, kappa=3)
    cur = p.store.current_labels().set_index("pos")
    assert int(cur.loc[0, "code"]) == 1 and float(cur.loc[0, "confidence"]) > 0.95
    assert s.next_item("ann")["pos"] != 0  # still finished


def test_one_coin_em_hand_cases() -> None:
    # one labeler alone: their answers confirm themselves, so the estimate stays at the prior mean
    t = np.arange(5)
    acc, *_ = one_coin_em(t, np.zeros(5, int), np.ones(5, int), 5, 1, 2)
    assert acc[0] == pytest.approx(0.8)
    # a labeler who always disagrees with two agreeing ones is estimated below them
    task = np.repeat(np.arange(20), 3)
    worker = np.tile([0, 1, 2], 20)
    label = np.where(worker == 2, 0, 1)
    acc, _, _, post = one_coin_em(task, worker, label, 20, 3, 2)
    assert acc[2] < 0.5 < acc[0] and acc[0] == pytest.approx(acc[1])
    assert (post.argmax(1) == 1).all()
    # fixed point of the M-step: acc_j = (a + sum_i P(Y_i = y_ij)) / (a + b + n_j)
    a, b = EM_ACCURACY_PRIOR
    assert acc[0] == pytest.approx((a + post[:, 1].sum()) / (a + b + 20), abs=1e-6)
    # a registered accuracy is kept; gold items pin the posterior and so the estimate
    acc_f, *_ = one_coin_em(task, worker, label, 20, 3, 2, fixed=np.array([np.nan, 0.7, np.nan]))
    assert acc_f[1] == 0.7
    gold = np.zeros(20, int)  # the truth is class 0 everywhere: worker 2 is the good one
    acc_g, *_ = one_coin_em(task, worker, label, 20, 3, 2, gold=gold)
    assert acc_g[2] == pytest.approx((a + 20) / (a + b + 20)) and acc_g[0] == pytest.approx(a / (a + b + 20))
