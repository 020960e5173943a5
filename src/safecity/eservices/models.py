"""Tables of citizen e-service applications (一网通办, issue 10).

One :class:`Application` per application (a draft until submitted). A single-window
item's application is a *parent* whose *children* (``parent_id``) are one application
per department part; the parent is issued only when every child is approved, and all
results are issued together. :class:`Attachment` rows are the materials: uploaded bytes
(kept in the blob store under ``sha256``) or pulled from an existing e-licence in the
citizen registry (``source == "pulled"``). :class:`Pause` rows are the intervals in
which the working-day clock stood still (a supplement requested...). The history of each
application is the platform timeline (record type ``eservice_application``), one entry
per transition with actor, comment and time.

:class:`CitizenRecord` is the stand-in of the population / household register that
prefills forms and backs pulled materials; every field of it is personal.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

SOURCES: tuple[str, ...] = ("pulled", "uploaded")


class Application(Base):
    """A citizen's application for one catalogue item (or one part of a single window)."""

    __tablename__ = "eservice_applications"
    __table_args__ = (
        Index("ix_eservice_applications_org_state", "org_id", "state"),
        Index("ix_eservice_applications_applicant", "applicant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    item_code: Mapped[str] = mapped_column(String(64), index=True)
    department: Mapped[str] = mapped_column(String(64))
    """The catalogue department handling it (a part's department for a child)."""
    org_id: Mapped[str] = mapped_column(ID, index=True)
    """The org of that department (``eservices-<department>`` under the city)."""
    applicant_id: Mapped[str] = mapped_column(ID)
    state: Mapped[str] = mapped_column(String(32), index=True)
    form_id: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[int] = mapped_column(Integer, default=1)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, info={"personal": True})
    current_page: Mapped[str | None] = mapped_column(String(64), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(160), unique=True, default=None)
    parent_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("eservice_applications.id"), index=True, default=None
    )
    is_parent: Mapped[bool] = mapped_column(Boolean, default=False)
    """A single-window application that fanned out to one child per department."""
    deadline_workdays: Mapped[int] = mapped_column(Integer)
    certificate_type: Mapped[str | None] = mapped_column(String(64), default=None)
    certificate_id: Mapped[str | None] = mapped_column(ID, default=None)
    decision_note: Mapped[str | None] = mapped_column(Text, default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    submitted_on: Mapped[date | None] = mapped_column(Date, default=None)
    """Local (Beijing) date of submission: the clock starts the working day after."""
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    due_on: Mapped[date | None] = mapped_column(Date, default=None, index=True)
    paused_since: Mapped[date | None] = mapped_column(Date, default=None)
    paused_workdays: Mapped[int] = mapped_column(Integer, default=0)
    finished_workdays: Mapped[int | None] = mapped_column(Integer, default=None)
    """Unpaused working days from submission to issue (or rejection)."""
    sla_level: Mapped[str | None] = mapped_column(String(16), default=None)
    """The last SLA alert raised: ``due_soon`` or ``overdue``."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Attachment(Base):
    """A material: uploaded (bytes in the blob store) or pulled from an e-licence."""

    __tablename__ = "eservice_attachments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        ID, ForeignKey("eservice_applications.id"), index=True
    )
    material_code: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    pulled_from: Mapped[str | None] = mapped_column(String(64), default=None)
    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    content_type: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    uploaded_by: Mapped[str | None] = mapped_column(ID, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Pause(Base):
    """An interval (local dates, inclusive) in which the working-day clock stood still."""

    __tablename__ = "eservice_pauses"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        ID, ForeignKey("eservice_applications.id"), index=True
    )
    reason: Mapped[str] = mapped_column(String(64))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class CitizenRecord(Base):
    """The population / household register stand-in, keyed by the citizen's user id.

    ``licences`` maps a catalogue source key (``resident-id``, ``household-register``...)
    to that e-licence's data; a material pulled from a source the record has is attached
    automatically. Every column is personal: reads are audited.
    """

    __tablename__ = "eservice_citizens"

    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), info={"personal": True})
    family_name: Mapped[str] = mapped_column(String(60), default="", info={"personal": True})
    given_name: Mapped[str] = mapped_column(String(60), default="", info={"personal": True})
    id_number: Mapped[str] = mapped_column(String(32), default="", info={"personal": True})
    birthdate: Mapped[str] = mapped_column(String(10), default="", info={"personal": True})
    sex: Mapped[str] = mapped_column(String(8), default="", info={"personal": True})
    household_address: Mapped[str] = mapped_column(String(300), default="", info={"personal": True})
    residence_address: Mapped[str] = mapped_column(String(300), default="", info={"personal": True})
    phone: Mapped[str] = mapped_column(String(20), default="", info={"personal": True})
    email: Mapped[str] = mapped_column(String(200), default="", info={"personal": True})
    nationality: Mapped[str] = mapped_column(String(60), default="", info={"personal": True})
    passport_number: Mapped[str] = mapped_column(String(32), default="", info={"personal": True})
    licences: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, info={"personal": True})
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
