"""Crowd forecast console (issue 8, item 6): the per-hotspot actual-vs-forecast chart, the
load map and its GeoJSON, the event-day view and the risk list — zh and en, scoped, with no
inline script, gaps never drawn as zeros."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from safecity.crowd import charts, pages_forecast, views
from safecity.crowd.models import CrowdCount, CrowdForecast, CrowdHotspot, CrowdModel, CrowdRisk
from safecity.platform.db import new_id
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security import service as security
from tests.conftest import City
from tests.console.conftest import PASSWORD, Staff, log_in
from tests.console.test_pages import assert_csp_clean
from tests.crowd.forecast_support import add_hotspot

pytestmark = pytest.mark.db

HOUR = timedelta(hours=1)
NOW = datetime(2026, 10, 1, 11, 30, tzinfo=UTC)  # 19:30 in Shanghai, National Day
END = NOW.replace(minute=0)  # the current hour; counts run up to END - 1 h
GAP = END - 10 * HOUR
OUTAGE = END - 9 * HOUR
PAGE = "/console/crowd/hotspots/bund/forecast"
MAP_JSON = "/api/crowd/forecast-map"
LOCAL_DAY = "2026-10-01"


def value(hour: datetime) -> float:
    return 500.0 + 5 * ((hour - (END - 48 * HOUR)) / HOUR)


def forecast(
    session: Session,
    hotspot: CrowdHotspot,
    model: CrowdModel,
    origin: datetime,
    horizon: int,
    point: float,
    spread: float = 100.0,
) -> CrowdForecast:
    row = CrowdForecast(
        id=new_id(),
        hotspot_id=hotspot.id,
        origin=origin,
        target=origin + horizon * HOUR,
        horizon=horizon,
        point=point,
        lower=point - spread,
        upper=point + spread,
        level=0.9,
        model_id=model.id,
    )
    session.add(row)
    return row


@pytest.fixture
def data(runtime: Runtime, city: City) -> dict[str, Any]:
    """bund (hp-s1): 48 h of counts with a gap and an outage, t+1 forecasts for each hour,
    a run ahead at load 0.9 / 1.2 / 0.5 and two risks; yuyuan (hp-s1) without forecasts;
    lujiazui (pd-s1, another district) with a red forecast of its own."""
    with runtime.sessions.begin() as s:
        model = CrowdModel(id=new_id(), version="test-1", path="x", sha256="0" * 64, active=True)
        s.add(model)
        s.flush()
        bund = add_hotspot(
            s,
            code="bund",
            org_id=city.stations[0].id,
            warn_people=1000,
            tz="Asia/Shanghai",
            entrances=["陈毅广场"],
        )
        bund.name_zh, bund.name_en = "外滩", "The Bund"
        add_hotspot(s, code="yuyuan", org_id=city.stations[0].id, warn_people=800, lng=121.5)
        lujiazui = add_hotspot(
            s, code="lujiazui", org_id=city.stations[2].id, warn_people=1000, lng=121.51
        )
        hour = END - 48 * HOUR
        while hour < END:
            status = "gap" if hour == GAP else "outage" if hour == OUTAGE else "ok"
            count = None if hour == GAP else value(hour)  # an outage keeps its stuck number
            s.add(
                CrowdCount(id=new_id(), hotspot_id=bund.id, hour=hour, count=count, status=status)
            )
            forecast(s, bund, model, hour - HOUR, 1, value(hour))
            hour += HOUR
        origin = END - HOUR
        ahead = {h: forecast(s, bund, model, origin, h, p) for h, p in ((2, 1100), (3, 400))}
        # The newest run (origin END - 1 h): its t+1 is the current hour END.
        forecast(s, bund, model, origin, 1, 800)
        forecast(s, lujiazui, model, origin, 1, 1400)
        s.flush()
        for f, level, threshold in ((ahead[2], "warn", 1000.0), (ahead[3], "critical", 2000.0)):
            s.add(
                CrowdRisk(
                    id=new_id(),
                    hotspot_id=bund.id,
                    target=f.target,
                    forecast_id=f.id,
                    level=level,
                    expected=f.upper,
                    threshold=threshold,
                    advice={
                        "meter_entrances": ["陈毅广场"],
                        "divert_to": [
                            {
                                "code": "yuyuan",
                                "name_zh": "豫园",
                                "name_en": "Yuyuan",
                                "headroom": 300,
                                "upper": 500,
                            }
                        ],
                        "close_exits": [{"station": "南京东路站", "exits": ["2号口"]}]
                        if level == "critical"
                        else [],
                        "hours_ahead": f.horizon,
                    },
                )
            )
    return {}


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_forecast, "utcnow", lambda: NOW)


@pytest.fixture
def staff(runtime: Runtime) -> Any:
    def make(role: str, org: Any) -> Staff:
        name = f"{role}-{org.code}"
        with runtime.sessions.begin() as s:
            change = security.create_user(
                session=s,
                actor=audit.SYSTEM,
                username=name,
                org_id=org.id,
                roles=[role],
                password=PASSWORD,
            )
        return Staff(username=name, password=PASSWORD, totp_secret=change.totp_secret)

    return make


def svg_of(html: str, code: str = "bund") -> str:
    match = re.search(rf'<svg class="crowd-chart"[^>]*data-hotspot="{code}".*?</svg>', html, re.S)
    assert match is not None, f"no chart for {code}"
    return match.group(0)


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([\d.]+) ([\d.]+)", d)]


# --------------------------------------------------------------------------- chart maths


def test_colours_follow_the_load_thresholds() -> None:
    assert views.load_colour(None) == "grey"
    assert views.load_colour(0.0) == "green"
    assert views.load_colour(0.799) == "green"
    assert views.load_colour(0.8) == "amber"
    assert views.load_colour(0.999) == "amber"
    assert views.load_colour(1.0) == "red"
    assert views.load_colour(3.0) == "red"


def test_chart_breaks_at_gaps_and_draws_a_lone_hour_as_a_dot() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    counts = [
        views.HourCount(start + i * HOUR, c, "ok" if c is not None else "gap")
        for i, c in enumerate([10.0, 20.0, None, 30.0, None, 40.0, 50.0])
    ]
    past = [
        views.ForecastPoint(start + i * HOUR - HOUR, start + i * HOUR, 1, 15, 5, 25, 0.9)
        for i in (0, 1, 2, 5)
    ]
    chart = charts.series_chart(
        start=start,
        end=start + 7 * HOUR,
        counts=counts,
        past=past,
        ahead=[],
        warn=60,
        critical=80,
        label=lambda h: h.strftime("%H"),
    )
    assert len(chart.actual) == 2
    assert len(chart.dots) == 1
    assert sum(len(path_points(d)) for d in chart.actual) == 4
    assert [s.status for s in chart.missing] == ["gap", "gap"]
    assert len(chart.band_past) == 2
    assert all(d.endswith("Z") for d in chart.band_past)
    assert [lim.name for lim in chart.limits] == ["warn", "critical"]
    assert chart.limits[0].y > chart.limits[1].y  # critical is drawn higher
    assert charts.nice_max(84) == 100
    assert charts.nice_max(0) == 1
    assert charts.nice_max(210) == 250


def test_bad_dates_are_refused() -> None:
    assert views.parse_day(None, now=NOW).isoformat() == LOCAL_DAY
    assert views.parse_day("2026-02-28", now=NOW).isoformat() == "2026-02-28"
    for bad in ("2026-13-01", "2026-02-30", "tomorrow", "2026-1-1", "20261001"):
        with pytest.raises(views.InvalidInput):
            views.parse_day(bad, now=NOW)


# --------------------------------------------------------------------------- pages


def test_hotspot_forecast_page_draws_band_limits_gaps_and_risks(
    client: TestClient, staff: Any, city: City, data: dict[str, Any]
) -> None:
    log_in(client, staff("officer", city.stations[0]))
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert_csp_clean(page.text)
    assert "近48小时" in page.text
    assert "外滩" in page.text
    svg = svg_of(page.text)
    assert re.search(r'<title id="fc-title">', svg)
    assert '<desc id="fc-desc">' in svg
    assert 'aria-labelledby="fc-title fc-desc"' in svg
    assert 'data-band="past"' in svg
    assert 'data-band="ahead"' in svg
    assert 'data-threshold="warn" data-value="1000"' in svg
    assert 'data-threshold="critical" data-value="2000"' in svg
    assert 'data-risk="warn"' in svg
    assert 'data-risk="critical"' in svg
    assert f'data-missing="gap" data-hour="{GAP.isoformat()}"' in svg
    assert f'data-missing="outage" data-hour="{OUTAGE.isoformat()}"' in svg
    # 48 hours, one gap and one outage: two runs of counted hours, 46 points, none at 0.
    actual = re.findall(r'<path class="crowd-chart__actual" d="([^"]+)"', svg)
    assert len(actual) == 2
    points = [p for d in actual for p in path_points(d)]
    assert len(points) == 46
    bottom = charts.HEIGHT - charts.BOTTOM
    assert all(y < bottom for _, y in points)
    # The table gives the numbers; the gap and the outage have no count (not 0).
    assert f'data-hour="{GAP.isoformat()}" data-status="gap" data-count=""' in page.text
    assert f'data-hour="{OUTAGE.isoformat()}" data-status="outage" data-count=""' in page.text
    ahead = (END + HOUR).isoformat()
    assert f'data-hour="{ahead}" data-status="ahead" data-count="" data-point="1100"' in page.text
    assert 'data-lead="2"' in page.text
    assert 'data-lead="3"' in page.text
    assert 'data-crowd-link="map"' in page.text
    client.cookies.set("safecity_lang", "en")
    english = client.get(PAGE)
    assert "Last 48 hours and the next 3 hours" in english.text
    assert "The Bund" in english.text
    assert "近48小时" not in english.text
    assert "data-forecast-link" in client.get("/console/crowd/hotspots/bund").text


def test_map_json_colours_by_load_per_horizon(
    client: TestClient, make_actor: Any, city: City, data: dict[str, Any]
) -> None:
    officer = make_actor("officer", city.stations[0])
    expected = {1: ("amber", 0.9, 800), 2: ("red", 1.2, 1100), 3: ("green", 0.5, 400)}
    for horizon, (colour, ratio, point) in expected.items():
        answer = client.get(MAP_JSON, params={"horizon": horizon}, headers=officer.headers)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/geo+json")
        props = {f["properties"]["code"]: f["properties"] for f in answer.json()["features"]}
        assert set(props) == {"bund", "yuyuan"}  # lujiazui is another district's
        assert props["bund"]["colour"] == colour
        assert props["bund"]["ratio"] == pytest.approx(ratio)
        assert props["bund"]["point"] == point
        assert props["bund"]["warn_people"] == 1000
        assert props["bund"]["horizon"] == horizon
        assert props["yuyuan"]["colour"] == "grey"
        assert props["yuyuan"]["ratio"] is None
    other = make_actor("officer", city.stations[2])
    theirs = client.get(MAP_JSON, headers=other.headers).json()["features"]
    assert [(f["properties"]["code"], f["properties"]["colour"]) for f in theirs] == [
        ("lujiazui", "red")
    ]
    bad = client.get(MAP_JSON, params={"horizon": 4}, headers=officer.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert client.get(MAP_JSON).status_code == 401


def test_stale_forecasts_are_grey(
    client: TestClient,
    make_actor: Any,
    city: City,
    data: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages_forecast, "utcnow", lambda: NOW + 6 * HOUR)
    officer = make_actor("officer", city.stations[0])
    features = client.get(MAP_JSON, headers=officer.headers).json()["features"]
    assert {f["properties"]["colour"] for f in features} == {"grey"}


def test_map_page_in_both_languages(
    client: TestClient, staff: Any, city: City, data: dict[str, Any]
) -> None:
    log_in(client, staff("officer", city.stations[0]))
    page = client.get("/console/crowd/map", params={"horizon": 2})
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert 'data-geojson-url="/api/crowd/forecast-map?horizon=2"' in page.text
    assert '<tr data-hotspot="bund" data-colour="red" data-ratio="1.200">' in page.text
    assert '<tr data-hotspot="yuyuan" data-colour="grey" data-ratio="">' in page.text
    assert "lujiazui" not in page.text
    assert all(f'data-colour="{c}"' in page.text for c in ("green", "amber", "red", "grey"))
    assert "预测负荷地图" in page.text
    assert "/console/static/console/crowd_map.js" in page.text
    client.cookies.set("safecity_lang", "en")
    english = client.get("/console/crowd/map")
    assert "Forecast load map" in english.text
    assert '<tr data-hotspot="bund" data-colour="amber" data-ratio="0.900">' in english.text
    assert client.get("/console/crowd/map", params={"horizon": 0}).status_code == 422


def test_event_day_lists_every_hotspot_and_the_risks_with_lead_time(
    client: TestClient, staff: Any, city: City, data: dict[str, Any]
) -> None:
    log_in(client, staff("officer", city.stations[0]))
    page = client.get("/console/crowd/day", params={"date": LOCAL_DAY})
    assert page.status_code == 200, page.text
    assert_csp_clean(page.text)
    assert f'data-day="{LOCAL_DAY}"' in page.text
    assert 'data-hotspot="bund" data-risks="2"' in page.text
    assert 'data-hotspot="yuyuan" data-risks="0"' in page.text
    assert "lujiazui" not in page.text
    svg = svg_of(page.text)
    assert 'data-band="past"' in svg
    assert 'data-threshold="warn"' in svg
    assert 'data-level="warn" data-lead="2"' in page.text
    assert 'data-level="critical" data-lead="3"' in page.text
    assert "陈毅广场" in page.text
    assert 'data-divert="yuyuan"' in page.text
    assert "南京东路站" in page.text  # exits to close on the critical one
    # The day's local hours start at 16:00 UTC the day before (Asia/Shanghai).
    first = datetime(2026, 9, 30, 16, tzinfo=UTC).isoformat()
    assert f'data-hour="{first}"' in page.text
    assert client.get("/console/crowd/day").status_code == 200  # today by default
    empty = client.get("/console/crowd/day", params={"date": "2026-09-01"})
    assert empty.status_code == 200
    assert "data-no-risks" in empty.text
    client.cookies.set("safecity_lang", "en")
    english = client.get("/console/crowd/day", params={"date": LOCAL_DAY})
    assert "Event day 2026-10-01" in english.text
    assert "room for 300" in english.text
    for bad in ("2026-13-01", "yesterday"):
        refused = client.get("/console/crowd/day", params={"date": bad})
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")


def test_risk_list_is_paginated_filtered_and_scoped(
    client: TestClient, staff: Any, city: City, data: dict[str, Any]
) -> None:
    log_in(client, staff("officer", city.stations[0]))
    page = client.get("/console/crowd/risks")
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert 'data-total="2"' in page.text
    assert "人流风险预警" in page.text
    first = client.get("/console/crowd/risks", params={"limit": 1})
    assert first.text.count("data-risk-id=") == 1
    assert 'data-level="critical"' in first.text  # newest target first
    assert 'data-page="next"' in first.text
    second = client.get("/console/crowd/risks", params={"limit": 1, "offset": 1})
    assert 'data-level="warn"' in second.text
    assert 'data-page="prev"' in second.text
    critical = client.get("/console/crowd/risks", params={"level": "critical"})
    assert 'data-total="1"' in critical.text
    client.cookies.set("safecity_lang", "en")
    assert "Crowd risk alerts" in client.get("/console/crowd/risks").text
    assert client.get("/console/crowd/risks", params={"sort": "nope"}).status_code == 422


def test_another_districts_officer_sees_neither_hotspot_nor_forecasts(
    client: TestClient, staff: Any, city: City, data: dict[str, Any]
) -> None:
    log_in(client, staff("officer", city.stations[2]))
    assert client.get(PAGE).status_code == 404
    risks = client.get("/console/crowd/risks")
    assert 'data-total="0"' in risks.text
    assert "bund" not in risks.text
    day = client.get("/console/crowd/day", params={"date": LOCAL_DAY})
    assert 'data-hotspot="lujiazui"' in day.text
    assert "bund" not in day.text
    own = client.get("/console/crowd/hotspots/lujiazui/forecast")
    assert own.status_code == 200
    assert "data-no-forecast" not in own.text


def test_logged_out_pages_redirect_to_login(client: TestClient) -> None:
    for url in (PAGE, "/console/crowd/map", "/console/crowd/day", "/console/crowd/risks"):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
