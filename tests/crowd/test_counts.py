"""Count ingest: validation (all or nothing), latest wins, DST, gaps and outages, the bus
consumer, the CSV import and a property test of the report parser."""

from __future__ import annotations

import asyncio
import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from safecity import cli
from safecity.crowd import consumers, counts, counts_cli
from safecity.crowd.models import CrowdCount, CrowdHotspot, CrowdSensorHour
from safecity.orgs.models import Org
from safecity.platform import jobs
from safecity.platform.bus_memory import MemoryBus
from safecity.platform.consumers import Consumer, ProcessedEvent, registered_consumers
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.outbox import OutboxEvent
from safecity.platform.relay import Relay
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.sensing.ops_models import DeadLetterRow
from tests.conftest import City

pytestmark = pytest.mark.db

NOW = datetime(2026, 10, 27, 12, 30, tzinfo=UTC)
H0 = datetime(2026, 10, 20, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[121.49, 31.24], [121.50, 31.24], [121.50, 31.25], [121.49, 31.24]]],
}


def make_hotspot(
    session: Session,
    org: Org,
    code: str,
    *,
    capacity: int = 1000,
    expected_sensors: int = 0,
    timezone: str = "UTC",
    active: bool = True,
) -> CrowdHotspot:
    spot = CrowdHotspot(
        code=code,
        name_zh=code,
        name_en=code,
        org_id=org.id,
        geometry=SQUARE,
        area_m2=10_000.0,
        capacity=capacity,
        warn_density=2.0,
        critical_density=4.0,
        timezone=timezone,
        region="CN",
        expected_sensors=expected_sensors,
        active=active,
    )
    session.add(spot)
    session.flush()
    return spot


