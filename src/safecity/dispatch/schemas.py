"""What the dispatch API reads and writes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.timeline import MAX_NOTE_CHARS, TimelineEntryRead
from safecity.security.redact import Personal

MAX_DESCRIPTION = 4000


class WorkOrderRead(BaseModel):
    """A work order as staff in scope see it (requester fields are personal)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    service_request_id: str
    service_code: str
    state: str
    description: str
    lat: float | None
    lng: float | None
    h3_cell: str | None
    address: str | None
    department_id: str
    area_org_id: str
    source: str
    source_ref: str | None
    requester_email: Annotated[str | None, Personal] = None
    requester_first_name: Annotated[str | None, Personal] = None
    requester_last_name: Annotated[str | None, Personal] = None
    requester_phone: Annotated[str | None, Personal] = None
    media_url: str | None
    dedup_key: str | None
    detail: dict[str, Any]
    expected_datetime: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ReplyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    work_order_id: str
    author_id: str
    body: str
    public: bool
    created_at: datetime


class WorkOrderDetail(WorkOrderRead):
    """One work order with its replies, timeline and the transitions the caller may apply."""

    replies: list[ReplyRead]
    timeline: list[TimelineEntryRead]
    transitions: list[str]


class WorkOrderIn(BaseModel):
    """Body of ``POST /api/dispatch/work-orders`` (staff open an order by hand)."""

    model_config = ConfigDict(extra="forbid")

    service_code: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION)
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    address: str | None = Field(default=None, max_length=500)
    dedup_key: str | None = Field(default=None, min_length=1, max_length=200)


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)
    public: bool = False


class RoutingRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    service_code: str
    area_org_id: str | None
    department_id: str
    created_at: datetime
    updated_at: datetime


class RoutingRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_code: str = Field(min_length=1, max_length=64)
    area_org_id: str | None = Field(default=None, min_length=1, max_length=32)
    department_id: str = Field(min_length=1, max_length=32)


class NoticeRead(BaseModel):
    """A public notice as anyone sees it (building level, rounded place)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    building_label: str
    lat: float | None
    lng: float | None
    created_at: datetime
