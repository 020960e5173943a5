"""The alert table: one row per open incident, however many raw signals fed it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
OPEN_SLOT = "open"
"""``dedup_slot`` of the one alert per (category, dedup key) that still collects repeats."""


class Alert(Base):
    """An alert. ``dedup_slot`` is :data:`OPEN_SLOT` while repeats of the same
    (category, dedup key) are folded into it and the alert's own id afterwards, so the
    unique constraint allows one collecting alert per key even across processes."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("category", "dedup_key", "dedup_slot"),
        Index("ix_alerts_org_state", "org_id", "state"),
        Index("ix_alerts_state_sla", "state", "sla_due_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    title_key: Mapped[str] = mapped_column(String(120))
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    h3_cell: Mapped[str] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(200))
    dedup_slot: Mapped[str] = mapped_column(String(32), default=OPEN_SLOT)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sla_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    escalated_to_org_id: Mapped[str | None] = mapped_column(ID, default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    on_scene_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
