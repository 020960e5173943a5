"""GET /api/audit and POST /api/audit/verify: auditors only, and reading is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import ROLE_PERMISSIONS, permissions_for

from .audit_support import rows, set_column, write_records

pytestmark = pytest.mark.db


@pytest.fixture
def auditor(city: Any, make_actor: Any) -> Any:
    return make_actor("auditor", city.city)


def test_auditor_reads_the_log_newest_first_with_paging(
    client: TestClient, runtime: Runtime, auditor: Any
) -> None:
    write_records(runtime, 5, action="cases.read")
    response = client.get("/api/audit", params={"limit": 2}, headers=auditor.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] >= 5
    seqs = [item["seq"] for item in body["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) == 2
    assert body["next"] is not None
    second = client.get(body["next"], headers=auditor.headers).json()
    assert second["items"][0]["seq"] == seqs[-1] - 1
    item = body["items"][0]
    assert set(item) >= {"actor_id", "role", "org_id", "purpose", "action", "target_id", "mac"}


def test_filters_by_actor_action_target_and_time(
    client: TestClient, runtime: Runtime, auditor: Any
) -> None:
    base = len(rows(runtime.engine))  # the fixtures' own records (org creation...)
    write_records(runtime, 3, action="cases.read")
    write_records(runtime, 2, action="orgs.renamed")
    before = datetime.now(UTC) - timedelta(hours=1)
    h = auditor.headers

    def seqs(**params: Any) -> list[int]:
        response = client.get("/api/audit", params=params, headers=h)
        assert response.status_code == 200, response.text
        return [i["seq"] - base for i in response.json()["items"]]

    assert seqs(action="orgs.renamed") == [5, 4]
    assert seqs(action_prefix="cases.") == [3, 2, 1]
    assert seqs(action_prefix="cases_") == []  # '_' is not a wildcard
    assert seqs(target_type="thing", target_id="t2", action="cases.read") == [2]
    assert set(seqs(actor_id="system")) >= {1, 2, 3, 4, 5}
    assert seqs(actor_id="nobody") == []
    assert seqs(until=before.isoformat()) == []
    assert set(seqs(since=before.isoformat(), action_prefix="orgs.re")) == {4, 5}
    assert seqs(sort="seq", action="orgs.renamed") == [4, 5]


def test_reading_the_log_is_audited(client: TestClient, runtime: Runtime, auditor: Any) -> None:
    write_records(runtime, 2)
    response = client.get(
        "/api/audit",
        params={"action": "test.touch", "purpose": "quarterly review"},
        headers={**auditor.headers, "X-Request-ID": "audit-req-1"},
    )
    assert response.status_code == 200
    reads = [r for r in rows(runtime.engine) if r.action == "audit.read"]
    assert len(reads) == 1
    (read,) = reads
    assert read.actor_id == auditor.user_id
    assert read.role == "auditor"
    assert read.purpose == "quarterly review"
    assert read.target_type == "audit_log"
    assert read.detail["filters"] == {"action": "test.touch"}
    assert read.detail["returned"] == 2
    assert read.request_id == "audit-req-1"


def test_verify_reports_ok_and_is_audited(
    client: TestClient, runtime: Runtime, auditor: Any
) -> None:
    write_records(runtime, 4)
    response = client.post("/api/audit/verify", headers=auditor.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["records"] >= 4
    assert body["first_bad"] is None
    verifications = [r for r in rows(runtime.engine) if r.action == "audit.verify"]
    assert len(verifications) == 1
    assert verifications[0].detail["ok"] is True


def test_verify_reports_the_first_bad_link(
    client: TestClient, runtime: Runtime, auditor: Any
) -> None:
    write_records(runtime, 4)
    first_test_record = next(r.seq for r in rows(runtime.engine) if r.action == "test.touch")
    set_column(runtime.engine, first_test_record + 1, target_id="forged")
    body = client.post("/api/audit/verify", headers=auditor.headers).json()
    assert body["ok"] is False
    assert body["first_bad"]["seq"] == first_test_record + 1
    assert body["first_bad"]["code"] == "mac"
    assert body["summary"].startswith("FAILED")


@pytest.mark.parametrize("role", ["admin", "officer", "supervisor", "analyst", "citizen"])
def test_other_roles_may_not_read_or_verify(
    client: TestClient, city: Any, make_actor: Any, role: str
) -> None:
    actor = make_actor(role, city.stations[0])
    assert client.get("/api/audit", headers=actor.headers).status_code == 403
    assert client.post("/api/audit/verify", headers=actor.headers).status_code == 403


def test_anonymous_gets_401(client: TestClient) -> None:
    response = client.get("/api/audit")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_queries_are_422(client: TestClient, auditor: Any) -> None:
    h = auditor.headers
    assert (
        client.get("/api/audit", params={"since": "2025-01-01T00:00"}, headers=h).status_code == 422
    )
    assert client.get("/api/audit", params={"since": "yesterday"}, headers=h).status_code == 422
    assert client.get("/api/audit", params={"limit": 0}, headers=h).status_code == 422
    assert client.get("/api/audit", params={"sort": "mac"}, headers=h).status_code == 422
    assert client.get("/api/audit", params={"colour": "red"}, headers=h).status_code == 422


def test_auditor_reads_audit_and_nothing_else(
    app: Any, client: TestClient, city: Any, auditor: Any
) -> None:
    """The auditor's permissions, after every domain has granted its own (app imported),
    are the audit ones plus seeing the console and their own profile."""
    assert app is not None
    extra = permissions_for(frozenset({"auditor"})) - {"self:read", "console:view"}
    assert extra, "the auditor must at least read the audit log"
    assert all(p.startswith("audit:") for p in extra), sorted(extra)
    assert {"audit:read", "audit:verify"} <= ROLE_PERMISSIONS["auditor"]
    assert not any(
        p.startswith("audit:")
        for role, perms in ROLE_PERMISSIONS.items()
        if role != "auditor"
        for p in perms
    )
    response = client.get(f"/api/orgs/{city.city.id}", headers=auditor.headers)
    assert response.status_code in (403, 404)
    assert audit.SYSTEM.can("audit:read") is False
