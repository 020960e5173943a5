"""Sensor.last_seen_at: kept in memory per batch, written in one bulk UPDATE per flush."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from safecity.platform.runtime import Runtime
from safecity.sensing.lastseen import LastSeenTracker
from safecity.sensing.models import Sensor
from safecity.sensing.pipeline import Pipeline
from tests.conftest import City
from tests.sensing.test_pipeline import intrusion, raw, registered  # noqa: F401  (fixture)

pytestmark = pytest.mark.db

SMOKE = {"zone_id": "z", "obscuration": 0.1, "unit": "%/m"}


def test_batches_mark_in_memory_and_a_flush_is_one_update(
    runtime: Runtime,
    registered: City,  # noqa: F811
) -> None:
    mono = [0.0]
    tracker = LastSeenTracker(runtime.sessions, flush_every_s=10, monotonic=lambda: mono[0])
    pipeline = Pipeline(sessions=runtime.sessions, last_seen=tracker)
    updates: list[tuple[str, int]] = []

    def count(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE SENSORS"):
            updates.append((statement, len(params) if many else 1))

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        t0 = datetime.now(UTC) - timedelta(minutes=1)
        for i in range(5):  # five batches, two sensors
            pipeline.process_raw(
                [
                    intrusion(i, t0 + timedelta(seconds=i)),
                    raw("smk-1", "smoke.detected", SMOKE),
                ]
            )
        assert updates == []  # nothing written per event or per batch
        assert pipeline.stats()["last_seen"]["pending"] == 2
        mono[0] = 11.0
        pipeline.process_raw([intrusion(9, t0 + timedelta(seconds=9))])
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert len(updates) == 1  # one executemany statement for both sensors
    assert updates[0][1] == 2
    stats = pipeline.stats()["last_seen"]
    assert (stats["flushes"], stats["rows_written"], stats["pending"]) == (1, 2, 0)
    with runtime.sessions() as s:
        for sid in ("ir-1", "smk-1"):
            sensor = s.get(Sensor, sid)
            assert sensor is not None
            assert sensor.last_seen_at is not None
            assert datetime.now(UTC) - sensor.last_seen_at < timedelta(seconds=30)


def test_a_failed_flush_keeps_the_marks_for_the_next(
    runtime: Runtime,
    registered: City,  # noqa: F811
) -> None:
    tracker = LastSeenTracker(runtime.sessions, flush_every_s=0)
    tracker.mark(["ir-1"], at=1_000.0)
    real = tracker.sessions

    class Away:
        def begin(self) -> Any:
            raise RuntimeError("database away")

    tracker.sessions = Away()  # type: ignore[assignment]
    assert tracker.flush() == 0
    assert tracker.stats()["failures"] == 1
    assert tracker.pending == {"ir-1": 1_000.0}
    tracker.mark(["ir-1"], at=2_000.0)  # a newer mark wins
    tracker.sessions = real
    assert tracker.flush() == 1
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "ir-1")
        assert sensor is not None
        assert sensor.last_seen_at == datetime.fromtimestamp(2_000.0, UTC)
