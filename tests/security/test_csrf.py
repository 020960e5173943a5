"""CSRF: cookie-authenticated writes need the session's token; bearer requests do not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.platform.runtime import Runtime
from safecity.security import auth
from safecity.security.audit import AuditEntry
from safecity.security.models import UserSession
from tests.conftest import Actor, City
from tests.security.auth_support import Person, login

pytestmark = pytest.mark.db

MakePerson = Callable[..., Person]


def _roles(runtime: Runtime, user_id: str) -> list[str]:
    with runtime.sessions() as s:
        return auth.roles_of(session=s, user_id=user_id)


def _audit_count(runtime: Runtime, action: str) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).where(AuditEntry.action == action)) or 0)


@pytest.fixture
def admin_client(client: TestClient, city: City, make_person: MakePerson) -> tuple[TestClient, str]:
    admin = make_person("admin", city.city)
    return client, login(client, admin)


@pytest.mark.parametrize("token", [None, "", "wrong-token", "x" * 43])
def test_cookie_write_without_the_right_token_is_403_and_changes_nothing(
    admin_client: tuple[TestClient, str],
    city: City,
    make_actor: Callable[..., Actor],
    runtime: Runtime,
    token: str | None,
) -> None:
    client, _ = admin_client
    officer = make_actor("officer", city.stations[0])
    headers = {"X-CSRF-Token": token} if token is not None else {}
    r = client.put(
        f"/api/users/{officer.user_id}/roles", json={"roles": ["supervisor"]}, headers=headers
    )
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 403
    assert "CSRF" in body["detail"]
    assert _roles(runtime, officer.user_id) == ["officer"]
    assert _audit_count(runtime, "users.set_roles") == 0


def test_cookie_write_with_the_header_token_succeeds(
    admin_client: tuple[TestClient, str],
    city: City,
    make_actor: Callable[..., Actor],
    runtime: Runtime,
) -> None:
    client, csrf = admin_client
    officer = make_actor("officer", city.stations[0])
    r = client.put(
        f"/api/users/{officer.user_id}/roles",
        json={"roles": ["supervisor"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    assert _roles(runtime, officer.user_id) == ["supervisor"]


def test_another_sessions_token_does_not_work(
    client: TestClient,
    city: City,
    make_person: MakePerson,
    make_actor: Callable[..., Actor],
    app: object,
    runtime: Runtime,
) -> None:
    other = make_person("admin", city.city)
    with TestClient(app) as other_client:  # type: ignore[arg-type]
        foreign_csrf = login(other_client, other)
    admin = make_person("admin", city.city)
    login(client, admin)
    officer = make_actor("officer", city.stations[0])
    r = client.post(
        f"/api/users/{officer.user_id}/deactivate", headers={"X-CSRF-Token": foreign_csrf}
    )
    assert r.status_code == 403
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(UserSession)) == 2


def test_form_field_token_is_accepted_and_checked(
    admin_client: tuple[TestClient, str],
    city: City,
    make_actor: Callable[..., Actor],
    runtime: Runtime,
) -> None:
    client, csrf = admin_client
    officer = make_actor("officer", city.stations[0])
    bad = client.post(f"/api/users/{officer.user_id}/unlock", data={"csrf_token": "nope"})
    assert bad.status_code == 403
    assert _audit_count(runtime, "users.unlock") == 0
    good = client.post(f"/api/users/{officer.user_id}/unlock", data={"csrf_token": csrf})
    assert good.status_code == 200, good.text
    assert _audit_count(runtime, "users.unlock") == 1
    multipart = client.post(
        f"/api/users/{officer.user_id}/unlock", files={"csrf_token": (None, csrf)}
    )
    assert multipart.status_code == 200, multipart.text


def test_bearer_requests_need_no_csrf_token(
    client: TestClient, city: City, make_actor: Callable[..., Actor], runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    officer = make_actor("officer", city.stations[0])
    r = client.put(
        f"/api/users/{officer.user_id}/roles",
        json={"roles": ["analyst"]},
        headers=admin.headers,
    )
    assert r.status_code == 200
    assert _roles(runtime, officer.user_id) == ["analyst"]


def test_safe_methods_need_no_csrf_token(admin_client: tuple[TestClient, str]) -> None:
    client, _ = admin_client
    assert client.get("/api/users").status_code == 200
    assert client.get("/api/auth/me").status_code == 200


def test_logout_without_csrf_token_is_refused(admin_client: tuple[TestClient, str]) -> None:
    client, _ = admin_client
    assert client.post("/api/auth/logout").status_code == 403
    assert client.get("/api/auth/me").status_code == 200  # still logged in
