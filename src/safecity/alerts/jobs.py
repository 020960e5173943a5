"""Scheduled work of the alerts domain: the acknowledgement SLA check."""

from __future__ import annotations

from datetime import timedelta

from safecity.alerts import service
from safecity.platform import jobs


@jobs.job("alerts.sla_check", every=timedelta(minutes=1))
def sla_check(ctx: jobs.JobContext) -> int:
    """Escalate alerts nobody acknowledged within their SLA to the district supervisor."""
    report = service.escalate_overdue(session=ctx.session, now=ctx.now, principal=ctx.principal)
    return len(report.escalated)
