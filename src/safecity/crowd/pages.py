"""Console pages of crowd hotspots.

* ``GET /console/crowd/hotspots``: the hotspots in the caller's scope with their
  thresholds, a map of their outlines (the console's Leaflet map, fed by
  ``/api/crowd/hotspots.geojson``; plain outlines without a tile server) and, for
  managers, a GeoJSON import form;
* ``GET /console/crowd/hotspots/new`` and ``POST /console/crowd/hotspots``: a new hotspot;
* ``GET /console/crowd/hotspots/{code}``: one hotspot, its map and (for managers) the edit
  form, posting to ``/console/crowd/hotspots/{code}``, and a deactivate button.

Forms carry the session's CSRF token. List fields are plain text: entrances one per line,
neighbours as codes separated by commas or spaces, transit one station per line as
``name: exit, exit``, the outline as GeoJSON. A refused form comes back with the values
typed and the reason (the service's message) under a translated heading.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.crowd import hotspots
from safecity.crowd import permissions as perms
from safecity.crowd.api import HotspotCode
from safecity.crowd.models import CrowdHotspot
from safecity.crowd.schemas import HotspotIn, HotspotPatch
from safecity.orgs.models import Org
from safecity.platform.errors import InvalidInput, PayloadTooLarge, SafeCityError
from safecity.platform.middleware import register_upload_limit
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security.rbac import Principal

LIST = "/console/crowd/hotspots"
NEW = LIST + "/new"
IMPORT = LIST + "/import"
GEOJSON = "/api/crowd/hotspots.geojson"

pages_router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(perms.READ))]
Manager = Annotated[Principal, Depends(console_require(perms.MANAGE))]

FORM_FIELDS: tuple[str, ...] = (
    "code",
    "name_zh",
    "name_en",
    "org",
    "capacity",
    "warn_density",
    "critical_density",
    "timezone",
    "region",
    "expected_sensors",
    "entrances",
    "neighbours",
    "transit",
    "geometry",
)

register_upload_limit(re.escape(IMPORT), hotspots.MAX_IMPORT_BYTES + 64 * 1024)


# --------------------------------------------------------------------------- form text


def form_of(hotspot: CrowdHotspot, org_code: str) -> dict[str, str]:
    """A stored hotspot as the edit form's text values."""
    return {
        "code": hotspot.code,
        "name_zh": hotspot.name_zh,
        "name_en": hotspot.name_en,
        "org": org_code,
        "capacity": str(hotspot.capacity),
        "warn_density": f"{hotspot.warn_density:g}",
        "critical_density": f"{hotspot.critical_density:g}",
        "timezone": hotspot.timezone,
        "region": hotspot.region,
        "expected_sensors": str(hotspot.expected_sensors),
        "entrances": "\n".join(hotspot.entrances or []),
        "neighbours": ", ".join(hotspot.neighbours or []),
        "transit": "\n".join(
            f"{t['name']}: {', '.join(t.get('exits', []))}" for t in hotspot.transit or []
        ),
        "geometry": json.dumps(hotspot.geometry, ensure_ascii=False),
    }


def parse_transit(text: str) -> list[dict[str, Any]]:
    """``name: exit, exit`` per line (a full-width colon or comma works too)."""
    stations: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, rest = line.replace("：", ":").partition(":")
        exits = [e.strip() for e in re.split(r"[,，、]", rest) if e.strip()]
        stations.append({"name": name.strip(), "exits": exits})
    return stations


def values_from_form(form: dict[str, str], *, new: bool) -> dict[str, Any]:
    """The form's text as :class:`HotspotIn` / :class:`HotspotPatch` fields (raises
    :class:`InvalidInput` for text that is not a number or not JSON)."""
    try:
        geometry = json.loads(form.get("geometry", ""))
    except ValueError:
        raise InvalidInput("geometry: not a GeoJSON document (JSON)") from None
    values: dict[str, Any] = {
        "name_zh": form.get("name_zh", ""),
        "name_en": form.get("name_en", ""),
        "org": form.get("org", "").strip() or None,
        "capacity": form.get("capacity", "").strip(),
        "warn_density": form.get("warn_density", "").strip(),
        "critical_density": form.get("critical_density", "").strip(),
        "timezone": form.get("timezone", "").strip(),
        "region": form.get("region", "").strip(),
        "expected_sensors": form.get("expected_sensors", "").strip() or "0",
        "entrances": [e.strip() for e in form.get("entrances", "").splitlines() if e.strip()],
        "neighbours": [c for c in re.split(r"[\s,，]+", form.get("neighbours", "")) if c],
        "transit": parse_transit(form.get("transit", "")),
        "geometry": geometry,
    }
    if new:
        values["code"] = form.get("code", "").strip()
    elif values["org"] is None:
        del values["org"]
    return values


