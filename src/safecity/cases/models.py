"""Tables of the cases domain: the case, the persons on it, citizen comments, the
portal's failed-lookup counters (for the lockout per client and case), the citizen's
satisfaction rating at closing, and the materialised public statistics of the halls
(:mod:`safecity.cases.stats`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from safecity.cases.reply_sla import reply_due
from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

SOURCES: tuple[str, ...] = ("alert", "report", "call")
ROLES: tuple[str, ...] = ("victim", "suspect", "witness")


class Case(Base):
    """A police case. ``number`` is public and random (≥ 40 bits); the portal code is kept
    only as ``code_mac`` (HMAC-SHA256 with the server's case-code key)."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_org_state", "org_id", "state"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    code_mac: Mapped[str | None] = mapped_column(String(64), default=None)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    case_type: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[str | None] = mapped_column(ID, default=None, index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    victim_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    disclosure_override: Mapped[bool | None] = mapped_column(Boolean, default=None)
    """A supervisor's audited override of the type's disclosure policy (None: policy)."""
    not_registered_reason: Mapped[str | None] = mapped_column(Text, default=None)
    assigned_officer_id: Mapped[str | None] = mapped_column(ID, default=None)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CasePerson(Base):
    """A victim, suspect or witness on a case: personal data (scoped, audited reads)."""

    __tablename__ = "case_persons"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    id_number: Mapped[str] = mapped_column(String(40), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _reply_due_default(context: DefaultExecutionContext) -> datetime | None:
    """A citizen comment's reply deadline (:mod:`safecity.cases.reply_sla`), set on insert
    however the comment is made; officer replies owe no reply."""
    params: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    if params.get("author") != "citizen":
        return None
    created = params.get("created_at")
    return reply_due(created if isinstance(created, datetime) else utcnow())


class CaseComment(Base):
    """A citizen's comment from the portal, or an officer's reply. Citizen text is shown
    publicly only once ``public_text`` is set (scrubbed, or reviewed by staff).

    A citizen comment owes a reply by ``reply_due_at``; ``answered_at`` is set by the
    unit's reply and ``overdue_alerted_at`` once the overdue alert was raised
    (:mod:`safecity.cases.replies_due`)."""

    __tablename__ = "case_comments"
    __table_args__ = (Index("ix_case_comments_awaiting", "answered_at", "reply_due_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(16))  # "citizen" | "officer"
    text: Mapped[str] = mapped_column(Text)
    public_text: Mapped[str | None] = mapped_column(Text, default=None)
    reply_to: Mapped[str | None] = mapped_column(ID, default=None)
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reply_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=_reply_due_default)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    overdue_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class LookupFailure(Base):
    """Failed portal lookups of one client against one case (lockout per client and case,
    so an attacker cannot lock the victim out)."""

    __tablename__ = "case_lookup_failures"
    __table_args__ = (UniqueConstraint("client", "case_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    client: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ID, index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseRating(Base):
    """The citizen's satisfaction rating (1-5) of a solved or closed case, given once
    through the portal lookup page (audited)."""

    __tablename__ = "case_ratings"

    case_id: Mapped[str] = mapped_column(ID, ForeignKey("cases.id"), primary_key=True)
    rating: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseStatFact(Base):
    """What one case contributes to the public statistics: its org, the local month it
    was received, its disclosure flags, its first stage times and its rating. The counters
    are kept as the sum of these (:func:`safecity.cases.stats.track` applies the change of
    one case's contribution; ``rebuild`` recomputes all of them from the cases)."""

    __tablename__ = "case_stat_facts"

    case_id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ID)
    org_path: Mapped[str] = mapped_column(String(1000))
    """The org's path when counted: the counters it was added to (the org and those above)."""
    month: Mapped[str] = mapped_column(String(7))
    disclosable: Mapped[bool] = mapped_column(Boolean, default=False)
    disclosed: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    investigating_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)


class CaseStat(Base):
    """A public-statistics counter: ``value`` of ``metric`` for the cases of ``org_id`` and
    every org below it, received in local ``month`` (``YYYY-MM``): a hall reads its own
    org's rows only."""

    __tablename__ = "case_stats"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
