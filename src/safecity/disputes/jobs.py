"""Scheduled work of the disputes domain: the overdue follow-up reminder.

Every :data:`EVERY`, each open dispute whose next follow-up is overdue raises one
low-severity alert through :func:`safecity.alerts.service.raise_alert` (so it reaches the
station's terminal and queue like any alert), once per due time. The alert's place is the
dispute's point, else a point inside its station's area; a dispute with neither is
reported as a failed item of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.disputes import events
from safecity.disputes.models import Dispute
from safecity.disputes.service import overdue_query
from safecity.orgs import service as orgs
from safecity.platform import geo, jobs, outbox, timeline
from safecity.security import audit
from safecity.security.rbac import Principal

EVERY = timedelta(minutes=15)
BATCH = 500
CATEGORY = "dispute_follow_up"
TITLE_KEY = "disputes.alert.follow_up_overdue"


@dataclass
class ReminderReport:
    reminded: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)


def _place(session: Session, dispute: Dispute) -> tuple[float, float] | None:
    if dispute.lat is not None and dispute.lng is not None:
        return dispute.lat, dispute.lng
    station = orgs.get(session=session, org_id=dispute.org_id)
    if not station.area:
        return None
    point = geo.area_geometry(station.area).representative_point()
    return point.y, point.x


def remind_overdue(
    *,
    session: Session,
    now: datetime,
    principal: Principal = audit.SYSTEM,
    limit: int = BATCH,
) -> ReminderReport:
    """Raise one reminder alert per overdue follow-up not yet reminded of."""
    report = ReminderReport()
    rows = session.scalars(overdue_query(now).limit(limit)).all()
    for dispute in rows:
        due = dispute.next_follow_up_at
        if due is None or dispute.reminded_due_at == due:
            continue
        place = _place(session, dispute)
        if place is None:
            report.unplaced.append(dispute.id)
            continue
        alert = alerts.raise_alert(
            session,
            source="disputes",
            category=CATEGORY,
            severity="low",
            title_key=TITLE_KEY,
            lat=place[0],
            lng=place[1],
            dedup_key=f"dispute:{dispute.id}:{due.isoformat()}",
            occurred_at=now,
            detail={"dispute_id": dispute.id},
            org_id=dispute.org_id,
            principal=principal,
        )
        dispute.reminded_due_at = due
        timeline.add(
            session,
            record_type="dispute",
            record_id=dispute.id,
            org_id=dispute.org_id,
            kind="reminder",
            actor_id=principal.id,
            note=f"alert {alert.id}",
        )
        audit.record(
            session,
            principal=principal,
            action="disputes.remind",
            target_type="dispute",
            target_id=dispute.id,
            detail={"alert": alert.id, "due": due.isoformat()},
        )
        outbox.emit(
            session,
            type=events.FOLLOW_UP_OVERDUE,
            source=events.SOURCE,
            org_id=dispute.org_id,
            payload={
                "dispute_id": dispute.id,
                "org_id": dispute.org_id,
                "due_at": due.isoformat(),
                "alert_id": alert.id,
            },
        )
        report.reminded.append(dispute.id)
    return report


@jobs.job("disputes.follow_up_reminder", every=EVERY)
def follow_up_reminder(ctx: jobs.JobContext) -> int:
    """Raise a reminder alert for each dispute whose follow-up is overdue."""
    report = remind_overdue(session=ctx.session, now=ctx.now, principal=ctx.principal)
    for dispute_id in report.unplaced:
        ctx.fail_item(f"dispute {dispute_id}: no point and no station area for the reminder")
    return len(report.reminded)
