"""Jobs of the crowd-risk product.

``crowd.forecast`` (every hour at :10): forecast every hotspot 1..3 h ahead from the hour
that has just ended (the counts of that hour have had ten minutes to arrive) and raise the
risk alerts (:func:`safecity.crowd.forecasting.run_forecast`,
:func:`safecity.crowd.risk.assess_forecasts`). The run's time, the model version and the
hotspots left without a forecast ("no data", or not in the model) are logged and audited;
hotspots without a forecast make the run ``partial`` so the jobs page shows them.

``crowd.retrain`` (daily, 20:00 UTC = 04:00 in Shanghai): train a new model version on the
last weeks of counts and make it the active one. Daily rather than weekly: training takes
seconds to a few minutes, the intervals are calibrated on the most recent two weeks (which
matters after a change of regime: a new metro line, a closed square), and every version is
kept and recorded, so a bad one can be seen and replaced. Too little history is reported as
a partial run, not a failure, while a new deployment collects its first weeks.

LightGBM is imported only when a job runs (the worker imports every job module at start).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from safecity.platform import jobs
from safecity.platform.errors import InvalidInput, NotFound
from safecity.security import audit

log = logging.getLogger("safecity.crowd.jobs")

FORECAST = "crowd.forecast"
RETRAIN = "crowd.retrain"


@jobs.job(FORECAST, every=timedelta(hours=1), offset=timedelta(minutes=10))
def forecast_job(ctx: jobs.JobContext) -> int:
    """Forecast every hotspot 1-3 h ahead and raise the risk alerts."""
    from safecity.crowd import forecasting, risk

    try:
        run = forecasting.run_forecast(ctx.session, settings=ctx.runtime.settings, now=ctx.now)
    except NotFound as exc:
        ctx.fail_item(exc.detail)
        return 0
    assessed = risk.assess_forecasts(ctx.session, forecasts=run.forecasts, now=ctx.now)
    no_data = sorted(set(run.no_data) | set(assessed.no_data))
    if no_data:
        ctx.fail_item(f"no data (no forecast, no alert): {', '.join(no_data)}")
    if run.unknown:
        ctx.fail_item(f"not in model {run.model.version} (retrain): {', '.join(run.unknown)}")
    audit.record(
        ctx.session,
        principal=audit.SYSTEM,
        action="crowd.forecast.run",
        target_type=forecasting.MODEL_RECORD,
        target_id=run.model.id,
        detail={
            "version": run.model.version,
            "origin": run.origin.isoformat(),
            "forecasts": len(run.forecasts),
            "risks": len(assessed.risks),
            "no_data": no_data[:20],
            "forecast_ms": round(run.seconds * 1000),
        },
    )
    log.info(
        "crowd forecast %s: %d forecasts in %.0f ms, %d risk alert(s), model %s",
        run.origin.isoformat(),
        len(run.forecasts),
        run.seconds * 1000,
        len(assessed.risks),
        run.model.version,
    )
    return len(run.forecasts)


@jobs.job(RETRAIN, every=timedelta(days=1), offset=timedelta(hours=20))
def retrain_job(ctx: jobs.JobContext) -> int:
    """Train a new crowd model version and make it active."""
    from safecity.crowd import forecasting

    try:
        model = forecasting.train(ctx.session, settings=ctx.runtime.settings, now=ctx.now)
    except InvalidInput as exc:
        ctx.fail_item(exc.detail)
        return 0
    return len(model.hotspots)
