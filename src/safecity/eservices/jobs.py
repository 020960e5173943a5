"""The SLA job of e-service applications (``eservices.sla``, every 15 minutes).

An open application (submitted, accepted, under review) whose clock runs and whose due
date is at most one working day away raises a ``due_soon`` alert for its handling org;
one past its due date raises an ``overdue`` alert (high severity). Each level is raised
once per application (``Application.sla_level``); a later pause or a new due date after a
supplement lets it be raised again. The alert carries no personal data (ids and dates).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.eservices import events
from safecity.eservices.models import Application
from safecity.eservices.workdays import local_date, workdays_between
from safecity.eservices.workflow import RECORD_TYPE
from safecity.platform import jobs, outbox
from safecity.platform.db import utcnow
from safecity.security import audit

SLA_STATES: tuple[str, ...] = ("submitted", "accepted", "review")
TITLE_KEY = "eservices.alert.sla"
CITY_CENTRE = (31.2304, 121.4737)  # (lat, lng) of People's Square: the alert needs a place
LEVELS: tuple[str, ...] = ("due_soon", "overdue")


def level_for(due_on: date, today: date) -> str | None:
    """``overdue`` after the due date; ``due_soon`` within one working day of it."""
    if today > due_on:
        return "overdue"
    if workdays_between(today, due_on) <= 1:
        return "due_soon"
    return None


def check_sla(session: Session, *, now: datetime | None = None) -> int:
    """Raise the SLA alerts now due; returns how many were raised."""
    moment = now or utcnow()
    today = local_date(moment)
    rows = session.scalars(
        select(Application).where(
            Application.state.in_(SLA_STATES),
            Application.is_parent.is_(False),
            Application.paused_since.is_(None),
            Application.due_on.is_not(None),
            Application.due_on <= today + timedelta(days=14),
        )
    )
    raised = 0
    for app in rows:
        assert app.due_on is not None
        level = level_for(app.due_on, today)
        if level is None:
            continue
        done = app.sla_level
        if done is not None and LEVELS.index(done) >= LEVELS.index(level):
            continue
        lat, lng = CITY_CENTRE
        alert = alerts.raise_alert(
            session,
            source="eservices",
            category="eservices_sla",
            severity="high" if level == "overdue" else "medium",
            title_key=TITLE_KEY,
            lat=lat,
            lng=lng,
            dedup_key=f"eservices-sla:{app.id}:{level}",
            occurred_at=moment,
            detail={
                "application_id": app.id,
                "reference": app.reference,
                "item_code": app.item_code,
                "level": level,
                "due_on": app.due_on.isoformat(),
            },
            org_id=app.org_id,
        )
        app.sla_level = level
        outbox.emit(
            session,
            type=events.SLA,
            source=events.SOURCE,
            org_id=app.org_id,
            payload={
                "application_id": app.id,
                "org_id": app.org_id,
                "level": level,
                "due_on": app.due_on.isoformat(),
                "alert_id": alert.id,
            },
        )
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="eservices.sla_alert",
            target_type=RECORD_TYPE,
            target_id=app.id,
            detail={"level": level, "alert": alert.id},
        )
        raised += 1
    return raised


@jobs.job("eservices.sla", every=timedelta(minutes=15))
def sla_job(ctx: jobs.JobContext) -> int:
    return check_sla(ctx.session, now=ctx.now)
