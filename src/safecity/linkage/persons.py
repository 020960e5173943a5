"""Master persons of the person index: create, merge, unmerge, resolve and read them.

This module owns the contract the index (:mod:`safecity.linkage.index`) and the review
queue (:mod:`safecity.linkage.review`) both call:

* :func:`new_person` — a fresh master person (an id, nothing personal).
* :func:`merge` — every record of the *absorbed* person moves to the *survivor*; the
  absorbed person points at the survivor (``merged_into``) so old references still
  resolve; one :class:`LinkChange` lists exactly the records that moved. Both ids must
  name **current** persons: merging a person into itself, or merging a person that was
  itself merged (or into one), is a :class:`Conflict` (409) whose detail names the
  survivor to use. Callers holding a possibly stale id call :func:`resolve` first
  (``LinkRecord.person_id`` is always current: merges move the records).
* :func:`unmerge` — reverses one merge: the records that change moved and that are still
  on the survivor go back to the absorbed person (a record added to the survivor later
  stays), ``merged_into`` is cleared, and the pair the change linked goes back to
  ``rejected`` so the index never links it automatically again. Merges are undone
  newest first: a survivor that was later merged into someone else → 409 (undo that
  merge first), and a change already undone → 409.
* :func:`resolve` — follows ``merged_into`` to the survivor.

The primitives check no permission (the index calls them as ``audit.SYSTEM``); the review
module checks ``linkage:review`` and the reader's scope before calling them. Both write
the audit log (``linkage.merge``, ``linkage.unmerge``).

:func:`person_view` is the scoped, audited read of one person: the records the reader
may see (records of other orgs are counted, not shown), their sources and the history.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from safecity.linkage.models import LinkChange, LinkPair, LinkPerson, LinkRecord
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

MERGE_KINDS: tuple[str, ...] = ("auto_link", "link", "merge")
"""The change kinds that join two persons (and that :func:`unmerge` can reverse)."""
MAX_CHAIN = 1000
"""A ``merged_into`` chain longer than this is a cycle (a corrupted table): 409."""
TARGET = "link_person"


class RecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    source: str
    source_id: str
    org_id: str
    person_id: str
    fields: dict[str, Any]
    created_at: datetime


class ChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    person_id: str
    other_person_id: str | None
    records: list[str]
    pair_id: str | None
    undoes: str | None
    actor_id: str
    reason: str
    at: datetime
    undone_by: str | None = None
    """For a merge: the unmerge that reversed it, if any."""


class PersonView(BaseModel):
    id: str
    requested_id: str
    """The id asked for (differs from ``id`` when that person was merged)."""
    created_at: datetime
    records: list[RecordRead]
    hidden_records: int
    """Records of this person in orgs outside the reader's scope (not shown)."""
    sources: dict[str, int]
    """How many of the shown records come from each source domain."""
    history: list[ChangeRead]


