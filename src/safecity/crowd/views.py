"""What the crowd console shows about forecasts: the data behind the forecast pages
(:mod:`safecity.crowd.pages_forecast`), read from the tables in a few queries.

* :func:`hotspot_series`: one hotspot's last 48 hours of counts (gaps and outages kept as
  such: a missing hour is ``None``, never 0), the t+1 forecasts made an hour before each of
  those hours (the band an officer could have acted on), the latest run's 1–3 h forecasts,
  its thresholds and the risks raised;
* :func:`day_series`: the same for every hotspot in scope over one local day, with the
  risks of that day and their lead time;
* :func:`forecast_map`: per active hotspot, the current forecast at one horizon and its
  load (the interval's upper bound over the warn threshold) as a colour;
* :func:`risk_page`: the risk list, paginated with :data:`forecast_api.RISK_LIST`.

Every read is scoped the way :mod:`safecity.crowd.hotspots` scopes hotspots
(``rbac.scope_clause`` on the hotspot's org): a hotspot outside the caller's subtree is
404 and its forecasts and risks never appear. Counts, forecasts and risks are aggregates
about places (no personal data), so reads are not audited, as in ``hotspots.py``.

Lead time of a risk = hours between its forecast's origin (the last counted hour) and the
target hour, i.e. the forecast's horizon.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from safecity.crowd import hotspots
from safecity.crowd.forecast_api import RISK_LIST
from safecity.crowd.models import CrowdCount, CrowdForecast, CrowdHotspot, CrowdRisk
from safecity.platform.errors import InvalidInput
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.security.rbac import Principal, scope_clause

HOUR = timedelta(hours=1)
HISTORY_HOURS = 48
HORIZONS = (1, 2, 3)
DAY_TZ = "Asia/Shanghai"
"""The zone of the event-day view's default date (the city's)."""
MAP_STALE_HOURS = 2
"""A map forecast whose origin is older than the last complete hour by more than this is
not current (the hourly job missed runs): the hotspot is drawn grey, not with old news."""
GREEN_BELOW = 0.8
AMBER_BELOW = 1.0
"""Map colours by load = upper bound / warn threshold: green < 0.8 ≤ amber < 1 ≤ red."""
MAX_DAY_HOTSPOTS = 200


def floor_hour(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def load_colour(ratio: float | None) -> str:
    """``green`` / ``amber`` / ``red`` by load, ``grey`` when there is no forecast."""
    if ratio is None:
        return "grey"
    if ratio < GREEN_BELOW:
        return "green"
    if ratio < AMBER_BELOW:
        return "amber"
    return "red"


def parse_day(raw: str | None, *, now: datetime, tz: str = DAY_TZ) -> date:
    """``YYYY-MM-DD`` (default: today in ``tz``); anything else is :class:`InvalidInput`."""
    if raw is None or not raw.strip():
        return now.astimezone(zoneinfo.ZoneInfo(tz)).date()
    text = raw.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise InvalidInput("date must be YYYY-MM-DD", date=text[:32])
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("date must be a real day (YYYY-MM-DD)", date=text[:32]) from None


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC start and end of a local day (23 or 25 hours on a daylight-saving change)."""
    zone = zoneinfo.ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class HourCount:
    hour: datetime
    """UTC start of the hour."""
    count: float | None
    """``None`` for a gap, an outage or an hour with no row: not a zero."""
    status: str
    """``ok`` / ``partial`` / ``gap`` / ``outage`` / ``missing`` (no row at all)."""


@dataclass(frozen=True)
class ForecastPoint:
    origin: datetime
    target: datetime
    horizon: int
    point: float
    lower: float
    upper: float
    level: float


@dataclass(frozen=True)
class RiskRow:
    id: str
    code: str
    name_zh: str
    name_en: str
    timezone: str
    target: datetime
    level: str
    expected: float
    threshold: float
    alert_id: str | None
    advice: dict[str, Any]
    created_at: datetime
    origin: datetime | None
    lead_hours: int | None
    """Hours between the forecast's origin and the target hour (``None``: forecast gone)."""


