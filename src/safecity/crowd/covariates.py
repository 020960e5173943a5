"""Covariates and the events calendar (issue 8 item 3): outside feeds the forecaster may
use, validated and stored — **not yet used by the model** (:mod:`safecity.crowd.forecast`
takes only counts and the holiday calendar; these tables are there so history accumulates
before a model learns from it).

**Covariate feeds** (:func:`record_covariates`), one CSV per kind (``docs/crowd-feeds.md``);
the column that holds the value names its unit, so a file imported under the wrong kind
is refused by its header:

==========  ======================  ===========================================  ============
kind        columns                 value                                        range
==========  ======================  ===========================================  ============
``air``     ``scope,hour,arrivals`` people arriving by air in the hour            0 – 1,000,000
``rail``    ``scope,hour,arrivals`` people arriving by rail in the hour           0 – 1,000,000
``hotel``   ``scope,day,occupancy`` share of hotel rooms occupied that local day 0 – 1
``temp_c``  ``scope,hour,temp_c``   air temperature, °C                           −40 – 60
``rain_mm`` ``scope,hour,rain_mm``  precipitation, mm in the hour                 0 – 500
==========  ======================  ===========================================  ============

An optional ``source`` column (or the JSON field) names where the value comes from (the
CLI defaults it to the file's name). ``scope`` is a city or region code in capitals
(``SH``, ``CN-SH``: :data:`REGION_PATTERN`) or the code of an existing hotspot (for an API
caller, one of its org subtree). ``hour`` is the start of the hour and must be a UTC hour
start with an offset (as for counts); ``day`` is the local midnight that starts the day,
with its offset (``2026-10-01T00:00:00+08:00``). Both are stored as UTC instants. Values
may be up to :data:`FUTURE_LIMIT` ahead (schedules, weather forecasts), not before 2000.

A file or batch is **all or nothing**: the first bad row refuses it with
:class:`InvalidInput` naming the row (``index``; the CLI turns it into the line number) and
nothing is written. A repeated ``(kind, scope, hour)`` replaces the stored value (latest
wins; inside one batch the last row wins and the others count as ``duplicates``).

**Events calendar** (:func:`import_calendar`): a YAML document ``{"events": [...]}`` (YAML
because entries carry prose — names, source titles — and comments explaining why an entry
is there; PyYAML is already a dependency; the API takes the same document as JSON). Every
entry cites a public source (``source_url`` http/https and ``source_title``: the
organiser's programme, a fixture list, a news report) and is **never derived from the
counts**. Refused, with the entry's index and line: a missing or non-http source, an
unknown field, an unknown kind, ``ends_at <= starts_at``, a time without an offset, an
unknown hotspot, a code used twice. Entries are upserted by ``code``; an import never
deletes events the file does not list.

Functions take a session and keyword arguments and never commit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.crowd.datasets import parse_instant
from safecity.crowd.models import CrowdCovariate, CrowdEvent, CrowdHotspot
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.security import audit
from safecity.security.rbac import Principal

__all__ = [
    "ARRIVALS_CEILING",
    "EVENT_KINDS",
    "FEEDS",
    "KINDS",
    "MAX_BATCH",
    "CalendarReport",
    "CovariateReport",
    "CovariateRow",
    "EventEntry",
    "Feed",
    "events_between",
    "import_calendar",
    "parse_calendar_yaml",
    "parse_event",
    "parse_row",
    "record_covariates",
]


@dataclass(frozen=True, slots=True)
class Feed:
    """One covariate kind: its time column, value column (named for the unit) and range."""

    kind: str
    time: str  # "hour" | "day"
    value: str
    unit: str
    low: float
    high: float
    high_inclusive: bool = True


ARRIVALS_CEILING: Final = 1_000_000
"""Arrivals in one hour for one scope, refused at or above: Shanghai's airports and rail
stations together move on the order of a million people a *day*; a million in an hour is
a unit error (a daily or yearly figure), not a busy hour."""

FEEDS: Final[dict[str, Feed]] = {
    "air": Feed("air", "hour", "arrivals", "people/h", 0, ARRIVALS_CEILING, False),
    "rail": Feed("rail", "hour", "arrivals", "people/h", 0, ARRIVALS_CEILING, False),
    "hotel": Feed("hotel", "day", "occupancy", "share 0-1", 0, 1),
    "temp_c": Feed("temp_c", "hour", "temp_c", "°C", -40, 60),
    "rain_mm": Feed("rain_mm", "hour", "rain_mm", "mm/h", 0, 500),
}
KINDS: Final = tuple(FEEDS)
EVENT_KINDS: Final = ("concert", "light_show", "fireworks", "match", "festival", "other")

MAX_BATCH: Final = 5000
"""Rows per API batch (more → 413)."""
MAX_FILE_ROWS: Final = 200_000
"""Rows per imported file (a year of hourly values for 20 scopes)."""
MAX_EVENTS: Final = 2000
MAX_CALENDAR_BYTES: Final = 2_000_000
MAX_DURATION: Final = timedelta(days=62)
"""Longest event (a festival season); longer is a typo in a date."""
MAX_ATTENDANCE: Final = 10_000_000
FUTURE_LIMIT: Final = timedelta(days=400)
OLDEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
REGION_PATTERN: Final = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,6})?$")
CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SOURCE: Final = 200
_CHUNK: Final = 500

EVENT_FIELDS: Final = frozenset(
    {
        "code",
        "name",
        "kind",
        "hotspots",
        "starts_at",
        "ends_at",
        "attendance",
        "source_url",
        "source_title",
    }
)
REQUIRED_EVENT_FIELDS: Final = EVENT_FIELDS - {"attendance"}


# --------------------------------------------------------------------------- shared checks


def _fail(where: str, message: str, **extra: Any) -> InvalidInput:
    return InvalidInput(f"{where}: {message}", **extra)


def _short(raw: object) -> str:
    return repr(str(raw)[:40])


def _timestamp(raw: object, *, name: str, where: str) -> datetime:
    return parse_instant(raw, name=name, where=where)


def _in_window(when: datetime, *, name: str, where: str, now: datetime) -> None:
    if when < OLDEST:
        raise _fail(where, f"{name} {when.isoformat()} is before {OLDEST.year}")
    if when > now + FUTURE_LIMIT:
        raise _fail(where, f"{name} {when.isoformat()} is more than {FUTURE_LIMIT.days} days ahead")


def _number(raw: object, *, name: str, where: str) -> float:
    if isinstance(raw, str):  # CSV cells arrive as text
        text = raw.strip()
        try:
            raw = float(text)
        except ValueError:
            raise _fail(where, f"{name} {_short(text)} is not a number") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _fail(where, f"{name} must be a number")
    try:
        value = float(raw)
    except OverflowError:
        raise _fail(where, f"{name} is absurdly large") from None
    if not math.isfinite(value):
        raise _fail(where, f"{name} {raw!r} is not a finite number")
    return value


def hotspots_by_code(session: Session, codes: Iterable[str]) -> dict[str, CrowdHotspot]:
    wanted = sorted(set(codes))
    found: dict[str, CrowdHotspot] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        for row in session.scalars(select(CrowdHotspot).where(CrowdHotspot.code.in_(chunk))):
            found[row.code] = row
    return found


# --------------------------------------------------------------------------- covariates


@dataclass(frozen=True, slots=True)
class CovariateRow:
    """One validated value (without the database checks): ``at`` is a UTC instant."""

    kind: str
    scope: str
    at: datetime
    value: float
    source: str


def parse_row(
    kind: str, data: object, *, where: str, now: datetime, source: str = "api"
) -> CovariateRow:
    """Check one row of feed ``kind``; :class:`InvalidInput` starts with ``where``.

    ``data`` is a CSV row as a dict of strings or a JSON object. Whether a hotspot scope
    exists is checked by :func:`record_covariates`.
    """
    feed = FEEDS.get(kind)
    if feed is None:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {_short(kind)}")
    if not isinstance(data, Mapping):
        raise _fail(where, "must be an object")
    allowed = {"scope", feed.time, feed.value, "source"}
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise _fail(
            where,
            f"unknown field {unknown[0][:40]!r} for kind {kind} "
            f"(fields: scope, {feed.time}, {feed.value}[, source])",
        )
    scope = data.get("scope")
    if not isinstance(scope, str) or not CODE_PATTERN.fullmatch(scope.strip()):
        raise _fail(where, "scope must be a region code (e.g. SH) or a hotspot code")
    if feed.time not in data or data.get(feed.time) in (None, ""):
        raise _fail(where, f"{feed.time} is missing")
    when = _timestamp(data[feed.time], name=feed.time, where=where)
    if feed.time == "hour":
        if when != when.replace(minute=0, second=0, microsecond=0):
            raise _fail(where, f"hour {_short(data[feed.time])} is not the start of a UTC hour")
    else:
        local = _timestamp_local(data[feed.time])
        if local is not None and (local.hour, local.minute, local.second) != (0, 0, 0):
            raise _fail(
                where, f"day {_short(data[feed.time])} must be a local midnight (T00:00:00+hh:mm)"
            )
    _in_window(when, name=feed.time, where=where, now=now)
    if feed.value not in data or data.get(feed.value) in (None, ""):
        raise _fail(where, f"{feed.value} is missing")
    value = _number(data[feed.value], name=feed.value, where=where)
    above = value > feed.high if feed.high_inclusive else value >= feed.high
    if value < feed.low or above:
        bound = "≤" if feed.high_inclusive else "<"
        raise _fail(
            where,
            f"{feed.value} {value:g} is out of range ({feed.low:g} ≤ value {bound} "
            f"{feed.high:g} {feed.unit})",
        )
    raw_source = data.get("source")
    if raw_source not in (None, ""):
        if not isinstance(raw_source, str) or len(raw_source.strip()) > MAX_SOURCE:
            raise _fail(where, f"source must be text of at most {MAX_SOURCE} characters")
        source = raw_source.strip()
    return CovariateRow(
        kind=kind, scope=scope.strip(), at=when, value=value, source=source[:MAX_SOURCE]
    )


def _timestamp_local(raw: object) -> datetime | None:
    """The timestamp in its own offset (to check a local midnight); already validated."""
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        return datetime.fromisoformat(raw.strip())
    return None


class CovariateReport(BaseModel):
    """What :func:`record_covariates` did with a batch."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    accepted: int
    """Rows in the batch (all valid: a batch is all or nothing)."""
    created: int
    updated: int
    """Stored values replaced (latest wins)."""
    duplicates: int
    """Rows repeating a scope and time later in the same batch (the last one won)."""
    scopes: list[str]


