"""Cases API: intake (report, call, alert), scope (404), the workflow (409 with nothing
changed, 422 without a reason), transfer, persons (masked outside the station, audited)
and the portal code stored only as an HMAC."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.alerts import service as alerts
from safecity.cases.models import Case, CaseComment, CasePerson
from safecity.platform.runtime import Runtime
from safecity.platform.timeline import TimelineEntry
from safecity.security import audit, keys
from safecity.security.audit import AuditEntry
from tests.cases.conftest import OpenFn, point_in_station, victim
from tests.conftest import City
from tests.publicguard import CANARIES

pytestmark = pytest.mark.db


def _counts(runtime: Runtime, case_id: str) -> tuple[int, int, str]:
    with runtime.sessions.begin() as s:
        entries = s.scalar(
            select(func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.record_id == case_id)
        )
        audits = s.scalar(select(func.count()).select_from(AuditEntry))
        case = s.get(Case, case_id)
        assert case is not None
        return int(entries or 0), int(audits or 0), case.state


def test_open_register_investigate_and_illegal_transition_changes_nothing(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0, register=False)
    detail = client.get(f"/api/cases/{case.id}", headers=case.headers).json()
    assert detail["state"] == "received"
    assert detail["transitions"] == ["register", "not_register"]  # officer: no approve
    assert len(case.number) == 12
    assert case.number.startswith("AJ")
    before = _counts(runtime, case.id)
    r = client.post(f"/api/cases/{case.id}/transitions/investigate", headers=case.headers)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _counts(runtime, case.id) == before  # nothing written
    no_reason = client.post(f"/api/cases/{case.id}/transitions/not_register", headers=case.headers)
    assert no_reason.status_code == 422
    assert _counts(runtime, case.id) == before
    url = f"/api/cases/{case.id}/transitions/register"
    assert client.post(url, headers=case.headers).status_code == 200
    url = f"/api/cases/{case.id}/transitions/investigate"
    assert client.post(url, headers=case.headers).json()["state"] == "investigating"
    # Solving needs a supervisor.
    url = f"/api/cases/{case.id}/transitions/solve"
    assert client.post(url, headers=case.headers).status_code == 403
    boss = make_actor("supervisor", city.stations[0])
    assert client.post(url, headers=boss.headers).json()["state"] == "solved"


def test_not_registered_keeps_the_reason(client: TestClient, open_case: OpenFn) -> None:
    case = open_case(0, register=False)
    url = f"/api/cases/{case.id}/transitions/not_register"
    r = client.post(url, json={"reason": "civil matter"}, headers=case.headers)
    assert r.status_code == 200
    assert r.json()["state"] == "not_registered"
    assert r.json()["not_registered_reason"] == "civil matter"


def test_scope_hides_other_stations_cases_with_404(
    client: TestClient, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    theirs = open_case(2)
    mine = open_case(0)
    officer = make_actor("officer", city.stations[0])
    listed = client.get("/api/cases", headers=officer.headers).json()
    assert [c["id"] for c in listed["items"]] == [mine.id]
    for method, path in (
        ("get", f"/api/cases/{theirs.id}"),
        ("get", f"/api/cases/{theirs.id}/persons"),
        ("post", f"/api/cases/{theirs.id}/transitions/investigate"),
        ("post", f"/api/cases/{theirs.id}/notes"),
    ):
        body = {"text": "x"} if path.endswith("notes") else None
        r = client.request(method, path, json=body, headers=officer.headers)
        assert r.status_code == 404, (path, r.text)


def test_persons_are_masked_outside_the_station_and_every_read_is_audited(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    own = client.get(f"/api/cases/{case.id}/persons", headers=case.headers).json()
    assert own[0]["name"] == CANARIES.name
    assert own[0]["phone"] == CANARIES.phone
    district = make_actor("supervisor", city.districts[0])
    masked = client.get(f"/api/cases/{case.id}/persons", headers=district.headers).json()
    assert masked[0]["name"] == "***"
    assert masked[0]["id_number"] == "***"
    with runtime.sessions.begin() as s:
        reads = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "cases.persons.read", AuditEntry.target_id == case.id
            )
        ).all()
        assert len(reads) == 2
        assert all(CANARIES.name not in str(r.detail) for r in reads)


def test_transfer_moves_the_case_audited_and_on_the_timeline(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    district = make_actor("supervisor", city.districts[0])
    body = {"org_id": city.stations[1].id, "reason": "belongs to the next station"}
    r = client.post(f"/api/cases/{case.id}/transfer", json=body, headers=district.headers)
    assert r.status_code == 200, r.text
    assert r.json()["org_id"] == city.stations[1].id
    assert "transfer" in [e["kind"] for e in r.json()["timeline"]]
    # The first station no longer sees it.
    assert client.get(f"/api/cases/{case.id}", headers=case.headers).status_code == 404
    outside = {"org_id": city.stations[2].id, "reason": "other district"}
    r = client.post(f"/api/cases/{case.id}/transfer", json=outside, headers=district.headers)
    assert r.status_code == 422
    with runtime.sessions.begin() as s:
        n = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "cases.transfer", AuditEntry.target_id == case.id)
        )
        assert n == 1


def test_open_from_an_alert_takes_its_station_and_keeps_its_id(
    client: TestClient, runtime: Runtime, make_actor: Any, areas: City
) -> None:
    lat, lng = point_in_station(1)
    with runtime.sessions.begin() as s:
        alert = alerts.raise_alert(
            s,
            source="sensor",
            category="intrusion",
            severity="high",
            title_key="alert.intrusion",
            lat=lat,
            lng=lng,
            dedup_key="door-7",
            occurred_at=datetime.now(UTC),
        )
        alert_id = alert.id
    officer = make_actor("officer", areas.stations[1])
    body = {"source": "alert", "case_type": "theft", "alert_id": alert_id}
    r = client.post("/api/cases", json=body, headers=officer.headers)
    assert r.status_code == 201, r.text
    assert r.json()["alert_id"] == alert_id
    assert r.json()["org_id"] == areas.stations[1].id
    assert r.json()["source"] == "alert"
    # An alert out of scope, or a report with an alert id, is refused.
    other = make_actor("officer", areas.stations[3])
    assert client.post("/api/cases", json=body, headers=other.headers).status_code == 422
    bad = {"source": "report", "case_type": "theft", "alert_id": alert_id}
    assert client.post("/api/cases", json=bad, headers=officer.headers).status_code == 422


def test_code_is_stored_only_as_hmac(runtime: Runtime, open_case: OpenFn) -> None:
    case = open_case(0)
    assert case.code is not None
    assert len(case.code) == 8
    with runtime.sessions.begin() as s:
        from safecity.platform.runtime import settings_for

        key = keys.case_code_key(settings_for(s).effective_key_dir)
        row = s.get(Case, case.id)
        assert row is not None
        expected = hmac.new(key, f"{case.number}:{case.code}".encode(), hashlib.sha256)
        assert row.code_mac == expected.hexdigest()
        # No column of the case, its persons, comments, timeline or audit holds the code.
        for model in (Case, CasePerson, CaseComment, TimelineEntry, AuditEntry):
            for item in s.scalars(select(model)):
                values = [str(getattr(item, c.key)) for c in model.__table__.columns]
                assert not any(case.code in v for v in values), model.__name__


def test_undisclosed_types_get_no_code(open_case: OpenFn) -> None:
    assert open_case(0, case_type="domestic_violence").code is None
    assert open_case(0, victim_opt_out=True).code is None
    assert open_case(0, persons=[victim(phone="", email="")]).code is None


def test_audit_principal_for_system_intake(runtime: Runtime, city: City) -> None:
    from safecity.cases import service

    with runtime.sessions.begin() as s:
        case = service.open_case(
            s, principal=audit.SYSTEM, source="call", case_type="fraud", org_id=city.stations[0].id
        )
        assert case.state == "received"
        assert case.source == "call"
