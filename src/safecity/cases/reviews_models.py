"""Table of criminal review applications (复议 / 复核) against a decision on a case
(:mod:`safecity.cases.reviews`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow


class CaseReview(Base):
    """One application against one decision of a case (unique per case and decision).

    ``grounds`` is the applicant's text as written (pages escape it; the portal shows
    nothing of it). ``due_at`` is the statutory deadline of the current stage (None once
    decided); ``alerted_at`` is set when the overdue alert for ``alerted_state`` was raised.
    """

    __tablename__ = "case_reviews"
    __table_args__ = (UniqueConstraint("case_id", "decision", "decision_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), index=True)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    """Who decides the current level: the case's unit (复议), its parent org (复核)."""
    decision: Mapped[str] = mapped_column(String(32))
    """The case state the application is against: not_registered, closed, suspended."""
    decision_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # "portal" | "console"
    grounds: Mapped[str] = mapped_column(Text, default="")
    outcome_reason: Mapped[str | None] = mapped_column(Text, default=None)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    stage_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    alerted_state: Mapped[str | None] = mapped_column(String(32), default=None)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
