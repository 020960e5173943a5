"""Work orders: opening (routing, idempotency), reading in scope, working them, replies.

Other domains open work orders through :func:`open_work_order`::

    from safecity.dispatch import service as dispatch

    order = dispatch.open_work_order(
        session,
        service_code="sensor_maintenance",
        description="Sensor S-1 has sent no heartbeat for 2 hours",
        lat=31.23, lng=121.47,                 # WGS84
        source="sensing.stale",                # who opens it
        source_ref="S-1",                      # what it is about (an alert id, a sensor id)
        dedup_key="stale:S-1:2026-11-26",      # optional: the same key returns the same order
    )

The order goes to the org the routing table names (:mod:`safecity.dispatch.routing`) for
the station owning the point. Everything (order, timeline, audit, outbox event) is written
in the caller's transaction; nothing commits here.

Scope: a principal reads an order when it sees its handling org (``department_id``, e.g.
department staff) *or* its area (``area_org_id``, e.g. the station's officers); only the
handling org's staff (and city-wide roles) may transition it or reply.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.dispatch import events, routing
from safecity.dispatch.models import WorkOrder, WorkOrderReply
from safecity.dispatch.schemas import (
    MAX_DESCRIPTION,
    ReplyRead,
    WorkOrderDetail,
    WorkOrderRead,
)
from safecity.dispatch.workflow import WORK_ORDER, WRITE
from safecity.orgs import service as orgs
from safecity.platform import geo, outbox, timeline, workflow
from safecity.platform.db import is_postgres, new_id, utcnow
from safecity.platform.errors import InvalidInput, NotFound, PermissionDenied
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security import audit
from safecity.security.rbac import Principal

_SOURCE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_DEDUP = re.compile(r"^[\x21-\x7e]{1,200}$")
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SCALARS = (str, int, float, bool, type(None))
MAX_DETAIL_BYTES = 4096
REQUESTER_FIELDS: dict[str, tuple[str, int]] = {
    "email": ("requester_email", 254),
    "first_name": ("requester_first_name", 100),
    "last_name": ("requester_last_name", 100),
    "phone": ("requester_phone", 40),
}


def _check_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """``detail`` holds ids and codes: flat keys, scalar (or list of scalar) values."""
    if detail is None:
        return {}
    if not isinstance(detail, dict):
        raise InvalidInput("work order detail must be an object")
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            raise InvalidInput(f"detail key {str(key)[:64]!r} is not lower_snake_case")
        if isinstance(value, dict):
            values = list(value.values())
        else:
            values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, _SCALARS) for v in values):
            raise InvalidInput(f"detail {key!r} must hold ids or codes (scalars)")
    if len(json.dumps(detail, ensure_ascii=False).encode()) > MAX_DETAIL_BYTES:
        raise InvalidInput(f"work order detail is larger than {MAX_DETAIL_BYTES} bytes")
    return dict(detail)


def _requester(requester: dict[str, str | None] | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in (requester or {}).items():
        if key not in REQUESTER_FIELDS:
            raise InvalidInput(f"unknown requester field {key[:32]!r}")
        column, limit = REQUESTER_FIELDS[key]
        if value is None or not str(value).strip():
            continue
        text = str(value).strip()
        if len(text) > limit:
            raise InvalidInput(f"requester {key} is longer than {limit} characters")
        out[column] = text
    return out


def new_service_request_id() -> str:
    """A public number that reveals nothing (no sequence, no date)."""
    return "WO-" + secrets.token_hex(5).upper()


def area_for(session: Session, *, lat: float | None, lng: float | None, org_id: str | None) -> str:
    """The area (station) owning the point; without a point ``org_id``, else the city."""
    if lat is not None and lng is not None:
        return alerts.route(session, lat=lat, lng=lng, org_id=org_id)
    if org_id is not None:
        try:
            return orgs.get(session=session, org_id=org_id).id
        except NotFound:
            raise InvalidInput(f"organisation {org_id[:32]!r} does not exist") from None
    cities, _ = orgs.list_orgs(session=session, kind="city", limit=1)
    if not cities:
        raise InvalidInput("no organisation to route the work order to: create the city first")
    return cities[0].id


def by_dedup_key(session: Session, dedup_key: str) -> WorkOrder | None:
    return session.scalars(select(WorkOrder).where(WorkOrder.dedup_key == dedup_key)).first()


def open_work_order(
    session: Session,
    *,
    service_code: str,
    description: str,
    lat: float | None,
    lng: float | None,
    source: str,
    source_ref: str | None = None,
    org_id: str | None = None,
    dedup_key: str | None = None,
    detail: dict[str, Any] | None = None,
    actor_id: str | None = None,
    requester: dict[str, str | None] | None = None,
    address: str | None = None,
    media_url: str | None = None,
    expected_datetime: datetime | None = None,
    principal: Principal = audit.SYSTEM,
) -> WorkOrder:
    """Open a work order routed by the routing table; with ``dedup_key``, idempotent (the
    order already opened with that key is returned unchanged).

    ``org_id`` is the area to use when the point lies in no station's area (as for
    :func:`safecity.alerts.service.raise_alert`). ``requester`` may hold ``email``,
    ``first_name``, ``last_name`` and ``phone`` (personal: never in public output).
    :class:`InvalidInput` for bad input; nothing is written then.
    """
    routing.check_service_code(service_code)
    if not isinstance(source, str) or not _SOURCE.match(source):
        raise InvalidInput("work order source must be a lower-case code of at most 64 characters")
    text = (description or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput(f"description is longer than {MAX_DESCRIPTION} characters")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not _DEDUP.match(dedup_key)):
        raise InvalidInput("dedup_key must be 1-200 printable ASCII characters")
    if source_ref is not None and len(source_ref) > 200:
        raise InvalidInput("source_ref is longer than 200 characters")
    if (lat is None) != (lng is None):
        raise InvalidInput("give both lat and lng, or neither")
    if lat is not None and lng is not None:
        geo.check_lng_lat(lng, lat)
    if address is not None and len(address) > 500:
        raise InvalidInput("address is longer than 500 characters")
    if media_url is not None and (len(media_url) > 1000 or not media_url.startswith("http")):
        raise InvalidInput("media_url must be an http(s) URL of at most 1000 characters")
    clean_detail = _check_detail(detail)
    people = _requester(requester)
    if dedup_key is not None:
        existing = by_dedup_key(session, dedup_key)
        if existing is not None:
            return existing

    area = area_for(session, lat=lat, lng=lng, org_id=org_id)
    handler = routing.resolve(session, service_code=service_code, area_org_id=area)
    now = utcnow()
    order = WorkOrder(
        id=new_id(),
        service_request_id=new_service_request_id(),
        service_code=service_code,
        state=WORK_ORDER.initial,
        description=text,
        lat=lat,
        lng=lng,
        h3_cell=geo.h3_cell(lat=lat, lng=lng) if lat is not None and lng is not None else None,
        address=address.strip() if address and address.strip() else None,
        department_id=handler,
        area_org_id=area,
        source=source,
        source_ref=source_ref,
        media_url=media_url,
        dedup_key=dedup_key,
        detail=clean_detail,
        expected_datetime=expected_datetime,
        created_at=now,
        updated_at=now,
        **people,
    )
    if dedup_key is not None and is_postgres(session):
        try:
            with session.begin_nested():
                session.add(order)
                session.flush()
        except IntegrityError:
            raced = by_dedup_key(session, dedup_key)
            if raced is None:
                raise
            return raced  # another process opened it at the same moment
    else:
        session.add(order)
        session.flush()
    workflow.start(session, machine=WORK_ORDER, record=order, principal=principal, public=True)
    audit.record(
        session,
        principal=principal,
        action="dispatch.work_order.open",
        target_type="work_order",
        target_id=order.id,
        detail={
            "service_code": service_code,
            "department": handler,
            "area": area,
            "source": source,
            "actor": actor_id,
        },
    )
    outbox.emit(
        session,
        type=events.OPENED,
        source=events.SOURCE,
        org_id=handler,
        payload={
            "work_order_id": order.id,
            "service_request_id": order.service_request_id,
            "service_code": service_code,
            "department_id": handler,
            "area_org_id": area,
            "source": source,
            "source_ref": source_ref,
            "h3_cell": order.h3_cell,
        },
    )
    return order


# --------------------------------------------------------------------------- reads


def _sees(principal: Principal, order: WorkOrder) -> bool:
    return principal.sees_org(order.department_id) or principal.sees_org(order.area_org_id)


def scoped_query(principal: Principal) -> Select[Any]:
    query = select(WorkOrder)
    if principal.visible_org_ids is None:
        return query
    visible = sorted(principal.visible_org_ids)
    return query.where(
        or_(WorkOrder.department_id.in_(visible), WorkOrder.area_org_id.in_(visible))
    )


def list_orders(
    *, session: Session, principal: Principal, params: ListParams
) -> Page[WorkOrderRead]:
    return paginate(
        session=session, query=scoped_query(principal), params=params, item=WorkOrderRead
    )


def get_order(*, session: Session, principal: Principal, order_id: str) -> WorkOrder:
    """The order, or :class:`NotFound` when it does not exist or is out of scope."""
    order = session.get(WorkOrder, order_id)
    if order is None or not _sees(principal, order):
        raise NotFound("work order not found")
    return order


def replies_of(
    session: Session, order_id: str, *, public_only: bool = False
) -> list[WorkOrderReply]:
    stmt = select(WorkOrderReply).where(WorkOrderReply.work_order_id == order_id)
    if public_only:
        stmt = stmt.where(WorkOrderReply.public.is_(True))
    return list(session.scalars(stmt.order_by(WorkOrderReply.created_at, WorkOrderReply.id)))


def allowed_transitions(*, order: WorkOrder, principal: Principal) -> list[str]:
    return [
        t.name
        for t in workflow.available_transitions(
            machine=WORK_ORDER, record=order, principal=principal
        )
    ]


def detail(*, session: Session, principal: Principal, order_id: str) -> WorkOrderDetail:
    order = get_order(session=session, principal=principal, order_id=order_id)
    entries = timeline.list_for(session, record_type=WORK_ORDER.record_type, record_id=order.id)
    return WorkOrderDetail.model_validate(
        {
            **WorkOrderRead.model_validate(order).model_dump(),
            "replies": [ReplyRead.model_validate(r) for r in replies_of(session, order.id)],
            "timeline": [timeline.TimelineEntryRead.model_validate(e) for e in entries],
            "transitions": allowed_transitions(order=order, principal=principal),
        }
    )


# --------------------------------------------------------------------------- changes


def transition(
    *,
    session: Session,
    principal: Principal,
    order_id: str,
    name: str,
    notes: str | None = None,
) -> WorkOrder:
    """Apply a workflow transition (404 out of scope, 403, 409 illegal, 422 no notes).

    The notes of a close or reject are the answer to the requester: they are also stored
    as a public reply (Open311 ``status_notes``).
    """
    order = get_order(session=session, principal=principal, order_id=order_id)
    text = notes.strip() if notes and notes.strip() else None
    result = workflow.apply(
        session,
        machine=WORK_ORDER,
        record=order,
        transition=name,
        principal=principal,
        note=text,
        fields={"notes": text},
    )
    if text is not None and result.to_state in ("closed", "rejected"):
        _add_reply(session, principal=principal, order=order, body=text, public=True)
    return order


def _add_reply(
    session: Session, *, principal: Principal, order: WorkOrder, body: str, public: bool
) -> WorkOrderReply:
    row = WorkOrderReply(
        id=new_id(),
        work_order_id=order.id,
        author_id=principal.id,
        body=body,
        public=public,
        created_at=utcnow(),
    )
    session.add(row)
    order.updated_at = row.created_at
    timeline.add(
        session,
        record_type=WORK_ORDER.record_type,
        record_id=order.id,
        org_id=order.department_id,
        kind="reply",
        actor_id=principal.id,
        note=body,
        public=public,
    )
    audit.record(
        session,
        principal=principal,
        action="dispatch.work_order.reply",
        target_type="work_order",
        target_id=order.id,
        detail={"reply": row.id, "public": public},
    )
    outbox.emit(
        session,
        type=events.REPLIED,
        source=events.SOURCE,
        org_id=order.department_id,
        payload={
            "work_order_id": order.id,
            "reply_id": row.id,
            "department_id": order.department_id,
            "public": public,
        },
    )
    return row


def reply(
    *,
    session: Session,
    principal: Principal,
    order_id: str,
    body: str,
    public: bool = False,
) -> WorkOrderReply:
    """A reply (``public``: shown to the requester) or an internal note by the handling
    org's staff (others in scope: 403; out of scope: 404)."""
    order = get_order(session=session, principal=principal, order_id=order_id)
    if not principal.can(WRITE) or not principal.sees_org(order.department_id):
        raise PermissionDenied("only the handling department replies to a work order")
    text = (body or "").strip()
    if not text:
        raise InvalidInput("a reply needs a body")
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInput(f"a reply is longer than {MAX_NOTE_CHARS} characters")
    row = _add_reply(session, principal=principal, order=order, body=text, public=public)
    session.flush()
    return row
