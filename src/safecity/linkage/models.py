"""Tables of the master person index in the product (issue 6): the person records it knows,
the persons they are linked to, the pairs awaiting an analyst, and every merge and unmerge.

* :class:`LinkModel`: a trained Splink model (the JSON of
  :class:`safecity.linkage.person_index.Model`, its SHA-256, thresholds); one is active.
* :class:`LinkRecord`: one person record from a source domain (``source`` names it, e.g.
  ``cases.person``; ``source_id`` is that domain's id), in the canonical fields the model
  compares (:data:`safecity.linkage.comparisons.CANONICAL_FIELDS`). **Personal data**: read
  only in the record's ``org_id`` scope and audited. ``person_id`` is the master person the
  record belongs to now.
* :class:`LinkPerson`: a master person (an id, nothing personal). A merge points the
  absorbed person at the survivor (``merged_into``) so old references still resolve.
* :class:`LinkPair`: a scored candidate pair between the auto-link and review thresholds,
  awaiting an analyst (``pending`` → ``linked`` | ``rejected``); a rejected pair is never
  queued or auto-linked again.
* :class:`LinkChange`: the history of link / merge / unmerge decisions (who, why, which
  records moved), so an unmerge restores exactly what a merge joined.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

PAIR_STATES: tuple[str, ...] = ("pending", "linked", "rejected")
CHANGE_KINDS: tuple[str, ...] = ("auto_link", "link", "merge", "unmerge", "reject")


class LinkModel(Base):
    __tablename__ = "link_models"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    document: Mapped[str] = mapped_column(Text)
    """The model's JSON (``person_index.Model.to_json``)."""
    sha256: Mapped[str] = mapped_column(String(64))
    auto_link: Mapped[float] = mapped_column(Float)
    review: Mapped[float] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class LinkPerson(Base):
    __tablename__ = "link_persons"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    merged_into: Mapped[str | None] = mapped_column(ID, default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkRecord(Base):
    __tablename__ = "link_records"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str] = mapped_column(ID, index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Canonical fields (strings or null): personal data, scoped and audited."""
    person_id: Mapped[str] = mapped_column(ID, ForeignKey("link_persons.id"), index=True)
    scored_with: Mapped[str | None] = mapped_column(ID, default=None)
    """The model that last compared this record (``None``: not yet scored)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkPair(Base):
    __tablename__ = "link_pairs"
    __table_args__ = (
        UniqueConstraint("record_a", "record_b"),
        Index("ix_link_pairs_state_probability", "state", "probability"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    record_a: Mapped[str] = mapped_column(ID, ForeignKey("link_records.id"))
    record_b: Mapped[str] = mapped_column(ID, ForeignKey("link_records.id"), index=True)
    """``record_a < record_b`` (ids), so a pair has one row."""
    probability: Mapped[float] = mapped_column(Float)
    contributions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Per-comparison match weights (why the model scored the pair so)."""
    model_id: Mapped[str] = mapped_column(ID, ForeignKey("link_models.id"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkChange(Base):
    __tablename__ = "link_changes"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str] = mapped_column(ID, index=True)
    """The surviving (or, for an unmerge, the restored) person."""
    other_person_id: Mapped[str | None] = mapped_column(ID, default=None)
    records: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The records that moved to ``person_id``."""
    pair_id: Mapped[str | None] = mapped_column(ID, default=None)
    undoes: Mapped[str | None] = mapped_column(ID, default=None)
    """For an unmerge: the merge it reverses."""
    actor_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
