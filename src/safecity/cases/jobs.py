"""Jobs of the cases domain.

``cases.stats_reconcile`` (daily, 03:00 Asia/Shanghai): recompute the halls' counters in
memory and, only when they differ from the stored ones (an org moved to another parent,
or a change made outside the service), rebuild them. The comparison takes no lock; the
rebuild locks the facts table on PostgreSQL while it runs.

``cases.replies_overdue`` (every 15 minutes): a citizen comment past its reply deadline
raises one alert for the case's station, once per comment
(:func:`safecity.cases.replies_due.check_overdue`).
"""

from __future__ import annotations

from datetime import timedelta

from safecity.cases import replies_due, stats
from safecity.platform import jobs
from safecity.security import audit

RECONCILE = "cases.stats_reconcile"
REPLIES_OVERDUE = "cases.replies_overdue"


@jobs.job(RECONCILE, every="1d", offset=timedelta(hours=19))
def reconcile(ctx: jobs.JobContext) -> int:
    """Rebuild the halls' statistics when they differ from a fresh computation."""
    stored = stats.counters(ctx.session)
    fresh = stats.computed(ctx.session)
    if fresh == stored:
        return 0
    differ = len(stored.keys() ^ fresh.keys()) + sum(
        1 for k in stored.keys() & fresh.keys() if stored[k] != fresh[k]
    )
    report = stats.rebuild(ctx.session)
    audit.record(
        ctx.session,
        principal=audit.SYSTEM,
        action="cases.stats.rebuild",
        target_type="case_stats",
        detail={"cases": report.cases, "rows": report.rows, "differed": differ},
    )
    return differ


@jobs.job(REPLIES_OVERDUE, every=timedelta(minutes=15))
def replies_overdue(ctx: jobs.JobContext) -> int:
    """Alert the stations of the citizen comments now past their reply deadline."""
    return replies_due.check_overdue(ctx.session, now=ctx.now)
