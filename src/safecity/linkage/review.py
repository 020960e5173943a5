"""The analysts' review queue of the person index, and their manual merges and unmerges.

The index queues a :class:`LinkPair` (``pending``) when the model's match probability
lies between the review and auto-link thresholds. A reviewer sees a pair only when they
may see **both** records (their org scope); the queue is ordered by probability, highest
first (the likeliest matches are the cheapest to confirm, and clear the queue fastest),
then by id; ``sort=created_at`` gives the oldest first instead.

Deciding (:func:`decide`) needs ``linkage:review`` and a reason:

* ``link`` — the pair is claimed (``pending`` → ``linked``, one conditional UPDATE, so
  two reviewers cannot both decide it: the second gets 409) and the two records' persons
  are merged with :func:`persons.merge` (``kind="link"``; record_a's person survives).
  When both records already belong to one person no merge is needed.
* ``reject`` — the pair becomes ``rejected`` and a ``reject`` change is written. **A
  rejected pair is never queued or auto-linked again**: the index must skip every
  candidate whose ``(record_a, record_b)`` row exists (the unique constraint) and must not
  move a ``rejected`` row back to ``pending`` when it scores the pair again. An unmerge
  also sets its pair to ``rejected`` for the same reason.

:func:`merge_persons` joins two persons an analyst knows are one (``kind="merge"``) and
:func:`unmerge` reverses any merge; both need the reviewer to see every record of the
persons involved (404 when they see none, 403 when some are outside their scope).
Every step is audited (``linkage.review.*`` plus ``linkage.merge`` / ``linkage.unmerge``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, aliased

from safecity.linkage import persons
from safecity.linkage.models import LinkChange, LinkPair, LinkRecord
from safecity.linkage.permissions import READ, REVIEW
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

PURPOSE = "person index review"
"""The purpose recorded for the queue's reads of personal data."""
DECISIONS: tuple[str, ...] = ("link", "reject")

RecordA = aliased(LinkRecord)
RecordB = aliased(LinkRecord)


class DecisionIn(BaseModel):
    decision: Literal["link", "reject"]
    reason: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class MergeIn(BaseModel):
    other: str = Field(min_length=1, max_length=32, description="the person absorbed")
    reason: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class PairRead(BaseModel):
    """A pending pair with both records side by side (personal data: audited)."""

    id: str
    probability: float
    contributions: dict[str, Any]
    model_id: str
    state: str
    created_at: datetime
    record_a: persons.RecordRead
    record_b: persons.RecordRead


class DecisionRead(BaseModel):
    pair_id: str
    state: str
    change: persons.ChangeRead | None
    """The change the decision wrote (``None``: the records were already one person)."""


QUEUE = ListSpec(
    sort={"probability": LinkPair.probability, "created_at": LinkPair.created_at},
    filters={"model_id": LinkPair.model_id},
    default_sort="-probability",
    tiebreak=LinkPair.id,
)


def _need(principal: Principal, permission: str, what: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"permission {permission!r} is required to {what}")


