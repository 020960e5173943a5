"""Count ingest: sensors' hourly people counts become hotspot hours; gaps and outages marked.

A *report* is one sensor's count of people for one hour at one hotspot (see
``docs/crowd-feeds.md``)::

    {"hotspot": "bund-east", "sensor": "bund-gate-3", "hour": "2026-10-01T19:00:00+08:00",
     "count": 18250, "kind": "turnstile"}

Only aggregates are accepted: a report names a sensor and a number, and a field the format
does not know (a device identifier, a MAC, a track) refuses it. ``kind`` is one of
:data:`KINDS`.

**Time.** ``hour`` is the start of the counted hour, ``at`` any instant inside it; either
must carry a UTC offset (a naive time is refused). Both are stored as the **UTC** instant the
hour starts (``at`` is floored to its UTC hour; an ``hour`` that is not a UTC hour start, as
in a +05:30 zone, is refused). Daylight-saving changes in the hotspot's zone therefore never
shift, merge or double an hour: 01:00+01:00 and 01:00+00:00 on the night Europe/London
falls back are two distinct UTC hours, and the hour that does not exist in spring is simply
not reported. Local hours are derived from the hotspot's ``timezone`` when needed.

**Validation** (:func:`record_counts`): a batch is all or nothing. The first bad report
refuses the whole batch with :class:`InvalidInput` naming its ``index`` (as the fraud feeds
do): not an object, an unknown field, a hotspot that does not exist (or is outside the
caller's org scope) or is inactive, a sensor id that is not a short token, a count that is
not a finite number, negative, or above :data:`CEILING_FACTOR` × the hotspot's capacity (a
per-report ceiling: even a turnstile with a fast turnover does not pass ten times the
place's capacity in an hour), a time without a zone, before :data:`OLDEST`, or more than
:data:`FUTURE_SKEW` in the future. Validation only reads; nothing is written before every
report passed, so a refused batch leaves nothing behind in the caller's transaction.

**Latest wins.** A sensor's count for an hour is one :class:`CrowdSensorHour` row: a
repeated report of the same sensor and hour replaces the count (and the hotspot, if the
gateway corrected it) and adds to ``reports``; in one batch the last report of a sensor and
hour wins and the earlier ones are counted as ``duplicates``. Each touched hotspot hour's
:class:`CrowdCount` is then recomputed from its sensors: ``count`` = their sum, ``sensors``
= how many, ``status`` ``ok`` when at least ``expected_sensors`` reported (any one when that
is 0), else ``partial``.

**Gaps and outages** (:func:`mark_gaps`, the ``crowd.gaps`` job every 15 minutes): every
hour from a hotspot's first count to the last complete hour that has no count gets a
``gap`` row (``count`` empty) — marked, never filled; a late report turns it into a real
hour. Two outage rules mark hours ``outage`` while keeping their count (nothing is lost,
but :func:`hourly_counts` gives ``NaN`` for them so forecasting skips them): a local day
whose observed hours total 0 (:func:`safecity.crowd.datasets.mark_outages`, the benchmark
loaders' rule), and a sensor stuck at the same non-zero value for :data:`STUCK_HOURS`
consecutive hours or more. The rules are re-evaluated over the last
:data:`OUTAGE_LOOKBACK` of complete local days on each run, so a late report that ends an
outage clears the mark.

Functions take a session and keyword arguments and never commit.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.crowd.datasets import HOUR, HourlyCounts, mark_outages, parse_instant, zone
from safecity.crowd.models import CrowdCount, CrowdHotspot, CrowdSensorHour
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.security import audit
from safecity.security.rbac import Principal

__all__ = [
    "CEILING_FACTOR",
    "FUTURE_SKEW",
    "KINDS",
    "MAX_BATCH",
    "CountReport",
    "GapReport",
    "IngestReport",
    "hourly_counts",
    "mark_gaps",
    "parse_report",
    "record_counts",
]

KINDS: Final = ("counter", "turnstile", "transit", "wifi")
"""Where a count comes from: door/area counters, turnstiles, transit entries, Wi-Fi/phone
counts already aggregated by the operator."""
FIELDS: Final = frozenset({"hotspot", "sensor", "hour", "at", "count", "kind"})
MAX_BATCH: Final = 5000
"""Reports per batch (HTTP body, CLI chunk); more → 413."""
CEILING_FACTOR: Final = 10
"""A report above this many times the hotspot's capacity is refused as absurd."""
FUTURE_SKEW: Final = timedelta(minutes=5)
"""Clock skew allowed to a sensor: a time further ahead than this is refused."""
OLDEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
STUCK_HOURS: Final = 6
"""A sensor repeating one non-zero count this many hours running is stuck (an outage)."""
OUTAGE_LOOKBACK: Final = timedelta(days=7)
"""How far back each :func:`mark_gaps` run re-evaluates the outage rules."""
SENSOR_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
MAX_CODE: Final = 64
MAX_INT: Final = 10**15
_CHUNK: Final = 500


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class CountReport:
    """One validated report (without the database checks): ``hour`` is the UTC hour start."""

    hotspot: str
    sensor: str
    hour: datetime
    count: float
    kind: str


