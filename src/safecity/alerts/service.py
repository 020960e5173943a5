"""Alerts: raising (dedup, cooldown, routing, SLA), reading in scope, working them.

Every domain raises its alerts through :func:`raise_alert`::

    from safecity.alerts import service as alerts

    alerts.raise_alert(
        session,
        source="sensing.rules",           # who raises it (a domain or a rule engine)
        category="ebike_indoor_charging",  # what kind of alert
        severity="high",                   # critical | high | medium | low
        title_key="alerts.title.ebike_indoor_charging",  # console message key
        lat=31.23, lng=121.47,             # WGS84 (convert first: platform.geo.to_wgs84)
        dedup_key="rule:ebike-night:building:B12",  # rule + entity
        occurred_at=event_time,
        detail={"sensor_id": "S-1", "rule": "ebike-night"},  # ids and codes only
    )

A burst of signals with the same (category, dedup key) folds into one open alert whose
``count`` and ``last_seen_at`` grow, until either the alert is closed (resolved or false
alarm) or no signal came for ``cooldown`` (default :data:`DEFAULT_COOLDOWN`): then the next
signal opens a new alert. The alert goes to the station whose area contains the point
(else the ``org_id`` given, else the city). All writes (alert, timeline, audit, outbox
event) happen in the caller's transaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.alerts import events
from safecity.alerts.models import OPEN_SLOT, SEVERITIES, Alert
from safecity.alerts.schemas import AlertDetail, AlertRead
from safecity.alerts.workflow import ALERT, OPEN_STATES, UNACKNOWLEDGED
from safecity.orgs import service as orgs
from safecity.platform import geo, outbox, timeline, workflow
from safecity.platform.db import is_postgres, new_id, utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

DEFAULT_COOLDOWN = timedelta(minutes=10)
SLA: dict[str, timedelta] = {
    "critical": timedelta(minutes=5),
    "high": timedelta(minutes=15),
    "medium": timedelta(hours=1),
    "low": timedelta(hours=4),
}
ESCALATION_BATCH = 500
MAX_DETAIL_BYTES = 4096

_CODE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,119}$")
_DEDUP = re.compile(r"^[\x21-\x7e]{1,200}$")
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SCALARS = (str, int, float, bool, type(None))


def _check_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """``detail`` holds ids and codes: flat keys, scalar (or list of scalar) values."""
    if detail is None:
        return {}
    if not isinstance(detail, dict):
        raise InvalidInput("alert detail must be an object")
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            raise InvalidInput(f"alert detail key {str(key)[:64]!r} is not lower_snake_case")
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, _SCALARS) for v in values):
            raise InvalidInput(f"alert detail {key!r} must be ids or codes (scalars)")
    if len(json.dumps(detail, ensure_ascii=False).encode()) > MAX_DETAIL_BYTES:
        raise InvalidInput(f"alert detail is larger than {MAX_DETAIL_BYTES} bytes")
    return dict(detail)


def _iso(value: datetime) -> str:
    return value.isoformat()


def route(session: Session, *, lat: float, lng: float, org_id: str | None = None) -> str:
    """The org an alert at this point belongs to: the station whose area contains it,
    else ``org_id`` (which must exist), else the city."""
    station = orgs.org_for_point(session=session, lat=lat, lng=lng)
    if station is not None:
        return station.id
    if org_id is not None:
        try:
            return orgs.get(session=session, org_id=org_id).id
        except NotFound:
            raise InvalidInput(f"organisation {org_id[:32]!r} does not exist") from None
    cities, _ = orgs.list_orgs(session=session, kind="city", limit=1)
    if not cities:
        raise InvalidInput("no organisation to route the alert to: create the city first")
    return cities[0].id


def _collecting(session: Session, *, category: str, dedup_key: str) -> Alert | None:
    stmt = select(Alert).where(
        Alert.category == category,
        Alert.dedup_key == dedup_key,
        Alert.dedup_slot == OPEN_SLOT,
    )
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def _repeat(session: Session, alert: Alert, *, occurred_at: datetime, now: datetime) -> Alert:
    alert.count += 1
    if occurred_at > alert.last_seen_at:
        alert.last_seen_at = occurred_at
    alert.updated_at = now
    _emit_changed(session, alert, change="repeat")
    return alert


def raise_alert(
    session: Session,
    *,
    source: str,
    category: str,
    severity: str,
    title_key: str,
    lat: float,
    lng: float,
    dedup_key: str,
    occurred_at: datetime,
    detail: dict[str, Any] | None = None,
    org_id: str | None = None,
    cooldown: timedelta = DEFAULT_COOLDOWN,
    principal: Principal = audit.SYSTEM,
) -> Alert:
    """Open an alert, or fold this signal into the open one with the same key.

    Returns the alert (``count == 1`` when it was just opened). :class:`InvalidInput` for
    bad input; nothing is written then.
    """
    if not _CODE.match(source):
        raise InvalidInput("alert source must be a lower-case code of at most 64 characters")
    if not _CODE.match(category):
        raise InvalidInput("alert category must be a lower-case code of at most 64 characters")
    if severity not in SEVERITIES:
        raise InvalidInput(f"alert severity must be one of {', '.join(SEVERITIES)}")
    if not _KEY.match(title_key):
        raise InvalidInput("alert title_key must be a message key like alerts.title.fire")
    if not isinstance(dedup_key, str) or not _DEDUP.match(dedup_key):
        raise InvalidInput("alert dedup_key must be 1-200 printable ASCII characters")
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise InvalidInput("alert occurred_at must carry a time zone")
    if cooldown <= timedelta(0):
        raise InvalidInput("alert cooldown must be positive")
    geo.check_lng_lat(lng, lat)
    clean_detail = _check_detail(detail)
    now = utcnow()

    for attempt in (1, 2):
        existing = _collecting(session, category=category, dedup_key=dedup_key)
        if existing is not None:
            if occurred_at - existing.last_seen_at <= cooldown:
                return _repeat(session, existing, occurred_at=occurred_at, now=now)
            existing.dedup_slot = existing.id  # quiet for a cooldown: stop collecting
            existing.updated_at = now
            session.flush()
        alert = Alert(
            id=new_id(),
            source=source,
            category=category,
            severity=severity,
            title_key=title_key,
            lat=lat,
            lng=lng,
            h3_cell=geo.h3_cell(lat=lat, lng=lng),
            dedup_key=dedup_key,
            dedup_slot=OPEN_SLOT,
            detail=clean_detail,
            org_id=route(session, lat=lat, lng=lng, org_id=org_id),
            state=ALERT.initial,
            count=1,
            first_seen_at=occurred_at,
            last_seen_at=occurred_at,
            sla_due_at=now + SLA[severity],
            created_at=now,
            updated_at=now,
        )
        if is_postgres(session):
            try:
                with session.begin_nested():
                    session.add(alert)
                    session.flush()
            except IntegrityError:
                if attempt == 2:
                    raise
                continue  # another process opened it at the same moment: fold into it
        else:
            session.add(alert)
            session.flush()
        break
    workflow.start(session, machine=ALERT, record=alert, principal=principal)
    audit.record(
        session,
        principal=principal,
        action="alerts.raise",
        target_type="alert",
        target_id=alert.id,
        detail={"category": category, "severity": severity, "org": alert.org_id},
    )
    outbox.emit(
        session,
        type=events.RAISED,
        source=events.SOURCE,
        org_id=alert.org_id,
        payload={
            "alert_id": alert.id,
            "source": source,
            "category": category,
            "severity": severity,
            "title_key": title_key,
            "org_id": alert.org_id,
            "h3_cell": alert.h3_cell,
            "dedup_key": dedup_key,
            "occurred_at": _iso(occurred_at),
            "sla_due_at": _iso(alert.sla_due_at),
        },
    )
    return alert


# --------------------------------------------------------------------------- reads


def scoped_query(principal: Principal) -> Select[Any]:
    return select(Alert).where(rbac.scope_clause(principal, Alert.org_id))


def list_alerts(*, session: Session, principal: Principal, params: ListParams) -> Page[AlertRead]:
    return paginate(session=session, query=scoped_query(principal), params=params, item=AlertRead)


def get_alert(*, session: Session, principal: Principal, alert_id: str) -> Alert:
    """The alert, or :class:`NotFound` when it does not exist or is out of scope."""
    return rbac.get_in_scope(session, Alert, alert_id, principal, what="alert")


def allowed_transitions(*, alert: Alert, principal: Principal) -> list[str]:
    return [
        t.name
        for t in workflow.available_transitions(machine=ALERT, record=alert, principal=principal)
        if t.name != "escalate" or alert.state in UNACKNOWLEDGED
    ]


def detail(*, session: Session, principal: Principal, alert_id: str) -> AlertDetail:
    alert = get_alert(session=session, principal=principal, alert_id=alert_id)
    entries = timeline.list_for(session, record_type=ALERT.record_type, record_id=alert.id)
    return AlertDetail.model_validate(
        {
            **AlertRead.model_validate(alert).model_dump(),
            "timeline": [timeline.TimelineEntryRead.model_validate(e) for e in entries],
            "transitions": allowed_transitions(alert=alert, principal=principal),
        }
    )


def open_alerts(*, session: Session, principal: Principal, limit: int = 200) -> list[Alert]:
    """Open alerts in scope, most urgent first (for the officer terminal)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    rows = session.scalars(
        scoped_query(principal)
        .where(Alert.state.in_(OPEN_STATES))
        .order_by(Alert.updated_at.desc())
        .limit(limit)
    ).all()
    return sorted(rows, key=lambda a: (rank[a.severity], -a.updated_at.timestamp()))


