"""Citizen comments awaiting the handling unit's reply (the reply SLA of the portal).

Every citizen comment gets a deadline when it is stored (:mod:`safecity.cases.reply_sla`).
It counts as answered when the unit replies on the case (:func:`answer`, called by
:func:`safecity.cases.comments.reply`):

* a reply *to* a citizen comment (``reply_to``) answers that comment only, so a unit that
  answers one question of several still owes the others;
* a reply to no comment in particular (the console's reply form) answers every citizen
  comment then awaiting a reply on the case: the reply is public and addressed to the
  citizen, who reads it below all their comments.

A reply to an officer's own comment answers nothing. ``answered_at`` is kept once set (a
later citizen comment starts its own clock).

The queue (:func:`list_due`) lists the comments awaiting a reply in the caller's org
scope, the nearest deadline first, overdue ones flagged; it shows ids, case number and
times, never the citizen's text (that stays on the case page), and each read is audited
(``cases.replies_due.list`` with the count). :func:`check_overdue`, run by the job
``cases.replies_overdue`` (:mod:`safecity.cases.jobs`), raises one alert per overdue
comment for the case's station and marks the comment, so a second run raises nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.cases.models import Case, CaseComment
from safecity.platform.db import utcnow
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

RECORD = "case"
TITLE_KEY = "cases.alert.reply_overdue"
CATEGORY = "case_reply_overdue"
CITY_CENTRE = (31.2304, 121.4737)  # (lat, lng) of People's Square: the alert needs a place

SPEC = ListSpec(
    sort={"reply_due_at": CaseComment.reply_due_at, "created_at": CaseComment.created_at},
    filters={"case_id": CaseComment.case_id, "org_id": Case.org_id},
    default_sort="reply_due_at",
    tiebreak=CaseComment.id,
)


class ReplyDueRead(BaseModel):
    """A citizen comment awaiting a reply (no text: that stays on the case page)."""

    id: str
    case_id: str
    case_number: str
    org_id: str
    created_at: datetime
    reply_due_at: datetime
    overdue: bool
    overdue_alerted_at: datetime | None


def _awaiting() -> Select[CaseComment]:
    return select(CaseComment).where(
        CaseComment.author == "citizen",
        CaseComment.answered_at.is_(None),
        CaseComment.reply_due_at.is_not(None),
    )


def answer(session: Session, *, reply: CaseComment) -> list[CaseComment]:
    """Mark what the officer's ``reply`` answers (see the module docstring); returns the
    comments now answered."""
    query = _awaiting().where(CaseComment.case_id == reply.case_id)
    if reply.reply_to is not None:
        query = query.where(CaseComment.id == reply.reply_to)
    answered = list(session.scalars(query))
    for item in answered:
        item.answered_at = reply.created_at or utcnow()
    return answered


def awaiting_for_case(session: Session, case_id: str) -> list[CaseComment]:
    """The case's comments awaiting a reply, nearest deadline first (the case page; the
    caller has checked the case is in scope)."""
    query = _awaiting().where(CaseComment.case_id == case_id)
    return list(session.scalars(query.order_by(CaseComment.reply_due_at, CaseComment.id)))


@dataclass(frozen=True)
class Awaiting:
    """What the case list shows per case: comments awaiting a reply and the nearest due."""

    count: int
    due_at: datetime
    overdue: bool


def awaiting_by_case(
    session: Session, case_ids: Iterable[str], *, now: datetime | None = None
) -> dict[str, Awaiting]:
    """Per case of ``case_ids`` (already scoped by the caller): awaiting count and nearest due."""
    ids = sorted(set(case_ids))
    if not ids:
        return {}
    moment = now or utcnow()
    rows = session.execute(
        select(CaseComment.case_id, func.count(), func.min(CaseComment.reply_due_at))
        .where(
            CaseComment.case_id.in_(ids),
            CaseComment.author == "citizen",
            CaseComment.answered_at.is_(None),
            CaseComment.reply_due_at.is_not(None),
        )
        .group_by(CaseComment.case_id)
    ).all()
    out: dict[str, Awaiting] = {}
    for case_id, count, due in rows:  # min() keeps the column's type: an aware UTC time
        assert due is not None
        out[case_id] = Awaiting(int(count), due, due <= moment)
    return out


def list_due(
    *,
    session: Session,
    principal: Principal,
    params: ListParams,
    overdue: bool | None = None,
    now: datetime | None = None,
) -> Page[ReplyDueRead]:
    """Comments awaiting a reply in the caller's org scope (nearest deadline first by
    default); ``overdue`` keeps only overdue (True) or not yet overdue (False) ones.
    Audited (``cases.replies_due.list``)."""
    moment = now or utcnow()
    query = (
        select(CaseComment, Case.number, Case.org_id)
        .join(Case, Case.id == CaseComment.case_id)
        .where(
            CaseComment.author == "citizen",
            CaseComment.answered_at.is_(None),
            CaseComment.reply_due_at.is_not(None),
            rbac.scope_clause(principal, Case.org_id),
        )
    )
    if overdue is True:
        query = query.where(CaseComment.reply_due_at <= moment)
    elif overdue is False:
        query = query.where(CaseComment.reply_due_at > moment)

    def item(row: tuple[CaseComment, str, str]) -> ReplyDueRead:
        comment, number, org_id = row
        assert comment.reply_due_at is not None
        return ReplyDueRead(
            id=comment.id,
            case_id=comment.case_id,
            case_number=number,
            org_id=org_id,
            created_at=comment.created_at,
            reply_due_at=comment.reply_due_at,
            overdue=comment.reply_due_at <= moment,
            overdue_alerted_at=comment.overdue_alerted_at,
        )

    rows = cast("Select[Any]", query)  # paginate takes any row shape (scalars=False)
    page = paginate(session=session, query=rows, params=params, item=item, scalars=False)
    audit.record(
        session,
        principal=principal,
        action="cases.replies_due.list",
        target_type="case_comment",
        purpose="case handling",
        detail={"count": len(page.items), "total": page.total, "offset": page.offset},
    )
    return page


def check_overdue(session: Session, *, now: datetime | None = None) -> int:
    """Raise the overdue alerts now due (one per comment, for the case's station) and mark
    the comments; returns how many were raised. A second run raises nothing new."""
    moment = now or utcnow()
    raised = 0
    rows = session.execute(
        select(CaseComment, Case.org_id)
        .join(Case, Case.id == CaseComment.case_id)
        .where(
            CaseComment.author == "citizen",
            CaseComment.answered_at.is_(None),
            CaseComment.reply_due_at.is_not(None),
            CaseComment.reply_due_at <= moment,
            CaseComment.overdue_alerted_at.is_(None),
        )
        .order_by(CaseComment.reply_due_at, CaseComment.id)
    ).all()
    for comment, org_id in rows:
        assert comment.reply_due_at is not None
        lat, lng = CITY_CENTRE
        alert = alerts.raise_alert(
            session,
            source="cases",
            category=CATEGORY,
            severity="medium",
            title_key=TITLE_KEY,
            lat=lat,
            lng=lng,
            dedup_key=f"case-reply-overdue:{comment.id}",
            occurred_at=moment,
            detail={
                "comment_id": comment.id,
                "case_id": comment.case_id,
                "due_at": comment.reply_due_at.isoformat(),
            },
            org_id=org_id,
        )
        comment.overdue_alerted_at = moment
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="cases.reply.overdue_alert",
            target_type=RECORD,
            target_id=comment.case_id,
            detail={"comment": comment.id, "alert": alert.id},
        )
        raised += 1
    return raised