def floor_hour(when: datetime) -> datetime:
    """The UTC instant the hour holding ``when`` (aware) starts."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _fail(index: int, message: str, **extra: Any) -> InvalidInput:
    return InvalidInput(f"report {index}: {message}", index=index, **extra)


def _timestamp(raw: object, *, name: str, index: int) -> datetime:
    return parse_instant(raw, name=name, where=f"report {index}", index=index)


def parse_report(data: object, *, index: int, now: datetime) -> CountReport:
    """Check one report's shape, time and count; :class:`InvalidInput` names ``index``.

    The hotspot's existence, state and ceiling are checked by :func:`record_counts`.
    """
    if not isinstance(data, Mapping):
        raise _fail(index, "must be an object")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise _fail(
            index, f"unknown field {unknown[0][:40]!r} (only aggregated counts are accepted)"
        )
    hotspot = data.get("hotspot")
    if not isinstance(hotspot, str) or not 0 < len(hotspot.strip()) <= MAX_CODE:
        raise _fail(index, "hotspot must be a hotspot code")
    sensor = data.get("sensor")
    if not isinstance(sensor, str) or not SENSOR_PATTERN.fullmatch(sensor):
        raise _fail(index, "sensor must be an id of 1-64 letters, digits, '.', '_', ':' or '-'")
    kind = data.get("kind")
    if kind not in KINDS:
        raise _fail(index, f"kind must be one of {', '.join(KINDS)}")
    has_hour, has_at = data.get("hour") is not None, data.get("at") is not None
    if has_hour == has_at:
        raise _fail(index, "give exactly one of hour (the hour's start) or at (a time in it)")
    if has_hour:
        when = _timestamp(data["hour"], name="hour", index=index)
        if when != floor_hour(when):
            raise _fail(
                index,
                f"hour {str(data['hour'])[:40]!r} is not the start of a UTC hour; "
                "send at= for a time inside the hour",
            )
    else:
        when = _timestamp(data["at"], name="at", index=index)
    if when > now + FUTURE_SKEW:
        raise _fail(index, f"time {when.isoformat()} is in the future")
    if when < OLDEST:
        raise _fail(index, f"time {when.isoformat()} is before {OLDEST.year}")
    count = data.get("count")
    if isinstance(count, bool) or not isinstance(count, int | float):
        raise _fail(index, "count must be a number")
    if isinstance(count, int) and abs(count) > MAX_INT:
        raise _fail(index, "count is absurdly large")
    if not math.isfinite(count):
        raise _fail(index, f"count {count!r} is not a finite number")
    if count < 0:
        raise _fail(index, f"negative count {count!r}")
    return CountReport(
        hotspot=hotspot.strip(),
        sensor=sensor,
        hour=floor_hour(when),
        count=float(count),
        kind=str(kind),
    )


# --------------------------------------------------------------------------- recording


class IngestReport(BaseModel):
    """What :func:`record_counts` did with a batch."""

    model_config = ConfigDict(extra="forbid")

    accepted: int
    """Reports in the batch (all valid: a batch is all or nothing)."""
    stored: int
    """Sensor-hours written (new or replaced)."""
    duplicates: int
    """Reports of a sensor and hour repeated later in the same batch (the last one won)."""
    replaced: int
    """Sensor-hours that already existed and whose count was replaced (latest wins)."""
    hours: int
    """Hotspot-hours recomputed."""
    hotspots: list[str]


def ceiling(hotspot: CrowdHotspot) -> float:
    """The largest count one report may carry for ``hotspot``."""
    return float(CEILING_FACTOR * max(int(hotspot.capacity or 0), 1))


def _hotspots_by_code(session: Session, codes: Iterable[str]) -> dict[str, CrowdHotspot]:
    wanted = sorted(set(codes))
    found: dict[str, CrowdHotspot] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        for row in session.scalars(select(CrowdHotspot).where(CrowdHotspot.code.in_(chunk))):
            found[row.code] = row
    return found


def base_status(sensors: int, expected: int) -> str:
    """``ok`` when enough sensors reported (any one when none is expected), else ``partial``."""
    if sensors <= 0:
        return "gap"
    return "ok" if sensors >= max(expected, 1) else "partial"


def record_counts(
    session: Session,
    *,
    principal: Principal,
    reports: Sequence[object],
    now: datetime | None = None,
) -> IngestReport:
    """Validate a batch of reports (all or nothing), store them and recompute the hotspot
    hours they touch. See the module docstring for the rules."""
    now = now or utcnow()
    if not isinstance(reports, list | tuple):
        raise InvalidInput("reports must be a list")
    if not reports:
        raise InvalidInput("a batch needs at least one report")
    if len(reports) > MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} reports, got {len(reports)}")
    parsed = [parse_report(data, index=i, now=now) for i, data in enumerate(reports)]
    hotspots = _hotspots_by_code(session, (r.hotspot for r in parsed))
    for i, r in enumerate(parsed):
        spot = hotspots.get(r.hotspot)
        if spot is None or not principal.sees_org(spot.org_id):
            raise _fail(i, f"unknown hotspot {r.hotspot[:MAX_CODE]!r}", hotspot=r.hotspot)
        if not spot.active:
            raise _fail(i, f"hotspot {r.hotspot!r} is inactive", hotspot=r.hotspot)
        limit = ceiling(spot)
        if r.count > limit:
            raise _fail(
                i,
                f"count {r.count:g} is above the limit {limit:g} for hotspot {r.hotspot!r} "
                f"({CEILING_FACTOR} x its capacity)",
                hotspot=r.hotspot,
            )

    # Validation is over: from here on only writes (a refused batch wrote nothing).
    latest: dict[tuple[str, datetime], CountReport] = {}
    received: dict[tuple[str, datetime], int] = defaultdict(int)
    for r in parsed:
        key = (r.sensor, r.hour)
        latest.pop(key, None)  # re-insert: the dict keeps the last report's order
        latest[key] = r
        received[key] += 1
    existing = _existing_sensor_hours(session, latest)
    touched: set[tuple[str, datetime]] = set()
    replaced = 0
    for key, r in latest.items():
        hotspot_id = hotspots[r.hotspot].id
        row = existing.get(key)
        if row is None:
            session.add(
                CrowdSensorHour(
                    sensor_id=r.sensor,
                    hotspot_id=hotspot_id,
                    hour=r.hour,
                    count=r.count,
                    reports=received[key],
                    updated_at=now,
                )
            )
        else:
            replaced += 1
            touched.add((row.hotspot_id, r.hour))  # the sensor may have moved hotspot
            row.hotspot_id = hotspot_id
            row.count = r.count
            row.reports = (row.reports or 0) + received[key]
            row.updated_at = now
        touched.add((hotspot_id, r.hour))
    session.flush()
    by_id = {h.id: h for h in hotspots.values()}
    _recompute(session, touched, by_id, now=now)
    codes = sorted({r.hotspot for r in parsed})
    audit.record(
        session,
        principal=principal,
        action="crowd.counts.record",
        target_type="crowd_hotspot",
        target_id=hotspots[codes[0]].id if len(codes) == 1 else None,
        detail={
            "hotspots": codes[:20],
            "reports": len(parsed),
            "hours": len(touched),
            "first_hour": min(r.hour for r in parsed).isoformat(),
            "last_hour": max(r.hour for r in parsed).isoformat(),
        },
    )
    return IngestReport(
        accepted=len(parsed),
        stored=len(latest),
        duplicates=len(parsed) - len(latest),
        replaced=replaced,
        hours=len(touched),
        hotspots=codes,
    )


def _existing_sensor_hours(
    session: Session, keys: Iterable[tuple[str, datetime]]
) -> dict[tuple[str, datetime], CrowdSensorHour]:
    wanted = set(keys)
    if not wanted:
        return {}
    sensors = sorted({s for s, _ in wanted})
    lo, hi = min(h for _, h in wanted), max(h for _, h in wanted)
    found: dict[tuple[str, datetime], CrowdSensorHour] = {}
    for i in range(0, len(sensors), _CHUNK):
        query = select(CrowdSensorHour).where(
            CrowdSensorHour.sensor_id.in_(sensors[i : i + _CHUNK]),
            CrowdSensorHour.hour >= lo,
            CrowdSensorHour.hour <= hi,
        )
        for row in session.scalars(query):
            key = (row.sensor_id, row.hour)
            if key in wanted:
                found[key] = row
    return found


def _recompute(
    session: Session,
    touched: set[tuple[str, datetime]],
    hotspots: Mapping[str, CrowdHotspot],
    *,
    now: datetime,
) -> None:
    """Set each touched hotspot hour's :class:`CrowdCount` from its sensor-hours."""
    if not touched:
        return
    ids = sorted({h for h, _ in touched})
    lo, hi = min(t for _, t in touched), max(t for _, t in touched)
    sums: dict[tuple[str, datetime], tuple[float, int]] = {}
    rows: dict[tuple[str, datetime], CrowdCount] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        window = (
            CrowdSensorHour.hotspot_id.in_(chunk),
            CrowdSensorHour.hour >= lo,
            CrowdSensorHour.hour <= hi,
        )
        query = (
            select(
                CrowdSensorHour.hotspot_id,
                CrowdSensorHour.hour,
                func.sum(CrowdSensorHour.count),
                func.count(),
            )
            .where(*window)
            .group_by(CrowdSensorHour.hotspot_id, CrowdSensorHour.hour)
        )
        for hotspot_id, hour, total, n in session.execute(query):
            sums[(hotspot_id, hour)] = (float(total), int(n))
        for row in session.scalars(
            select(CrowdCount).where(
                CrowdCount.hotspot_id.in_(chunk), CrowdCount.hour >= lo, CrowdCount.hour <= hi
            )
        ):
            rows[(row.hotspot_id, row.hour)] = row
    missing = [h for h in ids if h not in hotspots]
    if missing:  # a sensor moved away from a hotspot not named in this batch
        for spot in session.scalars(select(CrowdHotspot).where(CrowdHotspot.id.in_(missing))):
            hotspots = {**hotspots, spot.id: spot}
    for key in sorted(touched):
        total, n = sums.get(key, (math.nan, 0))
        spot = hotspots[key[0]]
        status = base_status(n, spot.expected_sensors or 0)
        hour_row = rows.get(key)
        if hour_row is None:
            hour_row = CrowdCount(hotspot_id=key[0], hour=key[1])
            session.add(hour_row)
        hour_row.count = None if n == 0 else total
        hour_row.sensors = n
        hour_row.status = status
        hour_row.updated_at = now
    session.flush()