@dataclass
class Series:
    """One hotspot over a window: counts, t+1 forecasts, the latest run, limits, risks."""

    hotspot: CrowdHotspot
    start: datetime
    end: datetime
    """Counts cover ``[start, end)``; forecasts ahead may reach past ``end``."""
    warn: float
    critical: float
    counts: list[HourCount] = field(default_factory=list)
    past: list[ForecastPoint] = field(default_factory=list)
    """t+1 forecasts whose target lies in ``[start, end)`` (made an hour before)."""
    ahead: list[ForecastPoint] = field(default_factory=list)
    """The latest run's forecasts (1–3 h) whose target is at or after ``end``."""
    risks: list[RiskRow] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[datetime, HourCount | None, ForecastPoint | None]]:
        """Per hour, oldest first: the count (``None`` past ``end``) and the forecast shown
        (t+1 inside the window, the latest run's beyond) — the chart's table."""
        by_target = {f.target: f for f in self.past} | {f.target: f for f in self.ahead}
        out: list[tuple[datetime, HourCount | None, ForecastPoint | None]] = [
            (c.hour, c, by_target.get(c.hour)) for c in self.counts
        ]
        out.extend((f.target, None, f) for f in self.ahead if f.target >= self.end)
        return out


def _point(f: CrowdForecast) -> ForecastPoint:
    return ForecastPoint(
        origin=f.origin,
        target=f.target,
        horizon=f.horizon,
        point=float(f.point),
        lower=float(f.lower),
        upper=float(f.upper),
        level=float(f.level),
    )


def _counts(
    session: Session, hotspot_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, dict[datetime, CrowdCount]]:
    out: dict[str, dict[datetime, CrowdCount]] = {h: {} for h in hotspot_ids}
    if not hotspot_ids:
        return out
    rows = session.scalars(
        select(CrowdCount).where(
            CrowdCount.hotspot_id.in_(list(hotspot_ids)),
            CrowdCount.hour >= start,
            CrowdCount.hour < end,
        )
    )
    for row in rows:
        out[row.hotspot_id][floor_hour(row.hour)] = row
    return out


def _hour_counts(
    stored: dict[datetime, CrowdCount], start: datetime, end: datetime
) -> list[HourCount]:
    out: list[HourCount] = []
    hour = start
    while hour < end:
        row = stored.get(hour)
        if row is None:
            out.append(HourCount(hour=hour, count=None, status="missing"))
        else:
            usable = row.status in ("ok", "partial") and row.count is not None
            count = float(row.count) if usable and row.count is not None else None
            out.append(HourCount(hour=hour, count=count, status=row.status))
        hour += HOUR
    return out


def _past_forecasts(
    session: Session, hotspot_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[ForecastPoint]]:
    out: dict[str, list[ForecastPoint]] = {h: [] for h in hotspot_ids}
    if not hotspot_ids:
        return out
    rows = session.scalars(
        select(CrowdForecast)
        .where(
            CrowdForecast.hotspot_id.in_(list(hotspot_ids)),
            CrowdForecast.horizon == 1,
            CrowdForecast.target >= start,
            CrowdForecast.target < end,
        )
        .order_by(CrowdForecast.target, CrowdForecast.origin)
    )
    for f in rows:
        out[f.hotspot_id].append(_point(f))
    return out


def _latest_run(session: Session, hotspot: CrowdHotspot, since: datetime) -> list[ForecastPoint]:
    """The forecasts of the hotspot's newest origin (if at or after ``since``)."""
    origin = session.scalar(
        select(func.max(CrowdForecast.origin)).where(CrowdForecast.hotspot_id == hotspot.id)
    )
    if origin is None or floor_hour(origin) < since:
        return []
    rows = session.scalars(
        select(CrowdForecast)
        .where(CrowdForecast.hotspot_id == hotspot.id, CrowdForecast.origin == origin)
        .order_by(CrowdForecast.horizon)
    )
    return [_point(f) for f in rows]


def _risk_query(principal: Principal) -> Select[Any]:
    return cast(
        "Select[Any]",
        select(CrowdRisk, CrowdHotspot, CrowdForecast.origin)
        .join(CrowdHotspot, CrowdHotspot.id == CrowdRisk.hotspot_id)
        .outerjoin(CrowdForecast, CrowdForecast.id == CrowdRisk.forecast_id)
        .where(scope_clause(principal, CrowdHotspot.org_id)),
    )


