"""What the review filters, the gallery and the agreement metrics read from a project store.

Pure functions of a :class:`~labelsieve.store.project.Project`, like :mod:`labelsieve.store.queries`
(whose :func:`~labelsieve.store.queries.clean` makes results JSON-ready). Votes always mean *live*
votes: a vote cancelled by a ``withdraw`` event (an undo) counts nowhere here.

* :func:`review_queue`: the review queue with filters on class, round, source, confidence range,
  who made the current label, and disagreement (items whose live votes are not all equal).
* :func:`gallery`: every item with its current label and its provenance, searchable and paged.
* :func:`agreement`: per-labeler accuracy on gold items with a 95% **Wilson score** interval,
  pairwise agreement between labelers, and Krippendorff's alpha (nominal, `krippendorff` package).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labelsieve.errors import InputError
from labelsieve.store import schema as S
from labelsieve.store.queries import _class_code, clean

if TYPE_CHECKING:
    from labelsieve.store.project import Project

#: Sources a current label can have (``vote`` never wins one by itself), and ``any``.
LABEL_SOURCES = tuple(s for s in S.PRECEDENCE if s != "vote")
REVIEW_SOURCES = (*LABEL_SOURCES, "any", "rejected")
#: Gallery source filter: a current source, ``unlabeled`` (no current label) or ``rejected``.
GALLERY_SOURCES = (*LABEL_SOURCES, "unlabeled", "rejected")
#: Sources of current labels that count as gold for labeler accuracy (as in labeler_accuracy).
GOLD_SOURCES = ("review", "import")
#: z of a two-sided 95% normal interval.
Z95 = 1.959963984540054


def _check_source(source: str | None, allowed: tuple[str, ...]) -> str | None:
    if source in (None, ""):
        return None
    if source not in allowed:
        raise InputError(f"source must be one of {list(allowed)}; got {str(source)[:50]!r}")
    return source


def _live_votes_sql() -> Any:
    """Live votes (not withdrawn): a select of ``item, who, code``."""
    e, w = S.events, S.events.alias("w")
    return sa.select(e.c.item, e.c.who, e.c.code, e.c.seq).where(
        e.c.source == "vote", e.c.code.is_not(None), ~sa.exists().where(w.c.target == e.c.seq))


def disagreeing_items_sql() -> Any:
    """Items whose live votes carry at least two different labels (a select of ``item``)."""
    v = _live_votes_sql().subquery()
    return sa.select(v.c.item).group_by(v.c.item).having(sa.func.count(sa.distinct(v.c.code)) > 1)


def live_votes(project: Project) -> pd.DataFrame:
    """The live votes ``item, who, code``; a labeler's latest live vote per item (one per pair)."""
    with project.store.read() as c:
        rows = c.execute(_live_votes_sql().order_by(S.events.c.seq)).fetchall()
    df = pd.DataFrame(rows, columns=["item", "who", "code", "seq"])
    df = df.drop_duplicates(["item", "who"], keep="last")
    return df[["item", "who", "code"]].astype({"item": np.int64, "who": object, "code": np.int64}) \
        .reset_index(drop=True)