# --------------------------------------------------------------------------- gaps, outages


@dataclass
class GapReport:
    """What :func:`mark_gaps` changed: gap rows added, hours marked or cleared as outage."""

    hotspots: int = 0
    gaps: int = 0
    outages: int = 0
    cleared: int = 0

    @property
    def changed(self) -> int:
        return self.gaps + self.outages + self.cleared


def mark_gaps(session: Session, *, now: datetime, since: datetime | None = None) -> GapReport:
    """Mark gaps and outages of every active hotspot up to the last complete hour.

    Idempotent: a second run with the same data changes nothing. ``since`` widens the
    outage re-evaluation (default: :data:`OUTAGE_LOOKBACK` of complete local days), e.g.
    after importing history.
    """
    report = GapReport()
    cutoff = floor_hour(now)  # hours starting before this are complete
    last = cutoff - HOUR
    for spot in session.scalars(
        select(CrowdHotspot).where(CrowdHotspot.active.is_(True)).order_by(CrowdHotspot.code)
    ):
        first = session.scalar(
            select(func.min(CrowdCount.hour)).where(CrowdCount.hotspot_id == spot.id)
        )
        if first is None or first > last:
            continue
        report.hotspots += 1
        report.gaps += _mark_missing_hours(session, spot, first=first, last=last, now=now)
        marked, cleared = _mark_outages(
            session, spot, first=first, cutoff=cutoff, since=since, now=now
        )
        report.outages += marked
        report.cleared += cleared
    session.flush()
    return report


