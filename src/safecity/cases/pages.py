"""Console pages of the cases domain.

* ``GET /console/cases``: cases in the caller's scope (open or all);
* ``GET /console/cases/{id}``: one case with its timeline and comments; forms to apply a
  transition (reason where required) and to reply to the citizen.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from safecity.cases import comments, service
from safecity.cases.models import Case
from safecity.cases.workflow import CASE, OPEN_STATES, READ, WRITE
from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.errors import SafeCityError
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

LIST = "/console/cases"
LIST_LIMIT = 200

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(READ))]
Writer = Annotated[Principal, Depends(console_require(WRITE))]


@router.get(LIST, response_class=HTMLResponse)
def case_list(
    request: Request,
    session: DbSession,
    principal: Reader,
    status: Annotated[Literal["open", "all"], Query()] = "open",
) -> HTMLResponse:
    t = _translator(request)
    query = service.scoped_query(principal)
    if status == "open":
        query = query.where(Case.state.in_(OPEN_STATES))
    cases = list(session.scalars(query.order_by(Case.created_at.desc(), Case.id).limit(LIST_LIMIT)))
    return render(
        request,
        "cases/list.html",
        principal=principal,
        active="cases",
        org_name=_org_name(session, principal, t.lang),
        cases=cases,
        status=status,
    )


def _detail_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    case_id: str,
    *,
    error: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    t = _translator(request)
    case = service.detail(session=session, principal=principal, case_id=case_id)
    return render(
        request,
        "cases/detail.html",
        status_code=status_code,
        principal=principal,
        active="cases",
        org_name=_org_name(session, principal, t.lang),
        c=case,
        needs_reason={t.name for t in CASE.transitions if "reason" in t.requires},
        can_write=principal.can(WRITE),
        error=error,
        csrf=csrf_token_for(request),
    )


@router.get(LIST + "/{case_id}", response_class=HTMLResponse)
def case_page(
    request: Request, session: DbSession, principal: Reader, case_id: RecordId
) -> HTMLResponse:
    return _detail_page(request, session, principal, case_id)


@router.post(LIST + "/{case_id}/transitions/{name}", response_class=HTMLResponse)
def case_transition(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: RecordId,
    name: TransitionName,
    reason: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    try:
        service.transition(
            session=session, principal=principal, case_id=case_id, name=name, reason=reason
        )
    except SafeCityError as exc:
        session.rollback()
        return _detail_page(
            request, session, principal, case_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"{LIST}/{case_id}", status_code=303)


@router.post(LIST + "/{case_id}/replies", response_class=HTMLResponse)
def case_reply(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: RecordId,
    text: Annotated[str, Form(min_length=1, max_length=MAX_NOTE_CHARS)],
) -> Response:
    comments.reply(session=session, principal=principal, case_id=case_id, text=text)
    return RedirectResponse(f"{LIST}/{case_id}#comments", status_code=303)
