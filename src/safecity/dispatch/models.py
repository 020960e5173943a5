"""Tables of the dispatch domain: routing rules, work orders, replies, public notices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

CITY_WIDE = "*"
"""``RoutingRule.area_key`` of a rule that holds for the whole city."""


class RoutingRule(Base):
    """Service code × area → the org (department or community office) that handles it.

    ``area_org_id`` is a district, station or community office (``None``: city-wide);
    ``area_key`` repeats it (``"*"`` for city-wide) so that one rule per (code, area) is
    enforced by a plain unique constraint on every database.
    """

    __tablename__ = "dispatch_routing_rules"
    __table_args__ = (UniqueConstraint("service_code", "area_key"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    service_code: Mapped[str] = mapped_column(String(64), index=True)
    area_org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), default=None)
    area_key: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkOrder(Base):
    """A job for a city department. ``department_id`` is who handles it (its staff act on
    it), ``area_org_id`` the station owning the place (its officers can read it).
    ``service_request_id`` is the public number (Open311). Requester fields are personal."""

    __tablename__ = "dispatch_work_orders"
    __table_args__ = (
        Index("ix_dispatch_work_orders_department_state", "department_id", "state"),
        Index("ix_dispatch_work_orders_area", "area_org_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    service_request_id: Mapped[str] = mapped_column(String(32), unique=True)
    service_code: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lng: Mapped[float | None] = mapped_column(Float, default=None)
    h3_cell: Mapped[str | None] = mapped_column(String(16), default=None)
    address: Mapped[str | None] = mapped_column(String(500), default=None)
    department_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    area_org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    source: Mapped[str] = mapped_column(String(64), index=True)
    source_ref: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    requester_email: Mapped[str | None] = mapped_column(String(254), default=None)
    requester_first_name: Mapped[str | None] = mapped_column(String(100), default=None)
    requester_last_name: Mapped[str | None] = mapped_column(String(100), default=None)
    requester_phone: Mapped[str | None] = mapped_column(String(40), default=None)
    media_url: Mapped[str | None] = mapped_column(String(1000), default=None)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expected_datetime: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WorkOrderReply(Base):
    """A reply or note by department staff; ``public`` replies are the Open311
    ``status_notes`` and may be shown to the requester."""

    __tablename__ = "dispatch_work_order_replies"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    work_order_id: Mapped[str] = mapped_column(ForeignKey("dispatch_work_orders.id"), index=True)
    author_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublicNotice(Base):
    """A building-level public notice (never a flat or unit number), e.g. after an object
    was thrown from height; linked to the alert and the work order behind it."""

    __tablename__ = "dispatch_public_notices"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    body_zh: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    building_label: Mapped[str] = mapped_column(String(400))
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lng: Mapped[float | None] = mapped_column(Float, default=None)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), default=None)
    alert_id: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    work_order_id: Mapped[str | None] = mapped_column(
        ForeignKey("dispatch_work_orders.id"), default=None
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


from safecity.dispatch import events as _events  # noqa: E402,F401  (event types, consumer)