def _mark_missing_hours(
    session: Session, spot: CrowdHotspot, *, first: datetime, last: datetime, now: datetime
) -> int:
    expected = int((last - first) / HOUR) + 1
    in_range = (
        CrowdCount.hotspot_id == spot.id,
        CrowdCount.hour >= first,
        CrowdCount.hour <= last,
    )
    have = int(session.scalar(select(func.count()).select_from(CrowdCount).where(*in_range)) or 0)
    if have >= expected:
        return 0
    present = set(session.scalars(select(CrowdCount.hour).where(*in_range)))
    added = 0
    for i in range(expected):
        hour = first + i * HOUR
        if hour not in present:
            session.add(
                CrowdCount(
                    hotspot_id=spot.id,
                    hour=hour,
                    count=None,
                    status="gap",
                    sensors=0,
                    updated_at=now,
                )
            )
            added += 1
    return added


def _local_midnight(day: date, tz: str) -> datetime:
    """The first UTC hour start at or after local midnight of ``day`` (in a zone with a
    half-hour offset the hour before it still belongs to the day before)."""
    midnight = datetime.combine(day, time(), tzinfo=zone(tz)).astimezone(UTC)
    start = floor_hour(midnight)
    return start if start == midnight else start + HOUR


def _mark_outages(
    session: Session,
    spot: CrowdHotspot,
    *,
    first: datetime,
    cutoff: datetime,
    since: datetime | None,
    now: datetime,
) -> tuple[int, int]:
    """Re-evaluate the outage rules over the complete local days of the window."""
    tz = zone(spot.timezone).key
    today = cutoff.astimezone(zone(tz)).date()  # days before it have ended by ``cutoff``
    end = _local_midnight(today, tz)
    since_day = since.astimezone(zone(tz)).date() if since is not None else None
    start = _local_midnight(since_day or today - timedelta(days=OUTAGE_LOOKBACK.days), tz)
    start = max(start, first)
    if start >= end:
        return 0, 0
    rows = list(
        session.scalars(
            select(CrowdCount).where(
                CrowdCount.hotspot_id == spot.id, CrowdCount.hour >= start, CrowdCount.hour < end
            )
        )
    )
    hours = int((end - start) / HOUR)
    values = np.full((hours, 1), np.nan)
    for row in rows:
        if row.count is not None:
            values[int((row.hour - start) / HOUR), 0] = row.count
    grid = HourlyCounts(sites=(spot.code,), start=start, values=values, tz=tz)
    cleaned, _ = mark_outages(grid)
    dead = {
        start + int(i) * HOUR
        for i in np.flatnonzero(~np.isnan(values[:, 0]) & np.isnan(cleaned.values[:, 0]))
    }
    dead |= _stuck_hours(session, spot, start=start, end=end)
    marked = cleared = 0
    for row in rows:
        if row.count is None:
            continue
        want = "outage" if row.hour in dead else base_status(row.sensors, spot.expected_sensors)
        if row.status != want:
            if want == "outage":
                marked += 1
            elif row.status == "outage":
                cleared += 1
            row.status = want
            row.updated_at = now
    return marked, cleared


