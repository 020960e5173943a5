"""What the alerts API reads and writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.timeline import MAX_NOTE_CHARS, TimelineEntryRead


class AlertRead(BaseModel):
    """An alert as staff see it (ids, codes, place and times; no personal data)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    source: str
    category: str
    severity: str
    title_key: str
    lat: float
    lng: float
    h3_cell: str
    dedup_key: str
    detail: dict[str, Any]
    org_id: str
    state: str
    count: int
    first_seen_at: datetime
    last_seen_at: datetime
    sla_due_at: datetime
    escalated: bool
    escalated_at: datetime | None
    escalated_to_org_id: str | None
    acknowledged_at: datetime | None
    on_scene_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AlertDetail(AlertRead):
    """One alert with its timeline and the transitions the caller may apply now."""

    timeline: list[TimelineEntryRead]
    transitions: list[str]


class TransitionIn(BaseModel):
    """Body of ``POST /api/alerts/{id}/transitions/{name}`` (optional: notes)."""

    model_config = ConfigDict(extra="forbid")

    notes: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)
