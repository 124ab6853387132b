"""The web app's guard: host and origin checks, a body size limit, security headers, accounts.

The rules (docs/project.md, "Accounts and security"):

* **Host header** (DNS rebinding): a request whose ``Host`` is not one of the names/IPs the app is
  bound to (loopback names on loopback; ``--allow-host`` adds more) is refused with 400.
* **Origin** (cross-site request forgery): every write (any method but GET/HEAD/OPTIONS) carrying
  an ``Origin`` -- or, without one, a ``Referer`` -- that is not this app's own is refused with 403.
  Clients that send neither (scripts, curl) are not browsers and pass.
* **Body size**: a body larger than ``max_body`` bytes answers 413, before it is read when
  ``Content-Length`` says so, and otherwise as soon as the stream passes the limit (the receive
  stream is counted, so a lying or missing ``Content-Length`` does not help).
* **Headers** on every response: ``Content-Security-Policy: frame-ancestors 'none'``,
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``.
* **Accounts** are on when the app listens beyond loopback, or once any labeler has a token
  (``labelsieve labeler DIR ID --token``). Then every write needs a signed-in labeler (an API token
  in ``Authorization: Bearer`` or ``X-Labelsieve-Token``, or the session cookie a one-time
  ``/login?token=`` link sets) whose role allows it, and beyond loopback every page and read too.
  Loopback with no token issued stays open, as on the first day (writes still pass the origin check).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException

from labelsieve.errors import InputError, LabelsieveError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
#: Largest request body the app reads (a review of 2,000 box ids is ~30 kB).
MAX_BODY = 1 << 20
COOKIE = "labelsieve_session"
TOKEN_HEADER = "x-labelsieve-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Roles in increasing power: a role may do what the roles before it may.
ROLE_RANK = {"labeler": 0, "reviewer": 1, "admin": 2}
#: Paths served without an account even when reads need one: signing in.
PUBLIC_PATHS = frozenset({"/login"})
SECURITY_HEADERS = [(b"content-security-policy", b"frame-ancestors 'none'"), (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class NotSignedInError(LabelsieveError):
    """The request needs a signed-in labeler and carries no valid token or session (401)."""


class ForbiddenError(InputError):
    """The signed-in labeler may not do this, or is not who the request names (403)."""


class BodyTooLarge(HTTPException):
    """The request body passed the size limit while it was read (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names a request may name: loopback names on loopback; the bound address otherwise
    (a wildcard bind allows this machine's host name, its FQDN and their addresses); plus ``extra``.

    >>> sorted(allowed_hosts("127.0.0.1"))
    ['127.0.0.1', '::1', 'localhost']
    >>> sorted(allowed_hosts("192.168.1.5", ["labels.lan"]))
    ['192.168.1.5', 'labels.lan']
    """
    h = host.strip("[]").lower()
    if h in LOOPBACK:
        names = set(LOOPBACK)
    elif h in WILDCARD:
        names = set(LOOPBACK) | {socket.gethostname().lower(), socket.getfqdn().lower()}
        for name in list(names - LOOPBACK):
            try:
                names |= {str(a[4][0]).lower() for a in socket.getaddrinfo(name, None)}
            except OSError:
                pass
    else:
        names = {h}
    return frozenset(names | {str(e).strip("[]").lower() for e in extra if str(e).strip()})


def host_name(netloc: str) -> str:
    """The host part of ``host[:port]`` or ``[v6]:port``, lower case.

    >>> host_name("[::1]:8000"), host_name("LocalHost:80"), host_name("a.b")
    ('::1', 'localhost', 'a.b')
    """
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def request_secret(headers: dict[str, str]) -> str | None:
    """The credential a request carries: bearer token, token header, or session cookie (in that order)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if headers.get(TOKEN_HEADER):
        return headers[TOKEN_HEADER].strip()
    try:
        jar = SimpleCookie(headers.get("cookie", ""))
    except CookieError:
        return None
    return jar[COOKIE].value if COOKIE in jar else None


async def _respond(send: Callable[..., Awaitable[None]], status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware applying the host, origin, body-size and header rules of this module.

    ``reads_need_account(scope, headers)`` is asked for every non-public request; when it answers
    a message, the request is refused with 401 and that message.
    """

    def __init__(self, app: Any, *, hosts: frozenset[str], max_body: int = MAX_BODY,
                 reads_need_account: Callable[[dict[str, str]], str | None] | None = None) -> None:
        self.app, self.hosts, self.max_body = app, hosts, int(max_body)
        self.reads_need_account = reads_need_account

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        headers = _headers(scope)
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            await _respond(send_with_headers, 400, f"host {host[:100]!r} is not served here (DNS rebinding guard); "
                                                   "use the address `labelsieve serve` printed, or add --allow-host")
            return
        method = scope.get("method", "GET").upper()
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            source = origin if origin is not None else headers.get("referer")
            if source is not None and (source == "null" or urlsplit(source).netloc.lower() != host.lower()):
                await _respond(send_with_headers, 403, f"cross-site write refused (origin {source[:100]!r} is not "
                                                       "this app's)")
                return
        if self.reads_need_account is not None and scope.get("path") not in PUBLIC_PATHS:
            why = self.reads_need_account(headers)
            if why:
                await _respond(send_with_headers, 401, why)
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _respond(send_with_headers, 413 if length.isdigit() else 400,
                           f"request body larger than {self.max_body} bytes" if length.isdigit()
                           else "bad Content-Length")
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, counted, send_with_headers)
        except BodyTooLarge as exc:
            if started:
                raise
            await _respond(send_with_headers, 413, str(exc.detail))
