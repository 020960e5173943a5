"""The product's forecasting path: train a recorded model version from the database, refuse
a changed artifact, forecast every hour (idempotent), no forecast from gaps, the jobs."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from safecity.crowd import forecasting
from safecity.crowd.datasets import synthetic_counts
from safecity.crowd.models import CrowdForecast, CrowdHotspot, CrowdModel
from safecity.platform import jobs
from safecity.platform.errors import ConfigurationError, InvalidInput, NotFound
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.settings import Settings
from tests.conftest import City
from tests.crowd.forecast_support import FAST, HOUR, START, add_counts, add_hotspot

pytestmark = pytest.mark.db

DAYS = 35
NOW = START + timedelta(days=DAYS, minutes=7)  # counts end with the hour before NOW's hour
CODES = ("bund", "nanjing-rd", "yuyuan")


@pytest.fixture
def spots(session: Session, city: City) -> Session:
    """Three hotspots with five weeks of seasonal counts up to the hour before NOW."""
    counts = synthetic_counts(sites=CODES, days=DAYS, seed=4)
    for j, code in enumerate(CODES):
        spot = add_hotspot(session, code=code, org_id=city.stations[0].id, warn_people=1e6)
        add_counts(session, spot, counts.values[:, j])
    session.flush()
    return session


def train(session: Session, settings: Settings) -> CrowdModel:
    return forecasting.train(session, settings=settings, now=NOW, config=FAST)


def test_train_records_one_active_version_with_its_sha256(
    spots: Session, settings: Settings
) -> None:
    model = train(spots, settings)
    path = settings.var_dir / model.path
    assert path.parent == settings.var_dir / "crowd" / "models"
    assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.version == f"20260209T000700Z-{model.sha256[:8]}"
    assert model.active
    assert model.horizons == [1, 2, 3]
    assert model.hotspots == sorted(CODES)
    assert set(model.metrics["horizons"]) == {"1", "2", "3"}
    assert model.metrics["trained_until"] == (NOW - timedelta(minutes=7) - HOUR).isoformat()
    assert model.config["num_rounds"] == FAST.num_rounds
    actions = [e.action for e in audit.pending_records(spots)]
    assert "crowd.model.train" in actions

    later = forecasting.train(
        spots, settings=settings, now=NOW + timedelta(hours=1), config=FAST, weeks=4
    )
    assert later.version != model.version
    active = spots.scalars(select(CrowdModel).where(CrowdModel.active.is_(True))).all()
    assert [m.version for m in active] == [later.version]


def test_too_little_history_is_refused_with_the_hours(
    session: Session, city: City, settings: Settings
) -> None:
    with pytest.raises(InvalidInput, match="no active hotspots"):
        forecasting.train(session, settings=settings, now=NOW, config=FAST)
    spot = add_hotspot(session, code="new-square", org_id=city.stations[0].id, warn_people=100)
    add_counts(session, spot, synthetic_counts(sites=("x",), days=10).values[:, 0])
    needed = forecasting.min_history_hours(FAST)
    with pytest.raises(InvalidInput, match=f"{needed} hours of counts needed") as caught:
        forecasting.train(session, settings=settings, now=START + timedelta(days=10), config=FAST)
    assert caught.value.extra == {"needed": needed, "present": 240}
    assert session.scalar(select(func.count()).select_from(CrowdModel)) == 0


def test_hotspots_in_two_time_zones_are_refused(
    session: Session, city: City, settings: Settings
) -> None:
    add_hotspot(session, code="bund", org_id=city.stations[0].id, warn_people=100)
    add_hotspot(
        session,
        code="federation-sq",
        org_id=city.stations[0].id,
        warn_people=100,
        tz="Australia/Melbourne",
        region="AU-VIC",
    )
    with pytest.raises(InvalidInput, match="one model serves one zone"):
        forecasting.train(session, settings=settings, now=NOW, config=FAST)


def test_a_changed_artifact_is_refused_and_logged(
    spots: Session, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    model = train(spots, settings)
    path = settings.var_dir / model.path
    path.write_bytes(path.read_bytes().replace(b'"level": 0.9', b'"level": 0.5'))
    refused = pytest.raises(ConfigurationError, match="does not match its recorded SHA-256")
    with caplog.at_level(logging.ERROR, logger="safecity.crowd.forecasting"), refused:
        forecasting.forecast_now(spots, settings=settings, now=NOW)
    assert "refused" in caplog.text
    path.unlink()
    with pytest.raises(ConfigurationError, match="artifact missing"):
        forecasting.forecast_now(spots, settings=settings, now=NOW)
    assert spots.scalar(select(func.count()).select_from(CrowdForecast)) == 0


def test_no_model_no_forecast(session: Session, settings: Settings) -> None:
    with pytest.raises(NotFound, match="no active crowd model"):
        forecasting.forecast_now(session, settings=settings, now=NOW)


def test_forecast_now_stores_1_to_3_h_per_hotspot_idempotently(
    spots: Session, settings: Settings, city: City
) -> None:
    model = train(spots, settings)
    run = forecasting.run_forecast(spots, settings=settings, now=NOW)
    origin = NOW - timedelta(minutes=7) - HOUR
    assert run.origin == origin
    assert run.no_data == []
    assert run.unknown == []
    assert len(run.forecasts) == 9
    for f in run.forecasts:
        assert f.target == origin + f.horizon * HOUR
        assert f.horizon in (1, 2, 3)
        assert 0 <= f.lower <= f.point <= f.upper
        assert f.level == 0.9
        assert f.model_id == model.id
    again = forecasting.run_forecast(spots, settings=settings, now=NOW + timedelta(minutes=20))
    assert sorted(f.id for f in again.forecasts) == sorted(f.id for f in run.forecasts)
    assert spots.scalar(select(func.count()).select_from(CrowdForecast)) == 9
    assert again.seconds < 1.0  # the goal: every hotspot's forecast within a second

    # a hotspot added after training is reported, not forecast with a model that lacks it
    add_hotspot(spots, code="lujiazui", org_id=city.stations[0].id, warn_people=100)
    assert forecasting.run_forecast(spots, settings=settings, now=NOW).unknown == ["lujiazui"]


def test_forecasts_follow_the_daily_cycle(spots: Session, settings: Settings) -> None:
    """Sanity of the plumbing: forecasts land near the synthetic truth, not on zero."""
    train(spots, settings)
    truth = synthetic_counts(sites=CODES, days=DAYS + 1, seed=4)  # same draws, one day more
    code_of = {h.id: h.code for h in spots.scalars(select(CrowdHotspot))}
    errors = []
    for f in forecasting.forecast_now(spots, settings=settings, now=NOW):
        actual = truth.values[DAYS * 24 - 1 + f.horizon, CODES.index(code_of[f.hotspot_id])]
        errors.append(abs(f.point - actual) / actual)
    assert len(errors) == 9
    assert float(np.median(errors)) < 0.3


def test_a_hotspot_whose_recent_counts_are_gaps_gets_no_forecast(
    session: Session, city: City, settings: Settings
) -> None:
    counts = synthetic_counts(sites=CODES, days=DAYS, seed=4)
    for j, code in enumerate(CODES):
        values = counts.values[:, j].copy()
        if code == "yuyuan":
            values[-6:] = np.nan  # the gateway went quiet: six gap hours
        spot = add_hotspot(session, code=code, org_id=city.stations[0].id, warn_people=1e6)
        add_counts(session, spot, values)
    train(session, settings)
    run = forecasting.run_forecast(session, settings=settings, now=NOW)
    assert run.no_data == ["yuyuan"]
    assert len(run.forecasts) == 6
    assert {f.hotspot_id for f in run.forecasts} == {
        h.id for h in forecasting._active_hotspots(session) if h.code != "yuyuan"
    }


def test_the_crowd_jobs_are_registered_and_run(
    runtime: Runtime, city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs.load_job_modules()
    names = {j.name for j in jobs.registry.all()}
    assert {"crowd.forecast", "crowd.retrain"} <= names
    assert jobs.registry.get("crowd.retrain").every == timedelta(days=1)
    forecast_job = jobs.registry.get("crowd.forecast")
    assert forecast_job.every == timedelta(hours=1)
    assert forecast_job.offset == timedelta(minutes=10)

    with runtime.sessions.begin() as s:
        counts = synthetic_counts(sites=CODES, days=DAYS, seed=4)
        for j, code in enumerate(CODES):
            spot = add_hotspot(s, code=code, org_id=city.stations[0].id, warn_people=1e6)
            add_counts(s, spot, counts.values[:, j])
    scheduler = jobs.Scheduler(runtime)
    outcome = scheduler.run_now("crowd.forecast", now=NOW)
    assert outcome.status == "partial"
    assert "no active crowd model" in (outcome.error or "")
    early = scheduler.run_now("crowd.retrain", now=START + timedelta(days=7))
    assert early.status == "partial"
    assert "not enough history" in (early.error or "")

    monkeypatch.setattr(forecasting, "PRODUCT_CONFIG", FAST)
    trained = scheduler.run_now("crowd.retrain", now=NOW)
    assert trained.status == "succeeded"
    assert trained.items == 3
    ran = scheduler.run_now("crowd.forecast", now=NOW)
    assert ran.status == "succeeded"
    assert ran.items == 9
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CrowdForecast)) == 9


def test_cli_retrain_and_forecast_now_run_the_product_path(
    runtime: Runtime,
    city: City,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safecity import cli
    from safecity.crowd import cli as crowd_cli

    monkeypatch.setattr(crowd_cli, "_runtime", lambda: runtime)
    monkeypatch.setattr(forecasting, "PRODUCT_CONFIG", FAST)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with runtime.sessions.begin() as s:
        counts = synthetic_counts(sites=CODES, days=DAYS, seed=4)
        for j, code in enumerate(CODES):
            spot = add_hotspot(s, code=code, org_id=city.stations[0].id, warn_people=1e6)
            add_counts(s, spot, counts.values[:, j], start=end - counts.hours * HOUR)

    monkeypatch.setattr(sys, "argv", ["safecity", "crowd", "forecast-now"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    assert capsys.readouterr().err.strip() == (
        "error: no active crowd model: run `safecity crowd retrain`"
    )

    runner = CliRunner()
    trained = runner.invoke(cli.app, ["crowd", "retrain", "--weeks", "5"])
    assert trained.exit_code == 0, trained.output
    assert "active: 3 hotspot(s)" in trained.output
    made = runner.invoke(cli.app, ["crowd", "forecast-now", "--json"])
    assert made.exit_code == 0, made.output
    rows = [json.loads(line) for line in made.output.splitlines()]
    assert sorted((r["hotspot"], r["horizon"]) for r in rows) == [
        (c, h) for c in sorted(CODES) for h in (1, 2, 3)
    ]
    assert all(r["lower"] <= r["point"] <= r["upper"] and r["risk"] is None for r in rows)
    table = runner.invoke(cli.app, ["crowd", "forecast-now"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "9 forecast(s)" in table.output
