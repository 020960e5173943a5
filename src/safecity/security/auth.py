"""Authentication: who is calling.

Two kinds of credentials, one :class:`~safecity.security.rbac.Principal`:

* bearer API tokens (``Authorization: Bearer <token>``) for programs, non-human
  principals (service accounts, device keys, Open311 API keys) and tests;
* the console's cookie session (:data:`~safecity.security.sessions.SESSION_COOKIE`), whose
  unsafe requests must carry the session's CSRF token (:mod:`safecity.security.csrf`).

A request carrying a bearer token is judged by the token alone (and needs no CSRF token).
Only SHA-256 digests of tokens are stored.

Logging in with password + TOTP is :func:`login` (console session) or
:func:`login_for_token` (bearer token); :func:`logout` ends either. OIDC login is in
:mod:`safecity.security.oidc`. A *failed* login is recorded (failure counter, lockout,
audit row) in a transaction of its own, so that it survives the caller's rollback when
:class:`Unauthenticated` propagates: call :func:`login` from a session that has not
written anything yet. Console usage::

    principal, token = auth.login(session=db, username=..., password=..., totp_code=...,
                                  ip=request.client.host, settings=runtime.settings)
    sessions.set_session_cookie(response, token, settings=runtime.settings)
    ...
    auth.logout(session=db, principal=principal)
    sessions.clear_session_cookie(response, settings=runtime.settings)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.db import utcnow
from safecity.platform.errors import Unauthenticated
from safecity.platform.runtime import SETTINGS_INFO_KEY, settings_for
from safecity.security import audit, csrf, keys, passwords, sessions, totp
from safecity.security.models import ApiToken, ScopeGrant, User, UserRole, UserSession
from safecity.security.rbac import CITY_WIDE_ROLES, Principal
from safecity.settings import Settings, get_settings

TOKEN_PREFIX = "sct_"  # noqa: S105 (a prefix, not a secret)
LOGIN_FAILED = (
    "login failed: wrong username, password or code, or the account is temporarily locked"
)
HUMAN_KINDS = frozenset({"user"})

ANONYMOUS = Principal(
    id="anonymous",
    kind="user",
    username="anonymous",
    roles=frozenset(),
    org_id="",
    visible_org_ids=frozenset(),
    auth_method="none",
)
"""The actor of audit records about unauthenticated attempts (e.g. a failed login)."""


def needs_totp(*, kind: str, roles: Iterable[str]) -> bool:
    """Every human principal who is more than a citizen needs a TOTP second factor."""
    return kind in HUMAN_KINDS and bool(set(roles) - {"citizen"})


def roles_of(*, session: Session, user_id: str) -> list[str]:
    return sorted(session.scalars(select(UserRole.role).where(UserRole.user_id == user_id)))


def normalise_username(username: str) -> str:
    return username.strip().lower()


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


def revoke_tokens(*, session: Session, user_id: str) -> int:
    """Revoke every bearer token of ``user_id``; returns how many were live."""
    count = 0
    for row in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
    ):
        row.revoked = True
        count += 1
    return count


def principal_for(
    *,
    session: Session,
    user: User,
    auth_method: str,
    session_id: str | None = None,
    token_id: str | None = None,
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
        extra={"token_id": token_id} if token_id else {},
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
    if row.last_used_at is None or now - row.last_used_at >= sessions.TOUCH_EVERY:
        row.last_used_at = now  # at most once a minute: a GET should not always write
    return principal_for(session=session, user=user, auth_method="token", token_id=row.id)


def authenticate_session_cookie(
    *, session: Session, token: str, settings: Settings, now: datetime | None = None
) -> tuple[Principal, UserSession]:
    """The principal of a live console session (idle and absolute limits checked)."""
    now = now or utcnow()
    row = sessions.validate(session=session, token=token, settings=settings, now=now)
    user = session.get(User, row.user_id)
    if user is None or not user.active or (user.locked_until and user.locked_until > now):
        raise Unauthenticated("session is not valid; log in again")
    principal = principal_for(
        session=session, user=user, auth_method=row.auth_method, session_id=row.id
    )
    return principal, row


def _settings_of(request: Request) -> Settings:
    runtime = getattr(request.app.state, "runtime", None)
    settings: Settings = runtime.settings if runtime is not None else get_settings()
    return settings


def authenticate(request: Request, session: Session) -> Principal | None:
    """The principal behind ``request``, or ``None`` when it carries no credentials.

    A bearer token wins over the session cookie. For the cookie, unsafe methods must carry
    the session's CSRF token (else :class:`PermissionDenied`, 403). Credentials that are
    present but wrong, expired or idle raise :class:`Unauthenticated`.
    """
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _bearer(request)
    if token is not None:
        return authenticate_token(session=session, token=token)
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if cookie:
        principal, row = authenticate_session_cookie(
            session=session, token=cookie, settings=_settings_of(request)
        )
        csrf.check(request, row)
        return principal
    return None


# --------------------------------------------------------------------------- login


def side_session(session: Session) -> Session:
    """A new session on ``session``'s database with a transaction of its own (carrying the
    runtime's settings, which the audit chain needs)."""
    info: dict[str, object] = {}
    if SETTINGS_INFO_KEY in session.info:
        info[SETTINGS_INFO_KEY] = session.info[SETTINGS_INFO_KEY]
    return Session(bind=session.get_bind(), info=info)


