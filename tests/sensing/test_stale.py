"""Stale sensors: one incident per silent gateway or area, one order per lone sensor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.alerts.models import Alert
from safecity.dispatch.models import WorkOrder
from safecity.platform import geo, jobs
from safecity.platform.runtime import Runtime
from safecity.sensing import stale
from safecity.sensing.models import Sensor
from tests.conftest import City

pytestmark = pytest.mark.db

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(hours=2)


def add(
    s: Session,
    sid: str,
    *,
    lat: float,
    lng: float,
    gateway: str | None = None,
    seen: datetime | None = LONG_AGO,
    type_: str = "door",
) -> None:
    s.add(
        Sensor(
            id=sid,
            type=type_,
            lat=lat,
            lng=lng,
            h3_cell=geo.h3_cell(lat=lat, lng=lng),
            gateway_id=gateway,
            last_seen_at=seen,
            status="active",
        )
    )


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.sessions() as s:
        orders = s.scalar(select(func.count()).select_from(WorkOrder)) or 0
        outages = s.scalar(
            select(func.count()).select_from(Alert).where(Alert.category == "sensor_outage")
        )
        maintenance = s.scalar(
            select(func.count()).select_from(Sensor).where(Sensor.status == "maintenance")
        )
    return int(orders), int(outages or 0), int(maintenance or 0)


def test_a_silent_gateway_is_one_incident_lone_sensors_one_order_each(
    runtime: Runtime, city: City
) -> None:
    with runtime.sessions.begin() as s:
        for i in range(100):  # one compound behind one gateway
            add(s, f"gw1-{i:03}", lat=31.2 + i * 1e-5, lng=121.4, gateway="gw-1")
        add(s, "far-1", lat=31.30, lng=121.50)  # scattered: other areas and gateways
        add(s, "far-2", lat=31.10, lng=121.30, gateway="gw-2")
        add(s, "far-3", lat=31.40, lng=121.60, gateway="gw-3")
        add(s, "gw2-ok", lat=31.10, lng=121.30, gateway="gw-2", seen=NOW)
        add(s, "fresh", lat=31.2, lng=121.4, gateway="gw-1", seen=NOW - timedelta(minutes=5))
        add(s, "never", lat=31.2, lng=121.4, seen=None)  # never commissioned: skipped
        add(s, "meter", lat=31.2, lng=121.4, type_="water_meter")  # meters: 3 h allowed
    with runtime.sessions.begin() as s:
        report = stale.detect(s, now=NOW)
    assert report.stale == 103
    assert report.incidents == [{"group": "gateway", "key": "gw-1", "stale": 100}]
    assert len(report.orders) == 4  # 1 for the gateway + 3 lone sensors
    assert counts(runtime) == (4, 1, 103)
    with runtime.sessions() as s:
        orders = s.scalars(select(WorkOrder).order_by(WorkOrder.source_ref)).all()
        assert {o.service_code for o in orders} == {"sensor_maintenance"}
        assert {o.source for o in orders} == {"sensing.stale"}
        assert [o.source_ref for o in orders] == [
            "gateway:gw-1",
            "sensor:far-1",
            "sensor:far-2",
            "sensor:far-3",
        ]
        alert = s.scalars(select(Alert).where(Alert.category == "sensor_outage")).one()
        assert alert.detail["stale"] == 100
        assert alert.detail["total"] == 101
        fresh = s.get(Sensor, "fresh")
        assert fresh is not None
        assert fresh.status == "active"

    with runtime.sessions.begin() as s:  # rerun: nothing new
        again = stale.detect(s, now=NOW + timedelta(minutes=5))
    assert (again.stale, again.orders, again.incidents) == (0, [], [])
    assert counts(runtime) == (4, 1, 103)


def test_half_a_gateway_or_a_crowded_area_is_one_incident(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        for i in range(8):  # 5 of 8 behind gw-5 silent: 62 %
            seen = LONG_AGO if i < 5 else NOW
            add(s, f"gw5-{i}", lat=31.25, lng=121.45 + i * 1e-5, gateway="gw-5", seen=seen)
        for i in range(25):  # 25 silent sensors without a gateway, one H3 area
            add(s, f"area-{i}", lat=31.05 + i * 1e-5, lng=121.2)
    with runtime.sessions.begin() as s:
        report = stale.detect(s, now=NOW)
    assert sorted(x["group"] for x in report.incidents) == ["area", "gateway"]
    assert counts(runtime) == (2, 2, 30)


def test_the_job_is_registered() -> None:
    jobs.load_job_modules()
    names = {job.name for job in jobs.registry.all()}
    assert {"sensing.stale_check", "sensing.dead_letters.prune"} <= names


def test_a_never_seen_sensor_counts_from_its_install_and_its_registration(
    runtime: Runtime, city: City
) -> None:
    with runtime.sessions.begin() as s:
        for sid, created in (("new-1", NOW), ("old-1", LONG_AGO)):
            add(s, sid, lat=31.30, lng=121.50, seen=None)
            sensor = s.get(Sensor, sid)
            assert sensor is not None
            sensor.installed_at = LONG_AGO  # an old device, imported just now or long ago
            sensor.created_at = created
        add(s, "uncommissioned", lat=31.10, lng=121.30, seen=None)  # no install date
    with runtime.sessions.begin() as s:
        found = {x.id for x in stale.find_stale(s, now=NOW)}
    assert found == {"old-1"}
