"""The event bus: one small interface, two implementations.

* ``memory://`` — :class:`~safecity.platform.bus_memory.MemoryBus`, the embedded default.
  A durable log kept in the application database, so consumers resume after a restart.
* ``nats://host:port`` — :class:`~safecity.platform.bus_nats.NatsBus`, NATS JetStream.

Nobody publishes to the bus directly from a request: services call
:func:`safecity.platform.outbox.emit` inside their transaction, and the relay
(:mod:`safecity.platform.relay`) moves committed outbox rows to the bus. Consumers
(:mod:`safecity.platform.consumers`) subscribe with a durable name and a type filter; the
bus acknowledges a batch only after the handler returned, so delivery is at least once
and consumers deduplicate by event id.

Type filters are exact event type names, or a prefix ending in ``.>`` (``"orgs.>"``
matches ``orgs.org.created``); an empty filter matches every type.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from safecity.platform.errors import InvalidInput
from safecity.platform.events import Envelope

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from safecity.platform.runtime import Runtime
    from safecity.settings import Settings

Handler = Callable[[Sequence[Envelope]], Awaitable[None]]
"""Handles a batch of delivered events; returning acknowledges all of them, raising
acknowledges none (the batch is delivered again after a backoff)."""


class PublishError(Exception):
    """Publishing a batch failed after ``published`` envelopes (in order) were stored."""

    def __init__(self, published: int, cause: BaseException) -> None:
        super().__init__(f"published {published} event(s), then failed: {cause}")
        self.published = published
        self.cause = cause


class Subscription(Protocol):
    """A running durable subscription."""

    @property
    def consumer(self) -> str: ...

    async def stop(self) -> None:
        """Stop delivering; unacknowledged events stay with the bus for the next start."""


class EventBus(Protocol):
    async def publish(self, envelope: Envelope) -> None:
        """Store one event durably (idempotent by ``envelope.id``)."""

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Store events in order; raise :class:`PublishError` after a partial failure."""

    async def subscribe(
        self,
        consumer: str,
        handler: Handler,
        *,
        types: Sequence[str] = (),
        batch_size: int = 100,
    ) -> Subscription:
        """Start a durable consumer named ``consumer``: it resumes where it left off."""

    async def close(self) -> None:
        """Stop every subscription and release connections."""


def type_matches(event_type: str, patterns: Sequence[str]) -> bool:
    """Whether ``event_type`` passes a type filter (see the module docstring)."""
    if not patterns:
        return True
    for pattern in patterns:
        if pattern.endswith(".>"):
            if event_type.startswith(pattern[:-1]):
                return True
        elif event_type == pattern:
            return True
    return False


def check_type_filter(patterns: Sequence[str]) -> list[str]:
    """Validate a type filter; returns it as a list."""
    result = []
    for pattern in patterns:
        body = pattern[:-2] if pattern.endswith(".>") else pattern
        if not body or any(c in body for c in " *>\t\n") or body.startswith(".") or ".." in body:
            raise ValueError(f"invalid event type filter {pattern!r}")
        result.append(pattern)
    return result


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(data: bytes | str) -> Envelope:
    return Envelope.model_validate_json(data)


def make_bus(settings: Settings, *, sessions: sessionmaker[Session] | None = None) -> EventBus:
    """The bus ``settings.bus_url`` names. ``sessions`` is the database the in-process bus
    keeps its log in (default: a new engine on ``settings.effective_database_url``)."""
    url = settings.bus_url
    if url.startswith("memory:"):
        from safecity.platform.bus_memory import MemoryBus
        from safecity.platform.db import make_engine, make_session_factory

        if sessions is None:
            sessions = make_session_factory(make_engine(settings.effective_database_url))
        return MemoryBus(sessions)
    if url.startswith(("nats://", "tls://")):
        from safecity.platform.bus_nats import NatsBus

        return NatsBus(url, prefix=settings.bus_stream_prefix)
    raise InvalidInput(f"unsupported bus URL {url!r} (use memory:// or nats://host:port)")


@asynccontextmanager
async def attached_bus(
    runtime: Runtime, *, run_relay: bool = False, run_consumers: bool = False
) -> AsyncIterator[EventBus]:
    """Give ``runtime`` a bus for the lifetime of the block (the API's lifespan).

    Keeps a bus already set on the runtime (tests may inject one) and closes only the one
    it made. With ``run_relay`` the outbox relay runs in this process too, and with
    ``run_consumers`` every registered consumer (the one-process embedded setup).
    """
    owned = runtime.bus is None
    bus = (
        runtime.bus
        if runtime.bus is not None
        else make_bus(runtime.settings, sessions=runtime.sessions)
    )
    runtime.bus = bus
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    subs: list[Subscription] = []
    try:
        if run_consumers:
            from safecity.platform.consumers import start_registered

            subs = await start_registered(bus, runtime.sessions)
        if run_relay:
            from safecity.platform.relay import Relay

            task = asyncio.create_task(
                Relay(sessions=runtime.sessions, bus=bus).run(stop), name="outbox-relay"
            )
        yield bus
    finally:
        stop.set()
        if task is not None:
            await task
        for sub in subs:
            await sub.stop()
        if owned:
            await bus.close()
            runtime.bus = None
