"""Group commit of stand-alone audit records (safecity.security.audit_writer): records from
many threads land in one gapless, verifiable chain; a caller returns only once its record
is committed; a failed batch fails every caller in it and records nothing; a session bound
to a connection keeps the record in its own transaction."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.platform.runtime import Runtime
from safecity.security import audit, audit_writer

pytestmark = pytest.mark.db


def _entry(n: int) -> audit.AuditEntry:
    return audit.build(
        principal=audit.SYSTEM,
        action="tests.read",
        target_type="thing",
        target_id=str(n),
        purpose="test",
        detail={"n": n},
    )


def _count(runtime: Runtime, action: str = "tests.read") -> int:
    with runtime.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(audit.AuditEntry)
                .where(audit.AuditEntry.action == action)
            )
            or 0
        )


def test_records_from_many_threads_form_one_verified_chain(runtime: Runtime) -> None:
    writer = audit_writer.writer_for(runtime.engine)
    records_before = writer.records
    errors: list[BaseException] = []
    committed: list[int] = []

    def one(n: int) -> None:
        try:
            audit_writer.write(runtime.engine, runtime.settings, _entry(n))
            # returned: the record is already visible to any other session
            with runtime.sessions() as s:
                found = s.scalar(
                    select(audit.AuditEntry.seq).where(audit.AuditEntry.target_id == str(n))
                )
            assert found is not None
            committed.append(n)
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(committed) == list(range(40))
    assert writer.records - records_before == 40
    assert _count(runtime) == 40
    with runtime.sessions() as s:
        report = audit.verify(s)
        seqs = list(s.scalars(select(audit.AuditEntry.seq).order_by(audit.AuditEntry.seq)))
    assert report.ok, report
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_failed_batch_fails_its_callers_and_records_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: Session, entry: audit.AuditEntry) -> audit.AuditEntry:
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "enqueue", broken)
    with pytest.raises(audit_writer.AuditUnavailable) as caught:
        audit_writer.write(runtime.engine, runtime.settings, _entry(1))
    assert caught.value.status == 503
    monkeypatch.undo()
    assert _count(runtime) == 0
    audit_writer.write(runtime.engine, runtime.settings, _entry(2))  # the writer lives on
    assert _count(runtime) == 1


def test_a_connection_bound_session_keeps_the_record_in_its_transaction(
    runtime: Runtime,
) -> None:
    with runtime.engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, info=runtime.sessions.kw.get("info", {}))
        audit_writer.commit_and_write(session, _entry(7))
        session.close()
        outer.rollback()  # the owner of the connection decides: here, nothing happened
    assert _count(runtime) == 0
