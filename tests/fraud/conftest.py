"""Fraud fixtures: the city with station areas, and a consumer fed from the outbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from safecity.fraud import pipeline
from safecity.platform.consumers import Consumer, registered_consumers
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.alerts.conftest import areas, point_in_station  # noqa: F401  (fixture, reused)


@pytest.fixture
def engine_host() -> Iterator[pipeline.EngineHost]:
    pipeline.HOST.reset()
    yield pipeline.HOST
    pipeline.HOST.reset()


class Deliver:
    """Hands the outbox's not-yet-delivered fraud events to the ``fraud.engine`` consumer."""

    def __init__(self, runtime: Runtime) -> None:
        [spec] = [s for s in registered_consumers() if s.name == pipeline.CONSUMER]
        self.consumer = Consumer(
            name=spec.name, sessions=runtime.sessions, apply=spec.apply, types=spec.types
        )
        self.runtime = runtime
        self.seq = 0

    def __call__(self) -> int:
        with self.runtime.sessions() as s:
            rows = s.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.seq > self.seq, OutboxEvent.type.in_(self.consumer.types))
                .order_by(OutboxEvent.seq)
            ).all()
            envelopes = [row.envelope() for row in rows]
            if rows:
                self.seq = rows[-1].seq
        return self.consumer.process(envelopes).applied if envelopes else 0


@pytest.fixture
def deliver(runtime: Runtime, engine_host: pipeline.EngineHost) -> Deliver:
    return Deliver(runtime)
