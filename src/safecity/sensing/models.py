"""The sensor registry: one row per field device, keyed by its external device id."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import Base, UTCDateTime, utcnow

SensorType = Literal[
    "door",
    "intrusion",
    "smoke",
    "ebike_charger",
    "water_meter",
    "power_meter",
    "camera_detector",
    "pedestrian_crossing",
    "noise_meter",
    "tunnel_light",
    "parking",
    "report_terminal",
]
SensorStatus = Literal["active", "maintenance", "retired"]
SENSOR_TYPES: tuple[str, ...] = get_args(SensorType)
SENSOR_STATUSES: tuple[str, ...] = get_args(SensorStatus)

MAX_SENSOR_ID = 64
MAX_LABEL = 200
MAX_UNIT = 50
MAX_GATEWAY = 64
MAX_GROUP = 64


class Sensor(Base):
    """A registered device. ``lat``/``lng`` are WGS84 (converted at registration from the
    coordinate system the importer declared); ``org_id`` is the station whose area holds
    the point (``None`` when no station area does). ``unit`` (a flat number) is personal."""

    __tablename__ = "sensors"
    __table_args__ = (Index("ix_sensors_org_id_type", "org_id", "type"),)

    id: Mapped[str] = mapped_column(String(MAX_SENSOR_ID), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    h3_cell: Mapped[str] = mapped_column(String(16), index=True)
    compound: Mapped[str | None] = mapped_column(String(MAX_LABEL), default=None)
    building: Mapped[str | None] = mapped_column(String(MAX_LABEL), default=None)
    unit: Mapped[str | None] = mapped_column(String(MAX_UNIT), default=None)
    gateway_id: Mapped[str | None] = mapped_column(String(MAX_GATEWAY), index=True, default=None)
    device_group: Mapped[str | None] = mapped_column(String(MAX_GROUP), index=True, default=None)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), index=True, default=None)
    status: Mapped[str] = mapped_column(String(16), index=True, default="active")
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
