"""Tasks on a case: create (an officer of the case's station, a due date), complete, list
with overdue flagged; scope (404), the assignee's checks (422), audited, on the timeline,
and overdue tasks shown on the console's case page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.cases import tasks
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.cases.conftest import OpenFn
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in

pytestmark = pytest.mark.db


def _task(client: TestClient, case_id: str, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"/api/cases/{case_id}/tasks", json=body, headers=headers)


def test_create_list_overdue_and_complete(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    officer = make_actor("officer", city.stations[0])
    today = tasks.today()
    late = _task(
        client,
        case.id,
        case.headers,
        title="Collect CCTV",
        assignee_id=officer.user_id,
        due_on=(today - timedelta(days=2)).isoformat(),
    )
    assert late.status_code == 201, late.text
    assert late.json()["overdue"] is True
    soon = _task(
        client,
        case.id,
        case.headers,
        title="Call the witness",
        assignee_id=officer.user_id,
        due_on=(today + timedelta(days=3)).isoformat(),
    )
    assert soon.json()["overdue"] is False
    listed = client.get(f"/api/cases/{case.id}/tasks", headers=case.headers).json()
    assert [t["title"] for t in listed] == ["Collect CCTV", "Call the witness"]
    url = f"/api/cases/{case.id}/tasks/{late.json()['id']}/complete"
    done = client.post(url, headers=officer.headers)
    assert done.status_code == 200, done.text
    assert done.json()["done_by"] == officer.user_id
    assert done.json()["overdue"] is False
    again = client.post(url, headers=officer.headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    listed = client.get(f"/api/cases/{case.id}/tasks", headers=case.headers).json()
    assert [t["title"] for t in listed] == ["Call the witness", "Collect CCTV"]
    detail = client.get(f"/api/cases/{case.id}", headers=case.headers).json()
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.count("task") == 2
    assert kinds.count("task_done") == 1
    with runtime.sessions.begin() as s:
        actions = list(
            s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.target_id == case.id, AuditEntry.action.like("cases.task.%")
                )
            )
        )
    assert sorted(actions) == ["cases.task.complete", "cases.task.create", "cases.task.create"]


def test_assignee_must_be_an_officer_of_the_station_and_scope_is_404(
    client: TestClient, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    due = tasks.today().isoformat()
    elsewhere = make_actor("officer", city.stations[1])
    analyst = make_actor("analyst", city.stations[0])
    for assignee in (elsewhere.user_id, analyst.user_id, "nobody"):
        r = _task(client, case.id, case.headers, title="t", assignee_id=assignee, due_on=due)
        assert r.status_code == 422, assignee
        assert r.headers["content-type"].startswith("application/problem+json")
    blank = _task(
        client, case.id, case.headers, title=" ", assignee_id=elsewhere.user_id, due_on=due
    )
    assert blank.status_code == 422
    r = _task(
        client, case.id, elsewhere.headers, title="t", assignee_id=elsewhere.user_id, due_on=due
    )
    assert r.status_code == 404
    assert client.get(f"/api/cases/{case.id}/tasks", headers=elsewhere.headers).status_code == 404
    assert client.get(f"/api/cases/{case.id}/tasks", headers=case.headers).json() == []
    r = client.post(f"/api/cases/{case.id}/tasks/nope/complete", headers=case.headers)
    assert r.status_code in (404, 422)


def test_overdue_tasks_show_on_the_case_page(
    client: TestClient, open_case: OpenFn, make_actor: Any, make_staff: Any, city: City
) -> None:
    case = open_case(0)
    officer = make_actor("officer", city.stations[0])
    due = (tasks.today() - timedelta(days=1)).isoformat()
    r = _task(
        client, case.id, case.headers, title="Late task", assignee_id=officer.user_id, due_on=due
    )
    assert r.status_code == 201
    log_in(client, make_staff("officer", city.stations[0]))
    page = client.get(f"/console/cases/{case.id}")
    assert page.status_code == 200
    assert "data-overdue" in page.text
    assert "Late task" in page.text
    token = csrf_from(page.text)
    url = f"/console/cases/{case.id}"
    made = client.post(
        f"{url}/tasks",
        data={
            "csrf_token": token,
            "title": "Visit the shop",
            "assignee_id": officer.user_id,
            "due_on": tasks.today().isoformat(),
        },
    )
    assert made.status_code == 200
    assert "Visit the shop" in made.text
    bad = client.post(
        f"{url}/tasks",
        data={"csrf_token": token, "title": "x", "assignee_id": "nobody", "due_on": "2026-01-01"},
    )
    assert bad.status_code == 422
    assert 'data-error="422"' in bad.text
    task_id = r.json()["id"]
    done = client.post(f"{url}/tasks/{task_id}/complete", data={"csrf_token": token})
    assert done.status_code == 200
    assert "data-overdue" not in done.text
    assert "data-task-done" in done.text
