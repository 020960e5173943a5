"""Messages to the victim through the notification outbox (:mod:`safecity.platform.notify`).

The portal code is drawn when a case is registered and sent once; the notification body is
the only place it is ever in clear (the case keeps its HMAC). Each public stage change
sends one message per (case, stage): the idempotency key makes a replay enqueue nothing.
Undisclosed cases (by type or the victim's opt-out) get no portal code and no stage
messages.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import catalogue, codes
from safecity.cases.models import Case, CasePerson
from safecity.platform import notify

STAGE_ZH: dict[str, str] = {
    "received": "已受理",
    "registered": "已立案",
    "not_registered": "不予立案",
    "investigating": "侦查中",
    "solved": "已破案",
    "suspended": "中止侦查",
    "closed": "已结案",
}


def victim_contact(session: Session, case: Case) -> tuple[str, str] | None:
    """(channel, address) of the first victim with a phone number or e-mail address."""
    victims = session.scalars(
        select(CasePerson)
        .where(CasePerson.case_id == case.id, CasePerson.role == "victim")
        .order_by(CasePerson.created_at, CasePerson.id)
    )
    for victim in victims:
        if victim.phone:
            return "sms", victim.phone
        if victim.email:
            return "email", victim.email
    return None


def _disclosed(case: Case) -> bool:
    return catalogue.case_disclosed(case)


def issue_code(session: Session, *, case: Case) -> notify.Notification | None:
    """Draw the portal code, keep its MAC and send number + code to the victim."""
    if case.code_mac is not None or not _disclosed(case):
        return None
    contact = victim_contact(session, case)
    if contact is None:
        return None
    channel, address = contact
    code = codes.new_code()
    case.code_mac = codes.code_mac(session, number=case.number, code=code)
    return notify.enqueue(
        session,
        channel=channel,
        to=address,
        subject="SafeCity case / 案件查询" if channel == "email" else "",
        body=(
            f"【阳光警务】案件编号 {case.number}，查询码 {code}。"
            f" SafeCity case {case.number}, lookup code {code}."
        ),
        template="cases.verification_code",
        purpose="case lookup verification",
        idempotency_key=f"cases:{case.id}:code",
        org_id=case.org_id,
    )


def stage_changed(session: Session, *, case: Case) -> notify.Notification | None:
    """Tell the victim the case reached its current stage (once per case and stage)."""
    if not _disclosed(case):
        return None
    contact = victim_contact(session, case)
    if contact is None:
        return None
    channel, address = contact
    stage = case.state
    return notify.enqueue(
        session,
        channel=channel,
        to=address,
        subject="SafeCity case / 案件进展" if channel == "email" else "",
        body=(
            f"【阳光警务】案件 {case.number} 进展：{STAGE_ZH.get(stage, stage)}。"
            f" SafeCity case {case.number}: {stage.replace('_', ' ')}."
        ),
        template="cases.stage_changed",
        purpose="case progress",
        idempotency_key=f"cases:{case.id}:stage:{stage}",
        org_id=case.org_id,
    )