def record_covariates(
    session: Session,
    *,
    principal: Principal,
    kind: str,
    rows: Sequence[object],
    now: datetime | None = None,
    source: str = "api",
    where: Sequence[str] | None = None,
    max_rows: int = MAX_BATCH,
) -> CovariateReport:
    """Validate ``rows`` of feed ``kind`` (all or nothing) and upsert them.

    ``where`` names each row in errors (the CLI passes ``"file.csv line 7"``; default
    ``"row i"``); ``source`` is the default for rows without one.
    """
    now = now or utcnow()
    if kind not in FEEDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {_short(kind)}")
    if not isinstance(rows, list | tuple):
        raise InvalidInput("rows must be a list")
    if not rows:
        raise InvalidInput("a batch needs at least one row")
    if len(rows) > max_rows:
        raise PayloadTooLarge(f"a batch holds at most {max_rows} rows, got {len(rows)}")
    given = list(where or ())
    names = [given[i] if i < len(given) else f"row {i}" for i in range(len(rows))]
    parsed: list[CovariateRow] = []
    for i, data in enumerate(rows):
        with _indexed(i):
            parsed.append(parse_row(kind, data, where=names[i], now=now, source=source))
    spots = hotspots_by_code(session, (r.scope for r in parsed))
    for i, r in enumerate(parsed):
        if REGION_PATTERN.fullmatch(r.scope):
            continue
        spot = spots.get(r.scope)
        if spot is None or not principal.sees_org(spot.org_id):
            raise _fail(
                names[i],
                f"unknown scope {r.scope!r} (a region code in capitals such as SH, "
                "or an existing hotspot code)",
                index=i,
                scope=r.scope,
            )

    # Validation is over: from here on only writes (a refused batch wrote nothing).
    latest: dict[tuple[str, datetime], CovariateRow] = {}
    for r in parsed:
        latest.pop((r.scope, r.at), None)
        latest[(r.scope, r.at)] = r
    existing = _existing(session, kind, latest)
    created = updated = 0
    for key, r in latest.items():
        row = existing.get(key)
        if row is None:
            created += 1
            session.add(
                CrowdCovariate(
                    kind=kind,
                    scope=r.scope,
                    at=r.at,
                    value=r.value,
                    source=r.source,
                    updated_at=now,
                )
            )
        else:
            updated += 1
            row.value, row.source, row.updated_at = r.value, r.source, now
    session.flush()
    scopes = sorted({r.scope for r in parsed})
    audit.record(
        session,
        principal=principal,
        action="crowd.covariates.record",
        target_type="crowd_covariate",
        detail={
            "kind": kind,
            "scopes": scopes[:20],
            "rows": len(parsed),
            "first": min(r.at for r in parsed).isoformat(),
            "last": max(r.at for r in parsed).isoformat(),
        },
    )
    return CovariateReport(
        kind=kind,
        accepted=len(parsed),
        created=created,
        updated=updated,
        duplicates=len(parsed) - len(latest),
        scopes=scopes,
    )


