"""Rows of the person index inserted directly (no Splink): a model, records, pairs, and
principals with a given scope — shared by the persons and review tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.linkage import persons
from safecity.linkage.models import LinkModel, LinkPair, LinkRecord
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal

_counter = {"n": 0}


def principal(role: str, org_id: str, scope: frozenset[str] | None) -> Principal:
    return Principal(f"{role}-{org_id}", "user", role, frozenset({role}), org_id, scope)


def model(session: Session) -> LinkModel:
    _counter["n"] += 1
    row = LinkModel(
        version=f"test-{_counter['n']}",
        document="{}",
        sha256="0" * 64,
        auto_link=0.95,
        review=0.5,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def record(
    session: Session, org_id: str, person_id: str | None = None, **fields: Any
) -> LinkRecord:
    """A record of ``cases.person`` in ``org_id``, on a new person unless one is given."""
    _counter["n"] += 1
    row = LinkRecord(
        source="cases.person",
        source_id=f"p{_counter['n']}",
        org_id=org_id,
        fields={"surname": "王", "given_name": "伟", **fields},
        person_id=person_id or persons.new_person(session).id,
    )
    session.add(row)
    session.flush()
    return row


def pair(
    session: Session, a: LinkRecord, b: LinkRecord, probability: float, model_id: str
) -> LinkPair:
    first, second = sorted((a.id, b.id))
    row = LinkPair(
        record_a=first,
        record_b=second,
        probability=probability,
        contributions={"surname": 3.2, "dob": -1.5},
        model_id=model_id,
    )
    session.add(row)
    session.flush()
    return row


def audit_actions(session: Session) -> list[tuple[str, str | None]]:
    """(action, purpose) of the committed ``linkage.*`` audit rows, in order."""
    return [
        (e.action, e.purpose)
        for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("linkage.%")).order_by(AuditEntry.seq)
        )
    ]
