"""HTTP count ingest and reading: ``POST /api/crowd/counts``, ``GET
/api/crowd/hotspots/{code}/counts``.

``POST`` takes a JSON array of count reports (the feed format of
:mod:`safecity.crowd.counts`, ``docs/crowd-feeds.md``), at most
:data:`~safecity.crowd.counts.MAX_BATCH` (more → 413). The caller holds ``crowd:ingest``: a
device principal (a sensor gateway's bearer key, role ``device``) or an operator's feed; it
may report for the hotspots of its org subtree only (others are unknown to it). The batch
is all or nothing: a bad report answers 422 problem+json naming its ``index`` (and the
``hotspot`` when that is the problem), and nothing of the batch is stored. Success answers
202 with the :class:`~safecity.crowd.counts.IngestReport`.

``GET`` (``crowd:read``) returns a hotspot's stored hours in ``[start, end)`` (UTC hour
starts; default the last 24 hours, at most :data:`MAX_RANGE`) with each hour's status
(``ok``, ``partial``, ``gap``, ``outage``). A hotspot outside the reader's org scope
answers 404, like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from safecity.crowd import consumers as _consumers  # noqa: F401  (registers the bus consumer)
from safecity.crowd import counts
from safecity.crowd.models import CrowdHotspot
from safecity.crowd.permissions import INGEST, READ
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, NotFound, PayloadTooLarge
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, ensure_in_scope, require

__all__ = ["MAX_RANGE", "ingest_router"]

MAX_RANGE: Final = timedelta(days=31)

ingest_router = APIRouter(prefix="/api/crowd", tags=["crowd"])

Ingester = Annotated[Principal, Depends(require(INGEST))]
Reader = Annotated[Principal, Depends(require(READ))]
HotspotCode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Reports = Annotated[
    list[Any],
    Body(
        description=(
            f"Count reports (JSON objects), at most {counts.MAX_BATCH}; all or nothing: the "
            "first bad one refuses the batch with its index."
        )
    ),
]


class CountHourRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    hour: datetime
    """UTC start of the hour."""
    count: float | None
    status: str
    sensors: int


class HotspotCountsRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hotspot: str
    timezone: str
    start: datetime
    end: datetime
    hours: list[CountHourRead]


@ingest_router.post(
    "/counts",
    status_code=202,
    response_model=counts.IngestReport,
    summary="Report hourly people counts (sensor gateways, operators' feeds)",
    responses={413: {"description": f"More than {counts.MAX_BATCH} reports"}},
)
def post_counts(principal: Ingester, session: DbSession, reports: Reports) -> counts.IngestReport:
    if len(reports) > counts.MAX_BATCH:
        raise PayloadTooLarge(
            f"a batch holds at most {counts.MAX_BATCH} reports, got {len(reports)}"
        )
    return counts.record_counts(session, principal=principal, reports=reports)


@ingest_router.get(
    "/hotspots/{code}/counts",
    response_model=HotspotCountsRead,
    summary="A hotspot's hourly counts with their status (ok, partial, gap, outage)",
)
def get_counts(
    principal: Reader,
    session: DbSession,
    code: HotspotCode,
    start: Annotated[datetime | None, Query(description="From (ISO 8601 with offset).")] = None,
    end: Annotated[datetime | None, Query(description="Until, exclusive.")] = None,
) -> HotspotCountsRead:
    spot = session.scalar(select(CrowdHotspot).where(CrowdHotspot.code == code))
    if spot is None:
        raise NotFound("hotspot not found")
    ensure_in_scope(principal, spot.org_id, what="hotspot")
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a UTC offset (e.g. +08:00 or Z)")
    until = end or counts.floor_hour(utcnow()) + timedelta(hours=1)
    since = counts.floor_hour(start or until - timedelta(days=1))
    if since >= until:
        raise InvalidInput("start must be before end")
    if until - since > MAX_RANGE:
        raise InvalidInput(f"at most {MAX_RANGE.days} days per request")
    rows = counts.hotspot_counts(session, hotspot=spot, start=since, end=until)
    return HotspotCountsRead(
        hotspot=spot.code,
        timezone=spot.timezone,
        start=since,
        end=until,
        hours=[CountHourRead.model_validate(r) for r in rows],
    )
