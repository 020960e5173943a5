"""Red-light warning: a crossing event → a command to the roadside display over MQTT ≤ 1 s."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing import service as sensors
from safecity.sensing.display import (
    DisplayCommander,
    LogDisplaySink,
    MqttDisplaySink,
    command_topic,
)
from safecity.sensing.pipeline import Pipeline
from tests.conftest import City
from tests.sensing.conftest import Broker

pytestmark = pytest.mark.db

LATENCY_GOAL_S = 1.0


def crossing(seq: int, *, intersection: str = "x-12", crossing_id: str = "north") -> dict[str, Any]:
    return {
        "sensor_id": "ped-1",
        "type": "pedestrian.red_light",
        "time": datetime.now(UTC).isoformat(),
        "seq": seq,
        "payload": {"intersection_id": intersection, "crossing_id": crossing_id, "count": 2},
    }


@pytest.fixture
def crossing_sensor(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        sensors.register(
            session=s,
            actor=None,
            sensor_id="ped-1",
            type="pedestrian_crossing",
            lng=121.405,
            lat=31.205,
        )


def test_a_crossing_gives_a_command_and_no_officer_alert(
    runtime: Runtime, crossing_sensor: None
) -> None:
    sink = LogDisplaySink()
    pipeline = Pipeline(sessions=runtime.sessions)
    pipeline.on_info.append(DisplayCommander(sink))
    result = pipeline.process_raw([crossing(1), crossing(1)])  # the second is a resend
    assert result.accepted == 2
    assert len(sink.recent) == 1
    command = sink.recent[0]
    assert (command.intersection_id, command.crossing_id) == ("x-12", "north")
    assert command.command == "warn_red_light"
    assert command.expires_at > command.issued_at
    with runtime.sessions() as s:
        categories = s.scalars(select(Alert.category)).all()
    assert "red_light_warning" not in categories


def test_other_info_matches_are_not_display_commands(runtime: Runtime) -> None:
    from safecity.sensing.rules import Match

    sink = LogDisplaySink()
    commander = DisplayCommander(sink)
    base: dict[str, Any] = {
        "rule_id": "r",
        "kind": "threshold",
        "time": datetime.now(UTC),
        "event_ids": ("e",),
        "count": 1,
        "severity": "info",
        "title": "t",
        "dedup_key": "d",
        "cooldown_s": 1.0,
        "sensor_id": "s",
        "lat": None,
        "lng": None,
        "h3": None,
        "org_id": None,
        "event_type": "x",
    }
    commander(Match(key="a|b", category="something_else", **base))
    commander(Match(key="only-one-part", category="red_light_warning", **base))
    assert list(sink.recent) == []
    assert commander.skipped == 1


@pytest.mark.services
def test_command_reaches_the_display_over_mqtt_within_one_second(
    runtime: Runtime, crossing_sensor: None, mosquitto: Callable[..., Broker]
) -> None:
    broker = mosquitto()
    received: list[tuple[float, dict[str, Any]]] = []
    got = threading.Event()
    subscribed = threading.Event()

    display = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="display-x-12-north"
    )

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe(command_topic("x-12", "north"), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        received.append((time.perf_counter(), json.loads(msg.payload)))
        got.set()

    display.on_connect = on_connect
    display.on_subscribe = lambda *_: subscribed.set()
    display.on_message = on_message
    display.connect("127.0.0.1", broker.port)
    display.loop_start()
    sink = MqttDisplaySink(port=broker.port, client_id="safecity-displays-test")
    try:
        assert subscribed.wait(10)
        assert sink.wait_connected(10)
        pipeline = Pipeline(sessions=runtime.sessions)
        pipeline.on_info.append(DisplayCommander(sink))
        pipeline.process_raw([crossing(0)])  # warm the registry cache and the rules
        assert got.wait(5)
        got.clear()
        received.clear()
        latencies = []
        for seq in range(1, 6):
            started = time.perf_counter()
            pipeline.process_raw([crossing(seq)])
            assert got.wait(LATENCY_GOAL_S), f"no command within {LATENCY_GOAL_S}s"
            got.clear()
            latencies.append(received[-1][0] - started)
        assert max(latencies) <= LATENCY_GOAL_S
        assert received[-1][1]["intersection_id"] == "x-12"
        assert received[-1][1]["message_zh"]
        with runtime.sessions() as s:
            warnings = s.scalar(
                select(func.count()).select_from(Alert).where(Alert.category == "red_light_warning")
            )
        assert warnings == 0
    finally:
        sink.close()
        display.loop_stop()
        display.disconnect()
