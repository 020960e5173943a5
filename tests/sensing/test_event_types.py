"""The sensor event catalogue and the raw-event validator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from safecity.sensing import event_types as et
from safecity.sensing.event_types import (
    CATALOGUE,
    REASONS,
    Rejection,
    ValidatedEvent,
    Validator,
    parse_raw,
    validate_raw,
)

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
T = "2026-11-26T11:00:00+08:00"  # == NOW

REQUIRED_TYPES = {
    "door.opened",
    "door.forced",
    "intrusion.detected",
    "smoke.detected",
    "fire.alarm",
    "ebike.charging_indoor",
    "utility.water_reading",
    "utility.power_reading",
    "throw.detected",
    "pedestrian.red_light",
    "vehicle.noise",
    "tunnel.no_lights",
    "parking.illegal",
    "report.submitted",
    "sensor.heartbeat",
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "door.opened": {"door_id": "b12-u3-main", "method": "card"},
    "door.forced": {"door_id": "b12-u3-main", "held_open_s": 40},
    "intrusion.detected": {"zone_id": "warehouse-2", "detector": "pir", "armed": True},
    "smoke.detected": {"zone_id": "b7-f3-corridor", "obscuration": 4.5, "unit": "%/m"},
    "fire.alarm": {"zone_id": "b7-f3", "source": "manual_call_point"},
    "ebike.charging_indoor": {
        "building_id": "b7",
        "floor": 3,
        "location": "corridor",
        "detection": "power_signature",
        "power": 180.0,
        "unit": "W",
    },
    "utility.water_reading": {
        "meter_id": "w-881",
        "volume": 912.5,
        "unit": "L",
        "interval_s": 3600,
    },
    "utility.power_reading": {"meter_id": "e-881", "power": 2400, "unit": "W", "interval_s": 900},
    "throw.detected": {
        "building_id": "b7",
        "object": "bottle",
        "floor_estimate": 14,
        "confidence": 0.87,
    },
    "pedestrian.red_light": {"intersection_id": "x-101", "crossing_id": "north", "count": 3},
    "vehicle.noise": {"location_id": "m-22", "level": 92.3, "unit": "dB(A)", "plate": "沪A12345"},
    "tunnel.no_lights": {"tunnel_id": "yanan-east", "direction": "westbound"},
    "parking.illegal": {"location_id": "hydrant-5", "duration_s": 600},
    "report.submitted": {
        "report_id": "r-1",
        "source": "merchant_alliance",
        "category": "suspicious_activity",
        "text": "Two people trying door handles along the arcade.",
    },
    "sensor.heartbeat": {"battery_pct": 77, "rssi_dbm": -71},
}


def raw(type_name: str = "door.opened", **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "sensor_id": "dev-1",
        "type": type_name,
        "time": T,
        "seq": 1,
        "payload": dict(EXAMPLES[type_name]),
    }
    event.update(overrides)
    return event


def rejected(result: ValidatedEvent | Rejection, reason: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    assert result.reason in REASONS
    return result


# --- the catalogue ----------------------------------------------------------------------


def test_catalogue_has_every_type_the_issue_lists() -> None:
    assert set(CATALOGUE) >= REQUIRED_TYPES
    assert set(EXAMPLES) == set(CATALOGUE)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_each_schema_is_valid_closed_and_names_its_entity(name: str) -> None:
    spec = CATALOGUE[name]
    jsonschema.Draft7Validator.check_schema(spec.schema)
    assert spec.schema["additionalProperties"] is False
    properties = spec.schema["properties"]
    for f in spec.entity_fields + spec.personal_fields + tuple(spec.units):
        assert f in properties, f"{name}: {f} is not a payload field"
    assert set(spec.entity_fields) <= set(spec.schema["required"])
    if "unit" in properties:  # the unit field is fixed to the measurement's unit
        assert properties["unit"]["const"] in spec.units.values()
    assert spec.description


def test_units_are_the_ones_the_city_uses() -> None:
    assert CATALOGUE["utility.power_reading"].units["power"] == "W"
    assert CATALOGUE["utility.water_reading"].units["volume"] == "L"
    assert CATALOGUE["vehicle.noise"].units["level"] == "dB(A)"


def _all_property_names(schema: dict[str, Any]) -> set[str]:
    names = set(schema.get("properties", {}))
    for sub in schema.get("properties", {}).values():
        if isinstance(sub, dict):
            names |= _all_property_names(sub)
    return names


def test_no_images_of_people_or_biometric_fields() -> None:
    forbidden = ("face", "image", "photo", "biometric", "person", "body", "gait", "iris")
    for spec in CATALOGUE.values():
        for field_name in _all_property_names(spec.schema):
            assert not any(word in field_name for word in forbidden), (spec.name, field_name)
    throw = CATALOGUE["throw.detected"]
    assert {"object", "floor_estimate", "building_id", "confidence"} <= set(
        throw.schema["properties"]
    )
    rejected(
        validate_raw(
            raw("throw.detected", payload={**EXAMPLES["throw.detected"], "face": "x"}), now=NOW
        ),
        "unknown_field",
    )


def test_plates_and_free_text_are_marked_personal() -> None:
    for name in ("vehicle.noise", "tunnel.no_lights", "parking.illegal"):
        assert "plate" in CATALOGUE[name].personal_fields
        assert "plate" not in CATALOGUE[name].schema["required"]  # plate is optional
    assert "text" in CATALOGUE["report.submitted"].personal_fields


# --- valid events -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_each_example_is_accepted(name: str) -> None:
    result = validate_raw(raw(name), now=NOW)
    assert isinstance(result, ValidatedEvent), result
    assert result.type == name
    assert result.time == NOW
    assert result.time.tzinfo is UTC
    assert result.payload == EXAMPLES[name]
    assert result.dedup_key == "dev-1:1"


def test_entity_keys() -> None:
    crossing = validate_raw(raw("pedestrian.red_light"), now=NOW)
    assert isinstance(crossing, ValidatedEvent)
    assert crossing.entity_key == "x-101|north"
    heartbeat = validate_raw(raw("sensor.heartbeat", seq=None), now=NOW)
    assert isinstance(heartbeat, ValidatedEvent)
    assert heartbeat.entity_key == "dev-1"  # no entity fields: the sensor itself
    assert heartbeat.dedup_key is None


def test_optional_fields_may_be_left_out() -> None:
    result = validate_raw(raw("door.opened", payload={"door_id": "d"}), now=NOW)
    assert isinstance(result, ValidatedEvent)
    assert isinstance(validate_raw(raw("sensor.heartbeat", payload={}), now=NOW), ValidatedEvent)
    no_payload = raw("sensor.heartbeat")
    del no_payload["payload"]
    assert isinstance(validate_raw(no_payload, now=NOW), ValidatedEvent)


# --- rejections ---------------------------------------------------------------------------


def test_wrong_units_are_rejected_not_converted() -> None:
    power = raw("utility.power_reading", payload={"meter_id": "e", "power": 2.4, "unit": "kW"})
    result = rejected(validate_raw(power, now=NOW), "wrong_unit")
    assert "'W'" in result.detail
    assert "kW" in result.detail
    water = raw(
        "utility.water_reading", payload={**EXAMPLES["utility.water_reading"], "unit": "m3"}
    )
    rejected(validate_raw(water, now=NOW), "wrong_unit")
    noise = raw("vehicle.noise", payload={**EXAMPLES["vehicle.noise"], "unit": "dB"})
    rejected(validate_raw(noise, now=NOW), "wrong_unit")
    # a measurement without its unit is not accepted either
    no_unit = raw("ebike.charging_indoor", payload={"building_id": "b", "power": 100})
    rejected(validate_raw(no_unit, now=NOW), "invalid_payload")


def test_unknown_type_and_fields() -> None:
    result = rejected(validate_raw(raw(type="door.exploded"), now=NOW), "unknown_type")
    assert "door.exploded" in result.detail
    extra = raw(payload={"door_id": "d", "colour": "red"})
    assert "colour" in rejected(validate_raw(extra, now=NOW), "unknown_field").detail
    envelope_extra = raw(org="x")
    assert "org" in rejected(validate_raw(envelope_extra, now=NOW), "unknown_field").detail


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({}, "door_id"),
        ({"door_id": ""}, "door_id"),
        ({"door_id": 7}, "door_id"),
        ({"door_id": "a/b"}, "door_id"),
        ({"door_id": "d", "method": "teleport"}, "method"),
    ],
)
def test_malformed_payloads_say_where(payload: dict[str, Any], where: str) -> None:
    result = rejected(validate_raw(raw(payload=payload), now=NOW), "invalid_payload")
    assert where in result.detail


def test_numbers_must_be_numbers_and_finite() -> None:
    base = EXAMPLES["utility.power_reading"]
    for bad in (True, "2400", float("nan"), float("inf"), -1):
        event = raw("utility.power_reading", payload={**base, "power": bad})
        rejected(validate_raw(event, now=NOW), "invalid_payload")
    count = raw("pedestrian.red_light", payload={**EXAMPLES["pedestrian.red_light"], "count": 1.5})
    rejected(validate_raw(count, now=NOW), "invalid_payload")


@pytest.mark.parametrize(
    "value",
    [None, 1732590000, "yesterday", "2026-11-26T11:00:00", "2026-13-01T00:00:00Z", "x" * 100],
)
def test_bad_times(value: object) -> None:
    rejected(validate_raw(raw(time=value), now=NOW), "bad_time")


def test_clock_skew_policy() -> None:
    ahead = (NOW + timedelta(minutes=5)).isoformat()
    rejected(validate_raw(raw(time=ahead), now=NOW), "time_in_future")
    slightly = (NOW + timedelta(seconds=30)).isoformat()
    assert isinstance(validate_raw(raw(time=slightly), now=NOW), ValidatedEvent)
    strict = Validator(max_future=timedelta(seconds=5))
    rejected(strict.validate(raw(time=slightly), now=NOW), "time_in_future")
    lenient = Validator(max_future=timedelta(hours=1))
    assert isinstance(lenient.validate(raw(time=ahead), now=NOW), ValidatedEvent)
    # a device whose clock reset to 1970
    rejected(validate_raw(raw(time="1970-01-01T00:00:00Z"), now=NOW), "time_too_old")
    # late but plausible events are accepted (lateness is the rules' business) ...
    late = (NOW - timedelta(hours=6)).isoformat()
    assert isinstance(validate_raw(raw(time=late), now=NOW), ValidatedEvent)
    # ... and any age when max_age is None
    forever = Validator(max_age=None)
    assert isinstance(forever.validate(raw(time="1970-01-01T00:00:00Z"), now=NOW), ValidatedEvent)


def test_validator_clock_is_injectable() -> None:
    validator = Validator(clock=lambda: NOW - timedelta(hours=1))
    rejected(validator.validate(raw()), "time_in_future")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"sensor_id": ""}, "envelope"),
        ({"sensor_id": "a/b"}, "envelope"),
        ({"sensor_id": "#"}, "envelope"),
        ({"sensor_id": 5}, "envelope"),
        ({"type": 5}, "envelope"),
        ({"seq": -1}, "envelope"),
        ({"seq": True}, "envelope"),
        ({"seq": 1.0}, "envelope"),
        ({"seq": 2**64}, "envelope"),
        ({"payload": [1]}, "envelope"),
    ],
)
def test_bad_envelopes(overrides: dict[str, Any], reason: str) -> None:
    rejected(validate_raw(raw(**overrides), now=NOW), reason)


def test_not_an_object() -> None:
    for value in (None, [], "x", 1, 2.5):
        rejected(validate_raw(value, now=NOW), "envelope")


def test_unknown_sensors_when_a_registry_is_given() -> None:
    validator = Validator(known_sensor=lambda sensor_id: sensor_id.startswith("dev-"))
    assert isinstance(validator.validate(raw(), now=NOW), ValidatedEvent)
    result = rejected(validator.validate(raw(sensor_id="ghost-9"), now=NOW), "unknown_sensor")
    assert result.sensor_id == "ghost-9"


# --- decoding -----------------------------------------------------------------------------


def test_parse_raw_decodes_and_fills_from_the_topic() -> None:
    body = {"time": datetime.now(UTC).isoformat(), "payload": {"door_id": "d"}}
    result = parse_raw(json.dumps(body).encode(), sensor_id="dev-2", type_name="door.opened")
    assert isinstance(result, ValidatedEvent)
    assert (result.sensor_id, result.type) == ("dev-2", "door.opened")


def test_parse_raw_rejections() -> None:
    rejected(parse_raw(b"{not json"), "malformed")
    rejected(parse_raw(b"\xff\xfe"), "malformed")
    rejected(parse_raw(b'{"payload": {"level": NaN}}'), "malformed")
    rejected(parse_raw(b"[" * 100_000 + b"]" * 100_000, max_bytes=10**6), "malformed")
    rejected(parse_raw(b" " * 70_000), "too_large")
    body = json.dumps(raw()).encode()
    mismatch = rejected(parse_raw(body, sensor_id="dev-9"), "topic_mismatch")
    assert "dev-9" in mismatch.detail
    rejected(parse_raw(body, type_name="door.forced"), "topic_mismatch")


def test_payload_schemas_are_compiled_once() -> None:
    first = et._compiled()
    assert et._compiled() is first
    assert Validator()._validators is first
