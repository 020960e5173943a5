"""Problem+json everywhere: every error status, bad input of every kind, no stack traces.

The app under test is :func:`create_app` plus a few test-only routes (a write route with
a strict schema, routes that raise); nothing here is mounted in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from safecity.app import create_app
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.errors import Conflict, IllegalTransition, ServiceUnavailable
from safecity.platform.runtime import DbSession, Runtime
from safecity.security.auth import issue_token
from safecity.security.rbac import Principal, public, require
from tests.conftest import Actor, City

PROBLEM = "application/problem+json"

INJECTIONS = [
    "'; DROP TABLE orgs; --",
    "x' OR '1'='1",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}",
    "../../etc/passwd",
]


class NewOrg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    parent_id: str = Field(min_length=32, max_length=32)


class OrgOut(BaseModel):
    id: str
    code: str


def _test_router() -> APIRouter:
    router = APIRouter(prefix="/_test")

    @router.post("/orgs", status_code=201)
    def create_org(
        body: NewOrg,
        session: DbSession,
        _: Annotated[Principal, Depends(require("orgs:write"))],
    ) -> OrgOut:
        org = orgs.create(
            session=session,
            code=body.code,
            kind="station",
            name_zh=body.name,
            name_en=body.name,
            parent_id=body.parent_id,
        )
        return OrgOut(id=org.id, code=org.code)

    @router.get("/boom", dependencies=[Depends(public)])
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2 at /srv/app/db.py")

    @router.get("/boom-async", dependencies=[Depends(public)])
    async def boom_async() -> None:
        raise KeyError("internal-key")

    @router.get("/conflict", dependencies=[Depends(public)])
    def conflict() -> None:
        raise Conflict("already exists")

    @router.get("/illegal", dependencies=[Depends(public)])
    def illegal() -> None:
        raise IllegalTransition("cannot close a closed case", state="closed")

    @router.get("/integrity", dependencies=[Depends(public)])
    def integrity() -> None:
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed: orgs.code"))

    @router.get("/db-gone", dependencies=[Depends(public)])
    def db_gone() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused to 10.0.0.5"))

    @router.get("/unavailable", dependencies=[Depends(public)])
    def unavailable() -> None:
        raise ServiceUnavailable("bus down", retry_after=7)

    return router


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    app = create_app(runtime=runtime)
    app.include_router(_test_router())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin(city: City, make_actor: Any) -> Actor:
    actor: Actor = make_actor("admin", city.city)
    return actor


def assert_problem(r: Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"].startswith(("https://", "about:blank"))
    assert body["instance"] == r.request.url.path
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    assert 'File "' not in r.text
    return body


def org_count(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Org)) or 0)


# --- one per status ------------------------------------------------------------------


@pytest.mark.db
def test_401_without_token(api: TestClient, city: City) -> None:
    r = api.post("/_test/orgs", json={"code": "a", "name": "A", "parent_id": city.city.id})
    body = assert_problem(r, 401)
    assert body["type"].endswith("/unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.db
@pytest.mark.parametrize("token", ["sct_forged", "not-even-a-token", "sct_" + "A" * 43])
def test_401_with_forged_token(api: TestClient, city: City, token: str) -> None:
    r = api.post(
        "/_test/orgs",
        json={"code": "a", "name": "A", "parent_id": city.city.id},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(r, 401)


@pytest.mark.db
def test_401_with_expired_token(
    api: TestClient, runtime: Runtime, city: City, admin: Actor
) -> None:
    with runtime.sessions.begin() as s:
        expired = issue_token(session=s, user_id=admin.user_id, ttl=timedelta(seconds=-1))
    before = org_count(runtime)
    r = api.post(
        "/_test/orgs",
        json={"code": "a", "name": "A", "parent_id": city.city.id},
        headers={"Authorization": f"Bearer {expired}"},
    )
    assert_problem(r, 401)
    assert org_count(runtime) == before


@pytest.mark.db
def test_403_without_permission(
    api: TestClient, runtime: Runtime, city: City, make_actor: Any
) -> None:
    officer: Actor = make_actor("officer", city.stations[0])
    before = org_count(runtime)
    r = api.post(
        "/_test/orgs",
        json={"code": "a", "name": "A", "parent_id": city.city.id},
        headers=officer.headers,
    )
    body = assert_problem(r, 403)
    assert body["type"].endswith("/permission-denied")
    assert org_count(runtime) == before


def test_404_unknown_route(api: TestClient) -> None:
    body = assert_problem(api.get("/api/no-such-thing"), 404)
    assert body["type"].endswith("/not-found")


def test_405_wrong_method(api: TestClient) -> None:
    r = api.delete("/healthz")
    assert_problem(r, 405)
    assert "GET" in r.headers["allow"]


@pytest.mark.db
def test_409_duplicate(api: TestClient, runtime: Runtime, city: City, admin: Actor) -> None:
    payload = {"code": "dup-1", "name": "Dup", "parent_id": city.districts[0].id}
    assert api.post("/_test/orgs", json=payload, headers=admin.headers).status_code == 201
    before = org_count(runtime)
    assert_problem(api.post("/_test/orgs", json=payload, headers=admin.headers), 409)
    assert org_count(runtime) == before


@pytest.mark.parametrize(
    ("path", "slug"),
    [("/_test/conflict", "conflict"), ("/_test/illegal", "illegal-transition")],
)
def test_409_from_service_errors(api: TestClient, path: str, slug: str) -> None:
    body = assert_problem(api.get(path), 409)
    assert body["type"].endswith("/" + slug)


def test_integrity_error_that_escaped_a_service_is_409(api: TestClient) -> None:
    body = assert_problem(api.get("/_test/integrity"), 409)
    assert "UNIQUE" not in body["detail"]


def test_413_body_too_large(api: TestClient) -> None:
    r = api.post("/_test/orgs", content=b"{" + b" " * 2_000_000 + b"}")
    assert_problem(r, 413)


def test_429_rate_limited(api: TestClient) -> None:
    for _ in range(10):
        api.post("/api/auth/login", json={"username": "x", "password": "y"})
    r = api.post("/api/auth/login", json={"username": "x", "password": "y"})
    assert_problem(r, 429)
    assert int(r.headers["retry-after"]) > 0


def test_503_service_unavailable(api: TestClient) -> None:
    r = api.get("/_test/unavailable")
    assert_problem(r, 503)
    assert r.headers["retry-after"] == "7"


def test_database_errors_map_to_503_without_details(api: TestClient) -> None:
    r = api.get("/_test/db-gone")
    body = assert_problem(r, 503)
    assert "10.0.0.5" not in r.text
    assert body["type"].endswith("/service-unavailable")
    assert "retry-after" in r.headers


@pytest.mark.parametrize("path", ["/_test/boom", "/_test/boom-async"])
def test_500_unhandled_error_has_no_stack_trace(
    api: TestClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = api.get(path)
    body = assert_problem(r, 500)
    assert "hunter2" not in r.text
    assert "internal-key" not in r.text
    assert "RuntimeError" not in r.text
    assert "KeyError" not in r.text
    assert body["detail"] == "An unexpected error occurred; it has been logged."
    assert "content-security-policy" in r.headers
    # ...but the log has it, with the request id.
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert logged
    assert any(getattr(rec, "request_id", None) == body["request_id"] for rec in caplog.records)


# --- bad input changes nothing -------------------------------------------------------


@pytest.mark.db
@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b'{"code": "a", "name": ', "malformed JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'["a", "b"]', "an array"),
        (b'{"code": 5, "name": ["A"], "parent_id": null}', "wrong types"),
        (b"", "empty body"),
    ],
)
def test_bad_json_is_422_and_changes_nothing(
    api: TestClient, runtime: Runtime, admin: Actor, content: bytes, what: str
) -> None:
    before = org_count(runtime)
    r = api.post(
        "/_test/orgs",
        content=content,
        headers={**admin.headers, "content-type": "application/json"},
    )
    body = assert_problem(r, 422)
    assert body["type"].endswith("/invalid-input"), what
    assert body["errors"], what
    assert org_count(runtime) == before


@pytest.mark.db
def test_unknown_field_is_422_and_named(
    api: TestClient, runtime: Runtime, city: City, admin: Actor
) -> None:
    before = org_count(runtime)
    payload = {"code": "ok-1", "name": "Ok", "parent_id": city.city.id, "is_admin": True}
    r = api.post("/_test/orgs", json=payload, headers=admin.headers)
    body = assert_problem(r, 422)
    assert any(
        e["loc"][-1] == "is_admin" and e["type"] == "extra_forbidden" for e in body["errors"]
    )
    assert org_count(runtime) == before


@pytest.mark.db
@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_strings_are_refused_and_change_nothing(
    api: TestClient, runtime: Runtime, city: City, admin: Actor, attack: str
) -> None:
    before = org_count(runtime)
    r = api.post(
        "/_test/orgs",
        json={"code": attack, "name": "n", "parent_id": city.city.id},
        headers=admin.headers,
    )
    body = assert_problem(r, 422)
    assert body["errors"][0]["loc"] == ["body", "code"]
    assert org_count(runtime) == before


@pytest.mark.db
@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_strings_as_data_are_stored_verbatim(
    api: TestClient, runtime: Runtime, city: City, admin: Actor, attack: str
) -> None:
    """Where free text is allowed, an injection string is just text: stored as given,
    served as JSON (never HTML), and every table is still there."""
    r = api.post(
        "/_test/orgs",
        json={"code": "inj-1", "name": attack, "parent_id": city.districts[0].id},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    with runtime.sessions() as s:
        stored = orgs.get(session=s, org_id=r.json()["id"])
        assert stored.name_en == attack
    assert org_count(runtime) == 9  # the fixture's 8 + this one: the table survived


def test_open311_routes_keep_their_own_error_format(api: TestClient) -> None:
    r = api.get("/open311/v2/no-such-thing.json")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == [{"code": 404, "description": "Not Found"}]
