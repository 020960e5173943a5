"""Jobs of count ingest.

``crowd.gaps`` (every 15 minutes): mark every active hotspot's hours with no count up to the
last complete hour as gaps, and re-evaluate the outage rules over the last days
(:func:`safecity.crowd.counts.mark_gaps`). Idempotent: a run with nothing new changes
nothing, so a missed or repeated slot is harmless. One audit record when it changed rows.
"""

from __future__ import annotations

from datetime import timedelta

from safecity.crowd import counts
from safecity.platform import jobs
from safecity.security import audit

GAPS = "crowd.gaps"


@jobs.job(GAPS, every=timedelta(minutes=15), offset=timedelta(minutes=2))
def mark_gaps(ctx: jobs.JobContext) -> int:
    """Mark gaps and outages of the hotspots' hourly counts; rows changed."""
    report = counts.mark_gaps(ctx.session, now=ctx.now)
    if report.changed:
        audit.record(
            ctx.session,
            principal=ctx.principal,
            action="crowd.counts.mark_gaps",
            target_type="crowd_count",
            detail={
                "hotspots": report.hotspots,
                "gaps": report.gaps,
                "outages": report.outages,
                "cleared": report.cleared,
            },
        )
    return report.changed
