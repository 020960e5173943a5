"""Risk alerts from forecasts: one alert per hotspot and hour with advice, the upgrade to
critical, no alert without data, the API's scope and permissions, and the issue's demo in
miniature (a weekly evening surge caught hours ahead by a model told nothing about it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.alerts.models import Alert
from safecity.crowd import forecasting, risk
from safecity.crowd.datasets import synthetic_counts
from safecity.crowd.models import CrowdForecast, CrowdHotspot, CrowdModel, CrowdRisk
from safecity.platform.db import new_id
from safecity.settings import Settings
from tests.conftest import City
from tests.crowd.forecast_support import FAST, HOUR, START, add_counts, add_hotspot

pytestmark = pytest.mark.db

ORIGIN = datetime(2026, 3, 7, 17, tzinfo=UTC)
NOW = ORIGIN + timedelta(hours=1, minutes=10)
TARGET = ORIGIN + 3 * HOUR
ENTRANCES = ["Chenyi Square gate", "Jinling Rd E gate"]
TRANSIT = [{"name": "East Nanjing Rd (Line 2/10)", "exits": ["1", "2", "7"]}]


def model_row(session: Session) -> CrowdModel:
    model = CrowdModel(id=new_id(), version="test", path="none.json", sha256="0" * 64, active=True)
    session.add(model)
    session.flush()
    return model


def predict(
    session: Session,
    hotspot: CrowdHotspot,
    model: CrowdModel,
    *,
    upper: float,
    horizon: int = 3,
    origin: datetime = ORIGIN,
) -> CrowdForecast:
    row = CrowdForecast(
        id=new_id(),
        hotspot_id=hotspot.id,
        origin=origin,
        target=origin + horizon * HOUR,
        horizon=horizon,
        point=upper * 0.8,
        lower=upper * 0.6,
        upper=upper,
        level=0.9,
        model_id=model.id,
    )
    session.add(row)
    session.flush()
    return row


def counted(session: Session, hotspot: CrowdHotspot, *, hours: int = 3, gaps: bool = False) -> None:
    """Counts for the hours up to ORIGIN + 1 h (gap rows when ``gaps``)."""
    values = np.full(hours, np.nan if gaps else 100.0)
    add_counts(session, hotspot, values, start=ORIGIN + 2 * HOUR - hours * HOUR)


@pytest.fixture
def place(session: Session, city: City) -> dict[str, Any]:
    """The Bund (warn 1,000 / critical 2,000) and its neighbours."""
    org = city.stations[0].id
    spots = {
        "bund": add_hotspot(
            session,
            code="bund",
            org_id=org,
            warn_people=1000,
            neighbours=["lujiazui", "yuyuan", "nanjing-rd", "people-sq"],
            entrances=ENTRANCES,
            transit=TRANSIT,
        ),
        "lujiazui": add_hotspot(session, code="lujiazui", org_id=org, warn_people=500),
        "yuyuan": add_hotspot(session, code="yuyuan", org_id=org, warn_people=800),
        "nanjing-rd": add_hotspot(session, code="nanjing-rd", org_id=org, warn_people=300),
        "people-sq": add_hotspot(session, code="people-sq", org_id=org, warn_people=2000),
    }
    for code, spot in spots.items():
        if code != "nanjing-rd":  # its counters are down: its room is unknown
            counted(session, spot)
    model = model_row(session)
    return {"spots": spots, "model": model, "session": session}


def forecasts_with_bund_at(place: dict[str, Any], upper: float) -> list[CrowdForecast]:
    s, m, spots = place["session"], place["model"], place["spots"]
    return [
        predict(s, spots["bund"], m, upper=500, horizon=1),
        predict(s, spots["bund"], m, upper=900, horizon=2),
        predict(s, spots["bund"], m, upper=upper, horizon=3),
        predict(s, spots["lujiazui"], m, upper=200),  # 300 people of room
        predict(s, spots["yuyuan"], m, upper=900),  # above its own warn: no room
        predict(s, spots["nanjing-rd"], m, upper=10),  # no recent counts: not offered
        predict(s, spots["people-sq"], m, upper=500),  # 1,500 of room
    ]


def test_upper_bound_above_warn_raises_one_alert_with_advice(
    place: dict[str, Any], city: City
) -> None:
    session, bund = place["session"], place["spots"]["bund"]
    forecasts = forecasts_with_bund_at(place, 1200)
    raised = risk.assess(session, forecasts=forecasts, now=NOW)
    # Yu Garden, full by its own forecast, gets its own alert and is not offered as room
    assert sorted(r.hotspot_id for r in raised) == sorted([bund.id, place["spots"]["yuyuan"].id])
    found = next(r for r in raised if r.hotspot_id == bund.id)
    assert (found.hotspot_id, found.target, found.level) == (bund.id, TARGET, "warn")
    assert (found.expected, found.threshold) == (1200, 1000)
    advice = found.advice
    assert advice["meter_entrances"] == ENTRANCES
    assert [d["code"] for d in advice["divert_to"]] == ["people-sq", "lujiazui"]
    assert [d["headroom"] for d in advice["divert_to"]] == [1500, 300]
    assert advice["close_exits"] == []
    assert advice["hours_ahead"] == 3

    alert = session.get(Alert, found.alert_id)
    assert alert is not None
    assert (alert.source, alert.category, alert.severity) == ("crowd", "crowd_risk", "medium")
    assert alert.title_key == "crowd.alert.risk"
    assert alert.dedup_key == f"crowd-risk:{bund.id}:{TARGET.isoformat()}"
    assert alert.org_id == city.stations[0].id
    assert 31.24 < alert.lat < 31.242
    assert 121.49 < alert.lng < 121.492
    assert alert.detail["divert_to"] == ["people-sq", "lujiazui"]
    assert alert.detail["meter_entrances"] == ENTRANCES
    assert alert.detail["hours_ahead"] == 3

    # the same hour again (a re-run, or the next hour's shorter forecast): nothing new
    assert risk.assess(session, forecasts=forecasts, now=NOW + timedelta(minutes=5)) == []
    shorter = predict(session, bund, place["model"], upper=1300, horizon=2, origin=ORIGIN + HOUR)
    assert risk.assess(session, forecasts=[shorter], now=NOW + HOUR) == []
    assert session.scalar(select(func.count()).select_from(Alert)) == 2
    assert session.scalar(select(func.count()).select_from(CrowdRisk)) == 2


def test_an_upgrade_to_critical_updates_the_risk_and_raises_the_critical_alert(
    place: dict[str, Any],
) -> None:
    session, bund = place["session"], place["spots"]["bund"]
    first = risk.assess(session, forecasts=forecasts_with_bund_at(place, 1200), now=NOW)
    warned = next(r for r in first if r.hotspot_id == bund.id)
    warn_alert = warned.alert_id
    worse = predict(session, bund, place["model"], upper=2500, horizon=2, origin=ORIGIN + HOUR)
    (upgraded,) = risk.assess(session, forecasts=[worse], now=NOW + HOUR)
    assert upgraded.id == warned.id
    assert upgraded.level == "critical"
    assert upgraded.threshold == 2000
    assert upgraded.expected == 2500
    assert upgraded.advice["close_exits"] == [
        {"station": "East Nanjing Rd (Line 2/10)", "exits": ["1", "2", "7"]}
    ]
    assert upgraded.advice["hours_ahead"] == 2
    alert = session.get(Alert, upgraded.alert_id)
    assert alert is not None
    assert alert.id != warn_alert
    assert alert.severity == "high"
    assert alert.dedup_key.endswith(":critical")
    assert alert.detail["close_exits"] == [
        "East Nanjing Rd (Line 2/10) 1",
        "East Nanjing Rd (Line 2/10) 2",
        "East Nanjing Rd (Line 2/10) 7",
    ]
    assert risk.assess(session, forecasts=[worse], now=NOW + HOUR) == []
    assert session.scalar(select(func.count()).select_from(Alert)) == 3  # + Yu Garden's


def test_no_alert_for_a_hotspot_whose_latest_counts_are_gaps(session: Session, city: City) -> None:
    spot = add_hotspot(session, code="bund", org_id=city.stations[0].id, warn_people=1000)
    counted(session, spot, gaps=True)
    model = model_row(session)
    f = predict(session, spot, model, upper=5000)
    assessed = risk.assess_forecasts(session, forecasts=[f], now=NOW)
    assert assessed.risks == []
    assert assessed.no_data == ["bund"]
    assert session.scalar(select(func.count()).select_from(Alert)) == 0


def test_the_point_is_inside_the_polygon() -> None:
    lat, lng = risk.point_of(
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [4, 0], [4, 2], [0, 2], [0, 0]]]]}
    )
    assert (lat, lng) == pytest.approx((1.0, 2.0))


# --------------------------------------------------------------------------- API


def test_risks_and_forecasts_are_scoped_and_need_crowd_read(
    place: dict[str, Any], client: TestClient, make_actor: Any, city: City
) -> None:
    session = place["session"]
    risk.assess(session, forecasts=forecasts_with_bund_at(place, 1200), now=NOW)
    session.commit()
    inside = make_actor("officer", city.stations[0])
    outside = make_actor("officer", city.stations[3])

    assert client.get("/api/crowd/risks", headers=inside.headers).json()["total"] == 2
    page = client.get("/api/crowd/risks?hotspot=bund", headers=inside.headers).json()
    assert page["total"] == 1
    item = page["items"][0]
    assert item["hotspot"] == "bund"
    assert item["level"] == "warn"
    assert item["advice"]["divert_to"][0]["code"] == "people-sq"
    assert client.get("/api/crowd/risks", headers=outside.headers).json()["total"] == 0
    assert (
        client.get("/api/crowd/risks?level=critical", headers=inside.headers).json()["total"] == 0
    )
    assert client.get("/api/crowd/risks").status_code == 401

    url = "/api/crowd/hotspots/bund/forecasts"
    since = {"since": ORIGIN.isoformat()}
    rows = client.get(url, params=since, headers=inside.headers).json()
    assert [(r["horizon"], r["upper"]) for r in rows] == [(1, 500), (2, 900), (3, 1200)]
    assert rows[0]["model_version"] == "test"
    assert rows[0]["level"] == 0.9
    assert client.get(url, params=since, headers=outside.headers).status_code == 404
    naive = client.get(url, params={"since": "2026-03-07T17:00"}, headers=inside.headers)
    assert naive.status_code == 422
    later = {"since": (TARGET + HOUR).isoformat()}
    assert client.get(url, params=later, headers=inside.headers).json() == []

    models = client.get("/api/crowd/models", headers=inside.headers)
    assert models.status_code == 200
    assert models.json()[0]["version"] == "test"
    denied = client.post("/api/crowd/models/train", headers=inside.headers)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")


def test_training_through_the_api(
    session: Session,
    client: TestClient,
    make_actor: Any,
    city: City,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forecasting, "PRODUCT_CONFIG", FAST)
    spot = add_hotspot(session, code="bund", org_id=city.stations[0].id, warn_people=1000)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    counts = synthetic_counts(sites=("bund",), days=35, seed=2).values[:, 0]
    add_counts(session, spot, counts, start=end - len(counts) * HOUR)
    session.commit()
    boss = make_actor("supervisor", city.stations[0])
    short = client.post("/api/crowd/models/train", json={"weeks": 2}, headers=boss.headers)
    assert short.status_code == 422
    assert "hours of counts needed" in short.json()["detail"]
    made = client.post("/api/crowd/models/train", json={"weeks": 5}, headers=boss.headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["active"]
    assert body["hotspots"] == ["bund"]
    assert len(body["sha256"]) == 64
    bad = client.post("/api/crowd/models/train", json={"weeks": 0}, headers=boss.headers)
    assert bad.status_code == 422


# --------------------------------------------------------------------------- the demo


SURGE = {18: 2.0, 19: 3.5, 20: 5.0, 21: 3.5, 22: 1.5}
"""Saturday evenings (a weekly light show): multipliers of the usual count by hour."""


def test_a_weekly_evening_surge_raises_the_alert_hours_before_the_peak(
    session: Session, city: City, settings: Settings
) -> None:
    """The issue's Done-when in miniature: every Saturday evening the square fills (five
    weeks of history); the model is told no event, only the counts. Forecasting on the
    sixth Saturday at 18:05 must raise the warn alert for the 20:00 peak (≥ 1 h ahead) with
    diversion advice, and the Friday before, at the same time, must raise nothing."""
    days = 41  # Monday 5 Jan .. Saturday 14 Feb 2026
    codes = ("bund", "lujiazui", "yuyuan")
    counts = synthetic_counts(sites=codes, days=days, seed=11, noise=0.1)
    t = np.arange(days * 24)
    hour, dow = t % 24, (t // 24) % 7
    usual = (1.0 + 0.8 * np.sin((hour - 6) / 24 * 2 * np.pi)) * np.where(dow >= 5, 1.4, 1.0)
    base = np.median(counts.values / usual[:, None], axis=0)  # each place's own size
    values = counts.values.copy()
    for h, factor in SURGE.items():
        saturday_evening = (dow == 5) & (hour == h)
        values[saturday_evening, 0] *= factor  # the Bund fills ...
        values[saturday_evening, 1:] *= min(factor, 1.3)  # ... its neighbours keep room
    warn = 3.3 * base  # above every usual hour, below the surge's 19:00 and 20:00
    spots = []
    for j, code in enumerate(codes):
        spots.append(
            add_hotspot(
                session,
                code=code,
                org_id=city.stations[0].id,
                warn_people=float(warn[j]),
                neighbours=[c for c in codes if c != code] if code == "bund" else [],
                entrances=ENTRANCES if code == "bund" else [],
            )
        )
    saturday = START + timedelta(days=40)
    last = int((saturday + 17 * HOUR - START) / HOUR)  # counts up to 17:00, the origin
    for j, spot in enumerate(spots):
        add_counts(session, spot, values[: last + 1, j])
    # the shipped configuration, not the other tests' small model
    forecasting.train(session, settings=settings, now=saturday - timedelta(days=1))

    friday = saturday - timedelta(days=1) + 18 * HOUR + timedelta(minutes=5)
    quiet = forecasting.forecast_now(session, settings=settings, now=friday)
    assert len(quiet) == 9
    assert risk.assess(session, forecasts=quiet, now=friday) == []

    now = saturday + 18 * HOUR + timedelta(minutes=5)
    peak = saturday + 20 * HOUR
    forecasts = forecasting.forecast_now(session, settings=settings, now=now)
    raised = risk.assess(session, forecasts=forecasts, now=now)
    bund = next(r for r in raised if r.hotspot_id == spots[0].id and r.target == peak)
    assert peak - now >= timedelta(hours=1)
    assert bund.level == "warn"
    assert bund.advice["hours_ahead"] == 3
    assert bund.advice["meter_entrances"] == ENTRANCES
    assert {d["code"] for d in bund.advice["divert_to"]} == {"lujiazui", "yuyuan"}
    point = next(f.point for f in forecasts if f.hotspot_id == spots[0].id and f.target == peak)
    assert point > 2.0 * base[0]  # the surge is in the point forecast, not only the band
    alert = session.get(Alert, bund.alert_id)
    assert alert is not None
    assert alert.severity == "medium"