def _text(value: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{what} is required")
    return text


def queue(*, session: Session, principal: Principal, params: ListParams) -> Page[PairRead]:
    """Pending pairs whose two records the reviewer sees, highest probability first.
    Audited (``linkage.review.list`` with the count)."""
    _need(principal, REVIEW, "list the review queue")
    query = (
        select_pairs()
        .where(LinkPair.state == "pending")
        .where(rbac.scope_clause(principal, RecordA.org_id))
        .where(rbac.scope_clause(principal, RecordB.org_id))
    )

    def item(row: tuple[LinkPair, LinkRecord, LinkRecord]) -> PairRead:
        pair, a, b = row
        return _pair_read(pair, a, b)

    rows = cast("Select[Any]", query)  # paginate takes any row shape (scalars=False)
    page = paginate(session=session, query=rows, params=params, item=item, scalars=False)
    audit.record(
        session,
        principal=principal,
        action="linkage.review.list",
        target_type="link_pair",
        purpose=PURPOSE,
        detail={
            "count": len(page.items),
            "total": page.total,
            "offset": params.offset,
            "filters": {k: str(v) for k, v in params.filters.items()},
        },
    )
    return page


def select_pairs() -> Select[LinkPair, LinkRecord, LinkRecord]:
    return (
        select(LinkPair, RecordA, RecordB)
        .join(RecordA, RecordA.id == LinkPair.record_a)
        .join(RecordB, RecordB.id == LinkPair.record_b)
    )


def _pair_read(pair: LinkPair, a: LinkRecord, b: LinkRecord) -> PairRead:
    return PairRead(
        id=pair.id,
        probability=pair.probability,
        contributions=dict(pair.contributions or {}),
        model_id=pair.model_id,
        state=pair.state,
        created_at=pair.created_at,
        record_a=persons.RecordRead.model_validate(a),
        record_b=persons.RecordRead.model_validate(b),
    )


def _pair_in_scope(
    session: Session, principal: Principal, pair_id: str
) -> tuple[LinkPair, LinkRecord, LinkRecord]:
    pair = session.get(LinkPair, pair_id)
    if pair is None:
        raise NotFound("pair not found")
    a = session.get(LinkRecord, pair.record_a)
    b = session.get(LinkRecord, pair.record_b)
    if (
        a is None
        or b is None
        or not (principal.sees_org(a.org_id) and principal.sees_org(b.org_id))
    ):
        raise NotFound("pair not found")
    return pair, a, b


def get_pair(*, session: Session, principal: Principal, pair_id: str) -> PairRead:
    """One pair (any state) if the reader sees both records; audited read."""
    _need(principal, READ, "read a pair")
    pair, a, b = _pair_in_scope(session, principal, pair_id)
    audit.record(
        session,
        principal=principal,
        action="linkage.review.read",
        target_type="link_pair",
        target_id=pair.id,
        purpose=PURPOSE,
    )
    return _pair_read(pair, a, b)


def decide(
    *, session: Session, principal: Principal, pair_id: str, decision: str, reason: str
) -> DecisionRead:
    """Link or reject a pending pair (409 once decided; 422 without a reason)."""
    _need(principal, REVIEW, "decide a pair")
    if decision not in DECISIONS:
        raise InvalidInput("decision must be 'link' or 'reject'")
    text = _text(reason, "a reason")
    pair, a, b = _pair_in_scope(session, principal, pair_id)
    state = "linked" if decision == "link" else "rejected"
    now = utcnow()
    claimed = session.execute(
        update(LinkPair)
        .where(LinkPair.id == pair.id, LinkPair.state == "pending")
        .values(state=state, decided_by=principal.id, decided_at=now, reason=text)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"this pair was already decided ({pair.state})")
    session.refresh(pair)
    change: LinkChange | None
    if decision == "link":
        if a.person_id == b.person_id:
            change = None
        else:
            change = persons.merge(
                session,
                principal=principal,
                survivor_id=a.person_id,
                absorbed_id=b.person_id,
                kind="link",
                reason=text,
                pair_id=pair.id,
            )
    else:
        change = LinkChange(
            kind="reject",
            person_id=a.person_id,
            other_person_id=b.person_id,
            records=[],
            pair_id=pair.id,
            actor_id=principal.id,
            reason=text,
            at=now,
        )
        session.add(change)
        session.flush()
    audit.record(
        session,
        principal=principal,
        action=f"linkage.review.{decision}",
        target_type="link_pair",
        target_id=pair.id,
        detail={"change": change.id if change else None, "probability": pair.probability},
    )
    return DecisionRead(
        pair_id=pair.id,
        state=pair.state,
        change=persons.ChangeRead.model_validate(change) if change else None,
    )


def _see_all(session: Session, principal: Principal, person_id: str) -> None:
    seen, total = persons.scope_counts(session, principal, person_id)
    if seen == 0 and principal.visible_org_ids is not None:
        raise NotFound("person not found")
    if seen < total:
        raise PermissionDenied("some records of this person are outside your scope")


def merge_persons(
    *, session: Session, principal: Principal, survivor_id: str, absorbed_id: str, reason: str
) -> LinkChange:
    """An analyst's manual merge of two persons they know are one (``kind="merge"``)."""
    _need(principal, REVIEW, "merge persons")
    text = _text(reason, "a reason")
    if survivor_id == absorbed_id:
        raise Conflict("cannot merge a person into itself")
    for person_id, role in ((survivor_id, "surviving"), (absorbed_id, "absorbed")):
        persons.current(session, person_id, role)  # 404 unknown, 409 merged
        _see_all(session, principal, person_id)
    return persons.merge(
        session,
        principal=principal,
        survivor_id=survivor_id,
        absorbed_id=absorbed_id,
        kind="merge",
        reason=text,
    )


def unmerge(*, session: Session, principal: Principal, change_id: str, reason: str) -> LinkChange:
    """Reverse a merge (see :func:`persons.unmerge`); the reviewer must see every record
    of the surviving person."""
    _need(principal, REVIEW, "undo a merge")
    text = _text(reason, "a reason")
    change = persons.get_change(session, change_id)
    _see_all(session, principal, change.person_id)
    return persons.unmerge(session, principal=principal, change_id=change.id, reason=text)


def person_history(
    *, session: Session, principal: Principal, person_id: str
) -> list[persons.ChangeRead]:
    """The history of a person the reader sees (ids only, no personal values)."""
    _need(principal, READ, "read a person's history")
    person = persons.visible_person(session, principal, person_id)
    return persons.history(session, person.id)
