"""The outbox relay: order, retries, several relays, crash safety, status."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select

from safecity.platform.bus import EventBus, Handler, PublishError, Subscription
from safecity.platform.db import is_postgres, utcnow
from safecity.platform.events import Envelope
from safecity.platform.outbox import OutboxEvent, emit
from safecity.platform.relay import Relay, outbox_status, prune_sent
from safecity.platform.runtime import Runtime
from tests.platform.conftest import BusFactory, Collector

pytestmark = [pytest.mark.bus, pytest.mark.db]


def emit_ticks(
    runtime: Runtime, count: int, *, per_tx: int = 10, kind: str = "test.bus.a"
) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, per_tx):
        with runtime.sessions.begin() as s:
            for n in range(start, min(count, start + per_tx)):
                ids.append(emit(s, type=kind, source="test", payload={"n": n}).id)
    return ids


def rows(runtime: Runtime) -> list[OutboxEvent]:
    with runtime.sessions() as s:
        return list(s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))


class FlakyBus:
    """Wraps a bus; while ``fail_after`` is set, a batch fails after that many events."""

    def __init__(self, inner: EventBus, *, fail_after: int | None) -> None:
        self.inner = inner
        self.fail_after = fail_after

    async def publish(self, envelope: Envelope) -> None:
        await self.publish_many([envelope])

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        if self.fail_after is None:
            await self.inner.publish_many(envelopes)
            return
        await self.inner.publish_many(envelopes[: self.fail_after])
        raise PublishError(self.fail_after, ConnectionError("broker went away (test)"))

    async def subscribe(
        self, consumer: str, handler: Handler, *, types: Sequence[str] = (), batch_size: int = 100
    ) -> Subscription:
        return await self.inner.subscribe(consumer, handler, types=types, batch_size=batch_size)

    async def close(self) -> None:
        await self.inner.close()


def test_relay_publishes_in_seq_order_and_marks_sent(
    runtime: Runtime, bus_factory: BusFactory
) -> None:
    ids = emit_ticks(runtime, 25, per_tx=7)

    async def main() -> list[str]:
        bus = bus_factory()
        try:
            relay = Relay(sessions=runtime.sessions, bus=bus, batch_size=10)
            assert await relay.drain(timeout=20) == 25
            got = Collector()
            await bus.subscribe("order", got)
            await got.wait_for(25)
            return [e.id for e in got.events]
        finally:
            await bus.close()

    assert asyncio.run(main()) == ids
    assert all(r.sent_at is not None and r.attempts == 1 for r in rows(runtime))


def test_failure_midway_keeps_order_retries_and_reports(
    runtime: Runtime, bus_factory: BusFactory
) -> None:
    ids = emit_ticks(runtime, 8)

    async def main() -> list[str]:
        bus = FlakyBus(bus_factory(), fail_after=3)
        try:
            relay = Relay(sessions=runtime.sessions, bus=bus, batch_size=100)
            result = await relay.run_once()
            assert result.published == 3
            assert result.error is not None
            assert "broker went away" in result.error
            after = rows(runtime)
            assert [r.sent_at is not None for r in after] == [True] * 3 + [False] * 5
            assert after[3].attempts == 1
            assert "broker went away" in (after[3].last_error or "")
            assert all(r.attempts == 0 for r in after[4:])  # nothing after the failure was tried
            with runtime.sessions() as s:
                status = outbox_status(s)
            assert (status.pending, status.sent, status.failing) == (5, 3, 1)
            assert status.last_error_event_id == ids[3]
            assert status.last_error is not None
            assert "broker went away" in status.last_error

            bus.fail_after = None  # the broker is back
            assert await relay.drain(timeout=20) == 5
            got = Collector()
            await bus.subscribe("after-failure", got)
            await got.wait_for(8)
            await asyncio.sleep(0.2)
            return [e.id for e in got.events]
        finally:
            await bus.close()

    assert asyncio.run(main()) == ids  # in order, none twice, none lost
    with runtime.sessions() as s:
        status = outbox_status(s)
    assert (status.pending, status.last_error, status.oldest_pending_age_s) == (0, None, None)
    assert rows(runtime)[3].attempts == 2


def test_bus_down_publishes_nothing_and_loses_nothing(runtime: Runtime) -> None:
    emit_ticks(runtime, 3)

    class DownBus(FlakyBus):
        async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
            raise ConnectionRefusedError("no broker (test)")

    async def main() -> None:
        relay = Relay(sessions=runtime.sessions, bus=DownBus(None, fail_after=None))  # type: ignore[arg-type]
        result = await relay.run_once()
        assert result.published == 0
        assert result.error is not None
        assert "no broker" in result.error

    asyncio.run(main())
    assert [r.sent_at for r in rows(runtime)] == [None, None, None]
    assert rows(runtime)[0].attempts == 1


def test_rolled_back_transaction_emits_nothing(runtime: Runtime) -> None:
    def change() -> None:
        with runtime.sessions.begin() as s:
            emit(s, type="test.bus.a", source="test", payload={"n": 1})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change()
    assert rows(runtime) == []


def test_crash_between_publish_and_mark_delivers_once(
    runtime: Runtime, bus_factory: BusFactory
) -> None:
    ids = emit_ticks(runtime, 6)

    async def main() -> list[str]:
        bus = bus_factory()
        try:
            # A relay published the batch, then died before marking the rows sent ...
            await bus.publish_many([r.envelope() for r in rows(runtime)])
            # ... so the next relay publishes them again.
            assert await Relay(sessions=runtime.sessions, bus=bus).drain(timeout=20) == 6
            got = Collector()
            await bus.subscribe("once", got)
            await got.wait_for(6)
            await asyncio.sleep(0.3)
            return [e.id for e in got.events]
        finally:
            await bus.close()

    assert asyncio.run(main()) == ids


def test_one_ordered_relay_at_a_time(runtime: Runtime, bus_factory: BusFactory) -> None:
    emit_ticks(runtime, 4)

    async def main() -> None:
        bus = bus_factory()
        try:
            first = Relay(sessions=runtime.sessions, bus=bus)
            second = Relay(sessions=runtime.sessions, bus=bus)
            claim = await asyncio.to_thread(first._claim)  # first is mid-pass
            assert claim is not None
            assert len(claim.seqs) == 4
            assert (await second.run_once()).published == 0  # waits for its turn
            await asyncio.to_thread(first._release, claim)  # first died before publishing
            assert (await second.run_once()).published == 4
        finally:
            await bus.close()

    asyncio.run(main())
    assert all(r.sent_at is not None for r in rows(runtime))


def test_unordered_relays_claim_disjoint_batches(runtime: Runtime, bus_factory: BusFactory) -> None:
    with runtime.sessions() as s:
        if not is_postgres(s):
            pytest.skip("parallel relays need PostgreSQL (SKIP LOCKED)")
    emit_ticks(runtime, 20)

    async def main() -> None:
        bus = bus_factory()
        try:
            a = Relay(sessions=runtime.sessions, bus=bus, ordered=False, batch_size=8)
            b = Relay(sessions=runtime.sessions, bus=bus, ordered=False, batch_size=8)
            claim_a = await asyncio.to_thread(a._claim)
            claim_b = await asyncio.to_thread(b._claim)
            assert claim_a is not None
            assert claim_b is not None
            assert set(claim_a.seqs).isdisjoint(claim_b.seqs)
            assert len(claim_a.seqs) == len(claim_b.seqs) == 8
            await asyncio.to_thread(a._release, claim_a)
            await asyncio.to_thread(b._release, claim_b)
        finally:
            await bus.close()

    asyncio.run(main())


def test_running_relay_wakes_when_an_outbox_row_commits(
    runtime: Runtime, bus_factory: BusFactory
) -> None:
    async def main() -> None:
        bus = bus_factory()
        stop = asyncio.Event()
        relay = Relay(sessions=runtime.sessions, bus=bus, poll_interval=60)
        task = asyncio.create_task(relay.run(stop))
        try:
            got = Collector()
            await bus.subscribe("wake", got)
            await asyncio.sleep(0.3)  # the relay is idle, next poll in 60 s
            ids = await asyncio.to_thread(emit_ticks, runtime, 2)
            await got.wait_for(2, timeout=5)  # well before the next poll
            assert [e.id for e in got.events] == ids
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await bus.close()

    asyncio.run(main())


def test_status_and_prune(runtime: Runtime, bus_factory: BusFactory) -> None:
    emit_ticks(runtime, 3)
    with runtime.sessions() as s:
        status = outbox_status(s)
    assert (status.pending, status.sent, status.failing, status.last_error) == (3, 0, 0, None)
    assert status.oldest_pending_age_s is not None
    assert 0 <= status.oldest_pending_age_s < 60

    async def main() -> None:
        bus = bus_factory()
        try:
            await Relay(sessions=runtime.sessions, bus=bus).drain(timeout=20)
        finally:
            await bus.close()

    asyncio.run(main())
    with runtime.sessions.begin() as s:
        assert prune_sent(s, sent_before=utcnow() - timedelta(hours=1)) == 0
        assert prune_sent(s, sent_before=utcnow() + timedelta(seconds=1)) == 3
    assert rows(runtime) == []
