"""Notification outbox: SMS and e-mail written in the caller's transaction, sent by a job.

Enqueue (every domain)
----------------------
::

    from safecity.platform import notify

    notify.enqueue(
        session,                                   # the caller's transaction
        channel="sms",                             # "sms" | "email"
        to=victim_phone,                           # personal data: stored, never audited
        subject="",                                # e-mail only
        body=f"SafeCity case {number}: code {code}",
        template="cases.verification_code",        # a label of the kind of message
        purpose="case lookup verification",
        idempotency_key=f"cases:{case.id}:code:{issued.id}",
        org_id=case.org_id,
        expires_at=issued.expires_at,              # optional: not sent after this
    )

The row is committed (or rolled back) with the change that caused it: nothing is sent
for a change that did not commit. The idempotency key is unique: enqueuing it again (a
retried request, a redelivered event) returns the first notification and enqueues
nothing; reusing a key for another channel or address is a :class:`Conflict`. Keys are
remembered as long as the notification is kept (see retention below).

The address and the body are personal data. They live only in the ``notifications`` row:
audit records and events carry the notification id, channel and template, never them;
logs carry a masked address; error texts are scrubbed of the address. The schemas mark
them with :data:`safecity.security.redact.Personal`.

Dispatch
--------
:func:`dispatch` (the ``notify.dispatch`` job, every minute; ``safecity notify dispatch``)
works in short transactions, so no database lock is held while a message is on the wire:

1. **claim** a batch of due rows (``pending``, or ``sending`` whose lease ran out) with
   ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (plain ``SELECT`` on SQLite), and mark each
   ``sending`` with ``attempts + 1`` and a lease — a guarded ``UPDATE`` (status and
   attempts unchanged since the ``SELECT``), so two dispatchers never claim the same row;
2. **send** each through the sender of its channel (:mod:`.notify_senders`);
3. **mark** it ``sent``; or, on failure, record the error and make it ``pending`` again
   after an exponential backoff (``notify_backoff_seconds`` × 2^(attempt-1), at most
   ``notify_backoff_max_seconds``); after ``max_attempts`` attempts, or on a permanent
   error (a recipient refused with 5xx), or once ``expires_at`` has passed, mark it
   ``failed`` (dead). Each final outcome writes an audit record and a
   ``platform.notification.sent`` / ``platform.notification.failed`` event (ids only).

Delivery is **at least once**: a row marked ``sent`` is never sent again, but a crash
between 2 and 3 leaves the row ``sending``; when its lease (5 minutes) runs out it is
claimed and sent again, as its next attempt. So a crash may resend a message once per
crash and never more than ``max_attempts`` times in all; a row whose last attempt was cut
short is marked failed ("delivery unknown") instead. E-mails keep their ``Message-ID``
across attempts and SMS gateways get the notification id, so receivers can drop the copy.

Retention
---------
Finished notifications (sent or failed) are erased 30 days after they finished by the
``retention.enforce`` job (policy ``notification``): the row, with its address, body and
idempotency key, is deleted; the erasure is audited and announced like any other.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import (
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from safecity.platform import jobs, outbox, retention
from safecity.platform.db import ID, Base, UTCDateTime, is_postgres, new_id, transaction, utcnow
from safecity.platform.errors import Conflict, InvalidInput, SafeCityError
from safecity.platform.events import register_event_type
from safecity.platform.notify_senders import (
    CHANNELS,
    Channel,
    OutgoingMessage,
    PermanentSendError,
    Sender,
    mask_address,
    scrub_address,
    senders_for,
)
from safecity.platform.runtime import settings_for
from safecity.security import audit
from safecity.security.rbac import Principal, grant, scope_clause
from safecity.security.redact import Personal
from safecity.settings import Settings

log = logging.getLogger("safecity.notify")

Status = Literal["pending", "sending", "sent", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "sending", "sent", "failed")
DUE_STATUSES: tuple[Status, ...] = ("pending", "sending")

LEASE = timedelta(minutes=5)
RETENTION_PERIOD = timedelta(days=30)
DEFAULT_BATCH = 100
MAX_ERROR_CHARS = 1000
MAX_BODY_CHARS = {"sms": 1000, "email": 100_000}

grant("admin", "notify:read")


class Notification(Base):
    """One SMS or e-mail; ``recipient`` and ``body`` are personal data."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(320), info={"personal": True})
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, info={"personal": True})
    template: Mapped[str | None] = mapped_column(String(120), default=None)
    purpose: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=6)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sender: Mapped[str | None] = mapped_column(String(32), default=None)
    provider_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)


