"""Property tests: random input never crashes the validator; valid payloads always pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.sensing.event_types import (
    CATALOGUE,
    REASONS,
    Rejection,
    ValidatedEvent,
    parse_raw,
    validate_raw,
)

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def _check(result: ValidatedEvent | Rejection) -> None:
    assert isinstance(result, ValidatedEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in REASONS
        assert result.detail


@given(json_values)
def test_random_json_never_crashes(value: Any) -> None:
    _check(validate_raw(value, now=NOW))


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "sensor_id": st.text(max_size=10) | json_values,
            "type": st.sampled_from(sorted(CATALOGUE)) | json_values,
            "time": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
            | json_values,
            "seq": st.integers() | json_values,
            "payload": json_values,
        },
    )
)
def test_random_envelopes_never_crash(value: dict[str, Any]) -> None:
    _check(validate_raw(value, now=NOW))


@given(st.sampled_from(sorted(CATALOGUE)), st.dictionaries(st.text(max_size=12), json_values))
def test_random_payloads_for_each_type_never_crash(type_name: str, payload: dict[str, Any]) -> None:
    event = {"sensor_id": "dev-1", "type": type_name, "time": NOW.isoformat(), "payload": payload}
    _check(validate_raw(event, now=NOW))


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    _check(parse_raw(data, sensor_id="dev-1", type_name="door.opened"))


# --- a strategy for valid payloads, derived from each type's own schema ---------------------


def _strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 50)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: lo <= len(s) <= hi
            )
        return st.text(min_size=lo, max_size=hi)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.integers(schema.get("minimum"), schema.get("maximum")) | st.floats(
            schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
        )
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"no strategy for {schema}")


@st.composite
def valid_payloads(draw: st.DrawFn, type_name: str) -> dict[str, Any]:
    schema = CATALOGUE[type_name].schema
    required = set(schema["required"])
    chosen = {name for name in schema["properties"] if name in required or draw(st.booleans())}
    for name, needs in schema.get("dependencies", {}).items():
        if name in chosen:
            chosen |= set(needs)
    return {name: draw(_strategy(schema["properties"][name])) for name in sorted(chosen)}


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    type_name = draw(st.sampled_from(sorted(CATALOGUE)))
    skew = draw(st.integers(-86400, 60))
    offset = draw(st.integers(-12 * 60, 14 * 60))
    when = (NOW + timedelta(seconds=skew)).astimezone(timezone(timedelta(minutes=offset)))
    event = {
        "sensor_id": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,40}", fullmatch=True)),
        "type": type_name,
        "time": when.isoformat(),
        "payload": draw(valid_payloads(type_name)),
    }
    if draw(st.booleans()):
        event["seq"] = draw(st.integers(0, 2**63 - 1))
    return event


@settings(max_examples=300)
@given(valid_events())
def test_every_valid_event_passes(event: dict[str, Any]) -> None:
    result = validate_raw(event, now=NOW)
    assert isinstance(result, ValidatedEvent), (result, event)
    assert result.payload == event["payload"]
    # and it survives the wire: encoded as JSON and decoded by parse_raw
    decoded = parse_raw(
        json.dumps(event).encode(), sensor_id=event["sensor_id"], type_name=event["type"]
    )
    assert isinstance(decoded, ValidatedEvent | Rejection)
    if isinstance(decoded, Rejection):  # only the real clock may differ from NOW
        assert decoded.reason in {"time_too_old", "time_in_future"}, decoded
