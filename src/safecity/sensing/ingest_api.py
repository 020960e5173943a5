"""HTTP batch ingest: ``POST /api/ingest/events`` — devices and gateways post raw events.

The body is a JSON array of raw events (see :mod:`safecity.sensing.event_types`), at most
:data:`MAX_BATCH` of them (more → 413; the app's body-size limit applies as well). The
caller is a device principal (``kind="device"``, role ``device``) with a bearer token: the
``device`` role holds ``sensing:ingest``. The answer is 202 with how many events were
accepted and, per rejected item, its position and reason; rejected items go to the
dead-letter sink and never stop the batch. The batch goes to the process's one
:class:`~safecity.sensing.pipeline.Pipeline` (built on first use from the shipped rules and
the sensor registry), which writes the alerts it raises in one transaction.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError

from safecity.platform.errors import PayloadTooLarge, ServiceUnavailable
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, grant, require
from safecity.sensing import groupkeys
from safecity.sensing.pipeline import ItemRejection, Pipeline
from safecity.sensing.pipelines import build_pipeline

__all__ = ["MAX_BATCH", "IngestReport", "get_pipeline", "router"]

PERMISSION: Final = "sensing:ingest"
MAX_BATCH: Final = 1000
CONNECTOR: Final = "http"

grant("device", PERMISSION)

router = APIRouter(prefix="/api/ingest", tags=["sensing"])

_build_lock = threading.Lock()


class ItemRejectionRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    reason: str
    detail: str


class IngestReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: int
    rejected: int
    rejections: list[ItemRejectionRead]
    matches: int
    alerts: int


def get_pipeline(app: FastAPI) -> Pipeline:
    """The app's pipeline, built on first use (one per process)."""
    pipeline: Pipeline | None = getattr(app.state, "ingest_pipeline", None)
    if pipeline is None:
        with _build_lock:
            pipeline = getattr(app.state, "ingest_pipeline", None)
            if pipeline is None:
                pipeline = build_pipeline(app.state.runtime, connector=CONNECTOR)
                app.state.ingest_pipeline = pipeline
    return pipeline


RawBatch = Annotated[
    list[Any],
    Body(
        description=(
            f"Raw sensor events (JSON objects), at most {MAX_BATCH}; each is validated on "
            "its own and a bad one is reported, not fatal."
        ),
    ),
]


@router.post(
    "/events",
    status_code=202,
    response_model=IngestReport,
    summary="Post a batch of raw sensor events (device principals)",
    responses={413: {"description": f"More than {MAX_BATCH} events or too large a body"}},
)
def ingest_events(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(require(PERMISSION))],
    events: RawBatch,
) -> IngestReport:
    if len(events) > MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} events, got {len(events)}")
    group = groupkeys.group_of(session, principal_id=principal.id)
    # Authentication may have touched the token (a write): end that transaction now so the
    # pipeline's own per-batch transaction does not wait on this request's write lock.
    session.commit()
    pipeline = get_pipeline(request.app)
    source = f"http:{principal.id}"
    positions: list[int] | None = None
    wrong: list[ItemRejection] = []
    if group is not None:  # a device-group key: other groups' sensors are rejected per item
        events, positions, wrong = groupkeys.split_by_group(
            pipeline, events, group=group, source=source
        )
    try:
        result = pipeline.process_raw(events, source=source)
    except SQLAlchemyError:  # matches stay pending in the pipeline; the device retries
        raise ServiceUnavailable("alerts could not be written now; retry the batch") from None
    if positions is not None:
        moved = [ItemRejection(positions[r.index], r.reason, r.detail) for r in result.rejections]
        result.rejections = sorted([*moved, *wrong], key=lambda r: r.index)
    return IngestReport(
        accepted=result.accepted,
        rejected=result.rejected,
        rejections=[
            ItemRejectionRead(index=r.index, reason=r.reason, detail=r.detail)
            for r in result.rejections
        ],
        matches=result.matches,
        alerts=len(set(result.alerts)),
    )
