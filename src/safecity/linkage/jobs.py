"""Jobs of the person index.

``linkage.index`` (every 10 minutes): take in the case persons created since the last
ingest (:func:`safecity.linkage.index.ingest_cases`, with an overlap: idempotent), then
score the new records with the active model (:func:`safecity.linkage.index.run`):
obvious duplicates are linked, borderline pairs queued for the analysts. Without an
active model the run is skipped with a log line (a new deployment trains its first model
once it has records: ``safecity linkage index train``). Splink is imported only when the
job runs.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from safecity.platform import jobs
from safecity.security import audit

log = logging.getLogger("safecity.linkage.jobs")

INDEX = "linkage.index"


@jobs.job(INDEX, every=timedelta(minutes=10))
def index_job(ctx: jobs.JobContext) -> int:
    """Ingest new case persons and score new records with the active person-index model."""
    from safecity.linkage import index

    changed = index.ingest_cases(
        ctx.session, principal=audit.SYSTEM, since=index.ingest_since(ctx.session)
    )
    if index.active_model(ctx.session) is None:
        log.info("linkage.index: %d record(s) ingested; no active model, nothing scored", changed)
        return changed
    report = index.run(ctx.session, principal=audit.SYSTEM, settings=ctx.runtime.settings)
    log.info(
        "linkage.index: %d ingested, %d scored with %s: %d auto-linked, %d queued, "
        "%d skipped as rejected, in %.1f s",
        changed,
        report.scored,
        report.model_version,
        report.auto_linked,
        report.queued,
        report.skipped_rejected,
        report.seconds,
    )
    return report.scored
