"""``cases.reviews_overdue`` (every 15 minutes): a review stage past its statutory deadline
raises one high-severity alert for the review's station (once per review and stage). The
alert carries ids, the stage and the deadline: no grounds, no names."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.cases.reviews import RECORD
from safecity.cases.reviews_models import CaseReview
from safecity.platform import jobs
from safecity.platform.db import utcnow
from safecity.security import audit

JOB = "cases.reviews_overdue"
TITLE_KEY = "cases.alert.review_overdue"
CITY_CENTRE = (31.2304, 121.4737)  # (lat, lng) of People's Square: the alert needs a place


def check_overdue(session: Session, *, now: datetime | None = None) -> int:
    """Raise the overdue alerts now due; returns how many were raised."""
    moment = now or utcnow()
    raised = 0
    for review in session.scalars(
        select(CaseReview).where(
            CaseReview.due_at.is_not(None),
            CaseReview.due_at <= moment,
            CaseReview.alerted_state.is_distinct_from(CaseReview.state),  # not alerted yet
        )
    ):
        assert review.due_at is not None
        lat, lng = CITY_CENTRE
        alert = alerts.raise_alert(
            session,
            source="cases",
            category="case_review_overdue",
            severity="high",
            title_key=TITLE_KEY,
            lat=lat,
            lng=lng,
            dedup_key=f"case-review-overdue:{review.id}:{review.state}",
            occurred_at=moment,
            detail={
                "review_id": review.id,
                "case_id": review.case_id,
                "stage": review.state,
                "due_at": review.due_at.isoformat(),
            },
            org_id=review.org_id,
        )
        review.alerted_state = review.state
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="cases.review.overdue_alert",
            target_type=RECORD,
            target_id=review.id,
            detail={"stage": review.state, "alert": alert.id},
        )
        raised += 1
    return raised


@jobs.job(JOB, every=timedelta(minutes=15))
def overdue_job(ctx: jobs.JobContext) -> int:
    return check_overdue(ctx.session, now=ctx.now)
