"""Pages of criminal review applications (复议 / 复核).

Console (legal department / supervisor, ``cases:review``): ``GET /console/case-reviews``
(list, nearest deadline first) and ``/console/case-reviews/{id}`` (detail with the stage
actions); an officer files for the citizen at ``/console/case-reviews/new`` (``cases:write``).

Portal (no login, number + code, plain forms): ``POST /portal/review/lookup`` shows the
stages under the case, ``/portal/review`` files, ``/portal/review/reexam`` asks for 复核.
Every miss renders the portal's miss page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from safecity.cases import portal, reviews
from safecity.cases.models import Case
from safecity.cases.portal_api import MISS_STATUS, limited
from safecity.cases.workflow import WRITE
from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.platform import workflow
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.errors import SafeCityError
from safecity.platform.ratelimit import client_key
from safecity.platform.runtime import DbSession
from safecity.security import audit
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal, public

LIST = "/console/case-reviews"
PORTAL = "/portal/review"

router = APIRouter(include_in_schema=False)
portal_router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

Reviewer = Annotated[Principal, Depends(console_require(reviews.REVIEW))]
Writer = Annotated[Principal, Depends(console_require(WRITE))]
Field40 = Annotated[str, Form(min_length=1, max_length=40)]
GroundsForm = Annotated[str, Form(min_length=1, max_length=reviews.MAX_GROUNDS)]


# --------------------------------------------------------------------------- console


def _base(request: Request, session: Session, principal: Principal) -> dict[str, Any]:
    lang = _translator(request).lang
    return {
        "principal": principal,
        "active": "cases",
        "org_name": _org_name(session, principal, lang),
        "csrf": csrf_token_for(request),
    }


@router.get(LIST, response_class=HTMLResponse)
def review_list(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    state: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    rows = reviews.list_reviews(session=session, principal=principal, state=state or None)
    return render(
        request, "cases/reviews_list.html", **_base(request, session, principal), rows=rows
    )


def _detail(
    request: Request,
    session: Session,
    principal: Principal,
    review_id: str,
    *,
    error: int | None = None,
) -> HTMLResponse:
    review = reviews.get_review(session=session, principal=principal, review_id=review_id)
    audit.record(
        session,
        principal=principal,
        action="cases.review.read",
        target_type=reviews.RECORD,
        target_id=review.id,
        purpose="criminal review application",
    )
    actions = [
        t.name
        for t in workflow.available_transitions(
            machine=reviews.MACHINE, record=review, principal=principal
        )
    ]
    return render(
        request,
        "cases/review_detail.html",
        status_code=error or 200,
        **_base(request, session, principal),
        r=review,
        actions=actions,
        needs_reason={t.name for t in reviews.MACHINE.transitions if "reason" in t.requires},
        error=error,
    )


@router.get(LIST + "/new", response_class=HTMLResponse)
def review_new(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    return render(
        request,
        "cases/review_new.html",
        **_base(request, session, principal),
        case_id=case_id,
        error=None,
    )


@router.post(LIST + "/new", response_class=HTMLResponse)
def review_file(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: Annotated[str, Form(min_length=1, max_length=32)],
    grounds: GroundsForm,
) -> Response:
    try:
        review = reviews.file_for_citizen(
            session, principal=principal, case_id=case_id, grounds=grounds
        )
    except SafeCityError as exc:
        session.rollback()
        return render(
            request,
            "cases/review_new.html",
            status_code=exc.status,
            **_base(request, session, principal),
            case_id=case_id,
            error=exc.status,
        )
    target = f"{LIST}/{review.id}" if principal.can(reviews.REVIEW) else f"{LIST}/new"
    return RedirectResponse(target, status_code=303)


@router.get(LIST + "/{review_id}", response_class=HTMLResponse)
def review_page(
    request: Request, session: DbSession, principal: Reviewer, review_id: RecordId
) -> HTMLResponse:
    return _detail(request, session, principal, review_id)


@router.post(LIST + "/{review_id}/transitions/{name}", response_class=HTMLResponse)
def review_transition(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    review_id: RecordId,
    name: TransitionName,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        reviews.act(session, principal=principal, review_id=review_id, name=name, reason=reason)
    except SafeCityError as exc:
        session.rollback()
        return _detail(request, session, principal, review_id, error=exc.status)
    return RedirectResponse(f"{LIST}/{review_id}", status_code=303)


# --------------------------------------------------------------------------- portal


def _miss(request: Request) -> HTMLResponse:
    return render(
        request,
        "cases/portal.html",
        status_code=MISS_STATUS,
        case=None,
        miss=True,
        number="",
        code="",
        sent=False,
    )


def _portal_page(
    request: Request,
    session: Session,
    case: Case | None,
    *,
    number: str,
    code: str,
    error: int | None = None,
    sent: bool = False,
) -> HTMLResponse:
    if case is None:
        return _miss(request)
    found = portal.public_case(session, case=case, lang=_translator(request).lang)
    items = reviews.public_reviews(session, case=case)
    return render(
        request,
        "cases/portal.html",
        status_code=error or 200,
        case=found,
        miss=False,
        number=number,
        code=code,
        sent=False,
        reviews=items,
        review_error=error,
        review_sent=sent,
        review_filable=case.state in reviews.DECISIONS,
        review_reexam=bool(items) and items[-1].stage in reviews.REEXAM_FROM,
    )


def _verify(request: Request, session: Session, number: str, code: str) -> Case | None:
    return portal.verify(
        session,
        client=client_key(request.scope),
        number=number,
        code=code,
        action="cases.portal.reviews",
    )


@portal_router.post(PORTAL + "/lookup", response_class=HTMLResponse, dependencies=limited)
def portal_show(request: Request, session: DbSession, number: Field40, code: Field40) -> Response:
    case = _verify(request, session, number, code)
    return _portal_page(request, session, case, number=number, code=code)


@portal_router.post(PORTAL, response_class=HTMLResponse, dependencies=limited)
def portal_file(
    request: Request, session: DbSession, number: Field40, code: Field40, grounds: GroundsForm
) -> Response:
    try:
        filed = reviews.file_from_portal(
            session, client=client_key(request.scope), number=number, code=code, grounds=grounds
        )
    except SafeCityError as exc:
        session.rollback()
        case = _verify(request, session, number, code)
        return _portal_page(request, session, case, number=number, code=code, error=exc.status)
    if filed is None:
        return _miss(request)
    case = session.get(Case, filed.case_id)
    return _portal_page(request, session, case, number=number, code=code, sent=True)


@portal_router.post(PORTAL + "/reexam", response_class=HTMLResponse, dependencies=limited)
def portal_reexam(request: Request, session: DbSession, number: Field40, code: Field40) -> Response:
    try:
        filed = reviews.reexam_from_portal(
            session, client=client_key(request.scope), number=number, code=code
        )
    except SafeCityError as exc:
        session.rollback()
        case = _verify(request, session, number, code)
        return _portal_page(request, session, case, number=number, code=code, error=exc.status)
    if filed is None:
        return _miss(request)
    case = session.get(Case, filed.case_id)
    return _portal_page(request, session, case, number=number, code=code, sent=True)
