"""Console pages of the cases domain.

* ``GET /console/cases``: cases in the caller's scope (open or all);
* ``GET /console/cases/{id}``: one case with its timeline and comments; forms to apply a
  transition (reason where required) and to reply to the citizen;
* approval: an officer requests solve/suspend/close with a summary; a supervisor approves
  or sends it back with a comment (the "sent back" marker shows the comment);
* tasks (overdue ones marked) and evidence files (upload, audited list and download);
* the queues across cases, declared before ``/{case_id}``: ``GET /console/cases/replies``
  (citizen comments awaiting a reply, nearest deadline first, overdue marked) and
  ``GET /console/cases/approvals`` (requests awaiting a supervisor, oldest first, with
  approve / send-back forms posting to the case's routes and returning to the queue).
  The case list marks the cases with comments awaiting a reply, the case page each
  comment with its deadline.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from safecity.cases import approvals, comments, evidence, replies_due, reviews, service, tasks
from safecity.cases.models import Case
from safecity.cases.reply_sla import REPLY_WORKDAYS
from safecity.cases.workflow import APPROVE, CASE, OPEN_STATES, READ, SUPERVISED, WRITE
from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.eservices.workdays import CHINA_TZ
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.db import utcnow
from safecity.platform.downloads import file_download
from safecity.platform.errors import PayloadTooLarge, SafeCityError
from safecity.platform.middleware import register_upload_limit
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

LIST = "/console/cases"
LIST_LIMIT = 200
REPLIES = LIST + "/replies"
APPROVALS = LIST + "/approvals"
QUEUE_LIMIT = 200

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(READ))]
Writer = Annotated[Principal, Depends(console_require(WRITE))]
Approver = Annotated[Principal, Depends(console_require(APPROVE))]


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
        awaiting=replies_due.awaiting_by_case(session, (c.id for c in cases)),
        can_approve=principal.can(APPROVE),
        local=local_time,
    )


def local_time(value: datetime) -> str:
    """A deadline in Beijing time (deadlines end at local midnight)."""
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


@router.get(REPLIES, response_class=HTMLResponse)
def replies_queue(
    request: Request,
    session: DbSession,
    principal: Reader,
    overdue: Annotated[bool | None, Query()] = None,
) -> HTMLResponse:
    """Citizen comments awaiting a reply in the caller's scope, nearest deadline first."""
    t = _translator(request)
    page = replies_due.list_due(
        session=session,
        principal=principal,
        params=replies_due.SPEC.parse(limit=QUEUE_LIMIT),
        overdue=overdue,
    )
    return render(
        request,
        "cases/replies_due.html",
        principal=principal,
        active="cases",
        org_name=_org_name(session, principal, t.lang),
        rows=page.items,
        total=page.total,
        overdue_only=overdue is True,
        can_approve=principal.can(APPROVE),
        local=local_time,
        workdays=REPLY_WORKDAYS,
    )


