"""Helpers for the audit tests: write records the normal way, and tamper like an attacker
with database access would (raw SQL, bypassing the ORM and the audit module)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select, text, update

from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import Principal


def write_records(
    runtime: Runtime,
    count: int,
    *,
    principal: Principal = audit.SYSTEM,
    per_transaction: int = 1,
    action: str = "test.touch",
) -> None:
    """``count`` records through :func:`audit.record`, ``per_transaction`` per commit."""
    written = 0
    while written < count:
        with runtime.sessions.begin() as session:
            for _ in range(min(per_transaction, count - written)):
                written += 1
                audit.record(
                    session,
                    principal=principal,
                    action=action,
                    target_type="thing",
                    target_id=f"t{written}",
                    detail={"n": written},
                )


def rows(engine: Engine) -> list[Any]:
    table = audit.AuditEntry.__table__
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.seq)))


def set_column(engine: Engine, at_seq: int, /, **values: Any) -> None:
    table = audit.AuditEntry.__table__
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.seq == at_seq).values(**values))


def delete_seqs(engine: Engine, *seqs: int) -> None:
    table = audit.AuditEntry.__table__
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.seq.in_(seqs)))


def swap_seqs(engine: Engine, a: int, b: int) -> None:
    """Reorder: rows ``a`` and ``b`` trade places (their ``seq`` values)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = :a"), {"a": a})
        conn.execute(text("UPDATE audit_log SET seq = :a WHERE seq = :b"), {"a": a, "b": b})
        conn.execute(text("UPDATE audit_log SET seq = :b WHERE seq = -1"), {"b": b})


def set_head(engine: Engine, *, seq: int, mac: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(audit.AuditHead.__table__)
            .where(audit.AuditHead.__table__.c.id == audit.HEAD_ID)
            .values(seq=seq, mac=mac)
        )


MacFn = Callable[[bytes], str]


def plain_sha256(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


def rechain(engine: Engine, *, start: int, mac_fn: MacFn, edit: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """Edit row ``start`` (optionally) and recompute every MAC from there, and the head, with
    ``mac_fn(canonical bytes)`` — what an attacker with database access would do."""
    table = audit.AuditEntry.__table__
    with engine.begin() as conn:
        if edit:
            conn.execute(update(table).where(table.c.seq == start).values(**edit))
        all_rows = list(conn.execute(select(table).order_by(table.c.seq)))
        prev = audit.GENESIS_MAC
        for row in all_rows:
            if row.seq < start:
                prev = row.mac
                continue
            fields = dict(row._mapping)
            fields["prev_mac"] = prev
            mac = mac_fn(audit.canonical(SimpleNamespace(**fields)))
            conn.execute(update(table).where(table.c.seq == row.seq).values(prev_mac=prev, mac=mac))
            prev = mac
        conn.execute(update(audit.AuditHead.__table__).values(seq=all_rows[-1].seq, mac=prev))