def _validated(model: type[HotspotIn] | type[HotspotPatch], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(hotspots.validation_message(exc)) from None


# --------------------------------------------------------------------------- rendering


def _org_codes(session: Session, ids: set[str]) -> dict[str, Org]:
    if not ids:
        return {}
    return {o.id: o for o in session.scalars(select(Org).where(Org.id.in_(sorted(ids))))}


def _list_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    error: str | None = None,
    imported: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    t = _translator(request)
    rows = hotspots.all_in_scope(session=session, principal=principal)
    return render(
        request,
        "crowd/hotspots.html",
        status_code=status_code,
        principal=principal,
        active="crowd",
        org_name=_org_name(session, principal, t.lang),
        rows=[(h, hotspots.thresholds(h)) for h in rows],
        orgs=_org_codes(session, {h.org_id for h in rows}),
        can_manage=principal.can(perms.MANAGE),
        geojson_url=GEOJSON,
        tile_url=get_runtime(request).settings.tile_url,
        error=error,
        imported=imported,
    )


def _detail_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    hotspot: CrowdHotspot | None,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    t = _translator(request)
    org = None
    if hotspot is not None:
        org = _org_codes(session, {hotspot.org_id}).get(hotspot.org_id)
        if form is None:
            form = form_of(hotspot, org.code if org else hotspot.org_id)
    elif form is None:
        default_org = _org_codes(session, {principal.org_id}).get(principal.org_id)
        form = dict.fromkeys(FORM_FIELDS, "") | {
            "timezone": "Asia/Shanghai",
            "region": "CN",
            "expected_sensors": "0",
            "org": default_org.code if default_org else "",
        }
    neighbours = hotspots.neighbours_of(session, hotspot) if hotspot is not None else []
    return render(
        request,
        "crowd/hotspot.html",
        status_code=status_code,
        principal=principal,
        active="crowd",
        org_name=_org_name(session, principal, t.lang),
        h=hotspot,
        org=org,
        limits=hotspots.thresholds(hotspot) if hotspot is not None else None,
        neighbour_rows=neighbours,
        form=form,
        can_manage=principal.can(perms.MANAGE),
        regions=sorted(hotspots.regions()),
        geojson_url=f"{GEOJSON}?code={hotspot.code}" if hotspot is not None else "",
        tile_url=get_runtime(request).settings.tile_url,
        error=error,
    )


def _submitted(form: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in FORM_FIELDS:
        value = form.get(name)
        out[name] = value if isinstance(value, str) else ""
    return out


# --------------------------------------------------------------------------- routes


@pages_router.get(LIST, response_class=HTMLResponse)
def hotspot_list(request: Request, session: DbSession, principal: Reader) -> HTMLResponse:
    return _list_page(request, session, principal)


@pages_router.get(NEW, response_class=HTMLResponse)
def hotspot_new(request: Request, session: DbSession, principal: Manager) -> HTMLResponse:
    return _detail_page(request, session, principal, hotspot=None)


@pages_router.post(LIST, response_class=HTMLResponse)
async def hotspot_create(request: Request, session: DbSession, principal: Manager) -> Response:
    form = _submitted(await request.form())
    try:
        data = _validated(HotspotIn, values_from_form(form, new=True))
        created = hotspots.create(session=session, principal=principal, data=data)
    except SafeCityError as exc:
        session.rollback()
        return _detail_page(
            request,
            session,
            principal,
            hotspot=None,
            form=form,
            error=exc.detail,
            status_code=exc.status,
        )
    return RedirectResponse(f"{LIST}/{created.code}", status_code=303)


@pages_router.post(IMPORT, response_class=HTMLResponse)
async def hotspot_import(
    request: Request,
    session: DbSession,
    principal: Manager,
    file: Annotated[UploadFile, File()],
) -> Response:
    limit = hotspots.MAX_IMPORT_BYTES
    content = await file.read(limit + 1)
    try:
        if len(content) > limit:
            raise PayloadTooLarge(f"the file is larger than {limit} bytes")
        report = hotspots.import_geojson(session=session, principal=principal, text=content)
    except SafeCityError as exc:
        session.rollback()
        return _list_page(request, session, principal, error=exc.detail, status_code=exc.status)
    return _list_page(
        request,
        session,
        principal,
        imported={
            "total": str(report.total),
            "created": str(report.created),
            "updated": str(report.updated),
            "unchanged": str(report.unchanged),
        },
    )


@pages_router.get(LIST + "/{code}", response_class=HTMLResponse)
def hotspot_page(
    request: Request, session: DbSession, principal: Reader, code: HotspotCode
) -> HTMLResponse:
    hotspot = hotspots.get(session=session, principal=principal, code=code)
    return _detail_page(request, session, principal, hotspot=hotspot)


@pages_router.post(LIST + "/{code}", response_class=HTMLResponse)
async def hotspot_update(
    request: Request, session: DbSession, principal: Manager, code: HotspotCode
) -> Response:
    hotspot = hotspots.get(session=session, principal=principal, code=code)
    form = _submitted(await request.form())
    form["code"] = hotspot.code
    try:
        data = _validated(HotspotPatch, values_from_form(form, new=False))
        hotspots.update(session=session, principal=principal, code=code, data=data)
    except SafeCityError as exc:
        session.rollback()
        hotspot = hotspots.get(session=session, principal=principal, code=code)
        return _detail_page(
            request,
            session,
            principal,
            hotspot=hotspot,
            form=form,
            error=exc.detail,
            status_code=exc.status,
        )
    return RedirectResponse(f"{LIST}/{code}", status_code=303)


@pages_router.post(LIST + "/{code}/deactivate", response_class=HTMLResponse)
def hotspot_deactivate(session: DbSession, principal: Manager, code: HotspotCode) -> Response:
    hotspots.deactivate(session=session, principal=principal, code=code)
    return RedirectResponse(f"{LIST}/{code}", status_code=303)
