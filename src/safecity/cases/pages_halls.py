"""The public halls of the portal (no login): ``GET /portal/halls`` (the city),
``/portal/halls/{org_code}`` (a district or a station) and the picker
``/portal/halls?org=CODE`` (redirects to that hall). Figures come only from the
materialised counters (:mod:`safecity.cases.stats`), suppressed by :mod:`safecity.cases.halls`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from safecity.cases import halls
from safecity.console.pages import _translator, render
from safecity.orgs.models import Org
from safecity.platform.runtime import DbSession
from safecity.security.rbac import public

HALLS = "/portal/halls"
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

router = APIRouter(dependencies=[Depends(public)], include_in_schema=False)

OrgCode = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN)]
PickedCode = Annotated[str | None, Query(min_length=1, max_length=64, pattern=CODE_PATTERN)]


def _page(request: Request, session: DbSession, code: str | None) -> HTMLResponse:
    lang = _translator(request).lang
    org = halls.hall_org(session, code)
    hall = halls.build(session, org)

    def name(o: Org) -> str:
        return o.name_en if lang == "en" else o.name_zh

    return render(
        request,
        "cases/halls.html",
        hall=hall,
        picker=halls.picker(session),
        name=name,
    )


@router.get(HALLS, response_class=HTMLResponse)
def city_hall(request: Request, session: DbSession, org: PickedCode = None) -> Response:
    """The city's hall; with ``?org=CODE`` (the picker), a redirect to that hall."""
    if org is not None:
        halls.hall_org(session, org)  # 404 for an unknown code, before redirecting
        return RedirectResponse(f"{HALLS}/{org}", status_code=303)
    return _page(request, session, None)


@router.get(HALLS + "/{org_code}", response_class=HTMLResponse)
def hall(request: Request, session: DbSession, org_code: OrgCode) -> HTMLResponse:
    """A district's or a station's hall (or the city's, by its code)."""
    return _page(request, session, org_code)
