"""Sensor registry service: look-ups, visibility, registration, station assignment.

Functions take keyword-only arguments and a session and never commit. Registration is
audited and announced (``sensing.sensor.registered``); a bulk import (see
:mod:`safecity.sensing.registry_import`) writes one audit record and one
``sensing.sensors.imported`` event for the whole file.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform import geo, outbox
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.events import register_event_type
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.security import audit
from safecity.security.rbac import Principal, ensure_in_scope, grant, scope_clause
from safecity.sensing.models import (
    MAX_GATEWAY,
    MAX_GROUP,
    MAX_LABEL,
    MAX_UNIT,
    SENSOR_STATUSES,
    SENSOR_TYPES,
    Sensor,
)
from safecity.sensing.schemas import SensorRead

SOURCE = "sensing"
SENSOR_REGISTERED = "sensing.sensor.registered"
SENSORS_IMPORTED = "sensing.sensors.imported"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_NULLABLE_ID = {"type": ["string", "null"], "maxLength": 64}
_COUNT = {"type": "integer", "minimum": 0}

register_event_type(
    SENSOR_REGISTERED,
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["sensor_id", "type", "org_id", "h3_cell", "status"],
        "properties": {
            "sensor_id": _ID,
            "type": {"enum": list(SENSOR_TYPES)},
            "org_id": _NULLABLE_ID,
            "h3_cell": {"type": "string", "maxLength": 16},
            "status": {"enum": list(SENSOR_STATUSES)},
            "gateway_id": _NULLABLE_ID,
            "device_group": _NULLABLE_ID,
        },
    },
    description="A sensor was registered one at a time (API).",
)
register_event_type(
    SENSORS_IMPORTED,
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["import_id", "filename", "crs", "total", "created", "updated", "skipped"],
        "properties": {
            "import_id": _ID,
            "filename": {"type": "string", "maxLength": 200},
            "crs": {"enum": list(geo.CRS_NAMES)},
            "format": {"enum": ["csv", "geojson"]},
            "total": _COUNT,
            "created": _COUNT,
            "updated": _COUNT,
            "skipped": _COUNT,
            "unassigned": _COUNT,
        },
    },
    description="A bulk import of the sensor registry finished (one event per file).",
)

for _role in ("officer", "supervisor", "analyst", "admin"):
    grant(_role, "sensing:read")
grant("admin", "sensing:write")


# --------------------------------------------------------------------------- checks


def check_type(value: str) -> str:
    if value not in SENSOR_TYPES:
        raise InvalidInput(f"unknown sensor type {value[:40]!r}; expected one of {SENSOR_TYPES}")
    return value


def check_status(value: str) -> str:
    if value not in SENSOR_STATUSES:
        raise InvalidInput(f"unknown status {value[:40]!r}; expected one of {SENSOR_STATUSES}")
    return value


def check_crs(value: str) -> str:
    if value not in geo.CRS_NAMES:
        raise InvalidInput(
            f"unknown coordinate system {value[:40]!r}; expected one of {', '.join(geo.CRS_NAMES)}"
        )
    return value


LABEL_LIMITS = {
    "compound": MAX_LABEL,
    "building": MAX_LABEL,
    "unit": MAX_UNIT,
    "gateway_id": MAX_GATEWAY,
    "device_group": MAX_GROUP,
}


# --------------------------------------------------------------------------- stations


class StationIndex:
    """Station areas in one :class:`~safecity.platform.geo.AreaIndex`, built once (per
    import or per request) and asked for every point."""

    def __init__(self, session: Session) -> None:
        areas = orgs.area_features(session=session, kinds=("station",))["features"]
        self._index = geo.AreaIndex((f["id"], f["geometry"]) for f in areas)

    def __len__(self) -> int:
        return len(self._index)

    def station_for(self, *, lat: float, lng: float) -> str | None:
        if not len(self._index):
            return None
        found: Hashable | None = self._index.find(lat=lat, lng=lng)
        return None if found is None else str(found)


# --------------------------------------------------------------------------- reads


def get(*, session: Session, sensor_id: str) -> Sensor:
    sensor = session.get(Sensor, sensor_id)
    if sensor is None:
        raise NotFound("sensor not found")
    return sensor


def get_visible(*, session: Session, principal: Principal, sensor_id: str) -> Sensor:
    """The sensor, or 404 when it does not exist or lies outside the caller's scope.

    The read is audited (a sensor carries its flat number, ``unit``: personal)."""
    sensor = get(session=session, sensor_id=sensor_id)
    ensure_in_scope(principal, sensor.org_id, what="sensor")
    audit.record(
        session,
        principal=principal,
        action="sensing.sensor.read",
        target_type="sensor",
        target_id=sensor.id,
    )
    return sensor


def list_visible(*, session: Session, principal: Principal, params: ListParams) -> Page[SensorRead]:
    """One page of the sensors in the principal's scope; the read is audited."""
    page = paginate(
        session=session, query=visible_query(principal=principal), params=params, item=SensorRead
    )
    audit.record(
        session,
        principal=principal,
        action="sensing.sensors.list",
        target_type="sensor",
        detail={"count": len(page.items), "offset": params.offset},
    )
    return page


