"""Security service: managing principals — people, service accounts, device keys and
Open311 API keys — in one RBAC.

Functions take keyword-only arguments and a session, never commit, and audit every change
(and every read of user records) in the caller's transaction. ``login``, ``login_for_token``
and ``logout`` live in :mod:`safecity.security.auth` and are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.security import audit, passwords, sessions, totp
from safecity.security.auth import (
    HUMAN_KINDS,
    issue_token,
    login,
    login_for_token,
    logout,
    needs_totp,
    normalise_username,
    revoke_tokens,
    roles_of,
    store_totp_secret,
)
from safecity.security.models import PRINCIPAL_KINDS, User, UserRole
from safecity.security.rbac import MACHINE_ROLES, ROLES, Principal, ensure_in_scope, scope_clause

__all__ = [
    "USER_LIST",
    "UserChange",
    "add_role",
    "create_user",
    "deactivate_user",
    "get_user",
    "get_user_by_username",
    "issue_user_token",
    "list_users",
    "login",
    "login_for_token",
    "logout",
    "reset_totp",
    "set_password",
    "set_roles",
    "unlock_user",
]

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,149}$")
# Granting these needs an admin (city-wide powers, or the audit trail).
PRIVILEGED_ROLES = frozenset({"admin", "auditor"})
ADMIN_PURPOSE = "user administration"


# --------------------------------------------------------------------------- helpers


def _validate_roles(*, actor: Principal, kind: str, roles: Sequence[str]) -> list[str]:
    wanted = sorted(set(roles))
    if not wanted:
        raise InvalidInput("at least one role is required")
    unknown = [r for r in wanted if r not in ROLES]
    if unknown:
        raise InvalidInput(
            f"unknown role(s) {', '.join(unknown)}; expected one of {', '.join(ROLES)}"
        )
    if kind in HUMAN_KINDS:
        machine = [r for r in wanted if r in MACHINE_ROLES]
        if machine:
            raise InvalidInput(f"role(s) {', '.join(machine)} are for non-human principals")
    elif "citizen" in wanted:
        raise InvalidInput("a non-human principal cannot be a citizen")
    if set(wanted) & PRIVILEGED_ROLES and "admin" not in actor.roles:
        raise PermissionDenied("only an admin may grant the admin or auditor role")
    return wanted


def _user_in_scope(*, session: Session, principal: Principal, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    ensure_in_scope(principal, user.org_id, what="user")
    return user


def _require(actor: Principal, permission: str = "users:write") -> None:
    """Defence in depth: routes already check this; the CLI and jobs act as admin."""
    if not actor.can(permission):
        raise PermissionDenied(f"permission {permission!r} is required")


def _check_org(*, session: Session, actor: Principal, org_id: str) -> None:
    orgs.get(session=session, org_id=org_id)
    ensure_in_scope(actor, org_id, what="organisation")


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class UserChange:
    """A user after a change, with a new TOTP secret when one was generated (show it
    once: :func:`~safecity.security.totp.provisioning_uri` makes the QR/URI)."""

    user: User
    roles: list[str]
    totp_secret: str | None = None

    @property
    def totp_uri(self) -> str | None:
        if self.totp_secret is None:
            return None
        return totp.provisioning_uri(self.totp_secret, username=self.user.username)


def create_user(
    *,
    session: Session,
    actor: Principal,
    username: str,
    org_id: str,
    roles: Sequence[str],
    kind: str = "user",
    display_name: str = "",
    password: str | None = None,
    oidc_subject: str | None = None,
) -> UserChange:
    """Create a principal. People (``kind="user"``) need a password or an OIDC subject;
    staff get a TOTP secret. Service accounts, device keys and API keys (``service``,
    ``device``, ``apikey``) have neither and authenticate with bearer tokens
    (:func:`issue_user_token`)."""
    _require(actor)
    name = normalise_username(username)
    if kind not in PRINCIPAL_KINDS:
        raise InvalidInput(f"unknown kind {kind!r}; expected one of {', '.join(PRINCIPAL_KINDS)}")
    if not USERNAME_RE.match(name):
        raise InvalidInput(
            "username must be 2–150 characters: lowercase letters, digits and . _ @ -"
        )
    wanted = _validate_roles(actor=actor, kind=kind, roles=roles)
    if len(display_name) > 200:
        raise InvalidInput("display name is too long (200 characters at most)")
    if kind in HUMAN_KINDS:
        if password is None and not oidc_subject:
            raise InvalidInput("a person needs a password or an OIDC subject")
        if password is not None:
            passwords.check_policy(password, username=name)
    elif password is not None or oidc_subject:
        raise InvalidInput(f"a {kind} principal has no password or OIDC login; use a token")
    _check_org(session=session, actor=actor, org_id=org_id)
    if session.scalars(select(User.id).where(User.username == name)).first() is not None:
        raise Conflict(f"username {name!r} is taken")
    if (
        oidc_subject
        and session.scalars(select(User.id).where(User.oidc_subject == oidc_subject)).first()
    ):
        raise Conflict("that OIDC subject already belongs to a user")

    secret = totp.new_secret() if needs_totp(kind=kind, roles=wanted) else None
    user = User(
        id=new_id(),
        username=name,
        display_name=display_name,
        kind=kind,
        org_id=org_id,
        password_hash=passwords.hash_password(password) if password is not None else None,
        password_changed_at=utcnow() if password is not None else None,
        oidc_subject=oidc_subject or None,
    )
    if secret is not None:
        store_totp_secret(session=session, user=user, secret=secret)
    session.add(user)
    session.flush()
    for role in wanted:
        session.add(UserRole(user_id=user.id, role=role))
    audit.record(
        session,
        principal=actor,
        action="users.create",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
        detail={"kind": kind, "org_id": org_id, "roles": wanted},
    )
    session.flush()
    return UserChange(user=user, roles=wanted, totp_secret=secret)


def get_user(
    *, session: Session, principal: Principal, user_id: str, purpose: str = ADMIN_PURPOSE
) -> User:
    """One user in the principal's scope (404 otherwise); the read is audited."""
    user = _user_in_scope(session=session, principal=principal, user_id=user_id)
    audit.record(
        session,
        principal=principal,
        action="users.read",
        target_type="user",
        target_id=user.id,
        purpose=purpose,
    )
    return user


