"""Fixtures for the event bus, relay and consumer tests.

``bus_factory()`` builds the bus of this test pass: the in-process bus by default, NATS
JetStream with ``SAFECITY_TEST_SERVICES=1``. Each test gets its own stream prefix and
its NATS stream is deleted at teardown.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import Table

from safecity.platform.bus import EventBus
from safecity.platform.bus_memory import MemoryBus
from safecity.platform.bus_nats import NatsBus
from safecity.platform.events import Envelope, register_event_type
from safecity.platform.runtime import Runtime
from safecity.settings import Settings
from tests.conftest import NATS_URL, RUN_TOKEN, SERVICES, service_unavailable
from tests.platform.kill_consumer import apply_effect, effects, effects_metadata

__all__ = ["apply_effect", "effects"]

TICK_SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}
for _name in ("test.bus.a", "test.bus.b", "test.bus.other.c", "test.kill.tick", "test.kill.noise"):
    register_event_type(_name, TICK_SCHEMA, description="test event")


def nats_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), 1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _delete_this_runs_streams() -> Iterator[None]:
    """At the end of a services run, delete every JetStream stream this run created."""
    yield
    if not SERVICES or not nats_reachable(NATS_URL):
        return

    async def cleanup() -> None:
        import nats

        nc = await nats.connect(NATS_URL, allow_reconnect=False)
        try:
            js = nc.jetstream()
            for info in await js.streams_info():
                if info.config.name and info.config.name.startswith(f"SCTEST_{RUN_TOKEN}"):
                    await js.delete_stream(info.config.name)
        finally:
            await nc.close()

    asyncio.run(cleanup())


@pytest.fixture
def bus_settings(settings: Settings) -> Settings:
    """Settings with a stream prefix of this test's own."""
    return settings.model_copy(
        update={"bus_stream_prefix": f"{settings.bus_stream_prefix}_{secrets.token_hex(3)}"}
    )


BusFactory = Callable[..., EventBus]


@pytest.fixture
def bus_factory(bus_settings: Settings, runtime: Runtime) -> Iterator[BusFactory]:
    """``bus_factory(**options)`` → a new bus of this pass (call it inside the event loop
    that will use it). NATS options: ack_wait, fetch_timeout; memory: poll_interval."""
    if SERVICES and not nats_reachable(bus_settings.bus_url):
        service_unavailable("NATS", bus_settings.bus_url)

    def make(**options: Any) -> EventBus:
        if bus_settings.bus_url.startswith("nats://"):
            nats_opts = {k: v for k, v in options.items() if k in ("ack_wait", "fetch_timeout")}
            nats_opts.setdefault("fetch_timeout", 0.5)
            return NatsBus(bus_settings.bus_url, prefix=bus_settings.bus_stream_prefix, **nats_opts)
        return MemoryBus(runtime.sessions, poll_interval=options.get("poll_interval", 0.05))

    yield make
    if bus_settings.bus_url.startswith("nats://"):

        async def cleanup() -> None:
            bus = NatsBus(bus_settings.bus_url, prefix=bus_settings.bus_stream_prefix)
            try:
                await bus.delete_stream()
            finally:
                await bus.close()

        asyncio.run(cleanup())


@pytest.fixture
def effects_table(runtime: Runtime) -> Iterator[Table]:
    effects_metadata.drop_all(runtime.engine)
    effects_metadata.create_all(runtime.engine)
    yield effects
    effects_metadata.drop_all(runtime.engine)


class Collector:
    """A bus handler that records what it got (optionally failing the first calls)."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.batches: list[list[Envelope]] = []
        self.fail_first = fail_first
        self.calls = 0

    async def __call__(self, batch: Sequence[Envelope]) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError("handler failure (test)")
        self.batches.append(list(batch))

    @property
    def events(self) -> list[Envelope]:
        return [e for b in self.batches for e in b]

    async def wait_for(self, count: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                await asyncio.sleep(0.02)


def ticks(event_type: str, count: int, start: int = 0) -> list[Envelope]:
    return [
        Envelope(type=event_type, source="test", payload={"n": i})
        for i in range(start, start + count)
    ]
