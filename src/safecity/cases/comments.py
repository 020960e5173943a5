"""Staff side of comments: reply to the citizen, publish (review) a citizen comment.

A reply answers the citizen comments awaiting it (:func:`safecity.cases.replies_due.answer`:
the one it replies to, or all of them on the case for a general reply)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from safecity.cases import replies_due, service
from safecity.cases.models import CaseComment
from safecity.platform import timeline
from safecity.platform.errors import NotFound
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.security.redact import scrub_text


def reply(
    *,
    session: Session,
    principal: Principal,
    case_id: str,
    text: str,
    reply_to: str | None = None,
) -> CaseComment:
    """The handling unit's public reply (phone and ID numbers masked)."""
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    if reply_to is not None:
        parent = session.get(CaseComment, reply_to)
        if parent is None or parent.case_id != case.id:
            raise NotFound("comment not found")
    clean = text.strip()
    item = CaseComment(
        case_id=case.id,
        author="officer",
        text=clean,
        public_text=scrub_text(clean),
        reply_to=reply_to,
        actor_id=principal.id,
    )
    session.add(item)
    session.flush()
    answered = replies_due.answer(session, reply=item)
    timeline.add(
        session,
        record_type="case",
        record_id=case.id,
        org_id=case.org_id,
        kind="reply",
        actor_id=principal.id,
    )
    audit.record(
        session,
        principal=principal,
        action="cases.reply",
        target_type="case",
        target_id=case.id,
        detail={"comment": item.id, "answered": len(answered)},
    )
    return item


def review(
    *, session: Session, principal: Principal, case_id: str, comment_id: str, public_text: str
) -> CaseComment:
    """Publish a citizen comment as ``public_text`` (the reviewer removes names)."""
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    item = session.get(CaseComment, comment_id)
    if item is None or item.case_id != case.id or item.author != "citizen":
        raise NotFound("comment not found")
    item.public_text = scrub_text(public_text.strip())
    audit.record(
        session,
        principal=principal,
        action="cases.comment.review",
        target_type="case",
        target_id=case.id,
        detail={"comment": item.id},
    )
    return item
