"""HTTP API of the cases domain (staff): cases, transitions, transfer, assignment,
persons, notes, replies and comment review; the queues across cases (citizen comments
awaiting a reply, requests awaiting approval), declared before ``/{case_id}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Response, UploadFile

from safecity.cases import approvals, comments, evidence, replies_due, service, tasks
from safecity.cases.approvals import (
    ApprovalQueueRead,
    ApprovalRead,
    ApprovalRequestIn,
    SendBackIn,
)
from safecity.cases.evidence import MAX_EVIDENCE_BYTES, EvidenceRead
from safecity.cases.models import Case
from safecity.cases.replies_due import ReplyDueRead
from safecity.cases.schemas import (
    AssignIn,
    CaseCreate,
    CaseDetail,
    CaseRead,
    CommentRead,
    DisclosureIn,
    NoteIn,
    PersonIn,
    PersonRead,
    ReplyIn,
    ReviewIn,
    TransferIn,
    TransitionIn,
)
from safecity.cases.tasks import TaskIn, TaskRead
from safecity.cases.workflow import APPROVE, CASE, READ, WRITE
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.downloads import file_download
from safecity.platform.errors import PayloadTooLarge
from safecity.platform.middleware import register_upload_limit
from safecity.platform.pagination import ListParams, ListSpec, Page
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS, TimelineEntryRead
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/cases", tags=["cases"])

CASE_LIST = ListSpec(
    sort={"created_at": Case.created_at, "updated_at": Case.updated_at, "state": Case.state},
    filters={
        "state": Case.state,
        "case_type": Case.case_type,
        "org_id": Case.org_id,
        "source": Case.source,
        "assigned_officer_id": Case.assigned_officer_id,
    },
    default_sort="-created_at",
    tiebreak=Case.id,
)

Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(WRITE))]
Approver = Annotated[Principal, Depends(require(APPROVE))]


@router.get("", response_model=Page[CaseRead], summary="Cases in the caller's scope")
def list_cases(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(CASE_LIST.params)],
) -> Page[CaseRead]:
    return service.list_cases(session=session, principal=principal, params=params)


@router.post("", response_model=CaseDetail, status_code=201, summary="Open a case")
def create_case(principal: Writer, session: DbSession, body: CaseCreate) -> CaseDetail:
    case = service.create(session=session, principal=principal, data=body)
    return service.detail(session=session, principal=principal, case_id=case.id)


@router.get("/workflow", summary="The case state machine")
def case_workflow(principal: Reader) -> dict[str, Any]:
    return CASE.as_graph()


@router.get(
    "/replies-due",
    response_model=Page[ReplyDueRead],
    summary="Citizen comments awaiting a reply in the caller's scope, nearest deadline first",
)
def list_replies_due(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(replies_due.SPEC.params)],
    overdue: Annotated[bool | None, Query(description="Only overdue (true) or not.")] = None,
) -> Page[ReplyDueRead]:
    return replies_due.list_due(
        session=session, principal=principal, params=params, overdue=overdue
    )


@router.get(
    "/approvals",
    response_model=Page[ApprovalQueueRead],
    summary="Requests awaiting approval in the caller's scope, oldest first (supervisor)",
)
def approval_queue(
    principal: Approver,
    session: DbSession,
    params: Annotated[ListParams, Depends(approvals.QUEUE.params)],
) -> Page[ApprovalQueueRead]:
    return approvals.queue(session=session, principal=principal, params=params)


@router.get("/{case_id}", response_model=CaseDetail, summary="One case")
def get_case(principal: Reader, session: DbSession, case_id: RecordId) -> CaseDetail:
    return service.detail(session=session, principal=principal, case_id=case_id)


@router.post(
    "/{case_id}/transitions/{name}",
    response_model=CaseDetail,
    summary="register, not_register, investigate, solve, suspend, resume, close",
)
def apply_transition(
    principal: Writer,
    session: DbSession,
    case_id: RecordId,
    name: TransitionName,
    body: Annotated[TransitionIn | None, Body()] = None,
) -> CaseDetail:
    service.transition(
        session=session,
        principal=principal,
        case_id=case_id,
        name=name,
        reason=body.reason if body else None,
    )
    return service.detail(session=session, principal=principal, case_id=case_id)


@router.post("/{case_id}/transfer", response_model=CaseDetail, summary="Move to a station")
def transfer(
    principal: Writer, session: DbSession, case_id: RecordId, body: TransferIn
) -> CaseDetail:
    service.transfer(
        session=session,
        principal=principal,
        case_id=case_id,
        org_id=body.org_id,
        reason=body.reason,
    )
    return service.detail(session=session, principal=principal, case_id=case_id)


@router.post("/{case_id}/assign", response_model=CaseDetail, summary="Assign an officer")
def assign(principal: Writer, session: DbSession, case_id: RecordId, body: AssignIn) -> CaseDetail:
    service.assign(
        session=session, principal=principal, case_id=case_id, officer_id=body.officer_id
    )
    return service.detail(session=session, principal=principal, case_id=case_id)


@router.post(
    "/{case_id}/disclosure",
    response_model=CaseDetail,
    summary="Override the disclosure policy or record the victim's opt-out (supervisor)",
)
def disclosure(
    principal: Approver, session: DbSession, case_id: RecordId, body: DisclosureIn
) -> CaseDetail:
    service.set_disclosure(
        session=session,
        principal=principal,
        case_id=case_id,
        override=body.override,
        victim_opt_out=body.victim_opt_out,
        reason=body.reason,
    )
    return service.detail(session=session, principal=principal, case_id=case_id)


@router.get(
    "/{case_id}/persons",
    response_model=list[PersonRead],
    summary="Persons on the case (audited read)",
)
def list_persons(principal: Reader, session: DbSession, case_id: RecordId) -> list[PersonRead]:
    return service.persons(session=session, principal=principal, case_id=case_id)


@router.post(
    "/{case_id}/persons", response_model=PersonRead, status_code=201, summary="Add a person"
)
def add_person(principal: Writer, session: DbSession, case_id: RecordId, body: PersonIn) -> Any:
    person = service.add_person(session=session, principal=principal, case_id=case_id, data=body)
    return PersonRead.model_validate(person)


@router.post(
    "/{case_id}/notes",
    response_model=TimelineEntryRead,
    status_code=201,
    summary="An internal or a public note",
)
def add_note(
    principal: Writer, session: DbSession, case_id: RecordId, body: NoteIn
) -> TimelineEntryRead:
    entry = service.add_note(
        session=session, principal=principal, case_id=case_id, text=body.text, public=body.public
    )
    return TimelineEntryRead.model_validate(entry)


@router.post(
    "/{case_id}/replies",
    response_model=CommentRead,
    status_code=201,
    summary="Reply to the citizen",
)
def reply(principal: Writer, session: DbSession, case_id: RecordId, body: ReplyIn) -> Any:
    item = comments.reply(
        session=session,
        principal=principal,
        case_id=case_id,
        text=body.text,
        reply_to=body.reply_to,
    )
    return CommentRead.model_validate(item)


@router.post(
    "/{case_id}/comments/{comment_id}/review",
    response_model=CommentRead,
    summary="Publish a citizen comment (reviewed text)",
)
def review(
    principal: Writer,
    session: DbSession,
    case_id: RecordId,
    comment_id: RecordId,
    body: ReviewIn,
) -> Any:
    item = comments.review(
        session=session,
        principal=principal,
        case_id=case_id,
        comment_id=comment_id,
        public_text=body.public_text,
    )
    return CommentRead.model_validate(item)


# --------------------------------------------------------------------------- approvals


@router.get(
    "/{case_id}/approvals",
    response_model=list[ApprovalRead],
    summary="Approval requests on the case, oldest first",
)
def list_approvals(principal: Reader, session: DbSession, case_id: RecordId) -> Any:
    items = approvals.history(session=session, principal=principal, case_id=case_id)
    return [ApprovalRead.model_validate(i) for i in items]


@router.post(
    "/{case_id}/approvals",
    response_model=ApprovalRead,
    status_code=201,
    summary="Request solve, suspend or close from a supervisor",
)
def request_approval(
    principal: Writer, session: DbSession, case_id: RecordId, body: ApprovalRequestIn
) -> Any:
    item = approvals.request(
        session=session,
        principal=principal,
        case_id=case_id,
        transition=body.transition,
        summary=body.summary,
    )
    return ApprovalRead.model_validate(item)


@router.post(
    "/{case_id}/approvals/approve",
    response_model=ApprovalRead,
    summary="Approve the pending request: the transition is applied (supervisor)",
)
def approve(principal: Approver, session: DbSession, case_id: RecordId) -> Any:
    item = approvals.approve(session=session, principal=principal, case_id=case_id)
    return ApprovalRead.model_validate(item)


@router.post(
    "/{case_id}/approvals/send-back",
    response_model=ApprovalRead,
    summary="Send the pending request back with a comment (supervisor)",
)
def send_back(principal: Approver, session: DbSession, case_id: RecordId, body: SendBackIn) -> Any:
    item = approvals.send_back(
        session=session, principal=principal, case_id=case_id, comment=body.comment
    )
    return ApprovalRead.model_validate(item)


# --------------------------------------------------------------------------- evidence

register_upload_limit(r"/api/cases/[^/]+/evidence", MAX_EVIDENCE_BYTES + 64 * 1024)


@router.post(
    "/{case_id}/evidence",
    response_model=EvidenceRead,
    status_code=201,
    summary="Add an evidence file (PDF, JPEG, PNG, WebP; type sniffed; stored by SHA-256)",
)
async def add_evidence(
    principal: Writer,
    session: DbSession,
    case_id: RecordId,
    file: Annotated[UploadFile, File(description="PDF, JPEG, PNG or WebP")],
    description: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Any:
    limit = evidence.MAX_EVIDENCE_BYTES
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"file is larger than {limit} bytes")
    item = evidence.add(
        session=session,
        principal=principal,
        case_id=case_id,
        data=data,
        filename=file.filename or "evidence",
        description=description,
    )
    return EvidenceRead.model_validate(item)


@router.get(
    "/{case_id}/evidence",
    response_model=list[EvidenceRead],
    summary="Evidence files on the case (audited read)",
)
def list_evidence(principal: Reader, session: DbSession, case_id: RecordId) -> Any:
    items = evidence.list_for(session=session, principal=principal, case_id=case_id)
    return [EvidenceRead.model_validate(i) for i in items]


@router.get(
    "/{case_id}/evidence/{evidence_id}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in sorted(evidence.ALLOWED_TYPES)}}},
    summary="Download one evidence file (verified against its hash; audited read)",
)
def download_evidence(
    principal: Reader, session: DbSession, case_id: RecordId, evidence_id: RecordId
) -> Response:
    data, item = evidence.download(
        session=session, principal=principal, case_id=case_id, evidence_id=evidence_id
    )
    return file_download(
        data, item.media_type, item.filename, headers={"X-Content-SHA256": item.sha256}
    )


# --------------------------------------------------------------------------- tasks


@router.get(
    "/{case_id}/tasks",
    response_model=list[TaskRead],
    summary="Tasks on the case: open ones first by due date (overdue flagged)",
)
def list_tasks(principal: Reader, session: DbSession, case_id: RecordId) -> list[TaskRead]:
    items = tasks.list_for(session=session, principal=principal, case_id=case_id)
    on = tasks.today()
    return [tasks.read(t, on=on) for t in items]


@router.post(
    "/{case_id}/tasks",
    response_model=TaskRead,
    status_code=201,
    summary="Create a task for an officer of the case's station",
)
def create_task(principal: Writer, session: DbSession, case_id: RecordId, body: TaskIn) -> TaskRead:
    task = tasks.create(session=session, principal=principal, case_id=case_id, data=body)
    return tasks.read(task)


@router.post(
    "/{case_id}/tasks/{task_id}/complete",
    response_model=TaskRead,
    summary="Mark a task done",
)
def complete_task(
    principal: Writer, session: DbSession, case_id: RecordId, task_id: RecordId
) -> TaskRead:
    task = tasks.complete(session=session, principal=principal, case_id=case_id, task_id=task_id)
    return tasks.read(task)
