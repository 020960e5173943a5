"""What the fraud API reads and writes. Indicator values are :data:`Personal`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from safecity.security.redact import Personal


class FeedBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=5000)]


class FeedAccepted(BaseModel):
    feed: str
    accepted: int


class IndicatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["phone", "account", "domain"]
    value: Annotated[str, Field(min_length=1, max_length=260), Personal]
    source: Literal["case", "model", "report", "operator", "manual"]
    evidence: Annotated[str, Field(max_length=300)]
    confidence: Annotated[float, Field(gt=0, le=1)] = 1.0
    reasons: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=10)] = []
    expires_at: datetime | None = None
    active: bool = Field(default=False, description="list at once (for confirmed cases)")


class IndicatorRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    value: Annotated[str, Personal]
    source: str
    confidence: float
    evidence: str
    reasons: list[str]
    state: str
    expires_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    created_at: datetime


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: Annotated[str, Field(max_length=2000)] | None = None


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["phone", "account", "domain"]
    value: Annotated[str, Field(min_length=1, max_length=260)]
    contact: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class AppealReceived(BaseModel):
    status: Literal["received"] = "received"


class AppealDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uphold: bool
    notes: Annotated[str, Field(min_length=1, max_length=2000)]


class AppealRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    indicator_id: str
    state: str
    contact: Annotated[str, Personal]
    reason: str
    decided_at: datetime | None
    created_at: datetime


class ActionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    action: str
    subject: str
    via: str | None
    score: float
    reasons: list[str]
    rules_version: str
    amount_cents: int | None
    h3_cell: str | None
    org_id: str
    state: str
    due_at: datetime
    outcome: str | None
    alert_id: str | None
    decided_at: datetime
    created_at: datetime
    closed_at: datetime | None


class ActionCloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Annotated[str, Field(min_length=1, max_length=24)]
    notes: Annotated[str, Field(max_length=2000)] = ""


class DashboardRead(BaseModel):
    weeks: list[str]
    totals: dict[str, Any]
    by_week: dict[str, dict[str, Any]]
    by_district: dict[str, dict[str, Any]]