def _risk_row(row: Any) -> RiskRow:
    risk, hotspot, origin = row
    lead = None if origin is None else round((risk.target - origin) / HOUR)
    return RiskRow(
        id=risk.id,
        code=hotspot.code,
        name_zh=hotspot.name_zh,
        name_en=hotspot.name_en,
        timezone=hotspot.timezone,
        target=risk.target,
        level=risk.level,
        expected=float(risk.expected),
        threshold=float(risk.threshold),
        alert_id=risk.alert_id,
        advice=dict(risk.advice or {}),
        created_at=risk.created_at,
        origin=origin,
        lead_hours=lead,
    )


def _risks(
    session: Session,
    principal: Principal,
    windows: Iterable[tuple[str, datetime, datetime]],
) -> dict[str, list[RiskRow]]:
    """Risks of each hotspot id whose target lies in its window, by target."""
    windows = list(windows)
    out: dict[str, list[RiskRow]] = {h: [] for h, _, _ in windows}
    if not windows:
        return out
    lo = min(s for _, s, _ in windows)
    hi = max(e for _, _, e in windows)
    bounds = {h: (s, e) for h, s, e in windows}
    query = _risk_query(principal).where(
        CrowdRisk.hotspot_id.in_(sorted(bounds)), CrowdRisk.target >= lo, CrowdRisk.target < hi
    )
    for row in session.execute(query.order_by(CrowdRisk.target, CrowdHotspot.code)):
        item = _risk_row(row)
        start, end = bounds[row[1].id]
        if start <= floor_hour(item.target) < end:
            out[row[1].id].append(item)
    return out


# --------------------------------------------------------------------------- services


def hotspot_series(
    *, session: Session, principal: Principal, code: str, now: datetime, hours: int = HISTORY_HOURS
) -> Series:
    """One hotspot (404 outside the scope) over the ``hours`` complete hours before ``now``
    and the latest run's forecasts ahead."""
    hotspot = hotspots.get(session=session, principal=principal, code=code)
    end = floor_hour(now)
    start = end - hours * HOUR
    limits = hotspots.thresholds(hotspot)
    counts = _counts(session, [hotspot.id], start, end)[hotspot.id]
    ahead = [f for f in _latest_run(session, hotspot, start) if f.target >= end]
    risk_end = max([end, *(f.target + HOUR for f in ahead)])
    return Series(
        hotspot=hotspot,
        start=start,
        end=end,
        warn=limits.warn_people,
        critical=limits.critical_people,
        counts=_hour_counts(counts, start, end),
        past=_past_forecasts(session, [hotspot.id], start, end)[hotspot.id],
        ahead=ahead,
        risks=_risks(session, principal, [(hotspot.id, start, risk_end)])[hotspot.id],
    )


@dataclass
class Day:
    day: date
    series: list[Series]
    risks: list[RiskRow]
    """Every risk of the day in scope, by target hour."""


def day_series(*, session: Session, principal: Principal, day: date, now: datetime) -> Day:
    """Every active hotspot in scope over one local day (each in its own time zone): the
    counts so far, the t+1 forecasts of the day's hours (and, today, the latest run's
    hours ahead), and the day's risks."""
    spots = hotspots.all_in_scope(session=session, principal=principal, active_only=True)
    spots = spots[:MAX_DAY_HOTSPOTS]
    bounds = {h.id: local_day_bounds(day, h.timezone) for h in spots}
    if not spots:
        return Day(day=day, series=[], risks=[])
    lo = min(s for s, _ in bounds.values())
    hi = max(e for _, e in bounds.values())
    ids = [h.id for h in spots]
    counts = _counts(session, ids, lo, hi)
    past = _past_forecasts(session, ids, lo, hi)
    risks = _risks(session, principal, [(h.id, *bounds[h.id]) for h in spots])
    current = floor_hour(now)
    out: list[Series] = []
    for h in spots:
        start, end = bounds[h.id]
        counted_end = min(end, max(start, current))
        limits = hotspots.thresholds(h)
        ahead: list[ForecastPoint] = []
        if start <= current < end:
            ahead = [f for f in _latest_run(session, h, start) if counted_end <= f.target < end]
        out.append(
            Series(
                hotspot=h,
                start=start,
                end=counted_end,
                warn=limits.warn_people,
                critical=limits.critical_people,
                counts=_hour_counts(counts[h.id], start, counted_end),
                past=[f for f in past[h.id] if start <= f.target < end],
                ahead=ahead,
                risks=risks[h.id],
            )
        )
    every = sorted((r for rows in risks.values() for r in rows), key=lambda r: (r.target, r.code))
    return Day(day=day, series=out, risks=every)


