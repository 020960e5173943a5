"""The catalogue of sensor event types and the validator every connector runs.

A device (or a gateway in front of it) sends one *raw event*::

    {"sensor_id": "door-0042", "type": "door.opened", "time": "2026-11-26T03:00:00+08:00",
     "seq": 17, "payload": {"door_id": "b12-unit3-main"}}

``seq`` is optional: a per-sensor counter that makes ``(sensor_id, seq)`` a dedup key.
Every type in :data:`CATALOGUE` has a JSON schema for its payload (no unknown fields), the
unit of its measurement where it has one (the payload carries it in ``unit`` and a wrong
unit is rejected, never converted silently), and the payload fields that identify the
*entity* the event is about (a door, a meter, a crossing), which rules key their state on.

:func:`validate_raw` turns an untrusted object into a :class:`ValidatedEvent` or a
:class:`Rejection` with a short ``reason`` code (bounded: it labels a metric) and a
human-readable ``detail``. It never raises for bad input. Payload schemas are compiled once
(``fastjsonschema`` generates Python code per schema), the envelope is checked by hand:
this runs on the hot path of every connector.

Privacy: events from camera systems carry what a detector saw (an object, a floor, a
confidence), never images of people or biometric fields; ``additionalProperties: false``
keeps it that way. Fields that may identify a person (a plate, free text) are listed in
``personal_fields`` so later stages can redact them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final

import fastjsonschema

__all__ = [
    "CATALOGUE",
    "REASONS",
    "EventTypeSpec",
    "Rejection",
    "ValidatedEvent",
    "Validator",
    "get_spec",
    "parse_raw",
    "validate_raw",
]

JSON_SCHEMA_DRAFT: Final = "http://json-schema.org/draft-07/schema#"

# --- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class EventTypeSpec:
    """One sensor event type: payload schema, units, entity fields."""

    name: str
    description: str
    schema: dict[str, Any]
    units: Mapping[str, str] = field(default_factory=dict)
    """Measurement field → unit; the payload's ``unit`` field must equal it."""
    entity_fields: tuple[str, ...] = ()
    """Payload fields identifying the entity; empty means the sensor itself."""
    personal_fields: tuple[str, ...] = ()
    """Payload fields that may identify a person (redacted in public views)."""

    def entity_key(self, sensor_id: str, payload: Mapping[str, Any]) -> str:
        if not self.entity_fields:
            return sensor_id
        return "|".join(str(payload.get(f, "")) for f in self.entity_fields)


