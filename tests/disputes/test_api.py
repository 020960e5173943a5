"""Disputes API: routing to the station, scope (404), redaction outside the station, the
mediation workflow (409 on an illegal transition), follow-ups, audit and timeline."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.alerts.conftest import point_in_station
from tests.conftest import City
from tests.disputes.conftest import PARTY, RecordFn

pytestmark = pytest.mark.db


def _create(client: TestClient, headers: dict[str, str], station: int = 0, **extra: Any) -> Any:
    lat, lng = point_in_station(station)
    body = {"category": "noise", "building": "B12", "lat": lat, "lng": lng, **PARTY, **extra}
    return client.post("/api/disputes", json=body, headers=headers)


def test_create_routes_to_the_station_owning_the_point(
    client: TestClient, make_actor: Any, areas: City
) -> None:
    officer = make_actor("officer", areas.stations[0])
    r = _create(client, officer.headers, station=0, description="call 13912345678 at night")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["org_id"] == areas.stations[0].id
    assert body["state"] == "reported"
    assert body["party_a_phone"] == PARTY["party_a_phone"]  # own station: in full
    assert body["personal_visible"] is True
    assert [e["kind"] for e in body["timeline"]] == ["created"]
    assert body["transitions"] == ["mediate", "agree", "refer", "close_unresolved"]
    # No point: the chosen station, which must be in the caller's scope.
    no_point = {"category": "pets", "org_id": areas.stations[0].id}
    assert client.post("/api/disputes", json=no_point, headers=officer.headers).status_code == 201
    outside = {"category": "pets", "org_id": areas.stations[2].id}
    assert client.post("/api/disputes", json=outside, headers=officer.headers).status_code == 422
    bad = {"category": "gossip"}
    assert client.post("/api/disputes", json=bad, headers=officer.headers).status_code == 422


def test_scope_hides_other_stations_disputes_with_404(
    client: TestClient, make_actor: Any, areas: City, record: RecordFn
) -> None:
    mine = record(0)
    theirs = record(2)
    officer = make_actor("officer", areas.stations[0])
    listed = client.get("/api/disputes", headers=officer.headers).json()
    assert [d["id"] for d in listed["items"]] == [mine.id]
    assert client.get(f"/api/disputes/{theirs.id}", headers=officer.headers).status_code == 404
    url = f"/api/disputes/{theirs.id}/transitions/mediate"
    assert client.post(url, headers=officer.headers).status_code == 404
    follow = {"kind": "call"}
    assert (
        client.post(
            f"/api/disputes/{theirs.id}/follow-ups", json=follow, headers=officer.headers
        ).status_code
        == 404
    )
    citizen = make_actor("citizen", areas.stations[0])
    assert client.get("/api/disputes", headers=citizen.headers).status_code == 403
    analyst = make_actor("analyst", areas.stations[0])
    assert _create(client, analyst.headers).status_code == 403  # read only


def test_personal_fields_are_masked_outside_the_station(
    client: TestClient, make_actor: Any, areas: City, record: RecordFn
) -> None:
    dispute = record(0, description="reach me on 13912345678")
    supervisor = make_actor("supervisor", areas.districts[0])
    body = client.get(f"/api/disputes/{dispute.id}", headers=supervisor.headers).json()
    assert body["personal_visible"] is False
    for key in ("party_a_name", "party_a_phone", "party_b_name", "party_b_phone", "address"):
        assert body[key] == "***", key
    assert "13912345678" not in str(body)  # free text is scrubbed too
    assert body["building"] == "B12"
    listed = client.get("/api/disputes", headers=supervisor.headers).text
    assert "王小明" not in listed
    assert "13887654321" not in listed
    admin = make_actor("admin", areas.city)
    assert (
        client.get(f"/api/disputes/{dispute.id}", headers=admin.headers).json()["party_a_name"]
        == "***"
    )
    officer = make_actor("officer", areas.stations[0])
    own = client.get(f"/api/disputes/{dispute.id}", headers=officer.headers).json()
    assert own["party_a_name"] == "王小明"


def test_workflow_moves_and_refuses_illegal_transitions(
    client: TestClient, make_actor: Any, areas: City, record: RecordFn
) -> None:
    dispute = record(0)
    h = make_actor("officer", areas.stations[0]).headers
    base = f"/api/disputes/{dispute.id}/transitions"
    assert client.post(f"{base}/reopen", json={"notes": "x"}, headers=h).status_code == 409
    r = client.post(f"{base}/mediate", headers=h)
    assert r.status_code == 200
    assert r.json()["state"] == "mediating"
    assert client.post(f"{base}/mediate", headers=h).status_code == 409
    assert client.post(f"{base}/agree", headers=h).status_code == 422  # notes required
    r = client.post(f"{base}/agree", json={"notes": "quiet hours after 22:00"}, headers=h)
    assert r.status_code == 200
    assert r.json()["state"] == "agreement_reached"
    assert r.json()["resolved_at"] is not None
    conflict = client.post(f"{base}/refer", json={"notes": "court"}, headers=h)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    r = client.post(f"{base}/reopen", json={"notes": "noise again"}, headers=h)
    assert r.json()["state"] == "mediating"
    assert r.json()["resolved_at"] is None
    r = client.post(f"{base}/refer", json={"notes": "housing department"}, headers=h)
    assert r.json()["state"] == "referred"
    states = [e["to_state"] for e in r.json()["timeline"]]
    assert states == ["reported", "mediating", "agreement_reached", "mediating", "referred"]
    assert client.post(f"{base}/bogus", headers=h).status_code == 422


def test_follow_ups_set_the_next_due_time_and_are_audited(
    client: TestClient, make_actor: Any, areas: City, record: RecordFn, runtime: Runtime
) -> None:
    dispute = record(0)
    h = make_actor("officer", areas.stations[0]).headers
    url = f"/api/disputes/{dispute.id}/follow-ups"
    body = {
        "kind": "visit",
        "happened_at": "2026-03-01T10:00:00+00:00",
        "notes": "both parties met",
        "next_due_at": "2026-03-08T10:00:00+00:00",
    }
    r = client.post(url, json=body, headers=h)
    assert r.status_code == 201, r.text
    detail = client.get(f"/api/disputes/{dispute.id}", headers=h).json()
    assert detail["next_follow_up_at"].startswith("2026-03-08T10:00:00")
    assert [f["kind"] for f in detail["follow_ups"]] == ["visit"]
    assert detail["timeline"][-1]["kind"] == "follow_up"
    backwards = {**body, "next_due_at": "2026-02-01T10:00:00+00:00"}
    assert client.post(url, json=backwards, headers=h).status_code == 422
    assert client.post(url, json={"kind": "letter"}, headers=h).status_code == 422
    patch = client.patch(
        f"/api/disputes/{dispute.id}", json={"assigned_officer_id": "u1"}, headers=h
    )
    assert patch.status_code == 200
    assert patch.json()["assigned_officer_id"] == "u1"
    with runtime.sessions() as s:
        actions = set(
            s.scalars(select(AuditEntry.action).where(AuditEntry.target_id == dispute.id))
        )
    assert {"disputes.report", "disputes.follow_up", "disputes.update"} <= actions
