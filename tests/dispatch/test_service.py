"""Work orders: routing precedence, idempotency, workflow (409), scope (404), replies."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.dispatch import events, routing, service
from safecity.dispatch.models import WorkOrder
from safecity.platform.errors import InvalidInput
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from tests.dispatch.conftest import DispatchCity, point_in_station

pytestmark = pytest.mark.db


def open_order(runtime: Runtime, station: int, code: str = "litter", **kw: Any) -> WorkOrder:
    lat, lng = point_in_station(station)
    with runtime.sessions.begin() as s:
        order = service.open_work_order(
            s,
            service_code=code,
            description=kw.pop("description", "bags of rubbish on the pavement"),
            lat=lat,
            lng=lng,
            source=kw.pop("source", "console"),
            **kw,
        )
        s.expunge(order)
        return order


def test_default_route_is_the_department_declaring_the_code(
    runtime: Runtime, dcity: DispatchCity
) -> None:
    order = open_order(runtime, 0)
    assert order.department_id == dcity.sanitation.id
    assert order.area_org_id == dcity.stations[0].id
    assert order.state == "open"
    assert order.h3_cell
    assert order.service_request_id.startswith("WO-")
    with runtime.sessions() as s:
        types = s.scalars(select(OutboxEvent.type)).all()
        assert events.OPENED in types
        assert s.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == order.id)
        ).all() == ["dispatch.work_order.open"]


def test_routing_precedence_most_specific_area_wins(runtime: Runtime, dcity: DispatchCity) -> None:
    city = dcity.city
    with runtime.sessions.begin() as s:
        # city-wide rule beats the declaring department
        routing.set_rule(
            s, principal=audit.SYSTEM, service_code="litter", department_id=dcity.transport.id
        )
        # a district rule beats the city-wide rule
        routing.set_rule(
            s,
            principal=audit.SYSTEM,
            service_code="litter",
            department_id=dcity.office.id,
            area_org_id=city.districts[0].id,
        )
        # a station rule beats the district rule
        routing.set_rule(
            s,
            principal=audit.SYSTEM,
            service_code="litter",
            department_id=dcity.sanitation.id,
            area_org_id=city.stations[1].id,
        )
    assert open_order(runtime, 0).department_id == dcity.office.id  # district 0, station 0
    assert open_order(runtime, 1).department_id == dcity.sanitation.id  # station rule
    assert open_order(runtime, 2).department_id == dcity.transport.id  # district 1: city-wide
    with runtime.sessions() as s:
        rules = routing.list_rules(s)
        assert len(rules) == 3
        assert (
            routing.resolve(s, service_code="road_damage", area_org_id=city.stations[3].id)
            == dcity.transport.id
        )


def test_community_codes_go_to_the_community_office_else_the_station(
    runtime: Runtime, dcity: DispatchCity
) -> None:
    assert open_order(runtime, 0, "building_safety").department_id == dcity.office.id
    # station 1 has no community office: the station itself handles it
    assert open_order(runtime, 1, "building_safety").department_id == dcity.stations[1].id


def test_set_rule_validates_and_updates_in_place(runtime: Runtime, dcity: DispatchCity) -> None:
    with runtime.sessions.begin() as s:
        with pytest.raises(InvalidInput):
            routing.set_rule(  # a station is no department
                s,
                principal=audit.SYSTEM,
                service_code="litter",
                department_id=dcity.stations[0].id,
            )
        first = routing.set_rule(
            s, principal=audit.SYSTEM, service_code="noise", department_id=dcity.transport.id
        )
        second = routing.set_rule(
            s, principal=audit.SYSTEM, service_code="noise", department_id=dcity.sanitation.id
        )
        assert first.id == second.id
        assert second.department_id == dcity.sanitation.id
        assert "noise" in routing.offered_codes(s)


def test_dedup_key_makes_opening_idempotent(runtime: Runtime, dcity: DispatchCity) -> None:
    one = open_order(runtime, 0, "streetlight", dedup_key="stale:S-1")
    two = open_order(runtime, 0, "streetlight", dedup_key="stale:S-1")
    assert one.id == two.id
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"service_code": "Bad Code!"}, "service_code"),
        ({"source": "Not A Source"}, "source"),
        ({"lat": 91.0}, "lat"),
        ({"dedup_key": "has space"}, "dedup_key"),
        ({"requester": {"ssn": "x"}}, "requester"),
        ({"detail": {"Bad": 1}}, "detail"),
    ],
)
def test_bad_input_writes_nothing(
    runtime: Runtime, dcity: DispatchCity, kw: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "service_code": "litter",
        "description": "x",
        "lat": 31.205,
        "lng": 121.405,
        "source": "console",
    }
    args.update(kw)
    with runtime.sessions() as s:
        with pytest.raises(InvalidInput):
            service.open_work_order(s, **args)
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 0


def test_workflow_over_the_api(
    client: TestClient, runtime: Runtime, dcity: DispatchCity, make_actor: Any
) -> None:
    order = open_order(runtime, 0)
    staff = make_actor("department_staff", dcity.sanitation)
    base = f"/api/dispatch/work-orders/{order.id}"
    r = client.post(f"{base}/transitions/start", headers=staff.headers)
    assert r.status_code == 409, r.text  # open → in_progress is not a transition
    assert r.headers["content-type"] == "application/problem+json"
    r = client.post(f"{base}/transitions/accept", headers=staff.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "accepted"
    assert r.json()["transitions"] == ["start", "close", "reject"]
    r = client.post(f"{base}/transitions/close", headers=staff.headers)
    assert r.status_code == 422  # close needs notes
    r = client.post(f"{base}/transitions/close", json={"notes": "swept"}, headers=staff.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "closed"
    assert body["closed_at"]
    assert [x["body"] for x in body["replies"]] == ["swept"]
    assert body["replies"][0]["public"] is True
    assert [e["to_state"] for e in body["timeline"]] == ["open", "accepted", "closed", None]
    r = client.post(f"{base}/transitions/accept", headers=staff.headers)
    assert r.status_code == 409


def test_scope_department_and_area(
    client: TestClient, runtime: Runtime, dcity: DispatchCity, make_actor: Any
) -> None:
    litter = open_order(runtime, 0)  # sanitation, station 0
    road = open_order(runtime, 2, "road_damage")  # transport, station 2
    sanitation = make_actor("department_staff", dcity.sanitation)
    transport = make_actor("department_staff", dcity.transport)
    officer0 = make_actor("officer", dcity.stations[0])
    admin = make_actor("admin", dcity.city.city)

    def ids(actor: Any) -> set[str]:
        r = client.get("/api/dispatch/work-orders", headers=actor.headers)
        assert r.status_code == 200, r.text
        return {o["id"] for o in r.json()["items"]}

    assert ids(sanitation) == {litter.id}
    assert ids(transport) == {road.id}
    assert ids(officer0) == {litter.id}
    assert ids(admin) == {litter.id, road.id}
    # department A cannot see department B's order: 404, not 403
    for path in ("", "/transitions/accept"):
        method = client.get if not path else client.post
        r = method(f"/api/dispatch/work-orders/{road.id}{path}", headers=sanitation.headers)
        assert r.status_code == 404, (path, r.text)
    # the station officer reads the order of their area but does not act for the department
    assert (
        client.get(f"/api/dispatch/work-orders/{litter.id}", headers=officer0.headers).json()[
            "transitions"
        ]
        == []
    )
    r = client.post(
        f"/api/dispatch/work-orders/{litter.id}/transitions/accept", headers=officer0.headers
    )
    assert r.status_code == 404
    r = client.post(
        f"/api/dispatch/work-orders/{litter.id}/replies",
        json={"body": "seen"},
        headers=officer0.headers,
    )
    assert r.status_code == 403
    citizen = make_actor("citizen", dcity.stations[0])
    assert client.get("/api/dispatch/work-orders", headers=citizen.headers).status_code == 403


def test_replies_and_requester_fields(
    client: TestClient, runtime: Runtime, dcity: DispatchCity, make_actor: Any
) -> None:
    order = open_order(
        runtime, 0, requester={"email": "a@example.org", "first_name": "Li", "phone": "x"}
    )
    staff = make_actor("department_staff", dcity.sanitation)
    base = f"/api/dispatch/work-orders/{order.id}"
    r = client.post(f"{base}/replies", json={"body": "on our way"}, headers=staff.headers)
    assert r.status_code == 201, r.text
    assert r.json()["public"] is False
    r = client.post(f"{base}/replies", json={"body": "", "public": True}, headers=staff.headers)
    assert r.status_code == 422
    detail = client.get(base, headers=staff.headers).json()
    assert detail["requester_email"] == "a@example.org"  # staff in scope see the requester
    assert [x["body"] for x in detail["replies"]] == ["on our way"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["WorkOrderRead"]
    assert schema["properties"]["requester_phone"].get("x-personal") is True


def test_routing_api_needs_the_route_permission(
    client: TestClient, dcity: DispatchCity, make_actor: Any
) -> None:
    admin = make_actor("admin", dcity.city.city)
    staff = make_actor("department_staff", dcity.sanitation)
    rule = {"service_code": "noise", "department_id": dcity.transport.id}
    assert client.put("/api/dispatch/routing", json=rule, headers=staff.headers).status_code == 403
    r = client.put("/api/dispatch/routing", json=rule, headers=admin.headers)
    assert r.status_code == 200, r.text
    rule_id = r.json()["id"]
    listed = client.get("/api/dispatch/routing", headers=staff.headers).json()
    assert [x["id"] for x in listed] == [rule_id]
    r = client.get(
        f"/api/dispatch/routing/resolve/noise/{dcity.stations[0].id}", headers=staff.headers
    )
    assert r.json()["department_id"] == dcity.transport.id
    assert (
        client.delete(f"/api/dispatch/routing/{rule_id}", headers=admin.headers).status_code == 204
    )
    assert (
        client.delete(f"/api/dispatch/routing/{rule_id}", headers=admin.headers).status_code == 404
    )
