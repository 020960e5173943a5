"""Sensor registry routes: thin wrappers over :mod:`safecity.sensing.service`.

Reads need ``sensing:read`` (officer, supervisor, analyst, admin) and see the sensors of
the stations in the caller's scope (a sensor outside it answers 404); registration and
imports need ``sensing:write`` (admin).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from safecity.platform.errors import PayloadTooLarge
from safecity.platform.pagination import ListParams, ListSpec, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require
from safecity.sensing import registry_import, service
from safecity.sensing.models import Sensor
from safecity.sensing.schemas import Crs, ImportProblem, ImportReport, SensorCreate, SensorRead

router = APIRouter(prefix="/api/sensors", tags=["sensing"])

Reader = Annotated[Principal, Depends(require("sensing:read"))]
Writer = Annotated[Principal, Depends(require("sensing:write"))]

MAX_UPLOAD_BYTES = 1 << 30

SENSOR_LIST = ListSpec(
    sort={
        "id": Sensor.id,
        "type": Sensor.type,
        "status": Sensor.status,
        "installed_at": Sensor.installed_at,
        "last_seen_at": Sensor.last_seen_at,
        "updated_at": Sensor.updated_at,
    },
    filters={
        "type": Sensor.type,
        "status": Sensor.status,
        "org_id": Sensor.org_id,
        "gateway_id": Sensor.gateway_id,
        "device_group": Sensor.device_group,
        "h3_cell": Sensor.h3_cell,
    },
    default_sort="id",
    max_limit=1000,
)


@router.get("", response_model=Page[SensorRead], summary="List the sensors in the caller's scope")
def list_sensors(
    session: DbSession,
    principal: Reader,
    params: Annotated[ListParams, Depends(SENSOR_LIST.params)],
) -> Page[SensorRead]:
    return service.list_visible(session=session, principal=principal, params=params)


@router.get("/{sensor_id}", response_model=SensorRead, summary="One sensor")
def get_sensor(session: DbSession, principal: Reader, sensor_id: str) -> SensorRead:
    sensor = service.get_visible(session=session, principal=principal, sensor_id=sensor_id)
    return SensorRead.model_validate(sensor, from_attributes=True)


@router.post("", response_model=SensorRead, status_code=201, summary="Register one sensor")
def register_sensor(session: DbSession, principal: Writer, body: SensorCreate) -> SensorRead:
    sensor = service.register(
        session=session,
        actor=principal,
        sensor_id=body.id,
        type=body.type,
        lng=body.lng,
        lat=body.lat,
        crs=body.crs,
        compound=body.compound,
        building=body.building,
        unit=body.unit,
        gateway_id=body.gateway_id,
        device_group=body.device_group,
        status=body.status,
        installed_at=body.installed_at,
    )
    return SensorRead.model_validate(sensor, from_attributes=True)


@router.post(
    "/import",
    response_model=ImportReport,
    summary="Import sensors from a CSV or GeoJSON file (all or nothing unless skip_invalid)",
)
def import_sensors(
    session: DbSession,
    principal: Writer,
    file: Annotated[UploadFile, File(description="A .csv or .geojson file")],
    crs: Annotated[Crs, Form(description="Coordinate system of the file's points")],
    format: Annotated[str | None, Form(pattern="^(csv|geojson)$")] = None,
    skip_invalid: Annotated[bool, Form()] = False,
) -> ImportReport:
    if file.size is not None and file.size > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"import files are limited to {MAX_UPLOAD_BYTES} bytes")
    result = registry_import.import_sensors(
        session=session,
        source=file.file,
        filename=file.filename or "upload.csv",
        crs=crs,
        fmt=format,
        skip_invalid=skip_invalid,
        actor=principal,
    )
    return ImportReport(
        filename=result.filename,
        crs=crs,
        format=result.format,
        total=result.total,
        created=result.created,
        updated=result.updated,
        skipped=result.skipped,
        unassigned=result.unassigned,
        seconds=result.seconds,
        problems=[ImportProblem(where=p.where, message=p.message) for p in result.problems[:100]],
    )
