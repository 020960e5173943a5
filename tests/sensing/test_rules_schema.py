"""The rule file format: validation with clear errors, round trip, the shipped rules."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safecity.platform.errors import InvalidInput
from safecity.sensing.rules import RuleSet
from safecity.sensing.rules_schema import (
    KINDS,
    dump_rule_file,
    parse_duration,
    parse_rule_text,
    validate_rule_data,
)
from tests.sensing.rule_helpers import rule


def _file(*rules: dict[str, Any]) -> str:
    return yaml.safe_dump({"version": 1, "rules": list(rules)})


def _error(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_rule_text(text, source="r.yaml")
    return info.value.detail


def test_shipped_rules_cover_every_kind() -> None:
    rs = RuleSet.shipped()
    assert len(rs) >= 15
    assert set(rs.kinds()) == set(KINDS)
    ids = {r.id for r in rs.rules}
    assert {"ebike-battery-theft", "group-rental-water", "repeated-intrusion"} <= ids


def test_error_names_rule_and_field() -> None:
    bad = rule("repeat", "count", event="intrusion.detected", count=3, within="-5m")
    msg = _error(
        _file(
            rule(
                "ok",
                "threshold",
                event="smoke.detected",
                threshold={"field": "payload.obscuration", "op": ">=", "value": 10},
            ),
            bad,
        )
    )
    assert msg.startswith("r.yaml: rules[1] 'repeat': within:")
    assert "duration" in msg


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"kind": "window"}, "kind"),
        ({"severity": "urgent"}, "severity"),
        ({"key": ["building"]}, "unknown field 'building'"),
        ({"key": ["h3@16"]}, "h3@R"),
        ({"threshold": {"field": "payload.x", "op": "~", "value": 1}}, "unknown op"),
        ({"threshold": {"field": "payload.x", "op": "in", "value": 3}}, "non-empty list"),
        ({"alert": {"title": "t", "category": "c", "dedup": "{rule}:{flat}"}}, "{flat}"),
        ({"event": "Smoke"}, "event"),
        ({"lateness": "soon"}, "lateness: duration"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_rule_rejected(change: dict[str, Any], needle: str) -> None:
    r = rule(
        "r1",
        "threshold",
        event="smoke.detected",
        threshold={"field": "payload.x", "op": ">", "value": 1},
    )
    r.update(change)
    msg = _error(_file(r))
    assert "rules[0] 'r1'" in msg
    assert needle in msg


def test_time_of_day_needs_quoted_time() -> None:
    msg = _error(
        "version: 1\nrules:\n- id: n\n  kind: time_of_day\n  event: vehicle.noise\n"
        "  time_of_day: {start: 22:00, end: '06:00'}\n"
        "  alert: {title: t, category: c}\n"
    )
    assert "time_of_day.start" in msg
    assert "quoted" in msg


def test_bad_geofence_and_timezone() -> None:
    g = rule("g", "geofence", event="parking.illegal", geofence={"cells": ["nope"]})
    assert "not H3 cells" in _error(_file(g))
    g = rule("g", "geofence", event="parking.illegal", geofence={"polygon": [[0, 0], [1, 1]]})
    assert "at least 3 points" in _error(_file(g))
    t = rule(
        "t",
        "time_of_day",
        event="vehicle.noise",
        time_of_day={"start": "22:00", "end": "06:00", "tz": "Mars/Olympus"},
    )
    assert "unknown time zone" in _error(_file(t))


def test_file_level_errors() -> None:
    assert "unsupported rule file version" in _error("version: 2\nrules: []\n")
    assert "YAML error at line" in _error("version: 1\nrules: [\n")
    assert "mapping" in _error("- just a list\n")
    dup = rule(
        "d",
        "threshold",
        event="smoke.detected",
        threshold={"field": "payload.x", "op": ">", "value": 1},
    )
    assert "duplicate rule id 'd'" in _error(_file(dup, dup))


def test_one_bad_rule_rejects_the_whole_file() -> None:
    good = rule(
        "good",
        "threshold",
        event="smoke.detected",
        threshold={"field": "payload.x", "op": ">", "value": 1},
    )
    bad = rule("bad", "absence", first={"event": "a.b"}, then={"event": "a.c"})  # no within
    with pytest.raises(InvalidInput, match="'bad': within"):
        parse_rule_text(_file(good, bad))


def test_parse_duration() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration(5) == 5
    for bad in ("", "5 parsecs", True, None, "-1s", "400d"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_shipped_file_round_trip() -> None:
    rs = RuleSet.shipped()
    for f in rs.files:
        again = parse_rule_text(dump_rule_file(f))
        assert again == f


# --- property tests ------------------------------------------------------------------------

_types = st.sampled_from(["smoke.detected", "intrusion.detected", "vehicle.noise"])
_fields = st.sampled_from(["payload.level", "payload.zone_id", "sensor_id", "h3", "org_id"])
_cond = st.fixed_dictionaries(
    {
        "field": _fields,
        "op": st.sampled_from([">", ">=", "<", "==", "!="]),
        "value": st.one_of(st.integers(-1000, 1000), st.text("abc", min_size=1, max_size=5)),
    }
)
_alert = st.fixed_dictionaries(
    {
        "title": st.text("abcdefgh._", min_size=1, max_size=20),
        "category": st.sampled_from(["fire", "theft", "traffic"]),
    }
)
_common = {
    "id": st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    "alert": _alert,
    "severity": st.sampled_from(["low", "high", "critical"]),
    "key": st.lists(_fields, min_size=1, max_size=2),
}
_dur = st.sampled_from(["30s", "5m", "2h", "1d", 90])
_step = st.fixed_dictionaries({"event": _types, "where": st.lists(_cond, max_size=2)})
_rules = st.one_of(
    st.fixed_dictionaries(
        {**_common, "kind": st.just("threshold"), "event": _types, "threshold": _cond}
    ),
    st.fixed_dictionaries(
        {
            **_common,
            "kind": st.just("count"),
            "event": _types,
            "count": st.integers(2, 50),
            "within": _dur,
            "where": st.lists(_cond, max_size=2),
        }
    ),
    st.fixed_dictionaries(
        {
            **_common,
            "kind": st.sampled_from(["sequence", "absence"]),
            "first": _step,
            "then": _step,
            "within": _dur,
            "lateness": _dur,
        }
    ),
    st.fixed_dictionaries(
        {
            **_common,
            "kind": st.just("time_of_day"),
            "event": _types,
            "time_of_day": st.fixed_dictionaries(
                {"start": st.sampled_from(["22:00", "08:30"]), "end": st.just("06:00")}
            ),
        }
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_rules, min_size=1, max_size=4, unique_by=lambda r: r["id"]))
def test_generated_rule_files_round_trip(rules: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump({"version": 1, "rules": rules})
    parsed = parse_rule_text(text)
    assert len(parsed.rules) == len(rules)
    assert parse_rule_text(dump_rule_file(parsed)) == parsed
    RuleSet([parsed])  # compiles


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        _json,
        st.builds(lambda rs: {"version": 1, "rules": rs}, st.lists(_json, max_size=3)),
        st.builds(
            lambda r, k, v: {"version": 1, "rules": [{**r, k: v}]},
            _rules,
            st.sampled_from(["within", "count", "key", "event", "first", "geofence", "alert"]),
            _json,
        ),
    )
)
def test_invalid_data_raises_invalid_input_never_crashes(data: Any) -> None:
    detail = None
    try:
        parsed = validate_rule_data(data)
    except InvalidInput as exc:
        detail = exc.detail
    else:
        RuleSet([parsed])
    if detail is not None:
        assert detail.startswith("<rules>: ")
        assert "\n" not in detail


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_invalid_input(text: str) -> None:
    detail = ""
    try:
        parse_rule_text(text)
    except InvalidInput as exc:
        detail = exc.detail
    assert "\n" not in detail
