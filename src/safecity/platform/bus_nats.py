"""The NATS JetStream event bus (``SAFECITY_BUS_URL=nats://host:port``).

* One stream, ``<prefix>_EVENTS``, holds subjects ``<prefix>.events.<event type>``
  (``prefix`` is ``settings.bus_stream_prefix``, so test runs use their own stream and
  delete it afterwards). File storage, ``Nats-Msg-Id`` = event id with a two-minute
  duplicate window: a relay that publishes an event twice stores it once.
* :meth:`NatsBus.publish_many` pipelines the batch (``publish_async``) and waits for every
  acknowledgement; the stored prefix is reported in :class:`~safecity.platform.bus.PublishError`
  so the relay marks exactly those rows sent.
* A durable consumer is a JetStream pull consumer with explicit acks. Its type filter
  becomes the consumer's filter subject(s) (several subjects need nats-server 2.10;
  older servers get an unfiltered consumer and the filter is applied here, acking
  events the consumer does not want). A batch is acknowledged after the handler
  returned; a failed batch is NAKed with a backoff; a consumer killed mid-batch gets its
  unacknowledged events again after ``ack_wait``. While a handler runs, the batch is
  kept alive with "in progress" acks. Consumers of the same name in several processes
  share the work (a consumer group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext

from safecity.platform.bus import (
    Handler,
    PublishError,
    check_type_filter,
    decode,
    encode,
    type_matches,
)
from safecity.platform.errors import ServiceUnavailable
from safecity.platform.events import Envelope

log = logging.getLogger(__name__)

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def _safe_name(name: str) -> str:
    return _NAME_UNSAFE.sub("_", name)


def _backoff(failures: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    return float(min(cap, base * 2 ** min(failures - 1, 16)))


class NatsBus:
    """JetStream implementation of :class:`~safecity.platform.bus.EventBus`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ack_wait: float = 30.0,
        connect_timeout: float = 2.0,
        publish_timeout: float = 10.0,
        fetch_timeout: float = 1.0,
        max_age: float | None = 7 * 24 * 3600.0,
    ) -> None:
        self.url = url
        self.prefix = _safe_name(prefix)
        self.stream = f"{self.prefix}_EVENTS"
        self.subject_base = f"{self.prefix}.events"
        self.ack_wait = ack_wait
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.fetch_timeout = fetch_timeout
        self.max_age = max_age
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._lock = asyncio.Lock()
        self._subs: dict[str, NatsSubscription] = {}

    # -- connection ------------------------------------------------------------------
    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS connection error: %s", exc)

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, connecting and creating the stream on first use."""
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                nc = NatsClient()
                try:
                    # Fail fast on the first connection; once connected, reconnect forever.
                    await nc.connect(
                        self.url,
                        name="safecity",
                        connect_timeout=int(max(1, self.connect_timeout)),
                        allow_reconnect=False,
                        max_reconnect_attempts=1,
                        reconnect_time_wait=0,
                        error_cb=self._on_error,
                    )
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await nc.close()
                    raise ServiceUnavailable(f"NATS at {self.url} is not reachable: {exc}") from exc
                nc.options["allow_reconnect"] = True
                nc.options["max_reconnect_attempts"] = -1
                nc.options["reconnect_time_wait"] = 2
                self._nc = nc
                self._js = self._nc.jetstream()
                self._stream_ready = False
            assert self._js is not None
            if not self._stream_ready:
                await self._ensure_stream(self._js)
                self._stream_ready = True
            return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        await js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[f"{self.subject_base}.>"],
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                duplicate_window=120.0,
                max_age=self.max_age,
            )
        )

    def subject_for(self, event_type: str) -> str:
        tokens = event_type.split(".")
        if not all(_SUBJECT_TOKEN.match(t) or t == ">" for t in tokens):
            raise ValueError(f"event type {event_type!r} is not a valid subject suffix")
        return f"{self.subject_base}.{event_type}"

    # -- publishing ------------------------------------------------------------------
    async def publish(self, envelope: Envelope) -> None:
        await self.publish_many([envelope])

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        try:
            js = await self.jetstream()
        except Exception as exc:
            raise PublishError(0, exc) from exc
        futures: list[asyncio.Future[Any]] = []
        send_error: BaseException | None = None
        for envelope in envelopes:
            try:
                future = await js.publish_async(
                    self.subject_for(envelope.type),
                    encode(envelope),
                    wait_stall=self.publish_timeout,
                    stream=self.stream,
                    headers={"Nats-Msg-Id": envelope.id},
                )
            except Exception as exc:
                send_error = exc
                break
            futures.append(future)
        stored = 0
        error: BaseException | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        for future in futures:
            if error is not None:
                future.cancel()
                continue
            try:
                await asyncio.wait_for(future, max(0.001, deadline - loop.time()))
            except Exception as exc:
                error = exc
                continue
            stored += 1
        error = error or send_error
        if error is not None:
            raise PublishError(stored, error)

    # -- consuming -------------------------------------------------------------------
    async def subscribe(
        self,
        consumer: str,
        handler: Handler,
        *,
        types: Sequence[str] = (),
        batch_size: int = 100,
    ) -> NatsSubscription:
        types = check_type_filter(types)
        durable = _safe_name(consumer)
        if not durable or len(durable) > 120:
            raise ValueError("consumer name must be 1 to 120 characters")
        if durable in self._subs:
            raise ValueError(f"consumer {consumer!r} is already subscribed on this bus")
        js = await self.jetstream()
        assert self._nc is not None
        config = ConsumerConfig(
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=max(1000, batch_size * 4),
        )
        client_filter: list[str] = []
        if len(types) == 1:
            config.filter_subject = self.subject_for(types[0])
        elif types:
            version = self._nc.connected_server_version
            if (version.major, version.minor) >= (2, 10):
                config.filter_subjects = [self.subject_for(t) for t in types]
            else:
                client_filter = types
        try:
            await js.add_consumer(self.stream, config)
        except nats.js.errors.BadRequestError as exc:
            # The durable exists with another configuration: keep it (and its position).
            log.warning("consumer %s exists with another configuration: %s", durable, exc)
        psub = await js.pull_subscribe_bind(durable=durable, stream=self.stream)
        sub = NatsSubscription(
            bus=self,
            consumer=durable,
            psub=psub,
            handler=handler,
            client_filter=client_filter,
            batch_size=batch_size,
        )
        self._subs[durable] = sub
        sub.start()
        return sub

    def _forget(self, consumer: str) -> None:
        self._subs.pop(consumer, None)

    async def delete_stream(self) -> None:
        """Delete this bus's stream (test teardown, ``safecity events`` admin)."""
        js = await self.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(self.stream)
        self._stream_ready = False

    async def close(self) -> None:
        for sub in list(self._subs.values()):
            await sub.stop()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            await nc.close()


