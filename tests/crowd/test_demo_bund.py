"""Issue 8's Done-when, end to end: the demo's simulated Bund crowd raises a pre-limit alert
with diversion advice from a forecast made at least an hour before the simulated peak, by a
forecaster that is not told when the peak is; a rerun raises nothing new; the live feeder
reports each hour once."""

from __future__ import annotations

import dataclasses
import inspect
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.crowd import demo, forecasting, risk
from safecity.crowd.forecast import FEATURES, ForecastConfig
from safecity.crowd.models import CrowdCount, CrowdForecast, CrowdHotspot, CrowdRisk
from safecity.demo_city import seed_demo_orgs
from safecity.platform import jobs
from safecity.platform.db import transaction
from safecity.platform.runtime import Runtime
from safecity.security import audit

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 26, 9, 25, tzinfo=UTC)
"""Thursday 17:25 in Shanghai: the simulated peak is the hour from 19:00 (11:00 UTC)."""
HOUR = timedelta(hours=1)


@pytest.fixture
def demo_city(runtime: Runtime) -> Runtime:
    with transaction(runtime.sessions) as s:
        seed_demo_orgs(s, actor=audit.SYSTEM)
    return runtime


def _sample(code: str) -> dict[str, Any]:
    data = json.loads(demo.sample_path().read_text(encoding="utf-8"))
    return next(f["properties"] for f in data["features"] if f["properties"]["code"] == code)


def test_the_weekly_surge_raises_one_pre_limit_alert_with_advice_hours_ahead(
    demo_city: Runtime,
) -> None:
    runtime = demo_city
    outcome = demo.simulate_bund(runtime, NOW)
    peak = datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert (outcome.origin, outcome.peak) == (peak - 3 * HOUR, peak)
    assert outcome.surge == demo.Surge(weekday=3, hour=19)
    assert outcome.peak - NOW >= HOUR  # the forecast comes over an hour before the peak
    assert outcome.peak_count > outcome.warn  # the simulated crowd does cross the line

    assert outcome.alert_id is not None, "no alert for the simulated peak"
    assert outcome.raised_now
    assert outcome.level in ("warn", "critical")
    assert outcome.upper is not None
    assert outcome.upper >= outcome.warn
    assert outcome.point is not None  # the surge is in the point, not only in a wide band:
    assert outcome.point > 2 * demo.USUAL[demo.PROMENADE] * outcome.warn
    assert outcome.other_risks == []

    advice = outcome.advice
    assert advice["meter_entrances"] == _sample(demo.PROMENADE)["entrances"]
    neighbours = set(_sample(demo.PROMENADE)["neighbours"])
    offered = [d["code"] for d in advice["divert_to"]]
    assert offered
    assert set(offered) <= neighbours
    assert all(d["headroom"] > 0 for d in advice["divert_to"])

    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1
        (found,) = s.scalars(select(CrowdRisk)).all()
        spot = s.scalars(select(CrowdHotspot).where(CrowdHotspot.code == demo.PROMENADE)).one()
        assert (found.hotspot_id, found.target, found.alert_id) == (
            spot.id,
            peak,
            outcome.alert_id,
        )
        made_by = s.get(CrowdForecast, found.forecast_id)
        assert made_by is not None
        assert made_by.origin == outcome.origin
        assert peak - made_by.origin >= HOUR
        alert = s.get(Alert, outcome.alert_id)
        assert alert is not None
        assert (alert.source, alert.category) == (risk.SOURCE, risk.CATEGORY)
        assert alert.detail["divert_to"] == offered

    # the same hour yesterday (no surge): the model does not alert at every such hour
    with transaction(runtime.sessions) as s:
        yesterday = forecasting.forecast_now(s, settings=runtime.settings, now=NOW - 24 * HOUR)
        assert len(yesterday) == 15
        assert risk.assess(s, forecasts=yesterday, now=NOW - 24 * HOUR) == []

    again = demo.simulate_bund(runtime, NOW)  # `safecity demo` run twice
    assert again.reports == 0  # every hour is stored already
    assert not again.raised_now
    assert again.alert_id == outcome.alert_id
    assert again.other_risks == []
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1
        assert s.scalar(select(func.count()).select_from(CrowdRisk)) == 1


def test_the_forecaster_is_not_told_when_the_peak_is() -> None:
    """The only inputs of the forecasting path are the counts, the clock and the holiday
    calendar: no event, schedule or peak parameter exists to pass the surge through."""
    for fn in (forecasting.forecast_now, forecasting.run_forecast):
        assert list(inspect.signature(fn).parameters) == ["session", "settings", "now"]
    trained_on = set(inspect.signature(forecasting.train).parameters)
    assert trained_on == {"session", "settings", "now", "weeks", "config", "principal"}
    words = ("event", "surge", "peak", "show", "schedule")
    config_fields = [f.name for f in dataclasses.fields(ForecastConfig)]
    assert not [n for n in (*config_fields, *FEATURES) if any(w in n for w in words)]


def test_the_feeder_reports_each_complete_hour_once(demo_city: Runtime) -> None:
    runtime = demo_city
    demo.seed_bund(runtime)
    with transaction(runtime.sessions) as s:
        spots = demo._hotspots(s, demo.sample_codes())
        crowd = demo.Crowd.of(spots, demo.Surge.for_demo(NOW))
        sensors = sum(h.expected_sensors for h in spots)
    registry = jobs.JobRegistry()
    demo.register(registry)  # what `safecity demo` does in its own process
    scheduler = jobs.Scheduler(runtime, registry)

    assert scheduler.run_now(demo.FEEDER_JOB, now=NOW).items == 0  # the setting is off
    runtime.settings.demo_crowd = True
    assert scheduler.run_now(demo.FEEDER_JOB, now=NOW).items == 0  # nothing simulated yet
    demo.save_state(runtime.settings, crowd)

    first = scheduler.run_now(demo.FEEDER_JOB, now=NOW)
    assert first.status == "succeeded"
    assert first.items == demo.FEED_CATCHUP * sensors  # the last hours, every counter
    assert scheduler.run_now(demo.FEEDER_JOB, now=NOW + timedelta(minutes=10)).items == 0
    later = scheduler.run_now(demo.FEEDER_JOB, now=NOW + HOUR)
    assert later.items == sensors  # one new complete hour

    last = datetime(2026, 11, 26, 9, tzinfo=UTC)  # the hour that ended at NOW + 1 h
    with runtime.sessions() as s:
        rows = s.execute(
            select(CrowdHotspot.code, CrowdCount.count, CrowdCount.status)
            .join(CrowdHotspot, CrowdHotspot.id == CrowdCount.hotspot_id)
            .where(CrowdCount.hour == last)
        ).all()
    expected = dict(zip(crowd.codes, crowd.totals([last])[0], strict=True))
    assert {code: (count, status) for code, count, status in rows} == {
        code: (value, "ok") for code, value in expected.items()
    }
