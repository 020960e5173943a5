"""Group commit for audit records of hot public reads (the portal's case lookup).

Why
---
:func:`safecity.security.audit.record` appends in the caller's transaction, under the lock
on the one-row chain head, held from the append to the commit. That is right for changes
(the record commits with the change or not at all) but it serialises every request that
records anything: measured in ``benchmarks/portal_lookup.py`` (2026-11-26), ten to
sixteen portal lookups queued on ``audit_head`` and the portal answered about 100
lookups/s where a bare point lookup answers 1,200.

How
---
A read changes nothing, so its record does not have to share the reader's transaction; it
only has to be **durable before the answer leaves**. :func:`write` hands a record to the
engine's writer thread and blocks until the record is committed. The thread takes
whatever is queued (up to :data:`MAX_BATCH` records), appends them in one transaction —
the same :mod:`~safecity.security.audit` chaining code, one head lock and one WAL flush for
the whole batch — commits, then releases every waiting caller. While one batch commits,
the next one queues, so batches grow with the load and the head is locked once per batch
instead of once per request (PostgreSQL's own "group commit", one level up).

Rules for callers
-----------------
- Commit (or end) the caller's own transaction **before** :func:`write`: on SQLite the
  writer needs the database's write lock, which an open write transaction holds.
- Only for records that stand alone (reads, refused attempts). A change's record goes
  through :func:`~safecity.security.audit.record` in the change's transaction.
- :func:`write` raises :class:`AuditUnavailable` (503) when the batch failed or did not
  commit within ``timeout``: the caller must not answer as if the read had been recorded.

One writer thread per engine (so per process and database); it stops after
:data:`IDLE_EXIT_S` idle and starts again on the next record. Several processes each run
their own writer; they share the chain through the head lock, as before.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from safecity.platform.errors import ServiceUnavailable
from safecity.platform.runtime import SETTINGS_INFO_KEY, settings_for
from safecity.security import audit
from safecity.settings import Settings

log = logging.getLogger("safecity.audit.writer")

MAX_BATCH = 512
IDLE_EXIT_S = 5.0
DEFAULT_TIMEOUT_S = 10.0


class AuditUnavailable(ServiceUnavailable):
    """The audit record could not be made durable, so the read must not be answered."""

    title = "Audit log unavailable"
    slug = "audit-unavailable"


_Item = tuple[audit.AuditEntry, Settings, "Future[None]"]


class AuditWriter:
    """The writer thread of one engine; use :func:`write`, not this class directly."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.records = 0

    def submit(self, entry: audit.AuditEntry, settings: Settings) -> Future[None]:
        done: Future[None] = Future()
        self._queue.put((entry, settings, done))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="safecity-audit-writer", daemon=True
                )
                self._thread.start()
        return done

    def _take(self) -> list[_Item] | None:
        try:
            first = self._queue.get(timeout=IDLE_EXIT_S)
        except queue.Empty:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                with self._lock:
                    if self._queue.empty():  # no record slipped in after the timeout
                        self._thread = None
                        return
                continue
            # One transaction per settings object (one in production; tests give each
            # test its own key directory over a shared engine).
            groups: dict[int, list[_Item]] = {}
            for item in batch:
                groups.setdefault(id(item[1]), []).append(item)
            for group in groups.values():
                self._commit(group)

    def _commit(self, batch: list[_Item]) -> None:
        settings = batch[0][1]
        try:
            with Session(bind=self.engine, info={SETTINGS_INFO_KEY: settings}) as session:
                for entry, _, _ in batch:
                    audit.enqueue(session, entry)
                session.commit()
        except Exception:  # every waiting caller learns it, none answers
            log.exception("audit batch of %d record(s) failed", len(batch))
            for _, _, done in batch:
                done.set_exception(AuditUnavailable("the audit log could not be written"))
            return
        self.batches += 1
        self.records += len(batch)
        for _, _, done in batch:
            done.set_result(None)


_writers: WeakKeyDictionary[Engine, AuditWriter] = WeakKeyDictionary()
_writers_lock = threading.Lock()


def writer_for(engine: Engine) -> AuditWriter:
    with _writers_lock:
        found = _writers.get(engine)
        if found is None:
            found = _writers[engine] = AuditWriter(engine)
        return found


def write(
    engine: Engine,
    settings: Settings,
    entry: audit.AuditEntry,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Append ``entry`` (from :func:`~safecity.security.audit.build`) to the chain and
    return once it is committed; :class:`AuditUnavailable` if it was not."""
    done = writer_for(engine).submit(entry, settings)
    try:
        done.result(timeout=timeout)
    except FutureTimeout:
        raise AuditUnavailable("the audit log did not answer in time") from None


def commit_and_write(session: Session, entry: audit.AuditEntry) -> None:
    """Commit ``session``, then :func:`write` ``entry`` (the read it records is over).

    A session bound to a connection rather than an engine (an outer transaction owned by
    someone else) gets the record in its own transaction instead, as :func:`audit.record`
    would.
    """
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        audit.enqueue(session, entry)
        session.commit()
        return
    session.commit()
    write(bind, settings_for(session), entry)
