"""Objects thrown from height: a public notice for the building and a work order for the
neighbourhood, both linked to the alert.

The durable consumer ``dispatch.high_altitude`` (registered in
:mod:`safecity.dispatch.events`) receives every ``alerts.alert.raised`` event; for the
category :data:`HIGH_ALTITUDE_CATEGORY` (rule ``throw-from-height`` of the shipped rules)
:func:`handle_alert` creates, idempotently (one of each per alert):

* a :class:`~safecity.dispatch.models.PublicNotice` naming the compound and building only
  (never the flat; the floor estimate is not shown either), with the point rounded;
* a ``building_safety`` work order (source ``alert``, ``source_ref`` = alert id,
  ``dedup_key`` = ``alert:<id>``), routed to the community office under the station
  unless the routing table says otherwise;
* an entry on the alert's timeline naming both.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.alerts.models import Alert
from safecity.dispatch import events
from safecity.dispatch import service as dispatch
from safecity.dispatch.models import PublicNotice, WorkOrder
from safecity.dispatch.privacy import building_level, round_coordinate
from safecity.dispatch.services import BUILDING_SAFETY
from safecity.platform import outbox, timeline
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.events import Envelope
from safecity.security import audit

log = logging.getLogger("safecity.dispatch")

HIGH_ALTITUDE_CATEGORY = "high_altitude_throw"
NOTICE_KIND = "high_altitude_throw"
_LABEL_KEYS = ("compound", "building", "building_id")

TITLE_ZH = "高空抛物安全提示"
TITLE_EN = "Safety notice: objects thrown from height"
BODY_ZH = (
    "{label}附近发生高空抛物。高空抛物危害公共安全，属违法行为。"
    "请居民勿从窗口、阳台抛掷物品，如有线索请联系社区或拨打110。"
)
BODY_EN = (
    "An object was thrown from height near {label}. Throwing objects from height endangers "
    "people below and is against the law. Please do not throw anything from windows or "
    "balconies; if you know anything, contact the neighbourhood office or call 110."
)


def building_label(session: Session, alert: Alert) -> str:
    """Compound and building of the alert (from its detail or its sensor), no flat."""
    parts: list[str] = []
    detail = alert.detail or {}
    for key in _LABEL_KEYS:
        value = detail.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    sensor_id = detail.get("sensor_id")
    if not parts and isinstance(sensor_id, str):
        from safecity.sensing import service as sensing

        try:
            sensor = sensing.get(session=session, sensor_id=sensor_id)
        except NotFound:
            sensor = None
        if sensor is not None:  # never sensor.unit: a flat number is personal
            parts = [p for p in (sensor.compound, sensor.building) if p]
    label = building_level(" ".join(parts))
    return label or f"H3 {alert.h3_cell}"


def _notice_for(session: Session, alert_id: str) -> PublicNotice | None:
    return session.scalars(select(PublicNotice).where(PublicNotice.alert_id == alert_id)).first()


def handle_alert(session: Session, *, alert_id: str) -> tuple[PublicNotice, WorkOrder] | None:
    """Notice + work order for a high-altitude alert (``None`` for other categories)."""
    alert = alerts.get_alert(session=session, principal=audit.SYSTEM, alert_id=alert_id)
    if alert.category != HIGH_ALTITUDE_CATEGORY:
        return None
    label = building_label(session, alert)
    order = dispatch.open_work_order(
        session,
        service_code=BUILDING_SAFETY,
        description=(
            f"高空抛物 / Object thrown from height: {label}. "
            f"Alert {alert.id}; please check the building and inform residents."
        ),
        lat=alert.lat,
        lng=alert.lng,
        source="alert",
        source_ref=alert.id,
        org_id=alert.org_id,
        dedup_key=f"alert:{alert.id}",
        detail={"alert_id": alert.id, "category": alert.category},
        address=label,
    )
    notice = _notice_for(session, alert.id)
    if notice is not None:
        return notice, order
    notice = PublicNotice(
        id=new_id(),
        kind=NOTICE_KIND,
        title_zh=TITLE_ZH,
        title_en=TITLE_EN,
        body_zh=BODY_ZH.format(label=label),
        body_en=BODY_EN.format(label=label),
        building_label=label,
        lat=round_coordinate(alert.lat),
        lng=round_coordinate(alert.lng),
        org_id=alert.org_id,
        alert_id=alert.id,
        work_order_id=order.id,
        created_at=utcnow(),
    )
    session.add(notice)
    session.flush()
    audit.record(
        session,
        principal=audit.SYSTEM,
        action="dispatch.notice.publish",
        target_type="public_notice",
        target_id=notice.id,
        detail={"alert": alert.id, "work_order": order.id},
    )
    outbox.emit(
        session,
        type=events.NOTICE_PUBLISHED,
        source=events.SOURCE,
        org_id=alert.org_id,
        payload={
            "notice_id": notice.id,
            "kind": NOTICE_KIND,
            "alert_id": alert.id,
            "work_order_id": order.id,
            "org_id": alert.org_id,
        },
    )
    timeline.add(
        session,
        record_type="alert",
        record_id=alert.id,
        org_id=alert.org_id,
        kind="dispatch",
        actor_id=audit.SYSTEM.id,
        note=(
            f"work order {order.service_request_id} ({order.id}) opened for the "
            f"neighbourhood; public notice {notice.id} published"
        ),
    )
    return notice, order


def on_alert_raised(session: Session, envelope: Envelope) -> None:
    """Consumer body: react to ``alerts.alert.raised`` of the high-altitude category."""
    payload: dict[str, Any] = envelope.payload
    if payload.get("category") != HIGH_ALTITUDE_CATEGORY:
        return
    alert_id = payload.get("alert_id")
    if not isinstance(alert_id, str):
        return
    try:
        with session.begin_nested():  # a refused event leaves nothing half-written
            handle_alert(session, alert_id=alert_id)
    except (NotFound, InvalidInput) as exc:
        # Gone (erased) or unusable: retrying would never succeed, so log and move on.
        log.warning("high-altitude alert %s: no notice or work order: %s", alert_id, exc)


def list_public(session: Session, *, limit: int = 100) -> list[PublicNotice]:
    return list(
        session.scalars(
            select(PublicNotice)
            .where(PublicNotice.active.is_(True))
            .order_by(PublicNotice.created_at.desc(), PublicNotice.id)
            .limit(limit)
        )
    )