# --------------------------------------------------------------------------- schemas

_EMAIL = re.compile(
    r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)
_PHONE = re.compile(r"^\+?[0-9]{5,15}$")
_PHONE_SEPARATORS = re.compile(r"[ ()\-.]")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_TEMPLATE = re.compile(r"^[a-z0-9_.:-]{1,120}$")


class NotificationCreate(BaseModel):
    """What :func:`enqueue` accepts; ``to`` and ``body`` are personal."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    channel: Channel
    to: Annotated[str, Personal] = Field(min_length=1, max_length=320)
    subject: str = Field(default="", max_length=200)
    body: Annotated[str, Personal] = Field(min_length=1, max_length=100_000)
    template: str | None = Field(default=None, pattern=_TEMPLATE.pattern)
    purpose: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(pattern=_KEY.pattern)
    org_id: str | None = Field(default=None, max_length=32)
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _check(self) -> NotificationCreate:
        # Messages here must not quote the address or the body (personal data).
        if self.channel == "email":
            if not _EMAIL.fullmatch(self.to.strip()):
                raise ValueError("'to' is not an e-mail address")
            self.to = self.to.strip()
        else:
            number = _PHONE_SEPARATORS.sub("", self.to)
            if not _PHONE.fullmatch(number):
                raise ValueError("'to' is not a phone number (digits, optionally a leading +)")
            self.to = number
        if any(c in self.subject for c in "\r\n"):
            raise ValueError("'subject' must be one line")
        if len(self.body) > MAX_BODY_CHARS[self.channel]:
            raise ValueError(
                f"'body' is longer than {MAX_BODY_CHARS[self.channel]} characters "
                f"for {self.channel}"
            )
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("'expires_at' must be timezone-aware")
        return self


class NotificationRead(BaseModel):
    """A notification in full (internal use only: ``to`` and ``body`` are personal)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    channel: str
    to: Annotated[str, Personal] = Field(validation_alias="recipient")
    subject: str
    body: Annotated[str, Personal]
    template: str | None
    purpose: str
    org_id: str | None
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None


class NotificationSummary(BaseModel):
    """A notification without its address or body (status lists, the admin API)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    channel: str
    template: str | None
    purpose: str
    org_id: str | None
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None


def _invalid(exc: ValidationError) -> InvalidInput:
    """A one-line error from pydantic's first complaint, without the input value."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return InvalidInput(f"notification {where}: {message}" if where else f"notification: {message}")


# --------------------------------------------------------------------------- events

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["notification_id", "channel", "template", "attempts"],
    "properties": {
        "notification_id": {"type": "string", "minLength": 1},
        "channel": {"enum": list(CHANNELS)},
        "template": {"type": ["string", "null"]},
        "attempts": {"type": "integer", "minimum": 0},
        "reason": {"enum": ["error", "permanent", "expired", "interrupted"]},
    },
}
NOTIFICATION_SENT = "platform.notification.sent"
NOTIFICATION_FAILED = "platform.notification.failed"
register_event_type(
    NOTIFICATION_SENT, _EVENT_SCHEMA, description="A notification was handed to its sender."
)
register_event_type(
    NOTIFICATION_FAILED,
    _EVENT_SCHEMA,
    description="A notification was given up (attempts exhausted, refused or expired).",
)


# --------------------------------------------------------------------------- enqueue


def _insert(session: Session) -> Any:
    return pg_insert if is_postgres(session) else sqlite_insert


