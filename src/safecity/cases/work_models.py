"""Tables of the case work: supervisor approval requests ("send back with comments"),
evidence files (content-addressed blobs) and tasks on a case."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

APPROVAL_STATES: tuple[str, ...] = ("pending", "approved", "sent_back")


class CaseApproval(Base):
    """An officer's request that a supervisor apply ``transition`` (solve, suspend,
    close) with ``summary``; the supervisor approves it (the transition happens) or
    sends it back with a required ``comment`` (the case stays where it is)."""

    __tablename__ = "case_approvals"
    __table_args__ = (
        Index("ix_case_approvals_case_state", "case_id", "state"),
        # at most one pending request per case, even for two requests at the same instant
        Index(
            "uq_case_approvals_one_pending",
            "case_id",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), index=True)
    transition: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)


class CaseEvidence(Base):
    """An evidence file on a case: the bytes live in the blob store under ``sha256``;
    this row is the chain-of-custody record (who added it, when, its hash)."""

    __tablename__ = "case_evidence"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseTask(Base):
    """A task on a case, assigned to an officer in the case's scope, with a due date."""

    __tablename__ = "case_tasks"
    __table_args__ = (Index("ix_case_tasks_case_done", "case_id", "done_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    assignee_id: Mapped[str] = mapped_column(String(64), index=True)
    due_on: Mapped[date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_by: Mapped[str | None] = mapped_column(String(64), default=None)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
