"""The rule engine: each kind, event time and lateness, dedup, state export, reload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.sensing.rules import Match, RuleEngine, RuleSet, partition_of
from tests.sensing.rule_helpers import T0, ev, rule, ruleset

COUNT = rule(
    "intrusions",
    "count",
    event="intrusion.detected",
    count=3,
    within="10m",
    key=["payload.zone_id"],
)
SEQ = rule(
    "theft",
    "sequence",
    first={"event": "door.opened"},
    then={
        "event": "utility.power_reading",
        "where": [{"field": "payload.power", "op": "<", "value": 30}],
    },
    within="5m",
    key=["h3@9"],
)
ABSENCE = rule(
    "silent",
    "absence",
    first={"event": "sensor.heartbeat"},
    then={"event": "sensor.heartbeat"},
    within="10m",
    lateness="1m",
)


def ids(matches: list[Match]) -> list[tuple[str, str]]:
    return [(m.rule_id, m.event_ids[-1]) for m in matches]


def run(engine: RuleEngine, events: list[dict[str, Any]]) -> list[Match]:
    out: list[Match] = []
    for e in events:
        out.extend(engine.process(e))
    return out


# --- kinds ---------------------------------------------------------------------------------


def test_threshold() -> None:
    eng = RuleEngine(
        ruleset(
            rule(
                "smoke",
                "threshold",
                event="smoke.detected",
                severity="critical",
                threshold={"field": "payload.obscuration", "op": ">=", "value": 10},
                key=["payload.zone_id"],
                alert={
                    "title": "alerts.smoke",
                    "category": "fire",
                    "dedup": "{rule}/{org_id}/{key}",
                },
            )
        )
    )
    assert eng.process(ev("smoke.detected", 0, obscuration=3, zone_id="z1")) == []
    assert eng.process(ev("smoke.detected", 1, obscuration="dense", zone_id="z1")) == []
    assert eng.process(ev("smoke.detected", 2, obscuration=12)) == []  # no key: no match
    [m] = eng.process(ev("smoke.detected", 3, id="x", obscuration=12, zone_id="z1"))
    assert (m.rule_id, m.key, m.severity, m.category) == ("smoke", "z1", "critical", "fire")
    assert m.dedup_key == "smoke/org1/z1"
    assert m.event_ids == ("x",)
    assert m.time == T0 + timedelta(seconds=3)
    assert eng.stats()["rules"]["smoke"]["no_key"] == 1
    assert json.loads(json.dumps(m.to_dict()))["lat"] == 31.2304


def test_count_sliding_window_per_key() -> None:
    eng = RuleEngine(ruleset(COUNT))
    z1 = [ev("intrusion.detected", t, zone_id="z1") for t in (0, 200, 400, 1200)]
    z2 = [ev("intrusion.detected", t, zone_id="z2") for t in (10, 20)]
    out = run(eng, [z1[0], z2[0], z1[1], z2[1], z1[2], z1[3]])
    assert [(m.key, m.count, m.event_ids) for m in out] == [
        ("z1", 3, (z1[0]["id"], z1[1]["id"], z1[2]["id"]))
    ]
    # the fourth, 1200 s later, has only itself and the third within 10 minutes
    assert eng.stats()["rules"]["intrusions"]["matches"] == 1


def test_sequence_a_then_b_within() -> None:
    eng = RuleEngine(ruleset(SEQ))
    door = ev("door.opened", 0, door_id="cabinet-1")
    far = ev("utility.power_reading", 400, meter_id="m", power=5)
    high = ev("utility.power_reading", 100, meter_id="m", power=300)
    drop = ev("utility.power_reading", 120, meter_id="m", power=5)
    elsewhere = ev("utility.power_reading", 130, meter_id="m", power=5, lat=31.30, lng=121.50)
    assert run(eng, [door, high, elsewhere]) == []
    [m] = eng.process(drop)
    assert m.event_ids == (door["id"], drop["id"])
    assert m.key == h3.latlng_to_cell(31.2304, 121.4737, 9)
    assert eng.process(far) == []  # 400 s after the door: outside 5 minutes


def test_sequence_b_before_a_does_not_match() -> None:
    eng = RuleEngine(ruleset(SEQ))
    out = run(eng, [ev("utility.power_reading", 0, power=5), ev("door.opened", 10)])
    assert out == []


def test_absence_fires_on_watermark_and_is_cancelled_by_b() -> None:
    eng = RuleEngine(ruleset(ABSENCE))
    assert (
        run(
            eng,
            [
                ev("sensor.heartbeat", 0, sensor_id="a", id="a0"),
                ev("sensor.heartbeat", 0, sensor_id="b", id="b0"),
                ev("sensor.heartbeat", 300, sensor_id="b", id="b1"),
            ],
        )
        == []
    )
    # deadline a0: 600 s; fires once the watermark passes 600 + 60 s lateness
    assert eng.advance(T0 + timedelta(seconds=650)) == []
    [m] = eng.advance(T0 + timedelta(seconds=661))
    assert (m.rule_id, m.key, m.event_ids) == ("silent", "a", ("a0",))
    assert m.time == T0 + timedelta(seconds=600)
    # b1's own deadline (900 + 60) fires through an event pushing the watermark
    out = eng.process(ev("sensor.heartbeat", 1000, sensor_id="c"))
    assert [(m.key, m.event_ids) for m in out] == [("b", ("b1",))]
    assert eng.advance(T0 + timedelta(seconds=661)) == []  # never fires twice


def test_absence_late_b_within_lateness_cancels() -> None:
    eng = RuleEngine(ruleset(ABSENCE))
    eng.process(ev("sensor.heartbeat", 0, sensor_id="a"))
    eng.process(ev("sensor.heartbeat", 640, sensor_id="z"))  # watermark 640
    eng.process(ev("sensor.heartbeat", 590, sensor_id="a"))  # late by 50 s < 60 s
    fired = eng.advance(T0 + timedelta(seconds=700))
    assert [m.key for m in fired] == []


def test_geofence_polygon_and_cells() -> None:
    poly = [[121.47, 31.229], [121.476, 31.229], [121.476, 31.232], [121.47, 31.232]]
    cell = h3.latlng_to_cell(31.2304, 121.4737, 8)
    eng = RuleEngine(
        ruleset(
            rule("lane", "geofence", event="parking.illegal", geofence={"polygon": poly}),
            rule(
                "outside",
                "geofence",
                event="parking.illegal",
                geofence={"inside": False, "cells": [cell]},
            ),
        )
    )
    [m] = eng.process(ev("parking.illegal", 0))
    assert m.rule_id == "lane"
    [m] = eng.process(ev("parking.illegal", 1, lat=31.30, lng=121.50))
    assert m.rule_id == "outside"
    clat, clng = h3.cell_to_latlng(cell)
    inside_by_cell = ev(
        "parking.illegal", 2, lat=None, lng=None, h3=h3.latlng_to_cell(clat, clng, 10)
    )
    assert eng.process(inside_by_cell) == []
    assert eng.process(ev("parking.illegal", 3, lat=None, lng=None)) == []  # place unknown


def test_time_of_day_crosses_midnight_in_local_time() -> None:
    eng = RuleEngine(
        ruleset(
            rule(
                "night",
                "time_of_day",
                event="vehicle.noise",
                time_of_day={
                    "start": "22:00",
                    "end": "06:00",
                    "tz": "Asia/Shanghai",
                    "days": ["fri"],
                },
            )
        )
    )

    def at(local: str) -> list[Match]:
        when = datetime.fromisoformat(local)
        return eng.process(ev("vehicle.noise", when.astimezone(UTC)))

    assert at("2026-11-27T23:30:00+08:00")  # Friday night
    assert at("2026-11-28T05:59:00+08:00")  # still Friday's night, on Saturday morning
    assert not at("2026-11-28T06:00:00+08:00")
    assert not at("2026-11-27T21:59:00+08:00")
    assert not at("2026-11-28T23:30:00+08:00")  # Saturday night
    assert at("2026-11-27T15:30:00+00:00")  # 15:30 UTC is 23:30 in Shanghai
    assert not at("2026-11-27T23:30:00+00:00")  # 23:30 UTC is 07:30 in Shanghai


def test_time_of_day_as_step_filter_and_prefix() -> None:
    rs = RuleSet.shipped()
    eng = RuleEngine(rs)
    night = datetime(2026, 11, 26, 1, 0, tzinfo=UTC) - timedelta(hours=8) + timedelta(days=1)
    door = ev("door.opened", night, door_id="cabinet-7")
    drop = ev(
        "utility.power_reading",
        night + timedelta(minutes=3),
        meter_id="cabinet-7",
        power=2,
        unit="W",
    )
    out = run(eng, [door, drop])
    assert [m.rule_id for m in out] == ["ebike-battery-theft"]
    day = night + timedelta(hours=10)
    out = run(
        eng,
        [
            ev("door.opened", day, door_id="cabinet-7"),
            ev(
                "utility.power_reading",
                day + timedelta(minutes=3),
                meter_id="cabinet-7",
                power=2,
                unit="W",
            ),
        ],
    )
    assert out == []


# --- event time, lateness, duplicates ------------------------------------------------------


def test_late_events_are_dropped_and_counted() -> None:
    eng = RuleEngine(ruleset(COUNT))  # default lateness 5 min
    run(eng, [ev("intrusion.detected", 1000, zone_id="z")])
    assert eng.process(ev("intrusion.detected", 100, zone_id="z")) == []
    assert eng.process(ev("smoke.detected", 100)) == []  # no rule wants it: not a drop
    stats = eng.stats()
    assert stats["dropped_late"] == 1
    assert stats["rules"]["intrusions"]["dropped_late"] == 1
    late_but_allowed = ev("intrusion.detected", 800, zone_id="z")
    eng.process(late_but_allowed)
    assert eng.stats()["dropped_late"] == 1


def test_single_event_rules_accept_late_events_by_default() -> None:
    eng = RuleEngine(
        ruleset(
            rule(
                "smoke",
                "threshold",
                event="smoke.detected",
                threshold={"field": "payload.zone_id", "op": "exists"},
            ),
            rule(
                "strict",
                "threshold",
                event="smoke.detected",
                lateness="1m",
                threshold={"field": "payload.zone_id", "op": "exists"},
            ),
        )
    )
    eng.process(ev("smoke.detected", 10_000, zone_id="a"))
    assert [m.rule_id for m in eng.process(ev("smoke.detected", 0, zone_id="b"))] == ["smoke"]
    assert eng.stats()["rules"]["strict"]["dropped_late"] == 1


def test_out_of_order_within_lateness_counts() -> None:
    eng = RuleEngine(ruleset(COUNT))
    a, b, c = (ev("intrusion.detected", t, zone_id="z") for t in (100, 200, 300))
    out = run(eng, [c, a, b])
    assert [(m.event_ids[-1], m.count) for m in out] == [(c["id"], 3)]


def test_duplicate_ids_ignored_with_bounded_memory() -> None:
    eng = RuleEngine(ruleset(COUNT), dedup_capacity=3)
    first = ev("intrusion.detected", 0, zone_id="z", id="dup")
    out = run(eng, [first, dict(first), dict(first)])
    assert out == []
    assert eng.stats()["duplicates"] == 2
    run(eng, [ev("intrusion.detected", i, zone_id="q") for i in range(1, 4)])
    assert len(eng.snapshot()["seen"]) == 3
    assert "dup" not in eng.snapshot()["seen"]


def test_invalid_events_counted_not_raised() -> None:
    eng = RuleEngine(ruleset(COUNT))
    bad: list[dict[str, Any]] = [
        {"id": "1", "type": "intrusion.detected"},
        {"id": "2", "type": "intrusion.detected", "time": "2026-11-26T10:00:00"},  # naive
        {"id": "3", "type": "intrusion.detected", "time": "yesterday"},
        {"type": "intrusion.detected", "time": T0},
        {"id": "5", "type": "intrusion.detected", "time": T0, "payload": None},
    ]
    assert run(eng, bad) == []
    assert eng.stats()["invalid"] == 4


# --- state: snapshot, restore, partitions, reload ------------------------------------------


def _mixed_events(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        t = i * 37.0
        out.append(ev("intrusion.detected", t, zone_id=f"z{i % 3}"))
        if i % 4 == 0:
            out.append(ev("door.opened", t + 1, door_id="d"))
        if i % 4 == 1:
            out.append(ev("utility.power_reading", t, meter_id="m", power=3))
        if i % 5 != 4 and not (40 <= i < 60 and i % 2 == 0):  # s0 falls silent a while
            out.append(ev("sensor.heartbeat", t, sensor_id=f"s{i % 2}"))
    return out


def test_snapshot_restore_equivalence() -> None:
    rs = ruleset(COUNT, SEQ, ABSENCE)
    events = _mixed_events(120)
    whole = RuleEngine(rs)
    expected = [m.to_dict() for m in run(whole, events)]
    assert {m["rule_id"] for m in expected} == {"intrusions", "theft", "silent"}
    half = len(events) // 2
    first = RuleEngine(rs)
    got = run(first, events[:half])
    state = json.loads(json.dumps(first.snapshot()))
    second = RuleEngine(rs)
    second.restore(state)
    got += run(second, events[half:])
    assert [m.to_dict() for m in got] == expected
    assert second.process(events[half - 1]) == []  # dedup memory travelled too


def test_partitioned_snapshots_restore_into_one_engine() -> None:
    rs = ruleset(COUNT, ABSENCE)
    events = _mixed_events(60)
    whole = RuleEngine(rs)
    run(whole, events[:90])
    parts = [whole.snapshot(partition=(i, 3)) for i in range(3)]
    for i, part in enumerate(parts):
        for data in part["rules"].values():
            assert all(partition_of(k, 3) == i for k in data["keys"])
    merged = RuleEngine(rs)
    for part in parts:
        merged.restore(json.loads(json.dumps(part)))
    assert merged.snapshot() == whole.snapshot()
    assert sum(len(d["keys"]) for p in parts for d in p["rules"].values()) > 3
    assert [m.to_dict() for m in run(merged, events[90:])] == [
        m.to_dict() for m in run(whole, events[90:])
    ]


def test_reload_keeps_state_of_unchanged_rules() -> None:
    eng = RuleEngine(ruleset(COUNT, SEQ))
    run(eng, [ev("intrusion.detected", t, zone_id="z") for t in (0, 10)])
    run(eng, [ev("door.opened", 20)])
    changed_seq = {**SEQ, "within": "1m"}
    added = rule(
        "smoke",
        "threshold",
        event="smoke.detected",
        threshold={"field": "payload.zone_id", "op": "exists"},
    )
    report = eng.reload(ruleset(COUNT, changed_seq, added))
    assert report == {
        "kept": ["intrusions"],
        "changed": ["theft"],
        "added": ["smoke"],
        "removed": [],
    }
    [m] = eng.process(ev("intrusion.detected", 30, zone_id="z"))  # third of three: state kept
    assert m.count == 3
    # the changed sequence rule lost its door event
    assert eng.process(ev("utility.power_reading", 40, power=1)) == []
    assert eng.reload(ruleset(added))["removed"] == ["intrusions", "theft"]
    assert eng.process(ev("intrusion.detected", 50, zone_id="z")) == []


def test_restore_ignores_state_of_changed_rule() -> None:
    eng = RuleEngine(ruleset(COUNT))
    run(eng, [ev("intrusion.detected", t, zone_id="z") for t in (0, 10)])
    other = RuleEngine(ruleset({**COUNT, "count": 2}))
    other.restore(eng.snapshot())
    assert other.process(ev("intrusion.detected", 20, zone_id="q")) == []
    assert other.rules["intrusions"].state.keys() == {"q"}


# --- properties ----------------------------------------------------------------------------

_offsets = st.lists(
    st.tuples(st.integers(0, 1200), st.sampled_from(["z1", "z2"])), min_size=1, max_size=25
)


def _match_set(matches: list[Match]) -> set[tuple[str, str, str]]:
    """(rule, key, triggering event): the count attached may grow with later ties."""
    return {(m.rule_id, m.key, m.event_ids[-1]) for m in matches}


@settings(max_examples=80, deadline=None)
@given(_offsets, st.randoms(use_true_random=False))
def test_count_matches_independent_of_arrival_order(items: list[tuple[int, str]], rnd: Any) -> None:
    rs = ruleset({**COUNT, "lateness": "30m"})  # the whole span is within lateness
    events = [ev("intrusion.detected", t, id=f"i{n}", zone_id=z) for n, (t, z) in enumerate(items)]
    in_order = sorted(events, key=lambda e: (e["time"], e["id"]))
    shuffled = list(events)
    rnd.shuffle(shuffled)
    in_order_matches = run(RuleEngine(rs), in_order)
    shuffled_matches = run(RuleEngine(rs), shuffled)
    assert _match_set(in_order_matches) == _match_set(shuffled_matches)
    assert all(m.count >= 3 for m in in_order_matches + shuffled_matches)
    # the reference: a match at every event whose 10-minute window holds 3 of its zone
    expected = {
        ("intrusions", z, f"i{n}")
        for n, (t, z) in enumerate(items)
        if sum(1 for (u, y) in items if y == z and t - 600 < u <= t) >= 3
    }
    assert _match_set(shuffled_matches) == expected


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 900), st.sampled_from(["door", "drop", "beat"])),
        min_size=1,
        max_size=20,
    ),
    st.randoms(use_true_random=False),
)
def test_sequence_and_absence_independent_of_arrival_order(
    items: list[tuple[int, str]], rnd: Any
) -> None:
    rs = ruleset({**SEQ, "lateness": "30m"}, {**ABSENCE, "lateness": "30m", "within": "2m"})
    make = {
        "door": lambda t, i: ev("door.opened", t, id=i),
        "drop": lambda t, i: ev("utility.power_reading", t, id=i, power=1),
        "beat": lambda t, i: ev("sensor.heartbeat", t, id=i),
    }
    events = [make[k](t, f"x{n}") for n, (t, k) in enumerate(items)]
    shuffled = list(events)
    rnd.shuffle(shuffled)
    end = T0 + timedelta(hours=2)
    results = []
    for order in (sorted(events, key=lambda e: (e["time"], e["id"])), shuffled):
        eng = RuleEngine(rs)
        results.append(_match_set(run(eng, order) + eng.advance(end)))
    assert results[0] == results[1]


def test_future_stamped_event_does_not_drag_the_watermark() -> None:
    now = (T0 + timedelta(seconds=100)).timestamp()
    eng = RuleEngine(ruleset(COUNT), future_tolerance=60, clock=lambda: now)
    run(eng, [ev("intrusion.detected", 3600 * 24, zone_id="skewed")])  # a day ahead
    assert eng.stats()["future"] == 1
    assert eng.watermark == now + 60
    out = run(eng, [ev("intrusion.detected", t, zone_id="z") for t in (0, 30, 60)])
    assert [m.count for m in out] == [3]  # nothing dropped as late
    assert eng.stats()["dropped_late"] == 0


def test_absence_keeps_one_timer_per_key() -> None:
    eng = RuleEngine(ruleset(ABSENCE))
    beats = [ev("sensor.heartbeat", 60 * i, sensor_id=f"s{i % 3}") for i in range(600)]
    assert run(eng, beats) == []  # each sensor beats every 3 minutes: never silent 10
    assert len(eng._heap) <= 6
    assert len(eng.rules["silent"].state) == 3


def _types(r: Any) -> list[str]:
    return r.types() if hasattr(r, "types") else r.first.types() + r.then.types()


_SHIPPED = RuleSet.shipped()
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6), st.just([1])
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.one_of(st.text(max_size=4), st.integers()),
                "type": st.one_of(
                    st.sampled_from(sorted({t for r in _SHIPPED.rules for t in _types(r)})),
                    _scalar,
                ),
                "time": st.one_of(
                    st.datetimes(timezones=st.just(UTC)),
                    st.floats(),
                    st.text(max_size=30),
                    st.none(),
                ),
                "lat": _scalar,
                "lng": _scalar,
                "h3": _scalar,
                "sensor_id": _scalar,
                "payload": st.one_of(st.none(), st.dictionaries(st.text(max_size=10), _scalar)),
            }
        ),
        max_size=20,
    )
)
def test_engine_never_crashes_on_odd_events(events: list[dict[str, Any]]) -> None:
    eng = RuleEngine(_SHIPPED)
    for e in events:
        for m in eng.process(e):
            assert m.rule_id in eng.rules
    eng.advance(eng.watermark if eng.watermark > 0 else 0)
    json.dumps(eng.snapshot())
