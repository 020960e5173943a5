"""Retention: how long each record type is kept, enforced by the ``retention.enforce`` job.

The domain that owns a record type registers its policy at import time (in a module
listed in :data:`safecity.platform.jobs.JOB_MODULES`)::

    retention.register(
        record_type="case",
        period=timedelta(days=365 * 3),
        find_expired=retention.expired_by(Case.closed_at, id=Case.id, org=Case.org_id),
        erase=cases_service.erase,           # erase(*, session, record_id) -> None
        owner="cases",
        description="closed cases: 3 years after closing",
    )

The job finds records older than ``now - period`` and erases each in its own transaction
through :func:`erase_record`: the domain's erase function, the record's timeline, one
audit record (action ``erase``, ids only) and a ``platform.record.erased`` event, so every
copy elsewhere (search indexes, analytics tables, other services) is erased by its
consumer. One failing record does not stop the others; the run then ends "partial".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from safecity.platform import jobs, outbox, timeline
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.events import register_event_type
from safecity.security import audit
from safecity.security.rbac import Principal

log = logging.getLogger("safecity.retention")

RECORD_ERASED = "platform.record.erased"
RECORD_ERASED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["record_type", "record_id", "reason", "erased_at"],
    "properties": {
        "record_type": {"type": "string", "minLength": 1},
        "record_id": {"type": "string", "minLength": 1},
        "reason": {"enum": ["retention", "request"]},
        "erased_at": {"type": "string", "format": "date-time"},
    },
}
register_event_type(
    RECORD_ERASED,
    RECORD_ERASED_SCHEMA,
    description="A record was erased; every consumer holding a copy must erase it too.",
)

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class ExpiredRecord:
    record_id: str
    org_id: str | None = None


class FindExpired(Protocol):
    def __call__(
        self, *, session: Session, cutoff: datetime, limit: int
    ) -> Sequence[ExpiredRecord]: ...


class Erase(Protocol):
    def __call__(self, *, session: Session, record_id: str) -> None: ...


@dataclass(frozen=True)
class RetentionPolicy:
    record_type: str
    period: timedelta
    find_expired: FindExpired
    erase: Erase
    owner: str = ""
    description: str = ""
    erase_timeline: bool = True


class RetentionRegistry:
    """Policies by record type. The module-level :data:`policies` is the one enforced."""

    def __init__(self) -> None:
        self._policies: dict[str, RetentionPolicy] = {}

    def register(
        self,
        *,
        record_type: str,
        period: timedelta,
        find_expired: FindExpired,
        erase: Erase,
        owner: str = "",
        description: str = "",
        erase_timeline: bool = True,
    ) -> RetentionPolicy:
        if period <= timedelta(0):
            raise ValueError(f"retention period of {record_type!r} must be positive")
        policy = RetentionPolicy(
            record_type=record_type,
            period=period,
            find_expired=find_expired,
            erase=erase,
            owner=owner,
            description=description,
            erase_timeline=erase_timeline,
        )
        existing = self._policies.get(record_type)
        if existing is not None and existing != policy:
            raise ValueError(f"a different retention policy is registered for {record_type!r}")
        self._policies[record_type] = policy
        return policy

    def unregister(self, record_type: str) -> None:
        self._policies.pop(record_type, None)

    def get(self, record_type: str) -> RetentionPolicy:
        try:
            return self._policies[record_type]
        except KeyError:
            raise InvalidInput(f"no retention policy for record type {record_type!r}") from None

    def all(self) -> list[RetentionPolicy]:
        return sorted(self._policies.values(), key=lambda p: p.record_type)


policies = RetentionRegistry()
register = policies.register


def expired_by(
    timestamp: InstrumentedAttribute[Any],
    *,
    id: InstrumentedAttribute[Any],
    org: InstrumentedAttribute[Any] | None = None,
    where: ColumnElement[bool] | None = None,
) -> FindExpired:
    """A finder for the common case: rows whose ``timestamp`` column is before the cutoff.

    Rows with a NULL timestamp (e.g. a case not closed yet) never expire. ``where`` adds
    a condition (e.g. ``Case.state == "closed"``).
    """

    def find(*, session: Session, cutoff: datetime, limit: int) -> Sequence[ExpiredRecord]:
        columns: list[Any] = [id, org] if org is not None else [id]
        stmt = select(*columns).where(timestamp.is_not(None), timestamp < cutoff)
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.order_by(timestamp, id).limit(limit)
        return [
            ExpiredRecord(
                record_id=str(row[0]),
                org_id=None if org is None or row[1] is None else str(row[1]),
            )
            for row in session.execute(stmt)
        ]

    return find


def erase_record(
    session: Session,
    *,
    policy: RetentionPolicy,
    record_id: str,
    org_id: str | None = None,
    principal: Principal = audit.SYSTEM,
    reason: str = "retention",
    now: datetime | None = None,
) -> None:
    """Erase one record in ``session``'s transaction: the domain's erase function, its
    timeline, an audit record (ids only) and a ``platform.record.erased`` event."""
    now = now or utcnow()
    policy.erase(session=session, record_id=record_id)
    removed = 0
    if policy.erase_timeline:
        removed = timeline.erase_for(session, record_type=policy.record_type, record_id=record_id)
    audit.record(
        session,
        principal=principal,
        action="erase",
        target_type=policy.record_type,
        target_id=record_id,
        purpose=reason,
        detail={
            "reason": reason,
            "period_days": policy.period.days,
            "timeline_entries": removed,
        },
    )
    outbox.emit(
        session,
        type=RECORD_ERASED,
        source="platform.retention",
        org_id=org_id,
        payload={
            "record_type": policy.record_type,
            "record_id": record_id,
            "reason": reason,
            "erased_at": now.isoformat(),
        },
    )


@dataclass
class EnforcementReport:
    erased: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # type, id, error

    @property
    def total(self) -> int:
        return sum(self.erased.values())


def enforce(
    *,
    sessions: sessionmaker[Session],
    now: datetime | None = None,
    registry: RetentionRegistry | None = None,
    batch_size: int = DEFAULT_BATCH,
    max_per_type: int | None = None,
) -> EnforcementReport:
    """Erase every expired record of every policy, one transaction per record.

    ``sessions`` is the runtime's session factory. Records whose erase failed are
    reported and skipped for the rest of this run. An erase function must make its record
    stop matching the finder (delete it, or clear its timestamp); a record seen once is
    not looked at again in the same run.
    """
    now = now or utcnow()
    report = EnforcementReport()
    for policy in (registry or policies).all():
        cutoff = now - policy.period
        done = 0
        seen: set[str] = set()
        while max_per_type is None or done < max_per_type:
            limit = batch_size + len(seen)
            with sessions() as s:
                found = [
                    r
                    for r in policy.find_expired(session=s, cutoff=cutoff, limit=limit)
                    if r.record_id not in seen
                ]
            if not found:
                break
            for item in found:
                if max_per_type is not None and done >= max_per_type:
                    break
                seen.add(item.record_id)
                try:
                    with transaction(sessions) as s:
                        erase_record(
                            s,
                            policy=policy,
                            record_id=item.record_id,
                            org_id=item.org_id,
                            now=now,
                        )
                except Exception as exc:
                    log.exception("erasing %s %s failed", policy.record_type, item.record_id)
                    report.failed.append(
                        (policy.record_type, item.record_id, f"{type(exc).__name__}: {exc}")
                    )
                    continue
                done += 1
                report.erased[policy.record_type] = report.erased.get(policy.record_type, 0) + 1
    return report


@jobs.job("retention.enforce", every=timedelta(hours=1))
def enforce_job(ctx: jobs.JobContext) -> int:
    """Erase records past their retention period (audited, propagated by events)."""
    report = enforce(sessions=ctx.runtime.sessions, now=ctx.now)
    for record_type, record_id, error in report.failed:
        ctx.fail_item(f"{record_type} {record_id}: {error}")
    return report.total


OUTBOX_KEEP_SENT = timedelta(days=7)
JOB_RUNS_KEEP = timedelta(days=90)
JOB_RUNS_KEEP_IDLE = timedelta(days=1)  # runs that succeeded with nothing to do


@jobs.job("platform.prune", every=timedelta(days=1), offset=timedelta(hours=3))
def prune_job(ctx: jobs.JobContext) -> int:
    """Delete relayed outbox events older than 7 days, job runs older than 90 days and
    idle job runs (succeeded, nothing to do) older than a day."""
    from safecity.platform.relay import prune_sent

    sent = prune_sent(ctx.session, sent_before=ctx.now - OUTBOX_KEEP_SENT)
    runs = jobs.prune_runs(
        ctx.session,
        finished_before=ctx.now - JOB_RUNS_KEEP,
        idle_before=ctx.now - JOB_RUNS_KEEP_IDLE,
    )
    return sent + runs
