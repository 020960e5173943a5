"""raise_alert: dedup, cooldown, routing, validation; events, audit and timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from safecity.alerts import events, service
from safecity.alerts.models import Alert
from safecity.platform import timeline
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.alerts.conftest import RaiseFn, point_in_station
from tests.conftest import City

pytestmark = pytest.mark.db


def test_a_burst_of_50_yields_one_alert_with_count_50(runtime: Runtime, areas: City) -> None:
    start = utcnow()
    lat, lng = point_in_station(1)
    with runtime.sessions.begin() as s:
        ids = {
            service.raise_alert(
                s,
                source="sensing.rules",
                category="intrusion",
                severity="high",
                title_key="alerts.title.test",
                lat=lat,
                lng=lng,
                dedup_key="rule:intrusion:door:D7",
                occurred_at=start + timedelta(seconds=i),
                detail={"sensor_id": "D7"},
            ).id
            for i in range(50)
        }
    assert len(ids) == 1
    with runtime.sessions() as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.count == 50
        assert alert.first_seen_at == start
        assert alert.last_seen_at == start + timedelta(seconds=49)
        assert alert.state == "new"
        types = list(s.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq)))
        assert types.count(events.RAISED) == 1
        assert types.count(events.UPDATED) == 49
        entries = timeline.list_for(s, record_type="alert", record_id=alert.id)
        assert [e.kind for e in entries] == ["created"]
        raised = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "alerts.raise")
        )
        assert raised == 1


def test_out_of_order_signal_does_not_move_last_seen_back(raise_one: RaiseFn) -> None:
    now = utcnow()
    raise_one(at=now)
    again = raise_one(at=now - timedelta(minutes=1))
    assert again.count == 2
    assert again.last_seen_at == now


def test_cooldown_expiry_opens_a_new_alert(raise_one: RaiseFn, runtime: Runtime) -> None:
    now = utcnow()
    first = raise_one(at=now, cooldown=timedelta(minutes=10))
    same = raise_one(at=now + timedelta(minutes=9), cooldown=timedelta(minutes=10))
    assert same.id == first.id
    assert same.count == 2
    later = raise_one(at=now + timedelta(minutes=30), cooldown=timedelta(minutes=10))
    assert later.id != first.id
    assert later.count == 1
    again = raise_one(at=now + timedelta(minutes=31), cooldown=timedelta(minutes=10))
    assert again.id == later.id
    assert again.count == 2
    with runtime.sessions() as s:
        old = s.get(Alert, first.id)
        assert old is not None
        assert old.count == 2
        assert old.dedup_slot == old.id


def test_other_key_or_category_is_another_alert(raise_one: RaiseFn) -> None:
    a = raise_one(key="k1")
    b = raise_one(key="k2")
    c = raise_one(key="k1", category="smoke")
    assert len({a.id, b.id, c.id}) == 3


def test_closed_alert_stops_collecting(raise_one: RaiseFn, runtime: Runtime) -> None:
    from safecity.security import audit

    first = raise_one()
    with runtime.sessions.begin() as s:
        service.transition(
            session=s, principal=audit.SYSTEM, alert_id=first.id, name="false_alarm", notes="fault"
        )
    second = raise_one()
    assert second.id != first.id
    assert second.count == 1


def test_routing_by_point_goes_to_the_station_containing_it(
    raise_one: RaiseFn, areas: City
) -> None:
    for i, station in enumerate(areas.stations):
        assert raise_one(i, key=f"k{i}").org_id == station.id


def test_outside_every_station_falls_back_to_given_org_or_city(
    runtime: Runtime, areas: City
) -> None:
    with runtime.sessions.begin() as s:
        kw = {
            "source": "tests",
            "category": "smoke",
            "severity": "low",
            "title_key": "alerts.title.test",
            "lat": 30.0,
            "lng": 120.0,
            "occurred_at": utcnow(),
        }
        given = service.raise_alert(s, dedup_key="a", org_id=areas.districts[1].id, **kw)  # type: ignore[arg-type]
        city = service.raise_alert(s, dedup_key="b", **kw)  # type: ignore[arg-type]
        assert given.org_id == areas.districts[1].id
        assert city.org_id == areas.city.id
        with pytest.raises(InvalidInput):
            service.raise_alert(s, dedup_key="c", org_id="nope", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"severity": "urgent"},
        {"category": "Has Spaces"},
        {"dedup_key": ""},
        {"lat": 91.0},
        {"detail": {"name": {"nested": "no"}}},
        {"detail": {"Bad Key": 1}},
    ],
)
def test_bad_input_is_refused(runtime: Runtime, areas: City, change: dict[str, object]) -> None:
    kw: dict[str, object] = {
        "source": "tests",
        "category": "smoke",
        "severity": "low",
        "title_key": "alerts.title.test",
        "lat": 31.205,
        "lng": 121.405,
        "dedup_key": "k",
        "occurred_at": utcnow(),
    }
    kw.update(change)
    with runtime.sessions.begin() as s, pytest.raises(InvalidInput):
        service.raise_alert(s, **kw)  # type: ignore[arg-type]


def test_naive_time_is_refused(runtime: Runtime, areas: City) -> None:
    with runtime.sessions.begin() as s, pytest.raises(InvalidInput):
        service.raise_alert(
            s,
            source="tests",
            category="smoke",
            severity="low",
            title_key="alerts.title.test",
            lat=31.205,
            lng=121.405,
            dedup_key="k",
            occurred_at=utcnow().replace(tzinfo=None),
        )
