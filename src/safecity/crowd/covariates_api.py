"""Covariates and the events calendar over HTTP (:mod:`safecity.crowd.covariates`).

* ``POST /api/crowd/covariates/{kind}`` (``crowd:ingest``): a JSON array of rows in the
  kind's format (``{"scope": "SH", "hour": "...+08:00", "arrivals": 5200}``), at most
  :data:`~safecity.crowd.covariates.MAX_BATCH` (more → 413); all or nothing: a bad row
  answers 422 problem+json naming its ``index``. Answers 202 with the report.
* ``GET /api/crowd/events?from=&to=`` (``crowd:read``): events overlapping the window
  (default: the next 31 days), those at a hotspot of the reader's org subtree.
* ``POST /api/crowd/events`` (``crowd:manage``): the calendar as JSON
  (``{"events": [...]}``, the YAML file's structure); all or nothing, upsert by code.

Stored and validated, not yet used by the forecasting model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict

from safecity.crowd import covariates
from safecity.crowd.models import CrowdEvent
from safecity.crowd.permissions import INGEST, MANAGE, READ
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

__all__ = ["MAX_EVENTS_RANGE", "covariates_router"]

MAX_EVENTS_RANGE: Final = timedelta(days=400)

covariates_router = APIRouter(prefix="/api/crowd", tags=["crowd"])

Ingester = Annotated[Principal, Depends(require(INGEST))]
Reader = Annotated[Principal, Depends(require(READ))]
Manager = Annotated[Principal, Depends(require(MANAGE))]
Kind = Annotated[str, Path(description=f"One of {', '.join(covariates.KINDS)}.")]
Rows = Annotated[
    list[Any],
    Body(
        description=(
            f"Rows (JSON objects), at most {covariates.MAX_BATCH}; all or nothing: the first "
            "bad one refuses the batch with its index."
        )
    ),
]


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    code: str
    name: str
    kind: str
    hotspots: list[str]
    starts_at: datetime
    ends_at: datetime
    attendance: int | None
    source_url: str
    source_title: str


@covariates_router.post(
    "/covariates/{kind}",
    status_code=202,
    response_model=covariates.CovariateReport,
    summary="Report covariate values (arrivals, hotel occupancy, weather)",
    responses={413: {"description": f"More than {covariates.MAX_BATCH} rows"}},
)
def post_covariates(
    principal: Ingester, session: DbSession, kind: Kind, rows: Rows
) -> covariates.CovariateReport:
    if kind not in covariates.FEEDS:
        raise InvalidInput(f"kind must be one of {', '.join(covariates.KINDS)}")
    if len(rows) > covariates.MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {covariates.MAX_BATCH} rows, got {len(rows)}")
    return covariates.record_covariates(
        session, principal=principal, kind=kind, rows=rows, source=f"api:{principal.username}"
    )


@covariates_router.get(
    "/events",
    response_model=list[EventRead],
    summary="Events (concerts, light shows, fireworks, matches) overlapping a window",
)
def get_events(
    principal: Reader,
    session: DbSession,
    since: Annotated[
        datetime | None, Query(alias="from", description="From (ISO 8601 with offset).")
    ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Until, exclusive.")] = None,
) -> list[EventRead]:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a UTC offset (e.g. +08:00 or Z)")
    start = since or utcnow()
    end = until or start + timedelta(days=31)
    if start >= end:
        raise InvalidInput("from must be before to")
    if end - start > MAX_EVENTS_RANGE:
        raise InvalidInput(f"at most {MAX_EVENTS_RANGE.days} days per request")
    rows = covariates.events_between(session, start=start, end=end)
    visible = _visible_hotspots(session, principal, rows)
    return [EventRead.model_validate(r) for r in rows if visible.intersection(r.hotspots or [])]


def _visible_hotspots(session: DbSession, principal: Principal, rows: list[CrowdEvent]) -> set[str]:
    codes = {h for r in rows for h in (r.hotspots or [])}
    if principal.visible_org_ids is None:
        return codes
    spots = covariates.hotspots_by_code(session, codes)
    return {code for code, spot in spots.items() if principal.sees_org(spot.org_id)}


@covariates_router.post(
    "/events",
    response_model=covariates.CalendarReport,
    summary="Import the events calendar (JSON form of the YAML file); upsert by code",
)
def post_events(
    principal: Manager,
    session: DbSession,
    calendar: Annotated[dict[str, Any], Body(description='{"events": [...]}')],
) -> covariates.CalendarReport:
    return covariates.import_calendar(
        session, principal=principal, document=calendar, name="calendar"
    )
