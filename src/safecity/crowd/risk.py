"""Risk alerts from the forecasts: when a forecast's upper bound crosses a hotspot's limit,
alert the hotspot's station hours ahead, with advice it can act on.

Thresholds are in people (:func:`safecity.crowd.hotspots.thresholds`): *warn* = min(warn
density × area, 80 % of capacity), *critical* = min(critical density × area, capacity). The
**upper** end of the calibrated interval is compared with them (the issue's rule: a 90 %
band's top crossing the limit is a real chance of crossing it), not the point forecast.

One alert per hotspot and target hour: :func:`assess` raises it through
:func:`safecity.alerts.service.raise_alert` (source ``crowd``, category ``crowd_risk``,
severity ``medium`` for warn and ``high`` for critical, routed to the station whose area
holds the hotspot, else the hotspot's org) and stores a :class:`CrowdRisk` with the advice:

* ``meter_entrances``: the hotspot's entrances;
* ``divert_to``: neighbouring hotspots whose own forecast upper bound at that hour is below
  their warn threshold, with the room left (people), most room first; a neighbour with no
  recent counts or no forecast is not offered (its load is unknown);
* ``close_exits``: on critical, the exits of the hotspot's transit stations;
* ``hours_ahead``: the forecast's horizon (the target hour ends that many hours after the
  last counted hour).

The next hours' forecasts of the same target hour raise nothing new, except an **upgrade**
from warn to critical: the risk row is updated (level, bound, advice with exits) and a
critical alert is raised with the dedup key suffixed ``:critical``; the same key would fold
into the open warn alert and keep its medium severity, so an officer would not see the
escalation. The warn alert stays open beside it.

A hotspot whose latest counts are gaps (no count in the last :data:`RECENT_HOURS` complete
hours) is never alerted on: it is listed as "no data" instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.crowd.hotspots import neighbours_of, thresholds
from safecity.crowd.models import CrowdCount, CrowdForecast, CrowdHotspot, CrowdRisk
from safecity.platform.db import new_id
from safecity.security import audit

log = logging.getLogger("safecity.crowd.risk")

RECENT_HOURS = 2
"""A hotspot with no count in this many last complete hours has "no data": no forecast and
no alert (one late or missing hour is tolerated)."""
SOURCE = "crowd"
CATEGORY = "crowd_risk"
TITLE_KEY = "crowd.alert.risk"
SEVERITY = {"warn": "medium", "critical": "high"}
RISK_RECORD = "crowd_risk"
MAX_LIST = 20
"""Items of each advice list copied into the alert's detail (the detail is at most 4 KiB)."""


def point_of(geometry: dict[str, Any]) -> tuple[float, float]:
    """(lat, lng) of the centroid of the polygon's first (outer) ring."""
    coords = geometry.get("coordinates") or []
    ring = coords[0][0] if geometry.get("type") == "MultiPolygon" else coords[0]
    pts = [(float(p[0]), float(p[1])) for p in ring]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area) < 1e-18:  # degenerate ring: the mean of its vertices
        return sum(y for _, y in pts) / len(pts), sum(x for x, _ in pts) / len(pts)
    return cy / (3 * area), cx / (3 * area)


def with_recent_counts(session: Session, hotspot_ids: Iterable[str], origin: datetime) -> set[str]:
    """Hotspots (ids) with a count in the ``RECENT_HOURS`` hours ending with ``origin``."""
    ids = sorted(set(hotspot_ids))
    if not ids:
        return set()
    since = origin - timedelta(hours=RECENT_HOURS - 1)
    return set(
        session.scalars(
            select(CrowdCount.hotspot_id)
            .where(
                CrowdCount.hotspot_id.in_(ids),
                CrowdCount.hour >= since,
                CrowdCount.hour <= origin,
                CrowdCount.status.in_(("ok", "partial")),
                CrowdCount.count.is_not(None),
            )
            .distinct()
        )
    )


def level_of(upper: float, warn: float, critical: float) -> str | None:
    if upper >= critical:
        return "critical"
    if upper >= warn:
        return "warn"
    return None


@dataclass
class Assessment:
    risks: list[CrowdRisk] = field(default_factory=list)
    """Risks raised or upgraded now (each with a new alert)."""
    no_data: list[str] = field(default_factory=list)
    """Hotspots (codes) at risk by the forecast but with no recent counts: not alerted."""


def _neighbour_upper(
    session: Session, hotspot_id: str, target: datetime, given: dict[tuple[str, datetime], float]
) -> float | None:
    """The neighbour's forecast upper bound for ``target``: from this run, else the latest
    stored forecast of that hour."""
    if (hotspot_id, target) in given:
        return given[(hotspot_id, target)]
    latest = (
        select(func.max(CrowdForecast.origin))
        .where(CrowdForecast.hotspot_id == hotspot_id, CrowdForecast.target == target)
        .scalar_subquery()
    )
    return session.scalar(
        select(func.max(CrowdForecast.upper)).where(
            CrowdForecast.hotspot_id == hotspot_id,
            CrowdForecast.target == target,
            CrowdForecast.origin == latest,
        )
    )


