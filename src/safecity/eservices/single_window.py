"""Single window: one application fanned out to several departments, issued together.

An item with department parts fans out on submission into one child application per
department (:func:`fan_out`: their own deadlines, queues and materials). After a part
moves, :func:`sync_parent` moves the parent: accepted when every part is, rejected when
one is; when every part is approved, every part's certificate and the parent are issued
at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices import events
from safecity.eservices.access import (
    acting_applicant,
    audit_application,
    department_org,
    new_reference,
)
from safecity.eservices.catalogue import ServiceItem
from safecity.eservices.clock import elapsed_workdays, recompute_clock
from safecity.eservices.issuing import issue_certificate
from safecity.eservices.materials import attachments_of, materials_for
from safecity.eservices.models import Application, Attachment
from safecity.eservices.notices import transition
from safecity.eservices.workdays import local_date
from safecity.eservices.workflow import APPLICATION, FINAL_STATES
from safecity.platform import outbox, workflow
from safecity.platform.db import new_id
from safecity.security import audit
from safecity.security.rbac import Principal


def children_of(session: Session, app: Application) -> list[Application]:
    if not app.is_parent:
        return []
    return list(
        session.scalars(
            select(Application)
            .where(Application.parent_id == app.id)
            .order_by(Application.department)
        )
    )


def fan_out(
    session: Session,
    parent: Application,
    item: ServiceItem,
    principal: Principal,
    key: str,
    moment: datetime,
) -> None:
    """One child application per department part, each with its own deadline and
    the materials of its part (shared materials go to every part)."""
    today = local_date(moment)
    parent_atts = attachments_of(session, parent.id)
    children: list[str] = []
    for part in item.parts:
        org = department_org(session, part.department)
        child = Application(
            id=new_id(),
            reference=new_reference(session, today),
            item_code=item.code,
            department=part.department,
            org_id=org.id,
            applicant_id=parent.applicant_id,
            state=APPLICATION.initial,
            form_id=parent.form_id,
            form_version=parent.form_version,
            answers=dict(parent.answers),
            current_page=None,
            idempotency_key=f"{key}#{part.department}",
            parent_id=parent.id,
            is_parent=False,
            deadline_workdays=part.deadline_workdays,
            certificate_type=part.certificate,
            submitted_at=moment,
            submitted_on=today,
            created_at=moment,
            updated_at=moment,
        )
        session.add(child)
        session.flush()
        workflow.start(
            session, machine=APPLICATION, record=child, principal=principal, public=True
        ).at = moment
        codes = {m.code for m in materials_for(item, part.department)}
        for a in parent_atts:
            if a.material_code in codes:
                session.add(
                    Attachment(
                        id=new_id(),
                        application_id=child.id,
                        material_code=a.material_code,
                        source=a.source,
                        pulled_from=a.pulled_from,
                        filename=a.filename,
                        content_type=a.content_type,
                        size_bytes=a.size_bytes,
                        sha256=a.sha256,
                        uploaded_by=a.uploaded_by,
                        created_at=a.created_at,
                    )
                )
        recompute_clock(session, child, today)
        transition(
            session, child, "submit", acting_applicant(principal, child), moment, notice=False
        )
        assert child.due_on is not None
        outbox.emit(
            session,
            type=events.SUBMITTED,
            source=events.SOURCE,
            org_id=child.org_id,
            payload={
                "application_id": child.id,
                "item_code": child.item_code,
                "org_id": child.org_id,
                "due_on": child.due_on.isoformat(),
                "parent_id": parent.id,
            },
        )
        children.append(child.id)
    outbox.emit(
        session,
        type=events.FANNED_OUT,
        source=events.SOURCE,
        org_id=parent.org_id,
        payload={"application_id": parent.id, "children": children},
    )
    audit_application(session, principal, "application.fan_out", parent, children=children)


def sync_parent(session: Session, parent_id: str, moment: datetime) -> None:
    """Move a single-window parent after a part moved: accepted when every part is,
    rejected when one is; when every part is approved, every certificate and the parent
    are issued together."""
    parent = session.get(Application, parent_id)
    if parent is None or parent.state in FINAL_STATES:
        return
    today = local_date(moment)
    kids = children_of(session, parent)
    system = audit.SYSTEM
    dues = [k.due_on for k in kids if k.due_on is not None]
    if dues:
        parent.due_on = max([*dues, *([parent.due_on] if parent.due_on else [])])
    parent.paused_workdays = max((k.paused_workdays for k in kids), default=0)
    parent.paused_since = min(
        (k.paused_since for k in kids if k.paused_since is not None), default=None
    )
    rejected = [k for k in kids if k.state == "rejected"]
    if rejected:
        note = "; ".join(f"{k.department}: {k.decision_note or 'rejected'}" for k in rejected)
        transition(session, parent, "reject", system, moment, comment=note)
        parent.decided_at = moment
        parent.decision_note = note
        parent.finished_workdays = max(
            (k.finished_workdays for k in rejected if k.finished_workdays is not None),
            default=elapsed_workdays(session, parent, today),
        )
        return
    if parent.state == "submitted" and all(k.state != "submitted" for k in kids):
        transition(session, parent, "accept", system, moment)
        parent.accepted_at = moment
    if all(k.state == "approved" for k in kids):
        if parent.state == "accepted":
            transition(session, parent, "approve", system, moment)
            parent.decided_at = moment
            # the slowest part's unpaused working days (each part's clock has its pauses)
            parent.finished_workdays = max(
                (k.finished_workdays for k in kids if k.finished_workdays is not None),
                default=elapsed_workdays(session, parent, today),
            )
        for kid in kids:
            transition(session, kid, "issue", system, moment, notice=False)
            issue_certificate(session, kid, system, moment)
        transition(session, parent, "issue", system, moment)
        parent.issued_at = moment
        audit_application(
            session,
            system,
            "application.issued_together",
            parent,
            parts=[k.id for k in kids],
            certificates=[k.certificate_id for k in kids],
        )
