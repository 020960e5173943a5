"""What the accidents pages and API read and write.

The parties' plate, licence number, policy number and phone are marked :data:`Personal`:
officers of the case's own station read them (audited); anyone else in scope gets them
masked. No public page shows them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.timeline import MAX_NOTE_CHARS, TimelineEntryRead
from safecity.security.redact import Personal

#: The eligibility checklist of the quick flow; any "no" sends the drivers to the police.
ELIGIBILITY: tuple[str, ...] = (
    "no_injuries",
    "two_vehicles_only",
    "vehicles_drivable",
    "no_impairment",
    "licences_valid",
    "insured",
    "no_public_property",
)

Lat = Annotated[float, Field(ge=-90, le=90)]
Lng = Annotated[float, Field(ge=-180, le=180)]
Plate = Annotated[str, Field(min_length=5, max_length=12, pattern=r"^[\w·-]+$")]
Licence = Annotated[str, Field(min_length=6, max_length=32, pattern=r"^[0-9A-Za-z]+$")]
InsurerCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
Policy = Annotated[str, Field(min_length=4, max_length=40, pattern=r"^[0-9A-Za-z-]+$")]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{6,15}$")]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class OpenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: Lat
    lng: Lng
    eligibility: dict[str, bool]


class PartyDataIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: Annotated[Plate, Personal]
    licence_no: Annotated[Licence, Personal]
    insurer_code: InsurerCode
    policy_no: Annotated[Policy, Personal]
    phone: Annotated[Phone, Personal]


class DeclarationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    own: Annotated[list[Code], Field(max_length=6)]
    other: Annotated[list[Code], Field(max_length=6)]


class ReviewIn(BaseModel):
    """An officer's decision on an escalated case (``share_a`` only for ``rule``)."""

    model_config = ConfigDict(extra="forbid")

    notes: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_CHARS)]
    share_a: Annotated[int, Field(ge=0, le=100)] | None = None


class PartyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    role: str
    plate: Annotated[str, Personal]
    licence_no: Annotated[str, Personal]
    insurer_code: str
    policy_no: Annotated[str, Personal]
    phone: Annotated[str, Personal]
    holder_name: Annotated[str, Personal] = ""
    field_sources: dict[str, Any] = Field(default_factory=dict)
    """Per data field: typed, or verified from an e-certificate (type, digest, time)."""
    own_situations: list[str]
    other_situations: list[str]
    declared_at: datetime | None
    road_cleared_at: datetime | None


class PhotoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    position: str
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    exif_taken_at: datetime | None
    exif_flags: list[str]
    matches: list[dict[str, Any]]
    uploaded_at: datetime


class NoticeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    party_role: str
    insurer_code: str
    status: str
    attempts: int
    acks: int
    acked_at: datetime | None
    external_claim_id: str | None
    assessed_at: datetime | None
    paid_at: datetime | None
    last_error: str | None


class CaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    ref: str
    org_id: str
    state: str
    lat: float
    lng: float
    eligibility: dict[str, Any]
    t0_started_at: datetime
    t1_road_cleared_at: datetime | None
    t2_signed_at: datetime | None
    t3_insurer_ack_at: datetime | None
    t4_assessed_at: datetime | None
    t5_paid_at: datetime | None
    liability: dict[str, Any] | None
    flags: list[dict[str, Any]]
    escalation_reason: str | None
    escalation_detail: str
    review_alert_id: str | None
    review_outcome: str | None
    seal_sha256: str | None
    updated_at: datetime


class CaseDetail(CaseRead):
    personal_visible: bool
    parties: list[PartyRead]
    photos: list[PhotoRead]
    notices: list[NoticeRead]
    timeline: list[TimelineEntryRead]
    transitions: list[str]


class DistrictTiming(BaseModel):
    org_id: str
    name_zh: str
    name_en: str
    cases: int
    median_t0_t2_s: float | None
    median_t2_t3_s: float | None


class InsurerReport(BaseModel):
    """A report from an insurer about a claim it acknowledged (signed webhook body)."""

    model_config = ConfigDict(extra="forbid")

    claim_id: Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    event: Annotated[str, Field(pattern=r"^(assessed|paid)$")]
    at: datetime | None = None
