"""CSRF protection for cookie-authenticated requests (synchronizer token pattern).

Each console session has its own random CSRF token (``user_sessions.csrf_token``). An
unsafe request (POST, PUT, PATCH, DELETE) authenticated by the session cookie must echo
it, either in the header :data:`CSRF_HEADER` (``X-CSRF-Token``; htmx and ``fetch``) or in
the form field :data:`CSRF_FORM_FIELD` (``csrf_token``; plain HTML forms). Otherwise
:func:`safecity.security.auth.authenticate` raises :class:`PermissionDenied` (403
problem+json) before the handler runs, so nothing changes. Requests with a bearer token
are exempt: a browser never attaches one on its own.

Templates get the token with :func:`csrf_token_for` ``(request)``::

    <input type="hidden" name="csrf_token" value="{{ csrf_token_for(request) }}">
    <body hx-headers='{"X-CSRF-Token": "{{ csrf_token_for(request) }}"}'>
"""

from __future__ import annotations

import hmac

import anyio.from_thread
from fastapi import Request
from starlette.datastructures import FormData

from safecity.platform.errors import PermissionDenied
from safecity.security import sessions
from safecity.security.models import UserSession

CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _read_form(request: Request) -> FormData | None:
    """The parsed form body (cached by Starlette), read from a sync dependency's thread."""

    async def read() -> FormData:
        return await request.form()

    try:
        return anyio.from_thread.run(read)
    except Exception:  # not in a worker thread, or a malformed body: no token
        return None


def submitted_token(request: Request) -> str | None:
    """The CSRF token the request carries (header first, then form field)."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(_FORM_TYPES):
        form = _read_form(request)
        value = form.get(CSRF_FORM_FIELD) if form is not None else None
        return value if isinstance(value, str) else None
    return None


def check(request: Request, user_session: UserSession) -> None:
    """Raise 403 if ``request`` is unsafe and lacks ``user_session``'s CSRF token."""
    request.state.csrf_token = user_session.csrf_token
    if request.method.upper() not in UNSAFE_METHODS:
        return
    token = submitted_token(request)
    if not token or not hmac.compare_digest(token.encode(), user_session.csrf_token.encode()):
        raise PermissionDenied("CSRF token missing or invalid", reason="csrf")


def csrf_token_for(request: Request) -> str:
    """The CSRF token of the request's cookie session, or ``""`` when there is none.

    For templates: put it in a hidden ``csrf_token`` field or the ``X-CSRF-Token`` header.
    """
    token: str | None = getattr(request.state, "csrf_token", None)
    if token:
        return token
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    db = getattr(request.state, "db_session", None)
    if cookie and db is not None:
        row = sessions.find(session=db, token=cookie)
        if row is not None and row.ended_at is None:
            request.state.csrf_token = row.csrf_token
            return row.csrf_token
    return ""
