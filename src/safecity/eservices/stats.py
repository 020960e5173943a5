"""Figures of e-service applications: working days per item and materials pulled.

Median / p90 working days from submission to decision per item, open overdue and
decided-late counts, and the share of materials pulled instead of uploaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.eservices.models import Application, Attachment
from safecity.eservices.workdays import local_date
from safecity.eservices.workflow import FINAL_STATES, RECORD_TYPE
from safecity.platform.db import utcnow
from safecity.platform.errors import PermissionDenied
from safecity.security import audit, rbac
from safecity.security.rbac import Principal


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def stats(*, session: Session, principal: Principal, today: date | None = None) -> dict[str, Any]:
    """Median / p90 working days from submission to decision per item, open overdue and
    decided-late counts,
    and the share of materials pulled instead of uploaded (submitted applications; a
    single-window application counts once, by its parent)."""
    if not principal.can("eservices:stats"):
        raise PermissionDenied("permission 'eservices:stats' is required")
    day = today or local_date(utcnow())
    scope = rbac.scope_clause(principal, Application.org_id)
    rows = session.execute(
        select(
            Application.item_code,
            Application.state,
            Application.finished_workdays,
            Application.due_on,
            Application.decided_at,
            Application.deadline_workdays,
        ).where(scope, Application.state != "draft", Application.parent_id.is_(None))
    ).all()
    per: dict[str, dict[str, Any]] = {}
    for code, state, finished, due_on, decided_at, limit in rows:
        entry = per.setdefault(code, {"count": 0, "days": [], "overdue": 0, "late": 0})
        entry["count"] += 1
        if finished is not None:
            entry["days"].append(float(finished))
            entry["late"] += finished > limit
        if due_on is not None and decided_at is None and state not in FINAL_STATES and day > due_on:
            entry["overdue"] += 1
    counts = dict(
        session.execute(
            select(Attachment.source, func.count())
            .join(Application, Application.id == Attachment.application_id)
            .where(scope, Application.state != "draft", Application.parent_id.is_(None))
            .group_by(Attachment.source)
        ).all()
    )
    pulled = int(counts.get("pulled", 0))
    uploaded = int(counts.get("uploaded", 0))
    audit.record(
        session,
        principal=principal,
        action="eservices.stats",
        target_type=RECORD_TYPE,
        detail={"items": len(per)},
    )
    return {
        "items": [
            {
                "item_code": code,
                "count": e["count"],
                "finished": len(e["days"]),
                "median_workdays": percentile(e["days"], 0.5),
                "p90_workdays": percentile(e["days"], 0.9),
                "overdue": e["overdue"],
                "late": e["late"],
            }
            for code, e in sorted(per.items())
        ],
        "materials_pulled": pulled,
        "materials_uploaded": uploaded,
        "share_pulled": pulled / (pulled + uploaded) if pulled + uploaded else 0.0,
    }