def changed_since(
    *, session: Session, principal: Principal, since: datetime, limit: int = 200
) -> list[Alert]:
    """Alerts in scope changed at or after ``since``, oldest change first (for the stream)."""
    return list(
        session.scalars(
            scoped_query(principal)
            .where(Alert.updated_at >= since)
            .order_by(Alert.updated_at, Alert.id)
            .limit(limit)
        )
    )


# --------------------------------------------------------------------------- changes


def transition(
    *,
    session: Session,
    principal: Principal,
    alert_id: str,
    name: str,
    notes: str | None = None,
) -> Alert:
    """Apply a workflow transition (404 out of scope, 403, 409 illegal, 422 no notes)."""
    alert = get_alert(session=session, principal=principal, alert_id=alert_id)
    text = notes.strip() if notes and notes.strip() else None
    workflow.apply(
        session,
        machine=ALERT,
        record=alert,
        transition=name,
        principal=principal,
        note=text,
        fields={"notes": text},
    )
    _emit_changed(session, alert, change="transition", transition=name)
    return alert


def _emit_changed(
    session: Session, alert: Alert, *, change: str, transition: str | None = None
) -> None:
    """One ``alerts.alert.updated`` event for a repeat, a transition or an escalation."""
    payload: dict[str, Any] = {
        "alert_id": alert.id,
        "org_id": alert.org_id,
        "change": change,
        "state": alert.state,
        "count": alert.count,
        "last_seen_at": _iso(alert.last_seen_at),
    }
    if transition is not None:
        payload["transition"] = transition
    outbox.emit(
        session, type=events.UPDATED, source=events.SOURCE, org_id=alert.org_id, payload=payload
    )


