"""What the simulator plants: incidents the shipped rules should catch, confounders they
should not, each with the alert category it must (or must not) produce.

A scenario's messages may be spread over time (a group rental shows in a week of daily
water readings): :func:`plant` returns them with their event times, and the simulator sends
each when its clock reaches that time. Scenarios that need the night (battery theft at a
charging cabinet) or a long horizon are only chosen when they can play out, so the ground
truth never expects what the rules could not see.

The ``entity`` of a planted item is the rule key its alert would carry (the alert's
``dedup_key`` is ``{rule}:{entity}``): scoring matches alerts to the truth by it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

__all__ = ["SCENARIOS", "Cabinet", "Scenario", "local_hour", "plant"]

LOCAL: Final = ZoneInfo("Asia/Shanghai")
DAY: Final = timedelta(days=1)
MakeMsg = Callable[[str, str, dict[str, Any], datetime], dict[str, Any]]


def local_hour(at: datetime) -> int:
    return at.astimezone(LOCAL).hour


def _night(at: datetime) -> bool:  # the battery-theft rule watches 23:00-05:00
    hour = local_hour(at)
    return hour >= 23 or hour < 5


def _night_charging(at: datetime) -> bool:  # the indoor-charging rule: 22:00-06:00
    hour = local_hour(at)
    return hour >= 22 or hour < 6


@dataclass(frozen=True)
class Scenario:
    kind: Literal["incident", "confounder"]
    sensor_type: str
    """Registry type of the sensor it uses ("cabinet": a door + meter pair)."""
    category: str | None
    """The alert category an incident must produce; None for a confounder."""
    rule_id: str | None
    """The rule whose key names the entity (the one expected to fire, for an incident)."""
    span: timedelta = timedelta(0)
    """How long its messages take to play out."""
    when: Callable[[datetime], bool] | None = None
    """Only planted when this holds for the current time."""
    also: tuple[str, ...] = ()
    """Other categories its alerts may rightly carry (dense smoke is a fire, and a silent
    fire alarm as well)."""


SCENARIOS: Final[dict[str, Scenario]] = {
    "repeated_intrusion": Scenario("incident", "intrusion", "intrusion", "repeated-intrusion"),
    "ebike_escape_route": Scenario(
        "incident", "ebike_charger", "fire_hazard", "ebike-charging-escape-route"
    ),
    "ebike_flat_night": Scenario(
        "incident",
        "ebike_charger",
        "fire_hazard",
        "ebike-charging-indoor-night",
        when=_night_charging,
    ),
    "dense_smoke": Scenario("incident", "smoke", "fire", "smoke-dense", span=timedelta(seconds=40)),
    "fire_alarm_failure": Scenario(
        "incident", "smoke", "fire_safety", "fire-alarm-silent", also=("fire",)
    ),
    "throw_from_height": Scenario(
        "incident", "camera_detector", "high_altitude_throw", "throw-from-height"
    ),
    "battery_theft": Scenario(
        "incident",
        "cabinet",
        "theft",
        "ebike-battery-theft",
        span=timedelta(minutes=4),
        when=_night,
    ),
    "group_rental": Scenario(
        "incident", "water_meter", "group_rental", "group-rental-water", span=6 * DAY
    ),
    # confounders: look like an incident to a careless rule, must not raise an alert
    "charging_in_flat": Scenario(
        "confounder",
        "ebike_charger",
        None,
        "ebike-charging-indoor-night",
        when=lambda at: not _night_charging(at),
    ),
    "night_charging_cabinet": Scenario(
        "confounder",
        "cabinet",
        None,
        "ebike-battery-theft",
        span=timedelta(minutes=4),
        when=_night,
    ),
    "duplicates": Scenario("confounder", "intrusion", None, "repeated-intrusion"),
    "unarmed_intrusion": Scenario("confounder", "intrusion", None, "repeated-intrusion"),
    "sensor_fault": Scenario("confounder", "smoke", None, None),
    "throw_low_confidence": Scenario("confounder", "camera_detector", None, "throw-from-height"),
    "busy_household": Scenario(
        "confounder", "water_meter", None, "group-rental-water", span=6 * DAY
    ),
    "empty_flat": Scenario("confounder", "water_meter", None, "group-rental-water", span=6 * DAY),
}


@dataclass(frozen=True)
class Cabinet:
    """An e-bike charging cabinet: a door sensor and a power meter at one point."""

    door: str
    meter: str
    cell: str
    """Its H3 cell at resolution 12 (the battery-theft rule's key)."""


def _daily_water(
    msg: MakeMsg, sensor_id: str, meter: str, now: datetime, volumes: Sequence[float]
) -> list[dict[str, Any]]:
    return [
        msg(
            sensor_id,
            "utility.water_reading",
            {"meter_id": meter, "volume": v, "unit": "L", "interval_s": 86400},
            now + i * DAY,
        )
        for i, v in enumerate(volumes)
    ]


def plant(
    name: str,
    *,
    rng: Random,
    msg: MakeMsg,
    sensor_id: str,
    cabinet: Cabinet | None,
    tag: str,
    now: datetime,
) -> tuple[str, list[dict[str, Any]]]:
    """The entity and the messages (with their event times) of one planted item."""
    if name in ("repeated_intrusion", "duplicates", "unarmed_intrusion"):
        entity = f"zone-{sensor_id}-{tag}"
        armed = name != "unarmed_intrusion"
        repeats = 3 if name == "repeated_intrusion" else 2 if name == "duplicates" else 1
        msgs = [
            msg(
                sensor_id,
                "intrusion.detected",
                {"zone_id": entity, "detector": "pir", "armed": armed},
                now - timedelta(seconds=repeats - i),
            )
            for i in range(repeats)
        ]
        if name == "duplicates":  # resent messages (same seq): two events, not four
            msgs.extend(dict(m) for m in list(msgs))
        return entity, msgs
    if name in ("ebike_escape_route", "ebike_flat_night", "charging_in_flat"):
        entity = f"bldg-{sensor_id}-{tag}"
        where = rng.choice(["corridor", "stairwell"]) if name == "ebike_escape_route" else "flat"
        payload = {
            "building_id": entity,
            "floor": rng.randint(1, 30),
            "location": where,
            "detection": "power_signature",
            "power": round(rng.uniform(150, 600), 1),
            "unit": "W",
        }
        return entity, [msg(sensor_id, "ebike.charging_indoor", payload, now)]
    if name in ("dense_smoke", "fire_alarm_failure"):
        entity = f"smoke-{sensor_id}-{tag}"
        payload = {"zone_id": entity, "obscuration": round(rng.uniform(12, 40), 1), "unit": "%/m"}
        msgs = [msg(sensor_id, "smoke.detected", payload, now)]
        if name == "dense_smoke":  # the building's alarm sounds, as it should
            alarm = {"zone_id": entity, "source": "detector"}
            msgs.append(msg(sensor_id, "fire.alarm", alarm, now + timedelta(seconds=40)))
        return entity, msgs
    if name in ("throw_from_height", "throw_low_confidence"):
        entity = f"bldg-{sensor_id}-{tag}"
        high = name == "throw_from_height"
        payload = {
            "building_id": entity,
            "object": rng.choice(["bottle", "flowerpot", "bag"] if high else ["leaf", "bird"]),
            "floor_estimate": rng.randint(5, 30),
            "confidence": round(rng.uniform(0.7, 0.99) if high else rng.uniform(0.1, 0.5), 2),
        }
        return entity, [msg(sensor_id, "throw.detected", payload, now)]
    if name in ("battery_theft", "night_charging_cabinet"):
        assert cabinet is not None
        theft = name == "battery_theft"
        door = {"door_id": f"cabinet-{cabinet.door}", "method": "code" if theft else "card"}
        power = round(rng.uniform(0, 20) if theft else rng.uniform(200, 900), 1)
        meter = {"meter_id": f"cabinet-{cabinet.meter}", "power": power, "unit": "W"}
        return cabinet.cell, [
            msg(cabinet.door, "door.opened", door, now),
            msg(cabinet.meter, "utility.power_reading", meter, now + timedelta(minutes=4)),
        ]
    if name in ("group_rental", "busy_household", "empty_flat"):
        entity = f"wm-{sensor_id}-{tag}"
        if name == "group_rental":  # 6 of 7 days far above a family's use
            volumes: list[float] = [round(rng.uniform(1300, 2500)) for _ in range(7)]
            volumes[rng.randrange(7)] = round(rng.uniform(300, 500))
        elif name == "busy_household":  # guests on 3 days: high, but not sustained
            volumes = [round(rng.uniform(300, 600)) for _ in range(7)]
            for day in rng.sample(range(7), 3):
                volumes[day] = round(rng.uniform(1250, 1600))
        else:  # nobody home: almost nothing
            volumes = [round(rng.uniform(0, 15), 1) for _ in range(7)]
        return entity, _daily_water(msg, sensor_id, entity, now, volumes)
    # sensor_fault: garbage a broken detector sends (all rejected)
    entity = f"smoke-{sensor_id}-{tag}"
    broken = msg(sensor_id, "smoke.detected", {"zone_id": entity}, now)
    broken["time"] = "1970-01-01T00:00:00+00:00"
    return entity, [
        msg(
            sensor_id, "smoke.detected", {"zone_id": entity, "obscuration": 55, "unit": "ppm"}, now
        ),
        broken,
    ]
