"""Jobs of the cases domain.

``cases.stats_reconcile`` (daily, 03:00 Asia/Shanghai): recompute the halls' counters in
memory and, only when they differ from the stored ones (an org moved to another parent,
or a change made outside the service), rebuild them. The comparison takes no lock; the
rebuild locks the facts table on PostgreSQL while it runs.
"""

from __future__ import annotations

from datetime import timedelta

from safecity.cases import stats
from safecity.platform import jobs
from safecity.security import audit

RECONCILE = "cases.stats_reconcile"


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
