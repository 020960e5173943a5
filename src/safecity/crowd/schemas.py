"""What the crowd hotspot API reads and writes (:mod:`safecity.crowd.hotspots`).

The models check shapes and ranges; the service checks what needs the database or the
geometry (the org exists and is in scope, neighbours exist, the polygon is valid, warn
density below critical density), so the API, the GeoJSON import and the console share one
set of rules. Nothing here is personal data: hotspots are places and their figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,63}$"
"""Hotspot codes: lower-case letters, digits, ``-`` and ``_``, 2–64 characters (they appear
in URLs, CSV files of counts and alert dedup keys)."""

MAX_ENTRANCES = 50
MAX_NEIGHBOURS = 20
MAX_TRANSIT = 20
MAX_EXITS = 40
MAX_CAPACITY = 10_000_000
MAX_DENSITY = 10.0
"""People per m²: above ~9 a crowd cannot physically pack tighter; 10 is a safe ceiling."""
MAX_SENSORS = 1000

Code = Annotated[str, Field(pattern=CODE_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
OrgRef = Annotated[str, Field(min_length=1, max_length=64)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Capacity = Annotated[int, Field(gt=0, le=MAX_CAPACITY)]
Density = Annotated[float, Field(gt=0, le=MAX_DENSITY, allow_inf_nan=False)]
Timezone = Annotated[str, Field(min_length=1, max_length=64)]
Region = Annotated[str, Field(min_length=1, max_length=8)]
Sensors = Annotated[int, Field(ge=0, le=MAX_SENSORS)]


class TransitStation(BaseModel):
    """A station near the hotspot and the exits that can be closed or metered."""

    model_config = ConfigDict(extra="forbid")

    name: Label
    exits: Annotated[list[Label], Field(max_length=MAX_EXITS)] = []


class HotspotIn(BaseModel):
    """A new hotspot (also the ``properties`` + ``geometry`` of an imported feature).

    ``org`` is the code or the id of the station/district that answers for the place
    (default: the caller's own org). ``geometry`` is a GeoJSON Polygon or MultiPolygon in
    WGS84 (``[lng, lat]``), checked by the service.
    """

    model_config = ConfigDict(extra="forbid")

    code: Code
    name_zh: Name
    name_en: Name
    org: OrgRef | None = None
    geometry: dict[str, Any]
    capacity: Capacity
    warn_density: Density
    critical_density: Density
    timezone: Timezone = "Asia/Shanghai"
    region: Region = "CN"
    entrances: Annotated[list[Label], Field(max_length=MAX_ENTRANCES)] = []
    neighbours: Annotated[list[Code], Field(max_length=MAX_NEIGHBOURS)] = []
    transit: Annotated[list[TransitStation], Field(max_length=MAX_TRANSIT)] = []
    expected_sensors: Sensors = 0


class HotspotPatch(BaseModel):
    """The fields to change (the code never changes; omitted fields stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    name_zh: Name | None = None
    name_en: Name | None = None
    org: OrgRef | None = None
    geometry: dict[str, Any] | None = None
    capacity: Capacity | None = None
    warn_density: Density | None = None
    critical_density: Density | None = None
    timezone: Timezone | None = None
    region: Region | None = None
    entrances: Annotated[list[Label], Field(max_length=MAX_ENTRANCES)] | None = None
    neighbours: Annotated[list[Code], Field(max_length=MAX_NEIGHBOURS)] | None = None
    transit: Annotated[list[TransitStation], Field(max_length=MAX_TRANSIT)] | None = None
    expected_sensors: Sensors | None = None


class HotspotRead(BaseModel):
    """A hotspot as read, with the people thresholds derived from its figures."""

    id: str
    code: str
    name_zh: str
    name_en: str
    org_id: str
    geometry: dict[str, Any]
    area_m2: float
    capacity: int
    warn_density: float
    critical_density: float
    warn_people: float
    """People present at which the place is at the warn level (see ``thresholds``)."""
    critical_people: float
    timezone: str
    region: str
    entrances: list[str]
    neighbours: list[str]
    transit: list[TransitStation]
    expected_sensors: int
    active: bool
    created_at: datetime
    updated_at: datetime


class ImportRead(BaseModel):
    """What an import did (all features, or none)."""

    total: int
    created: int
    updated: int
    unchanged: int
    codes: list[str]