def get_user_by_username(*, session: Session, principal: Principal, username: str) -> User:
    user_id = session.scalars(
        select(User.id).where(User.username == normalise_username(username))
    ).first()
    if user_id is None:
        raise NotFound("user not found")
    return get_user(session=session, principal=principal, user_id=user_id)


USER_LIST = ListSpec(
    sort={"username": User.username, "created_at": User.created_at, "kind": User.kind},
    filters={"org_id": User.org_id, "kind": User.kind, "active": User.active},
    default_sort="username",
    tiebreak=User.id,
)
"""Sorting and filters of user lists (``GET /api/users``, ``safecity users list``)."""


def _as_user(row: Any) -> User:
    return cast(User, row)


def list_users(
    *,
    session: Session,
    principal: Principal,
    params: ListParams | None = None,
    role: str | None = None,
    purpose: str = ADMIN_PURPOSE,
) -> Page[User]:
    """One page of the users in the principal's scope (only those), filtered by ``params``
    (see :data:`USER_LIST`) and by ``role``; the read is audited."""
    params = params or USER_LIST.parse()
    query = select(User).where(scope_clause(principal, User.org_id))
    if role is not None:
        query = query.where(User.id.in_(select(UserRole.user_id).where(UserRole.role == role)))
    page = paginate(session=session, query=query, params=params, item=_as_user)
    audit.record(
        session,
        principal=principal,
        action="users.list",
        target_type="user",
        purpose=purpose,
        detail={"count": len(page.items), "offset": params.offset},
    )
    return page


