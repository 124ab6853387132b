"""The label page's API: the next item for a labeler (leased to them: a POST), their answer, skip,
undo, lease renewal, comments, progress, the project's instructions; un-reject for reviewers.

Every write names its labeler through :meth:`~labelsieve.app.routers.common.AppState.actor`
(accounts, roles, pseudo-labelers)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.errors import InputError
from labelsieve.store import labeling as L
from labelsieve.store import queries as Q

router = APIRouter()


def _reveal(state: AppState, labeler: str) -> bool:
    """Whether ``labeler`` sees others' votes before answering: only reviewers and admins, and only
    when the project allows it (setting ``labeling.show_votes_to_reviewers``)."""
    if not state.project.store.meta().get(L.SETTING_SHOW_VOTES):
        return False
    lab = state.project.store.labelers().set_index("id")
    return labeler in lab.index and lab.loc[labeler, "role"] in ("reviewer", "admin")


def _next(state: AppState, labeler: str, beyond_queue: bool = False) -> dict[str, Any]:
    s = state.session
    got = s.next_item(labeler, beyond_queue=beyond_queue, reveal=_reveal(state, labeler))
    progress = s.progress(labeler)
    if got is None:
        return {"done": True, "item": None, "progress": progress}
    return {"done": False, "item": {**state.item_json(got["pos"]), "posterior": got["posterior"],
                                     "n_labels": got["n_labels"]}, "request_id": uuid.uuid4().hex,
            "progress": progress}


def _rid(body: dict) -> str:
    return str(body.get("request_id") or uuid.uuid4().hex)[:100]


@router.post("/api/next")
def lease_next(request: Request, body: dict = Body(...),  # noqa: B008
               state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """The item ``{"labeler": ID}`` should label now, leased to them (a write: there is no GET).

    ``"beyond_queue": true`` also serves items no run asked for while a run's queue is open."""
    return _next(state, state.actor(request, body.get("labeler")), body.get("beyond_queue") is True)


@router.post("/api/skip")
def skip(request: Request, body: dict = Body(...),  # noqa: B008
         state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Pass on the item ``id`` (``reason``: unsure | broken | other, optional ``note``)."""
    labeler = state.actor(request, body.get("labeler"))
    got = state.session.skip(labeler, state.pos(str(body.get("id", ""))), str(body.get("reason", "")),
                             _rid(body), note=str(body.get("note") or ""))
    return {"id": str(body.get("id")), **got}


@router.post("/api/undo")
def undo(request: Request, body: dict = Body(...),  # noqa: B008
         state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Withdraw the labeler's last answer or skip; the item comes back to them (``item``)."""
    labeler = state.actor(request, body.get("labeler"))
    got = state.session.undo(labeler, _rid(body))
    if got is None:
        return {"undone": None, "detail": "nothing to undo"}
    if got.get("duplicate"):
        return {"undone": None, "duplicate": True}
    return {"undone": got["undone"], "label": got["label"], "item": {**state.item_json(got["pos"]),
            "posterior": None, "n_labels": None}, "request_id": uuid.uuid4().hex,
            "held": state.session.heartbeat(labeler, got["pos"]), "progress": state.session.progress(labeler)}


@router.post("/api/heartbeat")
def heartbeat(request: Request, body: dict = Body(...),  # noqa: B008
              state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Renew the lease on the item ``id`` the page shows; ``held`` is False when it is no longer the
    labeler's to answer (answered in another tab, done, or taken after a long pause)."""
    labeler = state.actor(request, body.get("labeler"))
    return {"held": state.session.heartbeat(labeler, state.pos(str(body.get("id", ""))))}


@router.post("/api/comment")
def comment(request: Request, body: dict = Body(...),  # noqa: B008
            state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    labeler = state.actor(request, body.get("labeler"))
    p = state.pos(str(body.get("id", "")))
    added = L.add_comment(state.project, p, who=labeler, text=str(body.get("text") or ""), key=_rid(body))
    return {"added": added, "comments": L.comments(state.project, p)}


@router.get("/api/comments")
def item_comments(id: str = Query(..., max_length=500),
                  state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    return {"id": id, "comments": L.comments(state.project, state.pos(id))}


@router.get("/api/progress")
def progress(labeler: str | None = Query(None, max_length=200),
             state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Collection progress: per open run and round, per labeler, broken items; ``you`` with ``labeler``."""
    if labeler:
        state.project.store.require_labeler(labeler)
    return state.session.progress(labeler or None)


@router.get("/api/skips")
def skips(state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Live skips, newest first (``reason`` broken: the item cannot be shown; fix it, or remove it)."""
    df = L.skipped_items(state.project)
    return {"total": len(df), "broken": int((df["reason"] == "broken").sum()),
            "skips": [{k: Q.clean(v) for k, v in r.items()} for r in df.head(500).to_dict("records")]}


@router.get("/api/instructions")
def instructions(state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """The project's instructions for labelers, as markdown text (the page renders a safe subset)."""
    return {"markdown": L.instructions(state.project)}


@router.post("/api/unreject")
def unreject(request: Request, body: dict = Body(...),  # noqa: B008
             state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """Reverse review rejections of ``ids`` (reviewers): the label before each rejection is current again."""
    who = state.actor(request, body.get("reviewer") or body.get("labeler"), role="reviewer")
    ids = body.get("ids") or []
    if not isinstance(ids, list) or not ids or len(ids) > Q.MAX_REVIEW_IDS:
        raise InputError(f"ids must be a list of 1-{Q.MAX_REVIEW_IDS} item ids")
    n = L.unreject(state.project, [state.pos(str(i)) for i in ids], who=who, key=_rid(body))
    return {"events": n, "action": "unreject"}


@router.post("/api/label")
def label(request: Request, body: dict = Body(...),  # noqa: B008
          state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    labeler, item_id = state.actor(request, body.get("labeler")), str(body.get("id", ""))
    got = state.session.answer(labeler, state.pos(item_id), str(body.get("label", "")),
                               str(body.get("request_id", "")))
    return {"id": item_id, "posterior": got["posterior"], "n_labels": got["n_labels"], "done": got["done"],
            "duplicate": got["duplicate"], "status": got.get("status"), "progress": state.session.progress(labeler)}
