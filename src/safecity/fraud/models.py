"""Tables of the fraud domain: the indicator store (block lists), appeals against
entries, and the actions the engine asked for (tasks with an owner, a deadline and an
outcome; the outcome is the label the models learn from).

Identifiers are kept as pseudonyms everywhere but in :class:`Indicator.value`, the plain
normalised number, account or domain that operators, banks and registrars must see to
act on; reading it is scoped and audited like any personal data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

INDICATOR_KINDS: tuple[str, ...] = ("phone", "account", "domain")
INDICATOR_SOURCES: tuple[str, ...] = ("case", "model", "report", "operator", "manual")
ACTIONS: tuple[str, ...] = (
    "warn",
    "callback",
    "visit",
    "stop_pay",
    "block_number",
    "block_domain",
)
WARNING_ACTIONS: tuple[str, ...] = ("warn", "callback", "visit")
OUTCOMES: dict[str, tuple[str, ...]] = {
    "warn": ("dissuaded", "victim_lost_money", "not_target", "unreachable"),
    "callback": ("dissuaded", "victim_lost_money", "not_target", "unreachable"),
    "visit": ("dissuaded", "victim_lost_money", "not_target", "unreachable"),
    "stop_pay": ("money_frozen", "released_legitimate", "too_late"),
    "block_number": ("blocked", "rejected"),
    "block_domain": ("blocked", "rejected"),
}


class Indicator(Base):
    """One block-list entry: a scam number, account or domain."""

    __tablename__ = "fraud_indicators"
    __table_args__ = (
        UniqueConstraint("kind", "pseudonym", name="uq_fraud_indicators_kind_pseudonym"),
        Index("ix_fraud_indicators_state_expires", "state", "expires_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(260))
    pseudonym: Mapped[str] = mapped_column(String(40), index=True)
    source: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[str] = mapped_column(String(300))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), index=True)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    reviewed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Appeal(Base):
    """Someone asks for an entry's removal (a number's real owner, a site's registrant)."""

    __tablename__ = "fraud_appeals"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    indicator_id: Mapped[str] = mapped_column(ID, ForeignKey("fraud_indicators.id"), index=True)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    contact: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Action(Base):
    """A task the engine asked for (see :data:`ACTIONS`), idempotent per
    (action, subject, source record)."""

    __tablename__ = "fraud_actions"
    __table_args__ = (
        UniqueConstraint("action", "subject", "record_id", name="uq_fraud_actions_dedup"),
        Index("ix_fraud_actions_org_state", "org_id", "state"),
        Index("ix_fraud_actions_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    action: Mapped[str] = mapped_column(String(16), index=True)
    subject: Mapped[str] = mapped_column(String(40), index=True)
    via: Mapped[str | None] = mapped_column(String(40), default=None)
    record_id: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    rules_version: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger, default=None)
    h3_cell: Mapped[str | None] = mapped_column(String(16), default=None)
    org_id: Mapped[str] = mapped_column(ID)
    state: Mapped[str] = mapped_column(String(16), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(64), default=None)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(24), default=None)
    outcome_note: Mapped[str] = mapped_column(Text, default="")
    alert_id: Mapped[str | None] = mapped_column(ID, default=None)
    indicator_id: Mapped[str | None] = mapped_column(ID, default=None)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