@dataclass(frozen=True)
class EscalationReport:
    escalated: list[str]


def escalate_overdue(
    *,
    session: Session,
    now: datetime | None = None,
    principal: Principal = audit.SYSTEM,
    limit: int = ESCALATION_BATCH,
) -> EscalationReport:
    """Escalate every unacknowledged alert past its SLA to its district's supervisors."""
    moment = now or utcnow()
    overdue = session.scalars(
        select(Alert)
        .where(Alert.state.in_(UNACKNOWLEDGED), Alert.sla_due_at <= moment)
        .order_by(Alert.sla_due_at, Alert.id)
        .limit(limit)
    ).all()
    done: list[str] = []
    for alert in overdue:
        workflow.apply(
            session,
            machine=ALERT,
            record=alert,
            transition="escalate",
            principal=principal,
            note="sla",
        )
        assert alert.escalated_to_org_id is not None
        outbox.emit(
            session,
            type=events.ESCALATED,
            source=events.SOURCE,
            org_id=alert.org_id,
            payload={
                "alert_id": alert.id,
                "org_id": alert.org_id,
                "escalated_to_org_id": alert.escalated_to_org_id,
                "severity": alert.severity,
                "sla_due_at": _iso(alert.sla_due_at),
            },
        )
        _emit_changed(session, alert, change="escalation", transition="escalate")
        done.append(alert.id)
    return EscalationReport(escalated=done)
