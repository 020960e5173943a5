"""NATS JetStream connector, stage A (ingest): raw device events → partitioned events.

Devices or gateways publish raw JSON events (the envelope of
:mod:`safecity.sensing.event_types`, with ``sensor_id`` and ``type``) to
``<prefix>.ingest.<anything>``, stored in the stream ``<PREFIX>_INGEST``. Every worker
process of a group pulls from one durable consumer (``ingest``: a consumer group, explicit
acks) in batches and for each message:

1. decodes and validates it (registered sensors only, through the
   :class:`~safecity.sensing.pipeline.SensorCache`); an invalid one becomes a dead letter
   with its reason (``safecity_deadletter_total`` in ``/metrics``);
2. enriches a valid one with the sensor's place (its id is ``sensor_id:seq``, or
   ``raw:<ingest sequence>`` for unnumbered events) and adds it to the bundle of its
   partition ``p = partition_of(partition_key, N)`` (see
   :func:`safecity.sensing.partitions.partition_key`);
3. republishes each partition's bundle — one JSON array per partition and batch, not one
   message per event: a JetStream publish and its acknowledgement cost more than the rest of
   an event's trip — to ``<prefix>.part.<p>`` (stream ``<PREFIX>_PARTS``) with
   ``Nats-Msg-Id`` = a digest of the bundle's event ids, so an identical re-sent bundle is
   dropped by JetStream's duplicate window;
4. acks the raw messages only after JetStream acknowledged every bundle of the batch.

A crash at any point redelivers the raw messages (after ``ack_wait``): nothing is lost. A
redelivered message may land in a bundle of another composition; the rule engine drops
events whose id it has seen (the ids travel in its checkpoints), so no alert is doubled. Stage B,
the rule engines per partition, lives in :mod:`safecity.sensing.nats_worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from pydantic import BaseModel, ConfigDict, Field

from safecity.sensing.connectors.deadletter import DeadLetter, DeadLetterSink
from safecity.sensing.connectors.mqtt import CONNECTS, MESSAGES
from safecity.sensing.event_types import DEFAULT_MAX_BYTES, Rejection, Validator, parse_raw
from safecity.sensing.partitions import DEFAULT_H3_RESOLUTION, partition_key
from safecity.sensing.pipeline import SensorCache
from safecity.sensing.rules import partition_of

__all__ = [
    "IngestStage",
    "NatsConfig",
    "connect",
    "ensure_streams",
    "measure_raw_ceiling",
    "publish_raw",
]

log = logging.getLogger(__name__)

CONNECTOR: Final = "nats"
INGEST_DURABLE: Final = "ingest"


class NatsConfig(BaseModel):
    """Configuration of the NATS connector and worker (mirrors ``manifests/nats.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "nats://127.0.0.1:4222"
    prefix: str = Field(
        default="safecity.sensors", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", max_length=80
    )
    partitions: int = Field(default=8, ge=1, le=1024)
    batch_size: int = Field(default=500, ge=1, le=10000)
    fetch_timeout_s: float = Field(default=0.5, gt=0, le=30)
    ingest_tasks: int = Field(default=2, ge=1, le=16)
    """Concurrent fetch → republish loops per process (one waits for acks while the
    other validates)."""
    batch_max_wait_s: float = Field(default=0.05, ge=0, le=10)
    """After a batch smaller than ``batch_size``, wait this long before the next fetch
    (fewer, larger batches: the fetch round trip and the checkpoint are per batch)."""
    ack_wait_s: float = Field(default=30.0, gt=0, le=3600)
    duplicate_window_s: float = Field(default=600.0, gt=0, le=86400)
    max_age_s: float = Field(default=7 * 86400.0, gt=0)
    lease_ttl_s: float = Field(default=15.0, ge=1, le=600)
    checkpoint_interval_s: float = Field(default=1.0, ge=0, le=60)
    checkpoint_seen: int = Field(default=10_000, ge=0, le=1_000_000)
    h3_resolution: int = Field(default=DEFAULT_H3_RESOLUTION, ge=0, le=15)
    max_message_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=256, le=16 * 1024 * 1024)

    @property
    def stream_base(self) -> str:
        return self.prefix.replace(".", "_").replace("-", "_").upper()

    @property
    def ingest_stream(self) -> str:
        return f"{self.stream_base}_INGEST"

    @property
    def parts_stream(self) -> str:
        return f"{self.stream_base}_PARTS"

    @property
    def group(self) -> str:
        """The consumer group's name (lease and checkpoint rows are kept under it)."""
        return self.prefix

    def ingest_subject(self, suffix: str = "gw") -> str:
        return f"{self.prefix}.ingest.{suffix}"

    def part_subject(self, partition: int) -> str:
        return f"{self.prefix}.part.{partition}"


