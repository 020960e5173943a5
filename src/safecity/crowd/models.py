"""Tables of the crowd-risk product (issue 8): hotspots, hourly counts, model versions,
forecasts and the risk alerts raised from them.

Counts are **aggregates** (people per hour in an area, from counters, turnstiles, transit
entries or Wi-Fi/phone counts already aggregated by the operator): no table here holds an
individual, a device identifier or a track. Hours are stored as the UTC instant the hour
starts; each hotspot's ``timezone`` turns them into local hours for the calendar features.

* :class:`CrowdHotspot`: a place with a polygon, a capacity and density thresholds
  (people/m²), the org that answers for it, and what diversion advice can use: its
  entrances, neighbouring hotspots and transit stations (with exits).
* :class:`CrowdSensorHour`: one sensor's count for one hour (idempotent: a repeated report of
  the same sensor and hour replaces the value and is counted in ``reports``).
* :class:`CrowdCount`: the hotspot's hourly total and its ``status``: ``ok``, ``partial``
  (some expected sensors did not report), ``gap`` (no report at all) or ``outage`` (a
  sensor stuck or off, marked by the outage rule); gaps are marked, never filled.
* :class:`CrowdModel`: one trained forecaster (horizons, hotspots, config, metrics, the
  artifact's path and SHA-256); one is ``active``.
* :class:`CrowdForecast`: the forecast made at ``origin`` (the last complete hour) for
  ``origin + horizon`` hours, with its interval and the model that made it.
* :class:`CrowdRisk`: a risk alert raised for a hotspot and target hour (once), with the
  advice given.
* :class:`CrowdCovariate` and :class:`CrowdEvent`: outside feeds (arrivals, hotel
  occupancy, weather) and the events calendar, each value with its source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

COUNT_STATUSES: tuple[str, ...] = ("ok", "partial", "gap", "outage")


class CrowdHotspot(Base):
    __tablename__ = "crowd_hotspots"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[str] = mapped_column(ID, index=True)
    """The station or district that answers for the place (alerts and scope)."""
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    """GeoJSON Polygon or MultiPolygon, WGS84."""
    area_m2: Mapped[float] = mapped_column(Float)
    capacity: Mapped[int] = mapped_column(Integer)
    """People the place holds safely at once (the operator's figure)."""
    warn_density: Mapped[float] = mapped_column(Float)
    critical_density: Mapped[float] = mapped_column(Float)
    """People per m²: warn (meter the entrances) and critical (close, divert)."""
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    region: Mapped[str] = mapped_column(String(8), default="CN")
    """Holiday calendar region of the place (see crowd/holidays.csv)."""
    entrances: Mapped[list[str]] = mapped_column(JSON, default=list)
    neighbours: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Codes of hotspots people can be sent to instead."""
    transit: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Stations nearby: ``[{"name": ..., "exits": [...]}]`` (exits that can be closed)."""
    expected_sensors: Mapped[int] = mapped_column(Integer, default=0)
    """How many sensors should report each hour (0: any report makes the hour ``ok``)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrowdSensorHour(Base):
    __tablename__ = "crowd_sensor_hours"
    __table_args__ = (UniqueConstraint("sensor_id", "hour"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    sensor_id: Mapped[str] = mapped_column(String(64))
    hotspot_id: Mapped[str] = mapped_column(ID, ForeignKey("crowd_hotspots.id"), index=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[float] = mapped_column(Float)
    reports: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrowdCount(Base):
    __tablename__ = "crowd_counts"
    __table_args__ = (UniqueConstraint("hotspot_id", "hour"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    hotspot_id: Mapped[str] = mapped_column(ID, ForeignKey("crowd_hotspots.id"), index=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[float | None] = mapped_column(Float, default=None)
    """Sum of the sensors that reported; ``None`` for a gap."""
    status: Mapped[str] = mapped_column(String(16), default="ok")
    sensors: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrowdModel(Base):
    __tablename__ = "crowd_models"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    horizons: Mapped[list[int]] = mapped_column(JSON, default=list)
    hotspots: Mapped[list[str]] = mapped_column(JSON, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class CrowdForecast(Base):
    __tablename__ = "crowd_forecasts"
    __table_args__ = (
        UniqueConstraint("hotspot_id", "origin", "horizon"),
        Index("ix_crowd_forecasts_target", "hotspot_id", "target"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    hotspot_id: Mapped[str] = mapped_column(ID, ForeignKey("crowd_hotspots.id"))
    origin: Mapped[datetime] = mapped_column(UTCDateTime)
    target: Mapped[datetime] = mapped_column(UTCDateTime)
    horizon: Mapped[int] = mapped_column(Integer)
    point: Mapped[float] = mapped_column(Float)
    lower: Mapped[float] = mapped_column(Float)
    upper: Mapped[float] = mapped_column(Float)
    level: Mapped[float] = mapped_column(Float)
    model_id: Mapped[str] = mapped_column(ID, ForeignKey("crowd_models.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrowdRisk(Base):
    __tablename__ = "crowd_risks"
    __table_args__ = (UniqueConstraint("hotspot_id", "target"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    hotspot_id: Mapped[str] = mapped_column(ID, ForeignKey("crowd_hotspots.id"), index=True)
    target: Mapped[datetime] = mapped_column(UTCDateTime)
    forecast_id: Mapped[str] = mapped_column(ID, ForeignKey("crowd_forecasts.id"))
    level: Mapped[str] = mapped_column(String(16))  # "warn" | "critical"
    expected: Mapped[float] = mapped_column(Float)
    """The interval's upper bound that crossed the threshold (people)."""
    threshold: Mapped[float] = mapped_column(Float)
    alert_id: Mapped[str | None] = mapped_column(ID, default=None)
    advice: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrowdCovariate(Base):
    """One value of an outside feed the forecaster may use (issue 8 item 3): arrivals
    (``air``, ``rail``: people arriving in the hour), ``hotel`` occupancy (share 0–1 for the
    day), ``weather`` (``temp_c``, ``rain_mm`` per hour). ``scope`` is a city or hotspot
    code; ``at`` the UTC start of the hour (the day's local midnight for daily values)."""

    __tablename__ = "crowd_covariates"
    __table_args__ = (UniqueConstraint("kind", "scope", "at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrowdEvent(Base):
    """An entry of the events calendar (concert, light show, fireworks, match): where,
    when, expected attendance if published, and the public source it cites (programme,
    fixture list, news). Never derived from the counts."""

    __tablename__ = "crowd_events"
    __table_args__ = (UniqueConstraint("code"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    hotspots: Mapped[list[str]] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attendance: Mapped[int | None] = mapped_column(Integer, default=None)
    source_url: Mapped[str] = mapped_column(String(500))
    source_title: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
