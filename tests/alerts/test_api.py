"""Alerts API: role matrix, scope (404), transitions allowed / 403 / 409, SLA escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.alerts import events, service
from safecity.platform import jobs
from safecity.platform.db import utcnow
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.alerts.conftest import RaiseFn
from tests.conftest import City

pytestmark = pytest.mark.db


@pytest.mark.parametrize(
    ("role", "read", "act"),
    [
        ("citizen", 403, 403),
        ("officer", 200, 200),
        ("supervisor", 200, 200),
        ("analyst", 200, 403),
        ("department_staff", 403, 403),
        ("auditor", 403, 403),
        ("admin", 200, 200),
    ],
)
def test_role_matrix(
    client: TestClient,
    raise_one: RaiseFn,
    make_actor: Any,
    areas: City,
    role: str,
    read: int,
    act: int,
) -> None:
    alert = raise_one(0)
    home = {"admin": areas.city, "auditor": areas.city, "supervisor": areas.districts[0]}
    actor = make_actor(role, home.get(role, areas.stations[0]))
    assert client.get("/api/alerts", headers=actor.headers).status_code == read
    assert client.get(f"/api/alerts/{alert.id}", headers=actor.headers).status_code == read
    r = client.post(f"/api/alerts/{alert.id}/transitions/acknowledge", headers=actor.headers)
    assert r.status_code == act, r.text


def test_list_is_scoped_and_filtered(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    mine = raise_one(0, key="a", severity="critical")
    raise_one(0, key="b", severity="low")
    other = raise_one(1, key="c")
    far = raise_one(2, key="d")  # another district
    officer = make_actor("officer", areas.stations[0])
    body = client.get("/api/alerts", headers=officer.headers).json()
    assert body["total"] == 2
    assert other.id not in {a["id"] for a in body["items"]}
    only = client.get("/api/alerts?severity=critical", headers=officer.headers).json()
    assert [a["id"] for a in only["items"]] == [mine.id]
    assert client.get("/api/alerts?status=new", headers=officer.headers).json()["total"] == 2
    assert client.get("/api/alerts?status=resolved", headers=officer.headers).json()["total"] == 0
    assert client.get("/api/alerts?colour=red", headers=officer.headers).status_code == 422
    supervisor = make_actor("supervisor", areas.districts[0])
    seen = {a["id"] for a in client.get("/api/alerts", headers=supervisor.headers).json()["items"]}
    assert other.id in seen
    assert far.id not in seen


def test_out_of_scope_is_404_for_read_and_act(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    alert = raise_one(1)
    officer = make_actor("officer", areas.stations[0])
    assert client.get(f"/api/alerts/{alert.id}", headers=officer.headers).status_code == 404
    r = client.post(f"/api/alerts/{alert.id}/transitions/acknowledge", headers=officer.headers)
    assert r.status_code == 404
    assert client.get("/api/alerts/nope", headers=officer.headers).status_code == 404


def test_acknowledge_on_scene_resolve_with_notes(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    alert = raise_one(0)
    h = make_actor("officer", areas.stations[0]).headers
    url = f"/api/alerts/{alert.id}/transitions"
    body = client.post(f"{url}/acknowledge", headers=h).json()
    assert body["state"] == "acknowledged"
    assert body["acknowledged_at"]
    # acknowledging twice is illegal
    again = client.post(f"{url}/acknowledge", headers=h)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert client.post(f"{url}/on_scene", headers=h).json()["state"] == "on_scene"
    assert client.post(f"{url}/resolve", headers=h, json={}).status_code == 422  # notes needed
    assert client.post(f"{url}/resolve", headers=h, json={"x": 1}).status_code == 422
    assert client.post(f"{url}/teleport", headers=h).status_code == 422
    done = client.post(f"{url}/resolve", headers=h, json={"notes": "battery removed"}).json()
    assert done["state"] == "resolved"
    assert done["closed_at"]
    assert done["transitions"] == []
    timeline = done["timeline"]
    assert [e["to_state"] for e in timeline] == ["new", "acknowledged", "on_scene", "resolved"]
    assert timeline[-1]["note"] == "battery removed"
    assert client.post(f"{url}/on_scene", headers=h).status_code == 409


def test_officer_cannot_escalate_supervisor_can(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    alert = raise_one(0)
    url = f"/api/alerts/{alert.id}/transitions/escalate"
    officer = make_actor("officer", areas.stations[0])
    assert client.post(url, headers=officer.headers).status_code == 403
    supervisor = make_actor("supervisor", areas.districts[0])
    body = client.post(url, headers=supervisor.headers).json()
    assert body["state"] == "escalated"
    assert body["escalated_to_org_id"] == areas.districts[0].id


def test_workflow_graph(client: TestClient, make_actor: Any, areas: City) -> None:
    h = make_actor("analyst", areas.stations[0]).headers
    graph = client.get("/api/alerts/workflow", headers=h).json()
    assert graph["terminal"] == ["false_alarm", "resolved"]


def test_sla_job_escalates_overdue_unacknowledged_alerts_to_the_district(
    runtime: Runtime, raise_one: RaiseFn, areas: City
) -> None:
    critical = raise_one(3, key="crit", severity="critical")  # station 3 is in district 1
    high = raise_one(0, key="high", severity="high")
    acked = raise_one(0, key="acked", severity="critical")
    from safecity.security import audit

    with runtime.sessions.begin() as s:
        service.transition(session=s, principal=audit.SYSTEM, alert_id=acked.id, name="acknowledge")
    jobs.load_job_modules()
    scheduler = jobs.Scheduler(runtime)
    # 6 minutes on: only the critical one is past its SLA (5 min); high has 15.
    outcome = scheduler.run_now("alerts.sla_check", now=utcnow() + timedelta(minutes=6))
    assert outcome.status == "succeeded"
    assert outcome.items == 1
    with runtime.sessions() as s:
        c = service.get_alert(session=s, principal=audit.SYSTEM, alert_id=critical.id)
        assert c.state == "escalated"
        assert c.escalated
        assert c.escalated_to_org_id == areas.districts[1].id
        assert service.get_alert(session=s, principal=audit.SYSTEM, alert_id=high.id).state == "new"
        escalations = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == events.ESCALATED)
        ).all()
        assert [e.payload["alert_id"] for e in escalations] == [critical.id]
    outcome = scheduler.run_now("alerts.sla_check", now=utcnow() + timedelta(minutes=16))
    assert outcome.items == 1  # now the high one; escalated and acknowledged ones are left alone