async def connect(url: str, *, name: str = "safecity-sensing") -> NatsClient:
    """A client that reconnects forever once connected (first connection fails fast)."""

    async def on_error(exc: Exception) -> None:
        log.warning("NATS connection error: %s", exc)

    async def on_reconnect() -> None:
        CONNECTS.labels(connector=CONNECTOR).inc()
        log.info("NATS reconnected to %s", url)

    async def on_disconnect() -> None:
        log.warning("NATS connection lost; reconnecting")

    nc = await nats.connect(
        url,
        name=name,
        connect_timeout=2,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        reconnected_cb=on_reconnect,
        disconnected_cb=on_disconnect,
    )
    CONNECTS.labels(connector=CONNECTOR).inc()
    return nc


async def ensure_streams(js: JetStreamContext, config: NatsConfig) -> None:
    """Create both streams and the shared ingest consumer when missing."""
    for name, subjects in (
        (config.ingest_stream, [f"{config.prefix}.ingest.>"]),
        (config.parts_stream, [f"{config.prefix}.part.*"]),
    ):
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # created meanwhile
                await js.add_stream(
                    StreamConfig(
                        name=name,
                        subjects=subjects,
                        storage=StorageType.FILE,
                        duplicate_window=config.duplicate_window_s,
                        max_age=config.max_age_s,
                    )
                )
    with contextlib.suppress(nats.js.errors.BadRequestError):  # exists (other settings)
        await js.add_consumer(
            config.ingest_stream,
            ConsumerConfig(
                durable_name=INGEST_DURABLE,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=config.ack_wait_s,
                max_deliver=-1,
                max_ack_pending=max(20_000, config.batch_size * 16),
            ),
        )


async def delete_streams(js: JetStreamContext, config: NatsConfig) -> None:
    for name in (config.ingest_stream, config.parts_stream):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


async def publish_raw(
    js: JetStreamContext,
    config: NatsConfig,
    bodies: Sequence[bytes],
    *,
    suffix: str = "gw",
    window: int = 2000,
) -> int:
    """Publish raw device messages to the ingest stream, waiting for every ack."""
    subject = config.ingest_subject(suffix)
    stored = 0
    for start in range(0, len(bodies), window):
        futures = [
            await js.publish_async(subject, body, stream=config.ingest_stream)
            for body in bodies[start : start + window]
        ]
        for future in futures:
            await asyncio.wait_for(future, 30)
            stored += 1
    return stored


# --------------------------------------------------------------------------- stage A


@dataclass
class IngestCounters:
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    republished: int = 0
    failures: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Out:
    """One partition's share of a batch: a JSON array of enriched events."""

    subject: str
    body: bytes
    msg_id: str
    events: int


