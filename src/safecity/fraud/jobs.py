"""Scheduled work of the fraud domain: block-list expiry, stale actions, retention.

- ``fraud.expire_indicators`` (hourly): active entries past their expiry leave the list
  (phone numbers are re-assigned; a stale block hurts the next owner);
- ``fraud.expire_actions`` (every 15 minutes): open actions a day past their deadline
  are closed as expired, so the centre's list holds what can still be done;
- retention: closed and expired actions are erased 365 days after closing (the purpose,
  fraud prevention, is served by then; the dashboard's counts of older weeks go with
  them), decided appeals 730 days after the decision.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from safecity.fraud import actions, indicators
from safecity.fraud.models import Action, Appeal
from safecity.platform import jobs, retention


@jobs.job("fraud.expire_indicators", every=timedelta(hours=1))
def expire_indicators(ctx: jobs.JobContext) -> int:
    """Take entries past their expiry off the block list."""
    return indicators.expire_due(session=ctx.session, now=ctx.now)


@jobs.job("fraud.expire_actions", every=timedelta(minutes=15))
def expire_actions(ctx: jobs.JobContext) -> int:
    """Close open actions that are a day past their deadline as expired."""
    return actions.expire_overdue(session=ctx.session, now=ctx.now)


def _erase_action(*, session: Session, record_id: str) -> None:
    row = session.get(Action, record_id)
    if row is not None:
        session.delete(row)


def _erase_appeal(*, session: Session, record_id: str) -> None:
    row = session.get(Appeal, record_id)
    if row is not None:
        session.delete(row)


retention.register(
    record_type="fraud_action",
    period=timedelta(days=365),
    find_expired=retention.expired_by(Action.closed_at, id=Action.id, org=Action.org_id),
    erase=_erase_action,
    owner="fraud",
    description="fraud actions: 365 days after they were closed or expired",
)
retention.register(
    record_type="fraud_appeal",
    period=timedelta(days=730),
    find_expired=retention.expired_by(Appeal.decided_at, id=Appeal.id, org=Appeal.org_id),
    erase=_erase_appeal,
    owner="fraud",
    description="block-list appeals: 730 days after the decision",
    erase_timeline=False,
)
