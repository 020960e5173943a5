"""What the cases API and the portal read and write. Persons' names, phones, e-mail, ID
numbers and addresses are :data:`Personal`; the portal's models carry none of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.timeline import MAX_NOTE_CHARS, TimelineEntryRead
from safecity.security.redact import Personal

OrgId = Annotated[str, Field(min_length=1, max_length=32)]
Text = Annotated[str, Field(max_length=MAX_NOTE_CHARS)]
NoteText = Annotated[str, Field(min_length=1, max_length=MAX_NOTE_CHARS)]


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["victim", "suspect", "witness"]
    name: Annotated[str, Field(max_length=100), Personal] = ""
    phone: Annotated[str, Field(max_length=40, pattern=r"^[0-9+()\- ]*$"), Personal] = ""
    email: Annotated[str, Field(max_length=200), Personal] = ""
    id_number: Annotated[str, Field(max_length=40), Personal] = ""
    address: Annotated[str, Field(max_length=300), Personal] = ""


class PersonRead(BaseModel):
    """A person as read (masked ``"***"`` outside the owning station)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    role: str
    name: Annotated[str, Personal]
    phone: Annotated[str, Personal]
    email: Annotated[str, Personal]
    id_number: Annotated[str, Personal]
    address: Annotated[str, Personal]
    created_at: datetime


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["alert", "report", "call"]
    case_type: Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")]
    org_id: OrgId | None = None
    alert_id: OrgId | None = None
    summary: Text = ""
    address: Annotated[str, Field(max_length=300), Personal] = ""
    victim_opt_out: bool = False
    persons: Annotated[list[PersonIn], Field(max_length=20)] = []


class CaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: str
    org_id: str
    case_type: str
    state: str
    source: str
    alert_id: str | None
    summary: str
    address: Annotated[str, Personal]
    victim_opt_out: bool
    disclosure_override: bool | None
    not_registered_reason: str | None
    assigned_officer_id: str | None
    created_at: datetime
    updated_at: datetime


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    author: str
    text: str
    public_text: str | None
    reply_to: str | None
    created_at: datetime


class CaseDetail(CaseRead):
    disclosed: bool
    timeline: list[TimelineEntryRead]
    transitions: list[str]
    comments: list[CommentRead]


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text | None = None


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: OrgId
    reason: NoteText


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    officer_id: OrgId | None


class DisclosureIn(BaseModel):
    """A supervisor's override of the disclosure policy (``None``: back to the policy),
    or the victim's opt-out as recorded by staff."""

    model_config = ConfigDict(extra="forbid")

    override: bool | None = None
    victim_opt_out: bool | None = None
    reason: NoteText


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NoteText
    public: bool = False


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NoteText
    reply_to: OrgId | None = None


class ReviewIn(BaseModel):
    """Publish a citizen comment as ``public_text`` (staff checked it; phone and ID
    numbers are masked again anyway)."""

    model_config = ConfigDict(extra="forbid")

    public_text: NoteText


# --------------------------------------------------------------------------- portal

Number = Annotated[str, Field(min_length=1, max_length=40)]
Code = Annotated[str, Field(min_length=1, max_length=40)]


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: Number
    code: Code


class CommentIn(LookupIn):
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class PublicEntry(BaseModel):
    at: datetime
    kind: Literal["stage", "note", "comment", "reply"]
    stage: str | None = None
    text: str | None = None


class PublicCase(BaseModel):
    number: str
    case_type: str
    stage: str
    unit: str
    opened_at: datetime
    timeline: list[PublicEntry]
    rateable: bool = False
    """Solved or closed and not rated yet: the citizen may rate the handling (1-5)."""
    rating: int | None = None


class CommentAccepted(BaseModel):
    status: Literal["received"]
    shown_after_review: bool