def visible_query(*, principal: Principal | None = None) -> Select[Sensor]:
    """Sensors the principal may see (all of them for ``None``: the CLI, jobs)."""
    query = select(Sensor)
    if principal is not None:
        query = query.where(scope_clause(principal, Sensor.org_id))
    return query


# --------------------------------------------------------------------------- writes


def register(
    *,
    session: Session,
    actor: Principal | None,
    sensor_id: str,
    type: str,
    lng: float,
    lat: float,
    crs: str = "wgs84",
    compound: str | None = None,
    building: str | None = None,
    unit: str | None = None,
    gateway_id: str | None = None,
    device_group: str | None = None,
    status: str = "active",
    installed_at: datetime | None = None,
) -> Sensor:
    """Register one new sensor (409 if the id exists); the point is converted to WGS84
    and assigned to the station whose area contains it."""
    check_type(type)
    check_status(status)
    point = geo.to_wgs84(lng, lat, crs=check_crs(crs))
    if installed_at is not None and installed_at.tzinfo is None:
        raise InvalidInput("installed_at needs a timezone")
    if session.get(Sensor, sensor_id) is not None:
        raise Conflict(f"sensor {sensor_id!r} is already registered")
    labels: dict[str, Any] = {
        "compound": compound,
        "building": building,
        "unit": unit,
        "gateway_id": gateway_id,
        "device_group": device_group,
    }
    for key, value in labels.items():
        if value is not None and len(value) > LABEL_LIMITS[key]:
            raise InvalidInput(f"{key} is longer than {LABEL_LIMITS[key]} characters")
    sensor = Sensor(
        id=sensor_id,
        type=type,
        lat=point.lat,
        lng=point.lng,
        h3_cell=geo.h3_cell(lat=point.lat, lng=point.lng),
        org_id=StationIndex(session).station_for(lat=point.lat, lng=point.lng),
        status=status,
        installed_at=installed_at,
        **labels,
    )
    session.add(sensor)
    session.flush()
    principal = actor if actor is not None else audit.SYSTEM
    audit.record(
        session,
        principal=principal,
        action="sensing.sensor.register",
        target_type="sensor",
        target_id=sensor.id,
        detail={"type": sensor.type, "org_id": sensor.org_id},
    )
    outbox.emit(
        session,
        type=SENSOR_REGISTERED,
        source=SOURCE,
        org_id=sensor.org_id,
        payload={
            "sensor_id": sensor.id,
            "type": sensor.type,
            "org_id": sensor.org_id,
            "h3_cell": sensor.h3_cell,
            "status": sensor.status,
            "gateway_id": sensor.gateway_id,
            "device_group": sensor.device_group,
        },
    )
    return sensor
