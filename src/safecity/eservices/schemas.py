"""What the e-services applications API, pages and CLI read and write.

:class:`ApplicationRead` is one application as a list shows it (the applicant's own list,
a department's queue); :class:`ApplicationDetail` adds the answers, attachments, the
timeline and the working-day clock. Answers and the applicant's record are personal:
only the applicant and staff of the handling org in scope read them, and staff reads are
audited (:mod:`safecity.eservices.service`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.redact import Personal

ItemCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
PageId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
IdempotencyKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{8,120}$")]
Action = Literal[
    "accept", "review", "request_supplement", "supplement", "approve", "reject", "issue"
]
ACTIONS: tuple[str, ...] = (
    "accept",
    "review",
    "request_supplement",
    "supplement",
    "approve",
    "reject",
    "issue",
)


class PartRead(BaseModel):
    """One department's child application of a single-window application."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    department: str
    org_id: str
    state: str
    due_on: date | None
    paused: bool
    certificate_id: str | None
    certificate_type: str | None


class ApplicationRead(BaseModel):
    """One application (no answers)."""

    id: str
    reference: str
    item_code: str
    item_name_zh: str
    item_name_en: str
    department: str
    org_id: str
    applicant_id: str
    state: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    issued_at: datetime | None
    due_on: date | None
    """Working-day due date (None until submitted; moves while the clock is paused)."""
    paused: bool
    paused_workdays: int
    current_page: str | None
    """The next page to fill (drafts); None: every answer is in (check answers)."""
    certificate_id: str | None
    certificate_type: str | None
    parent_id: str | None
    single_window: bool
    parts: list[PartRead] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    """What the caller may do next (names for :func:`service.act` / submit)."""


class AttachmentRead(BaseModel):
    """A material of an application: uploaded bytes, or pulled from an e-licence."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    application_id: str
    material_code: str
    source: Literal["pulled", "uploaded"]
    pulled_from: str | None
    filename: str | None
    content_type: str | None
    size_bytes: int
    sha256: str | None
    created_at: datetime


class MaterialStatus(BaseModel):
    """A catalogue material of the item and whether the application has it."""

    code: str
    name_zh: str
    name_en: str
    source: Literal["pulled", "uploaded"]
    pulled_from: str | None
    accept: list[str]
    required: bool
    department: str | None
    provided: bool
    provided_as: Literal["pulled", "uploaded"] | None


class TimelineItem(BaseModel):
    """A step of the application's history."""

    at: datetime
    kind: str
    actor_id: str | None
    from_state: str | None
    to_state: str | None
    note: str | None


class PauseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    reason: str
    started_on: date
    ended_on: date | None
    workdays: int


class Deadline(BaseModel):
    """The working-day clock of an application."""

    workdays: int
    basis: str
    source: str
    start_on: date | None
    due_on: date | None
    elapsed_workdays: int
    remaining_workdays: int | None
    paused: bool
    paused_workdays: int
    overdue: bool
    pauses: list[PauseRead] = Field(default_factory=list)


class ApplicationDetail(ApplicationRead):
    """One application in full: answers, materials, attachments, timeline, clock."""

    form_id: str
    form_version: int
    answers: Annotated[dict[str, Any], Personal]
    materials: list[MaterialStatus]
    attachments: list[AttachmentRead]
    timeline: list[TimelineItem]
    deadline: Deadline
    decision_note: str | None
    idempotency_key: str | None


class FieldErrorOut(BaseModel):
    field: str
    code: str
    zh: str
    en: str


# --------------------------------------------------------------------------- inputs


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: ItemCode


class PageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[str, Any] = Field(max_length=200)


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: IdempotencyKey


class ActIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str | None, Field(max_length=MAX_NOTE_CHARS)] = None


class ItemSummary(BaseModel):
    """A catalogue item as the public list shows it."""

    code: str
    name_zh: str
    name_en: str
    type: str
    departments: list[str]
    deadline_workdays: int
    deadline_basis: str
    single_window: bool
    materials_total: int
    materials_pulled: int
    certificates: list[str]


class ItemStats(BaseModel):
    """Working days from submission to issue (or decision) of one item."""

    item_code: str
    count: int
    finished: int
    median_workdays: float | None
    p90_workdays: float | None
    overdue: int
    """Still open past the due date."""
    late: int = 0
    """Decided after more working days than the deadline allows."""


class Stats(BaseModel):
    items: list[ItemStats]
    materials_pulled: int
    materials_uploaded: int
    share_pulled: float
