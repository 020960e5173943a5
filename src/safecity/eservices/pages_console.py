"""The staff console's e-services pages: the queue and an application's page.

``/console/eservices`` lists the applications in the caller's scope by state, each with
its working-day due date and an SLA colour (overdue: red; due within one working day:
amber; clock paused: grey). ``/console/eservices/{id}`` shows the answers, the materials
(pulled or uploaded), the timeline and the single-window family (the parent and every
department's part together), with buttons for the actions the workflow allows the caller
now (accept, review, ask for a supplement with a comment, approve, reject with a reason,
issue). The service checks each action's permission; the pages only show what it allows.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from safecity.console.pages import _translator, console_require, render
from safecity.eservices import service
from safecity.eservices.catalogue import default_catalogue
from safecity.eservices.pages_forms import (
    answer_rows,
    attachment_response,
    days_left,
    definition_of,
    local_today,
    material_rows,
)
from safecity.eservices.schemas import ACTIONS
from safecity.eservices.workflow import APPLICANT_ACTIONS, OPEN_STATES, READ, STATES
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.errors import InvalidInput, NotFound, PermissionDenied, SafeCityError
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.rbac import Principal

router = APIRouter(include_in_schema=False)

Staff = Annotated[Principal, Depends(console_require(READ))]
CONSOLE = "/console/eservices"
QUEUE_STATES: tuple[str, ...] = tuple(s for s in STATES if s != "draft")
STAFF_ACTIONS: tuple[str, ...] = tuple(a for a in ACTIONS if a not in APPLICANT_ACTIONS)
NEEDS_REASON: frozenset[str] = frozenset({"request_supplement", "reject"})


def sla_of(app: Any, today: date) -> tuple[str, int | None]:
    """(colour, working days left): ``overdue`` (red) past the due date, ``soon`` (amber)
    due within one working day, ``paused`` while the clock stops, ``ok``; ``none`` for
    applications with no running clock (decided, issued)."""
    if app.state not in OPEN_STATES or app.due_on is None:
        return "none", None
    left = days_left(app.due_on, today)
    if app.paused:
        return "paused", left
    if app.due_on < today:
        return "overdue", left
    if left is not None and left <= 1:
        return "soon", left
    return "ok", left


@router.get(CONSOLE, response_class=HTMLResponse)
def staff_queue(
    request: Request,
    session: DbSession,
    principal: Staff,
    state: Annotated[str, Query(max_length=40)] = "",
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    chosen = state if state in QUEUE_STATES else ""
    apps = service.staff_queue(
        session=session, principal=principal, state=chosen or None, limit=51, offset=offset
    )
    today = local_today()
    rows = [{"app": a, "sla": sla_of(a, today)} for a in apps[:50]]
    return render(
        request,
        "eservices/queue.html",
        principal=principal,
        active="eservices",
        rows=rows,
        states=QUEUE_STATES,
        state=chosen,
        offset=offset,
        more=len(apps) > 50,
    )


def _staff_detail(
    request: Request,
    session: Session,
    principal: Principal,
    app_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    detail = service.get_application(session=session, principal=principal, application_id=app_id)
    lang = _translator(request).lang
    family: list[Any] = []
    parent = None
    if detail.parent_id:
        try:
            parent = service.get_application(
                session=session, principal=principal, application_id=detail.parent_id
            )
            family = list(parent.parts)
        except (NotFound, PermissionDenied):
            parent = None
    else:
        family = list(detail.parts)
    return render(
        request,
        "eservices/staff_detail.html",
        status_code=status_code,
        principal=principal,
        active="eservices",
        app=detail,
        parent=parent,
        family=family,
        rows=answer_rows(definition_of(detail.item_code), detail.answers, lang),
        materials=material_rows(detail),
        actions=[a for a in STAFF_ACTIONS if a in detail.actions],
        needs_reason=NEEDS_REASON,
        sla=sla_of(detail, local_today()),
        error=error,
        cat=default_catalogue(),
    )


@router.get(CONSOLE + "/{app_id}", response_class=HTMLResponse)
def staff_application(
    request: Request, session: DbSession, principal: Staff, app_id: RecordId
) -> HTMLResponse:
    return _staff_detail(request, session, principal, app_id)


@router.post(CONSOLE + "/{app_id}/actions/{action}", response_class=HTMLResponse)
def staff_act(
    request: Request,
    session: DbSession,
    principal: Staff,
    app_id: RecordId,
    action: TransitionName,
    comment: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    if action not in STAFF_ACTIONS:
        raise NotFound(f"no action {action!r}")
    try:
        service.act(
            session=session,
            principal=principal,
            application_id=app_id,
            action=action,
            comment=comment.strip() or None,
        )
    except NotFound:
        raise
    except SafeCityError as exc:  # nothing is written unless every check passed
        session.rollback()
        kind = (
            "reason"
            if isinstance(exc, InvalidInput) and action in NEEDS_REASON
            else str(exc.status)
        )
        return _staff_detail(
            request, session, principal, app_id, error=kind, status_code=exc.status
        )
    return RedirectResponse(f"{CONSOLE}/{app_id}", status_code=303)


@router.get(CONSOLE + "/{app_id}/attachments/{attachment_id}")
def staff_attachment(
    session: DbSession, principal: Staff, app_id: RecordId, attachment_id: RecordId
) -> Response:
    return attachment_response(
        *service.attachment_bytes(
            session=session,
            principal=principal,
            application_id=app_id,
            attachment_id=attachment_id,
        )
    )
