"""Idempotent, durable event consumers.

A :class:`Consumer` turns a plain function ``apply(session, envelope)`` into a bus
subscriber that is

* **at least once**: the bus acknowledges a batch only after :meth:`Consumer.handle`
  returned, i.e. after the batch's transaction committed;
* **idempotent**: each applied event leaves a ``processed_events`` row, unique per
  (consumer, event id), written in the *same transaction* as ``apply``'s effects. An
  event delivered again (after a crash between commit and ack, a NAK, or a relay that
  published twice) is skipped. Two instances racing on one event: one commit fails on
  the unique key, its batch is redelivered and then skipped;
* **durable**: the subscription is named after the consumer, so after a restart the bus
  (JetStream durable consumer, or the in-process bus's ``consumer_offsets`` row) resumes
  where the consumer left off.

``apply`` must do all its work through ``session`` (it must not commit) and must not
publish to the bus directly; to emit follow-up events it calls
:func:`safecity.platform.outbox.emit` with the same session. If ``apply`` raises, the
whole batch rolls back and is delivered again after a backoff.

Domains declare their consumers with :func:`register_consumer`;
``safecity events relay --consumers`` runs the relay and every registered consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from safecity.platform.bus import EventBus, Subscription, check_type_filter
from safecity.platform.db import ID, Base, UTCDateTime, transaction, utcnow
from safecity.platform.events import Envelope

Apply = Callable[[Session, Envelope], None]


class ProcessedEvent(Base):
    """Dedup record: ``consumer`` has applied event ``event_id`` (primary key = unique)."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class BatchResult:
    applied: int
    skipped: int


Hook = Callable[[Sequence[Envelope], BatchResult | None], None]


class Consumer:
    """An idempotent durable consumer; see the module docstring.

    ``on_received`` runs when a batch arrives (before the transaction) and
    ``on_committed`` after the transaction committed but before the bus acknowledges:
    the kill test uses them to die at exactly those moments.
    """

    def __init__(
        self,
        *,
        name: str,
        sessions: sessionmaker[Session],
        apply: Apply,
        types: Sequence[str] = (),
        batch_size: int = 200,
        on_received: Hook | None = None,
        on_committed: Hook | None = None,
    ) -> None:
        self.name = name
        self.types = check_type_filter(types)
        self.batch_size = batch_size
        self._sessions = sessions
        self._apply = apply
        self._on_received = on_received
        self._on_committed = on_committed
        self.applied = 0
        self.skipped = 0

    def process(self, envelopes: Sequence[Envelope]) -> BatchResult:
        """Apply the events not yet processed, and record them, in one transaction."""
        ids = sorted({e.id for e in envelopes})
        applied = skipped = 0
        with transaction(self._sessions) as session:
            done = set(
                session.scalars(
                    select(ProcessedEvent.event_id).where(
                        ProcessedEvent.consumer == self.name, ProcessedEvent.event_id.in_(ids)
                    )
                )
            )
            now = utcnow()
            records = []
            for envelope in envelopes:
                if envelope.id in done:
                    skipped += 1
                    continue
                done.add(envelope.id)
                self._apply(session, envelope)
                records.append(
                    ProcessedEvent(consumer=self.name, event_id=envelope.id, processed_at=now)
                )
                applied += 1
            session.add_all(records)
        return BatchResult(applied=applied, skipped=skipped)

    async def handle(self, envelopes: Sequence[Envelope]) -> None:
        """The bus handler: returning acknowledges the batch."""
        if self._on_received is not None:
            self._on_received(envelopes, None)
        result = await asyncio.to_thread(self.process, envelopes)
        self.applied += result.applied
        self.skipped += result.skipped
        if self._on_committed is not None:
            self._on_committed(envelopes, result)

    async def start(self, bus: EventBus) -> Subscription:
        """Subscribe durably on ``bus`` under this consumer's name."""
        return await bus.subscribe(
            self.name, self.handle, types=self.types, batch_size=self.batch_size
        )


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    apply: Apply
    types: tuple[str, ...] = field(default=())
    batch_size: int = 200
    description: str = ""


_CONSUMERS: dict[str, ConsumerSpec] = {}


def register_consumer(
    name: str,
    apply: Apply,
    *,
    types: Sequence[str] = (),
    batch_size: int = 200,
    description: str = "",
) -> ConsumerSpec:
    """Declare a consumer (at import time of the domain's ``events.py``)."""
    spec = ConsumerSpec(
        name=name,
        apply=apply,
        types=tuple(check_type_filter(types)),
        batch_size=batch_size,
        description=description,
    )
    existing = _CONSUMERS.get(name)
    if existing is not None and existing.apply is not apply:
        raise ValueError(f"consumer {name!r} registered twice")
    _CONSUMERS[name] = spec
    return spec


def registered_consumers() -> list[ConsumerSpec]:
    return sorted(_CONSUMERS.values(), key=lambda s: s.name)


async def start_registered(bus: EventBus, sessions: sessionmaker[Session]) -> list[Subscription]:
    """Start every registered consumer on ``bus``."""
    subs = []
    for spec in registered_consumers():
        consumer = Consumer(
            name=spec.name,
            sessions=sessions,
            apply=spec.apply,
            types=spec.types,
            batch_size=spec.batch_size,
        )
        subs.append(await consumer.start(bus))
    return subs