def record_login_failure(
    session: Session,
    *,
    user_id: str | None,
    reason: str,
    count: bool,
    settings: Settings,
    now: datetime,
) -> None:
    """Count a failed login and maybe lock the account, in a transaction of its own."""
    with side_session(session) as own, own.begin():
        locked = False
        if user_id is not None and count:
            own.execute(
                update(User)
                .where(User.id == user_id)
                .values(failed_logins=User.failed_logins + 1)
                .execution_options(synchronize_session=False)
            )
            failures = own.scalar(select(User.failed_logins).where(User.id == user_id)) or 0
            if failures >= settings.lockout_attempts:
                own.execute(
                    update(User)
                    .where(User.id == user_id)
                    .values(
                        failed_logins=0,
                        locked_until=now + timedelta(minutes=settings.lockout_minutes),
                    )
                    .execution_options(synchronize_session=False)
                )
                locked = True
        audit.record(
            own,
            principal=ANONYMOUS,
            action="auth.login_failed",
            target_type="user",
            target_id=user_id,
            detail={"reason": reason},
        )
        if locked:
            audit.record(
                own,
                principal=ANONYMOUS,
                action="auth.locked",
                target_type="user",
                target_id=user_id,
                detail={"minutes": settings.lockout_minutes},
            )


def verify_credentials(
    *,
    session: Session,
    username: str,
    password: str,
    totp_code: str | None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> User:
    """The user these credentials prove, or :class:`Unauthenticated` (no hint which part
    was wrong). Counts failures, locks after ``settings.lockout_attempts``, consumes the
    TOTP step, rehashes an outdated password hash."""
    settings = settings or get_settings()
    now = now or utcnow()
    user = session.scalars(
        select(User).where(User.username == normalise_username(username))
    ).one_or_none()
    if user is None or user.kind not in HUMAN_KINDS or not user.active:
        passwords.verify_password(None, password)  # same cost as a real attempt
        record_login_failure(
            session,
            user_id=user.id if user else None,
            reason="unknown_user" if user is None else "not_allowed",
            count=False,
            settings=settings,
            now=now,
        )
        raise Unauthenticated(LOGIN_FAILED)
    if user.locked_until is not None and user.locked_until > now:
        passwords.verify_password(None, password)
        record_login_failure(
            session, user_id=user.id, reason="locked", count=False, settings=settings, now=now
        )
        raise Unauthenticated(LOGIN_FAILED)

    password_ok = passwords.verify_password(user.password_hash, password)
    roles = roles_of(session=session, user_id=user.id)
    step: int | None = None
    totp_ok = True
    secret = totp_secret_of(session=session, user=user)
    if needs_totp(kind=user.kind, roles=roles) or secret is not None:
        step = (
            totp.match_step(secret, totp_code or "", now=now, after_step=user.totp_last_step)
            if secret is not None
            else None
        )
        totp_ok = step is not None
    if not (password_ok and totp_ok):
        reason = "bad_password" if not password_ok else "bad_totp"
        record_login_failure(
            session, user_id=user.id, reason=reason, count=True, settings=settings, now=now
        )
        raise Unauthenticated(LOGIN_FAILED)

    if step is not None:
        # Claim the step atomically: two logins racing with one code cannot both win.
        claimed = session.execute(
            update(User)
            .where(
                User.id == user.id,
                or_(User.totp_last_step.is_(None), User.totp_last_step < step),
            )
            .values(totp_last_step=step)
            .execution_options(synchronize_session="fetch")
        )
        if not getattr(claimed, "rowcount", 0):
            raise Unauthenticated(LOGIN_FAILED)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if user.password_hash is not None and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="auth.password_rehashed",
            target_type="user",
            target_id=user.id,
        )
    session.flush()
    return user


