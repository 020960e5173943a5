"""HTTP API of crowd forecasts, risk alerts and model versions (``/api/crowd``).

* ``GET /api/crowd/hotspots/{code}/forecasts?since=`` (``crowd:read``, the hotspot in the
  caller's scope): the stored forecasts whose target hour starts at or after ``since``
  (default: 24 h ago) with point, interval, level, horizon and the model version;
* ``GET /api/crowd/risks`` (``crowd:read``, paginated, only hotspots in scope; filters
  ``level`` and ``hotspot`` (code)): the risk alerts raised and their advice;
* ``GET /api/crowd/models`` (``crowd:read``: a version is shown next to every forecast, so
  reading the list needs no more) and ``POST /api/crowd/models/train`` (``crowd:manage``):
  train a new version on the database's counts in the request (seconds for a city's
  hotspots) and make it active; answers the new model (201).

Forecasts and risks are aggregates about places: reads are scoped, not audited; training is
audited by :func:`safecity.crowd.forecasting.train`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select

from safecity.crowd import hotspots
from safecity.crowd import permissions as perms
from safecity.crowd.api import HotspotCode
from safecity.crowd.models import CrowdForecast, CrowdHotspot, CrowdModel, CrowdRisk
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.platform.runtime import DbSession, settings_for
from safecity.security.rbac import Principal, require, scope_clause

forecast_router = APIRouter(prefix="/api/crowd", tags=["crowd"])

Reader = Annotated[Principal, Depends(require(perms.READ))]
Manager = Annotated[Principal, Depends(require(perms.MANAGE))]

MAX_FORECASTS = 2000
MAX_MODELS = 100

RISK_LIST = ListSpec(
    sort={
        "target": CrowdRisk.target,
        "created_at": CrowdRisk.created_at,
        "level": CrowdRisk.level,
    },
    filters={"level": CrowdRisk.level, "hotspot": CrowdHotspot.code},
    default_sort="-target",
    tiebreak=CrowdRisk.id,
)


class ForecastRead(BaseModel):
    hotspot: str
    origin: datetime
    target: datetime
    horizon: int
    point: float
    lower: float
    upper: float
    level: float
    model_version: str


class RiskRead(BaseModel):
    id: str
    hotspot: str
    target: datetime
    level: str
    expected: float
    threshold: float
    alert_id: str | None
    advice: dict[str, Any]
    created_at: datetime


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    version: str
    trained_at: datetime
    horizons: list[int]
    hotspots: list[str]
    config: dict[str, Any]
    metrics: dict[str, Any]
    sha256: str
    active: bool


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weeks: int = Field(default=12, ge=1, le=104)


@forecast_router.get(
    "/hotspots/{code}/forecasts",
    response_model=list[ForecastRead],
    summary="A hotspot's forecasts (point, interval, model version) from a time on",
)
def hotspot_forecasts(
    principal: Reader,
    session: DbSession,
    code: HotspotCode,
    since: Annotated[
        datetime | None, Query(description="Target hours starting at or after (ISO 8601).")
    ] = None,
) -> list[ForecastRead]:
    hotspot = hotspots.get(session=session, principal=principal, code=code)
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a time zone (e.g. 2026-10-01T19:00+08:00)")
    start = since if since is not None else utcnow() - timedelta(hours=24)
    rows = session.execute(
        select(CrowdForecast, CrowdModel.version)
        .join(CrowdModel, CrowdModel.id == CrowdForecast.model_id)
        .where(CrowdForecast.hotspot_id == hotspot.id, CrowdForecast.target >= start)
        .order_by(CrowdForecast.target, CrowdForecast.horizon, CrowdForecast.origin)
        .limit(MAX_FORECASTS)
    )
    return [
        ForecastRead(
            hotspot=hotspot.code,
            origin=f.origin,
            target=f.target,
            horizon=f.horizon,
            point=round(f.point, 1),
            lower=round(f.lower, 1),
            upper=round(f.upper, 1),
            level=f.level,
            model_version=version,
        )
        for f, version in rows
    ]


def _risk(row: Any) -> RiskRead:
    risk, code = row
    return RiskRead(
        id=risk.id,
        hotspot=code,
        target=risk.target,
        level=risk.level,
        expected=round(risk.expected, 1),
        threshold=round(risk.threshold, 1),
        alert_id=risk.alert_id,
        advice=risk.advice,
        created_at=risk.created_at,
    )


@forecast_router.get(
    "/risks", response_model=Page[RiskRead], summary="Crowd risk alerts and advice in scope"
)
def list_risks(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(RISK_LIST.params)],
) -> Page[RiskRead]:
    query = (
        select(CrowdRisk, CrowdHotspot.code)
        .join(CrowdHotspot, CrowdHotspot.id == CrowdRisk.hotspot_id)
        .where(scope_clause(principal, CrowdHotspot.org_id))
    )
    rows = cast("Select[Any]", query)  # paginate takes any row shape (scalars=False)
    return paginate(session=session, query=rows, params=params, item=_risk, scalars=False)


@forecast_router.get(
    "/models", response_model=list[ModelRead], summary="Forecast model versions, newest first"
)
def list_models(principal: Reader, session: DbSession) -> list[ModelRead]:
    rows = session.scalars(
        select(CrowdModel).order_by(CrowdModel.trained_at.desc(), CrowdModel.id).limit(MAX_MODELS)
    )
    return [ModelRead.model_validate(m) for m in rows]


@forecast_router.post(
    "/models/train",
    response_model=ModelRead,
    status_code=201,
    summary="Train a forecast model version on the stored counts and make it active",
)
def train_model(
    principal: Manager,
    session: DbSession,
    body: Annotated[TrainIn | None, Body()] = None,
) -> ModelRead:
    from safecity.crowd import forecasting  # LightGBM: loaded when training is asked for

    model = forecasting.train(
        session,
        settings=settings_for(session),
        now=utcnow(),
        weeks=(body or TrainIn()).weeks,
        principal=principal,
    )
    return ModelRead.model_validate(model)
