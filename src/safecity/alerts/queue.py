"""The live alert queue and its map: open alerts in the principal's scope, filtered, most
urgent first, and the same alerts as GeoJSON for the map (ids, codes and places only).

Ordering of the queue: severity (critical first), then age (the alert waiting longest
first). The map shows at most :data:`MAP_LIMIT` alerts, the most recently seen; the
collection says when it was capped (``truncated``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, select
from sqlalchemy.orm import Session

from safecity.alerts import service
from safecity.alerts.models import SEVERITIES, Alert
from safecity.alerts.workflow import OPEN_STATES
from safecity.platform.errors import InvalidInput
from safecity.security import rbac
from safecity.security.rbac import Principal

QUEUE_LIMIT = 500
MAP_LIMIT = 500
DETAIL_URL = "/console/alerts/{id}"
_CATEGORY = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_RANK = case({s: i for i, s in enumerate(SEVERITIES)}, value=Alert.severity, else_=len(SEVERITIES))


@dataclass(frozen=True)
class QueueFilters:
    """Equality filters of the queue (``None`` = any); :meth:`parse` checks the values."""

    severity: str | None = None
    category: str | None = None
    state: str | None = None

    @classmethod
    def parse(
        cls, *, severity: str | None = None, category: str | None = None, state: str | None = None
    ) -> QueueFilters:
        severity, category, state = (
            v.strip() or None if v else None for v in (severity, category, state)
        )
        if severity is not None and severity not in SEVERITIES:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}")
        if state is not None and state not in OPEN_STATES:
            raise InvalidInput(f"state must be one of the open states {', '.join(OPEN_STATES)}")
        if category is not None and not _CATEGORY.match(category):
            raise InvalidInput("category must be a lower-case code")
        return cls(severity=severity, category=category, state=state)

    def matches(self, alert: Alert) -> bool:
        """Whether ``alert`` is open and passes the filters (for the live stream)."""
        return (
            alert.state in OPEN_STATES
            and (self.severity is None or alert.severity == self.severity)
            and (self.category is None or alert.category == self.category)
            and (self.state is None or alert.state == self.state)
        )

    def query_string(self) -> str:
        pairs = [(k, v) for k, v in vars(self).items() if v is not None]
        return "&".join(f"{k}={v}" for k, v in pairs)


def _open(principal: Principal, filters: QueueFilters) -> Select[Any]:
    stmt = service.scoped_query(principal).where(Alert.state.in_(OPEN_STATES))
    if filters.severity is not None:
        stmt = stmt.where(Alert.severity == filters.severity)
    if filters.category is not None:
        stmt = stmt.where(Alert.category == filters.category)
    if filters.state is not None:
        stmt = stmt.where(Alert.state == filters.state)
    return stmt


def queue(
    *,
    session: Session,
    principal: Principal,
    filters: QueueFilters | None = None,
    limit: int = QUEUE_LIMIT,
) -> list[Alert]:
    """Open alerts in scope passing ``filters``: by severity, then oldest first."""
    stmt = _open(principal, filters or QueueFilters())
    stmt = stmt.order_by(_RANK, Alert.first_seen_at, Alert.id).limit(limit)
    return list(session.scalars(stmt))


def open_categories(*, session: Session, principal: Principal) -> list[str]:
    """Categories of the open alerts in scope (the queue's category filter offers these)."""
    stmt = (
        select(Alert.category)
        .distinct()
        .where(rbac.scope_clause(principal, Alert.org_id), Alert.state.in_(OPEN_STATES))
        .order_by(Alert.category)
        .limit(200)
    )
    return [str(c) for c in session.scalars(stmt)]


def feature(alert: Alert) -> dict[str, Any]:
    """One alert as a GeoJSON point feature: no detail, no dedup key, nothing personal."""
    return {
        "type": "Feature",
        "id": alert.id,
        "geometry": {"type": "Point", "coordinates": [alert.lng, alert.lat]},
        "properties": {
            "id": alert.id,
            "severity": alert.severity,
            "category": alert.category,
            "title_key": alert.title_key,
            "state": alert.state,
            "count": alert.count,
            "org_id": alert.org_id,
            "escalated": alert.escalated,
            "first_seen_at": alert.first_seen_at.isoformat(),
            "last_seen_at": alert.last_seen_at.isoformat(),
            "sla_due_at": alert.sla_due_at.isoformat(),
            "url": DETAIL_URL.format(id=alert.id),
        },
    }


def map_collection(
    *,
    session: Session,
    principal: Principal,
    filters: QueueFilters | None = None,
    limit: int = MAP_LIMIT,
) -> dict[str, Any]:
    """The open alerts in scope as a GeoJSON FeatureCollection, the latest ``limit``."""
    stmt = _open(principal, filters or QueueFilters())
    rows = list(
        session.scalars(stmt.order_by(Alert.last_seen_at.desc(), Alert.id).limit(limit + 1))
    )
    return {
        "type": "FeatureCollection",
        "features": [feature(a) for a in rows[:limit]],
        "truncated": len(rows) > limit,
        "limit": limit,
    }
