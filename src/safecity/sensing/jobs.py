"""Scheduled sensing jobs: stale-sensor detection and dead-letter pruning."""

from __future__ import annotations

from datetime import timedelta

from safecity.platform import jobs
from safecity.sensing import deadletters, stale


@jobs.job("sensing.stale_check", every=timedelta(minutes=5))
def stale_check(ctx: jobs.JobContext) -> int:
    """Stale sensors → maintenance work orders (one incident per silent gateway or area)."""
    report = stale.detect(ctx.session, now=ctx.now)
    return report.stale


@jobs.job("sensing.dead_letters.prune", every=timedelta(hours=1), offset=timedelta(minutes=17))
def prune_dead_letters(ctx: jobs.JobContext) -> int:
    """Delete dead letters older than 14 days, keep at most a million rows."""
    return deadletters.prune(ctx.session, now=ctx.now)
