"""Tables of the disputes domain: the dispute and its follow-ups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

CATEGORIES: tuple[str, ...] = ("noise", "parking", "water_leak", "pets", "boundary", "other")
FOLLOW_UP_KINDS: tuple[str, ...] = ("visit", "call", "mediation")


class Dispute(Base):
    """A neighbour dispute. The party names and phones and the flat address are personal:
    only the owning station reads them in full (see :mod:`safecity.disputes.schemas`)."""

    __tablename__ = "disputes"
    __table_args__ = (
        Index("ix_disputes_org_state", "org_id", "state"),
        Index("ix_disputes_state_follow_up", "state", "next_follow_up_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    building: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lng: Mapped[float | None] = mapped_column(Float, default=None)
    party_a_name: Mapped[str] = mapped_column(String(100), default="")
    party_a_phone: Mapped[str] = mapped_column(String(40), default="")
    party_b_name: Mapped[str] = mapped_column(String(100), default="")
    party_b_phone: Mapped[str] = mapped_column(String(40), default="")
    assigned_officer_id: Mapped[str | None] = mapped_column(ID, default=None)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    next_follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reminded_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """The follow-up due time a reminder was raised for (one reminder per due time)."""
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FollowUp(Base):
    """One follow-up of a dispute: a visit, a call or a mediation session, with notes and
    when the next one is due (the dispute's ``next_follow_up_at`` takes the latest)."""

    __tablename__ = "dispute_follow_ups"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    dispute_id: Mapped[str] = mapped_column(ID, ForeignKey("disputes.id"), index=True)
    org_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    happened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notes: Mapped[str] = mapped_column(Text, default="")
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