def advice_for(
    session: Session,
    *,
    hotspot: CrowdHotspot,
    level: str,
    forecast: CrowdForecast,
    given: dict[tuple[str, datetime], float],
) -> dict[str, Any]:
    divert: list[dict[str, Any]] = []
    neighbours = [n for n in neighbours_of(session, hotspot) if n.id != hotspot.id]
    counted = with_recent_counts(session, [n.id for n in neighbours], forecast.origin)
    for n in neighbours:
        if n.id not in counted:
            continue
        upper = _neighbour_upper(session, n.id, forecast.target, given)
        warn = thresholds(n).warn_people
        if upper is None or upper >= warn:
            continue
        divert.append(
            {
                "code": n.code,
                "name_zh": n.name_zh,
                "name_en": n.name_en,
                "headroom": int(warn - upper),
                "upper": round(upper),
            }
        )
    divert.sort(key=lambda d: (-d["headroom"], d["code"]))
    exits: list[dict[str, Any]] = []
    if level == "critical":
        for station in hotspot.transit or []:
            names = [str(e) for e in station.get("exits") or []]
            if names:
                exits.append({"station": str(station.get("name", "")), "exits": names})
    return {
        "meter_entrances": list(hotspot.entrances or []),
        "divert_to": divert,
        "close_exits": exits,
        "hours_ahead": forecast.horizon,
    }


def _alert_detail(
    hotspot: CrowdHotspot, risk: CrowdRisk, forecast: CrowdForecast
) -> dict[str, Any]:
    """The alert carries codes and numbers (flat, as raise_alert requires)."""
    advice = risk.advice
    return {
        "hotspot": hotspot.code,
        "target": risk.target.isoformat(),
        "level": risk.level,
        "expected": round(risk.expected),
        "threshold": round(risk.threshold),
        "hours_ahead": advice["hours_ahead"],
        "model_id": forecast.model_id,
        "meter_entrances": [str(e)[:60] for e in advice["meter_entrances"][:MAX_LIST]],
        "divert_to": [d["code"] for d in advice["divert_to"][:MAX_LIST]],
        "close_exits": [
            f"{s['station']} {e}"[:60] for s in advice["close_exits"] for e in s["exits"]
        ][:MAX_LIST],
    }


def assess_forecasts(
    session: Session, *, forecasts: Sequence[CrowdForecast], now: datetime
) -> Assessment:
    """Raise the risk alerts these forecasts call for (see the module docstring)."""
    out = Assessment()
    given: dict[tuple[str, datetime], float] = {}
    worst: dict[tuple[str, datetime], CrowdForecast] = {}
    for f in forecasts:
        key = (f.hotspot_id, f.target)
        given[key] = max(given.get(key, f.upper), f.upper)
        if key not in worst or f.upper > worst[key].upper:
            worst[key] = f
    hotspots = {
        h.id: h
        for h in session.scalars(
            select(CrowdHotspot).where(CrowdHotspot.id.in_(sorted({k[0] for k in worst})))
        )
    }
    crossing: list[tuple[CrowdHotspot, CrowdForecast, str, float]] = []
    for (hotspot_id, _), f in sorted(worst.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        hotspot = hotspots.get(hotspot_id)
        if hotspot is None or not hotspot.active:
            continue
        limits = thresholds(hotspot)
        warn, critical = limits.warn_people, limits.critical_people
        if warn <= 0:
            log.warning("hotspot %s has no usable threshold; not assessed", hotspot.code)
            continue
        level = level_of(f.upper, warn, critical)
        if level is not None:
            crossing.append((hotspot, f, level, warn if level == "warn" else critical))
    if not crossing:
        return out
    counted: set[str] = set()
    for origin in {f.origin for _, f, _, _ in crossing}:
        ids = [h.id for h, f, _, _ in crossing if f.origin == origin]
        counted |= with_recent_counts(session, ids, origin)
    for hotspot, f, level, threshold in crossing:
        if hotspot.id not in counted:
            if hotspot.code not in out.no_data:
                out.no_data.append(hotspot.code)
            log.info("hotspot %s: forecast above %s but no data; not alerted", hotspot.code, level)
            continue
        risk = session.scalar(
            select(CrowdRisk).where(
                CrowdRisk.hotspot_id == hotspot.id, CrowdRisk.target == f.target
            )
        )
        if risk is not None and (risk.level == "critical" or risk.level == level):
            continue  # already alerted for this hour at this level or above
        advice = advice_for(session, hotspot=hotspot, level=level, forecast=f, given=given)
        upgrade = risk is not None
        if risk is None:
            risk = CrowdRisk(id=new_id(), hotspot_id=hotspot.id, target=f.target, created_at=now)
            session.add(risk)
        risk.forecast_id = f.id
        risk.level = level
        risk.expected = float(f.upper)
        risk.threshold = float(threshold)
        risk.advice = advice
        lat, lng = point_of(hotspot.geometry)
        dedup = f"crowd-risk:{hotspot.id}:{f.target.isoformat()}"
        alert = alerts.raise_alert(
            session,
            source=SOURCE,
            category=CATEGORY,
            severity=SEVERITY[level],
            title_key=TITLE_KEY,
            lat=lat,
            lng=lng,
            dedup_key=dedup + (":critical" if level == "critical" else ""),
            occurred_at=now,
            detail=_alert_detail(hotspot, risk, f),
            org_id=hotspot.org_id,
        )
        risk.alert_id = alert.id
        session.flush()
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="crowd.risk.upgrade" if upgrade else "crowd.risk.raise",
            target_type=RISK_RECORD,
            target_id=risk.id,
            detail={
                "hotspot": hotspot.code,
                "target": f.target.isoformat(),
                "level": level,
                "alert": alert.id,
            },
        )
        out.risks.append(risk)
    return out


def assess(
    session: Session, *, forecasts: Sequence[CrowdForecast], now: datetime
) -> list[CrowdRisk]:
    """The risks raised or upgraded by ``forecasts`` (see :func:`assess_forecasts`)."""
    return assess_forecasts(session, forecasts=forecasts, now=now).risks
