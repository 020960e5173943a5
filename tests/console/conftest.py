"""Console fixtures: staff with a password and a TOTP secret, and a browser-like login."""

from __future__ import annotations

import re
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
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Staff:
    username: str
    password: str
    totp_secret: str | None

    def code(self, *, steps_ahead: int = 0) -> str:
        """A valid TOTP code (``steps_ahead`` uses the next step: each code works once)."""
        assert self.totp_secret is not None
        moment = utcnow() + timedelta(seconds=totp.INTERVAL * steps_ahead)
        return totp.code_at(self.totp_secret, moment)


@pytest.fixture
def make_staff(runtime: Runtime) -> Callable[..., Staff]:
    """``make_staff(role, org)`` → a person created through the security service."""

    def make(role: str, org: Org, *, username: str | None = None) -> Staff:
        name = username or f"{role.replace('_', '-')}-{org.code}"
        with runtime.sessions.begin() as s:
            change = security.create_user(
                session=s,
                actor=audit.SYSTEM,
                username=name,
                org_id=org.id,
                roles=[role],
                password=PASSWORD,
            )
            return Staff(username=name, password=PASSWORD, totp_secret=change.totp_secret)

    return make


def csrf_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match is not None, "no csrf_token field in the page"
    return match.group(1)


def log_in(
    client: TestClient, staff: Staff, *, next_url: str | None = None, steps_ahead: int = 0
) -> None:
    """Log in through the login form, as a browser would (asserts it worked)."""
    page = client.get("/console/login")
    assert page.status_code == 200
    form = {
        "username": staff.username,
        "password": staff.password,
        "totp_code": staff.code(steps_ahead=steps_ahead) if staff.totp_secret else "",
        "csrf_token": csrf_from(page.text),
    }
    if next_url is not None:
        form["next"] = next_url
    response = client.post("/console/login", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert "safecity_session" in client.cookies
