"""HTTP API of the person index's machinery (``/api/linkage/index``).

* ``POST /ingest`` (``linkage:manage``): take in the case persons (all, or those created
  since ``since``) the caller's scope covers; answers the number created or changed.
* ``POST /train`` (``linkage:manage``): train a model on the index and make it active (201).
* ``POST /run`` (``linkage:manage``): score the records not yet scored with the active
  model; answers the run's counts and time.
* ``GET /models`` (``linkage:read``): model versions, newest first (no personal data).

Ingest, training and runs are audited by :mod:`safecity.linkage.index`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from safecity.linkage import index
from safecity.linkage import permissions as perms
from safecity.linkage.models import LinkModel
from safecity.platform.runtime import DbSession, settings_for
from safecity.security.rbac import Principal, require

index_router = APIRouter(prefix="/api/linkage/index", tags=["linkage"])

Reader = Annotated[Principal, Depends(require(perms.READ))]
Manager = Annotated[Principal, Depends(require(perms.MANAGE))]

MAX_MODELS = 100


class IngestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: datetime | None = None
    limit: int = Field(default=index.INGEST_BATCH, ge=1, le=50_000)


class IngestOut(BaseModel):
    changed: int


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    version: str
    trained_at: datetime
    sha256: str
    auto_link: float
    review: float
    metrics: dict[str, Any]
    active: bool


class RunOut(BaseModel):
    model_version: str | None
    scored: int
    candidate_pairs: int
    auto_linked: int
    queued: int
    skipped_rejected: int
    already_linked: int
    seconds: float


@index_router.post("/ingest", response_model=IngestOut, summary="Take in case persons")
def ingest(
    principal: Manager, session: DbSession, body: Annotated[IngestIn | None, Body()] = None
) -> IngestOut:
    data = body or IngestIn()
    changed = index.ingest_cases(session, principal=principal, since=data.since, limit=data.limit)
    return IngestOut(changed=changed)


@index_router.post(
    "/train",
    response_model=ModelRead,
    status_code=201,
    summary="Train a person-index model on the index and make it active",
)
def train(principal: Manager, session: DbSession) -> ModelRead:
    row = index.train_model(session, principal=principal, settings=settings_for(session))
    return ModelRead.model_validate(row)


@index_router.post("/run", response_model=RunOut, summary="Score the new records")
def run(principal: Manager, session: DbSession) -> RunOut:
    report = index.run(session, principal=principal, settings=settings_for(session))
    return RunOut(**report.as_dict())


@index_router.get("/models", response_model=list[ModelRead], summary="Model versions")
def models(principal: Reader, session: DbSession) -> list[ModelRead]:
    rows = session.scalars(
        select(LinkModel).order_by(LinkModel.trained_at.desc(), LinkModel.id).limit(MAX_MODELS)
    )
    return [ModelRead.model_validate(r) for r in rows]
