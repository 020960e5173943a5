"""Running the sensing pipeline: rule-set versions, dead letters, device-group ingest keys.

GET  /api/sensing/rules                    versions, newest first (rules:read)
POST /api/sensing/rules                    publish a rule file (rules:write); 422 lists errors
GET  /api/sensing/rules/{version}          one version with its YAML (0 = shipped)
GET  /api/sensing/rules/{version}/diff     kept/changed/added/removed against ?against=
POST /api/sensing/rules/{version}/rollback publish that version's text again (rules:write)
GET  /api/sensing/dead-letters             rejected messages (sensing:read), filters
POST /api/sensing/keys                     an ingest key for a device group (sensing:keys)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.pagination import ListParams, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require
from safecity.sensing import deadletters, groupkeys, rulesets
from safecity.sensing.ops_models import MAX_NOTE, DeadLetterRow, RuleSetVersion
from safecity.sensing.rules import RuleSet
from safecity.sensing.rules_schema import parse_rule_text

router = APIRouter(prefix="/api/sensing", tags=["sensing"])

RulesReader = Annotated[Principal, Depends(require(rulesets.READ))]
RulesWriter = Annotated[Principal, Depends(require(rulesets.WRITE))]
Reader = Annotated[Principal, Depends(require("sensing:read"))]
KeyIssuer = Annotated[Principal, Depends(require(groupkeys.KEYS))]


class RuleVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    sha256: str
    author_id: str
    note: str
    rule_count: int
    active: bool
    created_at: datetime | None
    diff: dict[str, Any] = Field(default_factory=dict)


class RuleVersionFull(RuleVersionRead):
    yaml_text: str


class RulePublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml_text: str = Field(max_length=rulesets.MAX_YAML_CHARS)
    note: str = Field(default="", max_length=MAX_NOTE)


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=MAX_NOTE)


class RuleDiff(BaseModel):
    version: int
    against: int
    kept: list[str]
    changed: list[str]
    added: list[str]
    removed: list[str]


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    connector: str
    reason: str
    detail: str
    source: str
    sensor_id: str | None
    type: str | None
    raw: str
    raw_truncated: bool
    received_at: datetime

    @classmethod
    def of(cls, row: DeadLetterRow) -> DeadLetterRead:
        return cls(
            id=row.id,
            connector=row.connector,
            reason=row.reason,
            detail=row.detail,
            source=row.source,
            sensor_id=row.sensor_id,
            type=row.type,
            raw=row.raw.decode("utf-8", errors="replace"),
            raw_truncated=row.raw_truncated,
            received_at=row.received_at,
        )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_group: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    org_id: str | None = None


class KeyIssued(BaseModel):
    user_id: str
    username: str
    device_group: str
    token: str


@router.get("/rules", response_model=Page[RuleVersionRead], summary="Rule-set versions")
def list_versions(
    session: DbSession,
    principal: RulesReader,
    params: Annotated[ListParams, Depends(rulesets.VERSION_LIST.params)],
) -> Page[RuleVersionRead]:
    return rulesets.list_versions(session=session, params=params, item=RuleVersionRead)


@router.post(
    "/rules",
    response_model=RuleVersionRead,
    status_code=201,
    summary="Publish a rule file (validated as a whole; every process reloads it)",
)
def publish(session: DbSession, principal: RulesWriter, body: RulePublish) -> RuleVersionRead:
    row = rulesets.publish(session, yaml_text=body.yaml_text, actor=principal, note=body.note)
    return RuleVersionRead.model_validate(row)


@router.get("/rules/{version}", response_model=RuleVersionFull, summary="One rule-set version")
def show_version(session: DbSession, principal: RulesReader, version: int) -> RuleVersionFull:
    return RuleVersionFull.model_validate(rulesets.get_version(session, version=version))


@router.get("/rules/{version}/diff", response_model=RuleDiff, summary="Diff of two versions")
def diff_versions(
    session: DbSession,
    principal: RulesReader,
    version: int,
    against: Annotated[int | None, Query(ge=0)] = None,
) -> RuleDiff:
    base = version - 1 if against is None else against
    new = rulesets.get_version(session, version=version)
    old = rulesets.get_version(session, version=max(base, 0))
    change = rulesets.diff(_parsed(old), _parsed(new))
    return RuleDiff(version=version, against=max(base, 0), **change)


def _parsed(row: RuleSetVersion) -> RuleSet:
    if row.version == 0:
        return RuleSet.shipped()
    return RuleSet([parse_rule_text(row.yaml_text, source=f"version {row.version}")])


@router.post(
    "/rules/{version}/rollback",
    response_model=RuleVersionRead,
    status_code=201,
    summary="Publish an earlier version again",
)
def rollback(
    session: DbSession, principal: RulesWriter, version: int, body: RollbackBody
) -> RuleVersionRead:
    row = rulesets.rollback(session, version=version, actor=principal, note=body.note)
    return RuleVersionRead.model_validate(row)


@router.get(
    "/dead-letters", response_model=Page[DeadLetterRead], summary="Rejected sensor messages"
)
def list_dead_letters(
    session: DbSession,
    principal: Reader,
    params: Annotated[ListParams, Depends(deadletters.DEAD_LETTER_LIST.params)],
) -> Page[DeadLetterRead]:
    return deadletters.list_letters(session=session, params=params, item=DeadLetterRead.of)


@router.post(
    "/keys", response_model=KeyIssued, status_code=201, summary="Ingest key for a device group"
)
def issue_key(session: DbSession, principal: KeyIssuer, body: KeyCreate) -> KeyIssued:
    key = groupkeys.issue_key(
        session, group=body.device_group, actor=principal, org_id=body.org_id, name=body.name
    )
    return KeyIssued(
        user_id=key.user_id, username=key.username, device_group=key.device_group, token=key.token
    )