class NatsSubscription:
    """A JetStream pull consumer: fetch a batch, hand it over, ack (or NAK) the batch."""

    def __init__(
        self,
        *,
        bus: NatsBus,
        consumer: str,
        psub: JetStreamContext.PullSubscription,
        handler: Handler,
        client_filter: list[str],
        batch_size: int,
    ) -> None:
        self._bus = bus
        self._consumer = consumer
        self._psub = psub
        self._handler = handler
        self._client_filter = client_filter
        self._batch_size = batch_size
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def consumer(self) -> str:
        return self._consumer

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"bus-nats-{self._consumer}")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def _keep_alive(self, msgs: list[Msg]) -> None:
        """Tell JetStream the batch is still being worked on, so it is not redelivered."""
        interval = max(0.5, self._bus.ack_wait / 2)
        while True:
            await asyncio.sleep(interval)
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                msgs = await self._psub.fetch(self._batch_size, timeout=self._bus.fetch_timeout)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                failures += 1
                log.warning("fetch failed for consumer %s: %s", self._consumer, exc)
                await self._pause(_backoff(failures))
                continue
            envelopes: list[Envelope] = []
            wanted: list[Msg] = []
            for msg in msgs:
                try:
                    envelope = decode(msg.data)
                except ValueError:
                    log.error("terminating undecodable message on %s", msg.subject)
                    await msg.term()
                    continue
                if self._client_filter and not type_matches(envelope.type, self._client_filter):
                    await msg.ack()
                    continue
                envelopes.append(envelope)
                wanted.append(msg)
            if not envelopes:
                continue
            keep_alive = asyncio.create_task(self._keep_alive(wanted))
            try:
                await self._handler(envelopes)
            except Exception:
                failures += 1
                delay = _backoff(failures)
                log.exception(
                    "consumer %s failed on a batch of %d event(s); redelivery in %.1f s",
                    self._consumer,
                    len(envelopes),
                    delay,
                )
                for msg in wanted:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=delay)
                continue
            finally:
                keep_alive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keep_alive
            failures = 0
            try:
                for msg in wanted:
                    await msg.ack()
            except Exception as exc:  # the unacked rest comes back after ack_wait
                log.warning("ack failed for consumer %s: %s", self._consumer, exc)

    async def stop(self) -> None:
        self._stopped.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=self._bus.fetch_timeout + 10)
            except TimeoutError:
                log.warning("consumer %s did not stop in time; cancelled", self._consumer)
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()
        self._bus._forget(self._consumer)
