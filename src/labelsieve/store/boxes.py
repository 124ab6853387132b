"""Boxes and masks in the project store: proposals with provenance, and append-only decisions.

A project whose items are images can hold proposed boxes (``boxes``: xyxy pixels, a proposed
class, a score, an optional COCO RLE mask, who proposed it: a detector labeler, an imported COCO /
YOLO file, a human) and decisions about them (``box_events``: accept, reject or relabel, by a
reviewer in the app or automatically by a score threshold). Nothing is updated or deleted.

**Status of a box** = its winning event: the highest precedence (``review`` 3 beats ``auto`` 1,
the same numbers as item events), then the latest. No event: ``pending``; ``accept`` ->
``accepted``; ``reject`` -> ``rejected``; ``relabel`` -> ``relabeled``. The **final class** is the
winning event's class (an accept records the class it accepted), else the proposed class. So an
automatic acceptance never overrides a reviewer, whatever the order in which they were written.

Every function writes in one transaction: on bad input nothing is written. Writes carry keys:
importing the same boxes twice adds nothing, and a repeated review request (same ``key``) or a
repeated automatic acceptance (same thresholds) adds no event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labelsieve.errors import InputError
from labelsieve.store import schema as S
from labelsieve.store.core import Store, _bulk_insert

if TYPE_CHECKING:
    from labelsieve.detect.boxes import Detections
    from labelsieve.store.project import Project

log = logging.getLogger(__name__)

STATUSES = ("pending", "accepted", "rejected", "relabeled")
ORDERS = ("score", "id")
#: project meta key: category id of each class name in the first imported detections (for exports)
CATEGORY_META = "box_category_ids"
_CHUNK = 900  # IN-list size (SQLite's default limit on bound parameters is 999)

CURRENT_COLUMNS = ("box", "item", "image", "x1", "y1", "x2", "y2", "proposed", "code", "class", "score",
                   "status", "has_mask", "source", "who", "decided_by", "decision_source", "seq")


def _store(x: Project | Store) -> Store:
    return x if isinstance(x, Store) else x.store


def _key_hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- adding boxes
def _match_images(store: Store, images: pd.DataFrame, used: np.ndarray, source: str) -> np.ndarray:
    """Item position of each image (by item id, else by file name), -1 for unused unknown images."""
    items = store.items(("pos", "id", "kind", "source"))
    by_id = dict(zip(items["id"], items["pos"], strict=True))
    base = pd.Series([PurePosixPath(i).name for i in items["id"]])
    uniq = ~base.duplicated(keep=False)
    by_name = dict(zip(base[uniq], items["pos"][uniq], strict=True))
    names = images["file_name"].astype(str).to_numpy()
    out = np.full(len(images), -1, dtype=np.int64)
    for r, name in enumerate(names):  # one dict lookup per image
        p = by_id.get(name)
        if p is None:
            p = by_name.get(PurePosixPath(name.replace("\\", "/")).name)
        if p is None:
            p = by_id.get(str(images["image_id"].iat[r]))
        if p is None:
            if used[r]:
                raise InputError(f"{source}: image {int(images['image_id'].iat[r])} '{name}' is not an item of the "
                                 f"project (images are matched to item ids or file names)")
            continue
        out[r] = int(p)
    hit = out[out >= 0]
    dup = pd.Series(hit).duplicated()
    if dup.any():
        p = int(hit[int(np.flatnonzero(dup.to_numpy())[0])])
        who = names[out == p].tolist()
        raise InputError(f"{source}: images {who} all match the project item {items['id'].iat[p]!r}")
    kind = items["kind"].to_numpy()[out[used]] if used.any() else np.array([])
    if len(kind) and (kind != "image").any():
        r = int(np.flatnonzero(used)[int(np.flatnonzero(kind != "image")[0])])
        raise InputError(f"{source}: image '{names[r]}' matches project item {items['id'].iat[out[r]]!r}, "
                         f"which is not an image (kind {kind[kind != 'image'][0]!r})")
    return out


def _image_sizes(project: Project | None, store: Store, pos: np.ndarray) -> np.ndarray:
    """(width, height) of each item image, read from file headers (or raw.npy); -1 when unknown."""
    items = store.items(("pos", "source"))
    src = items["source"].to_numpy(dtype=object)
    out = np.full((len(pos), 2), -1, dtype=np.int64)
    from PIL import Image, UnidentifiedImageError

    for k, p in enumerate(pos):  # file headers, one image at a time
        s = str(src[p])
        if s.startswith("raw.npy#"):
            if project is not None:
                arr = project.raw_array(int(s.split("#", 1)[1]))
                out[k] = (arr.shape[1], arr.shape[0])
            continue
        try:
            with Image.open(s) as im:
                out[k] = im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{s}: the image of item {items['pos'].iat[p]} cannot be decoded "
                             f"({type(exc).__name__})") from None
    return out


def add_detections(project_or_store: Project | Store, dets: Detections, *, who: str, source: str = "model",
                   run_id: int | None = None, check_sizes: bool = True) -> int:
    """Store the boxes (and masks) of ``dets`` as proposals on the project's image items.

    Parameters
    ----------
    project_or_store : Project or Store — a project whose items are the images.
    dets : Detections — images are matched to items by item id, else by file name, else by
        ``str(image_id)``; categories to project classes by name.
    who : str — the detector (model name) or the imported file; recorded on every box.
    source : "model" | "import" | "human"
    run_id : int, optional
    check_sizes : bool — compare each image's size in ``dets`` with the image file's header.

    Returns
    -------
    int — the number of new boxes (boxes already stored from the same ``who`` are skipped).

    Raises :class:`InputError` naming the first unknown image, class, or wrong image size; the
    whole import is one transaction, so nothing is half-written.
    """
    st = _store(project_or_store)
    project = None if isinstance(project_or_store, Store) else project_or_store
    who = str(who).strip()
    if not who or len(who) > 200:
        raise InputError(f"'who' must be 1-200 characters; got {who!r}")
    if source not in S.BOX_SOURCES:
        raise InputError(f"box source must be one of {list(S.BOX_SOURCES)}; got {source!r}")
    classes = st.classes()
    code_of = {c: i for i, c in enumerate(classes)}
    b = dets.boxes
    used_cats = np.unique(b["category_id"].to_numpy(dtype=np.int64))
    for c in used_cats:
        name = dets.categories[int(c)]
        if name not in code_of:
            raise InputError(f"{dets.source}: category {name!r} (id {int(c)}) is not one of the project classes "
                             f"{list(classes)}")
    cat_code = {int(c): code_of.get(n, -1) for c, n in dets.categories.items()}
    img = dets.images
    img_row = pd.Index(img["image_id"].to_numpy()).get_indexer(b["image_id"].to_numpy())
    used = np.zeros(len(img), dtype=bool)
    used[img_row] = True
    pos_of_img = _match_images(st, img, used, dets.source)
    known = pos_of_img >= 0
    if check_sizes and known.any():
        sizes = _image_sizes(project, st, pos_of_img[known])
        wh = img.loc[known, ["width", "height"]].to_numpy(dtype=np.int64)
        bad = (sizes[:, 0] >= 0) & ((sizes != wh).any(axis=1))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            name = img["file_name"].to_numpy()[known][r]
            raise InputError(f"{dets.source}: image '{name}' is {wh[r, 0]}x{wh[r, 1]} (w x h) in the detections but "
                             f"the project's image is {sizes[r, 0]}x{sizes[r, 1]}")
    masks = b["mask"].tolist() if "mask" in b.columns else [None] * len(b)
    mask_txt = [None if m is None or (isinstance(m, float) and math.isnan(m)) else
                json.dumps({"size": [int(s) for s in m["size"]],
                            "counts": m["counts"].decode("ascii") if isinstance(m["counts"], bytes) else m["counts"]})
                for m in masks]
    score = b["score"].to_numpy(dtype=np.float64)
    rows = pd.DataFrame({
        "item": pos_of_img[img_row],
        "x1": b["x1"].to_numpy(np.float64), "y1": b["y1"].to_numpy(np.float64),
        "x2": b["x2"].to_numpy(np.float64), "y2": b["y2"].to_numpy(np.float64),
        "code": pd.Series(b["category_id"].to_numpy(np.int64)).map(cat_code).to_numpy(np.int64),
        "score": pd.array(np.where(np.isfinite(score), score, np.nan), dtype="Float64"),
        "mask": pd.Series(mask_txt, dtype=object),
    })
    # content key: the same box (image, corners, class, score, mask) from the same `who` is stored once
    h = pd.util.hash_pandas_object(rows.astype({"mask": str, "score": float}), index=False).to_numpy()
    wk = _key_hash(source, who)
    rows["key"] = [f"box:{wk}:{v:016x}" for v in h]
    rows = rows[~rows["key"].duplicated()].copy()
    rows["source"], rows["who"], rows["run_id"], rows["created"] = source, who, run_id, time.time()
    with st.transaction() as c:
        have = _existing(c, S.boxes.c.key, rows["key"].tolist())
        new = rows[~rows["key"].isin(have)]
        ipos = pos_of_img[known]
        old = {int(r[0]): (int(r[1]), int(r[2])) for r in _select_in(
            c, sa.select(S.box_images.c.item, S.box_images.c.width, S.box_images.c.height), S.box_images.c.item,
            ipos.tolist())}
        wh = img.loc[known, ["width", "height"]].to_numpy(dtype=np.int64)
        for p, (w, hh), name in zip(ipos, wh, img["file_name"].to_numpy()[known], strict=True):
            if int(p) in old and old[int(p)] != (int(w), int(hh)):
                raise InputError(f"{dets.source}: image '{name}' is {w}x{hh} but boxes stored earlier for it were "
                                 f"made on {old[int(p)][0]}x{old[int(p)][1]}")
        add_img = pd.DataFrame({"item": ipos, "width": wh[:, 0], "height": wh[:, 1], "created": time.time()})
        add_img = add_img[~add_img["item"].isin(old)]
        if len(add_img):
            _bulk_insert(c, S.box_images, add_img)
        if len(new):
            _bulk_insert(c, S.boxes, new)
            if source == "human":  # a box a person drew is accepted by that person: one review event each
                got = _select_in(c, sa.select(S.boxes.c.id, S.boxes.c.code), S.boxes.c.key, new["key"].tolist())
                acc = pd.DataFrame(got, columns=["box", "code"])
                acc = acc.assign(action="accept", who=who, source="review",
                                 precedence=S.BOX_EVENT_PRECEDENCE["review"], created=time.time())
                acc["key"] = [f"human:{wk}:{b}" for b in acc["box"]]
                _bulk_insert(c, S.box_events, acc)
        lab = c.execute(sa.select(S.labelers.c.id).where(S.labelers.c.id == who)).first()
        if lab is None and source != "human":
            st.add_labeler(who, kind="model", name=f"boxes ({source})", conn=c)
        meta = c.execute(sa.select(S.project_meta.c.value).where(S.project_meta.c.key == CATEGORY_META)).first()
        if meta is None:
            ids = {n: int(cid) for cid, n in dets.categories.items() if n in code_of}
            st.set_meta({CATEGORY_META: ids}, conn=c)
    log.info("added %d of %d boxes from %s", len(new), len(b), who)
    return len(new)


def _select_in(conn: sa.Connection, query: sa.Select, col: sa.Column, values: Sequence[Any]) -> list[tuple]:
    out: list[tuple] = []
    for i in range(0, len(values), _CHUNK):
        out.extend(tuple(r) for r in conn.execute(query.where(col.in_(list(values[i:i + _CHUNK])))))
    return out


def _existing(conn: sa.Connection, col: sa.Column, values: Sequence[Any]) -> set[Any]:
    return {r[0] for r in _select_in(conn, sa.select(col), col, values)}


# ---------------------------------------------------------------------------------- decisions
def _class_code(classes: Sequence[str], code: int | str | None, what: str = "class") -> int:
    if isinstance(code, (int, np.integer)) and not isinstance(code, bool):
        if not 0 <= int(code) < len(classes):
            raise InputError(f"{what} code {int(code)} is outside the project's {len(classes)} classes")
        return int(code)
    if str(code) in classes:
        return list(classes).index(str(code))
    raise InputError(f"{what} {str(code)[:100]!r} is not one of the project classes {list(classes)}")


def _box_ids(box_ids: Iterable[Any]) -> list[int]:
    ids: list[int] = []
    for b in box_ids:
        try:
            v = int(b)
            if isinstance(b, float) and v != b or isinstance(b, bool):
                raise ValueError
        except (TypeError, ValueError):
            raise InputError(f"box id {str(b)[:50]!r} is not an integer") from None
        if not 0 <= v < 2**63:
            raise InputError(f"box id {str(b)[:50]} is out of range")
        ids.append(v)
    if not ids:
        raise InputError("no box ids given")
    return ids


#: An automatic accept that a later threshold no longer supports is withdrawn by an ``auto``
#: event with this action; a withdrawn box is pending again (reviews still win over both).
WITHDRAW = "withdraw"

_WIN_SQL = """
SELECT box, CASE WHEN action = 'withdraw' THEN NULL ELSE action END AS action, code, who, source, seq FROM (
    SELECT box, action, code, who, source, seq,
           ROW_NUMBER() OVER (PARTITION BY box ORDER BY precedence DESC, seq DESC) AS rn
    FROM box_events {where}
) AS ranked WHERE rn = 1
"""


def _current_codes(conn: sa.Connection, ids: Sequence[int]) -> dict[int, int]:
    """Final class of each of ``ids`` that exists (winning event's class, else the proposal)."""
    got = {int(r[0]): int(r[1]) for r in _select_in(conn, sa.select(S.boxes.c.id, S.boxes.c.code), S.boxes.c.id,
                                                    list(ids))}
    for i in range(0, len(ids), _CHUNK):
        part = [int(v) for v in ids[i:i + _CHUNK]]
        sql = _WIN_SQL.format(where=f"WHERE box IN ({', '.join(str(v) for v in part)})")
        for box, _a, code, *_ in conn.execute(sa.text(sql)):
            if code is not None:
                got[int(box)] = int(code)
    return got


def box_review(store: Project | Store, box_ids: Iterable[int], action: str, *, who: str,
               code: int | str | None = None, key: str | None = None, source: str = "review",
               confidence: float | Sequence[float] | None = None, threshold: float | Sequence[float] | None = None,
               run_id: int | None = None) -> int:
    """Accept, reject or relabel boxes: one event per box, all in one transaction.

    Parameters
    ----------
    store : Store or Project
    box_ids : ints — box ids (``current_boxes()["box"]``).
    action : "accept" | "reject" | "relabel"
    who : str — the reviewer (or the rule, for ``source="auto"``).
    code : class name or code — required for ``relabel``; for ``accept`` the class accepted
        (default: each box's current class); not allowed for ``reject``.
    key : str, optional — idempotency: events are keyed ``key:box``; a repeated key adds nothing.
    source : "review" | "auto"
    confidence, threshold : float or one per box, optional (recorded on the events).

    Returns
    -------
    int — the number of new events.

    >>> from labelsieve.store.core import Store
    >>> st = Store("sqlite://"); st.set_classes(["cat", "dog"])
    >>> box_review(st, [1], "accept", who="ann")
    Traceback (most recent call last):
    ...
    labelsieve.errors.InputError: unknown box id 1
    """
    st = _store(store)
    if action not in S.BOX_ACTIONS:
        raise InputError(f"action must be one of {list(S.BOX_ACTIONS)}; got {str(action)[:50]!r}")
    if source not in S.BOX_EVENT_PRECEDENCE:
        raise InputError(f"box event source must be one of {list(S.BOX_EVENT_PRECEDENCE)}; got {source!r}")
    who = str(who).strip()
    if not who or len(who) > 200:
        raise InputError(f"'who' must be 1-200 characters; got {who[:210]!r}")
    ids = list(dict.fromkeys(_box_ids(box_ids)))
    classes = st.classes()
    if action == "relabel" and code is None:
        raise InputError("relabel needs the new class")
    if action == "reject" and code is not None:
        raise InputError("a rejection takes no class (reject the box, or relabel it)")
    fixed = None if code is None else _class_code(classes, code)
    if key is not None and (not str(key) or len(str(key)) > 150):
        raise InputError("key must be 1-150 characters")
    conf = _per_box(confidence, len(ids), "confidence")
    thr = _per_box(threshold, len(ids), "threshold")
    with st.transaction() as c:
        cur = _current_codes(c, ids)
        missing = [i for i in ids if i not in cur]
        if missing:
            raise InputError(f"unknown box id {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                                 else ""))
        if action == "reject":
            codes: list[int | None] = [None] * len(ids)
        elif fixed is not None:
            codes = [fixed] * len(ids)
        else:
            codes = [cur[i] for i in ids]
        ev = pd.DataFrame({"box": ids, "action": action, "code": pd.array(codes, dtype="Int64"), "who": who,
                           "source": source, "precedence": S.BOX_EVENT_PRECEDENCE[source], "confidence": conf,
                           "threshold": thr, "run_id": run_id, "created": time.time(),
                           "key": [None if key is None else f"{key}:{i}" for i in ids]})
        if key is not None:
            ev = ev[~ev["key"].isin(_existing(c, S.box_events.c.key, ev["key"].tolist()))]
        if len(ev):
            _bulk_insert(c, S.box_events, ev)
        return len(ev)


def _per_box(v: float | Sequence[float] | None, n: int, name: str) -> np.ndarray:
    if v is None:
        return np.full(n, np.nan)
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise InputError(f"{name} must be one number or one per box ({n}); got shape {a.shape}")
    return a


def thresholds_from_report(report: pd.DataFrame | str | Path, method: str = "guarantee") -> dict[str, float]:
    """Per-class thresholds (class name -> threshold) from a :class:`~labelsieve.detect.BoxThresholds` report.

    ``report``: ``BoxThresholds.report_`` or the CSV written by ``labelsieve detect thresholds --out``;
    ``method``: which column, ``guarantee`` (``threshold_guarantee``), ``best-f1`` or ``recall``.
    A class without a threshold (+inf) accepts nothing. A JSON file ``{"class": threshold}`` works too.
    """
    cols = {"guarantee": "threshold_guarantee", "best-f1": "threshold_best_f1", "recall": "threshold_recall"}
    if method not in cols:
        raise InputError(f"method must be one of {list(cols)}; got {method!r}")
    if not isinstance(report, pd.DataFrame):
        path = Path(report)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
            if not isinstance(data, dict):
                raise InputError(f"{path}: expected a JSON object {{class: threshold}}")
            try:
                return {str(k): float(v) for k, v in data.items()}
            except (TypeError, ValueError):
                raise InputError(f"{path}: every threshold must be a number") from None
        try:
            report = pd.read_csv(path)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise InputError(f"{path}: cannot be read ({type(exc).__name__})") from None
        src = str(path)
    else:
        src = "report"
    for c in ("class", cols[method]):
        if c not in report.columns:
            raise InputError(f"{src}: no column {c!r}; a report of `labelsieve detect thresholds` has it")
    t = pd.to_numeric(report[cols[method]], errors="coerce")
    if t.isna().any():
        r = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise InputError(f"{src}, row {r + 1}, field {cols[method]!r}: {report[cols[method]].iloc[r]!r} is not a number")
    return dict(zip(report["class"].astype(str), t.astype(float), strict=True))  # "all": global scope


def _class_thresholds(classes: Sequence[str], thresholds: Mapping[str | int, float]) -> np.ndarray:
    """Threshold per class code (+inf = accept nothing); a key ``"all"`` (global scope) sets every class."""
    thr = np.full(len(classes), np.inf)
    for k, v in dict(thresholds).items():
        try:
            t = float(v)
        except (TypeError, ValueError):
            raise InputError(f"threshold of class {k!r} is not a number: {v!r}") from None
        t = t if not math.isnan(t) else np.inf
        if str(k) == "all" and "all" not in classes:
            thr[:] = t
        else:
            thr[_class_code(classes, k)] = t
    return thr


def auto_accept(store: Project | Store, thresholds: Mapping[str | int, float] | Any, *, who: str,
                proposer: str | None = None, run_id: int | None = None) -> dict[str, int]:
    """Make the boxes of ``proposer`` whose score is >= their class's threshold the accepted ones.

    ``thresholds``: class name (or code) -> threshold, e.g. :func:`thresholds_from_report` of the
    guaranteed per-class thresholds (``"all"`` = one global threshold), or a fitted
    :class:`~labelsieve.detect.BoxThresholds` (category names matched to project classes). Classes
    without a threshold (+inf / NaN) accept nothing. The thresholds were fitted on one detector's
    boxes: ``proposer`` (the ``who`` of the boxes) says which; it may be omitted only when a single
    proposer has scored boxes in the project.

    The latest run is authoritative among automatic decisions: a box that passes gets an ``accept``
    event (``source="auto"``, ``confidence`` = its score, the ``threshold`` it passed) unless its
    current decision already is that; a box auto-accepted earlier that no longer passes gets a
    ``withdraw`` event and is pending again. Reviews keep precedence over both. Running again with
    the same thresholds adds nothing. Returns ``{"accepted": .., "withdrawn": .., "unchanged": ..}``.
    """
    st = _store(store)
    classes = st.classes()
    if hasattr(thresholds, "thresholds_") and hasattr(thresholds, "categories_"):
        thresholds = {thresholds.categories_[int(k)]: float(v) for k, v in thresholds.thresholds_.items()}
    thr = _class_thresholds(classes, thresholds)
    who = str(who).strip()
    if not who or len(who) > 200:
        raise InputError(f"'who' must be 1-200 characters; got {who[:210]!r}")
    with st.read() as c:
        proposers = [r[0] for r in c.execute(sa.select(S.boxes.c.who).where(S.boxes.c.score.is_not(None))
                                             .distinct().order_by(S.boxes.c.who))]
        if proposer is None:
            if len(proposers) > 1:
                raise InputError(f"the project has scored boxes from {len(proposers)} proposers {proposers[:10]}; "
                                 "say which one the thresholds were fitted on (proposer= / --proposer)")
            proposer = proposers[0] if proposers else None
        elif proposer not in proposers:
            raise InputError(f"no scored boxes from proposer {str(proposer)[:200]!r}; the project has {proposers[:10]}")
        if proposer is None:
            return {"accepted": 0, "withdrawn": 0, "unchanged": 0}
        rows = c.execute(sa.select(S.boxes.c.id, S.boxes.c.code, S.boxes.c.score)
                         .where(S.boxes.c.score.is_not(None), S.boxes.c.who == proposer)
                         .order_by(S.boxes.c.id)).fetchall()
    a = np.array(rows, dtype=np.float64)
    ids, code, score = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]
    t = thr[code]
    passes = score >= t
    with st.transaction() as c:
        sql = ("SELECT e.box, e.action, e.source, e.threshold, e.seq FROM box_events e JOIN ("
               + _WIN_SQL.format(where="WHERE box IN (SELECT id FROM boxes WHERE who = :who)")
               + ") w ON w.seq = e.seq")
        win = pd.DataFrame(c.execute(sa.text(sql), {"who": proposer}).fetchall(),
                           columns=["box", "action", "source", "threshold", "seq"]).set_index("box")
        cur = win.reindex(ids)
        auto_acc = (cur["source"].to_numpy() == "auto") & (cur["action"].to_numpy() == "accept")
        review = cur["source"].to_numpy() == "review"
        same = auto_acc & (cur["threshold"].to_numpy(dtype=np.float64) == t)
        add = passes & ~review & ~same
        drop = ~passes & auto_acc
        seq = cur["seq"].fillna(0).to_numpy(dtype=np.int64)
        now = time.time()
        ev = pd.concat([
            pd.DataFrame({"box": ids[add], "action": "accept", "code": code[add], "confidence": score[add],
                          "threshold": t[add], "key": [f"auto:{b}:{q}:accept:{v!r}" for b, q, v in
                                                       zip(ids[add], seq[add], t[add], strict=True)]}),
            pd.DataFrame({"box": ids[drop], "action": WITHDRAW, "code": None, "confidence": score[drop],
                          "threshold": t[drop], "key": [f"auto:{b}:{q}:withdraw" for b, q in
                                                        zip(ids[drop], seq[drop], strict=True)]}),
        ], ignore_index=True)
        ev = ev.assign(who=who, source="auto", precedence=S.BOX_EVENT_PRECEDENCE["auto"], run_id=run_id, created=now)
        ev = ev[~ev["key"].isin(_existing(c, S.box_events.c.key, ev["key"].tolist()))]
        if len(ev):
            _bulk_insert(c, S.box_events, ev)
    n_acc = int((ev["action"] == "accept").sum())
    return {"accepted": n_acc, "withdrawn": len(ev) - n_acc, "unchanged": int((passes & (review | same)).sum())}


# ---------------------------------------------------------------------------------- reading
def _filtered(classes: Sequence[str], cls: str | int | None, score_min: float | None, score_max: float | None,
              status: str | None, items: Sequence[int] | None, boxes: Sequence[int] | None) -> tuple[str, dict]:
    """``FROM ... WHERE ...`` of the boxes matching the filters, joined to their winning event ``w``."""
    if status is not None and status not in STATUSES:
        raise InputError(f"status must be one of {list(STATUSES)}; got {str(status)[:50]!r}")
    cond: list[str] = ["1 = 1"]
    params: dict[str, Any] = {}
    if cls is not None and cls != "":
        cond.append("COALESCE(w.code, b.code) = :cls")
        params["cls"] = _class_code(classes, cls)
    if score_min is not None:
        cond.append("b.score >= :smin")
        params["smin"] = float(score_min)
    if score_max is not None:
        cond.append("b.score <= :smax")
        params["smax"] = float(score_max)
    if status is not None:
        cond.append({"pending": "w.action IS NULL", "accepted": "w.action = 'accept'",
                     "rejected": "w.action = 'reject'", "relabeled": "w.action = 'relabel'"}[status])
    win = ""
    for col, vals in (("b.item", items), ("b.id", boxes)):
        if vals is not None:
            vals = [int(v) for v in vals]  # integers only: safe to inline
            lst = ", ".join(str(v) for v in vals) if vals else "NULL"
            cond.append(f"{col} IN ({lst})")
            win = (f"WHERE box IN ({lst})" if col == "b.id" else
                   f"WHERE box IN (SELECT id FROM boxes WHERE item IN ({lst}))")  # rank only these boxes' events
    return (f"FROM boxes b JOIN items i ON i.pos = b.item LEFT JOIN ({_WIN_SQL.format(where=win)}) w "
            f"ON w.box = b.id WHERE {' AND '.join(cond)}"), params


def image_queue(store: Project | Store, *, cls: str | int | None = None, score_min: float | None = None,
                score_max: float | None = None, status: str | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Images holding boxes that match the filters, in review order, and the matching boxes per status.

    Order: lowest score among the image's matching *pending* boxes first; images without a scored
    pending box after them; then by lowest matching score, then item position.

    Returns
    -------
    queue : DataFrame — ``item``, ``image`` (item id), ``lowest_pending``, ``lowest`` (NaN when none),
        ``n`` (matching boxes), one row per image.
    counts : dict status -> number of matching boxes.
    """
    st = _store(store)
    from_where, params = _filtered(st.classes(), cls, score_min, score_max, status, None, None)
    grouped = (f"SELECT b.item AS item, MIN(i.id) AS image, MIN(CASE WHEN w.action IS NULL THEN b.score END) AS pend, "
               f"MIN(b.score) AS low, COUNT(*) AS n {from_where} GROUP BY b.item")
    sql = (f"SELECT item, image, pend, low, n FROM ({grouped}) q ORDER BY CASE WHEN pend IS NULL THEN 1 ELSE 0 END, "
           f"pend, CASE WHEN low IS NULL THEN 1 ELSE 0 END, low, item")
    by_status = (f"SELECT COALESCE(w.action, 'pending'), COUNT(*) {from_where} GROUP BY COALESCE(w.action, 'pending')")
    with st.read() as c:
        rows = c.execute(sa.text(sql), params).fetchall()
        got = {str(a): int(n) for a, n in c.execute(sa.text(by_status), params)}
    q = pd.DataFrame.from_records(rows, columns=["item", "image", "lowest_pending", "lowest", "n"], coerce_float=True)
    q = q.astype({"item": np.int64, "lowest_pending": float, "lowest": float, "n": np.int64})
    name = {"pending": "pending", "accept": "accepted", "reject": "rejected", "relabel": "relabeled"}
    counts = dict.fromkeys(STATUSES, 0) | {name[a]: n for a, n in got.items()}
    return q, counts


def current_boxes(store: Project | Store, *, cls: str | int | None = None, score_min: float | None = None,
                  score_max: float | None = None, status: str | None = None, items: Sequence[int] | None = None,
                  boxes: Sequence[int] | None = None, order: str = "score", limit: int | None = None,
                  offset: int = 0) -> pd.DataFrame:
    """Every stored box with its current status and final class (one SQL query).

    Parameters
    ----------
    cls : class name or code — final class.
    score_min, score_max : float — inclusive score range (boxes without a score are left out).
    status : "pending" | "accepted" | "rejected" | "relabeled"
    items, boxes : item positions / box ids to restrict to.
    order : "score" (lowest score first, boxes without a score last) or "id".
    limit, offset : paging.

    Returns
    -------
    DataFrame with columns :data:`CURRENT_COLUMNS`: ``box`` (id), ``item`` (position), ``image`` (item
    id), corners, ``proposed`` and ``code`` (final class code), ``class`` (its name), ``score``,
    ``status``, ``has_mask``, ``source``/``who`` (of the proposal), ``decided_by``/``decision_source``/
    ``seq`` (the winning event, None when pending).
    """
    st = _store(store)
    if order not in ORDERS:
        raise InputError(f"order must be one of {list(ORDERS)}; got {order!r}")
    classes = st.classes()
    from_where, params = _filtered(classes, cls, score_min, score_max, status, items, boxes)
    order_sql = ("CASE WHEN b.score IS NULL THEN 1 ELSE 0 END, b.score, b.id" if order == "score" else "b.id")
    page = ""
    if limit is not None:
        page = " LIMIT :lim OFFSET :off"
        params["lim"], params["off"] = int(limit), int(offset)
    sql = (f"SELECT b.id, b.item, i.id, b.x1, b.y1, b.x2, b.y2, b.code, COALESCE(w.code, b.code), b.score, "
           f"w.action, CASE WHEN b.mask IS NULL THEN 0 ELSE 1 END, b.source, b.who, w.who, w.source, w.seq "
           f"{from_where} ORDER BY {order_sql}{page}")
    with st.read() as c:
        rows = c.execute(sa.text(sql), params).fetchall()
    cols = ["box", "item", "image", "x1", "y1", "x2", "y2", "proposed", "code", "score", "action", "has_mask",
            "source", "who", "decided_by", "decision_source", "seq"]
    df = pd.DataFrame.from_records(rows, columns=cols, coerce_float=True)
    df = df.astype({"box": np.int64, "item": np.int64, "proposed": np.int64, "code": np.int64, "x1": float,
                    "y1": float, "x2": float, "y2": float, "score": float, "has_mask": bool})
    df["seq"] = pd.array(df["seq"], dtype="Int64")
    status_of = {"accept": "accepted", "reject": "rejected", "relabel": "relabeled"}
    df["status"] = df.pop("action").map(status_of).fillna("pending").astype(object)
    names = np.asarray(classes, dtype=object)
    df["class"] = names[df["code"].to_numpy()] if len(df) else pd.Series([], dtype=object)
    return df[list(CURRENT_COLUMNS)]


def box_events(store: Project | Store, *, boxes: Sequence[int] | None = None) -> pd.DataFrame:
    """The box events (optionally of some boxes) in the order they were written."""
    st = _store(store)
    t = S.box_events
    q = sa.select(t).order_by(t.c.seq)
    with st.read() as c:
        rows = (_select_in(c, q, t.c.box, [int(b) for b in boxes]) if boxes is not None
                else [tuple(r) for r in c.execute(q)])
    df = pd.DataFrame.from_records(rows, columns=[col.name for col in t.columns])
    df["code"] = pd.array(df["code"], dtype="Int64")
    return df.sort_values("seq").reset_index(drop=True)


def mask_of(store: Project | Store, box_id: int) -> dict[str, Any] | None:
    """The COCO RLE mask of a box (None if it has none); unknown box -> :class:`InputError`."""
    st = _store(store)
    with st.read() as c:
        row = c.execute(sa.select(S.boxes.c.mask).where(S.boxes.c.id == int(box_id))).first()
    if row is None:
        raise InputError(f"unknown box id {int(box_id)}")
    return None if row[0] is None else json.loads(row[0])


def box_images(store: Project | Store, items: Sequence[int] | None = None) -> pd.DataFrame:
    """Images that boxes were proposed on (or those of ``items``): ``item, image`` (item id), ``width, height``."""
    st = _store(store)
    q = (sa.select(S.box_images.c.item, S.items.c.id, S.box_images.c.width, S.box_images.c.height)
         .join(S.items, S.items.c.pos == S.box_images.c.item).order_by(S.box_images.c.item))
    with st.read() as c:
        rows = (_select_in(c, q, S.box_images.c.item, [int(i) for i in items]) if items is not None
                else c.execute(q).fetchall())
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=["item", "image", "width", "height"])


def reviewed_detections(project: Project | Store, *, include_pending: bool = False) -> Detections:
    """The boxes to export: accepted and relabeled ones with their final class (rejected dropped).

    Every image boxes were proposed on is listed (an image whose boxes were all rejected is an
    image without objects). Image ids are item position + 1, file names the item ids; category ids
    are those of the first imported detections (else class code + 1). ``include_pending`` adds the
    boxes nobody decided about yet. Feed the result to ``write_coco_gt`` / ``write_yolo``.
    """
    from labelsieve.detect.boxes import Detections

    st = _store(project)
    classes = st.classes()
    keep = ("accepted", "relabeled", "pending") if include_pending else ("accepted", "relabeled")
    cur = current_boxes(st, order="id")
    cur = cur[cur["status"].isin(keep)].reset_index(drop=True)
    ids = st.meta().get(CATEGORY_META) or {}
    cat = np.array([int(ids.get(c, k + 1)) for k, c in enumerate(classes)], dtype=np.int64)
    if len(set(cat.tolist())) != len(cat):  # a partial map colliding with the defaults
        cat = np.arange(1, len(classes) + 1, dtype=np.int64)
    imgs = box_images(st)
    images = pd.DataFrame({"image_id": imgs["item"].to_numpy(np.int64) + 1, "file_name": imgs["image"].astype(str),
                           "width": imgs["width"].astype(np.int64), "height": imgs["height"].astype(np.int64)})
    boxes = pd.DataFrame({"image_id": cur["item"].to_numpy(np.int64) + 1, "x1": cur["x1"], "y1": cur["y1"],
                          "x2": cur["x2"], "y2": cur["y2"], "category_id": cat[cur["code"].to_numpy(np.int64)],
                          "score": cur["score"].to_numpy(np.float64)})
    if cur["has_mask"].any():
        with st.read() as c:
            m = dict(_select_in(c, sa.select(S.boxes.c.id, S.boxes.c.mask), S.boxes.c.id,
                                cur.loc[cur["has_mask"], "box"].tolist()))
        boxes["mask"] = pd.Series([json.loads(m[b]) if m.get(b) else None for b in cur["box"]], dtype=object)
    name = getattr(project, "path", st.url)
    return Detections(boxes, images, {int(c): n for c, n in zip(cat, classes, strict=True)},
                      source=f"{name} (reviewed boxes)")