def _totp_key(session: Session) -> bytes:
    return keys.totp_sealing_key(settings_for(session).effective_key_dir)


def store_totp_secret(*, session: Session, user: User, secret: str) -> None:
    """Seal ``secret`` for ``user`` (AES-GCM, key in the key directory) and reset replay."""
    user.totp_secret = totp.seal(secret, key=_totp_key(session), user_id=user.id)
    user.totp_last_step = None


def totp_secret_of(*, session: Session, user: User) -> str | None:
    """The user's TOTP secret in clear (to check a code), or ``None``."""
    if user.totp_secret is None:
        return None
    return totp.unseal(user.totp_secret, key=_totp_key(session), user_id=user.id)


def login(
    *,
    session: Session,
    username: str,
    password: str,
    totp_code: str | None,
    ip: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> tuple[Principal, str]:
    """Check the credentials and start a console session.

    Returns the principal and the session token to put in the
    :data:`~safecity.security.sessions.SESSION_COOKIE` cookie
    (:func:`~safecity.security.sessions.set_session_cookie`). Raises
    :class:`Unauthenticated` with one message for every kind of failure.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    user = verify_credentials(
        session=session,
        username=username,
        password=password,
        totp_code=totp_code,
        settings=settings,
        now=now,
    )
    row, token = sessions.create(
        session=session, user_id=user.id, settings=settings, ip=ip, now=now
    )
    principal = principal_for(session=session, user=user, auth_method="session", session_id=row.id)
    audit.record(
        session,
        principal=principal,
        action="auth.login",
        target_type="user_session",
        target_id=row.id,
        detail={"method": "password"},
    )
    return principal, token


def login_for_token(
    *,
    session: Session,
    username: str,
    password: str,
    totp_code: str | None,
    name: str = "api",
    settings: Settings | None = None,
    now: datetime | None = None,
) -> tuple[Principal, str, datetime]:
    """Check the credentials and issue a bearer token (``settings.api_token_hours``).

    Returns the principal, the token (shown once) and when it expires.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    user = verify_credentials(
        session=session,
        username=username,
        password=password,
        totp_code=totp_code,
        settings=settings,
        now=now,
    )
    ttl = timedelta(hours=settings.api_token_hours)
    token = issue_token(session=session, user_id=user.id, name=name[:200], ttl=ttl)
    principal = principal_for(session=session, user=user, auth_method="token")
    audit.record(
        session,
        principal=principal,
        action="auth.token_issued",
        target_type="user",
        target_id=user.id,
        detail={"method": "password", "hours": settings.api_token_hours},
    )
    return principal, token, now + ttl


def logout(*, session: Session, principal: Principal, now: datetime | None = None) -> None:
    """End the principal's console session, or revoke the bearer token it used."""
    target_type = "user_session"
    target_id: str | None = principal.session_id
    if principal.session_id is not None:
        sessions.end(session=session, session_id=principal.session_id, now=now)
    else:
        target_type = "api_token"
        target_id = principal.extra.get("token_id")
        row = session.get(ApiToken, target_id) if target_id else None
        if row is not None:
            row.revoked = True
    audit.record(
        session,
        principal=principal,
        action="auth.logout",
        target_type=target_type,
        target_id=target_id,
    )
