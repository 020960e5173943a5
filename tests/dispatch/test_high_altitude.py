"""Objects thrown from height: the alert brings a building-level public notice and a
neighbourhood work order, once, both linked to the alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.alerts import events as alert_events
from safecity.alerts import service as alerts
from safecity.alerts.models import Alert
from safecity.dispatch import events
from safecity.dispatch.models import PublicNotice, WorkOrder
from safecity.dispatch.notices import HIGH_ALTITUDE_CATEGORY
from safecity.platform.consumers import Consumer, registered_consumers
from safecity.platform.db import utcnow
from safecity.platform.events import Envelope
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.platform.timeline import TimelineEntry
from safecity.sensing import service as sensing
from safecity.sensing.rules import RuleSet
from tests.dispatch.conftest import DispatchCity, point_in_station
from tests.publicguard import assert_no_canary

pytestmark = pytest.mark.db

FLAT = "1203室"


def test_the_shipped_rule_raises_this_category() -> None:
    rules = [r for r in RuleSet.shipped().rules if getattr(r, "event", None) == "throw.detected"]
    assert rules
    assert {r.alert.category for r in rules} == {HIGH_ALTITUDE_CATEGORY}


def consumer(runtime: Runtime) -> Consumer:
    [spec] = [s for s in registered_consumers() if s.name == events.CONSUMER]
    assert spec.types == (alert_events.RAISED,)
    return Consumer(name=spec.name, sessions=runtime.sessions, apply=spec.apply, types=spec.types)


def deliver(runtime: Runtime, c: Consumer) -> tuple[int, int]:
    """Hand every ``alerts.alert.raised`` event in the outbox to the consumer."""
    with runtime.sessions() as s:
        rows = s.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.type == alert_events.RAISED)
            .order_by(OutboxEvent.seq)
        ).all()
        envelopes = [row.envelope() for row in rows]
    result = c.process(envelopes)
    return result.applied, result.skipped


def raise_throw(
    runtime: Runtime,
    *,
    key: str = "B7",
    category: str = HIGH_ALTITUDE_CATEGORY,
    occurred_offset: timedelta = timedelta(0),
) -> Alert:
    lat, lng = point_in_station(0)
    with runtime.sessions.begin() as s:
        alert = alerts.raise_alert(
            s,
            source="sensing.rules",
            category=category,
            severity="high",
            title_key="alerts.throw_from_height",
            lat=lat,
            lng=lng,
            dedup_key=f"throw-from-height:{key}",
            occurred_at=utcnow() + occurred_offset,
            detail={"rule_id": "throw-from-height", "sensor_id": "CAM-1"},
        )
        s.expunge(alert)
        return alert


@pytest.fixture
def camera(runtime: Runtime, dcity: DispatchCity) -> None:
    lat, lng = point_in_station(0)
    with runtime.sessions.begin() as s:
        sensing.register(
            session=s,
            actor=None,
            sensor_id="CAM-1",
            type="camera_detector",
            lat=lat,
            lng=lng,
            compound="金桥花苑",
            building="7号楼",
            unit=FLAT,
        )


def test_alert_creates_notice_and_order_once(
    runtime: Runtime, dcity: DispatchCity, camera: None, client: TestClient, make_actor: Any
) -> None:
    alert = raise_throw(runtime)
    c = consumer(runtime)
    assert deliver(runtime, c) == (1, 0)
    assert deliver(runtime, c) == (0, 1)  # redelivered: skipped

    raise_throw(runtime)  # the same signal again: folded into the open alert
    assert deliver(runtime, c) == (0, 1)

    with runtime.sessions() as s:
        [notice] = s.scalars(select(PublicNotice)).all()
        [order] = s.scalars(select(WorkOrder)).all()
        assert notice.alert_id == alert.id
        assert notice.work_order_id == order.id
        assert notice.building_label == "金桥花苑 7号楼"
        assert FLAT not in notice.body_zh + notice.body_en + notice.building_label
        assert notice.lat == round(alert.lat, 4)
        assert order.service_code == "building_safety"
        assert order.source == "alert"
        assert order.source_ref == alert.id
        assert order.dedup_key == f"alert:{alert.id}"
        assert order.department_id == dcity.office.id  # the neighbourhood
        assert order.area_org_id == dcity.stations[0].id
        notes = s.scalars(
            select(TimelineEntry.note).where(
                TimelineEntry.record_type == "alert",
                TimelineEntry.record_id == alert.id,
                TimelineEntry.kind == "dispatch",
            )
        ).all()
        assert len(notes) == 1
        assert order.service_request_id in (notes[0] or "")
        published = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == events.NOTICE_PUBLISHED)
        )
        assert published == 1

    # a second consumer instance (another process) applying the same event: still one each
    with runtime.sessions.begin() as s:
        from safecity.dispatch.notices import handle_alert

        handle_alert(s, alert_id=alert.id)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PublicNotice)) == 1
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 1

    # public surfaces: the notice, without the flat
    r = client.get("/api/dispatch/notices")
    assert r.status_code == 200
    assert [n["building_label"] for n in r.json()] == ["金桥花苑 7号楼"]
    assert FLAT not in r.text
    assert "alert_id" not in r.json()[0]
    page = client.get("/notices", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    assert "金桥花苑 7号楼" in page.text
    assert FLAT not in page.text
    assert_no_canary(page.text)

    # the community office's officers see and work the order
    officer = make_actor("officer", dcity.office)
    items = client.get("/api/dispatch/work-orders", headers=officer.headers).json()["items"]
    assert [i["source_ref"] for i in items] == [alert.id]


def test_a_new_alert_for_the_building_gets_its_own_notice(
    runtime: Runtime, dcity: DispatchCity, camera: None
) -> None:
    raise_throw(runtime, key="B7")
    raise_throw(runtime, key="B8")
    deliver(runtime, consumer(runtime))
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PublicNotice)) == 2
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 2


def test_other_categories_are_ignored(runtime: Runtime, dcity: DispatchCity) -> None:
    raise_throw(runtime, category="intrusion")
    assert deliver(runtime, consumer(runtime)) == (1, 0)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PublicNotice)) == 0
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 0


def test_label_without_a_registered_sensor_uses_the_cell(
    runtime: Runtime, dcity: DispatchCity
) -> None:
    alert = raise_throw(runtime)
    deliver(runtime, consumer(runtime))
    with runtime.sessions() as s:
        [notice] = s.scalars(select(PublicNotice)).all()
        assert notice.building_label == f"H3 {alert.h3_cell}"


def test_an_event_for_a_missing_alert_is_skipped_not_retried(
    runtime: Runtime, dcity: DispatchCity
) -> None:
    envelope = Envelope(
        type=alert_events.RAISED,
        source="alerts",
        payload={"alert_id": "gone", "category": HIGH_ALTITUDE_CATEGORY},
    )
    assert consumer(runtime).process([envelope]).applied == 1
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PublicNotice)) == 0
