"""Tables of the minor-accident flow (快处易赔, issue 11).

One :class:`AccidentCase` per collision, two :class:`AccidentParty` rows (drivers A and B),
their guided :class:`AccidentPhoto`\\ s, their :class:`AccidentSignature`\\ s and one
:class:`InsurerNotice` per party's insurer. Secrets are kept only as SHA-256 hashes (the
join code, each driver's party token, the one-time signing code). The parties' plate,
licence, policy number and phone are personal: read in scope and audited
(:mod:`safecity.accidents.service`), never on a public page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

ROLES: tuple[str, ...] = ("A", "B")
POSITIONS: tuple[str, ...] = ("plate_a", "plate_b", "contact", "wide_1", "wide_2")
SIGN_METHODS: tuple[str, ...] = ("otp", "drawn")
NOTICE_STATUSES: tuple[str, ...] = ("pending", "sending", "acked", "failed")


class AccidentCase(Base):
    """A minor collision settled by its two drivers (or escalated to an officer).

    ``t0``..``t5``: started, road cleared (both drivers confirmed), both signed, every
    insurer acknowledged, assessed, paid (the last insurer to report each)."""

    __tablename__ = "accident_cases"
    __table_args__ = (Index("ix_accident_cases_org_state", "org_id", "state"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    join_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[str] = mapped_column(ID, index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    city: Mapped[str] = mapped_column(String(32), default="shanghai")
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    eligibility: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    t0_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    t1_road_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    t2_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    t3_insurer_ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    t4_assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    t5_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    liability: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Review flags (photo EXIF, duplicates): never block, shown to the officer."""
    escalation_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    escalation_detail: Mapped[str] = mapped_column(Text, default="")
    review_alert_id: Mapped[str | None] = mapped_column(ID, default=None)
    review_outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    review_notes: Mapped[str] = mapped_column(Text, default="")
    sealed_summary: Mapped[str | None] = mapped_column(Text, default=None, info={"personal": True})
    """The canonical JSON both drivers signed (evidence hashes, no names or phones)."""
    seal_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    seal_signature: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AccidentParty(Base):
    """One driver. ``plate``, ``licence_no``, ``policy_no``, ``phone`` and ``holder_name``
    are personal."""

    __tablename__ = "accident_parties"
    __table_args__ = (UniqueConstraint("case_id", "role", name="uq_accident_parties_role"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("accident_cases.id"), index=True)
    role: Mapped[str] = mapped_column(String(1))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    plate: Mapped[str] = mapped_column(String(16), default="", info={"personal": True})
    licence_no: Mapped[str] = mapped_column(String(32), default="", info={"personal": True})
    insurer_code: Mapped[str] = mapped_column(String(32), default="")
    policy_no: Mapped[str] = mapped_column(String(40), default="", info={"personal": True})
    phone: Mapped[str] = mapped_column(String(20), default="", info={"personal": True})
    holder_name: Mapped[str] = mapped_column(String(64), default="", info={"personal": True})
    """The licence holder's name, only as disclosed by a verified e-driving licence."""
    field_sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Per data field: ``{"source": "typed"}`` or ``{"source": "credential", ...}`` with the
    certificate type, its identifier digest and the verdict time
    (:mod:`safecity.accidents.credentials`); a field without an entry was typed."""
    own_situations: Mapped[list[str]] = mapped_column(JSON, default=list)
    other_situations: Mapped[list[str]] = mapped_column(JSON, default=list)
    declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    road_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    otp_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    otp_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    otp_attempts: Mapped[int] = mapped_column(Integer, default=0)
    otp_sent: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccidentPhoto(Base):
    """One guided photo; the bytes are in the blob store under ``sha256``."""

    __tablename__ = "accident_photos"
    __table_args__ = (
        UniqueConstraint("case_id", "party_id", "position", name="uq_accident_photos_slot"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("accident_cases.id"), index=True)
    party_id: Mapped[str] = mapped_column(ID, ForeignKey("accident_parties.id"))
    position: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    pixel_sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    packed_hashes: Mapped[bytes] = mapped_column(LargeBinary(256))
    exif_taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    exif_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccidentSignature(Base):
    """A driver's signature of the summary whose SHA-256 is ``summary_sha256``."""

    __tablename__ = "accident_signatures"
    __table_args__ = (UniqueConstraint("case_id", "role", name="uq_accident_signatures_role"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("accident_cases.id"), index=True)
    party_id: Mapped[str] = mapped_column(ID, ForeignKey("accident_parties.id"))
    role: Mapped[str] = mapped_column(String(1))
    method: Mapped[str] = mapped_column(String(8))
    summary_sha256: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InsurerNotice(Base):
    """A notice of loss to one party's insurer, delivered at least once, recorded once."""

    __tablename__ = "accident_insurer_notices"
    __table_args__ = (Index("ix_accident_notices_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ID, ForeignKey("accident_cases.id"), index=True)
    party_role: Mapped[str] = mapped_column(String(1))
    insurer_code: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    acks: Mapped[int] = mapped_column(Integer, default=0)
    """Acknowledgements received (a second one changes nothing else)."""
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    external_claim_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