# ---------------------------------------------------------------------------------- review
def review_queue(project: Project, *, cls: str | None = None, round: int | None = None, source: str | None = "auto",
                 min_conf: float | None = None, max_conf: float | None = None, who: str | None = None,
                 voter: str | None = None, disagreement: bool = False, page: int = 0, page_size: int = 50) -> tuple[int, pd.DataFrame]:
    """Labeled items for review, least confident first (then by position), filtered.

    ``source``: the current label's source (default ``auto``, as the original queue; ``any``: all of
    them). ``min_conf``/``max_conf``: inclusive confidence range (items without a confidence are left
    out by either). ``who``: who made the current label. ``voter``: only items this labeler has a
    live vote on. ``disagreement``: only items whose live votes disagree. Rejected items (no current
    label) are listed only with ``source="rejected"`` (label None). Returns the number matching
    and one page: ``pos, label, confidence, round, source, who``.
    """
    classes = project.classes
    src = _check_source(source, REVIEW_SOURCES) or "auto"
    if min_conf is not None and max_conf is not None and min_conf > max_conf:
        raise InputError(f"min_conf ({min_conf}) must not exceed max_conf ({max_conf})")
    cl = S.current_label
    if src == "rejected":  # review rejections (no current label): the page offers to un-reject them
        cond: list[Any] = [cl.c.code.is_(None), cl.c.source == "review"]
    else:
        cond = [cl.c.code.is_not(None)]
    if src not in ("any", "rejected"):
        cond.append(cl.c.source == src)
    code = _class_code(classes, cls)
    if code is not None:
        cond.append(cl.c.code == code)
    if round is not None:
        cond.append(cl.c.round == round)
    if min_conf is not None:
        cond.append(cl.c.confidence >= float(min_conf))
    if max_conf is not None:
        cond.append(cl.c.confidence <= float(max_conf))
    if who:
        cond.append(cl.c.who == who)
    if voter:
        v = _live_votes_sql().subquery()
        cond.append(cl.c.item.in_(sa.select(v.c.item).where(v.c.who == voter)))
    if disagreement:
        cond.append(cl.c.item.in_(disagreeing_items_sql()))
    with project.store.read() as c:
        total = c.execute(sa.select(sa.func.count()).select_from(cl).where(*cond)).scalar_one()
        rows = c.execute(sa.select(cl.c.item, cl.c.code, cl.c.confidence, cl.c.round, cl.c.source, cl.c.who)
                         .where(*cond).order_by(cl.c.confidence.asc(), cl.c.item).limit(page_size)
                         .offset(max(page, 0) * page_size)).fetchall()
    df = pd.DataFrame({"pos": [int(r[0]) for r in rows],
                       "label": [None if r[1] is None else classes[int(r[1])] for r in rows],
                       "confidence": [r[2] for r in rows], "round": [r[3] for r in rows],
                       "source": [r[4] for r in rows], "who": [r[5] for r in rows]})
    return int(total), df


# ---------------------------------------------------------------------------------- gallery
def gallery(project: Project, *, q: str | None = None, cls: str | None = None, source: str | None = None,
            page: int = 0, page_size: int = 48) -> tuple[int, list[dict[str, Any]]]:
    """Items in position order with their current label and its provenance, searchable.

    ``q``: case-insensitive substring of the item id or of a text item's text. ``cls``: current
    label. ``source``: current label's source, ``unlabeled`` or ``rejected``. Each record is
    ``pos, id, kind, text, label, source, confidence, who, round, n_votes`` (live votes).
    """
    classes = project.classes
    src = _check_source(source, GALLERY_SOURCES)
    it, cl = S.items, S.current_label
    j = it.outerjoin(cl, cl.c.item == it.c.pos)
    cond: list[Any] = []
    if q:
        needle = str(q).lower()
        cond.append(sa.or_(sa.func.lower(it.c.id).contains(needle, autoescape=True),
                           sa.and_(it.c.kind == "text", sa.func.lower(it.c.source).contains(needle, autoescape=True))))
    code = _class_code(classes, cls)
    if code is not None:
        cond.append(cl.c.code == code)
    if src == "unlabeled":
        cond.append(cl.c.item.is_(None))
    elif src == "rejected":
        cond.append(sa.and_(cl.c.item.is_not(None), cl.c.code.is_(None)))
    elif src is not None:
        cond.append(sa.and_(cl.c.source == src, cl.c.code.is_not(None)))
    cols = (it.c.pos, it.c.id, it.c.kind, it.c.source, cl.c.code, cl.c.source, cl.c.confidence, cl.c.who,
            cl.c.round, cl.c.item)
    with project.store.read() as c:
        total = c.execute(sa.select(sa.func.count()).select_from(j).where(*cond)).scalar_one()
        rows = c.execute(sa.select(*cols).select_from(j).where(*cond).order_by(it.c.pos).limit(page_size)
                         .offset(max(page, 0) * page_size)).fetchall()
        v = _live_votes_sql().where(S.events.c.item.in_([int(r[0]) for r in rows])).subquery()
        n_votes = {int(r[0]): int(r[1]) for r in c.execute(
            sa.select(v.c.item, sa.func.count(sa.distinct(v.c.who))).group_by(v.c.item))} if rows else {}
    out = []
    for pos, iid, kind, text, code_, csrc, conf, who, rnd, has in rows:
        status = "unlabeled" if has is None else "rejected" if code_ is None else csrc
        out.append({"pos": int(pos), "id": iid, "kind": kind, "text": text if kind == "text" else None,
                    "label": None if code_ is None else classes[int(code_)], "source": status,
                    "confidence": clean(conf), "who": who, "round": None if rnd is None else int(rnd),
                    "n_votes": n_votes.get(int(pos), 0)})
    return int(total), out


