"""Authentication: who is calling.

Bearer API tokens (``Authorization: Bearer <token>``) for programs and tests; cookie
sessions for the console (see :mod:`safecity.security.sessions`). Only SHA-256 digests
of tokens are stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.db import utcnow
from safecity.platform.errors import Unauthenticated
from safecity.security.models import ApiToken, ScopeGrant, User, UserRole
from safecity.security.rbac import CITY_WIDE_ROLES, Principal

TOKEN_PREFIX = "sct_"  # noqa: S105 (a prefix, not a secret)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    *, session: Session, user_id: str, name: str = "", ttl: timedelta | None = None
) -> str:
    """Create a bearer token for ``user_id``; returns the plaintext (shown once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + ttl if ttl is not None else None
    session.add(
        ApiToken(user_id=user_id, name=name, token_hash=token_digest(token), expires_at=expires)
    )
    session.flush()
    return token


def principal_for(
    *, session: Session, user: User, auth_method: str, session_id: str | None = None
) -> Principal:
    roles = frozenset(session.scalars(select(UserRole.role).where(UserRole.user_id == user.id)))
    visible: frozenset[str] | None
    if roles & CITY_WIDE_ROLES:
        visible = None
    else:
        visible = orgs.subtree_ids(session=session, org_id=user.org_id)
        now = utcnow()
        for grant in session.scalars(select(ScopeGrant).where(ScopeGrant.user_id == user.id)):
            if grant.expires_at is None or grant.expires_at > now:
                visible |= orgs.subtree_ids(session=session, org_id=grant.org_id)
    return Principal(
        id=user.id,
        kind=user.kind,
        username=user.username,
        roles=roles,
        org_id=user.org_id,
        visible_org_ids=visible,
        auth_method=auth_method,
        session_id=session_id,
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def authenticate_token(*, session: Session, token: str, now: datetime | None = None) -> Principal:
    now = now or utcnow()
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_digest(token))
    ).one_or_none()
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthenticated("invalid or expired token")
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise Unauthenticated("invalid or expired token")
    row.last_used_at = now
    return principal_for(session=session, user=user, auth_method="token")


def authenticate(request: Request, session: Session) -> Principal | None:
    """The principal behind ``request``, or ``None`` when it carries no credentials.

    Credentials that are present but wrong raise :class:`Unauthenticated`.
    """
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _bearer(request)
    if token is not None:
        return authenticate_token(session=session, token=token)
    return None