def _text(value: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{what} is required")
    return text


def new_person(session: Session) -> LinkPerson:
    """A new master person (flushed, so its id is set)."""
    person = LinkPerson()
    session.add(person)
    session.flush()
    return person


def _get(session: Session, person_id: str) -> LinkPerson:
    person = session.get(LinkPerson, person_id)
    if person is None:
        raise NotFound("person not found")
    return person


def resolve(session: Session, person_id: str) -> LinkPerson:
    """The current person ``person_id`` stands for: itself, or the survivor it was merged
    into (following chains). 404 for an unknown id."""
    person = _get(session, person_id)
    seen = {person.id}
    while person.merged_into is not None:
        person = _get(session, person.merged_into)
        if person.id in seen or len(seen) > MAX_CHAIN:
            raise Conflict("the merge chain of this person loops", person=person_id)
        seen.add(person.id)
    return person


def current(session: Session, person_id: str, role: str) -> LinkPerson:
    """The person ``person_id`` if it is current; 409 naming its survivor if merged."""
    person = _get(session, person_id)
    if person.merged_into is not None:
        survivor = resolve(session, person.id)
        raise Conflict(
            f"the {role} person was merged into {survivor.id}; use that person",
            person=person.id,
            survivor=survivor.id,
        )
    return person


def merge(
    session: Session,
    *,
    principal: Principal,
    survivor_id: str,
    absorbed_id: str,
    kind: str,
    reason: str,
    pair_id: str | None = None,
) -> LinkChange:
    """Move every record of ``absorbed_id`` to ``survivor_id`` and record the change.

    ``kind`` is ``auto_link`` (the index), ``link`` (a reviewed pair) or ``merge`` (an
    analyst's manual merge). A ``pair_id`` names the pair that justified it; that pair is
    marked ``linked``. 409: the same person, or either person already merged."""
    if kind not in MERGE_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(MERGE_KINDS)}")
    text = _text(reason, "a reason")
    if survivor_id == absorbed_id:
        raise Conflict("cannot merge a person into itself")
    survivor = current(session, survivor_id, "surviving")
    absorbed = current(session, absorbed_id, "absorbed")
    if survivor.id == absorbed.id:  # pragma: no cover - ids differ and neither is merged
        raise Conflict("cannot merge a person into itself")
    now = utcnow()
    moved = list(
        session.scalars(
            select(LinkRecord).where(LinkRecord.person_id == absorbed.id).order_by(LinkRecord.id)
        )
    )
    for record in moved:
        record.person_id = survivor.id
        record.updated_at = now
    absorbed.merged_into = survivor.id
    absorbed.updated_at = now
    survivor.updated_at = now
    if pair_id is not None:
        pair = session.get(LinkPair, pair_id)
        if pair is None:
            raise NotFound("pair not found")
        if pair.state != "linked":
            pair.state = "linked"
            pair.decided_by = principal.id
            pair.decided_at = now
            pair.reason = text
    change = LinkChange(
        kind=kind,
        person_id=survivor.id,
        other_person_id=absorbed.id,
        records=[r.id for r in moved],
        pair_id=pair_id,
        actor_id=principal.id,
        reason=text,
        at=now,
    )
    session.add(change)
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="linkage.merge",
        target_type=TARGET,
        target_id=survivor.id,
        detail={
            "change": change.id,
            "kind": kind,
            "absorbed": absorbed.id,
            "records": len(moved),
            "pair": pair_id,
        },
    )
    return change


def get_change(session: Session, change_id: str) -> LinkChange:
    change = session.get(LinkChange, change_id)
    if change is None:
        raise NotFound("change not found")
    return change


def undone_by(session: Session, change_id: str) -> LinkChange | None:
    """The unmerge that reversed ``change_id``, if any."""
    return session.scalar(select(LinkChange).where(LinkChange.undoes == change_id).limit(1))


def unmerge(session: Session, *, principal: Principal, change_id: str, reason: str) -> LinkChange:
    """Reverse the merge ``change_id``: its records still on the survivor go back to the
    absorbed person, which is current again; its pair (if any) becomes ``rejected``.

    409: not a merge, already undone, or the survivor was merged since (undo that first).
    """
    text = _text(reason, "a reason")
    change = get_change(session, change_id)
    if change.kind not in MERGE_KINDS or change.other_person_id is None:
        raise Conflict(f"a {change.kind!r} change cannot be undone")
    if undone_by(session, change.id) is not None:
        raise Conflict("this merge was already undone")
    survivor = _get(session, change.person_id)
    absorbed = _get(session, change.other_person_id)
    if survivor.merged_into is not None:
        raise Conflict(
            "the surviving person was merged since; undo that merge first",
            survivor=resolve(session, survivor.id).id,
        )
    if absorbed.merged_into != survivor.id:  # pragma: no cover - only a corrupted table
        raise Conflict("the absorbed person is no longer merged into the survivor")
    now = utcnow()
    restored = list(
        session.scalars(
            select(LinkRecord)
            .where(LinkRecord.id.in_(change.records), LinkRecord.person_id == survivor.id)
            .order_by(LinkRecord.id)
        )
    )
    for record in restored:
        record.person_id = absorbed.id
        record.updated_at = now
    absorbed.merged_into = None
    absorbed.updated_at = now
    survivor.updated_at = now
    if change.pair_id is not None:
        pair = session.get(LinkPair, change.pair_id)
        if pair is not None:
            pair.state = "rejected"
            pair.decided_by = principal.id
            pair.decided_at = now
            pair.reason = text
    undo = LinkChange(
        kind="unmerge",
        person_id=absorbed.id,
        other_person_id=survivor.id,
        records=[r.id for r in restored],
        pair_id=change.pair_id,
        undoes=change.id,
        actor_id=principal.id,
        reason=text,
        at=now,
    )
    session.add(undo)
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="linkage.unmerge",
        target_type=TARGET,
        target_id=absorbed.id,
        detail={
            "change": undo.id,
            "undoes": change.id,
            "survivor": survivor.id,
            "records": len(restored),
            "pair": change.pair_id,
        },
    )
    return undo


