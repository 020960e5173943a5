"""``GET /api/alerts.geojson``: the open alerts in the caller's scope for the map.

Scoped like every alert read (a station's officer sees the station's alerts) and limited
to ids, codes, states and places (no detail, nothing personal); at most
:data:`~safecity.alerts.queue.MAP_LIMIT` features, the most recently seen.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from safecity.alerts import queue
from safecity.alerts.workflow import READ
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

router = APIRouter(tags=["alerts"])

Reader = Annotated[Principal, Depends(require(READ))]
Code = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_.:-]*$")]


@router.get(
    "/api/alerts.geojson",
    summary="Open alerts in the caller's scope as GeoJSON points (for the map)",
    response_class=JSONResponse,
)
def alerts_geojson(
    principal: Reader,
    session: DbSession,
    severity: Code = None,
    category: Code = None,
    state: Code = None,
    limit: Annotated[int, Query(ge=1, le=queue.MAP_LIMIT)] = queue.MAP_LIMIT,
) -> JSONResponse:
    filters = queue.QueueFilters.parse(severity=severity, category=category, state=state)
    body = queue.map_collection(session=session, principal=principal, filters=filters, limit=limit)
    return JSONResponse(
        body, media_type="application/geo+json", headers={"Cache-Control": "no-store"}
    )
