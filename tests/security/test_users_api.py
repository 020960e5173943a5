"""The users API: each role allowed → 2xx, denied → 403, out of org scope → 404; lists hold
only in-scope rows; non-human principals; bad input changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.platform.runtime import Runtime
from safecity.security import auth
from safecity.security.auth import totp_secret_of
from safecity.security.models import User
from safecity.security.rbac import MACHINE_ROLES, ROLE_PERMISSIONS, ROLES
from tests.conftest import Actor, City

pytestmark = pytest.mark.db

MakeActor = Callable[..., Actor]
PASSWORD = "a sufficiently long passphrase"


def _kind(role: str) -> str:
    return {"device": "device", "open311_client": "apikey"}.get(role, "user")


def _actor(make_actor: MakeActor, role: str, org: object) -> Actor:
    return make_actor(role, org, kind=_kind(role))


def _user_count(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(User)) or 0)


@pytest.mark.parametrize("role", ROLES)
def test_read_routes_per_role(
    client: TestClient, city: City, make_actor: MakeActor, role: str
) -> None:
    actor = _actor(make_actor, role, city.districts[0])
    target = make_actor("officer", city.stations[0])
    allowed = "users:read" in ROLE_PERMISSIONS[role]
    listing = client.get("/api/users", headers=actor.headers)
    one = client.get(f"/api/users/{target.user_id}", headers=actor.headers)
    if allowed:
        assert listing.status_code == 200
        assert one.status_code == 200
        assert one.json()["roles"] == ["officer"]
    else:
        assert listing.status_code == 403
        assert one.status_code == 403
        assert listing.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", ROLES)
def test_write_routes_per_role(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime, role: str
) -> None:
    actor = _actor(make_actor, role, city.districts[0])
    target = make_actor("officer", city.stations[0])
    allowed = "users:write" in ROLE_PERMISSIONS[role]
    before = _user_count(runtime)
    created = client.post(
        "/api/users",
        json={
            "username": f"new-{role.replace('_', '-')}",
            "org_id": city.stations[0].id,
            "roles": ["officer"],
            "password": PASSWORD,
        },
        headers=actor.headers,
    )
    calls = [
        client.put(
            f"/api/users/{target.user_id}/roles", json={"roles": ["analyst"]}, headers=actor.headers
        ),
        client.post(f"/api/users/{target.user_id}/unlock", headers=actor.headers),
        client.post(f"/api/users/{target.user_id}/reset-totp", headers=actor.headers),
        client.post(f"/api/users/{target.user_id}/tokens", json={}, headers=actor.headers),
        client.post(f"/api/users/{target.user_id}/deactivate", headers=actor.headers),
    ]
    if allowed:
        assert created.status_code == 201, created.text
        assert [c.status_code for c in calls] == [200, 200, 200, 201, 200]
    else:
        assert created.status_code == 403
        assert [c.status_code for c in calls] == [403] * len(calls)
        assert _user_count(runtime) == before
        with runtime.sessions() as s:
            assert auth.roles_of(session=s, user_id=target.user_id) == ["officer"]


def test_supervisor_sees_only_their_district(
    client: TestClient, city: City, make_actor: MakeActor
) -> None:
    supervisor = make_actor("supervisor", city.districts[0])
    mine = make_actor("officer", city.stations[1])  # a station of district 0
    theirs = make_actor("officer", city.stations[2])  # a station of district 1
    city_admin = make_actor("admin", city.city)
    assert client.get(f"/api/users/{mine.user_id}", headers=supervisor.headers).status_code == 200
    other = client.get(f"/api/users/{theirs.user_id}", headers=supervisor.headers)
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    assert (
        client.get(f"/api/users/{city_admin.user_id}", headers=supervisor.headers).status_code
        == 404
    )
    listed = client.get("/api/users", headers=supervisor.headers).json()
    ids = {u["id"] for u in listed["items"]}
    assert ids == {supervisor.user_id, mine.user_id}
    assert listed["total"] == 2
    in_scope = {city.districts[0].id, city.stations[0].id, city.stations[1].id}
    assert all(u["org_id"] in in_scope for u in listed["items"])
    # Filtering by an out-of-scope org yields nothing rather than leaking rows.
    leak = client.get(
        "/api/users", params={"org_id": city.stations[2].id}, headers=supervisor.headers
    )
    assert leak.json()["items"] == []
    # The admin is city-wide.
    everyone = client.get("/api/users", headers=city_admin.headers).json()
    assert {supervisor.user_id, mine.user_id, theirs.user_id} <= {
        u["id"] for u in everyone["items"]
    }


def test_writes_out_of_scope_are_404(
    client: TestClient,
    city: City,
    make_actor: MakeActor,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A district-scoped role with users:write (none has it by default; a deployment may grant it).
    monkeypatch.setitem(
        ROLE_PERMISSIONS, "supervisor", ROLE_PERMISSIONS["supervisor"] | {"users:write"}
    )
    supervisor = make_actor("supervisor", city.districts[0])
    theirs = make_actor("officer", city.stations[2])
    mine = make_actor("officer", city.stations[0])
    r = client.put(
        f"/api/users/{theirs.user_id}/roles",
        json={"roles": ["analyst"]},
        headers=supervisor.headers,
    )
    assert r.status_code == 404
    assert (
        client.post(
            f"/api/users/{theirs.user_id}/deactivate", headers=supervisor.headers
        ).status_code
        == 404
    )
    body = {
        "username": "placed-elsewhere",
        "org_id": city.stations[2].id,
        "roles": ["officer"],
        "password": PASSWORD,
    }
    before = _user_count(runtime)
    assert client.post("/api/users", json=body, headers=supervisor.headers).status_code == 404
    assert _user_count(runtime) == before
    ok = client.put(
        f"/api/users/{mine.user_id}/roles", json={"roles": ["analyst"]}, headers=supervisor.headers
    )
    assert ok.status_code == 200
    # ...but not grant the admin role.
    escalate = client.put(
        f"/api/users/{mine.user_id}/roles", json={"roles": ["admin"]}, headers=supervisor.headers
    )
    assert escalate.status_code == 403
    with runtime.sessions() as s:
        assert auth.roles_of(session=s, user_id=mine.user_id) == ["analyst"]
        assert auth.roles_of(session=s, user_id=theirs.user_id) == ["officer"]


def test_create_staff_shows_totp_once_and_they_can_log_in(
    client: TestClient, city: City, make_actor: MakeActor
) -> None:
    admin = make_actor("admin", city.city)
    r = client.post(
        "/api/users",
        json={
            "username": "Officer.Wang",
            "org_id": city.stations[0].id,
            "roles": ["officer"],
            "display_name": "W",
            "password": PASSWORD,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["username"] == "officer.wang"
    assert created["has_totp"] is True
    assert created["totp_uri"].startswith("otpauth://totp/")
    assert r.headers["cache-control"] == "no-store"
    again = client.get(f"/api/users/{created['id']}", headers=admin.headers).json()
    assert "totp_secret" not in again
    from safecity.platform.db import utcnow
    from safecity.security import totp

    login = client.post(
        "/api/auth/tokens",
        json={
            "username": "officer.wang",
            "password": PASSWORD,
            "totp": totp.code_at(created["totp_secret"], utcnow()),
        },
    )
    assert login.status_code == 201


@pytest.mark.parametrize(
    ("kind", "role"), [("device", "device"), ("apikey", "open311_client"), ("service", "analyst")]
)
def test_non_human_principals_use_tokens_in_the_same_rbac(
    client: TestClient, city: City, make_actor: MakeActor, kind: str, role: str
) -> None:
    admin = make_actor("admin", city.city)
    r = client.post(
        "/api/users",
        json={
            "username": f"{kind}-1",
            "org_id": city.stations[0].id,
            "roles": [role],
            "kind": kind,
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == kind
    assert created["totp_secret"] is None
    assert created["has_totp"] is False
    t = client.post(
        f"/api/users/{created['id']}/tokens",
        json={"name": "k", "ttl_hours": 24},
        headers=admin.headers,
    )
    assert t.status_code == 201
    token = t.json()["access_token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["kind"] == kind
    assert me.json()["roles"] == [role]
    # The same RBAC: a device key cannot manage users.
    denied = client.get("/api/users", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    listed = client.get("/api/users", params={"kind": kind}, headers=admin.headers).json()
    assert [u["username"] for u in listed["items"]] == [f"{kind}-1"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x1", "roles": ["officer"], "password": PASSWORD},  # no org
        {"username": "x1", "org_id": "ORG", "roles": ["officer"], "password": PASSWORD, "x": 1},
        {"username": "x1", "org_id": "ORG", "roles": ["overlord"], "password": PASSWORD},
        {"username": "x1", "org_id": "ORG", "roles": ["officer"], "password": "short"},
        {"username": "x1", "org_id": "ORG", "roles": ["officer"]},  # no password/OIDC
        {
            "username": "<script>alert(1)</script>",
            "org_id": "ORG",
            "roles": ["officer"],
            "password": PASSWORD,
        },
        {"username": "x1' OR '1'='1", "org_id": "ORG", "roles": ["officer"], "password": PASSWORD},
        {"username": "x1", "org_id": "ORG", "roles": ["device"], "password": PASSWORD},
        {"username": "x1", "org_id": "ORG", "roles": ["citizen"], "kind": "device"},
        {"username": "x1", "org_id": "ORG", "roles": ["officer"], "kind": "robot"},
        {"username": "x1", "org_id": "ORG", "roles": [], "password": PASSWORD},
        {"username": "x1", "org_id": "no-such-org", "roles": ["officer"], "password": PASSWORD},
    ],
)
def test_bad_create_input_is_a_problem_and_writes_nothing(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime, body: dict[str, object]
) -> None:
    admin = make_actor("admin", city.city)
    if body.get("org_id") == "ORG":
        body = {**body, "org_id": city.stations[0].id}
    before = _user_count(runtime)
    r = client.post("/api/users", json=body, headers=admin.headers)
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _user_count(runtime) == before


@pytest.mark.parametrize("user_id", ["x%00y", "a'b", "%3Cscript%3E", "x" * 65])
def test_malformed_user_ids_are_422(
    client: TestClient, city: City, make_actor: MakeActor, user_id: str
) -> None:
    admin = make_actor("admin", city.city)
    r = client.get(f"/api/users/{user_id}", headers=admin.headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_nul_characters_are_refused(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    before = _user_count(runtime)
    body = {
        "username": "nul-user",
        "org_id": city.city.id,
        "roles": ["analyst"],
        "password": PASSWORD,
        "display_name": "a\x00b",
    }
    assert client.post("/api/users", json=body, headers=admin.headers).status_code == 422
    body = {**body, "display_name": "", "org_id": "x\x00"}
    assert client.post("/api/users", json=body, headers=admin.headers).status_code == 422
    assert _user_count(runtime) == before


def test_duplicate_username_is_409(client: TestClient, city: City, make_actor: MakeActor) -> None:
    admin = make_actor("admin", city.city)
    body = {"username": "dup", "org_id": city.city.id, "roles": ["analyst"], "password": PASSWORD}
    assert client.post("/api/users", json=body, headers=admin.headers).status_code == 201
    again = client.post("/api/users", json=body, headers=admin.headers)
    assert again.status_code == 409


def test_admin_cannot_deactivate_or_rerole_themselves(
    client: TestClient, city: City, make_actor: MakeActor
) -> None:
    admin = make_actor("admin", city.city)
    r = client.post(f"/api/users/{admin.user_id}/deactivate", headers=admin.headers)
    assert r.status_code == 409
    r = client.put(
        f"/api/users/{admin.user_id}/roles", json={"roles": ["officer"]}, headers=admin.headers
    )
    assert r.status_code == 409


def test_list_paging_filters_and_unknown_parameters(
    client: TestClient, city: City, make_actor: MakeActor
) -> None:
    admin = make_actor("admin", city.city)
    for _ in range(3):
        make_actor("officer", city.stations[0])
    page = client.get(
        "/api/users", params={"role": "officer", "limit": 2}, headers=admin.headers
    ).json()
    assert page["total"] == 3
    assert len(page["items"]) == 2
    assert page["next"] is not None
    assert all(u["roles"] == ["officer"] for u in page["items"])
    assert client.get("/api/users", params={"bogus": 1}, headers=admin.headers).status_code == 422
    assert (
        client.get("/api/users", params={"role": "overlord"}, headers=admin.headers).status_code
        == 422
    )


def test_reset_totp_replaces_the_secret(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    officer = make_actor("officer", city.stations[0])
    r = client.post(f"/api/users/{officer.user_id}/reset-totp", headers=admin.headers)
    assert r.status_code == 200
    secret = r.json()["totp_secret"]
    again = client.post(f"/api/users/{officer.user_id}/reset-totp", headers=admin.headers)
    assert again.json()["totp_secret"] != secret
    with runtime.sessions() as s:
        user = s.get(User, officer.user_id)
        assert user is not None
        assert user.totp_secret != again.json()["totp_secret"]  # sealed at rest
        assert totp_secret_of(session=s, user=user) == again.json()["totp_secret"]


def test_machine_roles_are_roles() -> None:
    assert set(MACHINE_ROLES) <= set(ROLES)
