"""Pydantic schemas for the auth and users API (input models forbid unknown fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        """NUL characters are never meaningful here (and PostgreSQL refuses them)."""
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise ValueError("NUL characters are not allowed")
        return value


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16, description="Six-digit TOTP code.")


class TokenLoginIn(LoginIn):
    name: str = Field(default="api", max_length=200, description="A label for the token.")


class MeOut(BaseModel):
    id: str
    username: str
    display_name: str
    kind: str
    org_id: str
    roles: list[str]
    permissions: list[str]
    auth_method: str
    csrf_token: str | None = Field(
        default=None, description="For cookie sessions: send it as X-CSRF-Token on writes."
    )


class LoginOut(BaseModel):
    user: MeOut
    csrf_token: str
    expires_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_at: datetime | None


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    kind: str
    org_id: str
    roles: list[str]
    active: bool
    locked: bool
    has_totp: bool
    oidc_linked: bool
    created_at: datetime
    last_login_at: datetime | None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    limit: int
    offset: int


class UserCreate(_In):
    username: str = Field(min_length=2, max_length=150)
    org_id: str = Field(min_length=1, max_length=32)
    roles: list[str] = Field(min_length=1, max_length=10)
    kind: Literal["user", "service", "device", "apikey"] = "user"
    display_name: str = Field(default="", max_length=200)
    password: str | None = Field(default=None, max_length=1024)
    oidc_subject: str | None = Field(default=None, min_length=1, max_length=255)


class UserCreated(UserOut):
    totp_secret: str | None = Field(default=None, description="Shown once; staff only.")
    totp_uri: str | None = Field(default=None, description="otpauth:// URI, shown once.")


class RolesUpdate(_In):
    roles: list[str] = Field(min_length=1, max_length=10)


class TokenCreate(_In):
    name: str = Field(default="", max_length=200)
    ttl_hours: int | None = Field(
        default=None, ge=1, le=24 * 366, description="Lifetime; omit for no expiry."
    )


class TotpReset(BaseModel):
    user_id: str
    totp_secret: str
    totp_uri: str