def enqueue(
    session: Session,
    *,
    channel: str,
    to: str,
    body: str,
    purpose: str,
    idempotency_key: str,
    subject: str = "",
    template: str | None = None,
    org_id: str | None = None,
    expires_at: datetime | None = None,
    max_attempts: int | None = None,
    principal: Principal = audit.SYSTEM,
) -> Notification:
    """Add a notification to ``session``'s transaction; sent after that commits.

    Returns the notification; for a key already enqueued, the existing one (nothing new
    is written). :class:`InvalidInput` for bad input (the message never quotes the
    address or the body), :class:`Conflict` for a key reused for another address.
    """
    try:
        data = NotificationCreate(
            channel=channel,  # validated here
            to=to,
            subject=subject,
            body=body,
            template=template,
            purpose=purpose,
            idempotency_key=idempotency_key,
            org_id=org_id,
            expires_at=expires_at,
        )
    except ValidationError as exc:
        raise _invalid(exc) from None
    attempts = (
        max_attempts if max_attempts is not None else settings_for(session).notify_max_attempts
    )
    if attempts < 1:
        raise InvalidInput("notification max_attempts must be at least 1")

    existing = _by_key(session, data.idempotency_key)
    created = False
    if existing is None:
        now = utcnow()
        stmt = (
            _insert(session)(Notification)
            .values(
                id=new_id(),
                idempotency_key=data.idempotency_key,
                channel=data.channel,
                recipient=data.to,
                subject=data.subject,
                body=data.body,
                template=data.template,
                purpose=data.purpose,
                org_id=data.org_id,
                status="pending",
                attempts=0,
                max_attempts=attempts,
                next_attempt_at=now,
                expires_at=data.expires_at,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
        # A concurrent transaction with the same key: on PostgreSQL this waits for it and
        # inserts nothing if it committed; the row it wrote is then read below.
        created = bool(getattr(session.execute(stmt), "rowcount", 0))
        existing = _by_key(session, data.idempotency_key)
        if existing is None:  # the other transaction's row is not visible (yet)
            raise Conflict("a notification with this idempotency key is being enqueued")
    if existing.channel != data.channel or existing.recipient != data.to:
        raise Conflict("this idempotency key was used for another notification")
    if created:
        audit.record(
            session,
            principal=principal,
            action="notify.enqueue",
            target_type="notification",
            target_id=existing.id,
            purpose=data.purpose,
            detail={"channel": data.channel, "template": data.template},
        )
    return existing


def _by_key(session: Session, key: str) -> Notification | None:
    return session.scalars(
        select(Notification)
        .where(Notification.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).first()


def get(session: Session, *, notification_id: str) -> Notification | None:
    return session.get(Notification, notification_id)


# --------------------------------------------------------------------------- dispatch


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt ``n + 1`` after ``n`` failed: ``base × 2^(n-1)``, capped."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def delay(self, attempts: int) -> timedelta:
        seconds = self.base.total_seconds() * 2 ** min(max(attempts - 1, 0), 30)
        return timedelta(seconds=min(seconds, self.cap.total_seconds()))

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        return cls(
            base=timedelta(seconds=settings.notify_backoff_seconds),
            cap=timedelta(seconds=settings.notify_backoff_max_seconds),
        )


@dataclass
class DispatchReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    lost_claims: int = 0  # marked by another dispatcher after our lease ran out
    errors: list[tuple[str, str]] = field(default_factory=list)  # (id, error)

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.failed


@dataclass(frozen=True)
class _Claimed:
    message: OutgoingMessage
    org_id: str | None
    purpose: str
    max_attempts: int


_sqlite_claim_lock = threading.Lock()


def _due(now: datetime) -> Any:
    return Notification.status.in_(DUE_STATUSES) & (Notification.next_attempt_at <= now)


def _claim(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    limit: int,
    ids: Collection[str] | None,
    report: DispatchReport,
) -> list[_Claimed]:
    claimed: list[_Claimed] = []
    with transaction(sessions) as s:
        stmt = (
            select(Notification)
            .where(_due(now))
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        if ids is not None:
            stmt = stmt.where(Notification.id.in_(list(ids)))
        if is_postgres(s):
            stmt = stmt.with_for_update(skip_locked=True)
        for row in s.scalars(stmt).all():
            seen = row.attempts
            guard = (
                (Notification.id == row.id)
                & (Notification.attempts == seen)
                & (Notification.status == row.status)
            )
            expired = row.expires_at is not None and row.expires_at <= now
            if expired or seen >= row.max_attempts:
                reason = "expired" if expired else "interrupted"
                error = (
                    "expired before it could be delivered"
                    if expired
                    else "delivery unknown: the dispatcher stopped during the last attempt"
                )
                if _finish(
                    s, row, guard=guard, status="failed", error=error, reason=reason, now=now
                ):
                    report.failed += 1
                    report.errors.append((row.id, error))
                continue
            result = s.execute(
                update(Notification)
                .where(guard)
                .values(status="sending", attempts=seen + 1, next_attempt_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                continue  # another dispatcher took it
            claimed.append(
                _Claimed(
                    message=OutgoingMessage(
                        id=row.id,
                        channel=row.channel,  # type: ignore[arg-type]  # checked on enqueue
                        to=row.recipient,
                        subject=row.subject,
                        body=row.body,
                        template=row.template,
                        attempt=seen + 1,
                    ),
                    org_id=row.org_id,
                    purpose=row.purpose,
                    max_attempts=row.max_attempts,
                )
            )
    return claimed


def _finish(
    s: Session,
    row: Notification,
    *,
    guard: Any,
    status: Literal["sent", "failed"],
    now: datetime,
    error: str | None = None,
    reason: str | None = None,
    sender: str | None = None,
    provider_id: str | None = None,
    attempts: int | None = None,
) -> bool:
    """Mark ``row`` sent or failed (if ``guard`` still matches), audit it, announce it."""
    values: dict[str, Any] = {"status": status, "finished_at": now, "last_error": error}
    if status == "sent":
        values.update(sent_at=now, sender=sender, provider_id=provider_id)
    result = s.execute(
        update(Notification)
        .where(guard)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return False
    count = row.attempts if attempts is None else attempts
    detail: dict[str, Any] = {"channel": row.channel, "template": row.template, "attempts": count}
    payload: dict[str, Any] = {
        "notification_id": row.id,
        "channel": row.channel,
        "template": row.template,
        "attempts": count,
    }
    if status == "sent":
        detail["sender"] = sender
    else:
        detail["reason"] = reason
        payload["reason"] = reason
    audit.record(
        s,
        principal=audit.SYSTEM,
        action="notify.send" if status == "sent" else "notify.fail",
        target_type="notification",
        target_id=row.id,
        purpose=row.purpose,
        detail=detail,
    )
    outbox.emit(
        s,
        type=NOTIFICATION_SENT if status == "sent" else NOTIFICATION_FAILED,
        source="platform.notify",
        org_id=row.org_id,
        payload=payload,
    )
    return True


def _clean_error(exc: BaseException, message: OutgoingMessage) -> str:
    """The error as stored and shown to admins: no address, no body."""
    text = exc.detail if isinstance(exc, SafeCityError) else f"{type(exc).__name__}: {exc}"
    text = scrub_address(text, message.to)
    if len(message.body) >= 4:
        text = text.replace(message.body, "***")
    return text[:MAX_ERROR_CHARS]


def _record(
    sessions: sessionmaker[Session],
    claim: _Claimed,
    *,
    sender: Sender,
    provider_id: str | None,
    exc: BaseException | None,
    now: datetime,
    backoff: Backoff,
    report: DispatchReport,
) -> None:
    message = claim.message
    with transaction(sessions) as s:
        row = s.get(Notification, message.id)
        guard = (
            (Notification.id == message.id)
            & (Notification.status == "sending")
            & (Notification.attempts == message.attempt)
        )
        if row is None or row.status != "sending" or row.attempts != message.attempt:
            report.lost_claims += 1
            log.warning(
                "notification %s was re-claimed before its outcome was recorded", message.id
            )
            return
        if exc is None:
            if _finish(
                s,
                row,
                guard=guard,
                status="sent",
                now=now,
                sender=sender.name,
                provider_id=(provider_id or "")[:255] or None,
            ):
                report.sent += 1
            return
        error = _clean_error(exc, message)
        permanent = isinstance(exc, PermanentSendError)
        report.errors.append((message.id, error))
        if permanent or message.attempt >= claim.max_attempts:
            reason = "permanent" if permanent else "error"
            if _finish(s, row, guard=guard, status="failed", now=now, error=error, reason=reason):
                report.failed += 1
            log.warning(
                "notification %s failed for good after %d attempt(s): %s",
                message.id,
                message.attempt,
                error,
                extra={"notification_id": message.id, "channel": message.channel},
            )
            return
        retry_at = now + backoff.delay(message.attempt)
        s.execute(
            update(Notification)
            .where(guard)
            .values(status="pending", next_attempt_at=retry_at, last_error=error)
            .execution_options(synchronize_session=False)
        )
        report.retrying += 1
        log.info(
            "notification %s attempt %d failed, retrying at %s: %s",
            message.id,
            message.attempt,
            retry_at.isoformat(),
            error,
            extra={"notification_id": message.id, "channel": message.channel},
        )


def dispatch(
    sessions: sessionmaker[Session],
    *,
    senders: Mapping[str, Sender],
    now: datetime | None = None,
    backoff: Backoff | None = None,
    batch_size: int = DEFAULT_BATCH,
    max_messages: int = 1000,
    ids: Collection[str] | None = None,
) -> DispatchReport:
    """Send what is due (at most ``max_messages``); see the module docstring.

    ``sessions`` is the runtime's session factory (each step is its own transaction);
    ``now`` fixes the clock (tests); ``ids`` limits the pass to those notifications.
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    backoff = backoff or Backoff()
    report = DispatchReport()
    with sessions() as probe:
        postgres = is_postgres(probe)
    handled = 0
    while handled < max_messages:
        limit = min(batch_size, max_messages - handled)
        start = clock()
        if postgres:
            claims = _claim(sessions, now=start, limit=limit, ids=ids, report=report)
        else:  # SQLite: one claim at a time in this process (the guarded UPDATE does the rest)
            with _sqlite_claim_lock:
                claims = _claim(sessions, now=start, limit=limit, ids=ids, report=report)
        if not claims:
            break
        for claim in claims:
            handled += 1
            sender = senders.get(claim.message.channel)
            provider_id: str | None = None
            error: BaseException | None = None
            if sender is None:
                error = PermanentSendError(f"no sender for channel {claim.message.channel!r}")
                sender_used: Sender = _NoSender()
            else:
                sender_used = sender
                try:
                    provider_id = sender.send(claim.message)
                except Exception as exc:
                    error = exc
            _record(
                sessions,
                claim,
                sender=sender_used,
                provider_id=provider_id,
                exc=error,
                now=clock(),
                backoff=backoff,
                report=report,
            )
    return report


class _NoSender:
    name = "none"

    def send(self, message: OutgoingMessage) -> str | None:  # pragma: no cover - never called
        raise PermanentSendError(f"no sender for channel {message.channel!r}")


@jobs.job("notify.dispatch", every=timedelta(minutes=1))
def dispatch_job(ctx: jobs.JobContext) -> int:
    """Send due SMS and e-mail notifications (retried with backoff)."""
    settings = ctx.runtime.settings
    report = dispatch(
        ctx.runtime.sessions,
        senders=senders_for(settings),
        backoff=Backoff.from_settings(settings),
    )
    for notification_id, error in report.errors:
        ctx.fail_item(f"notification {notification_id}: {error}")
    return report.total


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class StatusCount:
    status: str
    channel: str
    count: int


@dataclass(frozen=True)
class NotifyStatus:
    counts: list[StatusCount]
    due_now: int
    oldest_due_at: datetime | None
    recent_failures: list[NotificationSummary]

    def total(self, status: str) -> int:
        return sum(c.count for c in self.counts if c.status == status)


def status(
    session: Session,
    *,
    principal: Principal | None = None,
    limit: int = 20,
    now: datetime | None = None,
) -> NotifyStatus:
    """Counts by status and channel, what is due, and the latest failures (with errors);
    never an address or a body. ``principal`` limits it to the orgs it sees."""
    now = now or utcnow()
    scope = scope_clause(principal, Notification.org_id) if principal is not None else None

    def scoped(stmt: Any) -> Any:
        return stmt if scope is None else stmt.where(scope)

    counts = [
        StatusCount(status=str(st), channel=str(ch), count=int(n))
        for st, ch, n in session.execute(
            scoped(
                select(Notification.status, Notification.channel, func.count()).group_by(
                    Notification.status, Notification.channel
                )
            ).order_by(Notification.status, Notification.channel)
        )
    ]
    due_now, oldest = session.execute(
        scoped(select(func.count(), func.min(Notification.next_attempt_at)).where(_due(now)))
    ).one()
    failures = session.scalars(
        scoped(
            select(Notification).where(
                (Notification.status == "failed")
                | (Notification.status.in_(DUE_STATUSES) & Notification.last_error.is_not(None))
            )
        )
        .order_by(func.coalesce(Notification.finished_at, Notification.next_attempt_at).desc())
        .limit(limit)
    )
    return NotifyStatus(
        counts=counts,
        due_now=int(due_now or 0),
        oldest_due_at=oldest,
        recent_failures=[NotificationSummary.model_validate(n) for n in failures],
    )


# --------------------------------------------------------------------------- retention


def erase(*, session: Session, record_id: str) -> None:
    """Delete a notification (retention): its address, body and idempotency key go."""
    session.execute(delete(Notification).where(Notification.id == record_id))


retention.register(
    record_type="notification",
    period=RETENTION_PERIOD,
    find_expired=retention.expired_by(
        Notification.finished_at, id=Notification.id, org=Notification.org_id
    ),
    erase=erase,
    owner="platform.notify",
    description="SMS and e-mail notifications: 30 days after they were sent or given up",
    erase_timeline=False,
)

__all__ = [
    "CHANNELS",
    "Backoff",
    "DispatchReport",
    "Notification",
    "NotificationCreate",
    "NotificationRead",
    "NotificationSummary",
    "NotifyStatus",
    "dispatch",
    "enqueue",
    "mask_address",
    "status",
]