# --------------------------------------------------------------------------- reads


def scope_counts(session: Session, principal: Principal, person_id: str) -> tuple[int, int]:
    """(records of the person the principal sees, all records of the person)."""
    total = session.scalar(
        select(func.count()).select_from(LinkRecord).where(LinkRecord.person_id == person_id)
    )
    seen = session.scalar(
        select(func.count())
        .select_from(LinkRecord)
        .where(LinkRecord.person_id == person_id, rbac.scope_clause(principal, LinkRecord.org_id))
    )
    return int(seen or 0), int(total or 0)


def visible_person(session: Session, principal: Principal, person_id: str) -> LinkPerson:
    """The current person for ``person_id`` if the principal sees at least one of its
    records; otherwise 404 (existence does not leak across orgs)."""
    person = resolve(session, person_id)
    seen, _ = scope_counts(session, principal, person.id)
    if seen == 0:
        raise NotFound("person not found")
    return person


def history(session: Session, person_id: str) -> list[ChangeRead]:
    """Every change that joined, split or rejected this person, oldest first (ids only)."""
    rows = list(
        session.scalars(
            select(LinkChange)
            .where(or_(LinkChange.person_id == person_id, LinkChange.other_person_id == person_id))
            .order_by(LinkChange.at, LinkChange.id)
        )
    )
    undone: dict[str, str] = {r.undoes: r.id for r in rows if r.undoes is not None}
    missing = [r.id for r in rows if r.kind in MERGE_KINDS and r.id not in undone]
    if missing:
        for row in session.scalars(select(LinkChange).where(LinkChange.undoes.in_(missing))):
            if row.undoes is not None:
                undone[row.undoes] = row.id
    result = []
    for row in rows:
        item = ChangeRead.model_validate(row)
        item.undone_by = undone.get(row.id)
        result.append(item)
    return result


def person_view(
    session: Session, *, principal: Principal, person_id: str, purpose: str
) -> PersonView:
    """One person's records in the reader's scope (others counted), sources and history.

    A merged id shows its survivor. 404 when the reader sees none of its records.
    Audited (``linkage.person.read`` with the purpose and the counts)."""
    why = _text(purpose, "a purpose")
    person = visible_person(session, principal, person_id)
    records = list(
        session.scalars(
            select(LinkRecord)
            .where(
                LinkRecord.person_id == person.id,
                rbac.scope_clause(principal, LinkRecord.org_id),
            )
            .order_by(LinkRecord.created_at, LinkRecord.id)
        )
    )
    _, total = scope_counts(session, principal, person.id)
    view = PersonView(
        id=person.id,
        requested_id=person_id,
        created_at=person.created_at,
        records=[RecordRead.model_validate(r) for r in records],
        hidden_records=total - len(records),
        sources=dict(sorted(Counter(r.source for r in records).items())),
        history=history(session, person.id),
    )
    audit.record(
        session,
        principal=principal,
        action="linkage.person.read",
        target_type=TARGET,
        target_id=person.id,
        purpose=why,
        detail={"shown": len(records), "hidden": view.hidden_records},
    )
    return view
