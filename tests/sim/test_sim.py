"""The city simulator against the ASGI app (no socket): planted incidents raise alerts,
confounders do not, and the ground truth says which is which."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing.ingest_api import get_pipeline
from safecity.sensing.models import Sensor
from safecity.sim.city import CitySim, _ticks, device_token, ensure_sensors, run
from tests.conftest import City

pytestmark = pytest.mark.db


def daytime() -> datetime:
    """A recent moment between 07:00 and 21:00 in Shanghai (the night-charging rule sleeps)."""
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    if 7 <= local.hour < 21:
        return now
    noon = local.replace(hour=14, minute=0, second=0, microsecond=0)
    if noon > local:
        noon -= timedelta(days=1)
    return noon.astimezone(UTC)


def test_ticks_total_the_requested_events() -> None:
    assert list(_ticks(50, 3)) == [50, 50, 50]
    assert sum(_ticks(2500, 1)) == 2500
    assert max(_ticks(2500, 1)) == 1000


def test_ensure_sensors_registers_once(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        fleet = ensure_sensors(session=s, n=40, seed=3)
    with runtime.sessions.begin() as s:
        again = ensure_sensors(session=s, n=40, seed=3)
        count = s.scalar(select(func.count()).select_from(Sensor))
    assert count == 40 + 2  # one charging cabinet (door + meter) per 200 sensors, at least one
    assert again.by_type == fleet.by_type
    assert again.cabinets == fleet.cabinets


def test_sim_run_raises_alerts_for_planted_incidents_only(
    client: TestClient, runtime: Runtime, city: City
) -> None:
    with runtime.sessions.begin() as s:
        fleet = ensure_sensors(session=s, n=120, seed=7)
        token = device_token(session=s)
    at = daytime()
    sim = CitySim(fleet, seed=11, incident_rate=1.0, clock=lambda: at)
    truth = io.StringIO()
    stats = run(client, sim, token=token, rate=20, seconds=15, truth=truth, sleep=lambda s: None)
    assert stats.failed_batches == 0
    assert stats.batches == 15
    assert stats.sent >= 300
    lines = [json.loads(x) for x in truth.getvalue().splitlines()]
    assert len(lines) == stats.planted == 15
    # absence rules (a fire alarm that never sounded) fire once event time moves on
    get_pipeline(client.app).advance(at + timedelta(minutes=10))  # type: ignore[arg-type]
    assert all(x["synthetic"] for x in lines)
    with runtime.sessions() as s:
        keys = {a.dedup_key for a in s.scalars(select(Alert))}
    incidents = [x for x in lines if x["kind"] == "incident"]
    confounders = [x for x in lines if x["kind"] == "confounder"]
    assert incidents
    assert confounders
    for x in incidents:
        assert x["dedup_key"] in keys, x
    for x in confounders:
        assert x["dedup_key"] is None or x["dedup_key"] not in keys, x
    assert stats.reasons.get("wrong_unit", 0) == sum(
        1 for x in lines if x["scenario"] == "sensor_fault"
    )


def test_cabinets_keep_their_place_when_the_fleet_grows(runtime: Runtime, city: City) -> None:
    import h3

    with runtime.sessions.begin() as s:
        small = ensure_sensors(session=s, n=40, seed=3)
    with runtime.sessions.begin() as s:
        large = ensure_sensors(session=s, n=400, seed=3)
        door = s.get(Sensor, large.cabinets[0].door)
        assert door is not None
        cell = h3.latlng_to_cell(door.lat, door.lng, 12)
    assert len(small.cabinets) == 1
    assert len(large.cabinets) == 2
    assert large.cabinets[0].cell == small.cabinets[0].cell == cell


def test_evaluate_refuses_an_output_it_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from safecity import cli

    target = tmp_path / "missing" / "report.json"
    monkeypatch.setattr(sys, "argv", ["safecity", "sim", "evaluate", "--output", str(target)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--output" in err
    assert "does not exist" in err
