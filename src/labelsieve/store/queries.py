"""What the web app reads from a project store, and the item review it writes.

Pure functions of a :class:`~labelsieve.store.project.Project` (and, for the dashboard, the live
:class:`~labelsieve.store.labeling.LabelingSession`): the app's routers parse a request, call one of
these and return the result as JSON, so every table query and statistic is here and tested
without a server. Item review (:func:`review_items`) sits beside box review
(:func:`labelsieve.store.boxes.box_review`): one event per item, all in one transaction.

Results are JSON-ready: numpy scalars become Python numbers and NaN becomes None (:func:`clean`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labelsieve.errors import InputError
from labelsieve.store import boxes as B
from labelsieve.store import schema as S

if TYPE_CHECKING:
    from labelsieve.store.labeling import LabelingSession
    from labelsieve.store.project import Project

REVIEW_ACTIONS = ("accept", "reject", "relabel")
#: Most items one review request may decide.
MAX_REVIEW_IDS = 500


def clean(v: Any) -> Any:
    """A JSON-ready scalar: numpy scalars as Python numbers; NaN, ±inf and pandas NA as None
    (JSON has no non-finite numbers: a threshold of +inf, "nothing certified", is None).

    >>> clean(np.float32(0.5)), clean(float("nan")), clean(float("inf")), clean(np.int64(3)), clean("a")
    (0.5, None, None, 3, 'a')
    """
    if v is pd.NA or v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _class_code(classes: Sequence[str], name: str | None) -> int | None:
    if not name:
        return None
    if name not in classes:
        raise InputError(f"class {name[:100]!r} is not one of {list(classes)}")
    return list(classes).index(name)


# ---------------------------------------------------------------------------------- items
def item_detail(project: Project, pos: int) -> dict[str, Any]:
    """An item's current label and source (None if unlabeled or rejected) and its events in order."""
    classes = project.classes
    ev = project.store.events(items=[int(pos)])
    events = [{"seq": int(r.seq), "label": None if clean(r.code) is None else classes[int(r.code)],
               "source": r.source, "action": r.action, "who": r.who, "confidence": clean(r.confidence),
               "round": None if clean(r.round) is None else int(r.round)}
              for r in ev.itertuples()]
    with project.store.read() as c:
        cur = c.execute(sa.select(S.current_label.c.code, S.current_label.c.source)
                        .where(S.current_label.c.item == int(pos))).first()
    label = None if cur is None or cur[0] is None else classes[int(cur[0])]
    return {"label": label, "source": None if cur is None else cur[1], "events": events}