@contextmanager
def _indexed(index: int) -> Iterator[None]:
    """Add the row's ``index`` to an :class:`InvalidInput` raised inside (problem+json)."""
    try:
        yield
    except InvalidInput as exc:
        exc.extra.setdefault("index", index)
        raise


def _existing(
    session: Session, kind: str, keys: Iterable[tuple[str, datetime]]
) -> dict[tuple[str, datetime], CrowdCovariate]:
    wanted = set(keys)
    if not wanted:
        return {}
    scopes = sorted({s for s, _ in wanted})
    lo, hi = min(t for _, t in wanted), max(t for _, t in wanted)
    found: dict[tuple[str, datetime], CrowdCovariate] = {}
    for i in range(0, len(scopes), _CHUNK):
        query = select(CrowdCovariate).where(
            CrowdCovariate.kind == kind,
            CrowdCovariate.scope.in_(scopes[i : i + _CHUNK]),
            CrowdCovariate.at >= lo,
            CrowdCovariate.at <= hi,
        )
        for row in session.scalars(query):
            key = (row.scope, row.at)
            if key in wanted:
                found[key] = row
    return found


# --------------------------------------------------------------------------- events calendar


@dataclass(frozen=True, slots=True)
class EventEntry:
    """One validated calendar entry (hotspots' existence checked by :func:`import_calendar`)."""

    code: str
    name: str
    kind: str
    hotspots: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    attendance: int | None
    source_url: str
    source_title: str


