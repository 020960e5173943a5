"""The public portal (no login): ``POST /api/portal/lookup`` and ``/api/portal/comments``
(JSON), and the mobile-first page ``/portal`` (plain HTML forms, zh/en, works without
JavaScript).

Every miss — malformed or unknown number, wrong code, undisclosed case, locked-out client
— answers :func:`miss_response`: the same status and the same bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from safecity.cases import portal
from safecity.cases.schemas import CommentAccepted, CommentIn, LookupIn, PublicCase
from safecity.console.pages import _translator, render
from safecity.platform.ratelimit import client_key, rate_limit
from safecity.platform.runtime import DbSession
from safecity.security.rbac import public

PAGE = "/portal"
MISS_STATUS = 404
MISS_BODY: dict[str, Any] = {
    "type": "https://safecity.example/problems/not-found",
    "title": "Not Found",
    "status": MISS_STATUS,
    "detail": "no case matches this number and code",
}

router = APIRouter(tags=["portal"], dependencies=[Depends(public)])
limited = [Depends(rate_limit("portal", per_minute=30, burst=10))]


def miss_response() -> JSONResponse:
    return JSONResponse(MISS_BODY, status_code=MISS_STATUS, media_type="application/problem+json")


def _lang(request: Request) -> str:
    return _translator(request).lang


@router.post(
    "/api/portal/lookup",
    response_model=PublicCase,
    dependencies=limited,
    responses={404: {"description": "No case matches (always the same answer)"}},
    summary="A case's public timeline, by number and code (no login)",
)
def lookup(request: Request, session: DbSession, body: LookupIn) -> Any:
    found = portal.lookup(
        session,
        client=client_key(request.scope),
        number=body.number,
        code=body.code,
        lang=_lang(request),
    )
    return miss_response() if found is None else found


@router.post(
    "/api/portal/comments",
    response_model=CommentAccepted,
    status_code=202,
    dependencies=limited,
    responses={404: {"description": "No case matches (always the same answer)"}},
    summary="Comment on a case, by number and code (shown after review)",
)
def add_comment(request: Request, session: DbSession, body: CommentIn) -> Any:
    item = portal.comment(
        session,
        client=client_key(request.scope),
        number=body.number,
        code=body.code,
        text=body.text,
    )
    if item is None:
        return miss_response()
    return CommentAccepted(status="received", shown_after_review=True)


# --------------------------------------------------------------------------- page

Field40 = Annotated[str, Form(min_length=1, max_length=40)]


@router.get(PAGE, response_class=HTMLResponse, include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    return render(
        request, "cases/portal.html", case=None, miss=False, number="", code="", sent=False
    )


@router.post(PAGE, response_class=HTMLResponse, include_in_schema=False, dependencies=limited)
def page_lookup(request: Request, session: DbSession, number: Field40, code: Field40) -> Response:
    found = portal.lookup(
        session, client=client_key(request.scope), number=number, code=code, lang=_lang(request)
    )
    return render(
        request,
        "cases/portal.html",
        status_code=200 if found else MISS_STATUS,
        case=found,
        miss=found is None,
        number=number if found else "",
        code=code if found else "",
        sent=False,
    )


@router.post(
    PAGE + "/comment", response_class=HTMLResponse, include_in_schema=False, dependencies=limited
)
def page_comment(
    request: Request,
    session: DbSession,
    number: Field40,
    code: Field40,
    text: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    client = client_key(request.scope)
    item = portal.comment(session, client=client, number=number, code=code, text=text)
    found = (
        None
        if item is None
        else portal.lookup(session, client=client, number=number, code=code, lang=_lang(request))
    )
    return render(
        request,
        "cases/portal.html",
        status_code=200 if found else MISS_STATUS,
        case=found,
        miss=found is None,
        number=number if found else "",
        code=code if found else "",
        sent=found is not None,
    )


@router.post(
    PAGE + "/rating", response_class=HTMLResponse, include_in_schema=False, dependencies=limited
)
def page_rating(
    request: Request,
    session: DbSession,
    number: Field40,
    code: Field40,
    rating: Annotated[int, Form(ge=1, le=5)],
) -> Response:
    """The citizen rates a solved or closed case (once), from the lookup page."""
    client = client_key(request.scope)
    outcome = portal.rate(session, client=client, number=number, code=code, rating=rating)
    found = (
        None
        if outcome is None
        else portal.lookup(session, client=client, number=number, code=code, lang=_lang(request))
    )
    return render(
        request,
        "cases/portal.html",
        status_code=200 if found else MISS_STATUS,
        case=found,
        miss=found is None,
        number=number if found else "",
        code=code if found else "",
        sent=False,
        rated=outcome,
    )
