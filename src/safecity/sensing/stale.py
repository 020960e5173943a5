"""Stale sensors → maintenance work orders, with storm control.

A sensor is stale when it is ``active`` and its ``last_seen_at`` is older than its type's
:data:`STALE_AFTER` — or, never seen, when both its ``installed_at`` and its registration
are (no install date: not commissioned, skipped). The ``sensing.stale_check`` job
(:mod:`safecity.sensing.jobs`) runs :func:`detect` every few minutes.

Storm control — mass silence is one incident, not thousands of orders:

1. by **gateway**: a gateway with at least :data:`GROUP_MIN` stale sensors, or at least
   :data:`GROUP_SHARE` of its active sensors (and at least :data:`SHARE_MIN`), is one
   incident;
2. by **area** (H3 cell at resolution :data:`AREA_RES`, ~5 km²): of the sensors left, an
   area with at least :data:`GROUP_MIN` stale ones is one incident;
3. every other stale sensor gets a work order of its own.

An incident is one alert (``alerts.service.raise_alert``, category ``sensor_outage``) and
one ``sensor_maintenance`` work order for the group. Every sensor covered by an order is
set to ``maintenance``, so the next run finds nothing new (and the order's dedup key, built
from the sensor or group and its last-seen time, makes a repeated run idempotent as well).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import h3
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.platform.db import utcnow
from safecity.security import audit
from safecity.sensing.models import SENSOR_TYPES, Sensor

__all__ = ["STALE_AFTER", "StaleReport", "detect", "find_stale"]

SERVICE_CODE: Final = "sensor_maintenance"
SOURCE: Final = "sensing.stale"
CATEGORY: Final = "sensor_outage"
TITLE: Final = "alerts.sensor_silent"
GROUP_MIN: Final = 20
GROUP_SHARE: Final = 0.5
SHARE_MIN: Final = 5
AREA_RES: Final = 7
MAX_LISTED: Final = 20

_M = timedelta(minutes=1)
STALE_AFTER: Final[dict[str, timedelta]] = {
    # Three missed heartbeats of the type's interval (heartbeat every 10 min for most).
    "door": 30 * _M,
    "intrusion": 30 * _M,
    "smoke": 30 * _M,
    "ebike_charger": 30 * _M,
    "water_meter": 3 * 60 * _M,  # meters report hourly
    "power_meter": 3 * 60 * _M,
    "camera_detector": 15 * _M,
    "pedestrian_crossing": 15 * _M,
    "noise_meter": 30 * _M,
    "tunnel_light": 30 * _M,
    "parking": 60 * _M,
    "report_terminal": 24 * 60 * _M,
}
assert set(STALE_AFTER) == set(SENSOR_TYPES), "a sensor type has no heartbeat interval"


@dataclass(frozen=True)
class StaleSensor:
    id: str
    type: str
    lat: float
    lng: float
    h3_cell: str
    org_id: str | None
    gateway_id: str | None
    seen: datetime


@dataclass
class StaleReport:
    stale: int = 0
    incidents: list[dict[str, Any]] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    """Work order ids opened (groups and single sensors)."""
    alerts: list[str] = field(default_factory=list)


def find_stale(session: Session, *, now: datetime) -> list[StaleSensor]:
    """Active sensors silent for longer than their type allows (one query per type)."""
    found: list[StaleSensor] = []
    for type_, after in STALE_AFTER.items():
        cutoff = now - after
        rows = session.execute(
            select(
                Sensor.id,
                Sensor.type,
                Sensor.lat,
                Sensor.lng,
                Sensor.h3_cell,
                Sensor.org_id,
                Sensor.gateway_id,
                Sensor.last_seen_at,
                Sensor.installed_at,
            ).where(
                Sensor.status == "active",
                Sensor.type == type_,
                or_(
                    Sensor.last_seen_at < cutoff,
                    # never seen: silent since installed, and registered long enough ago
                    # (a sensor imported a minute ago with an old install date is not
                    # stale yet: it may not have been switched over to us)
                    and_(
                        Sensor.last_seen_at.is_(None),
                        Sensor.installed_at < cutoff,
                        Sensor.created_at < cutoff,
                    ),
                ),
            )
        ).all()
        for r in rows:
            at = r[7] or r[8]
            if at is not None:  # the query excludes rows with neither; keeps mypy sure
                found.append(StaleSensor(r[0], r[1], r[2], r[3], r[4], r[5], r[6], at))
    return found


def _open_order(session: Session, **kwargs: Any) -> str:
    """The one call into the dispatch domain (``dispatch.service.open_work_order``)."""
    from safecity.dispatch import service as dispatch

    order = dispatch.open_work_order(
        session, service_code=SERVICE_CODE, source=SOURCE, actor_id=audit.SYSTEM.id, **kwargs
    )
    return str(order.id)


def _active_behind(session: Session, gateways: list[str]) -> dict[str, int]:
    if not gateways:
        return {}
    rows = session.execute(
        select(Sensor.gateway_id, func.count())
        .where(Sensor.gateway_id.in_(gateways), Sensor.status == "active")
        .group_by(Sensor.gateway_id)
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def _incident(
    session: Session, *, kind: str, key: str, members: list[StaleSensor], total: int, now: datetime
) -> tuple[str, str]:
    lat = sum(s.lat for s in members) / len(members)
    lng = sum(s.lng for s in members) / len(members)
    since = min(s.seen for s in members)
    newest = max(s.seen for s in members)
    detail = {
        "group": kind,
        "key": key,
        "stale": len(members),
        "total": total,
        "since": since.isoformat(),
        "sensor_ids": sorted(s.id for s in members)[:MAX_LISTED],
    }
    org_ids = {s.org_id for s in members if s.org_id}
    org_id = org_ids.pop() if len(org_ids) == 1 else None
    alert = alerts.raise_alert(
        session,
        source=SOURCE,
        category=CATEGORY,
        severity="high",
        title_key=TITLE,
        lat=lat,
        lng=lng,
        dedup_key=f"{CATEGORY}:{kind}:{key}"[:200],
        occurred_at=now,
        detail=detail,
        org_id=org_id,
        cooldown=timedelta(hours=12),
    )
    what = "gateway" if kind == "gateway" else "area"
    order = _open_order(
        session,
        description=(
            f"{len(members)} of {total} sensors silent ({what} {key}) since "
            f"{since:%Y-%m-%d %H:%M} UTC; check the {what}'s power and uplink first."
        ),
        lat=lat,
        lng=lng,
        source_ref=f"{kind}:{key}"[:200],
        org_id=org_id,
        dedup_key=f"{SOURCE}:{kind}:{key}:{int(newest.timestamp())}"[:200],
        detail={**detail, "alert_id": alert.id},
    )
    return alert.id, order


def detect(session: Session, *, now: datetime | None = None) -> StaleReport:
    """Find stale sensors, open incidents and orders, set them to ``maintenance``."""
    now = now or utcnow()
    stale = find_stale(session, now=now)
    report = StaleReport(stale=len(stale))
    if not stale:
        return report
    covered: list[str] = []
    by_gateway: dict[str, list[StaleSensor]] = defaultdict(list)
    for s in stale:
        if s.gateway_id:
            by_gateway[s.gateway_id].append(s)
    totals = _active_behind(session, sorted(by_gateway))
    left = stale
    for gateway, members in sorted(by_gateway.items()):
        total = totals.get(gateway, len(members))
        share = len(members) / total if total else 1.0
        if len(members) >= GROUP_MIN or (len(members) >= SHARE_MIN and share >= GROUP_SHARE):
            alert_id, order = _incident(
                session, kind="gateway", key=gateway, members=members, total=total, now=now
            )
            report.incidents.append({"group": "gateway", "key": gateway, "stale": len(members)})
            report.alerts.append(alert_id)
            report.orders.append(order)
            ids = {s.id for s in members}
            covered.extend(ids)
            left = [s for s in left if s.id not in ids]
    by_area: dict[str, list[StaleSensor]] = defaultdict(list)
    for s in left:
        by_area[h3.cell_to_parent(s.h3_cell, AREA_RES)].append(s)
    for area, members in sorted(by_area.items()):
        if len(members) >= GROUP_MIN:
            alert_id, order = _incident(
                session, kind="area", key=area, members=members, total=len(members), now=now
            )
            report.incidents.append({"group": "area", "key": area, "stale": len(members)})
            report.alerts.append(alert_id)
            report.orders.append(order)
            ids = {s.id for s in members}
            covered.extend(ids)
            left = [s for s in left if s.id not in ids]
    for s in left:
        report.orders.append(
            _open_order(
                session,
                description=(f"Sensor {s.id} ({s.type}) silent since {s.seen:%Y-%m-%d %H:%M} UTC."),
                lat=s.lat,
                lng=s.lng,
                source_ref=f"sensor:{s.id}",
                org_id=s.org_id,
                dedup_key=f"{SOURCE}:{s.id}:{int(s.seen.timestamp())}"[:200],
                detail={"sensor_id": s.id, "type": s.type, "last_seen_at": s.seen.isoformat()},
            )
        )
        covered.append(s.id)
    for i in range(0, len(covered), 500):
        session.execute(
            update(Sensor)
            .where(Sensor.id.in_(covered[i : i + 500]), Sensor.status == "active")
            .values(status="maintenance")
        )
    audit.record(
        session,
        principal=audit.SYSTEM,
        action="sensing.stale.detect",
        target_type="sensor",
        detail={
            "stale": report.stale,
            "incidents": len(report.incidents),
            "orders": len(report.orders),
        },
    )
    return report