def _text(data: Mapping[Any, Any], name: str, *, where: str, limit: int) -> str:
    raw = data.get(name)
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(where, f"{name} must be non-empty text")
    if len(raw.strip()) > limit:
        raise _fail(where, f"{name} is longer than {limit} characters")
    return raw.strip()


def parse_event(data: object, *, where: str) -> EventEntry:
    """Check one calendar entry's shape, times and citation."""
    if not isinstance(data, Mapping):
        raise _fail(where, "must be a mapping of fields")
    unknown = sorted(str(k) for k in data if k not in EVENT_FIELDS)
    if unknown:
        raise _fail(where, f"unknown field {unknown[0][:40]!r}")
    missing = sorted(f for f in REQUIRED_EVENT_FIELDS if data.get(f) in (None, "", []))
    if "source_url" in missing or "source_title" in missing:
        raise _fail(
            where,
            "every entry must cite a public source: source_url (http/https) and "
            "source_title (programme, fixture list, news report)",
        )
    if missing:
        raise _fail(where, f"{missing[0]} is missing")
    code = data["code"]
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        raise _fail(where, "code must be 1-64 of letters, digits, '.', '_' or '-'")
    name = _text(data, "name", where=where, limit=200)
    kind = data["kind"]
    if kind not in EVENT_KINDS:
        raise _fail(where, f"kind must be one of {', '.join(EVENT_KINDS)}, got {_short(kind)}")
    spots = data["hotspots"]
    if not isinstance(spots, list) or not all(
        isinstance(h, str) and CODE_PATTERN.fullmatch(h) for h in spots
    ):
        raise _fail(where, "hotspots must be a list of hotspot codes")
    starts = _timestamp(data["starts_at"], name="starts_at", where=where)
    ends = _timestamp(data["ends_at"], name="ends_at", where=where)
    if ends <= starts:
        raise _fail(where, "ends_at must be after starts_at")
    if ends - starts > MAX_DURATION:
        raise _fail(where, f"an event lasts at most {MAX_DURATION.days} days")
    if starts < OLDEST:
        raise _fail(where, f"starts_at is before {OLDEST.year}")
    attendance = data.get("attendance")
    if attendance is not None and (
        isinstance(attendance, bool)
        or not isinstance(attendance, int)
        or not 0 <= attendance <= MAX_ATTENDANCE
    ):
        raise _fail(where, f"attendance must be a whole number of people, 0-{MAX_ATTENDANCE:,}")
    url = _text(data, "source_url", where=where, limit=500)
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in url)
    ):
        raise _fail(where, f"source_url {_short(url)} must be an http or https address")
    title = _text(data, "source_title", where=where, limit=300)
    return EventEntry(
        code=code,
        name=name,
        kind=str(kind),
        hotspots=tuple(dict.fromkeys(spots)),
        starts_at=starts,
        ends_at=ends,
        attendance=attendance,
        source_url=url,
        source_title=title,
    )