def report(
    hotspot: str = "bund",
    sensor: str = "gate-1",
    hour: datetime | str | None = H0,
    count: Any = 100,
    kind: str = "counter",
    **more: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {"hotspot": hotspot, "sensor": sensor, "count": count, "kind": kind}
    if hour is not None:
        data["hour"] = hour.isoformat() if isinstance(hour, datetime) else hour
    data.update(more)
    return data


def record(session: Session, *reports: dict[str, Any], now: datetime = NOW) -> counts.IngestReport:
    return counts.record_counts(session, principal=audit.SYSTEM, reports=list(reports), now=now)


def hours_of(session: Session, spot: CrowdHotspot) -> dict[datetime, tuple[float | None, str, int]]:
    rows = session.scalars(select(CrowdCount).where(CrowdCount.hotspot_id == spot.id))
    return {r.hour: (r.count, r.status, r.sensors) for r in rows}


@pytest.fixture
def bund(session: Session, city: City) -> CrowdHotspot:
    spot = make_hotspot(session, city.stations[0], "bund", expected_sensors=2)
    session.commit()
    return spot


# --------------------------------------------------------------------------- storing


def test_sensors_are_summed_per_hour_and_partial_hours_marked(
    session: Session, bund: CrowdHotspot
) -> None:
    result = record(
        session,
        report(sensor="gate-1", count=120),
        report(sensor="gate-2", count=80, kind="turnstile"),
        report(sensor="gate-1", hour=H0 + HOUR, count=90),
    )
    assert result.model_dump() == {
        "accepted": 3,
        "stored": 3,
        "duplicates": 0,
        "replaced": 0,
        "hours": 2,
        "hotspots": ["bund"],
    }
    assert hours_of(session, bund) == {
        H0: (200.0, "ok", 2),
        H0 + HOUR: (90.0, "partial", 1),  # one of the two expected sensors reported
    }


def test_any_sensor_makes_the_hour_ok_when_none_is_expected(session: Session, city: City) -> None:
    spot = make_hotspot(session, city.stations[0], "yuyuan")
    record(session, report(hotspot="yuyuan", count=5))
    assert hours_of(session, spot) == {H0: (5.0, "ok", 1)}


BAD = [
    (report(count=-1), "negative count -1"),
    (report(count=math.nan), "not a finite number"),
    (report(count=math.inf), "not a finite number"),
    (report(count=10_001), "above the limit 10000 for hotspot 'bund'"),
    (report(count=10**30), "absurdly large"),
    (report(count="12"), "count must be a number"),
    (report(count=True), "count must be a number"),
    (report(hour="2026-10-20T00:00:00"), "has no UTC offset"),
    (report(hour="yesterday"), "not an ISO 8601 timestamp"),
    (report(hour="2026-10-20T00:30:00+00:00"), "not the start of a UTC hour"),
    (report(hour="2026-10-20T10:00:00+05:30"), "not the start of a UTC hour"),
    (report(hour=datetime(2026, 10, 27, 13, tzinfo=UTC)), "in the future"),
    (report(hour=None, at=(NOW + timedelta(minutes=6)).isoformat()), "in the future"),
    (report(hour=None), "exactly one of hour"),
    (report(at=H0.isoformat()), "exactly one of hour"),
    (report(hour="1999-12-31T23:00:00Z"), "before 2000"),
    (report(hotspot="atlantis"), "unknown hotspot 'atlantis'"),
    (report(hotspot="closed"), "hotspot 'closed' is inactive"),
    (report(kind="camera"), "kind must be one of"),
    (report(sensor="a b"), "sensor must be an id"),
    (report(mac="aa:bb:cc:dd:ee:ff"), "unknown field 'mac'"),
    ("not an object", "must be an object"),
]


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_a_bad_report_refuses_the_whole_batch_with_its_index(
    session: Session, city: City, bund: CrowdHotspot, bad: Any, message: str
) -> None:
    make_hotspot(session, city.stations[0], "closed", active=False)
    with pytest.raises(InvalidInput, match=message) as info:
        record(session, report(sensor="gate-9"), report(sensor="gate-8"), bad)
    assert info.value.extra["index"] == 2
    assert info.value.detail.startswith("report 2: ")
    session.flush()
    assert session.scalar(select(func.count()).select_from(CrowdSensorHour)) == 0
    assert session.scalar(select(func.count()).select_from(CrowdCount)) == 0


def test_empty_and_oversized_batches_are_refused(session: Session, bund: CrowdHotspot) -> None:
    with pytest.raises(InvalidInput, match="at least one report"):
        record(session)
    with pytest.raises(PayloadTooLarge):
        record(session, *[report()] * (counts.MAX_BATCH + 1))


def test_an_out_of_scope_hotspot_is_unknown_to_the_caller(
    session: Session, city: City, bund: CrowdHotspot
) -> None:
    other_district = Principal(
        id="u",
        kind="device",
        username="gw",
        roles=frozenset({"device"}),
        org_id=city.districts[1].id,
        visible_org_ids=frozenset({city.districts[1].id}),
    )
    with pytest.raises(InvalidInput, match="unknown hotspot 'bund'"):
        counts.record_counts(session, principal=other_district, reports=[report()], now=NOW)


def test_latest_wins_within_a_batch_and_across_batches(
    session: Session, bund: CrowdHotspot
) -> None:
    first = record(
        session,
        report(sensor="gate-1", count=10),
        report(sensor="gate-2", count=20),
        report(sensor="gate-1", count=11),  # the same sensor and hour again: the last wins
    )
    assert (first.accepted, first.stored, first.duplicates, first.replaced) == (3, 2, 1, 0)
    assert hours_of(session, bund)[H0] == (31.0, "ok", 2)
    # A later batch (a resend or a correction) replaces the count, never adds to it.
    again = record(session, report(sensor="gate-1", hour="2026-10-20T08:00:00+08:00", count=15))
    assert (again.stored, again.duplicates, again.replaced) == (1, 0, 1)
    assert hours_of(session, bund)[H0] == (35.0, "ok", 2)
    row = session.scalar(select(CrowdSensorHour).where(CrowdSensorHour.sensor_id == "gate-1"))
    assert row is not None
    assert (row.count, row.reports) == (15.0, 3)


def test_a_sensor_moved_to_another_hotspot_leaves_a_gap_behind(
    session: Session, city: City, bund: CrowdHotspot
) -> None:
    other = make_hotspot(session, city.stations[0], "peace-hotel")
    record(session, report(sensor="gate-1", count=10))
    record(session, report(hotspot="peace-hotel", sensor="gate-1", count=10))
    assert hours_of(session, bund)[H0] == (None, "gap", 0)
    assert hours_of(session, other)[H0] == (10.0, "ok", 1)


# --------------------------------------------------------------------------- DST


def test_dst_fall_back_in_london_keeps_both_one_oclocks(session: Session, city: City) -> None:
    spot = make_hotspot(session, city.stations[0], "trafalgar", timezone="Europe/London")
    # 2026-10-25: clocks go back at 02:00 BST to 01:00 GMT; local 01:00 happens twice.
    local = [
        "2026-10-25T00:00:00+01:00",
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T02:00:00+00:00",
    ]
    result = record(
        session,
        *[report(hotspot="trafalgar", hour=h, count=100 + i) for i, h in enumerate(local)],
        report(
            hotspot="trafalgar", sensor="gate-2", hour=None, at="2026-10-25T01:59:59+00:00", count=1
        ),
    )
    assert (result.stored, result.duplicates, result.hours) == (5, 0, 4)
    stored = hours_of(session, spot)
    start = datetime(2026, 10, 24, 23, tzinfo=UTC)
    assert sorted(stored) == [start + i * HOUR for i in range(4)]
    assert sum(v[0] or 0 for v in stored.values()) == 100 + 101 + 102 + 103 + 1  # nothing lost
    assert stored[start + 2 * HOUR] == (103.0, "ok", 2)  # 01:00 GMT, with the `at` report
    grid = counts.hourly_counts(session, hotspots=["trafalgar"], start=start, end=start + 4 * HOUR)
    assert grid.tz == "Europe/London"
    assert grid.values[:, 0].tolist() == [100.0, 101.0, 103.0, 103.0]


def test_dst_spring_forward_in_melbourne_has_no_hole(session: Session, city: City) -> None:
    spot = make_hotspot(session, city.stations[0], "flinders", timezone="Australia/Melbourne")
    # 2026-10-04: clocks go forward at 02:00 AEST to 03:00 AEDT; local 02:00 never happens.
    local = ["2026-10-04T01:00:00+10:00", "2026-10-04T03:00:00+11:00"]
    record(session, *[report(hotspot="flinders", hour=h, count=50) for h in local])
    first = datetime(2026, 10, 3, 15, tzinfo=UTC)
    assert sorted(hours_of(session, spot)) == [first, first + HOUR]
    result = counts.mark_gaps(session, now=first + 3 * HOUR)
    assert result.gaps == 1  # 17:00Z, the hour after the reports, not the missing local 02:00
    assert hours_of(session, spot)[first + 2 * HOUR] == (None, "gap", 0)


# --------------------------------------------------------------------------- gaps, outages


def test_gaps_are_marked_once_and_filled_by_a_late_report(
    session: Session, bund: CrowdHotspot
) -> None:
    record(
        session,
        *[report(sensor=s, hour=H0 + i * HOUR, count=10) for i in (0, 1, 4) for s in ("a", "b")],
    )
    now = H0 + 6 * HOUR + timedelta(minutes=30)  # the hour starting at H0+5h is complete
    first = counts.mark_gaps(session, now=now)
    assert (first.gaps, first.outages) == (3, 0)
    stored = hours_of(session, bund)
    assert [h for h, v in sorted(stored.items()) if v[1] == "gap"] == [
        H0 + 2 * HOUR,
        H0 + 3 * HOUR,
        H0 + 5 * HOUR,
    ]
    assert all(stored[H0 + i * HOUR][0] is None for i in (2, 3, 5))
    assert counts.mark_gaps(session, now=now).changed == 0  # idempotent
    assert session.scalar(select(func.count()).select_from(CrowdCount)) == 6

    grid = counts.hourly_counts(session, hotspots=["bund"], start=H0, end=H0 + 7 * HOUR)
    assert grid.start == H0
    assert grid.hours == 7
    values = grid.values[:, 0]
    assert values[[0, 1, 4]].tolist() == [20.0, 20.0, 20.0]
    assert np.isnan(values[[2, 3, 5, 6]]).all()  # gaps, and the unfinished hour: missing

    record(session, report(sensor="a", hour=H0 + 2 * HOUR, count=7), now=now)
    assert hours_of(session, bund)[H0 + 2 * HOUR] == (7.0, "partial", 1)


def test_a_day_of_zeros_is_an_outage_and_its_counts_are_kept(session: Session, city: City) -> None:
    spot = make_hotspot(session, city.stations[0], "museum")
    day1 = [report(hotspot="museum", hour=H0 + i * HOUR, count=30 + i) for i in range(24)]
    day2 = [report(hotspot="museum", hour=H0 + (24 + i) * HOUR, count=0) for i in range(24)]
    record(session, *day1, *day2)
    now = H0 + timedelta(days=2, minutes=20)
    result = counts.mark_gaps(session, now=now)
    assert (result.gaps, result.outages) == (0, 24)
    stored = hours_of(session, spot)
    assert {stored[H0 + (24 + i) * HOUR] for i in range(24)} == {(0.0, "outage", 1)}
    assert {stored[H0 + i * HOUR][1] for i in range(24)} == {"ok"}
    grid = counts.hourly_counts(session, hotspots=[spot], start=H0, end=H0 + 48 * HOUR)
    assert not np.isnan(grid.values[:24]).any()
    assert np.isnan(grid.values[24:]).all()  # forecasting skips the outage
    assert counts.mark_gaps(session, now=now).changed == 0

    # A late report shows the feed was alive that day: the outage is cleared.
    record(session, report(hotspot="museum", hour=H0 + 30 * HOUR, count=12), now=now)
    cleared = counts.mark_gaps(session, now=now)
    assert cleared.cleared == 23
    assert {v[1] for v in hours_of(session, spot).values()} == {"ok"}


def test_a_stuck_sensor_is_an_outage_from_six_hours_on(session: Session, city: City) -> None:
    spot = make_hotspot(session, city.stations[0], "stuck")
    varying = [
        report(hotspot="stuck", sensor="s1", hour=H0 + i * HOUR, count=10 + i) for i in range(24)
    ]
    run5 = [report(hotspot="stuck", sensor="s2", hour=H0 + i * HOUR, count=7) for i in range(2, 7)]
    run6 = [
        report(hotspot="stuck", sensor="s2", hour=H0 + i * HOUR, count=9) for i in range(10, 16)
    ]
    record(session, *varying, *run5, *run6)
    counts.mark_gaps(session, now=H0 + timedelta(days=1, minutes=5))
    stored = hours_of(session, spot)
    outage = sorted(h for h, v in stored.items() if v[1] == "outage")
    assert outage == [H0 + i * HOUR for i in range(10, 16)]
    assert all(stored[h][0] is not None for h in outage)


def test_hourly_counts_refuses_unknown_hotspots_and_takes_mixed_zones(
    session: Session, city: City, bund: CrowdHotspot
) -> None:
    make_hotspot(session, city.stations[0], "london", timezone="Europe/London")
    with pytest.raises(InvalidInput, match="unknown hotspot 'atlantis'"):
        counts.hourly_counts(session, hotspots=["atlantis"], start=H0, end=NOW)
    mixed = counts.hourly_counts(session, hotspots=["bund", "london"], start=H0, end=NOW)
    assert (mixed.sites, mixed.tz, mixed.region) == (("bund", "london"), "UTC", "")
    empty = counts.hourly_counts(session, hotspots=["bund"], start=H0, end=H0 + 3 * HOUR)
    assert empty.hours == 3
    assert np.isnan(empty.values).all()


def test_the_gaps_job_is_registered_and_idempotent(runtime: Runtime, city: City) -> None:
    jobs.load_job_modules()
    job = jobs.registry.get("crowd.gaps")
    assert job.every == timedelta(minutes=15)
    with runtime.sessions.begin() as s:
        make_hotspot(s, city.stations[0], "bund")
        record(s, report(hour=H0), report(hour=H0 + 3 * HOUR))
    scheduler = jobs.Scheduler(runtime)
    now = H0 + 5 * HOUR
    first = scheduler.run_now("crowd.gaps", now=now)
    assert (first.status, first.items) == ("succeeded", 3)  # H0+1h, +2h, +4h
    again = scheduler.run_now("crowd.gaps", now=now)
    assert (again.status, again.items) == ("succeeded", 0)


# --------------------------------------------------------------------------- the bus


def _consumer(runtime: Runtime) -> Consumer:
    [spec] = [s for s in registered_consumers() if s.name == consumers.CONSUMER]
    return Consumer(name=spec.name, sessions=runtime.sessions, apply=spec.apply, types=spec.types)


def test_bus_events_are_stored_once_and_poison_goes_to_dead_letters(
    runtime: Runtime, city: City
) -> None:
    with runtime.sessions.begin() as s:
        make_hotspot(s, city.stations[0], "bund")
        consumers.publish(s, report=report(sensor="gate-1", count=40))
        consumers.publish(s, report=report(sensor="gate-2", count=2))
        consumers.publish(s, report=report(hotspot="atlantis", count=1))  # poison: no such hotspot
    with pytest.raises(InvalidInput, match="negative count"), runtime.sessions.begin() as s:
        consumers.publish(s, report=report(count=-5))  # refused at the producer already

    async def run() -> None:
        bus = MemoryBus(runtime.sessions, poll_interval=0.05)
        try:
            assert await Relay(sessions=runtime.sessions, bus=bus).drain(timeout=20) >= 3
            consumer = _consumer(runtime)
            await consumer.start(bus)
            async with asyncio.timeout(15):
                while consumer.applied < 3:
                    await asyncio.sleep(0.05)
        finally:
            await bus.close()

    asyncio.run(run())
    with runtime.sessions() as s:
        [total] = s.scalars(select(CrowdCount)).all()
        assert (total.count, total.sensors) == (42.0, 2)
        [letter] = s.scalars(select(DeadLetterRow)).all()
        assert letter.connector == "crowd.counts"
        assert letter.reason == "invalid_payload"
        assert "unknown hotspot 'atlantis'" in letter.detail
        assert b"atlantis" in letter.raw
        envelopes = [
            row.envelope()
            for row in s.scalars(
                select(OutboxEvent).where(OutboxEvent.type == consumers.COUNT_REPORTED)
            )
        ]
        before = [(r.sensor_id, r.count, r.reports) for r in s.scalars(select(CrowdSensorHour))]

    replay = _consumer(runtime).process(envelopes)  # delivered again: nothing changes
    assert (replay.applied, replay.skipped) == (0, 3)
    with runtime.sessions() as s:
        after = [(r.sensor_id, r.count, r.reports) for r in s.scalars(select(CrowdSensorHour))]
        assert after == before
        assert s.scalar(select(func.count()).select_from(DeadLetterRow)) == 1
        assert (
            s.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.consumer == consumers.CONSUMER)
            )
            == 3
        )


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def use_test_db(runtime: Runtime, city: City, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    with runtime.sessions.begin() as s:
        make_hotspot(s, city.stations[0], "bund", timezone="Asia/Shanghai")
    monkeypatch.setattr(counts_cli, "_runtime", lambda: runtime)
    return runtime


def test_cli_imports_the_long_format_and_marks_gaps(use_test_db: Runtime, tmp_path: Path) -> None:
    base = counts.floor_hour(datetime.now(UTC)) - 5 * HOUR
    stamp = [(base + i * HOUR).astimezone(ZoneInfo("Asia/Shanghai")).isoformat() for i in (0, 3)]
    path = tmp_path / "counts.csv"
    path.write_text(
        "hotspot,sensor,hour,count,kind\n"
        f"bund,gate-1,{stamp[0]},100,turnstile\n"
        f"bund,gate-2,{stamp[0]},50,\n"
        f"bund,gate-1,{stamp[1]},70,turnstile\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli.app, ["crowd", "counts", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported 3 count(s) for 1 hotspot(s)" in result.output
    assert "3 gap(s)" in result.output
    with use_test_db.sessions() as s:
        stored = {r.hour: (r.count, r.status) for r in s.scalars(select(CrowdCount))}
    assert stored == {
        base: (150.0, "ok"),
        base + HOUR: (None, "gap"),
        base + 2 * HOUR: (None, "gap"),
        base + 3 * HOUR: (70.0, "ok"),
        base + 4 * HOUR: (None, "gap"),  # the last complete hour
    }


def test_cli_imports_the_product_csv_as_hotspot_totals(
    use_test_db: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "totals.csv"
    path.write_text("hotspot,timestamp,count\nbund,2026-10-01T02:00:00Z,1825\n", "utf-8")
    result = CliRunner().invoke(cli.app, ["crowd", "counts", "import", str(path)])
    assert result.exit_code == 0, result.output
    with use_test_db.sessions() as s:
        row = s.scalar(select(CrowdSensorHour))
        assert row is not None
        assert (row.sensor_id, row.count) == ("total:bund", 1825.0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "hotspot,sensor,hour,count\nbund,g,2026-10-01T10:00:00+08:00,1\n"
            "bund,g,2026-10-01T11:00:00+08:00,-4\n",
            "error: counts.csv line 3: negative count -4",
        ),
        (
            "hotspot,sensor,hour,count\natlantis,g,2026-10-01T10:00:00+08:00,1\n",
            "error: counts.csv line 2: unknown hotspot 'atlantis'",
        ),
        (
            "hotspot,sensor,hour,count\nbund,g,2026-10-01T10:00:00,1\n",
            "error: counts.csv line 2: hour '2026-10-01T10:00:00' has no UTC offset",
        ),
        ("hotspot,when,count\n", "error: counts.csv: header must be"),
        ("hotspot,sensor,hour,count\nbund,g,1\n", "error: counts.csv line 2: expected 4 fields"),
    ],
)
def test_cli_bad_rows_end_in_one_line_and_store_nothing(
    use_test_db: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    body: str,
    message: str,
) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(body, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["safecity", "crowd", "counts", "import", str(path)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message)
    assert len(err.splitlines()) == 1
    with use_test_db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CrowdSensorHour)) == 0


