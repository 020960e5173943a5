"""MQTT connector: sensor events from a broker (Mosquitto), nothing lost.

Devices publish raw events (see :mod:`safecity.sensing.event_types`) to
``safecity/sensors/{sensor_id}/{type}`` with QoS 1. The connector:

- connects with MQTT v5, a fixed client id, ``clean_start=False`` and a session expiry
  interval: a *persistent session*, so the broker keeps queuing for it while it is away
  (optionally through a shared subscription ``$share/{group}/...`` so several processes
  split the stream);
- subscribes with QoS 1 and acknowledges **manually**: a PUBACK is sent only after the
  batch the message belongs to was handed to ``handler`` (valid events) and to the
  dead-letter sink (invalid ones, with the reason). A crash before that means the broker
  redelivers: delivery is at least once, and ``(sensor_id, seq)`` is the dedup key;
- tells the broker its Receive Maximum: at most that many unacknowledged messages are in
  flight to it, everything else waits *in the broker's queue* (whose limits the shipped
  ``sensing/data/mosquitto.conf`` raises — with Mosquitto's defaults messages beyond 1,000
  queued are dropped silently);
- reconnects with exponential backoff (paho's loop); after a reconnect it does not
  acknowledge messages from the previous connection (the broker redelivers those).

paho runs the network loop in its own thread; ``on_message`` only decodes, validates and
queues. A worker thread forms batches (``batch_size`` or ``batch_max_wait_s``), calls the
handler, retrying with backoff while it raises, then acknowledges in receive order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ConfigDict, Field

from safecity.platform import metrics
from safecity.sensing.connectors.deadletter import DeadLetter, DeadLetterSink
from safecity.sensing.event_types import (
    DEFAULT_MAX_BYTES,
    Rejection,
    ValidatedEvent,
    Validator,
    parse_raw,
)

__all__ = ["Handler", "MqttConfig", "MqttConnector", "topic_for"]

log = logging.getLogger(__name__)

CONNECTOR: Final = "mqtt"

Handler = Callable[[list[ValidatedEvent]], None]
"""Receives each batch of valid events; raise to have the batch retried (not acked)."""

MESSAGES = metrics.counter(
    "safecity_connector_messages_total",
    "Messages a connector received, by outcome (accepted or rejected).",
    ["connector", "outcome"],
)
CONNECTS = metrics.counter(
    "safecity_connector_connects_total",
    "Successful (re)connections of a connector to its broker.",
    ["connector"],
)
HANDLER_FAILURES = metrics.counter(
    "safecity_connector_handler_failures_total",
    "Batches whose hand-off raised and was retried.",
    ["connector"],
)


class MqttConfig(BaseModel):
    """Configuration of the MQTT connector (mirrors ``manifests/mqtt.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="safecity-sensing", min_length=1, max_length=128)
    topic_prefix: str = Field(default="safecity/sensors", pattern=r"^[^#+]+[^/#+]$")
    share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+$")
    session_expiry_s: int = Field(default=7 * 86400, ge=60, le=0xFFFFFFFF)
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    batch_size: int = Field(default=500, ge=1, le=65535)
    batch_max_wait_s: float = Field(default=0.05, gt=0, le=10)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: int = Field(default=1, ge=1, le=60)
    reconnect_max_s: int = Field(default=30, ge=1, le=3600)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    max_message_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=256, le=16 * 1024 * 1024)

    @property
    def subscription(self) -> str:
        topic = f"{self.topic_prefix}/+/+"
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic


def topic_for(sensor_id: str, type_name: str, prefix: str = "safecity/sensors") -> str:
    """The topic a device publishes one raw event on."""
    return f"{prefix}/{sensor_id}/{type_name}"


@dataclass(slots=True)
class _Pending:
    mid: int
    qos: int
    generation: int
    topic: str
    result: ValidatedEvent | Rejection
    raw: bytes
    received: float