@dataclass(frozen=True)
class MapEntry:
    hotspot: CrowdHotspot
    warn: float
    critical: float
    forecast: ForecastPoint | None

    @property
    def ratio(self) -> float | None:
        if self.forecast is None or self.warn <= 0:
            return None
        return self.forecast.upper / self.warn

    @property
    def colour(self) -> str:
        return load_colour(self.ratio)

    def feature(self) -> dict[str, Any]:
        f = self.forecast
        ratio = self.ratio
        return {
            "type": "Feature",
            "geometry": self.hotspot.geometry,
            "properties": {
                "code": self.hotspot.code,
                "name_zh": self.hotspot.name_zh,
                "name_en": self.hotspot.name_en,
                "kind": "hotspot",
                "horizon": f.horizon if f else None,
                "origin": f.origin.isoformat() if f else None,
                "target": f.target.isoformat() if f else None,
                "point": round(f.point, 1) if f else None,
                "lower": round(f.lower, 1) if f else None,
                "upper": round(f.upper, 1) if f else None,
                "warn_people": round(self.warn, 1),
                "critical_people": round(self.critical, 1),
                "ratio": None if ratio is None else round(ratio, 3),
                "colour": self.colour,
            },
        }


def forecast_map(
    *, session: Session, principal: Principal, horizon: int, now: datetime
) -> list[MapEntry]:
    """Per active hotspot in scope, the newest forecast at ``horizon`` if it is current
    (origin within :data:`MAP_STALE_HOURS` of the last complete hour)."""
    if horizon not in HORIZONS:
        raise InvalidInput(f"horizon must be one of {', '.join(map(str, HORIZONS))}")
    spots = hotspots.all_in_scope(session=session, principal=principal, active_only=True)
    since = floor_hour(now) - HOUR - MAP_STALE_HOURS * HOUR
    latest: dict[str, CrowdForecast] = {}
    if spots:
        newest = (
            select(CrowdForecast.hotspot_id, func.max(CrowdForecast.origin).label("origin"))
            .where(
                CrowdForecast.hotspot_id.in_([h.id for h in spots]),
                CrowdForecast.horizon == horizon,
                CrowdForecast.origin >= since,
            )
            .group_by(CrowdForecast.hotspot_id)
            .subquery()
        )
        rows = session.scalars(
            select(CrowdForecast)
            .join(
                newest,
                (newest.c.hotspot_id == CrowdForecast.hotspot_id)
                & (newest.c.origin == CrowdForecast.origin),
            )
            .where(CrowdForecast.horizon == horizon)
        )
        latest = {f.hotspot_id: f for f in rows}
    out: list[MapEntry] = []
    for h in spots:
        limits = hotspots.thresholds(h)
        f = latest.get(h.id)
        out.append(
            MapEntry(
                hotspot=h,
                warn=limits.warn_people,
                critical=limits.critical_people,
                forecast=_point(f) if f is not None else None,
            )
        )
    return out


def risk_page(*, session: Session, principal: Principal, params: ListParams) -> Page[RiskRow]:
    """A page of the risks in scope (``RISK_LIST``'s sort and filters: level, hotspot)."""
    if params.spec is not RISK_LIST:
        raise InvalidInput("risk list parameters expected")
    return paginate(
        session=session,
        query=_risk_query(principal),
        params=params,
        item=_risk_row,
        scalars=False,
    )
