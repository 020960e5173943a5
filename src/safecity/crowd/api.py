"""HTTP API of crowd hotspots (``/api/crowd``): list, read, create, edit, import and
deactivate the places whose crowds are forecast (:mod:`safecity.crowd.hotspots`).

Reading needs ``crowd:read`` (officers, analysts), changing ``crowd:manage``
(supervisors, admins); both are scoped to the caller's org subtree. The GeoJSON map of
the hotspots is declared before ``/hotspots/{code}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse

from safecity.crowd import hotspots
from safecity.crowd import permissions as perms
from safecity.crowd.schemas import CODE_PATTERN, HotspotIn, HotspotPatch, HotspotRead, ImportRead
from safecity.platform.pagination import ListParams, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/crowd", tags=["crowd"])

Reader = Annotated[Principal, Depends(require(perms.READ))]
Manager = Annotated[Principal, Depends(require(perms.MANAGE))]
HotspotCode = Annotated[str, Path(min_length=2, max_length=64, pattern=CODE_PATTERN)]

GEOJSON = "application/geo+json"


@router.get("/hotspots", response_model=Page[HotspotRead], summary="Hotspots in scope")
def list_hotspots(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(hotspots.HOTSPOT_LIST.params)],
) -> Page[HotspotRead]:
    return hotspots.list_hotspots(session=session, principal=principal, params=params)


@router.get(
    "/hotspots.geojson",
    summary="Active hotspots in scope as a GeoJSON FeatureCollection (the console map)",
    responses={200: {"content": {GEOJSON: {}}}},
)
def hotspots_geojson(
    principal: Reader,
    session: DbSession,
    code: Annotated[str | None, Query(min_length=2, max_length=64, pattern=CODE_PATTERN)] = None,
) -> JSONResponse:
    rows = hotspots.all_in_scope(session=session, principal=principal, active_only=True)
    if code is not None:
        rows = [h for h in rows if h.code == code]
    features = [
        {
            "type": "Feature",
            "geometry": h.geometry,
            "properties": {
                "code": h.code,
                "name_zh": h.name_zh,
                "name_en": h.name_en,
                "kind": "hotspot",
                "capacity": h.capacity,
            },
        }
        for h in rows
    ]
    return JSONResponse({"type": "FeatureCollection", "features": features}, media_type=GEOJSON)


@router.post("/hotspots", response_model=HotspotRead, status_code=201, summary="Create a hotspot")
def create_hotspot(principal: Manager, session: DbSession, body: HotspotIn) -> HotspotRead:
    return hotspots.read(hotspots.create(session=session, principal=principal, data=body))


@router.post(
    "/hotspots/import",
    response_model=ImportRead,
    summary="Create or update hotspots from a GeoJSON FeatureCollection (all or nothing)",
)
def import_hotspots(
    principal: Manager,
    session: DbSession,
    body: Annotated[dict[str, Any], Body(description="A GeoJSON FeatureCollection")],
) -> ImportRead:
    report = hotspots.import_collection(session=session, principal=principal, data=body)
    return ImportRead(
        total=report.total,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        codes=report.codes,
    )


@router.get("/hotspots/{code}", response_model=HotspotRead, summary="One hotspot")
def get_hotspot(principal: Reader, session: DbSession, code: HotspotCode) -> HotspotRead:
    return hotspots.read(hotspots.get(session=session, principal=principal, code=code))


@router.patch("/hotspots/{code}", response_model=HotspotRead, summary="Edit a hotspot")
def update_hotspot(
    principal: Manager, session: DbSession, code: HotspotCode, body: HotspotPatch
) -> HotspotRead:
    return hotspots.read(
        hotspots.update(session=session, principal=principal, code=code, data=body)
    )


@router.delete(
    "/hotspots/{code}",
    response_model=HotspotRead,
    summary="Deactivate a hotspot (kept, with its counts and forecasts)",
)
def deactivate_hotspot(principal: Manager, session: DbSession, code: HotspotCode) -> HotspotRead:
    return hotspots.read(hotspots.deactivate(session=session, principal=principal, code=code))
