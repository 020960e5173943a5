"""Concurrent writers keep one linear chain (PostgreSQL: row lock on audit_head; SQLite:
the database write lock). Run on PostgreSQL with ``SAFECITY_TEST_SERVICES=1``."""

from __future__ import annotations

import threading
import time

import pytest

from safecity.platform.runtime import Runtime
from safecity.security import audit

from .audit_support import rows, write_records

pytestmark = pytest.mark.db


def test_two_concurrent_writers_keep_one_linear_chain(runtime: Runtime) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(15):
                write_records(runtime, 2, per_transaction=2, action=f"writer.{name}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    found = rows(runtime.engine)
    assert [r.seq for r in found] == list(range(1, 61))
    assert {r.action for r in found} == {"writer.a", "writer.b"}
    with runtime.sessions() as session:
        report = audit.verify(session)
    assert report.ok, report.summary()
    assert report.records == 60


def test_second_writer_waits_for_the_head_lock(runtime: Runtime) -> None:
    """While one transaction holds the chain head, another's commit blocks until it ends."""
    holder = runtime.sessions()
    audit.record(holder, principal=audit.SYSTEM, action="first.writer", target_type="t")
    holder.flush()
    audit._append_pending(holder)  # what commit does first: take the head, chain the record
    done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            write_records(runtime, 1, action="second.writer")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        time.sleep(0.5)
        assert not done.is_set(), "the second writer did not wait for the head lock"
    finally:
        holder.commit()
        holder.close()
    thread.join(timeout=30)
    assert done.is_set()
    assert not errors, errors
    assert [(r.seq, r.action) for r in rows(runtime.engine)] == [
        (1, "first.writer"),
        (2, "second.writer"),
    ]
    with runtime.sessions() as session:
        assert audit.verify(session).ok
