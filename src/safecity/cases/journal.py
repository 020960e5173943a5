"""One step on a case, written twice in the same transaction: its internal timeline entry
(what officers see on the case) and its audit record (who did it, for accountability)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from safecity.cases.models import Case
from safecity.cases.workflow import CASE
from safecity.platform import timeline
from safecity.security import audit
from safecity.security.rbac import Principal

RECORD = CASE.record_type


def journal(
    session: Session,
    *,
    case: Case,
    principal: Principal,
    kind: str,
    note: str,
    action: str,
    detail: dict[str, Any],
) -> None:
    """Add the timeline entry ``kind`` with ``note`` and the audit record ``action``."""
    timeline.add(
        session,
        record_type=RECORD,
        record_id=case.id,
        org_id=case.org_id,
        kind=kind,
        actor_id=principal.id,
        note=note,
    )
    audit.record(
        session,
        principal=principal,
        action=action,
        target_type=RECORD,
        target_id=case.id,
        detail=detail,
    )
