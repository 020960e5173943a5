"""Durable dead letters: the ``sensing_dead_letters`` table, written in batches.

:class:`DbDeadLetterSink` keeps the newest letters in memory (it *is* a
:class:`~safecity.sensing.connectors.deadletter.MemoryDeadLetterSink`) and writes them to
the table with **one** multi-row INSERT at most every ``flush_every_s`` seconds, at most
``max_per_flush`` rows each time. A flood of garbage therefore costs a bounded write rate:
what does not fit in the buffer (``max_buffer``) is dropped from the table but still
counted in ``safecity_deadletter_total{connector, reason}`` (``/metrics``) and in
``dropped``. Raw bodies are cut to :data:`~safecity.sensing.ops_models.MAX_DEAD_RAW` bytes.
The ``sensing.dead_letters.prune`` job (:mod:`safecity.sensing.jobs`) deletes rows older
than :data:`KEEP` and keeps at most :data:`MAX_ROWS`, so the table cannot grow forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, Delete, delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from safecity.platform import metrics
from safecity.platform.db import new_id
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.sensing.connectors.deadletter import DeadLetter, MemoryDeadLetterSink
from safecity.sensing.ops_models import MAX_DEAD_RAW, DeadLetterRow

__all__ = ["DEAD_LETTER_LIST", "KEEP", "MAX_ROWS", "DbDeadLetterSink", "list_letters", "prune"]

log = logging.getLogger(__name__)

KEEP: Final = timedelta(days=14)
MAX_ROWS: Final = 1_000_000

DEADLETTER_DROPPED = metrics.counter(
    "safecity_deadletter_unstored_total",
    "Dead letters counted but not written to the table (write-rate bound or a failed write).",
    ["connector"],
)

DEAD_LETTER_LIST = ListSpec(
    sort={"received_at": DeadLetterRow.received_at, "reason": DeadLetterRow.reason},
    filters={
        "reason": DeadLetterRow.reason,
        "connector": DeadLetterRow.connector,
        "sensor_id": DeadLetterRow.sensor_id,
        "type": DeadLetterRow.type,
    },
    default_sort="-received_at",
    tiebreak=DeadLetterRow.id,
    max_limit=500,
)


def _row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": new_id(),
        "connector": letter.connector[:64],
        "reason": letter.reason[:32],
        "detail": letter.detail[:500],
        "source": letter.source[:200],
        "sensor_id": None if letter.sensor_id is None else letter.sensor_id[:64],
        "type": None if letter.type is None else letter.type[:64],
        "raw": bytes(letter.raw[:MAX_DEAD_RAW]),
        "raw_truncated": len(letter.raw) > MAX_DEAD_RAW,
        "received_at": letter.received_at,
    }


class DbDeadLetterSink(MemoryDeadLetterSink):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        flush_every_s: float = 1.0,
        max_per_flush: int = 5_000,
        max_buffer: int = 20_000,
        capacity: int = 1_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity)
        self.sessions = sessions
        self.flush_every_s = flush_every_s
        self.max_per_flush = max_per_flush
        self._buffer: deque[DeadLetter] = deque()
        self.max_buffer = max_buffer
        self._monotonic = monotonic
        self._flushed_at = monotonic()
        self._flush_lock = threading.Lock()
        self.stored = 0
        self.dropped = 0
        self.failures = 0

    def _store(self, letters: Sequence[DeadLetter]) -> None:
        super()._store(letters)
        with self._lock:
            for letter in letters:
                if len(self._buffer) >= self.max_buffer:
                    self.dropped += 1
                    DEADLETTER_DROPPED.labels(connector=letter.connector).inc()
                else:
                    self._buffer.append(letter)
        if self._monotonic() - self._flushed_at >= self.flush_every_s:
            self.flush()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Insert up to ``max_per_flush`` buffered letters in one statement; rows written.

        A failed insert keeps them buffered (it never raises: a dead letter must not stop
        the pipeline)."""
        if not self._flush_lock.acquire(blocking=False):
            return 0  # another thread is flushing
        try:
            self._flushed_at = self._monotonic()
            with self._lock:
                batch = [
                    self._buffer.popleft()
                    for _ in range(min(self.max_per_flush, len(self._buffer)))
                ]
            if not batch:
                return 0
            try:
                with self.sessions.begin() as session:
                    session.execute(insert(DeadLetterRow), [_row(x) for x in batch])
            except Exception:
                self.failures += 1
                log.warning("could not store %d dead letters", len(batch), exc_info=True)
                with self._lock:
                    room = self.max_buffer - len(self._buffer)
                    keep = batch[:room] if room > 0 else []
                    self._buffer.extendleft(reversed(keep))
                    lost = len(batch) - len(keep)
                if lost:
                    self.dropped += lost
                    DEADLETTER_DROPPED.labels(connector=batch[0].connector).inc(lost)
                return 0
            self.stored += len(batch)
            return len(batch)
        finally:
            self._flush_lock.release()

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "stored": self.stored,
            "buffered": len(self._buffer),
            "dropped": self.dropped,
            "failures": self.failures,
        }


def list_letters(*, session: Session, params: ListParams, item: Any) -> Page[Any]:
    return paginate(session=session, query=select(DeadLetterRow), params=params, item=item)


def prune(
    session: Session, *, now: datetime, keep: timedelta = KEEP, max_rows: int = MAX_ROWS
) -> int:
    """Delete letters older than ``keep`` and the oldest beyond ``max_rows``; rows deleted."""
    gone = _deleted(session, delete(DeadLetterRow).where(DeadLetterRow.received_at < now - keep))
    total = int(session.scalar(select(func.count()).select_from(DeadLetterRow)) or 0)
    if total > max_rows:
        cutoff = session.scalar(
            select(DeadLetterRow.received_at)
            .order_by(DeadLetterRow.received_at.desc())
            .offset(max_rows)
            .limit(1)
        )
        if cutoff is not None:
            gone += _deleted(
                session, delete(DeadLetterRow).where(DeadLetterRow.received_at <= cutoff)
            )
    return gone


def _deleted(session: Session, stmt: Delete) -> int:
    result = cast(CursorResult[Any], session.execute(stmt))
    return int(result.rowcount or 0)
