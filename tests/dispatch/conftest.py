"""Dispatch fixtures: station areas, a second department, a community office."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.runtime import Runtime
from tests.conftest import City


def square(lng: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def point_in_station(i: int) -> tuple[float, float]:
    """(lat, lng) inside station ``i``'s area."""
    return 31.205, 121.405 + 0.01 * i


@dataclass
class DispatchCity:
    city: City
    transport: Org  # declares road_damage and building_safety
    office: Org  # community office under station 0

    @property
    def stations(self) -> list[Org]:
        return self.city.stations

    @property
    def sanitation(self) -> Org:
        return self.city.department


@pytest.fixture
def dcity(runtime: Runtime, city: City) -> DispatchCity:
    with runtime.sessions.begin() as s:
        for i, station in enumerate(city.stations):
            orgs.update(session=s, org_id=station.id, area=square(121.40 + 0.01 * i, 31.20))
        transport = orgs.create(
            session=s,
            code="transport",
            kind="department",
            name_zh="交通委",
            name_en="Transport",
            parent_id=city.city.id,
            service_codes=["road_damage", "streetlight"],
        )
        office = orgs.create(
            session=s,
            code="hp-s1-cp1",
            kind="community_office",
            name_zh="外滩社区警务室",
            name_en="Bund community office",
            parent_id=city.stations[0].id,
        )
    return DispatchCity(city=city, transport=transport, office=office)