# ---------------------------------------------------------------------------------- agreement
def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of a binomial proportion k/n (None, None when n = 0).

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def krippendorff_alpha(votes: pd.DataFrame) -> float | None:
    """Krippendorff's alpha (nominal) of ``votes`` (``item, who, code``), with the `krippendorff`
    package; None when it is undefined (fewer than two pairable values, or a single label in use)."""
    try:
        import krippendorff
    except ImportError as exc:  # pragma: no cover - a declared dependency
        from labelsieve.errors import MissingDependencyError

        raise MissingDependencyError("agreement metrics need krippendorff: pip install krippendorff") from exc
    counts = votes.groupby("item").size()
    pairable = votes[votes["item"].isin(counts[counts >= 2].index)]
    if len(pairable) < 2 or pairable["code"].nunique() < 2:
        return None
    m = pairable.pivot(index="who", columns="item", values="code").to_numpy(dtype=float)
    return float(krippendorff.alpha(reliability_data=m, level_of_measurement="nominal"))


def agreement(project: Project) -> dict[str, Any]:
    """Agreement metrics over live votes.

    * ``labelers``: per labeler who voted, ``n_votes``, and against gold items (current label from a
      review or an import) ``n_gold, n_correct, accuracy`` with the 95% Wilson score interval
      ``lower, upper`` (None without gold votes).
    * ``pairs``: per pair of labelers, ``n`` items both voted on and ``agreement`` (share of them
      with equal votes; None when n = 0).
    * ``alpha``: Krippendorff's alpha, nominal, over items with at least two votes (None if undefined).
    """
    votes = live_votes(project)
    with project.store.read() as c:
        gold = {int(r[0]): int(r[1]) for r in c.execute(
            sa.select(S.current_label.c.item, S.current_label.c.code)
            .where(S.current_label.c.source.in_(GOLD_SOURCES), S.current_label.c.code.is_not(None)))}
    labelers = []
    for who, g in votes.groupby("who", sort=True):
        on_gold = g[g["item"].isin(list(gold))]
        n = len(on_gold)
        k = int((on_gold["code"].to_numpy() == on_gold["item"].map(gold).to_numpy()).sum()) if n else 0
        lo, hi = wilson_interval(k, n)
        labelers.append({"labeler": str(who), "n_votes": len(g), "n_gold": n, "n_correct": k,
                         "accuracy": k / n if n else None, "lower": lo, "upper": hi})
    by_who = {str(w): dict(zip(g["item"], g["code"], strict=True)) for w, g in votes.groupby("who", sort=True)}
    pairs = []
    for a, b in combinations(sorted(by_who), 2):
        common = by_who[a].keys() & by_who[b].keys()
        same = sum(by_who[a][i] == by_who[b][i] for i in common)
        pairs.append({"a": a, "b": b, "n": len(common), "agree": same,
                      "agreement": same / len(common) if common else None})
    n_multi = int((votes.groupby("item").size() >= 2).sum()) if len(votes) else 0
    return {"interval": "Wilson score, 95%", "n_votes": len(votes), "n_gold": len(gold), "labelers": labelers,
            "pairs": pairs, "alpha": krippendorff_alpha(votes), "alpha_items": n_multi,
            "alpha_level": "nominal"}
