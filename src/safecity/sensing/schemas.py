"""Pydantic shapes of sensors in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from safecity.security.redact import Personal
from safecity.sensing.models import SensorStatus, SensorType

Crs = Literal["wgs84", "gcj02", "bd09"]

SENSOR_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class SensorRead(BaseModel):
    """A sensor as stored (WGS84). ``unit`` is a flat number: personal."""

    id: str
    type: SensorType
    lat: float
    lng: float
    h3_cell: str
    compound: str | None
    building: str | None
    unit: Annotated[str | None, Personal]
    gateway_id: str | None
    device_group: str | None
    org_id: str | None
    status: SensorStatus
    installed_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SensorCreate(BaseModel):
    """Register one sensor; the point is given in ``crs`` and stored as WGS84."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SENSOR_ID_PATTERN, description="External device id (unique).")
    type: SensorType
    lng: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Crs = Field(default="wgs84", description="Coordinate system of lng/lat.")
    compound: str | None = Field(default=None, max_length=200)
    building: str | None = Field(default=None, max_length=200)
    unit: Annotated[str | None, Personal] = Field(default=None, max_length=50)
    gateway_id: str | None = Field(default=None, max_length=64)
    device_group: str | None = Field(default=None, max_length=64)
    status: SensorStatus = "active"
    installed_at: AwareDatetime | None = None


class ImportProblem(BaseModel):
    where: str
    message: str


class ImportReport(BaseModel):
    """What an import did: rows read, written (created/updated) and skipped as invalid."""

    filename: str
    crs: Crs
    format: Literal["csv", "geojson"]
    total: int
    created: int
    updated: int
    skipped: int
    unassigned: int = Field(description="Sensors whose point lies in no station area.")
    seconds: float
    problems: list[ImportProblem]