def _stuck_hours(
    session: Session, spot: CrowdHotspot, *, start: datetime, end: datetime
) -> set[datetime]:
    """Hours in which a sensor of ``spot`` repeated one non-zero count for
    :data:`STUCK_HOURS` consecutive hours or more."""
    query = (
        select(CrowdSensorHour.sensor_id, CrowdSensorHour.hour, CrowdSensorHour.count)
        .where(
            CrowdSensorHour.hotspot_id == spot.id,
            CrowdSensorHour.hour >= start - (STUCK_HOURS - 1) * HOUR,
            CrowdSensorHour.hour < end,
        )
        .order_by(CrowdSensorHour.sensor_id, CrowdSensorHour.hour)
    )
    stuck: set[datetime] = set()
    run: list[datetime] = []
    previous: tuple[str, datetime, float] | None = None

    def close() -> None:
        if len(run) >= STUCK_HOURS:
            stuck.update(h for h in run if start <= h < end)

    for sensor, hour, count in session.execute(query):
        same = (
            previous is not None
            and previous[0] == sensor
            and hour - previous[1] == HOUR
            and count == previous[2]
            and count > 0
        )
        if same:
            run.append(hour)
        else:
            close()
            run = [hour]
        previous = (sensor, hour, count)
    close()
    return stuck


