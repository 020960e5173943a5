"""Idempotent durable consumers: dedup by event id, one transaction, resume, registry."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from safecity.platform import consumers
from safecity.platform.bus import attached_bus
from safecity.platform.bus_memory import ConsumerOffset
from safecity.platform.consumers import (
    Consumer,
    ProcessedEvent,
    register_consumer,
    registered_consumers,
    start_registered,
)
from safecity.platform.events import Envelope
from safecity.platform.outbox import emit
from safecity.platform.relay import Relay
from safecity.platform.runtime import Runtime
from safecity.settings import Settings
from tests.platform.conftest import BusFactory, apply_effect, ticks

pytestmark = [pytest.mark.bus, pytest.mark.db]


def effect_count(runtime: Runtime, table: Table) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def processed_count(runtime: Runtime, consumer: str) -> int:
    with runtime.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.consumer == consumer)
            )
            or 0
        )


def test_redelivered_events_are_skipped(runtime: Runtime, effects_table: Table) -> None:
    consumer = Consumer(name="dedup", sessions=runtime.sessions, apply=apply_effect)
    batch = ticks("test.bus.a", 3)
    first = consumer.process(batch)
    again = consumer.process([*batch, *ticks("test.bus.a", 1, start=3)])
    assert (first.applied, first.skipped) == (3, 0)
    assert (again.applied, again.skipped) == (1, 3)
    assert effect_count(runtime, effects_table) == 4
    assert processed_count(runtime, "dedup") == 4


def test_a_duplicate_inside_one_batch_is_applied_once(
    runtime: Runtime, effects_table: Table
) -> None:
    event = ticks("test.bus.a", 1)[0]
    result = Consumer(name="dup", sessions=runtime.sessions, apply=apply_effect).process(
        [event, event]
    )
    assert (result.applied, result.skipped) == (1, 1)
    assert effect_count(runtime, effects_table) == 1


def test_failing_apply_rolls_back_effects_and_dedup_rows(
    runtime: Runtime, effects_table: Table
) -> None:
    def apply(session: Session, envelope: Envelope) -> None:
        apply_effect(session, envelope)
        if envelope.payload["n"] == 2:
            raise RuntimeError("handler bug (test)")

    consumer = Consumer(name="atomic", sessions=runtime.sessions, apply=apply)
    with pytest.raises(RuntimeError, match="handler bug"):
        consumer.process(ticks("test.bus.a", 3))
    assert effect_count(runtime, effects_table) == 0
    assert processed_count(runtime, "atomic") == 0


def test_each_consumer_name_dedups_on_its_own(runtime: Runtime, effects_table: Table) -> None:
    seen: list[str] = []

    def remember(session: Session, envelope: Envelope) -> None:
        seen.append(envelope.id)

    batch = ticks("test.bus.a", 2)
    Consumer(name="one", sessions=runtime.sessions, apply=remember).process(batch)
    Consumer(name="two", sessions=runtime.sessions, apply=remember).process(batch)
    Consumer(name="one", sessions=runtime.sessions, apply=remember).process(batch)
    assert seen == [e.id for e in batch] * 2


def test_outbox_to_consumer_end_to_end_and_resume(
    runtime: Runtime, bus_factory: BusFactory, effects_table: Table
) -> None:
    with runtime.sessions.begin() as s:
        for n in range(30):
            emit(s, type="test.bus.a" if n % 3 else "test.bus.b", source="test", payload={"n": n})

    async def run(expect: int) -> tuple[int, int]:
        bus = bus_factory()
        try:
            await Relay(sessions=runtime.sessions, bus=bus).drain(timeout=20)
            consumer = Consumer(
                name="e2e", sessions=runtime.sessions, apply=apply_effect, types=["test.bus.a"]
            )
            await consumer.start(bus)
            async with asyncio.timeout(15):
                while processed_count(runtime, "e2e") < expect:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            return consumer.applied, consumer.skipped
        finally:
            await bus.close()

    assert asyncio.run(run(20)) == (20, 0)
    with runtime.sessions.begin() as s:
        for n in range(30, 33):
            emit(s, type="test.bus.a", source="test", payload={"n": n})
    assert asyncio.run(run(23)) == (3, 0)  # resumed after the restart: only the new ones
    with runtime.sessions() as s:
        ns = sorted(s.scalars(select(effects_table.c.n)))
    assert ns == [n for n in range(33) if n % 3 or n >= 30]


def test_in_process_consumer_resumes_from_its_offset_after_a_crash_before_ack(
    runtime: Runtime, effects_table: Table
) -> None:
    from safecity.platform.bus_memory import MemoryBus

    with runtime.sessions.begin() as s:
        for n in range(5):
            emit(s, type="test.bus.a", source="test", payload={"n": n})

    async def run() -> tuple[int, int]:
        bus = MemoryBus(runtime.sessions, poll_interval=0.05)
        try:
            await Relay(sessions=runtime.sessions, bus=bus).drain(timeout=20)
            consumer = Consumer(name="offsets", sessions=runtime.sessions, apply=apply_effect)
            await consumer.start(bus)
            async with asyncio.timeout(10):
                while processed_count(runtime, "offsets") < 5:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            return consumer.applied, consumer.skipped
        finally:
            await bus.close()

    assert asyncio.run(run()) == (5, 0)
    # Simulate a crash after the handler committed but before the offset moved.
    with runtime.sessions.begin() as s:
        s.execute(update(ConsumerOffset).values(position=0))
    assert asyncio.run(run()) == (0, 5)  # all delivered again, none applied twice
    assert effect_count(runtime, effects_table) == 5


def test_registered_consumers_start_together(
    runtime: Runtime,
    bus_factory: BusFactory,
    effects_table: Table,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumers, "_CONSUMERS", {})
    spec = register_consumer("test.registered", apply_effect, types=["test.bus.b"])
    assert spec in registered_consumers()
    with pytest.raises(ValueError, match="registered twice"):
        register_consumer("test.registered", lambda s, e: None)

    with runtime.sessions.begin() as s:
        emit(s, type="test.bus.b", source="test", payload={"n": 7})

    async def main() -> None:
        bus = bus_factory()
        try:
            await Relay(sessions=runtime.sessions, bus=bus).drain(timeout=20)
            subs = await start_registered(bus, runtime.sessions)
            assert "test.registered" in [sub.consumer.replace("_", ".") for sub in subs]
            async with asyncio.timeout(10):
                while processed_count(runtime, "test.registered") < 1:
                    await asyncio.sleep(0.05)
        finally:
            await bus.close()

    asyncio.run(main())
    assert effect_count(runtime, effects_table) == 1


def test_attached_bus_runs_relay_and_registered_consumers(
    runtime: Runtime,
    bus_settings: Settings,
    bus_factory: BusFactory,  # NATS: deletes this test's stream afterwards
    effects_table: Table,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumers, "_CONSUMERS", {})
    register_consumer("test.attached", apply_effect, types=["test.bus.a"])
    rt = Runtime(settings=bus_settings, engine=runtime.engine, sessions=runtime.sessions)

    def emit_two() -> None:
        with runtime.sessions.begin() as s:
            for n in (1, 2):
                emit(s, type="test.bus.a", source="test", payload={"n": n})

    async def main() -> None:
        async with attached_bus(rt, run_relay=True, run_consumers=True) as bus:
            assert rt.bus is bus
            await asyncio.to_thread(emit_two)
            async with asyncio.timeout(10):
                while processed_count(runtime, "test.attached") < 2:
                    await asyncio.sleep(0.05)
        assert rt.bus is None

    asyncio.run(main())
    assert effect_count(runtime, effects_table) == 2
