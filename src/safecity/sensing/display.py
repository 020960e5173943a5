"""On-the-spot warnings back to roadside displays (issue 4, item 8).

A pedestrian crossing on red is not an officer alert: the shipped rule
``red-light-crossing`` has severity ``info``, and the pipeline hands such matches to its
``on_info`` callbacks instead of :func:`~safecity.alerts.service.raise_alert`. A
:class:`DisplayCommander` is such a callback: it turns the match into a
:class:`DisplayCommand` and hands it to a :class:`DisplaySink`.

- :class:`MqttDisplaySink` publishes the command with QoS 1 to
  ``{prefix}/{intersection_id}/{crossing_id}/command``; the display at that crossing
  subscribes to its own topic. paho's network thread sends it, so the pipeline never waits
  on the broker; a broker that is away queues the command in the client (bounded) and it
  is sent on reconnect — a warning that arrives late is dropped by the display, which
  compares ``expires_at`` with its clock.
- :class:`LogDisplaySink` keeps the latest commands in memory and logs them (the demo
  and deployments without a display network).

The command is sent before the batch's alerts are written, so the database never delays
it; the latency is measured by ``tests/sensing/test_display.py`` against the real broker
(goal: ≤ 1 s from the event reaching the pipeline to the display receiving the command).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from safecity.platform import metrics
from safecity.sensing.rules import Match
from safecity.settings import Settings

__all__ = [
    "DisplayCommand",
    "DisplayCommander",
    "DisplaySink",
    "LogDisplaySink",
    "MqttDisplaySink",
    "command_topic",
    "commander_for",
]

log = logging.getLogger(__name__)

WARNING_CATEGORY: Final = "red_light_warning"
DEFAULT_PREFIX: Final = "safecity/displays"
WARNING_TTL: Final = timedelta(seconds=10)
MESSAGES: Final = {
    "zh": "行人闯红灯，请注意安全，等待绿灯通行",
    "en": "Red light: please wait for green",
}

COMMANDS = metrics.counter(
    "safecity_display_commands_total",
    "Warning commands sent to roadside displays, by sink and outcome.",
    ["sink", "outcome"],
)


@dataclass(frozen=True, slots=True)
class DisplayCommand:
    intersection_id: str
    crossing_id: str
    command: str
    message_zh: str
    message_en: str
    rule_id: str
    event_time: str
    issued_at: str
    expires_at: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()


def command_topic(intersection_id: str, crossing_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/{intersection_id}/{crossing_id}/command"


class DisplaySink(Protocol):
    name: str

    def send(self, command: DisplayCommand) -> bool: ...


class LogDisplaySink:
    """Keeps the latest commands (``recent``) and logs each; sends nothing."""

    name = "log"

    def __init__(self, keep: int = 200) -> None:
        self.recent: deque[DisplayCommand] = deque(maxlen=keep)

    def send(self, command: DisplayCommand) -> bool:
        self.recent.append(command)
        log.info("display %s/%s: %s", command.intersection_id, command.crossing_id, command.command)
        return True


class MqttDisplaySink:
    """Publishes commands with QoS 1 through one long-lived paho client."""

    name = "mqtt"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = DEFAULT_PREFIX,
        client_id: str = "safecity-displays",
        max_queued: int = 1000,
    ) -> None:
        self.prefix = prefix
        self._connected = threading.Event()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        client.max_queued_messages_set(max_queued)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._client = client

    def _on_connect(self, *args: Any) -> None:
        self._connected.set()

    def _on_disconnect(self, *args: Any) -> None:
        self._connected.clear()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def send(self, command: DisplayCommand) -> bool:
        topic = command_topic(command.intersection_id, command.crossing_id, self.prefix)
        info = self._client.publish(topic, command.to_json(), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class DisplayCommander:
    """A pipeline ``on_info`` callback: red-light matches → warning commands."""

    def __init__(self, sink: DisplaySink, *, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.clock = clock
        self.sent = 0
        self.skipped = 0

    def __call__(self, match: Match) -> None:
        if match.category != WARNING_CATEGORY:
            return
        key = match.key.split("|")
        if len(key) != 2 or not all(key):
            self.skipped += 1
            COMMANDS.labels(sink=self.sink.name, outcome="no_crossing").inc()
            return
        now = self.clock()
        command = DisplayCommand(
            intersection_id=key[0],
            crossing_id=key[1],
            command="warn_red_light",
            message_zh=MESSAGES["zh"],
            message_en=MESSAGES["en"],
            rule_id=match.rule_id,
            event_time=match.time.isoformat(),
            issued_at=_iso(now),
            expires_at=_iso(now + WARNING_TTL.total_seconds()),
        )
        ok = self.sink.send(command)
        self.sent += ok
        COMMANDS.labels(sink=self.sink.name, outcome="sent" if ok else "failed").inc()


def commander_for(settings: Settings) -> DisplayCommander:
    """The commander a process's pipeline uses: MQTT when ``display_mqtt`` is set."""
    if not settings.display_mqtt:
        return DisplayCommander(LogDisplaySink())
    host, _, port = settings.display_mqtt.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"SAFECITY_DISPLAY_MQTT must be host:port, got {settings.display_mqtt!r}")
    sink = MqttDisplaySink(host=host, port=int(port), prefix=settings.display_topic_prefix)
    return DisplayCommander(sink)