def parse_calendar_yaml(text: str | bytes, *, name: str = "calendar") -> tuple[Any, list[int]]:
    """The YAML document and the line of each entry of its ``events`` list (1-based).

    Malformed YAML is one :class:`InvalidInput` naming the line and column.
    """
    if len(text) > MAX_CALENDAR_BYTES:
        raise PayloadTooLarge(f"{name} is larger than {MAX_CALENDAR_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{name} is not UTF-8 text") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise InvalidInput(f"{name}{at}: malformed YAML: {problem}") from None
    except (ValueError, TypeError, RecursionError):  # e.g. an impossible date
        raise InvalidInput(f"{name}: malformed YAML: a value cannot be read") from None
    finally:
        loader.dispose()
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "events" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return data, lines


class CalendarReport(BaseModel):
    """What :func:`import_calendar` did."""

    model_config = ConfigDict(extra="forbid")

    total: int
    created: int
    updated: int
    unchanged: int


def import_calendar(
    session: Session,
    *,
    principal: Principal,
    document: object,
    name: str = "calendar",
    lines: Sequence[int] = (),
    now: datetime | None = None,
) -> CalendarReport:
    """Validate the calendar ``{"events": [...]}`` (all or nothing) and upsert by code.

    Errors name the entry (``events[i]``, and its line when ``lines`` is given).
    """
    now = now or utcnow()
    if not isinstance(document, Mapping) or set(document) != {"events"}:
        raise InvalidInput(f"{name}: the calendar must be a mapping with one key, events")
    entries = document["events"]
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise InvalidInput(f"{name}: events must be a list of entries")
    if len(entries) > MAX_EVENTS:
        raise PayloadTooLarge(f"{name}: at most {MAX_EVENTS} events, got {len(entries)}")

    def where(i: int) -> str:
        line = f" (line {lines[i]})" if i < len(lines) else ""
        return f"{name} events[{i}]{line}"

    parsed: list[EventEntry] = []
    for i, data in enumerate(entries):
        with _indexed(i):
            parsed.append(parse_event(data, where=where(i)))
    first: dict[str, int] = {}
    for i, e in enumerate(parsed):
        if e.code in first:
            raise _fail(
                where(i), f"code {e.code!r} is already used by events[{first[e.code]}]", index=i
            )
        first[e.code] = i
    spots = hotspots_by_code(session, (h for e in parsed for h in e.hotspots))
    for i, e in enumerate(parsed):
        for code in e.hotspots:
            spot = spots.get(code)
            if spot is None or not principal.sees_org(spot.org_id):
                raise _fail(where(i), f"unknown hotspot {code!r}", index=i, hotspot=code)
    stored = {
        row.code: row
        for chunk in _chunks(sorted(first))
        for row in session.scalars(select(CrowdEvent).where(CrowdEvent.code.in_(chunk)))
    }
    foreign = hotspots_by_code(session, (h for row in stored.values() for h in row.hotspots))
    for i, e in enumerate(parsed):
        row = stored.get(e.code)
        if row is not None and any(
            code in foreign and not principal.sees_org(foreign[code].org_id)
            for code in row.hotspots
        ):
            raise _fail(
                where(i), f"event {e.code!r} exists for hotspots outside your scope", index=i
            )

    # Validation is over: from here on only writes.
    created = updated = unchanged = 0
    for e in parsed:
        values: dict[str, Any] = {
            "name": e.name,
            "kind": e.kind,
            "hotspots": list(e.hotspots),
            "starts_at": e.starts_at,
            "ends_at": e.ends_at,
            "attendance": e.attendance,
            "source_url": e.source_url,
            "source_title": e.source_title,
        }
        row = stored.get(e.code)
        if row is None:
            created += 1
            session.add(CrowdEvent(code=e.code, updated_at=now, **values))
        elif all(getattr(row, k) == v for k, v in values.items()):
            unchanged += 1
        else:
            updated += 1
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="crowd.events.import",
        target_type="crowd_event",
        detail={
            "events": len(parsed),
            "codes": sorted(first)[:20],
            "created": created,
            "updated": updated,
        },
    )
    return CalendarReport(total=len(parsed), created=created, updated=updated, unchanged=unchanged)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def events_between(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    hotspots: Iterable[str] | None = None,
) -> list[CrowdEvent]:
    """Events overlapping ``[start, end)`` (aware datetimes), earliest first; with
    ``hotspots`` (codes), only events at one of them. For the forecaster (not used yet)
    and the API."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end must carry a time zone")
    query = (
        select(CrowdEvent)
        .where(
            CrowdEvent.starts_at < end.astimezone(UTC), CrowdEvent.ends_at > start.astimezone(UTC)
        )
        .order_by(CrowdEvent.starts_at, CrowdEvent.code)
    )
    rows = list(session.scalars(query))
    if hotspots is None:
        return rows
    wanted = set(hotspots)
    return [row for row in rows if wanted.intersection(row.hotspots or [])]
