"""Signing in: the one-time login link, and who the request is signed in as."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from labelsieve.app.routers.common import AppState, get_state
from labelsieve.app.security import COOKIE

router = APIRouter()
#: How long a session cookie lives (the login link is spent; a new link is `labelsieve labeler --token`).
SESSION_SECONDS = 30 * 24 * 3600


def _page(status: int, title: str, text: str, refresh: str | None = None) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="0;url={html.escape(refresh, quote=True)}">' if refresh else ""
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{html.escape(title)}</title>'
            f'<link rel="stylesheet" href="/static/style.css"></head><body><main><h1>{html.escape(title)}</h1>'
            f"<p>{html.escape(text)}</p></main></body></html>")
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/login", include_in_schema=False)
def login(request: Request, token: str = Query("", max_length=200),
          state: AppState = Depends(get_state)) -> HTMLResponse:  # noqa: B008
    """Spend a one-time login code: set the session cookie and go on to the label page.

    The next page is opened by the page itself (a refresh), not by an HTTP redirect, so that the
    SameSite=Strict cookie is sent with it even when the link was opened from another site (mail, chat).
    """
    got = state.project.store.redeem_login(token)
    if got is None:
        return _page(403, "Login link not valid", "This login link was already used or was replaced by a newer "
                     "one. Ask the project owner for a new link (labelsieve labeler DIR ID --token).")
    who, secret = got
    nxt = "/label?labeler=" + quote(who, safe="")
    resp = _page(200, "Signed in", f"Signed in as {who}. Opening the label page...", refresh=nxt)
    resp.set_cookie(COOKIE, secret, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/",
                    secure=request.url.scheme == "https")
    return resp


@router.get("/api/whoami")
def whoami(request: Request, state: AppState = Depends(get_state)) -> dict[str, Any]:  # noqa: B008
    """``{accounts, labeler, role}``: whether accounts are on and who the request is signed in as."""
    me = state.principal({k.lower(): v for k, v in request.headers.items()})
    return {"accounts": state.accounts_on(), "labeler": None if me is None else me[0],
            "role": None if me is None else me[1]}
