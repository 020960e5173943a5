"""Transitions of an e-service application and the notice each one sends.

Every transition is on the application's timeline (the platform state machine, which
also audits it) and is sent to the applicant as an SMS through the notification outbox,
to the phone on the application or in the citizen registry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from safecity.eservices import citizens
from safecity.eservices.access import item_of
from safecity.eservices.models import Application
from safecity.eservices.workflow import APPLICATION
from safecity.platform import notify, workflow
from safecity.security.rbac import Principal

STATE_TEXT: dict[str, tuple[str, str]] = {
    "submitted": ("已提交", "submitted"),
    "accepted": ("已受理", "accepted"),
    "review": ("审查中", "under review"),
    "supplement_requested": ("需补正材料", "please supplement your materials"),
    "approved": ("已准予", "approved"),
    "rejected": ("不予批准", "rejected"),
    "issued": ("证照已签发", "certificate issued"),
}


def send_notice(
    session: Session, app: Application, entry_id: str, comment: str | None
) -> notify.Notification | None:
    """Tell the applicant (SMS to the phone on the application or in the registry)."""
    record = citizens.get_record(session, app.applicant_id)
    phone = str((app.answers or {}).get("phone") or (record.phone if record else "") or "")
    if not phone:
        return None
    item = item_of(app)
    zh, en = STATE_TEXT.get(app.state, (app.state, app.state))
    body = f"【一网通办】{app.reference} {item.name.zh}：{zh}。{item.name.en}: {en}."
    if comment:
        body += f" {comment[:300]}"
    return notify.enqueue(
        session,
        channel="sms",
        to=phone,
        body=body,
        purpose="e-service application notice",
        idempotency_key=f"eservices:{app.id}:{entry_id}",
        template=f"eservices.{app.state}",
        org_id=app.org_id,
    )


def transition(
    session: Session,
    app: Application,
    name: str,
    principal: Principal,
    moment: datetime,
    *,
    comment: str | None = None,
    notice: bool = True,
) -> None:
    t = APPLICATION.transition(name)
    result = workflow.apply(
        session,
        machine=APPLICATION,
        record=app,
        transition=name,
        principal=principal,
        reason=comment if "reason" in t.requires else None,
        note=None if "reason" in t.requires else comment,
    )
    result.timeline_entry.at = moment
    app.updated_at = moment
    if notice:
        send_notice(session, app, result.timeline_entry.id, comment)
