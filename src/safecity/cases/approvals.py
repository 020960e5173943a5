"""Supervisor approval with "send back with comments".

An officer requests a supervised transition (solve, suspend, close) with a summary; a
supervisor approves it (the transition is applied, the summary as its reason) or sends it
back with a required comment (the case stays in its state; the officer sees the comment on
the timeline and the request is marked ``sent_back``). One pending request per case; every
step is on the case's timeline and audited. Wrong states are 409.

The supervisor's queue (:func:`queue`) lists the pending requests of every case in their
org scope, oldest first, with the case number and type, the requested transition, the
requester and the age; each read is audited (``cases.approval.list`` with the count).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.cases import service
from safecity.cases.journal import journal
from safecity.cases.models import Case
from safecity.cases.work_models import CaseApproval
from safecity.cases.workflow import APPROVE, CASE, SUPERVISED, WRITE
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, PermissionDenied
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

RECORD = CASE.record_type


class ApprovalRequestIn(BaseModel):
    transition: str = Field(description="solve, suspend or close")
    summary: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class SendBackIn(BaseModel):
    comment: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class ApprovalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    transition: str
    summary: str
    state: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None


class ApprovalQueueRead(BaseModel):
    """A pending request in the supervisor's queue."""

    id: str
    case_id: str
    case_number: str
    case_type: str
    case_state: str
    org_id: str
    transition: str
    summary: str
    requested_by: str
    requested_at: datetime
    age_seconds: int


QUEUE = ListSpec(
    sort={"requested_at": CaseApproval.requested_at, "transition": CaseApproval.transition},
    filters={
        "transition": CaseApproval.transition,
        "case_type": Case.case_type,
        "org_id": Case.org_id,
    },
    default_sort="requested_at",
    tiebreak=CaseApproval.id,
)


def _text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidInput(f"{what} is required")
    return text


def _need(principal: Principal, permission: str, what: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"permission {permission!r} is required to {what}")


def pending(session: Session, case_id: str) -> CaseApproval | None:
    return session.scalar(
        select(CaseApproval).where(CaseApproval.case_id == case_id, CaseApproval.state == "pending")
    )


def latest(session: Session, case_id: str) -> CaseApproval | None:
    """The newest request on the case (pending, approved or sent back), if any."""
    return session.scalar(
        select(CaseApproval)
        .where(CaseApproval.case_id == case_id)
        .order_by(CaseApproval.requested_at.desc(), CaseApproval.id.desc())
        .limit(1)
    )


def history(*, session: Session, principal: Principal, case_id: str) -> list[CaseApproval]:
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    return list(
        session.scalars(
            select(CaseApproval)
            .where(CaseApproval.case_id == case.id)
            .order_by(CaseApproval.requested_at, CaseApproval.id)
        )
    )


def _check_source(case: Case, name: str) -> None:
    transition = CASE.transition(name)
    if case.state not in transition.source:
        raise Conflict(f"cannot request {name!r} for a case in state {case.state!r}")


def request(
    *, session: Session, principal: Principal, case_id: str, transition: str, summary: str
) -> CaseApproval:
    """The officer asks a supervisor to ``transition`` the case (409: wrong state or a
    request already pending)."""
    _need(principal, WRITE, "request an approval")
    if transition not in SUPERVISED:
        raise InvalidInput(f"transition must be one of {', '.join(SUPERVISED)}")
    text = _text(summary, "a summary")
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    _check_source(case, transition)
    if pending(session, case.id) is not None:
        raise Conflict("a request is already pending on this case")
    item = CaseApproval(
        case_id=case.id,
        transition=transition,
        summary=text,
        state="pending",
        requested_by=principal.id,
        requested_at=utcnow(),
    )
    try:
        with session.begin_nested():  # a concurrent request may have won the unique index
            session.add(item)
            session.flush()
    except IntegrityError:
        raise Conflict("a request is already pending on this case") from None
    journal(
        session,
        case=case,
        principal=principal,
        kind="approval_request",
        note=f"{transition}: {text}",
        action="cases.approval.request",
        detail={"approval": item.id, "transition": transition},
    )
    return item


def _pending_or_409(session: Session, case: Case) -> CaseApproval:
    item = pending(session, case.id)
    if item is None:
        raise Conflict("no request is pending on this case")
    return item


def approve(*, session: Session, principal: Principal, case_id: str) -> CaseApproval:
    """The supervisor approves the pending request: the transition is applied with the
    request's summary as its reason (409 when none is pending or the case moved on)."""
    _need(principal, APPROVE, "approve a request")
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    item = _pending_or_409(session, case)
    _check_source(case, item.transition)
    service.transition(
        session=session,
        principal=principal,
        case_id=case.id,
        name=item.transition,
        reason=item.summary,
    )
    item.state = "approved"
    item.decided_by = principal.id
    item.decided_at = utcnow()
    journal(
        session,
        case=case,
        principal=principal,
        kind="approval_approved",
        note=item.transition,
        action="cases.approval.approve",
        detail={"approval": item.id, "transition": item.transition},
    )
    return item


def send_back(
    *, session: Session, principal: Principal, case_id: str, comment: str
) -> CaseApproval:
    """The supervisor sends the pending request back with a required comment; the case
    stays in its state (409 when none is pending)."""
    _need(principal, APPROVE, "send a request back")
    text = _text(comment, "a comment")
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    item = _pending_or_409(session, case)
    item.state = "sent_back"
    item.decided_by = principal.id
    item.decided_at = utcnow()
    item.comment = text
    journal(
        session,
        case=case,
        principal=principal,
        kind="sent_back",
        note=text,
        action="cases.approval.send_back",
        detail={"approval": item.id, "transition": item.transition},
    )
    return item


def queue(
    *,
    session: Session,
    principal: Principal,
    params: ListParams,
    now: datetime | None = None,
) -> Page[ApprovalQueueRead]:
    """Pending requests on the cases of the caller's org scope, oldest first by default
    (403 without the approve permission). Audited (``cases.approval.list``)."""
    _need(principal, APPROVE, "list the requests awaiting approval")
    moment = now or utcnow()
    query = (
        select(CaseApproval, Case)
        .join(Case, Case.id == CaseApproval.case_id)
        .where(CaseApproval.state == "pending", rbac.scope_clause(principal, Case.org_id))
    )

    def item(row: tuple[CaseApproval, Case]) -> ApprovalQueueRead:
        asked, case = row
        return ApprovalQueueRead(
            id=asked.id,
            case_id=case.id,
            case_number=case.number,
            case_type=case.case_type,
            case_state=case.state,
            org_id=case.org_id,
            transition=asked.transition,
            summary=asked.summary,
            requested_by=asked.requested_by,
            requested_at=asked.requested_at,
            age_seconds=max(0, int((moment - asked.requested_at).total_seconds())),
        )

    rows = cast("Select[Any]", query)  # paginate takes any row shape (scalars=False)
    page = paginate(session=session, query=rows, params=params, item=item, scalars=False)
    audit.record(
        session,
        principal=principal,
        action="cases.approval.list",
        target_type=RECORD,
        purpose="case supervision",
        detail={"count": len(page.items), "total": page.total, "offset": page.offset},
    )
    return page
