"""Fixtures and helpers for the authentication and users tests (imported by conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from safecity.orgs.models import Org
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security import audit, totp
from safecity.security import service as security

PASSWORD = "correct horse battery staple"


@dataclass
class Person:
    user_id: str
    username: str
    org_id: str
    password: str
    totp_secret: str | None

    def code(self, *, steps_ahead: int = 0) -> str:
        """A valid TOTP code; each step works once, so a second login uses the next one."""
        assert self.totp_secret is not None
        moment = utcnow() + timedelta(seconds=totp.INTERVAL * steps_ahead)
        return totp.code_at(self.totp_secret, moment)

    def credentials(self, *, steps_ahead: int = 0) -> dict[str, str | None]:
        return {
            "username": self.username,
            "password": self.password,
            "totp": self.code(steps_ahead=steps_ahead) if self.totp_secret else None,
        }


@pytest.fixture
def make_person(runtime: Runtime) -> Callable[..., Person]:
    """``make_person(role, org)`` → a person created through the security service."""
    counter = iter(range(10_000))

    def make(
        role: str | list[str], org: Org, *, username: str | None = None, password: str = PASSWORD
    ) -> Person:
        roles = [role] if isinstance(role, str) else role
        name = username or f"{roles[0].replace('_', '-')}-{org.code}-{next(counter)}"
        with runtime.sessions.begin() as s:
            change = security.create_user(
                session=s,
                actor=audit.SYSTEM,
                username=name,
                org_id=org.id,
                roles=roles,
                password=password,
            )
            return Person(
                user_id=change.user.id,
                username=name,
                org_id=org.id,
                password=password,
                totp_secret=change.totp_secret,
            )

    return make


def login(client: TestClient, person: Person, *, steps_ahead: int = 0) -> str:
    """Log ``person`` in through the API (the client keeps the cookie); returns the CSRF
    token."""
    r = client.post("/api/auth/login", json=person.credentials(steps_ahead=steps_ahead))
    assert r.status_code == 200, r.text
    token: str = r.json()["csrf_token"]
    return token
