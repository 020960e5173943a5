"""Tamper-evident audit log: who did or read what, when, for what purpose.

Writing a record (every domain)
-------------------------------
Call :func:`record` in the same session (transaction) as the change or the personal-data
read it describes; it is written when that transaction commits and vanishes with it on a
rollback (a rolled-back savepoint drops the records made inside it)::

    from safecity.security import audit

    audit.record(
        session,
        principal=principal,          # who: from require(...); audit.SYSTEM for jobs
        action="cases.read",          # "<area>.<verb>", lower case, dotted
        target_type="case",           # what kind of thing
        target_id=case.id,            # its id (never a name, phone number, address...)
        purpose="investigation",      # why, for reads of personal data
        detail={"fields": ["reporter"], "from": "new", "to": "assigned"},  # ids and codes
    )

Rows hold **ids and codes only, never personal values**, so erasing personal data never
touches (or breaks) the chain. The actor, kind, role and org come from the principal; the
request id from the ``request_id`` argument or :data:`current_request_id` (set by the
request middleware). ``record`` validates its input at once (:class:`InvalidInput`); the
returned :class:`AuditEntry` gets its ``seq`` and MAC when the transaction commits.

What to record
--------------
- every change: ``<area>.<verb>`` (``cases.create``, ``cases.assign``, ``users.deactivate``),
  the changed record as target; state-machine transitions are recorded by
  :mod:`safecity.platform.workflow`;
- every read of personal data: ``<area>.read`` with a ``purpose`` (ask the caller for it or
  use the route's fixed purpose); a list read is one record, ``<area>.list``, with the
  filters and the count in ``detail`` (not every id: ``detail`` is capped at 4 KiB);
- erasure: ``<area>.erase``; the audit rows about the erased record stay valid, since they
  never held its personal values;
- unauthenticated attempts with ``safecity.security.auth.ANONYMOUS``; jobs and
  maintenance commands with :data:`SYSTEM`.

The chain
---------
Each row carries ``mac = HMAC-SHA256(key, canonical(row fields + prev_mac))`` where
``prev_mac`` is the previous row's MAC. The key is a file under ``settings.key_dir``
(:mod:`safecity.security.keys`), never in the database. It is created with the first
record; every process writing the same database must read the same key directory (a
process without the key refuses to append rather than fork the chain with a new one).

Rows are appended when their transaction commits, under a lock on the one-row table
``audit_head`` (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers
anyway), so several processes keep one linear, gapless chain. The lock is taken last
(after the transaction's own changes are flushed) and held only from the append to the
commit. Records made inside a savepoint are chained when it is released, so such a
transaction holds the head from then on. Hot public reads whose record stands alone (the
portal's case lookup) use :mod:`safecity.security.audit_writer` instead: a writer thread
appends the records of concurrent requests in one transaction, one head lock per batch.

Every ``settings.audit_checkpoint_every`` records a signed checkpoint (seq, MAC at that
seq, time, Ed25519 signature) is appended to ``var_dir/audit-checkpoints.jsonl``.

Verifying
---------
:func:`verify` (``safecity audit verify``, ``POST /api/audit/verify``) walks the chain and
reports the number of records or the **first** bad link: an edited row (MAC mismatch), a
deleted row (gap), reordered rows (MAC or link mismatch), a truncated tail (checkpoints
or the head name records the table lacks) and a recomputed chain (plain hashes or a wrong
key fail the MAC; a chain recomputed with the right key disagrees with a signed
checkpoint). Records after the last checkpoint are protected by the MAC chain and the
head row only; ``safecity audit checkpoint`` signs the current head on demand (cron).

Limits: someone holding the database *and* both key files can rewrite everything, and
someone who deletes the whole table, the head row and the checkpoint file leaves nothing
to compare with. Keep a copy of the checkpoint file (and the public key's fingerprint,
printed by ``verify --json``) somewhere they cannot reach: ship the file off the host.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Table,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, is_postgres, new_id, utcnow
from safecity.platform.errors import ConfigurationError, InvalidInput
from safecity.platform.logging import REQUEST_ID
from safecity.platform.runtime import settings_for
from safecity.security import keys
from safecity.security.rbac import Principal
from safecity.settings import Settings

log = logging.getLogger("safecity.audit")

CHAIN_VERSION = 1
GENESIS_MAC = "0" * 64
HEAD_ID = 1
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
MAX_DETAIL_BYTES = 4096

current_request_id: ContextVar[str | None] = REQUEST_ID
"""The request id records made during a request carry (set by the request middleware)."""

_SeqType = BigInteger().with_variant(Integer, "sqlite")


class AuditEntry(Base):
    """One audit record; ``seq`` orders the chain (1, 2, 3... without gaps)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id"),
        Index("ix_audit_log_actor_at", "actor_id", "at"),
    )

    seq: Mapped[int] = mapped_column(_SeqType, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(ID, unique=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain head: one row (``id = 1``), locked by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    chain_id: Mapped[str] = mapped_column(ID)
    seq: Mapped[int] = mapped_column(_SeqType)
    mac: Mapped[str] = mapped_column(String(64))


SYSTEM = Principal(
    id="system",
    kind="service",
    username="system",
    roles=frozenset({"admin"}),
    org_id="",
    visible_org_ids=None,
)
"""The principal of scheduled jobs and maintenance commands."""

# Fields covered by the MAC, in this order.
MAC_FIELDS: tuple[str, ...] = (
    "seq",
    "id",
    "at",
    "actor_id",
    "actor_kind",
    "role",
    "org_id",
    "purpose",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "detail",
    "prev_mac",
)

_LIMITS = {
    "action": 100,
    "target_type": 64,
    "target_id": 64,
    "purpose": 200,
    "request_id": 128,
    "actor_id": 64,
    "actor_kind": 16,
    "role": 32,
    "org_id": 32,
}


# --------------------------------------------------------------------------- canonical form


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit times are timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical(row: Any) -> bytes:
    """The bytes the MAC covers: a JSON array of :data:`MAC_FIELDS` (any object or row with
    those attributes)."""
    values: list[Any] = [CHAIN_VERSION]
    for name in MAC_FIELDS:
        value = getattr(row, name)
        values.append(_timestamp(value) if name == "at" else value)
    return _canonical_json(values)


def compute_mac(key: bytes, row: Any) -> str:
    return hmac.new(key, canonical(row), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- recording

_PENDING = "safecity.audit.pending"
_COLUMNS: tuple[str, ...] = (*MAC_FIELDS, "mac")
_CHECKPOINTS = "safecity.audit.checkpoints"


def _check_text(name: str, value: str | None, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise InvalidInput(f"audit {name} is required")
        return
    if required and not value:
        raise InvalidInput(f"audit {name} must not be empty")
    if len(value) > _LIMITS[name]:
        raise InvalidInput(f"audit {name} is longer than {_LIMITS[name]} characters")
    if "\x00" in value:
        raise InvalidInput(f"audit {name} contains a NUL character")


def _normalise_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    try:
        text = json.dumps(detail or {}, allow_nan=False, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"audit detail must be plain JSON (ids and codes): {exc}") from None
    if len(text.encode("utf-8")) > MAX_DETAIL_BYTES:
        raise InvalidInput(f"audit detail is larger than {MAX_DETAIL_BYTES} bytes")
    if "\x00" in text or "\\u0000" in text:
        raise InvalidInput("audit detail contains a NUL character")
    normalised: dict[str, Any] = json.loads(text)  # what the database will give back
    return normalised


def build(
    *,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """A validated, not yet chained record (:class:`InvalidInput` for a malformed one);
    :func:`record` queues it in a transaction, :mod:`~safecity.security.audit_writer`
    group-commits it."""
    entry = AuditEntry(
        id=new_id(),
        at=utcnow(),
        actor_id=principal.id,
        actor_kind=principal.kind,
        role=principal.primary_role,
        org_id=principal.org_id or None,
        purpose=purpose,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=request_id if request_id is not None else current_request_id.get(),
        detail=_normalise_detail(detail),
    )
    for name in ("action", "target_type", "actor_id", "actor_kind", "role"):
        _check_text(name, getattr(entry, name), required=True)
    for name in ("target_id", "purpose", "request_id", "org_id"):
        _check_text(name, getattr(entry, name))
    return entry


def enqueue(session: Session, entry: AuditEntry) -> AuditEntry:
    """Queue a built record in ``session``'s transaction (chained and written at commit)."""
    if not session.in_transaction():
        session.connection()  # begin the transaction the record belongs to (and ends with)
    pending: list[tuple[AuditEntry, SessionTransaction | None]] = session.info.setdefault(
        _PENDING, []
    )
    pending.append((entry, session.get_nested_transaction()))
    return entry


def record(
    session: Session,
    *,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """Append one audit record in ``session``'s transaction (written at commit).

    ``detail`` holds ids and codes only (JSON, at most 4 KiB). Raises
    :class:`InvalidInput` at once for a malformed record.
    """
    entry = build(
        principal=principal,
        action=action,
        target_type=target_type,
        target_id=target_id,
        purpose=purpose,
        detail=detail,
        request_id=request_id,
    )
    return enqueue(session, entry)


def pending_records(session: Session) -> list[AuditEntry]:
    """Records made in ``session`` that its next commit will append (for tests/debugging)."""
    return [entry for entry, _ in session.info.get(_PENDING, [])]


def _lock_head(session: Session) -> tuple[str, int, str]:
    """Create the head row if needed, lock it, and return (chain id, seq, mac)."""
    values = {"id": HEAD_ID, "chain_id": new_id(), "seq": 0, "mac": GENESIS_MAC}
    if is_postgres(session):
        session.execute(pg_insert(AuditHead).values(**values).on_conflict_do_nothing())
    else:
        # A write statement: on SQLite this takes the database's write lock first.
        session.execute(sqlite_insert(AuditHead).values(**values).on_conflict_do_nothing())
    row = session.execute(
        select(AuditHead.chain_id, AuditHead.seq, AuditHead.mac)
        .where(AuditHead.id == HEAD_ID)
        .with_for_update()
    ).one()
    return str(row.chain_id), int(row.seq), str(row.mac)


@dataclass(frozen=True)
class _PendingCheckpoint:
    settings: Settings
    chain_id: str
    seq: int
    mac: str


def _chain_key(settings: Settings, *, chain_seq: int) -> bytes:
    """The HMAC key; created only for an empty chain (a process that lost or never got the
    key must not fork the chain with a new one)."""
    try:
        return keys.audit_hmac_key(settings.effective_key_dir, create=chain_seq == 0)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc.detail}, but the audit log already holds {chain_seq} records: give every "
            "process the same key directory (SAFECITY_KEY_DIR) or restore the key file"
        ) from exc


def _append_pending(session: Session) -> None:
    """Chain and add the session's pending records (runs in ``before_commit``)."""
    pending: list[tuple[AuditEntry, SessionTransaction | None]] = session.info.get(_PENDING, [])
    if not pending:
        return
    session.info[_PENDING] = []
    settings = settings_for(session)
    # Write the transaction's own changes (and take their row locks) first: the chain head
    # is always the last lock a transaction takes, so writers cannot deadlock over it.
    session.flush()
    chain_id, seq, prev = _lock_head(session)
    key = _chain_key(settings, chain_seq=seq)
    every = settings.audit_checkpoint_every
    marker = session.get_nested_transaction()
    checkpoints: list[tuple[_PendingCheckpoint, SessionTransaction | None]] = (
        session.info.setdefault(_CHECKPOINTS, [])
    )
    rows: list[dict[str, Any]] = []
    for entry, _ in pending:
        seq += 1
        entry.seq = seq
        entry.prev_mac = prev
        entry.mac = compute_mac(key, entry)
        prev = entry.mac
        rows.append({name: getattr(entry, name) for name in _COLUMNS})
        if every > 0 and seq % every == 0:
            checkpoints.append((_PendingCheckpoint(settings, chain_id, seq, prev), marker))
    # One multi-row INSERT (no unit of work per record: a batch of the group-commit writer
    # holds hundreds). The entries stay plain objects; their seq and MAC are set above.
    session.execute(insert(cast(Table, AuditEntry.__table__)), rows)
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(seq=seq, mac=prev)
        .execution_options(synchronize_session=False)
    )


def _inside(marker: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """Whether something made under ``marker`` is undone when ``ended`` rolls back."""
    if ended.parent is None:
        return True
    txn = marker
    while txn is not None:
        if txn is ended:
            return True
        txn = txn.parent
    return False


@event.listens_for(Session, "before_commit")
def _on_before_commit(session: Session) -> None:
    _append_pending(session)


@event.listens_for(Session, "after_commit")
def _on_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the outer transaction may still roll back
    late = session.info.pop(_PENDING, None)
    if late:
        log.error("%d audit record(s) made during commit were not written", len(late))
    checkpoints = session.info.pop(_CHECKPOINTS, [])
    for checkpoint, _ in checkpoints:
        try:
            write_checkpoint(
                checkpoint.settings,
                chain_id=checkpoint.chain_id,
                seq=checkpoint.seq,
                mac=checkpoint.mac,
            )
        except Exception:  # the records are committed; a lost checkpoint is only logged
            log.exception("could not write audit checkpoint at seq %s", checkpoint.seq)


@event.listens_for(Session, "after_soft_rollback")
def _on_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    for info_key in (_PENDING, _CHECKPOINTS):
        items = session.info.get(info_key)
        if items:
            session.info[info_key] = [
                (item, marker)
                for item, marker in items
                if not _inside(marker, previous_transaction)
            ]


@event.listens_for(Session, "after_transaction_end")
def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction is over (commit, rollback, close)
        session.info.pop(_PENDING, None)
        session.info.pop(_CHECKPOINTS, None)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_path(settings: Settings) -> Path:
    return settings.var_dir / CHECKPOINT_FILE


def _checkpoint_message(*, chain_id: str, seq: int, mac: str, at: str) -> bytes:
    return _canonical_json([CHAIN_VERSION, "audit-checkpoint", chain_id, seq, mac, at])


def write_checkpoint(settings: Settings, *, chain_id: str, seq: int, mac: str) -> dict[str, Any]:
    """Sign (chain id, seq, mac, now) and append it as one JSON line to the checkpoint file."""
    path = checkpoint_path(settings)
    # A new signing key only for a new checkpoint file: old checkpoints stay verifiable.
    signing_key = keys.checkpoint_signing_key(settings.effective_key_dir, create=not path.exists())
    at = _timestamp(utcnow())
    signature = signing_key.sign(_checkpoint_message(chain_id=chain_id, seq=seq, mac=mac, at=at))
    line: dict[str, Any] = {
        "v": CHAIN_VERSION,
        "chain": chain_id,
        "seq": seq,
        "mac": mac,
        "at": at,
        "key": keys.key_fingerprint(signing_key.public_key()),
        "sig": base64.b64encode(signature).decode("ascii"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(line, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    return line


def checkpoint_now(session: Session, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """Sign the current committed chain head now (``None`` while the log is empty)."""
    settings = settings or settings_for(session)
    head = session.execute(select(AuditHead.chain_id, AuditHead.seq, AuditHead.mac)).first()
    if head is None or head.seq == 0:
        return None
    return write_checkpoint(settings, chain_id=head.chain_id, seq=head.seq, mac=head.mac)


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Finding:
    """The first bad link: the sequence number where the chain stops being trustworthy."""

    seq: int
    code: str  # gap | mac | link | rewritten | truncated | head | checkpoint
    reason: str


@dataclass
class VerifyReport:
    ok: bool
    records: int
    checkpoints: int
    last_seq: int
    chain_id: str | None = None
    checkpoint_key: str | None = None
    first_bad: Finding | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if self.first_bad is None:
            return (
                f"OK: {self.records} audit records, chain intact; "
                f"{self.checkpoints} signed checkpoint(s) match"
            )
        bad = self.first_bad
        return f"FAILED at seq {bad.seq} ({bad.code}): {bad.reason}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Checkpoint:
    chain_id: str
    seq: int
    mac: str


def _load_checkpoints(
    settings: Settings,
) -> tuple[list[_Checkpoint], list[Finding], str | None]:
    """Signed checkpoints from the file, problems with it, and the verifying key's name."""
    path = checkpoint_path(settings)
    if not path.exists():
        return [], [], None
    public_key = keys.checkpoint_public_key(settings.effective_key_dir)
    fingerprint = keys.key_fingerprint(public_key)
    good: list[_Checkpoint] = []
    problems: list[Finding] = []
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        seq_hint = 0
        try:
            data = json.loads(raw)
            seq_hint = int(data.get("seq", 0)) if isinstance(data, dict) else 0
            chain_id, seq, mac, at = data["chain"], int(data["seq"]), data["mac"], data["at"]
            if not all(isinstance(v, str) for v in (chain_id, mac, at)):
                raise TypeError("chain, mac and at must be strings")
            signature = base64.b64decode(data["sig"], validate=True)
            message = _checkpoint_message(chain_id=chain_id, seq=seq, mac=mac, at=at)
        except (ValueError, TypeError, KeyError, AttributeError):
            problems.append(
                Finding(seq_hint, "checkpoint", f"checkpoint file line {number} is malformed")
            )
            continue
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            problems.append(
                Finding(
                    seq,
                    "checkpoint",
                    f"checkpoint file line {number} (seq {seq}) has a bad signature "
                    f"for key {fingerprint}: the checkpoint file was altered",
                )
            )
            continue
        good.append(_Checkpoint(chain_id, seq, mac))
    return good, problems, fingerprint


def _first(findings: Iterable[Finding | None]) -> Finding | None:
    present = [f for f in findings if f is not None]
    return min(present, key=lambda f: f.seq) if present else None


def verify(session: Session, *, settings: Settings | None = None) -> VerifyReport:
    """Walk the whole chain; report the record count or the first bad link.

    Needs the HMAC key (and, when a checkpoint file exists, the checkpoint public key);
    it never creates keys. Reads the checkpoints and the head before the rows, so records
    committed meanwhile do not look like tampering.
    """
    settings = settings or settings_for(session)
    checkpoints, checkpoint_problems, fingerprint = _load_checkpoints(settings)
    head = session.execute(select(AuditHead.chain_id, AuditHead.seq, AuditHead.mac)).first()
    has_rows = session.execute(select(AuditEntry.seq).limit(1)).first() is not None
    key = (
        keys.audit_hmac_key(settings.effective_key_dir, create=False)
        if has_rows
        else b""  # an empty log needs no key
    )

    chain_id = head.chain_id if head is not None else None
    by_seq: dict[int, str] = {}
    findings: list[Finding | None] = list(checkpoint_problems)
    for cp in checkpoints:
        if chain_id is not None and cp.chain_id != chain_id:
            findings.append(
                Finding(
                    cp.seq,
                    "checkpoint",
                    f"the checkpoint at seq {cp.seq} belongs to another chain ({cp.chain_id}): "
                    "the audit log was replaced, or the checkpoint file is stale",
                )
            )
        elif by_seq.setdefault(cp.seq, cp.mac) != cp.mac:
            findings.append(
                Finding(cp.seq, "checkpoint", f"two signed checkpoints disagree at seq {cp.seq}")
            )

    walk = _walk(session, key, by_seq)
    findings.append(walk.finding)
    if walk.finding is None:
        findings.extend(_tail_findings(head, by_seq, walk.last_seq, walk.last_mac, has_rows))
    first_bad = _first(findings)
    return VerifyReport(
        ok=first_bad is None,
        records=walk.records,
        checkpoints=walk.matched,
        last_seq=walk.last_seq,
        chain_id=chain_id,
        checkpoint_key=fingerprint,
        first_bad=first_bad,
    )


@dataclass
class _Walk:
    finding: Finding | None = None
    records: int = 0
    last_seq: int = 0
    last_mac: str = GENESIS_MAC
    matched: int = 0


def _check_row(row: Any, key: bytes, walk: _Walk, signed: str | None, since: int) -> Finding | None:
    expected = walk.last_seq + 1
    if row.seq != expected:
        missing = (
            f"record {expected} is missing"
            if row.seq == expected + 1
            else f"records {expected}..{row.seq - 1} are missing"
        )
        return Finding(expected, "gap", f"{missing}: deleted or renumbered")
    if compute_mac(key, row) != row.mac:
        return Finding(
            row.seq,
            "mac",
            f"record {row.seq} does not match its MAC: it was edited or moved, or the chain "
            "was recomputed without the audit key (or the key file is not the one this log "
            "was written with)",
        )
    if row.prev_mac != walk.last_mac:
        return Finding(
            row.seq,
            "link",
            f"record {row.seq} does not follow record {row.seq - 1}: a record was deleted, "
            "inserted or reordered here",
        )
    if signed is not None and signed != row.mac:
        return Finding(
            row.seq,
            "rewritten",
            f"record {row.seq} differs from the signed checkpoint: the chain after seq "
            f"{since} was rewritten (recomputed with the audit key)",
        )
    return None


def _walk(session: Session, key: bytes, checkpoints: dict[int, str]) -> _Walk:
    """Read the rows in seq order until the first bad link."""
    table = AuditEntry.__table__
    rows = session.execute(
        select(table).order_by(table.c.seq).execution_options(yield_per=1000, stream_results=True)
    )
    walk = _Walk()
    good_checkpoint = 0
    for row in rows:
        signed = checkpoints.get(row.seq)
        walk.finding = _check_row(row, key, walk, signed, good_checkpoint)
        if walk.finding is not None:
            break
        if signed is not None:
            walk.matched += 1
            good_checkpoint = row.seq
        walk.records += 1
        walk.last_seq = row.seq
        walk.last_mac = row.mac
    rows.close()
    return walk


def _tail_findings(
    head: Any, checkpoints: dict[int, str], last_seq: int, last_mac: str, has_rows: bool
) -> Sequence[Finding]:
    found: list[Finding] = []
    beyond = [seq for seq in checkpoints if seq > last_seq]
    if beyond:
        found.append(
            Finding(
                last_seq + 1,
                "truncated",
                f"a signed checkpoint records seq {max(beyond)} but the log ends at seq "
                f"{last_seq}: records from {last_seq + 1} on were removed",
            )
        )
    if head is None:
        if has_rows:
            found.append(Finding(1, "head", "the chain head row (audit_head) is missing"))
        return found
    if head.seq > last_seq:
        found.append(
            Finding(
                last_seq + 1,
                "truncated",
                f"the chain head records seq {head.seq} but the log ends at seq {last_seq}: "
                f"records from {last_seq + 1} on were removed",
            )
        )
    elif head.seq == last_seq and head.mac != last_mac:
        found.append(
            Finding(last_seq, "head", f"the chain head's MAC differs from record {last_seq}")
        )
    return found


# --------------------------------------------------------------------------- reading


def search(
    session: Session,
    *,
    actor_id: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Records matching every given filter, newest first (keyset paging by ``before_seq``).

    ``action`` matches exactly, or by prefix when it ends in ``.*`` (``cases.*``);
    ``since`` is inclusive, ``until`` exclusive.
    """
    query = select(AuditEntry)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action is not None:
        if action.endswith(".*"):
            prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEntry.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(AuditEntry.action == action)
    if target_type is not None:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))


def require_keys(settings: Settings) -> None:
    """Fail early (e.g. at start-up) when the audit key cannot be read or created."""
    try:
        keys.audit_hmac_key(settings.effective_key_dir)
    except OSError as exc:
        raise ConfigurationError(f"cannot use the audit key directory: {exc}") from exc
