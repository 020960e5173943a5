"""Tables for running the sensing pipeline: rule-set versions, dead letters, group keys.

* ``sensing_rule_versions``: every published rule file (YAML text as the author wrote it,
  its SHA-256, who and why); exactly one row is ``active`` (the newest: a rollback publishes
  an older text again). Version 0 is the shipped starter set and has no row.
* ``sensing_dead_letters``: messages a connector rejected, with the reason; raw bodies are
  truncated and the table is pruned by the ``sensing.dead_letter`` retention policy.
* ``sensing_group_keys``: which device group an ingest principal (a ``device`` user with a
  bearer token) may post events for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow
from safecity.sensing.models import MAX_GROUP, MAX_SENSOR_ID

MAX_NOTE = 500
MAX_DEAD_RAW = 1024
"""Bytes of a dead letter's raw body kept in the table (the in-memory sink keeps 4 KiB)."""


class RuleSetVersion(Base):
    __tablename__ = "sensing_rule_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    author_id: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(MAX_NOTE), default="")
    rule_count: Mapped[int] = mapped_column(Integer, default=0)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Against the version that was active before: kept/changed/added/removed rule ids."""
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadLetterRow(Base):
    __tablename__ = "sensing_dead_letters"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    connector: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(200))
    sensor_id: Mapped[str | None] = mapped_column(String(MAX_SENSOR_ID), default=None)
    type: Mapped[str | None] = mapped_column(String(64), default=None)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class GroupKey(Base):
    """An ingest principal bound to one device group (see ``safecity sensors issue-key``)."""

    __tablename__ = "sensing_group_keys"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    device_group: Mapped[str] = mapped_column(String(MAX_GROUP), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
