"""Organisation routes: thin wrappers over :mod:`safecity.orgs.service`.

Reads need ``orgs:read`` (every staff role) and are limited to what the caller may see
(see the service's visibility rule); writes and imports need ``orgs:write`` (admin).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse

from safecity.orgs import importer, service
from safecity.orgs.models import Org
from safecity.orgs.schemas import (
    ImportReport,
    OrgCreate,
    OrgDetail,
    OrgKind,
    OrgRead,
    OrgTreeNode,
    OrgUpdate,
)
from safecity.platform.errors import PayloadTooLarge
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, ensure_in_scope, require

router = APIRouter(prefix="/api/orgs", tags=["orgs"])

Reader = Annotated[Principal, Depends(require("orgs:read"))]
Writer = Annotated[Principal, Depends(require("orgs:write"))]

GEOJSON_MEDIA_TYPE = "application/geo+json"


ORG_LIST = ListSpec(
    sort={
        "code": Org.code,
        "kind": Org.kind,
        "name_zh": Org.name_zh,
        "name_en": Org.name_en,
        "created_at": Org.created_at,
        "updated_at": Org.updated_at,
    },
    filters={"parent_id": Org.parent_id},
    default_sort="code",
    default_limit=200,
    max_limit=1000,
)


@router.get("", response_model=Page[OrgRead], summary="List organisations visible to the caller")
def list_orgs(
    session: DbSession,
    principal: Reader,
    params: Annotated[ListParams, Depends(ORG_LIST.params)],
    kind: OrgKind | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Code or name contains")] = None,
    include_inactive: bool = False,
) -> Page[OrgRead]:
    query = service.visible_query(
        session=session, principal=principal, kind=kind, include_inactive=include_inactive, search=q
    )
    return paginate(session=session, query=query, params=params, item=OrgRead.of)


@router.get("/tree", response_model=list[OrgTreeNode], summary="The visible organisation tree")
def org_tree(
    session: DbSession, principal: Reader, include_inactive: bool = False
) -> list[OrgTreeNode]:
    roots = service.tree(session=session, principal=principal, include_inactive=include_inactive)
    return [OrgTreeNode.of(node) for node in roots]


@router.get(
    "/areas.geojson",
    summary="District and station areas as a GeoJSON FeatureCollection (for the map)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}}},
)
def org_areas(
    session: DbSession,
    principal: Reader,
    kind: Annotated[list[OrgKind] | None, Query()] = None,
) -> JSONResponse:
    kinds = tuple(kind) if kind else service.AREA_KINDS
    collection: dict[str, Any] = service.area_features(
        session=session, principal=principal, kinds=kinds
    )
    return JSONResponse(collection, media_type=GEOJSON_MEDIA_TYPE)


@router.post(
    "/import",
    response_model=ImportReport,
    summary="Import organisations from a CSV or YAML file (all or nothing)",
)
async def import_orgs(
    session: DbSession,
    principal: Writer,
    file: Annotated[UploadFile, File(description="A .csv, .yaml/.yml or .json file")],
    dry_run: bool = False,
) -> ImportReport:
    content = await file.read(importer.MAX_IMPORT_BYTES + 1)
    if len(content) > importer.MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"import files are limited to {importer.MAX_IMPORT_BYTES} bytes")
    result = importer.import_orgs(
        session=session,
        content=content,
        filename=file.filename or "upload.csv",
        actor=principal,
        dry_run=dry_run,
    )
    return ImportReport(
        filename=result.filename,
        dry_run=result.dry_run,
        total=result.total,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
    )


@router.get("/{org_id}", response_model=OrgDetail, summary="One organisation, with its area")
def get_org(org_id: str, session: DbSession, principal: Reader) -> OrgDetail:
    org = service.get_visible(session=session, principal=principal, org_id=org_id)
    return OrgDetail.of(org)


@router.post("", response_model=OrgDetail, status_code=201, summary="Add an organisation")
def create_org(body: OrgCreate, session: DbSession, principal: Writer) -> OrgDetail:
    if body.parent_id is not None:
        ensure_in_scope(principal, body.parent_id, what="parent organisation")
    org = service.create(
        session=session,
        code=body.code,
        kind=body.kind,
        name_zh=body.name_zh,
        name_en=body.name_en,
        parent_id=body.parent_id,
        area=body.area,
        area_synthetic=body.area_synthetic,
        service_codes=body.service_codes,
        actor=principal,
    )
    return OrgDetail.of(org)


@router.patch(
    "/{org_id}",
    response_model=OrgDetail,
    summary="Rename, move, re-draw, deactivate or reactivate an organisation",
)
def update_org(org_id: str, body: OrgUpdate, session: DbSession, principal: Writer) -> OrgDetail:
    ensure_in_scope(principal, org_id, what="organisation")
    service.get(session=session, org_id=org_id)
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for key in ("name_zh", "name_en", "area_synthetic", "service_codes"):
        if key in given and getattr(body, key) is not None:
            changes[key] = getattr(body, key)
    if "area" in given:
        changes["area"] = body.area
    if "parent_id" in given:
        if body.parent_id is not None:
            ensure_in_scope(principal, body.parent_id, what="parent organisation")
        changes["parent_id"] = body.parent_id
    if body.active is False:
        service.deactivate(session=session, org_id=org_id, actor=principal, cascade=body.cascade)
    if changes:
        service.update(session=session, org_id=org_id, actor=principal, **changes)
    if body.active is True:
        service.reactivate(session=session, org_id=org_id, actor=principal)
    return OrgDetail.of(service.get(session=session, org_id=org_id))