@router.get(APPROVALS, response_class=HTMLResponse)
def approvals_queue(request: Request, session: DbSession, principal: Approver) -> HTMLResponse:
    """Requests awaiting approval in the supervisor's scope, oldest first, with the forms."""
    t = _translator(request)
    page = approvals.queue(
        session=session, principal=principal, params=approvals.QUEUE.parse(limit=QUEUE_LIMIT)
    )
    return render(
        request,
        "cases/approvals_queue.html",
        principal=principal,
        active="cases",
        org_name=_org_name(session, principal, t.lang),
        rows=page.items,
        total=page.total,
        can_approve=True,
        next_url=APPROVALS,
        csrf=csrf_token_for(request),
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
    on = tasks.today()
    task_rows = [
        tasks.read(x, on=on)
        for x in tasks.list_for(session=session, principal=principal, case_id=case_id)
    ]
    files = evidence.list_for(session=session, principal=principal, case_id=case_id)
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
        can_approve=principal.can(APPROVE),
        approval=approvals.latest(session, case.id),
        requestable=[name for name in SUPERVISED if case.state in CASE.transition(name).source],
        tasks=task_rows,
        overdue=[x for x in task_rows if x.overdue],
        evidence=files,
        reviews=reviews.case_reviews(session=session, principal=principal, case_id=case.id),
        awaiting={m.id: m for m in replies_due.awaiting_for_case(session, case.id)},
        now=utcnow(),
        local=local_time,
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
    return _act(
        request,
        session,
        principal,
        case_id,
        lambda: service.transition(
            session=session, principal=principal, case_id=case_id, name=name, reason=reason
        ),
        anchor="",
    )


@router.post(LIST + "/{case_id}/replies", response_class=HTMLResponse)
def case_reply(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: RecordId,
    text: Annotated[str, Form(min_length=1, max_length=MAX_NOTE_CHARS)],
    reply_to: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    comments.reply(
        session=session,
        principal=principal,
        case_id=case_id,
        text=text,
        reply_to=reply_to or None,
    )
    return RedirectResponse(f"{LIST}/{case_id}#comments", status_code=303)


def _act(
    request: Request,
    session: DbSession,
    principal: Principal,
    case_id: str,
    action: Any,
    anchor: str = "approval",
    next_url: str = "",
) -> Response:
    """Run ``action``; on a domain error show the page with the error, else redirect (to
    the approval queue when the form came from there, else back to the case)."""
    try:
        action()
    except SafeCityError as exc:
        session.rollback()
        return _detail_page(
            request, session, principal, case_id, error=exc.status, status_code=exc.status
        )
    if next_url == APPROVALS:  # the only other place allowed: no open redirect
        return RedirectResponse(APPROVALS, status_code=303)
    return RedirectResponse(f"{LIST}/{case_id}" + (f"#{anchor}" if anchor else ""), status_code=303)


@router.post(LIST + "/{case_id}/approvals", response_class=HTMLResponse)
def case_request_approval(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: RecordId,
    transition: Annotated[str, Form(max_length=32)],
    summary: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    return _act(
        request,
        session,
        principal,
        case_id,
        lambda: approvals.request(
            session=session,
            principal=principal,
            case_id=case_id,
            transition=transition,
            summary=summary,
        ),
    )


@router.post(LIST + "/{case_id}/approvals/approve", response_class=HTMLResponse)
def case_approve(
    request: Request,
    session: DbSession,
    principal: Approver,
    case_id: RecordId,
    next_url: Annotated[str, Form(alias="next", max_length=200)] = "",
) -> Response:
    return _act(
        request,
        session,
        principal,
        case_id,
        lambda: approvals.approve(session=session, principal=principal, case_id=case_id),
        next_url=next_url,
    )


@router.post(LIST + "/{case_id}/approvals/send-back", response_class=HTMLResponse)
def case_send_back(
    request: Request,
    session: DbSession,
    principal: Approver,
    case_id: RecordId,
    comment: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=200)] = "",
) -> Response:
    return _act(
        request,
        session,
        principal,
        case_id,
        lambda: approvals.send_back(
            session=session, principal=principal, case_id=case_id, comment=comment
        ),
        next_url=next_url,
    )


@router.post(LIST + "/{case_id}/tasks", response_class=HTMLResponse)
def case_add_task(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: RecordId,
    title: Annotated[str, Form(max_length=tasks.MAX_TITLE)],
    assignee_id: Annotated[str, Form(max_length=64)],
    due_on: Annotated[date, Form()],
) -> Response:
    def action() -> None:
        data = tasks.TaskIn.model_construct(title=title, assignee_id=assignee_id, due_on=due_on)
        tasks.create(session=session, principal=principal, case_id=case_id, data=data)

    return _act(request, session, principal, case_id, action, "tasks")


@router.post(LIST + "/{case_id}/tasks/{task_id}/complete", response_class=HTMLResponse)
def case_complete_task(
    request: Request, session: DbSession, principal: Writer, case_id: RecordId, task_id: RecordId
) -> Response:
    return _act(
        request,
        session,
        principal,
        case_id,
        lambda: tasks.complete(
            session=session, principal=principal, case_id=case_id, task_id=task_id
        ),
        "tasks",
    )


register_upload_limit(LIST + r"/[^/]+/evidence", evidence.MAX_EVIDENCE_BYTES + 64 * 1024)


@router.post(LIST + "/{case_id}/evidence", response_class=HTMLResponse)
async def case_add_evidence(
    request: Request,
    session: DbSession,
    principal: Writer,
    case_id: RecordId,
    file: Annotated[UploadFile, File()],
    description: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    limit = evidence.MAX_EVIDENCE_BYTES
    data = await file.read(limit + 1)

    def action() -> None:
        if len(data) > limit:
            raise PayloadTooLarge(f"file is larger than {limit} bytes")
        evidence.add(
            session=session,
            principal=principal,
            case_id=case_id,
            data=data,
            filename=file.filename or "evidence",
            description=description,
        )

    return _act(request, session, principal, case_id, action, "evidence")


@router.get(LIST + "/{case_id}/evidence/{evidence_id}")
def case_evidence_file(
    session: DbSession, principal: Reader, case_id: RecordId, evidence_id: RecordId
) -> Response:
    data, item = evidence.download(
        session=session, principal=principal, case_id=case_id, evidence_id=evidence_id
    )
    return file_download(data, item.media_type, item.filename)
