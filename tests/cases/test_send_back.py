"""Supervisor approval with "send back with comments": an officer requests solve, suspend
or close with a summary; a supervisor approves (the transition happens) or sends it back
with a required comment (the case stays); every step on the timeline and audited; 409 for
wrong states."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.cases.models import Case
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.cases.conftest import OpenFn
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean

pytestmark = pytest.mark.db


def _investigating(client: TestClient, open_case: OpenFn) -> Any:
    case = open_case(0)
    url = f"/api/cases/{case.id}/transitions/investigate"
    assert client.post(url, headers=case.headers).status_code == 200
    return case


def _actions(runtime: Runtime, case_id: str) -> list[str]:
    with runtime.sessions.begin() as s:
        rows = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_id == case_id, AuditEntry.action.like("cases.approval.%"))
            .order_by(AuditEntry.at)
        )
        return list(rows)


def test_send_back_keeps_the_state_then_approve_applies_the_transition(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = _investigating(client, open_case)
    base = f"/api/cases/{case.id}/approvals"
    boss = make_actor("supervisor", city.stations[0])
    r = client.post(base, json={"transition": "close", "summary": "no leads"}, headers=case.headers)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pending"
    # A second request while one is pending: 409.
    again = client.post(base, json={"transition": "solve", "summary": "x"}, headers=case.headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    # The officer cannot decide.
    assert client.post(f"{base}/approve", headers=case.headers).status_code == 403
    # Send back needs a comment.
    empty = client.post(f"{base}/send-back", json={"comment": ""}, headers=boss.headers)
    assert empty.status_code == 422
    back = client.post(
        f"{base}/send-back", json={"comment": "interview the witness first"}, headers=boss.headers
    )
    assert back.status_code == 200, back.text
    assert back.json()["state"] == "sent_back"
    detail = client.get(f"/api/cases/{case.id}", headers=case.headers).json()
    assert detail["state"] == "investigating"
    kinds = [(e["kind"], e["note"]) for e in detail["timeline"]]
    assert ("sent_back", "interview the witness first") in kinds
    assert ("approval_request", "close: no leads") in kinds
    # Nothing pending now: approve and send back are 409.
    assert client.post(f"{base}/approve", headers=boss.headers).status_code == 409
    r = client.post(f"{base}/send-back", json={"comment": "x"}, headers=boss.headers)
    assert r.status_code == 409
    # Ask again (solve), the supervisor approves: the case is solved.
    r = client.post(base, json={"transition": "solve", "summary": "arrested"}, headers=case.headers)
    assert r.status_code == 201
    ok = client.post(f"{base}/approve", headers=boss.headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "approved"
    detail = client.get(f"/api/cases/{case.id}", headers=case.headers).json()
    assert detail["state"] == "solved"
    assert "approval_approved" in [e["kind"] for e in detail["timeline"]]
    history = client.get(base, headers=case.headers).json()
    assert [h["state"] for h in history] == ["sent_back", "approved"]
    assert history[0]["comment"] == "interview the witness first"
    assert _actions(runtime, case.id) == [
        "cases.approval.request",
        "cases.approval.send_back",
        "cases.approval.request",
        "cases.approval.approve",
    ]


def test_wrong_states_are_409_and_write_nothing(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0, register=False)  # received: no solve/suspend/close from here
    base = f"/api/cases/{case.id}/approvals"
    for name in ("solve", "suspend", "close"):
        r = client.post(base, json={"transition": name, "summary": "s"}, headers=case.headers)
        assert r.status_code == 409, name
        assert r.headers["content-type"].startswith("application/problem+json")
    bad = client.post(base, json={"transition": "register", "summary": "s"}, headers=case.headers)
    assert bad.status_code == 422
    assert client.get(base, headers=case.headers).json() == []
    assert _actions(runtime, case.id) == []


def test_approve_after_the_case_moved_on_is_409(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = _investigating(client, open_case)
    base = f"/api/cases/{case.id}/approvals"
    boss = make_actor("supervisor", city.stations[0])
    r = client.post(base, json={"transition": "solve", "summary": "done"}, headers=case.headers)
    assert r.status_code == 201
    # The supervisor suspends directly meanwhile; the pending solve can no longer apply.
    url = f"/api/cases/{case.id}/transitions/suspend"
    assert client.post(url, json={"reason": "cold"}, headers=boss.headers).status_code == 200
    assert client.post(f"{base}/approve", headers=boss.headers).status_code == 409
    with runtime.sessions.begin() as s:
        row = s.get(Case, case.id)
        assert row is not None
        assert row.state == "suspended"


def test_other_stations_get_404(
    client: TestClient, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = _investigating(client, open_case)
    stranger = make_actor("officer", city.stations[1])
    base = f"/api/cases/{case.id}/approvals"
    r = client.post(base, json={"transition": "solve", "summary": "s"}, headers=stranger.headers)
    assert r.status_code == 404
    assert client.get(base, headers=stranger.headers).status_code == 404


def test_console_request_send_back_and_approve(
    client: TestClient, open_case: OpenFn, make_staff: Any, city: City
) -> None:
    case = _investigating(client, open_case)
    url = f"/console/cases/{case.id}"
    log_in(client, make_staff("officer", city.stations[0]))
    page = client.get(url)
    assert 'data-form="request-approval"' in page.text
    assert 'data-transition="solve"' not in page.text  # no direct supervised step
    assert_csp_clean(page.text)
    token = csrf_from(page.text)
    r = client.post(
        f"{url}/approvals",
        data={"csrf_token": token, "transition": "close", "summary": "nothing more to do"},
    )
    assert r.status_code == 200
    assert "data-pending" in r.text
    assert client.post(f"{url}/approvals/approve", data={"csrf_token": token}).status_code == 403
    client.cookies.clear()
    log_in(client, make_staff("supervisor", city.stations[0]))
    page = client.get(url)
    assert 'data-form="send-back"' in page.text
    token = csrf_from(page.text)
    empty = client.post(f"{url}/approvals/send-back", data={"csrf_token": token, "comment": " "})
    assert empty.status_code == 422
    assert 'data-error="422"' in empty.text
    back = client.post(
        f"{url}/approvals/send-back", data={"csrf_token": token, "comment": "add the CCTV report"}
    )
    assert back.status_code == 200
    assert "data-sent-back" in back.text
    assert "add the CCTV report" in back.text
    assert 'data-state="investigating"' in back.text
    again = client.post(f"{url}/approvals/approve", data={"csrf_token": token})
    assert again.status_code == 409
    assert 'data-error="409"' in again.text


def test_two_requests_racing_past_the_check_leave_one_pending(
    client: TestClient, runtime: Runtime, open_case: OpenFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests that both pass the "nothing pending" read (as two simultaneous ones
    can) meet the unique index: the second is a 409 and writes nothing."""
    from safecity.cases import approvals
    from safecity.cases.work_models import CaseApproval

    case = _investigating(client, open_case)
    base = f"/api/cases/{case.id}/approvals"
    monkeypatch.setattr(approvals, "pending", lambda session, case_id: None)
    first = client.post(base, json={"transition": "close", "summary": "a"}, headers=case.headers)
    assert first.status_code == 201, first.text
    second = client.post(base, json={"transition": "solve", "summary": "b"}, headers=case.headers)
    assert second.status_code == 409, second.text
    assert second.headers["content-type"].startswith("application/problem+json")
    with runtime.sessions() as s:
        rows = s.scalars(select(CaseApproval.state).where(CaseApproval.case_id == case.id))
        assert list(rows) == ["pending"]
    assert _actions(runtime, case.id) == ["cases.approval.request"]