def current_codes(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """Per item position: current class code (-1 if none, or rejected) and source ("unlabeled" if none).

    Rejected items keep their source ("review"), with code -1.
    """
    n = project.store.n_items()
    code = np.full(n, -1, dtype=np.int64)
    source = np.full(n, "unlabeled", dtype=object)
    with project.store.read() as c:
        rows = c.execute(sa.select(S.current_label.c.item, S.current_label.c.code,
                                   S.current_label.c.source)).fetchall()
    if rows:
        item = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        code[item] = [-1 if r[1] is None else int(r[1]) for r in rows]
        source[item] = [r[2] for r in rows]
    return code, source


# ---------------------------------------------------------------------------------- review
def review_queue(project: Project, *, cls: str | None = None, round: int | None = None, page: int = 0,
                 page_size: int = 50) -> tuple[int, pd.DataFrame]:
    """Auto-labeled items awaiting review, least confident first (then by position).

    Returns the number matching the filters and one page of them: ``pos, label, confidence, round``.
    """
    classes = project.classes
    cl = S.current_label
    cond = [cl.c.source == "auto"]
    code = _class_code(classes, cls)
    if code is not None:
        cond.append(cl.c.code == code)
    if round is not None:
        cond.append(cl.c.round == round)
    with project.store.read() as c:
        total = c.execute(sa.select(sa.func.count()).select_from(cl).where(*cond)).scalar_one()
        rows = c.execute(sa.select(cl.c.item, cl.c.code, cl.c.confidence, cl.c.round).where(*cond)
                         .order_by(cl.c.confidence.asc(), cl.c.item).limit(page_size)
                         .offset(max(page, 0) * page_size)).fetchall()
    df = pd.DataFrame({"pos": [int(r[0]) for r in rows], "label": [classes[int(r[1])] for r in rows],
                       "confidence": [r[2] for r in rows], "round": [r[3] for r in rows]})
    return int(total), df


def review_items(project: Project, positions: Sequence[int], action: str, *, who: str, label: str | None = None,
                 key: str) -> int:
    """Accept, reject or relabel items: one ``review`` event per item, in one transaction.

    ``accept`` confirms each item's current label (an item without one is refused), ``relabel``
    sets ``label`` on all of them, ``reject`` records that the current label is wrong. Events are
    keyed ``review:<key>:<pos>``, so a repeated ``key`` adds nothing. Returns the number of new events.
    """
    if action not in REVIEW_ACTIONS:
        raise InputError(f"action must be accept, reject or relabel; got {str(action)[:50]!r}")
    pos = [int(p) for p in positions]
    if not pos or len(pos) > MAX_REVIEW_IDS:
        raise InputError(f"ids must be a list of 1-{MAX_REVIEW_IDS} item ids")
    classes = project.classes
    with project.store.read() as c:
        cur = {int(r[0]): r[1] for r in c.execute(sa.select(S.current_label.c.item, S.current_label.c.code)
                                                   .where(S.current_label.c.item.in_(pos)))}
    if action == "relabel":
        lab = str(label or "")
        if lab not in classes:
            raise InputError(f"label {lab[:100]!r} is not one of the classes {list(classes)}")
        codes: list[int | None] = [classes.index(lab)] * len(pos)
    elif action == "accept":
        missing = [p for p in pos if cur.get(p) is None]
        if missing:
            with project.store.read() as c:
                name = c.execute(sa.select(S.items.c.id).where(S.items.c.pos == missing[0])).scalar()
            raise InputError(f"item {str(name)[:200]!r} has no label to accept")
        codes = [int(cur[p]) for p in pos]
    else:
        codes = [None] * len(pos)
    return project.store.append_events(pd.DataFrame({
        "item": pos, "code": pd.array(codes, dtype="Int64"), "source": "review", "action": action,
        "who": who, "key": [f"review:{key}:{p}" for p in pos]}))


# ---------------------------------------------------------------------------------- dashboard
def label_counts(project: Project) -> dict[str, Any]:
    """Labeled items by source of their current label, live events by source (withdrawn ones left
    out), rejected items."""
    with project.store.read() as c:
        by_source = {r[0]: int(r[1]) for r in c.execute(
            sa.select(S.current_label.c.source, sa.func.count()).where(S.current_label.c.code.is_not(None))
            .group_by(S.current_label.c.source))}
        w = S.events.alias("w")  # events a withdraw cancelled (an undone vote) are not counted
        by_event = {r[0]: int(r[1]) for r in c.execute(
            sa.select(S.events.c.source, sa.func.count())
            .where(~sa.exists().where(w.c.target == S.events.c.seq)).group_by(S.events.c.source))}
        rejected = c.execute(sa.select(sa.func.count()).select_from(S.current_label)
                             .where(S.current_label.c.code.is_(None))).scalar_one()
    return {"by_source": by_source, "by_event": by_event, "rejected": int(rejected)}


def run_history(project: Project) -> pd.DataFrame:
    """One row per committed round of every run: run_id, round, and the round's statistics."""
    t = S.run_rounds
    with project.store.read() as c:
        rows = c.execute(sa.select(t.c.run_id, t.c.round, t.c.stats).order_by(t.c.run_id, t.c.round)).fetchall()
    recs = [{"run_id": int(a), "round": int(b), **{k: v for k, v in json.loads(s).items() if k != "round"}}
            for a, b, s in rows]
    return pd.DataFrame(recs)


ROUND_FIELDS = ("run_id", "round", "coverage", "error_bound", "human_labels", "n_auto_total", "auto_label_error")


def _certified(thr: Any) -> bool | None:
    """Whether a round certified any threshold (None: the round stored no thresholds)."""
    if not isinstance(thr, list) or not thr:
        return None
    return any(t is not None and np.isfinite(float(t)) for t in thr)


def last_run_rounds(project: Project) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rounds of the latest run (``ROUND_FIELDS`` of each) and its last thresholds by class name.

    A round stored without a field (or with NaN) gives None for it; thresholds are keyed ``"all"``
    when the run used one threshold for every class.
    """
    hist = run_history(project)
    if len(hist) == 0:
        return [], {}
    classes = project.classes
    last = hist[hist["run_id"] == hist["run_id"].max()]
    rounds = [{**{k: clean(r.get(k)) for k in ROUND_FIELDS}, "certified": _certified(r.get("thresholds"))}
              for r in last.to_dict("records")]
    thr = last.iloc[-1].get("thresholds")
    if not isinstance(thr, list) or not thr:
        return rounds, {}
    thresholds = {classes[k]: clean(t) for k, t in enumerate(thr)} if len(thr) == len(classes) \
        else {"all": clean(thr[0])}
    return rounds, thresholds


def labeler_summary(project: Project, used: pd.DataFrame) -> list[dict[str, Any]]:
    """Per labeler: the accuracy the aggregate uses (``used``, from the session) and the gold accuracy."""
    from labelsieve.store.labeling import labeler_accuracy

    gold = labeler_accuracy(project)[["labeler", "n_gold", "n_correct", "posterior_mean", "lower", "upper"]]
    gold = gold.rename(columns={"posterior_mean": "gold_accuracy", "lower": "gold_lower", "upper": "gold_upper"})
    acc = used.merge(gold, on="labeler", how="left")
    return [{k: clean(v) for k, v in r.items()} for r in acc.to_dict("records")]


def reliability(project: Project, n_bins: int = 10) -> dict[str, Any]:
    """Reliability of auto-labels: against review verdicts if any, else against ground truth.

    An accepted item counts as correct, a rejected one as wrong, a relabeled one as correct iff the
    new label is the auto-label. ``basis`` is None when neither reviews nor truth exist.
    """
    from labelsieve.metrics import reliability_curve

    st = project.store
    empty: dict[str, Any] = {"basis": None, "confidence": [], "accuracy": [], "count": []}
    auto = st.events(source="auto").drop_duplicates("item", keep="last")
    if len(auto) == 0:
        return empty
    rev = st.events(source="review").drop_duplicates("item", keep="last").set_index("item")
    reviewed = auto[auto["item"].isin(rev.index)]
    if len(reviewed):
        basis = "reviews"
        conf = reviewed["confidence"].to_numpy(dtype=float)
        verdict = rev.loc[reviewed["item"]]
        correct = ((verdict["action"] == "accept") | ((verdict["action"] == "relabel")
                   & (verdict["code"].to_numpy() == reviewed["code"].to_numpy()))).to_numpy(dtype=float)
    else:
        truth = project.truth()
        if truth is None:
            return empty
        t = truth[auto["item"].to_numpy()]
        keep = t >= 0
        basis = "ground truth"
        conf = auto["confidence"].to_numpy(dtype=float)[keep]
        correct = (auto["code"].to_numpy(dtype=np.int64)[keep] == t[keep]).astype(float)
    rc = reliability_curve(np.clip(conf, 0, 1), correct, n_bins=n_bins)
    return {"basis": basis, "n": len(conf), "confidence": [clean(v) for v in rc.confidence],
            "accuracy": [clean(v) for v in rc.accuracy], "count": rc.count.tolist(), "edges": rc.edges.tolist()}


def dashboard(project: Project, session: LabelingSession) -> dict[str, Any]:
    """Everything the dashboard page shows: counts, the latest run's rounds, labelers, reliability."""
    counts = label_counts(project)
    by_source, by_event = counts["by_source"], counts["by_event"]
    rounds, thresholds = last_run_rounds(project)
    return {
        "n_items": project.store.n_items(), "labeled": int(sum(by_source.values())), "by_source": by_source,
        "rejected": counts["rejected"], "labels_spent": by_event.get("vote", 0) + by_event.get("human", 0),
        "votes": by_event.get("vote", 0), "reviews": by_event.get("review", 0), "rounds": rounds,
        "thresholds": thresholds, "labelers": labeler_summary(project, session.accuracy_table()),
        "reliability": reliability(project), "collection": session.progress(),
    }


# ---------------------------------------------------------------------------------- map
def map_points(project: Project, xy: np.ndarray, ids: Sequence[str], *, limit: int, offset: int = 0
               ) -> list[list[Any]]:
    """Every ``n // limit``-th item (starting at ``offset`` modulo the step), at most ``limit`` of them.

    Each point is ``[id, x, y, label or None, source or "unlabeled"]``.
    """
    n = len(xy)
    step = max(1, n // limit)
    idx = np.arange(offset % step, n, step)[:limit]
    code, source = current_codes(project)
    names = np.asarray(list(project.classes) + [None], dtype=object)  # code -1 -> None
    lab = names[code[idx]]
    src = source[idx]
    return [[ids[p], float(x), float(y), lab[j], src[j]]
            for j, (p, x, y) in enumerate(zip(idx.tolist(), xy[idx, 0].tolist(), xy[idx, 1].tolist(),
                                              strict=True))]


# ---------------------------------------------------------------------------------- boxes
def box_records(df: pd.DataFrame, classes: Sequence[str]) -> list[dict[str, Any]]:
    """JSON records of :func:`~labelsieve.store.boxes.current_boxes` rows."""
    names = np.asarray(list(classes), dtype=object)
    out = []
    cols = zip(df["box"], df["item"], df["x1"], df["y1"], df["x2"], df["y2"], names[df["code"].to_numpy()],
               names[df["proposed"].to_numpy()], df["score"], df["status"], df["has_mask"], df["who"],
               df["decided_by"], strict=True)
    for b, it, x1, y1, x2, y2, cl, pr, sc, stt, hm, who, dec in cols:  # one JSON record per box
        out.append({"id": int(b), "item": int(it), "x1": float(x1), "y1": float(y1), "x2": float(x2),
                    "y2": float(y2), "class": cl, "proposed": pr, "score": clean(sc), "status": stt,
                    "mask": bool(hm), "who": who, "decided_by": dec})
    return out


def box_page(project: Project, *, cls: str | None = None, score_min: float | None = None,
             score_max: float | None = None, status: str | None = None, page: int = 0,
             page_size: int = 12) -> dict[str, Any]:
    """One page of the box review queue: images ordered as :func:`~labelsieve.store.boxes.image_queue`
    orders them, each with its size and its boxes that match the filters.

    Each image is ``{id, pos, width, height, lowest_pending, lowest, boxes}`` (size 0 x 0 when the
    image was never measured); ``counts`` are the matching boxes per status.
    """
    classes = list(project.classes)
    if cls and cls not in classes:
        raise InputError(f"class {cls[:100]!r} is not one of the project classes {classes}")
    if status and status not in B.STATUSES:
        raise InputError(f"status {status[:20]!r} is not one of {list(B.STATUSES)}")
    if score_min is not None and score_max is not None and score_min > score_max:
        raise InputError(f"the score range is empty: min {score_min:g} > max {score_max:g}")
    filt: dict[str, Any] = {"cls": cls or None, "score_min": score_min, "score_max": score_max, "status": status or None}
    order, counts = B.image_queue(project, **filt)
    shown = order.iloc[page * page_size:(page + 1) * page_size]
    sizes = B.box_images(project, shown["item"].tolist()).set_index("item")
    sel = B.current_boxes(project, items=shown["item"].tolist(), **filt)
    per = {int(k): v for k, v in sel.groupby("item", sort=False)}
    images = []
    cols = zip(shown["item"], shown["image"], shown["lowest_pending"], shown["lowest"], strict=True)
    for it, name, pend, low in cols:  # one record per image
        w, h = (int(sizes.at[it, "width"]), int(sizes.at[it, "height"])) if it in sizes.index else (0, 0)
        images.append({"id": name, "pos": int(it), "width": w, "height": h, "lowest_pending": clean(pend),
                       "lowest": clean(low), "boxes": box_records(per[int(it)], classes)})
    return {"total_images": len(order), "total_boxes": int(order["n"].sum()), "page": page,
            "page_size": page_size, "counts": counts, "classes": classes, "images": images}