_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[^\s/#+]+$"}
_PLATE = {"type": "string", "minLength": 2, "maxLength": 16, "pattern": r"^[^\s/#+]+$"}
_CONFIDENCE = {"type": "number", "minimum": 0, "maximum": 1}
_FLOOR = {"type": "integer", "minimum": -10, "maximum": 200}


def _obj(
    properties: dict[str, Any],
    required: list[str],
    *,
    dependencies: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DRAFT,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if dependencies:
        schema["dependencies"] = dependencies
    return schema


def _unit(unit: str) -> dict[str, Any]:
    return {"type": "string", "const": unit}


_SPECS: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(
        name="door.opened",
        description="A door of an access-control system was opened.",
        schema=_obj(
            {
                "door_id": _ID,
                "method": {
                    "type": "string",
                    "enum": ["card", "code", "key", "remote", "exit_button", "unknown"],
                },
            },
            ["door_id"],
        ),
        entity_fields=("door_id",),
    ),
    EventTypeSpec(
        name="door.forced",
        description="A door was opened without a valid credential (forced or held open).",
        schema=_obj(
            {"door_id": _ID, "held_open_s": {"type": "integer", "minimum": 0}},
            ["door_id"],
        ),
        units={"held_open_s": "s"},
        entity_fields=("door_id",),
    ),
    EventTypeSpec(
        name="intrusion.detected",
        description="An intrusion detector (PIR, beam, glass break, fence) triggered.",
        schema=_obj(
            {
                "zone_id": _ID,
                "detector": {
                    "type": "string",
                    "enum": ["pir", "beam", "glass_break", "fence", "camera", "other"],
                },
                "armed": {"type": "boolean"},
            },
            ["zone_id"],
        ),
        entity_fields=("zone_id",),
    ),
    EventTypeSpec(
        name="smoke.detected",
        description="A smoke detector alarmed; obscuration in %/m when the detector reports it.",
        schema=_obj(
            {
                "zone_id": _ID,
                "obscuration": {"type": "number", "minimum": 0, "maximum": 100},
                "unit": _unit("%/m"),
            },
            ["zone_id"],
            dependencies={"obscuration": ["unit"]},
        ),
        units={"obscuration": "%/m"},
        entity_fields=("zone_id",),
    ),
    EventTypeSpec(
        name="fire.alarm",
        description="A fire alarm panel raised an alarm.",
        schema=_obj(
            {
                "zone_id": _ID,
                "source": {
                    "type": "string",
                    "enum": ["detector", "manual_call_point", "sprinkler_flow", "panel", "other"],
                },
            },
            ["zone_id"],
        ),
        entity_fields=("zone_id",),
    ),
    EventTypeSpec(
        name="ebike.charging_indoor",
        description="An e-bike battery is charging inside a building (corridor, stairwell, flat).",
        schema=_obj(
            {
                "building_id": _ID,
                "floor": _FLOOR,
                "location": {
                    "type": "string",
                    "enum": ["corridor", "stairwell", "flat", "lift", "lobby", "other"],
                },
                "detection": {
                    "type": "string",
                    "enum": ["camera", "power_signature", "smoke_sensor", "manual"],
                },
                "power": {"type": "number", "minimum": 0, "maximum": 20000},
                "unit": _unit("W"),
            },
            ["building_id"],
            dependencies={"power": ["unit"]},
        ),
        units={"power": "W"},
        entity_fields=("building_id",),
    ),
    EventTypeSpec(
        name="utility.water_reading",
        description="Water consumed by one meter during interval_s seconds ending at time.",
        schema=_obj(
            {
                "meter_id": _ID,
                "volume": {"type": "number", "minimum": 0, "maximum": 1e7},
                "unit": _unit("L"),
                "interval_s": {"type": "integer", "minimum": 1, "maximum": 31 * 86400},
            },
            ["meter_id", "volume", "unit", "interval_s"],
        ),
        units={"volume": "L", "interval_s": "s"},
        entity_fields=("meter_id",),
    ),
    EventTypeSpec(
        name="utility.power_reading",
        description="Electric power drawn by one meter (average over interval_s when given).",
        schema=_obj(
            {
                "meter_id": _ID,
                "power": {"type": "number", "minimum": 0, "maximum": 1e7},
                "unit": _unit("W"),
                "interval_s": {"type": "integer", "minimum": 1, "maximum": 31 * 86400},
            },
            ["meter_id", "power", "unit"],
        ),
        units={"power": "W", "interval_s": "s"},
        entity_fields=("meter_id",),
    ),
    EventTypeSpec(
        name="throw.detected",
        description=(
            "An object thrown from height, from a camera system's detector: what fell, the "
            "estimated floor it came from, the building, the detector's confidence. No images "
            "of people, no biometric fields."
        ),
        schema=_obj(
            {
                "building_id": _ID,
                "object": {"type": "string", "minLength": 1, "maxLength": 64},
                "floor_estimate": _FLOOR,
                "confidence": _CONFIDENCE,
                "clip_ref": {"type": "string", "minLength": 1, "maxLength": 256},
            },
            ["building_id", "object", "confidence"],
        ),
        entity_fields=("building_id",),
    ),
    EventTypeSpec(
        name="pedestrian.red_light",
        description="Pedestrians crossed against a red light at one crossing of an intersection.",
        schema=_obj(
            {
                "intersection_id": _ID,
                "crossing_id": _ID,
                "count": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            ["intersection_id", "crossing_id", "count"],
        ),
        entity_fields=("intersection_id", "crossing_id"),
    ),
    EventTypeSpec(
        name="vehicle.noise",
        description="A vehicle exceeded the noise limit at a monitoring point, level in dB(A).",
        schema=_obj(
            {
                "location_id": _ID,
                "level": {"type": "number", "minimum": 0, "maximum": 200},
                "unit": _unit("dB(A)"),
                "plate": _PLATE,
            },
            ["location_id", "level", "unit"],
        ),
        units={"level": "dB(A)"},
        entity_fields=("location_id",),
        personal_fields=("plate",),
    ),
    EventTypeSpec(
        name="tunnel.no_lights",
        description="A vehicle drove through a tunnel without its lights on.",
        schema=_obj(
            {
                "tunnel_id": _ID,
                "direction": {"type": "string", "minLength": 1, "maxLength": 32},
                "plate": _PLATE,
            },
            ["tunnel_id"],
        ),
        entity_fields=("tunnel_id",),
        personal_fields=("plate",),
    ),
    EventTypeSpec(
        name="parking.illegal",
        description="A vehicle is parked where it may not be (duration in seconds when known).",
        schema=_obj(
            {
                "location_id": _ID,
                "duration_s": {"type": "integer", "minimum": 0, "maximum": 31 * 86400},
                "plate": _PLATE,
            },
            ["location_id"],
        ),
        units={"duration_s": "s"},
        entity_fields=("location_id",),
        personal_fields=("plate",),
    ),
    EventTypeSpec(
        name="report.submitted",
        description="A report from the merchant alliance or a watch room: category and text.",
        schema=_obj(
            {
                "report_id": _ID,
                "source": {"type": "string", "enum": ["merchant_alliance", "watch_room"]},
                "category": {
                    "type": "string",
                    "enum": [
                        "suspicious_activity",
                        "theft",
                        "fraud",
                        "dispute",
                        "fire_hazard",
                        "noise",
                        "public_order",
                        "other",
                    ],
                },
                "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                "reporter_ref": _ID,
            },
            ["report_id", "source", "category", "text"],
        ),
        entity_fields=("report_id",),
        personal_fields=("text", "reporter_ref"),
    ),
    EventTypeSpec(
        name="sensor.heartbeat",
        description="The sensor is alive; battery in %, signal strength in dBm when known.",
        schema=_obj(
            {
                "battery_pct": {"type": "number", "minimum": 0, "maximum": 100},
                "rssi_dbm": {"type": "number", "minimum": -200, "maximum": 0},
                "firmware": {"type": "string", "minLength": 1, "maxLength": 64},
            },
            [],
        ),
        units={"battery_pct": "%", "rssi_dbm": "dBm"},
    ),
)

CATALOGUE: Final[Mapping[str, EventTypeSpec]] = {spec.name: spec for spec in _SPECS}
"""Every sensor event type by name."""


def get_spec(name: str) -> EventTypeSpec | None:
    return CATALOGUE.get(name)


# --- results -------------------------------------------------------------------------------

REASONS: Final = (
    "malformed",
    "too_large",
    "envelope",
    "unknown_type",
    "unknown_field",
    "wrong_unit",
    "invalid_payload",
    "bad_time",
    "time_in_future",
    "time_too_old",
    "topic_mismatch",
    "unknown_sensor",
    "wrong_group",
)
"""Every rejection reason code (a bounded set: it labels the dead-letter metric)."""


@dataclass(frozen=True, slots=True)
class ValidatedEvent:
    sensor_id: str
    type: str
    time: datetime
    """Event time, tz-aware UTC."""
    payload: dict[str, Any]
    seq: int | None
    entity_key: str

    @property
    def dedup_key(self) -> str | None:
        """``sensor_id:seq`` when the sensor numbers its events, else ``None``."""
        return None if self.seq is None else f"{self.sensor_id}:{self.seq}"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    """One of :data:`REASONS`."""
    detail: str
    sensor_id: str | None = None
    type: str | None = None


# --- the validator -------------------------------------------------------------------------

_SENSOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_ENVELOPE_KEYS = frozenset({"sensor_id", "type", "time", "payload", "seq"})
_MAX_TIME_LEN = 40
_MAX_SEQ = 2**63 - 1
DEFAULT_MAX_BYTES: Final = 64 * 1024


@cache
def _compiled() -> dict[str, Callable[[Any], Any]]:
    """Each payload schema compiled to a Python function, once per process."""
    return {
        name: fastjsonschema.compile(spec.schema, use_default=False)
        for name, spec in CATALOGUE.items()
    }


def _clip(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nonfinite(v) for v in value)
    return False


class Validator:
    """Validates raw events; configured once per connector.

    ``max_future``: events whose time is later than now + this are rejected (a device
    clock running ahead would otherwise open windows in the future). ``max_age``: events
    older than now - this are rejected (a device whose clock reset to 1970); ``None``
    accepts any age and leaves lateness to the rules. ``known_sensor``: when given, events
    from sensor ids it answers ``False`` for are rejected as ``unknown_sensor``.
    """

    def __init__(
        self,
        *,
        max_future: timedelta = timedelta(seconds=120),
        max_age: timedelta | None = timedelta(days=30),
        known_sensor: Callable[[str], bool] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.max_future = max_future
        self.max_age = max_age
        self.known_sensor = known_sensor
        self._clock = clock or (lambda: datetime.now(UTC))
        self._validators = _compiled()

    def validate(self, obj: object, *, now: datetime | None = None) -> ValidatedEvent | Rejection:
        """Check one raw event (already JSON-decoded). Never raises for bad input."""
        if not isinstance(obj, dict):
            return Rejection("envelope", f"event must be a JSON object, got {type(obj).__name__}")
        extra = obj.keys() - _ENVELOPE_KEYS
        if extra:
            names = ", ".join(sorted(_clip(k, 40) for k in extra))
            return Rejection("unknown_field", f"unknown envelope field(s): {names}")
        sensor_id = obj.get("sensor_id")
        if not isinstance(sensor_id, str) or not _SENSOR_ID.match(sensor_id):
            return Rejection("envelope", f"sensor_id must be an id string, got {_clip(sensor_id)}")
        type_name = obj.get("type")
        if not isinstance(type_name, str):
            return Rejection("envelope", "type must be a string", sensor_id)
        validate_payload = self._validators.get(type_name)
        if validate_payload is None:
            return Rejection("unknown_type", f"unknown event type {_clip(type_name)}", sensor_id)
        seq = obj.get("seq")
        if seq is not None and (
            not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= _MAX_SEQ
        ):
            return Rejection(
                "envelope", f"seq must be an integer >= 0, got {_clip(seq)}", sensor_id, type_name
            )
        time_or_rejection = self._check_time(obj.get("time"), now, sensor_id, type_name)
        if isinstance(time_or_rejection, Rejection):
            return time_or_rejection
        payload = obj.get("payload", {})
        if not isinstance(payload, dict):
            return Rejection("envelope", "payload must be a JSON object", sensor_id, type_name)
        try:
            validate_payload(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _payload_rejection(exc, sensor_id, type_name)
        if _has_nonfinite(payload):
            return Rejection(
                "invalid_payload", "numbers must be finite (no NaN/Infinity)", sensor_id, type_name
            )
        if self.known_sensor is not None and not self.known_sensor(sensor_id):
            return Rejection(
                "unknown_sensor", f"sensor {sensor_id} is not registered", sensor_id, type_name
            )
        spec = CATALOGUE[type_name]
        return ValidatedEvent(
            sensor_id=sensor_id,
            type=type_name,
            time=time_or_rejection,
            payload=payload,
            seq=seq,
            entity_key=spec.entity_key(sensor_id, payload),
        )

    def _check_time(
        self, value: object, now: datetime | None, sensor_id: str, type_name: str
    ) -> datetime | Rejection:
        if not isinstance(value, str) or len(value) > _MAX_TIME_LEN:
            return Rejection(
                "bad_time", "time must be an RFC 3339 timestamp string", sensor_id, type_name
            )
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return Rejection(
                "bad_time", f"time {_clip(value)} is not RFC 3339", sensor_id, type_name
            )
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            return Rejection(
                "bad_time", f"time {_clip(value)} has no UTC offset", sensor_id, type_name
            )
        try:
            when = parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            return Rejection(
                "bad_time", f"time {_clip(value)} is out of range", sensor_id, type_name
            )
        current = now or self._clock()
        if when - current > self.max_future:
            return Rejection(
                "time_in_future",
                f"time {value} is more than {self.max_future} ahead of the server clock",
                sensor_id,
                type_name,
            )
        if self.max_age is not None and current - when > self.max_age:
            return Rejection(
                "time_too_old",
                f"time {value} is more than {self.max_age} in the past",
                sensor_id,
                type_name,
            )
        return when


def _payload_rejection(
    exc: fastjsonschema.JsonSchemaValueException, sensor_id: str, type_name: str
) -> Rejection:
    where = (exc.name or "data").removeprefix("data").lstrip(".")
    message = exc.message
    if message.startswith("data"):
        message = "payload" + message.removeprefix("data")
    if exc.rule == "additionalProperties":
        return Rejection("unknown_field", message, sensor_id, type_name)
    if exc.rule == "const" and where == "unit":
        expected = CATALOGUE[type_name].schema["properties"]["unit"]["const"]
        return Rejection(
            "wrong_unit",
            f"unit must be {expected!r}, got {_clip(exc.value)}",
            sensor_id,
            type_name,
        )
    return Rejection("invalid_payload", message, sensor_id, type_name)


_DEFAULT = Validator()


def validate_raw(obj: object, *, now: datetime | None = None) -> ValidatedEvent | Rejection:
    """Validate one decoded raw event with the default policy (see :class:`Validator`)."""
    return _DEFAULT.validate(obj, now=now)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_raw(
    data: bytes,
    *,
    validator: Validator | None = None,
    sensor_id: str | None = None,
    type_name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ValidatedEvent | Rejection:
    """Decode a message body and validate it.

    ``sensor_id`` / ``type_name`` come from the transport (an MQTT topic): they fill the
    envelope when the body omits them and must agree with it when it does not.
    """
    if len(data) > max_bytes:
        return Rejection("too_large", f"message is {len(data)} bytes, limit {max_bytes}")
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return Rejection("malformed", f"not JSON: {_clip(str(exc), 120)}", sensor_id, type_name)
    if isinstance(obj, dict):
        for key, expected in (("sensor_id", sensor_id), ("type", type_name)):
            if expected is None:
                continue
            found = obj.setdefault(key, expected)
            if found != expected:
                return Rejection(
                    "topic_mismatch",
                    f"{key} {_clip(found)} in the body differs from {expected!r} in the topic",
                    sensor_id,
                    type_name,
                )
    return (validator or _DEFAULT).validate(obj)
