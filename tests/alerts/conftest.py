"""Alerts fixtures: station areas (two squares side by side) and a raise helper."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from safecity.alerts import service
from safecity.alerts.models import Alert
from safecity.orgs import service as orgs
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from tests.conftest import City
from tests.console.conftest import make_staff  # noqa: F401  (fixture, reused)


def square(lng: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


# Station i covers [121.40 + 0.01 i, 121.41 + 0.01 i] x [31.20, 31.21].
def point_in_station(i: int) -> tuple[float, float]:
    """(lat, lng) inside station ``i``'s area."""
    return 31.205, 121.405 + 0.01 * i


@pytest.fixture
def areas(runtime: Runtime, city: City) -> City:
    with runtime.sessions.begin() as s:
        for i, station in enumerate(city.stations):
            orgs.update(session=s, org_id=station.id, area=square(121.40 + 0.01 * i, 31.20))
    return city


RaiseFn = Callable[..., Alert]


@pytest.fixture
def raise_one(runtime: Runtime, areas: City) -> RaiseFn:
    """``raise_one(station=0, key="k", severity="high", at=None, **kw)`` → the alert, committed."""

    def make(
        station: int = 0,
        *,
        key: str = "rule:test:entity:1",
        severity: str = "high",
        at: datetime | None = None,
        **kwargs: Any,
    ) -> Alert:
        lat, lng = point_in_station(station)
        with runtime.sessions.begin() as s:
            alert = service.raise_alert(
                s,
                source="tests",
                category=kwargs.pop("category", "intrusion"),
                severity=severity,
                title_key="alerts.title.test",
                lat=lat,
                lng=lng,
                dedup_key=key,
                occurred_at=at or utcnow(),
                detail={"sensor_id": "S-1"},
                **kwargs,
            )
            s.flush()
            s.expunge(alert)
            return alert

    return make
