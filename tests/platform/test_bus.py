"""The EventBus contract, run on the in-process bus (default) and NATS JetStream
(``SAFECITY_TEST_SERVICES=1``)."""

from __future__ import annotations

import asyncio

import pytest

from safecity.platform.bus import check_type_filter, make_bus, type_matches
from safecity.platform.bus_memory import MemoryBus
from safecity.platform.bus_nats import NatsBus
from safecity.platform.errors import InvalidInput
from safecity.settings import Settings
from tests.platform.conftest import BusFactory, Collector, ticks

pytestmark = [pytest.mark.bus, pytest.mark.db]


def test_subscriber_gets_only_its_types_in_order(bus_factory: BusFactory) -> None:
    async def main() -> None:
        bus = bus_factory()
        try:
            a, b = ticks("test.bus.a", 6), ticks("test.bus.b", 4)
            mixed = [e for pair in zip(a, b, strict=False) for e in pair] + a[4:]
            await bus.publish_many(mixed)
            only_a, everything = Collector(), Collector()
            await bus.subscribe("only-a", only_a, types=["test.bus.a"], batch_size=4)
            await bus.subscribe("everything", everything)
            await only_a.wait_for(6)
            await everything.wait_for(10)
            await asyncio.sleep(0.2)
            assert [e.id for e in only_a.events] == [e.id for e in a]
            assert [e.id for e in everything.events] == [e.id for e in mixed]
            assert all(len(batch) <= 4 for batch in only_a.batches)
            assert only_a.events[0] == a[0]  # the envelope survives the trip intact
        finally:
            await bus.close()

    asyncio.run(main())


def test_prefix_filter(bus_factory: BusFactory) -> None:
    async def main() -> None:
        bus = bus_factory()
        try:
            await bus.publish_many(
                ticks("test.bus.other.c", 2) + ticks("test.bus.a", 1) + ticks("test.kill.tick", 1)
            )
            got = Collector()
            await bus.subscribe("prefix", got, types=["test.bus.>"])
            await got.wait_for(3)
            await asyncio.sleep(0.2)
            assert sorted(e.type for e in got.events) == [
                "test.bus.a",
                "test.bus.other.c",
                "test.bus.other.c",
            ]
        finally:
            await bus.close()

    asyncio.run(main())


def test_durable_consumer_resumes_after_restart(bus_factory: BusFactory) -> None:
    first, second = ticks("test.bus.a", 5), ticks("test.bus.a", 3, start=5)

    async def run_first() -> list[str]:
        bus = bus_factory()
        try:
            await bus.publish_many(first)
            got = Collector()
            await bus.subscribe("durable", got, types=["test.bus.a"])
            await got.wait_for(5)
            await asyncio.sleep(0.1)
            return [e.id for e in got.events]
        finally:
            await bus.close()

    async def run_second() -> list[str]:
        bus = bus_factory()  # a new process, in effect: a fresh bus object and connection
        try:
            await bus.publish_many(second)
            got = Collector()
            await bus.subscribe("durable", got, types=["test.bus.a"])
            await got.wait_for(3)
            await asyncio.sleep(0.3)
            return [e.id for e in got.events]
        finally:
            await bus.close()

    assert asyncio.run(run_first()) == [e.id for e in first]
    assert asyncio.run(run_second()) == [e.id for e in second]


def test_failed_batch_is_delivered_again(bus_factory: BusFactory) -> None:
    async def main() -> None:
        bus = bus_factory()
        try:
            events = ticks("test.bus.a", 3)
            await bus.publish_many(events)
            got = Collector(fail_first=1)
            await bus.subscribe("flaky", got, types=["test.bus.a"])
            await got.wait_for(3)
            assert got.calls >= 2
            assert [e.id for e in got.events] == [e.id for e in events]
        finally:
            await bus.close()

    asyncio.run(main())


def test_publishing_an_event_twice_stores_it_once(bus_factory: BusFactory) -> None:
    async def main() -> None:
        bus = bus_factory()
        try:
            event = ticks("test.bus.a", 1)[0]
            await bus.publish(event)
            await bus.publish(event)
            await bus.publish_many([event, *ticks("test.bus.a", 1, start=1)])
            got = Collector()
            await bus.subscribe("once", got)
            await got.wait_for(2)
            await asyncio.sleep(0.3)
            assert [e.payload["n"] for e in got.events] == [0, 1]
        finally:
            await bus.close()

    asyncio.run(main())


def test_same_consumer_twice_on_one_bus_is_refused(bus_factory: BusFactory) -> None:
    async def main() -> None:
        bus = bus_factory()
        try:
            await bus.subscribe("dup", Collector())
            with pytest.raises(ValueError, match="already subscribed"):
                await bus.subscribe("dup", Collector())
        finally:
            await bus.close()

    asyncio.run(main())


def test_type_filter_rules() -> None:
    assert type_matches("orgs.org.created", [])
    assert type_matches("orgs.org.created", ["orgs.>"])
    assert type_matches("orgs.org.created", ["x", "orgs.org.created"])
    assert not type_matches("orgsx.a", ["orgs.>"])
    assert not type_matches("orgs", ["orgs.>"])
    for bad in ("", ".>", "a b", "a.*", "a..b", ">"):
        with pytest.raises(ValueError, match="invalid event type filter"):
            check_type_filter([bad])


def test_make_bus_picks_by_url(settings: Settings) -> None:
    memory = make_bus(settings.model_copy(update={"bus_url": "memory://"}))
    assert isinstance(memory, MemoryBus)
    nats_bus = make_bus(
        settings.model_copy(update={"bus_url": "nats://127.0.0.1:4222", "bus_stream_prefix": "X.y"})
    )
    assert isinstance(nats_bus, NatsBus)
    assert nats_bus.stream == "X_y_EVENTS"  # names made safe for JetStream
    with pytest.raises(InvalidInput, match="unsupported bus URL"):
        make_bus(settings.model_copy(update={"bus_url": "kafka://x"}))


def test_nats_unreachable_is_service_unavailable() -> None:
    async def main() -> None:
        bus = NatsBus("nats://127.0.0.1:1", prefix="NOPE", connect_timeout=1)
        from safecity.platform.bus import PublishError

        with pytest.raises(PublishError) as info:
            await bus.publish_many(ticks("test.bus.a", 1))
        assert info.value.published == 0
        assert "not reachable" in str(info.value)
        await bus.close()

    asyncio.run(main())
