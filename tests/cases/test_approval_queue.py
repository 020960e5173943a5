"""The supervisor's approval queue across cases: pending requests only, in the
supervisor's org scope, oldest first; the API needs the approve permission; the console
page decides through the case routes and comes back to the queue; reads are audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.cases import approvals
from safecity.platform.errors import PermissionDenied
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal
from tests.cases.conftest import Opened, OpenFn
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean

pytestmark = pytest.mark.db

QUEUE_API = "/api/cases/approvals"
QUEUE_PAGE = "/console/cases/approvals"
PROBLEM = "application/problem+json"


def _requested(client: TestClient, open_case: OpenFn, station: int, transition: str) -> Opened:
    case = open_case(station)
    url = f"/api/cases/{case.id}/transitions/investigate"
    assert client.post(url, headers=case.headers).status_code == 200
    body = {"transition": transition, "summary": f"{transition} please"}
    r = client.post(f"/api/cases/{case.id}/approvals", json=body, headers=case.headers)
    assert r.status_code == 201, r.text
    return case


def test_the_queue_lists_pending_requests_in_scope_oldest_first(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    first = _requested(client, open_case, 0, "close")
    second = _requested(client, open_case, 1, "solve")
    sent_back = _requested(client, open_case, 0, "suspend")
    approved = _requested(client, open_case, 0, "solve")
    other_district = _requested(client, open_case, 2, "close")
    boss = make_actor("supervisor", city.districts[0])
    base = "/api/cases/{}/approvals"
    r = client.post(
        base.format(sent_back.id) + "/send-back", json={"comment": "no"}, headers=boss.headers
    )
    assert r.status_code == 200
    assert (
        client.post(base.format(approved.id) + "/approve", headers=boss.headers).status_code == 200
    )

    listed = client.get(QUEUE_API, headers=boss.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 2
    assert [i["case_id"] for i in body["items"]] == [first.id, second.id]
    row = body["items"][0]
    assert (row["case_number"], row["case_type"], row["transition"]) == (
        first.number,
        "theft",
        "close",
    )
    assert row["requested_by"]
    assert row["age_seconds"] >= 0
    assert row["case_state"] == "investigating"
    # Another district's supervisor sees only theirs; a station's only its own.
    pd_boss = make_actor("supervisor", city.districts[1])
    theirs = client.get(QUEUE_API, headers=pd_boss.headers).json()
    assert [i["case_id"] for i in theirs["items"]] == [other_district.id]
    s1_boss = make_actor("supervisor", city.stations[1])
    assert [
        i["case_id"] for i in client.get(QUEUE_API, headers=s1_boss.headers).json()["items"]
    ] == [second.id]
    # Filters, paging, bad input.
    solve = client.get(QUEUE_API, params={"transition": "solve"}, headers=boss.headers).json()
    assert [i["case_id"] for i in solve["items"]] == [second.id]
    newest = client.get(
        QUEUE_API, params={"sort": "-requested_at", "limit": 1}, headers=boss.headers
    )
    assert [i["case_id"] for i in newest.json()["items"]] == [second.id]
    assert newest.json()["next"] is not None
    bad = client.get(QUEUE_API, params={"state": "approved"}, headers=boss.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith(PROBLEM)
    # An officer (no approve permission) is refused.
    denied = client.get(QUEUE_API, headers=first.headers)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith(PROBLEM)
    with runtime.sessions() as s:
        details = s.scalars(
            select(AuditEntry.detail).where(
                AuditEntry.action == "cases.approval.list", AuditEntry.actor_id == boss.user_id
            )
        ).all()
        assert [d["count"] for d in details] == [2, 1, 1]


def test_the_service_refuses_without_the_permission_and_reports_the_age(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = _requested(client, open_case, 0, "close")
    with runtime.sessions() as s:
        asked = approvals.pending(s, case.id)
        assert asked is not None
        scope = frozenset({city.stations[0].id})
        boss = Principal(
            "boss", "user", "boss", frozenset({"supervisor"}), city.stations[0].id, scope
        )
        page = approvals.queue(
            session=s,
            principal=boss,
            params=approvals.QUEUE.parse(),
            now=asked.requested_at + timedelta(hours=30),
        )
        assert [(i.id, i.age_seconds) for i in page.items] == [(asked.id, 30 * 3600)]
        officer = Principal("o", "user", "o", frozenset({"officer"}), city.stations[0].id, scope)
        with pytest.raises(PermissionDenied):
            approvals.queue(session=s, principal=officer, params=approvals.QUEUE.parse())


def test_the_console_queue_decides_and_returns_to_the_queue(
    client: TestClient, open_case: OpenFn, make_staff: Any, city: City
) -> None:
    to_approve = _requested(client, open_case, 0, "solve")
    to_send_back = _requested(client, open_case, 0, "close")
    elsewhere = _requested(client, open_case, 2, "close")
    log_in(client, make_staff("supervisor", city.stations[0]))
    listing = client.get("/console/cases")
    assert f'href="{QUEUE_PAGE}"' in listing.text
    assert 'href="/console/cases/replies"' in listing.text
    page = client.get(QUEUE_PAGE)
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert page.text.count("data-approval-id=") == 2
    assert page.text.index(to_approve.number) < page.text.index(to_send_back.number)
    assert elsewhere.number not in page.text
    assert 'name="next" value="/console/cases/approvals"' in page.text
    token = csrf_from(page.text)
    ok = client.post(
        f"/console/cases/{to_approve.id}/approvals/approve",
        data={"csrf_token": token, "next": QUEUE_PAGE},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == QUEUE_PAGE
    back = client.post(
        f"/console/cases/{to_send_back.id}/approvals/send-back",
        data={"csrf_token": token, "comment": "more detail", "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert back.status_code == 303
    assert back.headers["location"] == f"/console/cases/{to_send_back.id}#approval"  # not evil
    empty = client.get(QUEUE_PAGE)
    assert "data-approval-id=" not in empty.text
    assert "data-empty" in empty.text
    case_page = client.get(f"/console/cases/{to_approve.id}")
    assert 'data-state="solved"' in case_page.text


def test_an_officer_cannot_open_the_console_queue(
    client: TestClient, make_staff: Any, city: City
) -> None:
    log_in(client, make_staff("officer", city.stations[0]))
    assert client.get(QUEUE_PAGE).status_code == 403