# --------------------------------------------------------------------------- properties

_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.timezones()
    ).map(lambda d: d.isoformat()),
    st.lists(st.integers(), max_size=2),
)
_REPORT = st.fixed_dictionaries(
    {},
    optional={
        "hotspot": st.one_of(st.sampled_from(["bund", " bund ", ""]), _VALUE),
        "sensor": st.one_of(st.sampled_from(["gate-1", "a:b.c_d", "x" * 65]), _VALUE),
        "hour": _VALUE,
        "at": _VALUE,
        "count": _VALUE,
        "kind": st.one_of(st.sampled_from(counts.KINDS), _VALUE),
        "extra": _VALUE,
    },
)


@settings(max_examples=400, deadline=None)
@given(data=st.one_of(_REPORT, _VALUE), index=st.integers(min_value=0, max_value=10_000))
def test_the_report_parser_accepts_or_names_the_report(data: Any, index: int) -> None:
    problem: InvalidInput | None = None
    try:
        parsed = counts.parse_report(data, index=index, now=NOW)
    except InvalidInput as exc:
        problem = exc
    if problem is not None:
        assert problem.extra["index"] == index
        assert problem.detail.startswith(f"report {index}: ")
        return
    assert parsed.hour.tzinfo is not None
    assert parsed.hour.utcoffset() == timedelta(0)
    assert parsed.hour == parsed.hour.replace(minute=0, second=0, microsecond=0)
    assert parsed.hour <= NOW + counts.FUTURE_SKEW
    assert math.isfinite(parsed.count)
    assert parsed.count >= 0
    assert parsed.kind in counts.KINDS
    assert parsed.hotspot == parsed.hotspot.strip()
    assert parsed.hotspot