class MqttConnector:
    """Subscribe, validate, hand off in batches, acknowledge after the hand-off."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        handler: Handler,
        dead_letters: DeadLetterSink,
        validator: Validator | None = None,
    ) -> None:
        self.config = config
        self._handler = handler
        self._sink = dead_letters
        self._validator = validator or Validator()
        self._prefix_parts = len(config.topic_prefix.split("/"))
        self._pending: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = False
        self._worker: threading.Thread | None = None
        self.received = 0
        self.accepted = 0
        self.rejected = 0
        self.acked = 0
        self.connects = 0
        self._client = self._make_client()

    # --- lifecycle ---------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.manual_ack_set(True)
        client.reconnect_delay_set(min_delay=cfg.reconnect_min_s, max_delay=cfg.reconnect_max_s)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect (retrying in the background) and start the batch worker."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        self._worker = threading.Thread(target=self._run, name="mqtt-connector", daemon=True)
        self._worker.start()
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Hand off and acknowledge what is pending, then disconnect."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()

    def wait_ready(self, timeout: float) -> bool:
        """True once connected and subscribed."""
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- paho callbacks (network thread) ------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("mqtt connect refused: %s", reason_code)
            return
        with self._ack_lock:
            self._generation += 1
        self.connects += 1
        CONNECTS.labels(connector=CONNECTOR).inc()
        self._connected.set()
        log.info(
            "mqtt connected to %s:%s (session present: %s)",
            self.config.host,
            self.config.port,
            flags.session_present,
        )
        client.subscribe(self.config.subscription, options=SubscribeOptions(qos=1))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("mqtt subscription to %s refused: %s", self.config.subscription, reason_codes)
            return
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._ack_lock:
            self._generation += 1
        self._connected.clear()
        self._subscribed.clear()
        if not self._stopping:
            log.warning("mqtt connection lost (%s); reconnecting with backoff", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        body = bytes(message.payload)
        try:
            result = self._validate(message.topic, body)
        except Exception as exc:  # never let one message stop the network loop
            log.exception("mqtt message could not be validated")
            result = Rejection("malformed", f"validation failed: {type(exc).__name__}")
        item = _Pending(
            mid=message.mid,
            qos=message.qos,
            generation=self._generation,
            topic=message.topic,
            result=result,
            raw=body if isinstance(result, Rejection) else b"",
            received=time.monotonic(),
        )
        with self._cond:
            self._pending.append(item)
            self.received += 1
            if len(self._pending) >= self.config.batch_size or len(self._pending) == 1:
                self._cond.notify()

    def _validate(self, topic: str, payload: bytes) -> ValidatedEvent | Rejection:
        parts = topic.split("/")
        if len(parts) != self._prefix_parts + 2:
            return Rejection(
                "topic_mismatch", f"topic must be {self.config.topic_prefix}/{{sensor_id}}/{{type}}"
            )
        return parse_raw(
            payload,
            validator=self._validator,
            sensor_id=parts[-2],
            type_name=parts[-1],
            max_bytes=self.config.max_message_bytes,
        )

    # --- batch worker -------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.config
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait(0.5)
                if not self._pending:
                    return  # stopping, nothing left
                deadline = self._pending[0].received + cfg.batch_max_wait_s
                while len(self._pending) < cfg.batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                count = min(cfg.batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
            self._deliver(batch)

    def _deliver(self, batch: Sequence[_Pending]) -> None:
        events: list[ValidatedEvent] = []
        letters: list[DeadLetter] = []
        for item in batch:
            if isinstance(item.result, ValidatedEvent):
                events.append(item.result)
            else:
                letters.append(
                    DeadLetter.from_rejection(
                        item.result, connector=CONNECTOR, source=item.topic, raw=item.raw
                    )
                )
        if events and not self._retry(lambda: self._handler(events)):
            return
        if letters and not self._retry(lambda: self._sink.put(letters)):
            return
        self.accepted += len(events)
        self.rejected += len(letters)
        MESSAGES.labels(connector=CONNECTOR, outcome="accepted").inc(len(events))
        MESSAGES.labels(connector=CONNECTOR, outcome="rejected").inc(len(letters))
        with self._ack_lock:
            generation = self._generation
            for item in batch:
                # Messages from an earlier connection are redelivered by the broker: their
                # packet ids now mean nothing (or something else), so they are not acked.
                if item.qos > 0 and item.generation == generation:
                    self._client.ack(item.mid, item.qos)
                    self.acked += 1

    def _retry(self, call: Callable[[], None]) -> bool:
        """Run ``call`` until it succeeds (True) or the connector stops (False)."""
        delay = 0.1
        while True:
            try:
                call()
                return True
            except Exception:
                HANDLER_FAILURES.labels(connector=CONNECTOR).inc()
                log.exception("mqtt batch hand-off failed; retrying in %.1fs", delay)
            if self._stopping:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
