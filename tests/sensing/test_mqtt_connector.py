"""The MQTT connector's batching, acknowledgements and dead letters; manifests."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from safecity.platform import metrics
from safecity.platform.errors import InvalidInput
from safecity.sensing.connectors.deadletter import (
    MAX_RAW_BYTES,
    DeadLetter,
    MemoryDeadLetterSink,
)
from safecity.sensing.connectors.manifest import ManifestError, load_manifest, load_manifests
from safecity.sensing.connectors.mqtt import MqttConfig, MqttConnector, topic_for
from safecity.sensing.event_types import CATALOGUE, Rejection, ValidatedEvent
from tests.sensing.conftest import Broker, publish_events


class FakeClient:
    """Stands in for paho's client: records acknowledgements."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def ack(self, mid: int, qos: int) -> int:
        self.log.append(("ack", mid))
        return 0


def message(mid: int, topic: str, body: dict[str, Any] | bytes, qos: int = 1) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg.qos = qos
    return msg


def heartbeat(seq: int) -> dict[str, Any]:
    return {"time": datetime.now(UTC).isoformat(), "seq": seq, "payload": {"battery_pct": 50}}


HB_TOPIC = topic_for("hb-1", "sensor.heartbeat")


class Harness:
    def __init__(self, handler: Callable[[list[ValidatedEvent]], None] | None = None) -> None:
        self.log: list[Any] = []
        self.sink = MemoryDeadLetterSink()

        def record(events: list[ValidatedEvent]) -> None:
            if handler is not None:
                handler(events)
            self.log.append(("handler", [e.seq for e in events]))

        self.connector = MqttConnector(
            MqttConfig(client_id=f"unit-{secrets.token_hex(3)}"),
            handler=record,
            dead_letters=self.sink,
        )
        self.connector._client = FakeClient(self.log)  # type: ignore[assignment]

    def receive(self, *messages: mqtt.MQTTMessage) -> None:
        for msg in messages:
            self.connector._on_message(self.connector._client, None, msg)  # type: ignore[arg-type]

    def flush(self) -> None:
        pending = list(self.connector._pending)
        self.connector._pending.clear()
        self.connector._deliver(pending)


def _deadletters(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "safecity_deadletter_total", {"connector": "mqtt", "reason": reason}
    )
    return value or 0.0


def test_acks_come_after_the_hand_off_in_receive_order() -> None:
    h = Harness()
    h.receive(*(message(mid, HB_TOPIC, heartbeat(mid)) for mid in (5, 6, 7)))
    assert h.log == []  # nothing acknowledged on receipt
    h.flush()
    assert h.log == [("handler", [5, 6, 7]), ("ack", 5), ("ack", 6), ("ack", 7)]
    assert h.connector.accepted == 3
    assert h.connector.acked == 3


