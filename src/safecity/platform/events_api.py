"""Event routes (``events:read``): the registered event types and the outbox's health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.events import event_types
from safecity.platform.relay import outbox_status
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/events", tags=["events"])

Reader = Annotated[Principal, Depends(require("events:read"))]


class EventTypeRead(BaseModel):
    """An event type and the JSON schema its payload must match."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    version: int
    description: str
    json_schema: dict[str, Any] = Field(alias="schema")


class OutboxStatusRead(BaseModel):
    """How far the relay is behind, and the error holding it up, if any."""

    pending: int = Field(description="Events committed but not yet on the bus.")
    sent: int
    failing: int = Field(description="Pending events whose publication has failed at least once.")
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float | None
    last_error: str | None = Field(description="The error on the oldest failing event.")
    last_error_event_id: str | None


@router.get("/types", response_model=list[EventTypeRead], response_model_by_alias=True)
def list_event_types(principal: Reader) -> list[EventTypeRead]:
    """Every registered event type with its payload schema (sorted by name, version)."""
    return [
        EventTypeRead(
            name=t.name, version=t.version, description=t.description, json_schema=t.schema
        )
        for t in event_types()
    ]


@router.get("/outbox", response_model=OutboxStatusRead)
def get_outbox_status(session: DbSession, principal: Reader) -> OutboxStatusRead:
    """Pending count, age of the oldest pending event and the last relay error."""
    status = outbox_status(session)
    return OutboxStatusRead(
        pending=status.pending,
        sent=status.sent,
        failing=status.failing,
        oldest_pending_at=status.oldest_pending_at,
        oldest_pending_age_s=status.oldest_pending_age_s,
        last_error=status.last_error,
        last_error_event_id=status.last_error_event_id,
    )
