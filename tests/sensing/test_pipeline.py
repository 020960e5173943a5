"""The sensing pipeline: raw messages → validation + registry → rules → one alert per burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.orgs import service as orgs
from safecity.platform.errors import ServiceUnavailable
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.sensing import service as sensors
from safecity.sensing.connectors.deadletter import MemoryDeadLetterSink
from safecity.sensing.pipeline import Pipeline, SensorCache
from tests.conftest import City

pytestmark = pytest.mark.db


def square(lng: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture
def registered(runtime: Runtime, city: City) -> City:
    """Station 0 covers [121.40, 121.41] x [31.20, 31.21]; sensors ir-1, smk-1 inside it."""
    with runtime.sessions.begin() as s:
        orgs.update(session=s, org_id=city.stations[0].id, area=square(121.40, 31.20))
        for sensor_id, kind in (("ir-1", "intrusion"), ("smk-1", "smoke")):
            sensors.register(
                session=s, actor=None, sensor_id=sensor_id, type=kind, lng=121.405, lat=31.205
            )
    return city


def raw(
    sensor_id: str,
    type_name: str,
    payload: dict[str, Any],
    *,
    seq: int | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "sensor_id": sensor_id,
        "type": type_name,
        "time": (at or datetime.now(UTC)).isoformat(),
        "payload": payload,
    }
    if seq is not None:
        msg["seq"] = seq
    return msg


def intrusion(seq: int, at: datetime) -> dict[str, Any]:
    return raw("ir-1", "intrusion.detected", {"zone_id": "z-7", "armed": True}, seq=seq, at=at)


def alerts_of(runtime: Runtime) -> list[Alert]:
    with runtime.sessions() as s:
        return list(s.scalars(select(Alert).order_by(Alert.created_at)))


def test_burst_from_one_sensor_gives_one_alert_with_a_count(
    runtime: Runtime, registered: City
) -> None:
    pipeline = Pipeline(sessions=runtime.sessions)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    result = pipeline.process_raw([intrusion(i, t0 + timedelta(seconds=10 * i)) for i in range(6)])
    assert result.accepted == 6
    assert result.rejected == 0
    assert result.matches == 4  # the 3rd..6th events each complete a window of >= 3
    found = alerts_of(runtime)
    assert len(found) == 1
    alert = found[0]
    assert alert.count == 4
    assert alert.category == "intrusion"
    assert alert.severity == "high"
    assert alert.org_id == registered.stations[0].id  # routed to the station owning the point
    assert alert.detail["rule_id"] == "repeated-intrusion"
    assert alert.detail["sensor_id"] == "ir-1"
    assert set(result.alerts) == {alert.id}
    assert pipeline.counters["alerts"] == 4
    assert pipeline.counters["accepted"] == 6


def test_two_events_do_not_reach_the_count(runtime: Runtime, registered: City) -> None:
    pipeline = Pipeline(sessions=runtime.sessions)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    result = pipeline.process_raw([intrusion(i, t0 + timedelta(seconds=i)) for i in range(2)])
    assert result.accepted == 2
    assert result.matches == 0
    assert alerts_of(runtime) == []


def test_resent_messages_are_duplicates_not_new_signals(runtime: Runtime, registered: City) -> None:
    pipeline = Pipeline(sessions=runtime.sessions)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    batch = [intrusion(i, t0 + timedelta(seconds=i)) for i in range(3)]
    pipeline.process_raw(batch)
    again = pipeline.process_raw(batch)
    assert again.matches == 0
    assert [a.count for a in alerts_of(runtime)] == [1]
    assert pipeline.engine.duplicates == 3


def test_invalid_messages_go_to_dead_letters_and_never_stop_the_batch(
    runtime: Runtime, registered: City
) -> None:
    sink = MemoryDeadLetterSink()
    pipeline = Pipeline(sessions=runtime.sessions, dead_letters=sink, connector="test")
    now = datetime.now(UTC)
    batch: list[object] = [
        "not an object",
        raw("smk-1", "smoke.detected", {"zone_id": "z-1", "obscuration": 12, "unit": "%"}),
        raw("smk-1", "no.such.type", {}),
        {**raw("smk-1", "smoke.detected", {"zone_id": "z-1"}), "time": "yesterday"},
        raw(
            "smk-1", "smoke.detected", {"zone_id": "z-1", "obscuration": 12, "unit": "%/m"}, at=now
        ),
    ]
    result = pipeline.process_raw(batch, source="unit")
    assert result.accepted == 1
    assert [(r.index, r.reason) for r in result.rejections] == [
        (0, "envelope"),
        (1, "wrong_unit"),
        (2, "unknown_type"),
        (3, "bad_time"),
    ]
    letters = sink.recent()
    assert [d.reason for d in letters] == ["envelope", "wrong_unit", "unknown_type", "bad_time"]
    assert all(d.connector == "test" and d.source == "unit" for d in letters)
    found = alerts_of(runtime)  # the valid dense-smoke event still raised its alert
    assert [(a.category, a.severity) for a in found] == [("fire", "critical")]
    assert pipeline.counters["rejected"] == 4


def test_unknown_sensor_is_rejected(runtime: Runtime, registered: City) -> None:
    sink = MemoryDeadLetterSink()
    pipeline = Pipeline(sessions=runtime.sessions, dead_letters=sink)
    result = pipeline.process_raw(
        [raw("ghost-9", "smoke.detected", {"zone_id": "z-1", "obscuration": 50, "unit": "%/m"})]
    )
    assert result.accepted == 0
    assert [r.reason for r in result.rejections] == ["unknown_sensor"]
    assert sink.recent()[0].sensor_id == "ghost-9"
    assert alerts_of(runtime) == []


def test_cache_finds_a_sensor_registered_later(runtime: Runtime, registered: City) -> None:
    clock = [0.0]
    cache = SensorCache(runtime.sessions, refresh_interval=5.0, clock=lambda: clock[0])
    pipeline = Pipeline(sessions=runtime.sessions, cache=cache)
    assert cache.known("ir-1")
    with runtime.sessions.begin() as s:
        sensors.register(
            session=s, actor=None, sensor_id="smk-2", type="smoke", lng=121.405, lat=31.205
        )
    assert not cache.known("smk-2")  # too soon after the last load: no reload
    clock[0] = 6.0
    msg = raw("smk-2", "smoke.detected", {"zone_id": "z-2", "obscuration": 30, "unit": "%/m"})
    assert pipeline.process_raw([msg]).accepted == 1
    assert cache.loads == 2, cache.loads


def test_raw_events_are_not_written_to_the_database(runtime: Runtime, registered: City) -> None:
    pipeline = Pipeline(sessions=runtime.sessions)
    with runtime.sessions() as s:
        before = s.scalar(select(func.count()).select_from(OutboxEvent))
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    pipeline.process_raw([intrusion(i, t0 + timedelta(seconds=i)) for i in range(2)])
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == before


def test_failed_transaction_keeps_matches_pending_until_the_next_batch(
    runtime: Runtime, registered: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(sessions=runtime.sessions)
    real = pipeline._raise
    calls = {"n": 0}

    def flaky(session: Any, m: Any) -> str | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ServiceUnavailable("database went away")
        return real(session, m)

    monkeypatch.setattr(pipeline, "_raise", flaky)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(ServiceUnavailable):
        pipeline.process_raw([intrusion(i, t0 + timedelta(seconds=i)) for i in range(3)])
    assert pipeline.pending == 1
    assert alerts_of(runtime) == []
    assert pipeline.flush().alerts
    assert [a.count for a in alerts_of(runtime)] == [1]
    assert pipeline.pending == 0