def roles_by_user(*, session: Session, user_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return found
    for user_id, role in session.execute(
        select(UserRole.user_id, UserRole.role).where(UserRole.user_id.in_(list(user_ids)))
    ):
        found[user_id].append(role)
    return {k: sorted(v) for k, v in found.items()}


def set_roles(
    *, session: Session, actor: Principal, user_id: str, roles: Sequence[str]
) -> UserChange:
    """Replace a user's roles. A person who becomes staff without TOTP gets a secret."""
    _require(actor)
    user = _user_in_scope(session=session, principal=actor, user_id=user_id)
    if user.id == actor.id:
        raise Conflict("you cannot change your own roles")
    wanted = _validate_roles(actor=actor, kind=user.kind, roles=roles)
    before = roles_of(session=session, user_id=user.id)
    if set(before) & PRIVILEGED_ROLES and "admin" not in actor.roles:
        raise PermissionDenied("only an admin may change an admin's or auditor's roles")
    for row in session.scalars(select(UserRole).where(UserRole.user_id == user.id)):
        if row.role not in wanted:
            session.delete(row)
    for role in wanted:
        if role not in before:
            session.add(UserRole(user_id=user.id, role=role))
    secret = None
    if needs_totp(kind=user.kind, roles=wanted) and user.totp_secret is None:
        secret = totp.new_secret()
        store_totp_secret(session=session, user=user, secret=secret)
    audit.record(
        session,
        principal=actor,
        action="users.set_roles",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
        detail={"before": before, "after": wanted, "totp_generated": secret is not None},
    )
    session.flush()
    return UserChange(user=user, roles=wanted, totp_secret=secret)


def add_role(*, session: Session, actor: Principal, user_id: str, role: str) -> UserChange:
    current = roles_of(session=session, user_id=user_id)
    return set_roles(session=session, actor=actor, user_id=user_id, roles=[*current, role])


def deactivate_user(*, session: Session, actor: Principal, user_id: str) -> User:
    """Deactivate a principal: its sessions end and its tokens are revoked at once."""
    _require(actor)
    user = _user_in_scope(session=session, principal=actor, user_id=user_id)
    if user.id == actor.id:
        raise Conflict("you cannot deactivate yourself")
    user.active = False
    ended = sessions.end_all(session=session, user_id=user.id)
    revoked = revoke_tokens(session=session, user_id=user.id)
    audit.record(
        session,
        principal=actor,
        action="users.deactivate",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
        detail={"sessions_ended": ended, "tokens_revoked": revoked},
    )
    session.flush()
    return user


def unlock_user(*, session: Session, actor: Principal, user_id: str) -> User:
    """Lift a lockout and reset the failure counter."""
    _require(actor)
    user = _user_in_scope(session=session, principal=actor, user_id=user_id)
    user.failed_logins = 0
    user.locked_until = None
    audit.record(
        session,
        principal=actor,
        action="users.unlock",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
    )
    session.flush()
    return user


def reset_totp(*, session: Session, actor: Principal, user_id: str) -> UserChange:
    """Give a person a new TOTP secret; the old one stops working and sessions end."""
    _require(actor)
    user = _user_in_scope(session=session, principal=actor, user_id=user_id)
    if user.kind not in HUMAN_KINDS:
        raise InvalidInput(f"a {user.kind} principal has no TOTP")
    secret = totp.new_secret()
    store_totp_secret(session=session, user=user, secret=secret)
    ended = sessions.end_all(session=session, user_id=user.id)
    audit.record(
        session,
        principal=actor,
        action="users.reset_totp",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
        detail={"sessions_ended": ended},
    )
    session.flush()
    return UserChange(
        user=user, roles=roles_of(session=session, user_id=user.id), totp_secret=secret
    )


def set_password(*, session: Session, actor: Principal, user_id: str, password: str) -> User:
    """Set a person's password; their sessions end."""
    _require(actor)
    user = _user_in_scope(session=session, principal=actor, user_id=user_id)
    if user.kind not in HUMAN_KINDS:
        raise InvalidInput(f"a {user.kind} principal has no password; use a token")
    passwords.check_policy(password, username=user.username)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()
    ended = sessions.end_all(session=session, user_id=user.id)
    audit.record(
        session,
        principal=actor,
        action="users.set_password",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
        detail={"sessions_ended": ended},
    )
    session.flush()
    return user


def issue_user_token(
    *,
    session: Session,
    actor: Principal,
    user_id: str,
    name: str = "",
    ttl: timedelta | None = None,
) -> str:
    """A bearer token for a principal (typically a service account, device or API key);
    returns the plaintext, shown once. ``ttl=None`` never expires (revoke it instead)."""
    _require(actor)
    user = _user_in_scope(session=session, principal=actor, user_id=user_id)
    if not user.active:
        raise Conflict("user is deactivated")
    if len(name) > 200:
        raise InvalidInput("token name is too long (200 characters at most)")
    if ttl is not None and ttl <= timedelta(0):
        raise InvalidInput("token lifetime must be positive")
    token = issue_token(session=session, user_id=user.id, name=name, ttl=ttl)
    audit.record(
        session,
        principal=actor,
        action="users.token_issue",
        target_type="user",
        target_id=user.id,
        purpose=ADMIN_PURPOSE,
        detail={"expires_in_s": int(ttl.total_seconds()) if ttl else None},
    )
    return token
