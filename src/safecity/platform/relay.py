"""Outbox relay: moves committed :class:`~safecity.platform.outbox.OutboxEvent` rows to the bus.

One pass (:meth:`Relay.run_once`) claims up to ``batch_size`` pending rows in ``seq``
order, publishes them with one :meth:`~safecity.platform.bus.EventBus.publish_many`, and
marks the stored prefix sent. When publishing fails part-way, the rows stored so far
are marked sent, the first failed row gets ``attempts + 1`` and ``last_error``, and the
pass stops there — the rows after it are not published before it, so a failure never
reorders events. :meth:`Relay.run` repeats passes, backing off exponentially (up to
``max_backoff`` seconds) after a failure.

Nothing is lost: a row is marked sent only after the bus acknowledged it. A crash
between the bus's acknowledgement and the mark publishes the row again; both buses
drop a repeated event id (``bus_log.event_id`` is unique; JetStream deduplicates by
``Nats-Msg-Id``), and consumers deduplicate by id anyway.

Several relay processes are safe:

* ``ordered=True`` (default): one relay publishes at a time, so the bus receives events
  in ``seq`` order. On PostgreSQL a pass holds ``pg_try_advisory_xact_lock`` for its
  transaction and claims rows ``FOR UPDATE SKIP LOCKED``; on SQLite (a single writer)
  a pass holds an exclusive ``flock`` on ``<database file>.relay.lock``. A relay that
  finds the lock taken waits for its next turn; if the holder dies, its lock dies with
  it. Extra relays are hot standbys.
* ``ordered=False`` (PostgreSQL): relays claim disjoint batches with ``FOR UPDATE SKIP
  LOCKED`` and publish in parallel — more throughput, order kept only within a batch.

``seq`` is the order rows were *inserted*; two transactions that commit concurrently
are not causally ordered, and the relay publishes whichever has committed.

In one process the relay wakes as soon as a session that added outbox rows commits
(a SQLAlchemy ``after_commit`` hook); rows committed by other processes are found by
polling every ``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from safecity.platform.bus import EventBus, PublishError
from safecity.platform.db import is_postgres, utcnow
from safecity.platform.events import Envelope
from safecity.platform.outbox import OutboxEvent

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x5AFEC17E1A  # pg advisory lock: one ordered relay pass at a time


# -- in-process wake-up --------------------------------------------------------------
_FLAG = "safecity.outbox_added"
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_waiters_lock = threading.Lock()
_listeners_installed = False


def _after_flush(session: Session, _ctx: Any) -> None:
    if not session.info.get(_FLAG) and any(isinstance(o, OutboxEvent) for o in session.new):
        session.info[_FLAG] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        with _waiters_lock:
            waiters = list(_waiters)
        for loop, wake in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(wake.set)


def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)


def _install_listeners() -> None:
    global _listeners_installed
    with _waiters_lock:
        if _listeners_installed:
            return
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
        _listeners_installed = True


# -- SQLite single-writer lock -------------------------------------------------------
class _FileLock:
    """A non-blocking exclusive ``flock``; a process-local lock for in-memory SQLite."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._fd: int | None = None
        self._local = threading.Lock()

    def try_acquire(self) -> bool:
        if self._path is None:
            return self._local.acquire(blocking=False)
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._path is None:
            self._local.release()
        elif self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _sqlite_lock_path(engine: Engine) -> str | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return f"{database}.relay.lock"


# -- the relay -----------------------------------------------------------------------
@dataclass(frozen=True)
class RelayResult:
    published: int
    error: str | None = None


@dataclass
class _Claim:
    session: Session
    seqs: list[int]
    envelopes: list[Envelope]
    file_locked: bool


