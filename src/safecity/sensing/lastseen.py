"""``Sensor.last_seen_at`` without a write per event.

The pipeline notes each batch's sensor ids in memory (:meth:`LastSeenTracker.mark`, a dict
assignment per event) and :meth:`LastSeenTracker.maybe_flush` writes them at most every
``flush_every_s`` seconds as **one** bulk UPDATE by primary key (``executemany``), newest
time per sensor. A failed flush keeps the marks for the next one (a newer mark wins).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session, sessionmaker

from safecity.platform import metrics
from safecity.sensing.models import Sensor

__all__ = ["LastSeenTracker"]

log = logging.getLogger(__name__)

MAX_PENDING: Final = 2_000_000
"""More distinct sensors than this between two flushes: newer marks are dropped (counted)."""

LAST_SEEN_FLUSHES = metrics.counter(
    "safecity_sensor_last_seen_flushes_total",
    "Bulk updates of sensors.last_seen_at by the pipeline, by outcome.",
    ["outcome"],
)


_T = cast(Table, Sensor.__table__)
# updated_at set to itself: a heartbeat is not an edit of the registry record.
_UPDATE = (
    update(_T)
    .where(_T.c.id == bindparam("sid"))
    .values(last_seen_at=bindparam("seen"), updated_at=_T.c.updated_at)
)


class LastSeenTracker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        flush_every_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.flush_every_s = flush_every_s
        self.clock = clock
        self._monotonic = monotonic
        self._pending: dict[str, float] = {}
        self._flushed_at = monotonic()
        self._lock = threading.Lock()
        self.flushes = 0
        self.rows_written = 0
        self.failures = 0
        self.dropped = 0

    def now(self) -> float:
        return self.clock()

    @property
    def pending(self) -> dict[str, float]:
        """The live dict the pipeline writes into (``pending[sensor_id] = now()``)."""
        return self._pending

    def mark(self, sensor_ids: Iterable[str], at: float | None = None) -> None:
        stamp = self.clock() if at is None else at
        pending = self._pending
        for sid in sensor_ids:
            pending[sid] = stamp

    def maybe_flush(self) -> int:
        """Flush when ``flush_every_s`` has passed since the last flush; rows written."""
        if self._monotonic() - self._flushed_at < self.flush_every_s or not self._pending:
            return 0
        return self.flush()

    def flush(self) -> int:
        """Write every pending mark in one bulk UPDATE now; returns the rows written."""
        with self._lock:
            marks, self._pending = self._pending, {}
            self._flushed_at = self._monotonic()
            if not marks:
                return 0
            params: list[dict[str, Any]] = [
                {"sid": sid, "seen": datetime.fromtimestamp(at, UTC)} for sid, at in marks.items()
            ]
            try:
                with self.sessions.begin() as session:
                    session.execute(_UPDATE, params)  # one statement, executemany
            except Exception:
                self.failures += 1
                LAST_SEEN_FLUSHES.labels(outcome="failed").inc()
                log.warning("last_seen flush of %d sensors failed", len(marks), exc_info=True)
                for sid, at in marks.items():  # keep them; a newer mark wins
                    if len(self._pending) >= MAX_PENDING:
                        self.dropped += 1
                    elif self._pending.get(sid, 0.0) < at:
                        self._pending[sid] = at
                return 0
            self.flushes += 1
            self.rows_written += len(params)
            LAST_SEEN_FLUSHES.labels(outcome="written").inc()
            return len(params)

    def stats(self) -> dict[str, Any]:
        return {
            "pending": len(self._pending),
            "flushes": self.flushes,
            "rows_written": self.rows_written,
            "failures": self.failures,
            "dropped": self.dropped,
            "flush_every_s": self.flush_every_s,
        }