class IngestStage:
    """Pull raw messages, validate, enrich, republish partitioned, then ack."""

    def __init__(
        self,
        js: JetStreamContext,
        config: NatsConfig,
        *,
        cache: SensorCache,
        dead_letters: DeadLetterSink,
        validator: Validator | None = None,
    ) -> None:
        self.js = js
        self.config = config
        self.cache = cache
        self.dead_letters = dead_letters
        self.validator = validator or Validator(known_sensor=cache.known)
        self.counters = IngestCounters()

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        psub = await self.js.pull_subscribe_bind(durable=INGEST_DURABLE, stream=cfg.ingest_stream)
        failures = 0
        while not stop.is_set():
            began = time.monotonic()
            try:
                msgs = await psub.fetch(cfg.batch_size, timeout=cfg.fetch_timeout_s)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except Exception as exc:  # disconnected: the client reconnects by itself
                failures += 1
                log.warning("ingest fetch failed: %s", exc)
                await _pause(stop, min(5.0, 0.2 * failures))
                continue
            try:
                await self.handle(msgs)
                failures = 0
                if len(msgs) < cfg.batch_size:  # linger: fewer, larger batches
                    await _pause(stop, cfg.batch_max_wait_s - (time.monotonic() - began))
            except Exception:
                failures += 1
                self.counters.failures += 1
                log.exception("ingest batch of %d failed; redelivered after ack_wait", len(msgs))
                await _pause(stop, min(5.0, 0.2 * failures))
        with contextlib.suppress(Exception):
            await psub.unsubscribe()

    async def handle(self, msgs: list[Msg]) -> None:
        """One batch: validate, republish valid, dead-letter invalid, then ack all."""
        raw = [(m.data, m.subject, m.metadata.sequence.stream) for m in msgs]
        out, letters = await asyncio.to_thread(self._prepare, raw)
        futures = [
            await self.js.publish_async(
                o.subject,
                o.body,
                stream=self.config.parts_stream,
                headers={"Nats-Msg-Id": o.msg_id},
                wait_stall=None,  # a timeout here costs a task per message
            )
            for o in out
        ]
        if futures:
            wait = max(2.0, min(10.0, self.config.ack_wait_s))
            done, pending = await asyncio.wait(futures, timeout=wait)
            for future in pending:
                future.cancel()
            if pending:  # nothing acked: the whole batch comes back after ack_wait
                raise TimeoutError(f"{len(pending)} republish(es) not acknowledged in {wait} s")
            for future in done:
                future.result()  # raises the first failed republish
        if letters:
            await asyncio.to_thread(self.dead_letters.put, letters)
        for m in msgs:
            await m.ack()
        c = self.counters
        c.received += len(msgs)
        accepted = sum(o.events for o in out)
        c.accepted += accepted
        c.republished += accepted
        c.rejected += len(letters)
        MESSAGES.labels(connector=CONNECTOR, outcome="accepted").inc(accepted)
        MESSAGES.labels(connector=CONNECTOR, outcome="rejected").inc(len(letters))

    def _prepare(self, raw: list[tuple[bytes, str, int]]) -> tuple[list[_Out], list[DeadLetter]]:
        cfg = self.config
        out: list[_Out] = []
        letters: list[DeadLetter] = []
        bundles: dict[int, list[dict[str, Any]]] = {}
        per = self.counters.per_partition
        for data, subject, seq in raw:
            try:
                checked = parse_raw(data, validator=self.validator, max_bytes=cfg.max_message_bytes)
            except Exception as exc:  # never let one message stop the batch
                checked = Rejection("malformed", f"validation failed: {type(exc).__name__}")
            place = None if isinstance(checked, Rejection) else self.cache.get(checked.sensor_id)
            if isinstance(checked, Rejection) or place is None:
                rejection = (
                    checked
                    if isinstance(checked, Rejection)
                    else Rejection(
                        "unknown_sensor", f"sensor {checked.sensor_id} is not registered"
                    )
                )
                letters.append(
                    DeadLetter.from_rejection(
                        rejection, connector=CONNECTOR, source=subject, raw=data
                    )
                )
                continue
            event_id = checked.dedup_key or f"raw:{seq}"
            p = partition_of(partition_key(place, resolution=cfg.h3_resolution), cfg.partitions)
            per[p] = per.get(p, 0) + 1
            bundles.setdefault(p, []).append(
                {
                    "id": event_id,
                    "type": checked.type,
                    "sensor_id": checked.sensor_id,
                    "time": checked.time.isoformat(),
                    "lat": place.lat,
                    "lng": place.lng,
                    "h3": place.h3,
                    "org_id": place.org_id,
                    "payload": checked.payload,
                }
            )
        for p, events in sorted(bundles.items()):
            body = json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode()
            digest = hashlib.sha256("\n".join(e["id"] for e in events).encode()).hexdigest()
            out.append(_Out(cfg.part_subject(p), body, f"b:{digest[:40]}", len(events)))
        return out, letters


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# --------------------------------------------------------------------------- raw ceiling


async def measure_raw_ceiling(
    url: str = "nats://127.0.0.1:4222",
    *,
    count: int = 50_000,
    batch: int = 500,
    body_bytes: int = 200,
    stream: str | None = None,
) -> dict[str, float]:
    """The raw JetStream pull-consumer rate on this machine: fetch + ack, no processing.

    Publishes ``count`` messages of ``body_bytes`` to a temporary stream, then times one
    durable pull consumer fetching ``batch`` at a time and acking each message (as the
    ingest stage does). Returns ``{"messages", "seconds", "per_second",
    "publish_per_second"}``; the stream is deleted afterwards.
    """
    name = stream or f"RAWCEIL_{int(time.time() * 1000) % 10**9}"
    subject = f"{name.lower()}.x"
    nc = await connect(url, name="safecity-raw-ceiling")
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE))
        body = b"x" * body_bytes
        began = time.perf_counter()
        for start in range(0, count, 5000):
            futures = [
                await js.publish_async(subject, body, stream=name)
                for _ in range(min(5000, count - start))
            ]
            await asyncio.gather(*futures)
        published = time.perf_counter() - began
        await js.add_consumer(
            name,
            ConsumerConfig(
                durable_name="raw",
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=max(20_000, batch * 16),
            ),
        )
        psub = await js.pull_subscribe_bind(durable="raw", stream=name)
        got = 0
        began = time.perf_counter()
        while got < count:
            try:
                msgs = await psub.fetch(batch, timeout=2.0)
            except (nats.errors.TimeoutError, TimeoutError):
                break
            for m in msgs:
                await m.ack()
            got += len(msgs)
        await nc.flush()
        seconds = time.perf_counter() - began
        return {
            "messages": float(got),
            "seconds": seconds,
            "per_second": got / seconds if seconds else 0.0,
            "publish_per_second": count / published if published else 0.0,
        }
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
        await nc.close()