# --------------------------------------------------------------------------- reading


def hourly_counts(
    session: Session,
    *,
    hotspots: Sequence[str | CrowdHotspot],
    start: datetime,
    end: datetime,
) -> HourlyCounts:
    """The hotspots' counts on the UTC hourly grid of hours starting in ``[start, end)``.

    ``start`` is floored to its hour; ``end`` is exclusive (pass ``origin + 1 h`` to end at
    the hour ``origin``). Columns follow ``hotspots`` (codes or rows). ``ok`` and ``partial``
    hours give their count; ``gap`` and ``outage`` hours and hours with no row give ``NaN``.
    The grid carries the hotspots' time zone and holiday region when they all share one,
    else ``UTC`` and no region (a caller mixing zones sets its own). An unknown code is
    :class:`InvalidInput`.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end must carry a time zone")
    spots = _resolve(session, hotspots)
    zones = {(s.timezone, s.region) for s in spots}
    tz, region = zones.pop() if len(zones) == 1 else ("UTC", "")
    first = floor_hour(start)
    end = end.astimezone(UTC)
    hours = max(0, math.ceil((end - first) / HOUR))
    values = np.full((hours, len(spots)), np.nan)
    column = {s.id: j for j, s in enumerate(spots)}
    if hours and spots:
        query = select(CrowdCount.hotspot_id, CrowdCount.hour, CrowdCount.count).where(
            CrowdCount.hotspot_id.in_(list(column)),
            CrowdCount.hour >= first,
            CrowdCount.hour < end,
            CrowdCount.status.in_(("ok", "partial")),
            CrowdCount.count.is_not(None),
        )
        for hotspot_id, hour, count in session.execute(query):
            values[int((hour - first) / HOUR), column[hotspot_id]] = count
    return HourlyCounts(
        sites=tuple(s.code for s in spots), start=first, values=values, tz=tz, region=region
    )


def _resolve(session: Session, hotspots: Sequence[str | CrowdHotspot]) -> list[CrowdHotspot]:
    codes = [h for h in hotspots if isinstance(h, str)]
    found = _hotspots_by_code(session, codes)
    out: list[CrowdHotspot] = []
    for h in hotspots:
        if isinstance(h, CrowdHotspot):
            out.append(h)
            continue
        spot = found.get(h)
        if spot is None:
            raise InvalidInput(f"unknown hotspot {h[:MAX_CODE]!r}", hotspot=h)
        out.append(spot)
    return out


def hotspot_counts(
    session: Session, *, hotspot: CrowdHotspot, start: datetime, end: datetime
) -> list[CrowdCount]:
    """The stored hours of one hotspot starting in ``[start, end)``, oldest first."""
    return list(
        session.scalars(
            select(CrowdCount)
            .where(
                CrowdCount.hotspot_id == hotspot.id,
                CrowdCount.hour >= floor_hour(start),
                CrowdCount.hour < end,
            )
            .order_by(CrowdCount.hour)
        )
    )
