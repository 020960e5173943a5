"""Principals (people and non-human), their roles and credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

# user: a person; service: a service account; device: a sensor or gateway key;
# apikey: an external system (e.g. an Open311 client).
PRINCIPAL_KINDS = ("user", "service", "device", "apikey")


class User(Base):
    """Any principal. Non-human principals have no password and no TOTP."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16), default="user")
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    # Sealed with AES-GCM (security.totp.seal); never the clear secret.
    totp_secret: Mapped[str | None] = mapped_column(String(160), default=None)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The last TOTP time step accepted: a code is never accepted twice (RFC 6238 §5.2).
    totp_last_step: Mapped[int | None] = mapped_column(Integer, default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))


class ScopeGrant(Base):
    """Lets a principal see another org's subtree (e.g. a cross-district investigation)."""

    __tablename__ = "scope_grants"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    reason: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class UserSession(Base):
    """A console (cookie) session. The cookie holds a random token; only its SHA-256 is
    stored. ``csrf_token`` is the synchronizer token every unsafe request must echo."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(16), default="session")  # session | oidc
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class OidcLoginState(Base):
    """One pending OpenID Connect authorization request (state, nonce, PKCE verifier).

    Single use; only the SHA-256 of ``state`` is stored."""

    __tablename__ = "oidc_login_states"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
