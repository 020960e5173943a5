"""The in-process event bus (``memory://``): a durable log in the application database.

"In-process" means no broker to run: delivery happens inside the application process.
It does not mean "in memory only" — nothing is lost when the process dies:

* **The log** is the ``bus_log`` table. :meth:`MemoryBus.publish_many` appends envelopes
  in one committed transaction, in order, ignoring an id already there (publishing is
  idempotent, like JetStream's ``Nats-Msg-Id``). ``seq`` only grows (SQLite
  ``AUTOINCREMENT``; on PostgreSQL appends are serialised by a transaction-scoped
  advisory lock, so a reader can never see seq N+1 committed before seq N).
* **Durable consumers** keep their position in the ``consumer_offsets`` table (consumer
  name → the last ``seq`` acknowledged). A subscription reads the rows after its offset
  that match its type filter, hands them to the handler as one batch and, only after
  the handler returned, advances the offset (the acknowledgement). A crash between the
  handler's commit and the offset update redelivers that batch after the restart;
  consumers deduplicate by event id (:mod:`safecity.platform.consumers`).
* **Waking up**: a publish in this process wakes its subscriptions at once; rows
  appended by another process (e.g. a separate ``safecity events relay``) are found by
  polling every ``poll_interval`` seconds.

The outbox stays the source of truth for what happened; ``bus_log`` is the delivery log,
the same role a JetStream stream plays. Several processes may share one database (each
subscription of a consumer name then gets every event once per process — still safe,
as consumers are idempotent), but for competing consumers across processes use NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Index, Integer, String, Text, or_, select, text
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from safecity.platform.bus import Handler, PublishError, check_type_filter, decode, encode
from safecity.platform.db import ID, Base, UTCDateTime, is_postgres, transaction, utcnow
from safecity.platform.events import Envelope

log = logging.getLogger(__name__)

SEQ = BigInteger().with_variant(Integer, "sqlite")
LOG_LOCK_KEY = 0x5AFEC17B05  # pg_advisory_xact_lock key serialising appends to bus_log


class BusLogEntry(Base):
    """One published event in the in-process bus's log."""

    __tablename__ = "bus_log"
    __table_args__ = (
        Index("ix_bus_log_type_seq", "type", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ID, unique=True)
    type: Mapped[str] = mapped_column(String(120))
    data: Mapped[str] = mapped_column(Text)  # the envelope as JSON
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsumerOffset(Base):
    """Where a durable consumer of the in-process bus is: the last acknowledged seq."""

    __tablename__ = "consumer_offsets"

    consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
    position: Mapped[int] = mapped_column(SEQ, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _insert(session: Session, table: Any) -> Any:
    """A dialect INSERT that supports ``on_conflict_do_nothing``."""
    if is_postgres(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def _filter_clause(types: Sequence[str]) -> ColumnElement[bool] | None:
    if not types:
        return None
    exact = [t for t in types if not t.endswith(".>")]
    clauses: list[ColumnElement[bool]] = []
    if exact:
        clauses.append(BusLogEntry.type.in_(exact))
    for pattern in types:
        if pattern.endswith(".>"):
            clauses.append(BusLogEntry.type.startswith(pattern[:-1], autoescape=True))
    return or_(*clauses)


class MemoryBus:
    """The embedded bus; see the module docstring."""

    def __init__(self, sessions: sessionmaker[Session], *, poll_interval: float = 0.5) -> None:
        self._sessions = sessions
        self.poll_interval = poll_interval
        self._subs: dict[str, MemorySubscription] = {}

    # -- publishing ------------------------------------------------------------------
    async def publish(self, envelope: Envelope) -> None:
        await self.publish_many([envelope])

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        try:
            await asyncio.to_thread(self._append, list(envelopes))
        except Exception as exc:
            raise PublishError(0, exc) from exc
        for sub in list(self._subs.values()):
            sub.wake()

    def _append(self, envelopes: list[Envelope]) -> None:
        now = utcnow()
        rows = [
            {"event_id": e.id, "type": e.type, "data": encode(e).decode(), "published_at": now}
            for e in envelopes
        ]
        with transaction(self._sessions) as session:
            if is_postgres(session):
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOG_LOCK_KEY})
            stmt = _insert(session, BusLogEntry).on_conflict_do_nothing(index_elements=["event_id"])
            session.execute(stmt, rows)

    # -- consuming -------------------------------------------------------------------
    async def subscribe(
        self,
        consumer: str,
        handler: Handler,
        *,
        types: Sequence[str] = (),
        batch_size: int = 100,
    ) -> MemorySubscription:
        if not consumer or len(consumer) > 120:
            raise ValueError("consumer name must be 1 to 120 characters")
        if consumer in self._subs:
            raise ValueError(f"consumer {consumer!r} is already subscribed on this bus")
        sub = MemorySubscription(
            bus=self,
            consumer=consumer,
            handler=handler,
            types=check_type_filter(types),
            batch_size=batch_size,
        )
        self._subs[consumer] = sub
        await sub.start()
        return sub

    def _forget(self, consumer: str) -> None:
        self._subs.pop(consumer, None)

    def load_offset(self, consumer: str) -> int:
        with transaction(self._sessions) as session:
            stmt = (
                _insert(session, ConsumerOffset)
                .values(consumer=consumer, position=0, updated_at=utcnow())
                .on_conflict_do_nothing(index_elements=["consumer"])
            )
            session.execute(stmt)
            position = session.scalar(
                select(ConsumerOffset.position).where(ConsumerOffset.consumer == consumer)
            )
            return int(position or 0)

    def save_offset(self, consumer: str, position: int) -> None:
        with transaction(self._sessions) as session:
            session.execute(
                sa_update(ConsumerOffset)
                .where(ConsumerOffset.consumer == consumer, ConsumerOffset.position < position)
                .values(position=position, updated_at=utcnow())
            )

    def read(self, position: int, types: Sequence[str], limit: int) -> list[tuple[int, str]]:
        stmt = select(BusLogEntry.seq, BusLogEntry.data).where(BusLogEntry.seq > position)
        clause = _filter_clause(types)
        if clause is not None:
            stmt = stmt.where(clause)
        stmt = stmt.order_by(BusLogEntry.seq).limit(limit)
        with self._sessions() as session:
            return [(int(seq), data) for seq, data in session.execute(stmt)]

    async def close(self) -> None:
        for sub in list(self._subs.values()):
            await sub.stop()


def _backoff(failures: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    return float(min(cap, base * 2 ** min(failures - 1, 16)))


class MemorySubscription:
    """A durable consumer of the in-process bus: reads after its offset, acks by advancing it."""

    def __init__(
        self,
        *,
        bus: MemoryBus,
        consumer: str,
        handler: Handler,
        types: list[str],
        batch_size: int,
    ) -> None:
        self._bus = bus
        self._consumer = consumer
        self._handler = handler
        self._types = types
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.position = 0

    @property
    def consumer(self) -> str:
        return self._consumer

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self.position = await asyncio.to_thread(self._bus.load_offset, self._consumer)
        self._task = asyncio.create_task(self._run(), name=f"bus-memory-{self._consumer}")

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        waiter = self._wake if wakeable else self._stopped
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)

    async def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                rows = await asyncio.to_thread(
                    self._bus.read, self.position, self._types, self._batch_size
                )
            except Exception:
                failures += 1
                log.exception("bus_log read failed for consumer %s", self._consumer)
                await self._sleep(_backoff(failures), wakeable=False)
                continue
            if not rows:
                await self._sleep(self._bus.poll_interval, wakeable=True)
                continue
            envelopes = []
            for seq, data in rows:
                try:
                    envelopes.append(decode(data))
                except ValueError:
                    log.error("skipping undecodable bus_log row seq=%s", seq)
            try:
                if envelopes:
                    await self._handler(envelopes)
                last = rows[-1][0]
                await asyncio.to_thread(self._bus.save_offset, self._consumer, last)
            except Exception:
                failures += 1
                log.exception(
                    "consumer %s failed on a batch of %d event(s); retrying (attempt %d)",
                    self._consumer,
                    len(envelopes),
                    failures,
                )
                # Not acknowledged: the same batch is read again after the backoff.
                await self._sleep(_backoff(failures), wakeable=False)
                continue
            failures = 0
            self.position = last

    async def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=10)
            except TimeoutError:
                log.warning("consumer %s did not stop in time; cancelled", self._consumer)
        self._bus._forget(self._consumer)
