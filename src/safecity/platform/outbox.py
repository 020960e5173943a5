"""Transactional outbox: events are rows written in the publisher's own transaction.

:func:`emit` validates the payload and adds an :class:`OutboxEvent` to the caller's
session; it is committed (or rolled back) together with the change that caused it. A
relay (:mod:`safecity.platform.relay`) later publishes pending rows to the bus and marks
them sent, so nothing is lost on a crash and nothing is published that did not commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, utcnow
from safecity.platform.events import Envelope, validate


class OutboxEvent(Base):
    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(ID, unique=True)
    type: Mapped[str] = mapped_column(String(120), index=True)
    source: Mapped[str] = mapped_column(String(120))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    org_id: Mapped[str | None] = mapped_column(String(32))
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    def envelope(self) -> Envelope:
        return Envelope(
            id=self.id,
            type=self.type,
            source=self.source,
            time=self.time,
            org_id=self.org_id,
            schema_version=self.schema_version,
            payload=self.payload,
        )


def emit(
    session: Session,
    *,
    type: str,
    source: str,
    payload: dict[str, Any],
    org_id: str | None = None,
    schema_version: int = 1,
) -> Envelope:
    """Validate and enqueue an event in ``session``'s transaction; returns its envelope."""
    validate(type, payload, schema_version)
    envelope = Envelope(
        type=type, source=source, org_id=org_id, schema_version=schema_version, payload=payload
    )
    session.add(
        OutboxEvent(
            id=envelope.id,
            type=envelope.type,
            source=envelope.source,
            time=envelope.time,
            org_id=envelope.org_id,
            schema_version=envelope.schema_version,
            payload=envelope.payload,
        )
    )
    return envelope
