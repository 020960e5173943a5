"""Reads of e-service applications: one in full, the applicant's list, the staff queue.

Staff reads of an application in full are audited; the applicant sees public timeline
entries only. Each read lists the actions the reader may take next.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices.access import (
    audit_application,
    is_staff_reader,
    item_of,
    visible_application,
)
from safecity.eservices.catalogue import ServiceItem
from safecity.eservices.clock import deadline
from safecity.eservices.materials import attachment_read, attachments_of, material_status
from safecity.eservices.models import Application
from safecity.eservices.schemas import ApplicationDetail, ApplicationRead, PartRead, TimelineItem
from safecity.eservices.single_window import children_of
from safecity.eservices.workflow import (
    APPLICANT_ACTIONS,
    APPLICATION,
    APPLY,
    READ,
    RECORD_TYPE,
    STATES,
)
from safecity.platform import timeline, workflow
from safecity.platform.errors import InvalidInput, PermissionDenied
from safecity.security import rbac
from safecity.security.rbac import Principal

MAX_QUEUE = 200


def actions_for(session: Session, app: Application, principal: Principal) -> list[str]:
    if app.applicant_id == principal.id and principal.can(APPLY):
        own = [
            t.name for t in APPLICATION.transitions_from(app.state) if t.name in APPLICANT_ACTIONS
        ]
        if own:
            return own
    if app.is_parent or not is_staff_reader(principal, app):
        return []
    names = [
        t.name
        for t in workflow.available_transitions(
            machine=APPLICATION, record=app, principal=principal
        )
        if t.name not in APPLICANT_ACTIONS
    ]
    if app.parent_id is not None:
        names = [n for n in names if n != "issue"]
    return names


def part_read(app: Application) -> PartRead:
    return PartRead(
        id=app.id,
        department=app.department,
        org_id=app.org_id,
        state=app.state,
        due_on=app.due_on,
        paused=app.paused_since is not None,
        certificate_id=app.certificate_id,
        certificate_type=app.certificate_type,
    )


def read_application(session: Session, app: Application, principal: Principal) -> ApplicationRead:
    item = item_of(app)
    return ApplicationRead(**application_fields(session, app, principal, item))


def application_fields(
    session: Session, app: Application, principal: Principal, item: ServiceItem
) -> dict[str, Any]:
    return {
        "id": app.id,
        "reference": app.reference,
        "item_code": app.item_code,
        "item_name_zh": item.name.zh,
        "item_name_en": item.name.en,
        "department": app.department,
        "org_id": app.org_id,
        "applicant_id": app.applicant_id,
        "state": app.state,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
        "submitted_at": app.submitted_at,
        "decided_at": app.decided_at,
        "issued_at": app.issued_at,
        "due_on": app.due_on,
        "paused": app.paused_since is not None,
        "paused_workdays": app.paused_workdays,
        "current_page": app.current_page,
        "certificate_id": app.certificate_id,
        "certificate_type": app.certificate_type,
        "parent_id": app.parent_id,
        "single_window": item.single_window,
        "parts": [part_read(c) for c in children_of(session, app)],
        "actions": actions_for(session, app, principal),
    }


def get_application(
    *, session: Session, principal: Principal, application_id: str
) -> ApplicationDetail:
    """One application in full, for its applicant or staff of the handling org (audited)."""
    app = visible_application(session, principal, application_id)
    own = app.applicant_id == principal.id
    if not own:
        audit_application(session, principal, "application.read", app, purpose="handle application")
    item = item_of(app)
    atts = attachments_of(session, app.id)
    entries = timeline.list_for(session, record_type=RECORD_TYPE, record_id=app.id, public_only=own)
    return ApplicationDetail(
        **application_fields(session, app, principal, item),
        form_id=app.form_id,
        form_version=app.form_version,
        answers=dict(app.answers or {}),
        materials=material_status(item, app, atts),
        attachments=[attachment_read(a) for a in atts],
        timeline=[
            TimelineItem(
                at=e.at,
                kind=e.kind,
                actor_id=None if own and e.actor_id != principal.id else e.actor_id,
                from_state=e.from_state,
                to_state=e.to_state,
                note=e.note,
            )
            for e in entries
        ],
        deadline=deadline(session, app),
        decision_note=app.decision_note,
        idempotency_key=app.idempotency_key if own else None,
    )


def my_applications(*, session: Session, principal: Principal) -> list[ApplicationRead]:
    """The principal's own applications, newest first (single-window parts inside)."""
    if not principal.can(APPLY):
        raise PermissionDenied(f"permission {APPLY!r} is required")
    apps = session.scalars(
        select(Application)
        .where(Application.applicant_id == principal.id, Application.parent_id.is_(None))
        .order_by(Application.created_at.desc(), Application.id)
    )
    return [read_application(session, a, principal) for a in apps]


def staff_queue(
    *,
    session: Session,
    principal: Principal,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ApplicationRead]:
    """Submitted applications of the orgs the principal sees, soonest due first."""
    if not principal.can(READ):
        raise PermissionDenied(f"permission {READ!r} is required")
    if state is not None and (state not in STATES or state == "draft"):
        raise InvalidInput(f"unknown state {state!r}", allowed=[s for s in STATES if s != "draft"])
    if not 1 <= limit <= MAX_QUEUE or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_QUEUE} and offset 0 or more")
    stmt = select(Application).where(
        rbac.scope_clause(principal, Application.org_id),
        Application.state != "draft",
        Application.is_parent.is_(False),
    )
    if state is not None:
        stmt = stmt.where(Application.state == state)
    stmt = (
        stmt.order_by(Application.due_on.is_(None), Application.due_on, Application.submitted_at)
        .order_by(Application.id)
        .limit(limit)
        .offset(offset)
    )
    return [read_application(session, a, principal) for a in session.scalars(stmt)]