@settings(max_examples=200, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2026, 10, 27), timezones=st.timezones()
    )
)
def test_any_aware_instant_lands_in_its_utc_hour(when: datetime) -> None:
    parsed = counts.parse_report(report(hour=None, at=when.isoformat()), index=0, now=NOW)
    utc = when.astimezone(UTC)
    assert parsed.hour <= utc < parsed.hour + HOUR


_UTC_HOUR = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2026, 10, 27, 12), timezones=st.timezones()
).map(lambda d: counts.floor_hour(d).astimezone(d.tzinfo))
_VALID = st.fixed_dictionaries(
    {
        "hotspot": st.from_regex(r"[a-z0-9][a-z0-9_-]{1,63}", fullmatch=True),
        "sensor": st.from_regex(counts.SENSOR_PATTERN, fullmatch=True),
        "hour": _UTC_HOUR.map(lambda d: d.isoformat()),
        "count": st.one_of(
            st.integers(min_value=0, max_value=10**9),
            st.floats(min_value=0, max_value=1e9, allow_nan=False),
        ),
        "kind": st.sampled_from(counts.KINDS),
    }
)


@settings(max_examples=200, deadline=None)
@given(data=_VALID)
def test_every_well_formed_report_parses_to_its_utc_hour(data: dict[str, Any]) -> None:
    parsed = counts.parse_report(data, index=0, now=NOW)
    assert parsed.hour == datetime.fromisoformat(data["hour"])
    assert parsed.count == data["count"]
    assert (parsed.hotspot, parsed.sensor, parsed.kind) == (
        data["hotspot"],
        data["sensor"],
        data["kind"],
    )
