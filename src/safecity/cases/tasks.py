"""Tasks on a case: create (title, an officer of the case's station as assignee, a due
date), complete, list. A task not done after its due date (UTC calendar day) is overdue;
the console's case page shows overdue tasks. Every change is on the case's internal
timeline and audited."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import service
from safecity.cases.journal import journal
from safecity.cases.work_models import CaseTask
from safecity.cases.workflow import CASE, WRITE
from safecity.eservices.workdays import local_date
from safecity.orgs import service as orgs
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from safecity.security import rbac
from safecity.security.models import User, UserRole
from safecity.security.rbac import Principal

RECORD = CASE.record_type
MAX_TITLE = 200


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    assignee_id: str = Field(min_length=1, max_length=64)
    due_on: date


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    title: str
    assignee_id: str
    due_on: date
    created_by: str
    created_at: datetime
    done_by: str | None
    done_at: datetime | None
    overdue: bool = False


def today() -> date:
    """Today's local (Beijing) date: a task due yesterday is overdue from local midnight."""
    return local_date(utcnow())


def is_overdue(task: CaseTask, *, on: date | None = None) -> bool:
    return task.done_at is None and task.due_on < (on or today())


def read(task: CaseTask, *, on: date | None = None) -> TaskRead:
    model = TaskRead.model_validate(task)
    model.overdue = is_overdue(task, on=on)
    return model


def _need_write(principal: Principal) -> None:
    if not principal.can(WRITE):
        raise PermissionDenied(f"permission {WRITE!r} is required to change tasks")


def _check_assignee(session: Session, principal: Principal, case_org: str, user_id: str) -> None:
    """The assignee is an active officer (may write cases) of the case's station or an
    org below it, and visible to the caller."""
    user = session.get(User, user_id)
    if user is None or not user.active or user.kind != "user":
        raise InvalidInput("the assignee is not an active officer")
    if user.org_id not in orgs.subtree_ids(session=session, org_id=case_org):
        raise InvalidInput("the assignee does not belong to the case's station")
    try:
        orgs.get_visible(session=session, principal=principal, org_id=user.org_id)
    except NotFound:
        raise InvalidInput("the assignee is outside your scope") from None
    roles = frozenset(session.scalars(select(UserRole.role).where(UserRole.user_id == user.id)))
    if WRITE not in rbac.permissions_for(roles):
        raise InvalidInput("the assignee is not an officer who handles cases")


def create(*, session: Session, principal: Principal, case_id: str, data: TaskIn) -> CaseTask:
    _need_write(principal)
    title = data.title.strip()
    if not title:
        raise InvalidInput("a task needs a title")
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    _check_assignee(session, principal, case.org_id, data.assignee_id)
    task = CaseTask(
        case_id=case.id,
        title=title,
        assignee_id=data.assignee_id,
        due_on=data.due_on,
        created_by=principal.id,
        created_at=utcnow(),
    )
    session.add(task)
    session.flush()
    journal(
        session,
        case=case,
        principal=principal,
        kind="task",
        note=f"{title} → {data.assignee_id} (due {data.due_on.isoformat()})",
        action="cases.task.create",
        detail={"task": task.id, "assignee": data.assignee_id, "due": data.due_on.isoformat()},
    )
    return task


def complete(*, session: Session, principal: Principal, case_id: str, task_id: str) -> CaseTask:
    """Mark the task done (409 when it already is)."""
    _need_write(principal)
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    task = session.get(CaseTask, task_id)
    if task is None or task.case_id != case.id:
        raise NotFound("task not found")
    if task.done_at is not None:
        raise Conflict("the task is already done")
    task.done_by = principal.id
    task.done_at = utcnow()
    journal(
        session,
        case=case,
        principal=principal,
        kind="task_done",
        note=task.title,
        action="cases.task.complete",
        detail={"task": task.id},
    )
    return task


def list_for(*, session: Session, principal: Principal, case_id: str) -> list[CaseTask]:
    """The case's tasks: open ones first by due date, then done ones (404 out of scope)."""
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    rows = session.scalars(
        select(CaseTask)
        .where(CaseTask.case_id == case.id)
        .order_by(CaseTask.done_at.is_not(None), CaseTask.due_on, CaseTask.id)
    )
    return list(rows)
