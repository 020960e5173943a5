"""A record's timeline: one generic table that every domain reuses.

Each entry says what happened to a record (``record_type`` + ``record_id``): a state
transition (with from/to state), a note, an assignment, anything a domain wants to show as
"the record's history". The workflow engine (:mod:`safecity.platform.workflow`) writes one
entry per transition; domains add their own kinds with :func:`add`.

Entries flagged ``public`` may be shown to the citizen who reported the record; the
``note`` of a public entry must therefore be written for the public. Authorisation is the
owning domain's job: list a record's timeline only after checking the caller may see the
record. Notes can hold personal data, so erasing a record erases its timeline
(:func:`erase_for`, called by :mod:`safecity.platform.retention`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Index, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow
from safecity.platform.errors import InvalidInput

MAX_NOTE_CHARS = 4000


class TimelineEntry(Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_entries_record", "record_type", "record_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(ID, unique=True, default=new_id)
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str | None] = mapped_column(String(32), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(64), default=None)
    to_state: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    public: Mapped[bool] = mapped_column(Boolean, default=False)


class TimelineEntryRead(BaseModel):
    """A timeline entry as staff see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    record_type: str
    record_id: str
    at: datetime
    actor_id: str | None
    kind: str
    from_state: str | None
    to_state: str | None
    note: str | None
    public: bool


class PublicTimelineEntryRead(BaseModel):
    """A public timeline entry as a citizen sees it: no actor, no internal ids."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    note: str | None


def add(
    session: Session,
    *,
    record_type: str,
    record_id: str,
    kind: str,
    actor_id: str | None = None,
    org_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str | None = None,
    public: bool = False,
    at: datetime | None = None,
) -> TimelineEntry:
    """Append one entry to a record's timeline in ``session``'s transaction."""
    if not record_type or not record_id or not kind:
        raise InvalidInput("a timeline entry needs a record type, a record id and a kind")
    for name, value, limit in (
        ("record type", record_type, 64),
        ("record id", record_id, 64),
        ("kind", kind, 32),
        ("from state", from_state, 64),
        ("to state", to_state, 64),
        ("actor id", actor_id, 64),
        ("org id", org_id, 32),
    ):
        if value is not None and len(value) > limit:
            raise InvalidInput(f"timeline {name} is longer than {limit} characters")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"timeline note is longer than {MAX_NOTE_CHARS} characters")
    entry = TimelineEntry(
        id=new_id(),
        record_type=record_type,
        record_id=record_id,
        org_id=org_id,
        at=at or utcnow(),
        actor_id=actor_id,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        note=note,
        public=public,
    )
    session.add(entry)
    return entry


def list_for(
    session: Session,
    *,
    record_type: str,
    record_id: str,
    public_only: bool = False,
    limit: int | None = None,
) -> list[TimelineEntry]:
    """A record's timeline, oldest first (insertion order breaks ties in time)."""
    stmt = select(TimelineEntry).where(
        TimelineEntry.record_type == record_type, TimelineEntry.record_id == record_id
    )
    if public_only:
        stmt = stmt.where(TimelineEntry.public.is_(True))
    stmt = stmt.order_by(TimelineEntry.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def erase_for(session: Session, *, record_type: str, record_id: str) -> int:
    """Delete a record's whole timeline (part of erasing the record); returns the count."""
    result = session.execute(
        delete(TimelineEntry)
        .where(TimelineEntry.record_type == record_type, TimelineEntry.record_id == record_id)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)
