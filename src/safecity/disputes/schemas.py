"""What the disputes API reads and writes.

The parties' names and phones and the flat address are marked :data:`Personal`: staff of
the dispute's own station read them; everyone else in scope (a district supervisor, an
analyst, the city) gets them masked (``"***"``) by :func:`safecity.security.redact.redact`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.timeline import MAX_NOTE_CHARS, TimelineEntryRead
from safecity.security.redact import FreeText, Personal

Category = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")]
Name = Annotated[str, Field(max_length=100)]
Phone = Annotated[str, Field(max_length=40, pattern=r"^[0-9+()\- ]*$")]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lng = Annotated[float, Field(ge=-180, le=180)]
OrgId = Annotated[str, Field(min_length=1, max_length=32)]


class DisputeCreate(BaseModel):
    """A new dispute. The station is the one whose area holds (lat, lng), else ``org_id``,
    else the reporting officer's own org."""

    model_config = ConfigDict(extra="forbid")

    category: Category
    description: Annotated[str, Field(max_length=MAX_NOTE_CHARS)] = ""
    building: Annotated[str, Field(max_length=200)] = ""
    address: Annotated[str, Field(max_length=300), Personal] = ""
    lat: Lat | None = None
    lng: Lng | None = None
    org_id: OrgId | None = None
    party_a_name: Annotated[Name, Personal] = ""
    party_a_phone: Annotated[Phone, Personal] = ""
    party_b_name: Annotated[Name, Personal] = ""
    party_b_phone: Annotated[Phone, Personal] = ""
    assigned_officer_id: OrgId | None = None
    next_follow_up_at: datetime | None = None


class DisputeUpdate(BaseModel):
    """Changes to a dispute's facts or assignment (only the fields given)."""

    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, Field(max_length=MAX_NOTE_CHARS)] | None = None
    building: Annotated[str, Field(max_length=200)] | None = None
    address: Annotated[str, Field(max_length=300), Personal] | None = None
    party_a_name: Annotated[Name, Personal] | None = None
    party_a_phone: Annotated[Phone, Personal] | None = None
    party_b_name: Annotated[Name, Personal] | None = None
    party_b_phone: Annotated[Phone, Personal] | None = None
    assigned_officer_id: OrgId | None = None


class DisputeRead(BaseModel):
    """A dispute as staff in scope see it (personal fields masked outside its station)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    category: str
    state: str
    description: Annotated[str, FreeText]
    building: str
    address: Annotated[str, Personal]
    lat: float | None
    lng: float | None
    party_a_name: Annotated[str, Personal]
    party_a_phone: Annotated[str, Personal]
    party_b_name: Annotated[str, Personal]
    party_b_phone: Annotated[str, Personal]
    assigned_officer_id: str | None
    reported_at: datetime
    resolved_at: datetime | None
    next_follow_up_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FollowUpCreate(BaseModel):
    """A follow-up: what was done (visit, call, mediation), when, notes, next one due."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, Field(pattern=r"^(visit|call|mediation)$")]
    happened_at: datetime | None = None
    notes: Annotated[str, Field(max_length=MAX_NOTE_CHARS)] = ""
    next_due_at: datetime | None = None


class FollowUpRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dispute_id: str
    kind: str
    happened_at: datetime
    notes: Annotated[str, FreeText]
    next_due_at: datetime | None
    actor_id: str
    created_at: datetime


class DisputeDetail(DisputeRead):
    """One dispute with its follow-ups, timeline and the transitions the caller may apply."""

    personal_visible: bool
    follow_ups: list[FollowUpRead]
    timeline: list[TimelineEntryRead]
    transitions: list[str]


class TransitionIn(BaseModel):
    """Body of ``POST /api/disputes/{id}/transitions/{name}`` (notes where required)."""

    model_config = ConfigDict(extra="forbid")

    notes: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class OverdueRead(BaseModel):
    id: str
    org_id: str
    category: str
    state: str
    next_follow_up_at: datetime
    days_overdue: int


class DashboardRead(BaseModel):
    """A station's (or the caller's whole scope's) disputes in numbers."""

    org_id: str | None
    total: int
    open: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    overdue_follow_ups: int
    overdue: list[OverdueRead]
    resolved: int
    median_days_to_resolution: float | None
