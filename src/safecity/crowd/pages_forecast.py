"""Console pages of crowd forecasts (issue 8, item 6) and the map's JSON.

* ``GET /console/crowd/hotspots/{code}/forecast``: the last 48 h of counts against the t+1
  forecasts made an hour before each hour, the next 1–3 h, the 90 % band, the warn and
  critical lines and the risks raised: an SVG chart drawn on the server
  (:mod:`safecity.crowd.charts`) with a ``<title>``/``<desc>`` and the numbers in a table;
* ``GET /console/crowd/map?horizon=1``: the hotspots coloured by forecast load (upper bound
  over the warn threshold: green < 0.8, amber < 1, red ≥ 1, grey without a current
  forecast), drawn by ``console/crowd_map.js`` from
  ``GET /api/crowd/forecast-map?horizon=1`` (GeoJSON, ``crowd:read``, scoped), with the
  same figures in a table;
* ``GET /console/crowd/day?date=YYYY-MM-DD`` (default: today in Asia/Shanghai): the event
  day: every hotspot in scope as a small chart, and the day's risks with advice and lead
  time;
* ``GET /console/crowd/risks``: the risk list, paginated (``level``, ``hotspot`` filters).

All need ``crowd:read`` and read only hotspots in the caller's scope
(:mod:`safecity.crowd.views`). No inline script: the map gets its URL and messages from
data attributes, as the hotspots page does.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.crowd import charts, views
from safecity.crowd import permissions as perms
from safecity.crowd.api import GEOJSON, HotspotCode
from safecity.crowd.forecast_api import RISK_LIST
from safecity.platform.db import utcnow
from safecity.platform.pagination import ListParams
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security.rbac import Principal, require

FORECAST_PAGE = "/console/crowd/hotspots/{code}/forecast"
MAP_PAGE = "/console/crowd/map"
DAY_PAGE = "/console/crowd/day"
RISKS_PAGE = "/console/crowd/risks"
MAP_JSON = "/api/crowd/forecast-map"

forecast_pages_router = APIRouter()

PageReader = Annotated[Principal, Depends(console_require(perms.READ))]
ApiReader = Annotated[Principal, Depends(require(perms.READ))]
Horizon = Annotated[int, Query(ge=1, le=3, description="Hours ahead (1–3).")]


def local_time(when: datetime | None, tz: str, fmt: str = "%m-%d %H:%M") -> str:
    """``when`` (UTC) as local wall time of ``tz`` (the hotspot's)."""
    if when is None:
        return ""
    return when.astimezone(zoneinfo.ZoneInfo(tz)).strftime(fmt)


def _labeller(tz: str) -> Callable[[datetime], str]:
    zone = zoneinfo.ZoneInfo(tz)

    def label(hour: datetime) -> str:
        local = hour.astimezone(zone)
        return local.strftime("%m-%d %H:%M" if local.hour == 0 else "%H:%M")

    return label


def _chart(series: views.Series, *, small: bool = False) -> charts.Chart:
    return charts.series_chart(
        start=series.start,
        end=series.end,
        counts=series.counts,
        past=series.past,
        ahead=series.ahead,
        warn=series.warn,
        critical=series.critical,
        risks=series.risks,
        label=_labeller(series.hotspot.timezone),
        small=small,
        tick_every=6,
    )


@forecast_pages_router.get(FORECAST_PAGE, response_class=HTMLResponse, include_in_schema=False)
def hotspot_forecast_page(
    request: Request, session: DbSession, principal: PageReader, code: HotspotCode
) -> HTMLResponse:
    t = _translator(request)
    series = views.hotspot_series(session=session, principal=principal, code=code, now=utcnow())
    return render(
        request,
        "crowd/forecast.html",
        principal=principal,
        active="crowd",
        org_name=_org_name(session, principal, t.lang),
        s=series,
        chart=_chart(series),
        local=local_time,
    )


@forecast_pages_router.get(MAP_PAGE, response_class=HTMLResponse, include_in_schema=False)
def forecast_map_page(
    request: Request, session: DbSession, principal: PageReader, horizon: Horizon = 1
) -> HTMLResponse:
    t = _translator(request)
    entries = views.forecast_map(
        session=session, principal=principal, horizon=horizon, now=utcnow()
    )
    return render(
        request,
        "crowd/map.html",
        principal=principal,
        active="crowd",
        org_name=_org_name(session, principal, t.lang),
        entries=entries,
        horizon=horizon,
        horizons=views.HORIZONS,
        geojson_url=f"{MAP_JSON}?horizon={horizon}",
        tile_url=get_runtime(request).settings.tile_url,
        green_below=views.GREEN_BELOW,
        amber_below=views.AMBER_BELOW,
        local=local_time,
    )


@forecast_pages_router.get(
    MAP_JSON,
    tags=["crowd"],
    summary="Active hotspots in scope with their current forecast load (GeoJSON)",
    responses={200: {"content": {GEOJSON: {}}}},
)
def forecast_map_json(
    principal: ApiReader, session: DbSession, horizon: Horizon = 1
) -> JSONResponse:
    entries = views.forecast_map(
        session=session, principal=principal, horizon=horizon, now=utcnow()
    )
    return JSONResponse(
        {"type": "FeatureCollection", "features": [e.feature() for e in entries]},
        media_type=GEOJSON,
    )


@forecast_pages_router.get(DAY_PAGE, response_class=HTMLResponse, include_in_schema=False)
def event_day_page(
    request: Request,
    session: DbSession,
    principal: PageReader,
    date: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    t = _translator(request)
    now = utcnow()
    day = views.parse_day(date, now=now)
    data = views.day_series(session=session, principal=principal, day=day, now=now)
    return render(
        request,
        "crowd/day.html",
        principal=principal,
        active="crowd",
        org_name=_org_name(session, principal, t.lang),
        day=day,
        previous=(day - timedelta(days=1)).isoformat(),
        following=(day + timedelta(days=1)).isoformat(),
        items=[(s, _chart(s, small=True)) for s in data.series],
        risks=data.risks,
        local=local_time,
    )


@forecast_pages_router.get(RISKS_PAGE, response_class=HTMLResponse, include_in_schema=False)
def risks_page(
    request: Request,
    session: DbSession,
    principal: PageReader,
    params: Annotated[ListParams, Depends(RISK_LIST.params)],
) -> HTMLResponse:
    t = _translator(request)
    page = views.risk_page(session=session, principal=principal, params=params)
    previous = None
    if params.offset > 0:
        items = [(k, v) for k, v in params.query if k != "offset"]
        items.append(("offset", str(max(0, params.offset - params.limit))))
        previous = items
    return render(
        request,
        "crowd/risks.html",
        principal=principal,
        active="crowd",
        org_name=_org_name(session, principal, t.lang),
        page=page,
        previous=previous,
        local=local_time,
    )
