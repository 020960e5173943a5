"""Server-side cookie sessions for the console.

The browser holds only a random token in the cookie :data:`SESSION_COOKIE`
(``safecity_session``: HttpOnly, SameSite=Strict, Secure when ``settings.cookie_secure``,
Path=/); the ``user_sessions`` table holds its SHA-256, the session's CSRF token, and the
times that end it:

* idle timeout — ``settings.session_idle_minutes`` without a request;
* absolute lifetime — ``settings.session_absolute_hours`` after login, however busy.

Use :func:`set_session_cookie` / :func:`clear_session_cookie` on the response that logs a
user in or out; :mod:`safecity.security.service` (``login`` / ``logout``) creates and ends
the rows.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from fastapi import Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safecity.platform.db import utcnow
from safecity.platform.errors import Unauthenticated
from safecity.security.models import UserSession
from safecity.settings import Settings

SESSION_COOKIE = "safecity_session"
"""Name of the console session cookie."""

# last_seen_at is written at most this often (a GET should not always write).
TOUCH_EVERY = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    *,
    session: Session,
    user_id: str,
    settings: Settings,
    auth_method: str = "session",
    ip: str | None = None,
    now: datetime | None = None,
) -> tuple[UserSession, str]:
    """Start a session for ``user_id``; returns the row and the cookie value (shown once)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = UserSession(
        user_id=user_id,
        token_hash=_digest(token),
        csrf_token=secrets.token_urlsafe(32),
        auth_method=auth_method,
        ip=(ip or None) and ip[:64],
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_absolute_hours),
    )
    session.add(row)
    session.flush()
    return row, token


def find(*, session: Session, token: str) -> UserSession | None:
    """The row for cookie value ``token`` (live or not), or ``None``."""
    return session.scalars(
        select(UserSession).where(UserSession.token_hash == _digest(token))
    ).one_or_none()


def validate(
    *, session: Session, token: str, settings: Settings, now: datetime | None = None
) -> UserSession:
    """The live session for ``token``; refreshes its idle clock.

    Raises :class:`Unauthenticated` for an unknown, ended, idle or expired session.
    """
    now = now or utcnow()
    row = find(session=session, token=token)
    if row is None or row.ended_at is not None:
        raise Unauthenticated("session is not valid; log in again")
    if row.expires_at <= now:
        raise Unauthenticated("session has expired; log in again")
    if row.last_seen_at + timedelta(minutes=settings.session_idle_minutes) <= now:
        raise Unauthenticated("session timed out after inactivity; log in again")
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(*, session: Session, session_id: str, now: datetime | None = None) -> bool:
    """End one session; ``True`` if it was live."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(ended_at=now or utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def end_all(*, session: Session, user_id: str, now: datetime | None = None) -> int:
    """End every live session of ``user_id`` (deactivation, password or TOTP reset)."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=now or utcnow())
    )
    return int(getattr(result, "rowcount", 0))


def set_session_cookie(response: Response, token: str, *, settings: Settings) -> None:
    """Put the session token on ``response`` as the :data:`SESSION_COOKIE` cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_absolute_hours * 3600,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, *, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