def test_a_failing_hand_off_is_retried_and_acked_only_after_success() -> None:
    calls = {"n": 0}

    def flaky(events: list[ValidatedEvent]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database briefly down")

    h = Harness(flaky)
    before = metrics.REGISTRY.get_sample_value(
        "safecity_connector_handler_failures_total", {"connector": "mqtt"}
    )
    h.receive(message(1, HB_TOPIC, heartbeat(1)))
    h.flush()
    assert calls["n"] == 2
    assert h.log == [("handler", [1]), ("ack", 1)]
    after = metrics.REGISTRY.get_sample_value(
        "safecity_connector_handler_failures_total", {"connector": "mqtt"}
    )
    assert (after or 0) - (before or 0) == 1


def test_invalid_messages_go_to_the_dead_letter_sink_and_are_counted() -> None:
    h = Harness()
    wrong_unit_before = _deadletters("wrong_unit")
    power = topic_for("m-1", "utility.power_reading")
    h.receive(
        message(1, HB_TOPIC, heartbeat(1)),
        message(
            2,
            power,
            {
                "time": datetime.now(UTC).isoformat(),
                "payload": {"meter_id": "m", "power": 2.0, "unit": "kW"},
            },
        ),
        message(3, HB_TOPIC, b"{oops"),
        message(4, "safecity/sensors/too/many/levels", heartbeat(4)),
        message(5, topic_for("hb-1", "door.exploded"), heartbeat(5)),
        message(6, HB_TOPIC, heartbeat(6)),
    )
    h.flush()
    assert h.log[0] == ("handler", [1, 6])
    assert [entry for entry in h.log if entry[0] == "ack"] == [("ack", m) for m in range(1, 7)]
    letters = h.sink.recent()
    assert [letter.reason for letter in letters] == [
        "wrong_unit",
        "malformed",
        "topic_mismatch",
        "unknown_type",
    ]
    assert letters[0].source == power
    assert letters[0].sensor_id == "m-1"
    assert b"kW" in letters[0].raw
    assert _deadletters("wrong_unit") - wrong_unit_before == 1
    assert b'safecity_deadletter_total{connector="mqtt",reason="wrong_unit"}' in metrics.render()


def test_messages_from_a_previous_connection_are_not_acked() -> None:
    h = Harness()
    h.receive(message(1, HB_TOPIC, heartbeat(1)))
    h.connector._on_disconnect(h.connector._client, None, None, None, None)  # type: ignore[arg-type]
    h.receive(message(1, HB_TOPIC, heartbeat(1)))  # redelivered on the new connection
    h.flush()
    # both handed off (at least once), only the current connection's copy acknowledged
    assert h.log == [("handler", [1, 1]), ("ack", 1)]


def test_qos0_messages_need_no_ack() -> None:
    h = Harness()
    h.receive(message(0, HB_TOPIC, heartbeat(1), qos=0))
    h.flush()
    assert h.log == [("handler", [1])]


def test_the_worker_batches_by_size_and_by_time() -> None:
    batches: list[int] = []
    got = threading.Event()

    def handler(events: list[ValidatedEvent]) -> None:
        batches.append(len(events))
        got.set()

    config = MqttConfig(client_id="unit-batch", batch_size=3, batch_max_wait_s=0.05)
    connector = MqttConnector(config, handler=handler, dead_letters=MemoryDeadLetterSink())
    log: list[Any] = []
    connector._client = FakeClient(log)  # type: ignore[assignment]
    worker = threading.Thread(target=connector._run, daemon=True)
    worker.start()
    for mid in range(1, 8):
        connector._on_message(connector._client, None, message(mid, HB_TOPIC, heartbeat(mid)))  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while sum(batches) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    connector._stopping = True
    worker.join(2)
    assert sum(batches) == 7
    assert max(batches) <= 3
    assert [m for _, m in log] == list(range(1, 8))


def test_config() -> None:
    assert MqttConfig().subscription == "safecity/sensors/+/+"
    shared = MqttConfig(share_group="pipeline")
    assert shared.subscription == "$share/pipeline/safecity/sensors/+/+"
    with pytest.raises(ValidationError):
        MqttConfig(qos=0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MqttConfig(topic_prefix="safecity/#")
    assert topic_for("s-1", "door.opened") == "safecity/sensors/s-1/door.opened"


# --- manifests ----------------------------------------------------------------------------


def test_shipped_manifests() -> None:
    manifests = load_manifests()
    assert set(manifests) >= {"mqtt", "nats", "http"}
    mqtt_manifest = manifests["mqtt"]
    assert mqtt_manifest.status == "available"
    assert mqtt_manifest.protocol == "mqtt"
    assert mqtt_manifest.emitted_types() == sorted(CATALOGUE)
    assert manifests["nats"].status == "available"  # tests/sensing/test_nats_worker.py
    assert manifests["http"].status == "available"
    assert manifests["http"].module == "safecity.sensing.ingest_api"
    assert all(m.quality for m in manifests.values())
    assert all(q.done for q in manifests["http"].quality)


def test_mqtt_manifest_matches_the_connector_settings() -> None:
    schema = load_manifests()["mqtt"].config_schema
    assert set(schema["properties"]) == set(MqttConfig.model_fields)
    defaults = MqttConfig().model_dump()
    for name, prop in schema["properties"].items():
        assert prop.get("default") == defaults[name], name
    load_manifests()["mqtt"].validate_config(defaults)
    with pytest.raises(InvalidInput, match="port"):
        load_manifests()["mqtt"].validate_config({"port": 70000})
    with pytest.raises(InvalidInput, match="Additional properties"):
        load_manifests()["mqtt"].validate_config({"colour": "red"})


GOOD = """
name: demo
title: Demo
protocol: http
status: planned
status_note: later
description: a demo
event_types: [door.opened]
config_schema: {type: object, properties: {}}
quality: [{id: manifest, text: described, done: true}]
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("event_types: [door.opened]", "event_types: [door.exploded]"), "door.exploded"),
        (("protocol: http", "protocol: carrier_pigeon"), "protocol"),
        (("status_note: later", "status_note: ''"), "status_note"),
        (("status: planned", "status: available"), "module"),
        (("config_schema: {type: object, properties: {}}", "config_schema: {type: 5}"), "schema"),
        (("title: Demo", "title: Demo\ncolour: red"), "colour"),
        (("name: demo", "name: Demo Connector"), "name"),
        (("quality: [{id: manifest, text: described, done: true}]", "quality: []"), "quality"),
    ],
)
def test_bad_manifests_are_rejected_with_the_field(change: tuple[str, str], message: str) -> None:
    assert load_manifest(GOOD).name == "demo"
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(GOOD.replace(*change), origin="demo.yaml")
    assert "demo.yaml" in str(info.value)


def test_manifest_yaml_errors() -> None:
    with pytest.raises(ManifestError, match="YAML"):
        load_manifest("name: [unclosed", origin="x.yaml")
    with pytest.raises(ManifestError, match="mapping"):
        load_manifest("- a list", origin="x.yaml")


# --- dead-letter sink ---------------------------------------------------------------------


def test_memory_sink_keeps_the_newest_and_truncates_raw() -> None:
    sink = MemoryDeadLetterSink(capacity=2)
    letters = [
        DeadLetter.from_rejection(
            Rejection("malformed", f"bad {i}"), connector="test", source="t", raw=b"x" * 10_000
        )
        for i in range(3)
    ]
    sink.put(letters)
    assert [letter.detail for letter in sink.recent()] == ["bad 1", "bad 2"]
    assert sink.total == 3
    assert len(sink.recent()[0].raw) == MAX_RAW_BYTES
    assert sink.recent(0) == []


# --- against a real broker ----------------------------------------------------------------


@pytest.mark.services
def test_bad_input_through_a_real_broker_does_not_stop_the_pipeline(
    mosquitto: Callable[..., Broker],
) -> None:
    broker = mosquitto(shipped=True)
    received: list[ValidatedEvent] = []
    sink = MemoryDeadLetterSink()
    config = MqttConfig(port=broker.port, client_id=f"bad-{secrets.token_hex(3)}")
    connector = MqttConnector(config, handler=received.extend, dead_letters=sink)
    now = datetime.now(UTC).isoformat()
    valid = [(HB_TOPIC, json.dumps(heartbeat(i)).encode()) for i in range(200)]
    bad = [
        (HB_TOPIC, b"not json"),
        (
            topic_for("m-1", "utility.water_reading"),
            json.dumps(
                {
                    "time": now,
                    "payload": {"meter_id": "m", "volume": 1, "unit": "m3", "interval_s": 60},
                }
            ).encode(),
        ),
        (topic_for("hb-1", "sensor.selfie"), json.dumps({"time": now}).encode()),
        (HB_TOPIC, json.dumps({"time": "2099-01-01T00:00:00Z"}).encode()),
        (HB_TOPIC, json.dumps({"time": now, "payload": {"battery_pct": 50, "face": "x"}}).encode()),
    ]
    bodies = valid[:100] + bad + valid[100:]
    connector.start()
    try:
        assert connector.wait_ready(10)
        result = publish_events(broker.port, 0, bodies=bodies)
        deadline = time.monotonic() + 20
        while connector.acked < len(bodies) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        connector.stop()
    assert not result.failures
    assert sorted(e.seq for e in received if e.seq is not None) == list(range(200))
    assert sorted(letter.reason for letter in sink.recent()) == sorted(
        ["malformed", "wrong_unit", "unknown_type", "time_in_future", "unknown_field"]
    )
    assert connector.acked == len(bodies)