class Relay:
    """Publishes pending outbox rows to ``bus``; see the module docstring."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        bus: EventBus,
        batch_size: int = 500,
        ordered: bool = True,
        poll_interval: float = 0.2,
        max_backoff: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self.bus = bus
        self.batch_size = batch_size
        self.ordered = ordered
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._file_lock: _FileLock | None = None
        self.failures = 0

    def _lock_for(self, session: Session) -> _FileLock:
        if self._file_lock is None:
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
            self._file_lock = _FileLock(_sqlite_lock_path(engine))
        return self._file_lock

    def _claim(self) -> _Claim | None:
        session = self._sessions()
        file_locked = False
        try:
            postgres = is_postgres(session)
            if self.ordered:
                if postgres:
                    got = session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY)))
                else:
                    got = file_locked = self._lock_for(session).try_acquire()
                if not got:
                    session.rollback()
                    session.close()
                    return None
            stmt = (
                select(OutboxEvent)
                .where(OutboxEvent.sent_at.is_(None))
                .order_by(OutboxEvent.seq)
                .limit(self.batch_size)
            )
            if postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(session.scalars(stmt))
            if not rows:
                self._release(_Claim(session, [], [], file_locked))
                return None
            return _Claim(
                session=session,
                seqs=[r.seq for r in rows],
                envelopes=[r.envelope() for r in rows],
                file_locked=file_locked,
            )
        except BaseException:
            self._release(_Claim(session, [], [], file_locked))
            raise

    def _release(self, claim: _Claim) -> None:
        try:
            claim.session.rollback()
            claim.session.close()
        finally:
            if claim.file_locked and self._file_lock is not None:
                self._file_lock.release()

    def _finish(self, claim: _Claim, published: int, error: str | None) -> None:
        session = claim.session
        now = utcnow()
        sent = claim.seqs[:published]
        if sent:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.seq.in_(sent))
                .values(sent_at=now, attempts=OutboxEvent.attempts + 1, last_error=None)
            )
        if error is not None and published < len(claim.seqs):
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.seq == claim.seqs[published])
                .values(attempts=OutboxEvent.attempts + 1, last_error=error[:1000])
            )
        session.commit()

    async def run_once(self) -> RelayResult:
        """One pass: claim, publish, mark. Returns how many rows were published."""
        claim = await asyncio.to_thread(self._claim)
        if claim is None:
            return RelayResult(0)
        try:
            error: str | None = None
            try:
                await self.bus.publish_many(claim.envelopes)
                published = len(claim.envelopes)
            except PublishError as exc:
                published, error = exc.published, f"{type(exc.cause).__name__}: {exc.cause}"
            except Exception as exc:
                published, error = 0, f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self._finish, claim, published, error)
        finally:
            await asyncio.to_thread(self._release, claim)
        if error is not None:
            log.warning("relay: published %d event(s), then failed: %s", published, error)
        return RelayResult(published, error)

    def _backoff(self) -> float:
        return float(min(self.max_backoff, 0.1 * 2 ** min(self.failures - 1, 16)))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set, backing off after failures."""
        stop = stop or asyncio.Event()
        _install_listeners()
        wake = asyncio.Event()
        key = (asyncio.get_running_loop(), wake)
        with _waiters_lock:
            _waiters.add(key)
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    result = await self.run_once()
                except Exception as exc:  # e.g. the database is down
                    log.warning("relay pass failed: %s", exc)
                    result = RelayResult(0, str(exc))
                if result.error is not None:
                    self.failures += 1
                    await _wait_any(stop, None, self._backoff())
                    continue
                self.failures = 0
                if result.published:
                    continue  # there may be more pending
                await _wait_any(stop, wake, self.poll_interval)
        finally:
            with _waiters_lock:
                _waiters.discard(key)
            if self._file_lock is not None:
                self._file_lock.close()
                self._file_lock = None

    async def drain(self, *, timeout: float = 60.0) -> int:
        """Publish until nothing is pending (tests, benchmarks, ``safecity events relay
        --once``); raises :class:`TimeoutError` if a failure persists past ``timeout``."""
        total = 0
        async with asyncio.timeout(timeout):
            while True:
                result = await self.run_once()
                total += result.published
                if result.error is not None:
                    self.failures += 1
                    await asyncio.sleep(self._backoff())
                    continue
                self.failures = 0
                if result.published == 0 and not await asyncio.to_thread(self._pending):
                    return total

    def _pending(self) -> int:
        with self._sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.sent_at.is_(None))
                )
                or 0
            )


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# -- status and housekeeping ---------------------------------------------------------
@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    sent: int
    failing: int
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float | None
    last_error: str | None
    last_error_event_id: str | None


def outbox_status(session: Session) -> OutboxStatus:
    """Pending count, oldest pending age and the error holding the queue, if any."""
    pending_q = OutboxEvent.sent_at.is_(None)
    pending, oldest = session.execute(
        select(func.count(), func.min(OutboxEvent.created_at)).where(pending_q)
    ).one()
    sent = session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_not(None))
    )
    failing = session.scalar(
        select(func.count()).select_from(OutboxEvent).where(pending_q, OutboxEvent.attempts > 0)
    )
    error_row = session.execute(
        select(OutboxEvent.id, OutboxEvent.last_error)
        .where(pending_q, OutboxEvent.last_error.is_not(None))
        .order_by(OutboxEvent.seq)
        .limit(1)
    ).first()
    oldest_at: datetime | None = oldest
    age = (utcnow() - oldest_at).total_seconds() if oldest_at is not None else None
    return OutboxStatus(
        pending=int(pending or 0),
        sent=int(sent or 0),
        failing=int(failing or 0),
        oldest_pending_at=oldest_at,
        oldest_pending_age_s=age,
        last_error=error_row[1] if error_row else None,
        last_error_event_id=error_row[0] if error_row else None,
    )


def prune_sent(session: Session, *, sent_before: datetime) -> int:
    """Delete outbox rows sent before ``sent_before`` (for the retention job)."""
    result = session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.sent_at.is_not(None), OutboxEvent.sent_at < sent_before
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
