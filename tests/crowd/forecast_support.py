"""Hotspots and hourly counts written straight to the tables, for the forecasting and risk
tests (the hotspot and ingest services have their own tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from safecity.crowd.forecast import ForecastConfig
from safecity.crowd.models import CrowdCount, CrowdHotspot
from safecity.platform.db import new_id

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
FAST = ForecastConfig(
    horizons=(1, 2, 3),
    calibration_days=7,
    num_rounds=40,
    num_leaves=15,
    min_data_in_leaf=10,
    threads=1,
)
"""A small model: the tests check the plumbing, the benchmarks the accuracy."""


def square(lat: float, lng: float, d: float = 0.002) -> dict[str, Any]:
    ring = [[lng, lat], [lng + d, lat], [lng + d, lat + d], [lng, lat + d], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def add_hotspot(
    session: Session,
    *,
    code: str,
    org_id: str,
    warn_people: float,
    lat: float = 31.24,
    lng: float = 121.49,
    neighbours: Sequence[str] = (),
    entrances: Sequence[str] = (),
    transit: Sequence[dict[str, Any]] = (),
    tz: str = "UTC",
    region: str = "",
) -> CrowdHotspot:
    """A hotspot whose warn threshold is ``warn_people`` and critical twice that (density
    rule: 1 and 2 people/m² over ``warn_people`` m²; capacity far above)."""
    hotspot = CrowdHotspot(
        id=new_id(),
        code=code,
        name_zh=f"{code}区",
        name_en=f"Place {code}",
        org_id=org_id,
        geometry=square(lat, lng),
        area_m2=float(warn_people),
        capacity=int(warn_people * 10),
        warn_density=1.0,
        critical_density=2.0,
        timezone=tz,
        region=region,
        entrances=list(entrances),
        neighbours=list(neighbours),
        transit=list(transit),
    )
    session.add(hotspot)
    session.flush()
    return hotspot


def add_counts(
    session: Session, hotspot: CrowdHotspot, values: np.ndarray, *, start: datetime = START
) -> None:
    """One ``crowd_counts`` row per hour from ``start``; ``NaN`` → a ``gap`` row."""
    rows = []
    for i, v in enumerate(values):
        gap = bool(np.isnan(v))
        rows.append(
            {
                "id": new_id(),
                "hotspot_id": hotspot.id,
                "hour": start + i * HOUR,
                "count": None if gap else float(v),
                "status": "gap" if gap else "ok",
                "sensors": 0 if gap else 1,
                "updated_at": start,
            }
        )
    session.execute(insert(CrowdCount), rows)
