"""Notification outbox: enqueue in the caller's transaction, idempotency, dispatch with
retries and backoff, crash recovery, the log sender's privacy, retention, the job."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.platform import jobs, notify, retention
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import ConfigurationError, Conflict, InvalidInput
from safecity.platform.logging import JsonFormatter
from safecity.platform.notify import Backoff, Notification, NotificationCreate, NotificationRead
from safecity.platform.notify_senders import (
    LogSender,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    mask_address,
    register_sms_gateway,
    scrub_address,
    senders_for,
    unregister_sms_gateway,
)
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from safecity.security.redact import personal_fields, public_model

PHONE = "13800138000"
EMAIL = "zhang.san.canary@example.com"
BODY = "Your SafeCity verification code is 734219 (case SC-2024-000123)"


class Recorder:
    """A sender that records what it sent; fails its first ``fail`` calls."""

    name = "recorder"

    def __init__(self, *, fail: int = 0, error: Exception | None = None) -> None:
        self.fail = fail
        self.error = error
        self.calls: list[OutgoingMessage] = []
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str | None:
        with self.lock:
            self.calls.append(message)
            count = len(self.calls)
        if count <= self.fail:
            raise self.error or SendError(f"gateway down while sending to {message.to}")
        return f"rec-{message.id}"

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.calls]


def add(
    session: Session,
    *,
    key: str = "k1",
    channel: str = "sms",
    to: str = PHONE,
    **kwargs: object,
) -> Notification:
    return notify.enqueue(
        session,
        channel=channel,
        to=to,
        body=kwargs.pop("body", BODY),  # type: ignore[arg-type]
        purpose="case lookup verification",
        idempotency_key=key,
        template="cases.verification_code",
        **kwargs,  # type: ignore[arg-type]
    )


def row(runtime: Runtime, notification_id: str) -> Notification:
    with runtime.sessions() as s:
        found = s.get(Notification, notification_id)
        assert found is not None
        return found


def both(sender: Recorder) -> dict[str, Recorder]:
    return {"sms": sender, "email": sender}


# --------------------------------------------------------------------------- enqueue


@pytest.mark.db
def test_enqueue_is_part_of_the_callers_transaction(runtime: Runtime) -> None:
    sender = Recorder()
    with runtime.sessions() as s:
        add(s, key="rolled-back")
        s.flush()
        # Written but not committed: a dispatcher (other connection) sees nothing to send.
        report = notify.dispatch(runtime.sessions, senders=both(sender))
        assert report.total == 0
        s.rollback()
    assert notify.dispatch(runtime.sessions, senders=both(sender)).total == 0
    with runtime.sessions() as s:
        assert s.scalar(select(Notification.id)) is None

    with transaction(runtime.sessions) as s:
        n = add(s, key="committed")
    report = notify.dispatch(runtime.sessions, senders=both(sender))
    assert (report.sent, report.total) == (1, 1)
    assert sender.ids == [n.id]
    assert sender.calls[0].to == PHONE
    assert sender.calls[0].body == BODY
    done = row(runtime, n.id)
    assert done.status == "sent"
    assert done.attempts == 1
    assert done.sent_at is not None
    assert done.finished_at is not None
    assert done.provider_id == f"rec-{n.id}"
    assert done.sender == "recorder"


@pytest.mark.db
def test_the_idempotency_key_enqueues_once_and_sends_once(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        first = add(s, key="cases:42:code:1")
    with transaction(runtime.sessions) as s:  # a retried request
        again = add(s, key="cases:42:code:1", body="another rendering of the same message")
    assert again.id == first.id
    with runtime.sessions() as s:
        assert len(s.scalars(select(Notification)).all()) == 1
        enqueued = s.scalars(select(AuditEntry).where(AuditEntry.action == "notify.enqueue"))
        assert [a.target_id for a in enqueued] == [first.id]

    with pytest.raises(Conflict), transaction(runtime.sessions) as s:
        add(s, key="cases:42:code:1", to="13900139000")

    sender = Recorder()
    assert notify.dispatch(runtime.sessions, senders=both(sender)).sent == 1
    assert notify.dispatch(runtime.sessions, senders=both(sender)).total == 0
    with transaction(runtime.sessions) as s:  # replayed after it was sent: still once
        assert add(s, key="cases:42:code:1").status == "sent"
    assert notify.dispatch(runtime.sessions, senders=both(sender)).total == 0
    assert sender.ids == [first.id]


@pytest.mark.db
@pytest.mark.parametrize(
    ("channel", "to", "kwargs", "expected"),
    [
        ("fax", PHONE, {}, "channel"),
        ("email", "not-an-address", {}, "not an e-mail address"),
        ("email", "a@b.example\r\nBcc: x@y.example", {}, "not an e-mail address"),
        ("sms", "call me 138", {}, "not a phone number"),
        ("email", EMAIL, {"subject": "hi\r\nBcc: x@y.example"}, "one line"),
        ("sms", PHONE, {"body": "x" * 1001}, "longer than 1000"),
        ("sms", PHONE, {"body": ""}, "body"),
        ("sms", PHONE, {"key": "has space"}, "idempotency_key"),
    ],
)
def test_bad_input_is_refused_without_quoting_it(
    runtime: Runtime, channel: str, to: str, kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(InvalidInput) as info, transaction(runtime.sessions) as s:
        add(s, channel=channel, to=to, **kwargs)  # type: ignore[arg-type]
    assert expected in info.value.detail
    assert to not in info.value.detail
    assert BODY not in info.value.detail
    with runtime.sessions() as s:
        assert s.scalar(select(Notification.id)) is None


@pytest.mark.db
def test_phone_numbers_are_normalised(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s, to="+86 138-0013-8000")
    assert row(runtime, n.id).recipient == "+8613800138000"


def test_schemas_mark_the_address_and_body_personal() -> None:
    assert personal_fields(NotificationCreate) == {"to", "body"}
    assert personal_fields(NotificationRead) == {"to", "body"}
    assert personal_fields(notify.NotificationSummary) == frozenset()
    public = public_model(NotificationRead)
    assert "to" not in public.model_fields
    assert "body" not in public.model_fields
    assert "status" in public.model_fields
    schema = NotificationCreate.model_json_schema()
    assert schema["properties"]["to"]["x-personal"] is True


# --------------------------------------------------------------------------- dispatch


@pytest.mark.db
def test_failures_retry_with_exponential_backoff_then_fail_for_good(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s, max_attempts=3)
    t0 = utcnow()
    backoff = Backoff(base=timedelta(seconds=30), cap=timedelta(hours=1))
    sender = Recorder(fail=99)

    report = notify.dispatch(runtime.sessions, senders=both(sender), now=t0, backoff=backoff)
    assert (report.retrying, report.failed) == (1, 0)
    first = row(runtime, n.id)
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.next_attempt_at == t0 + timedelta(seconds=30)
    assert first.last_error is not None
    assert "gateway down" in first.last_error
    assert PHONE not in first.last_error  # scrubbed: the sender's error quoted the number
    assert mask_address(PHONE) in first.last_error

    # Not due before its backoff has passed.
    soon = t0 + timedelta(seconds=29)
    assert notify.dispatch(runtime.sessions, senders=both(sender), now=soon).total == 0
    assert len(sender.calls) == 1

    t1 = t0 + timedelta(seconds=30)
    notify.dispatch(runtime.sessions, senders=both(sender), now=t1, backoff=backoff)
    second = row(runtime, n.id)
    assert (second.status, second.attempts) == ("pending", 2)
    assert second.next_attempt_at == t1 + timedelta(seconds=60)  # doubled

    t2 = t1 + timedelta(seconds=60)
    report = notify.dispatch(runtime.sessions, senders=both(sender), now=t2, backoff=backoff)
    assert report.failed == 1
    dead = row(runtime, n.id)
    assert (dead.status, dead.attempts, dead.finished_at) == ("failed", 3, t2)
    assert [m.attempt for m in sender.calls] == [1, 2, 3]
    # Dead is dead.
    later = t2 + timedelta(days=1)
    assert notify.dispatch(runtime.sessions, senders=both(sender), now=later).total == 0
    assert len(sender.calls) == 3

    with runtime.sessions() as s:
        failed = s.scalars(select(AuditEntry).where(AuditEntry.action == "notify.fail")).all()
        assert [(a.target_id, a.detail["reason"]) for a in failed] == [(n.id, "error")]
        events = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == notify.NOTIFICATION_FAILED)
        ).all()
        assert [e.payload["notification_id"] for e in events] == [n.id]


def test_backoff_doubles_up_to_its_cap() -> None:
    b = Backoff(base=timedelta(seconds=10), cap=timedelta(seconds=100))
    assert [b.delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 60)] == [10, 20, 40, 80, 100, 100]


@pytest.mark.db
def test_a_transient_failure_then_success(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s)
    t0 = utcnow()
    sender = Recorder(fail=1)
    notify.dispatch(runtime.sessions, senders=both(sender), now=t0)
    notify.dispatch(runtime.sessions, senders=both(sender), now=t0 + timedelta(minutes=1))
    done = row(runtime, n.id)
    assert (done.status, done.attempts, done.last_error) == ("sent", 2, None)
    assert len(sender.calls) == 2


@pytest.mark.db
def test_a_permanent_error_is_not_retried(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s)
    sender = Recorder(fail=1, error=PermanentSendError("550 no such user"))
    report = notify.dispatch(runtime.sessions, senders=both(sender))
    assert report.failed == 1
    dead = row(runtime, n.id)
    assert (dead.status, dead.attempts, dead.last_error) == ("failed", 1, "550 no such user")


@pytest.mark.db
def test_an_expired_notification_is_not_sent(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s, expires_at=utcnow() + timedelta(minutes=5))
    sender = Recorder()
    later = utcnow() + timedelta(minutes=6)
    assert notify.dispatch(runtime.sessions, senders=both(sender), now=later).failed == 1
    assert sender.calls == []
    dead = row(runtime, n.id)
    assert dead.status == "failed"
    assert dead.last_error is not None
    assert "expired" in dead.last_error


class Crash(BaseException):
    """Stands for the process dying after the message went out (not an Exception)."""


class CrashAfterSend(Recorder):
    def send(self, message: OutgoingMessage) -> str | None:
        super().send(message)
        raise Crash


@pytest.mark.db
def test_a_crash_between_send_and_mark_resends_once_after_the_lease(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s, max_attempts=3)
    t0 = utcnow()
    with pytest.raises(Crash):
        notify.dispatch(runtime.sessions, senders=both(CrashAfterSend()), now=t0)
    stuck = row(runtime, n.id)
    assert (stuck.status, stuck.attempts) == ("sending", 1)

    sender = Recorder()
    # While the lease holds nobody else takes it...
    assert (
        notify.dispatch(runtime.sessions, senders=both(sender), now=t0 + notify.LEASE / 2).total
        == 0
    )
    # ...then it is sent again, once, as its next attempt.
    after = t0 + notify.LEASE
    assert notify.dispatch(runtime.sessions, senders=both(sender), now=after).sent == 1
    assert notify.dispatch(runtime.sessions, senders=both(sender), now=after).total == 0
    assert sender.ids == [n.id]
    assert sender.calls[0].attempt == 2
    assert row(runtime, n.id).status == "sent"


@pytest.mark.db
def test_a_crash_during_the_last_attempt_gives_up_instead_of_resending(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s, max_attempts=1)
    t0 = utcnow()
    with pytest.raises(Crash):
        notify.dispatch(runtime.sessions, senders=both(CrashAfterSend()), now=t0)
    sender = Recorder()
    report = notify.dispatch(runtime.sessions, senders=both(sender), now=t0 + notify.LEASE)
    assert report.failed == 1
    assert sender.calls == []
    dead = row(runtime, n.id)
    assert dead.status == "failed"
    assert dead.last_error is not None
    assert "delivery unknown" in dead.last_error


@pytest.mark.db
def test_two_dispatchers_send_each_message_once(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        ids = [add(s, key=f"k{i}").id for i in range(30)]
    sender = Recorder()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            notify.dispatch(runtime.sessions, senders=both(sender), batch_size=5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(sender.ids) == sorted(ids)
    with runtime.sessions() as s:
        statuses = s.scalars(select(Notification.status)).all()
    assert set(statuses) == {"sent"}


@pytest.mark.db
def test_outcomes_are_audited_and_announced_with_ids_only(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s, channel="email", to=EMAIL, subject="Your case")
    notify.dispatch(runtime.sessions, senders=both(Recorder()))
    with runtime.sessions() as s:
        audits = s.scalars(select(AuditEntry).where(AuditEntry.target_id == n.id)).all()
        events = s.scalars(select(OutboxEvent)).all()
    assert sorted(a.action for a in audits) == ["notify.enqueue", "notify.send"]
    assert [e.type for e in events] == [notify.NOTIFICATION_SENT]
    assert events[0].payload == {
        "notification_id": n.id,
        "channel": "email",
        "template": "cases.verification_code",
        "attempts": 1,
    }
    stored = json.dumps(
        [[a.detail, a.purpose, a.target_id] for a in audits] + [e.payload for e in events]
    )
    for secret in (EMAIL, "zhang.san", BODY, "734219"):
        assert secret not in stored


@pytest.mark.db
def test_no_sender_for_a_channel_fails_the_notification(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        n = add(s)
    report = notify.dispatch(runtime.sessions, senders={"email": Recorder()})
    assert report.failed == 1
    assert row(runtime, n.id).status == "failed"


# --------------------------------------------------------------------------- log sender


def test_mask_address() -> None:
    assert mask_address(EMAIL) == "z***@example.com"
    assert mask_address("13800138000") == "*******8000"
    assert mask_address("+8613800138000") == "*********8000"
    assert mask_address("12") == "***"
    assert (
        scrub_address(f"550 <{EMAIL.upper()}> unknown", EMAIL) == "550 <z***@example.com> unknown"
    )


@pytest.mark.db
def test_the_log_sender_never_logs_the_address_or_the_body(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with transaction(runtime.sessions) as s:
        sms = add(s, key="a")
        mail = add(s, key="b", channel="email", to=EMAIL, subject="Case update")
    caplog.set_level(logging.DEBUG)
    sender = LogSender()
    report = notify.dispatch(runtime.sessions, senders={"sms": sender, "email": sender})
    assert report.sent == 2
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    ours = [json.loads(line) for line in lines if '"notification_id"' in line]
    assert {(e["notification_id"], e["channel"]) for e in ours} == {
        (sms.id, "sms"),
        (mail.id, "email"),
    }
    assert {e["to_masked"] for e in ours} == {"*******8000", "z***@example.com"}
    assert all(e["body_chars"] == len(BODY) for e in ours)
    everything = "\n".join(lines)
    for secret in (PHONE, EMAIL, BODY, "734219"):
        assert secret not in everything
    assert (
        repr(OutgoingMessage(id="x", channel="sms", to=PHONE, subject="", body=BODY)).count(PHONE)
        == 0
    )


def test_senders_follow_the_settings(runtime: Runtime) -> None:
    default = senders_for(runtime.settings)
    assert (default["email"].name, default["sms"].name) == ("log", "log")
    smtp = senders_for(
        runtime.settings.model_copy(
            update={"notify_sender": "smtp", "notify_smtp_host": "mail.example"}
        )
    )
    assert (smtp["email"].name, smtp["sms"].name) == ("smtp", "log")


class Gateway:
    name = "test-gateway"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send_sms(self, *, to: str, text: str, message_id: str) -> str | None:
        self.sent.append((to, text, message_id))
        return "receipt-1"


@pytest.mark.db
def test_an_sms_gateway_plugs_in_by_name(runtime: Runtime) -> None:
    gateway = Gateway()
    register_sms_gateway("test-gateway", lambda settings: gateway)
    try:
        configured = runtime.settings.model_copy(update={"notify_sms_sender": "test-gateway"})
        senders = senders_for(configured)
        with pytest.raises(ConfigurationError):
            senders_for(runtime.settings.model_copy(update={"notify_sms_sender": "nope"}))
    finally:
        unregister_sms_gateway("test-gateway")
    with transaction(runtime.sessions) as s:
        n = add(s)
    assert notify.dispatch(runtime.sessions, senders=senders).sent == 1
    assert gateway.sent == [(PHONE, BODY, n.id)]
    done = row(runtime, n.id)
    assert (done.sender, done.provider_id) == ("test-gateway", "receipt-1")
    full = NotificationRead.model_validate(done)
    assert (full.to, full.status) == (PHONE, "sent")


# --------------------------------------------------------------------------- job, retention


@pytest.mark.db
def test_the_dispatch_job_runs_every_minute_with_the_configured_sender(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    jobs.load_job_modules()
    job = jobs.registry.get("notify.dispatch")
    assert job.every == timedelta(minutes=1)
    with transaction(runtime.sessions) as s:
        n = add(s)
    caplog.set_level(logging.INFO, logger="safecity.notify")
    outcome = jobs.Scheduler(runtime).run_now("notify.dispatch")
    assert (outcome.status, outcome.items) == ("succeeded", 1)
    assert row(runtime, n.id).status == "sent"
    assert any(getattr(r, "notification_id", None) == n.id for r in caplog.records)


@pytest.mark.db
def test_retention_erases_finished_notifications_after_30_days(runtime: Runtime) -> None:
    jobs.load_job_modules()
    policy = retention.policies.get("notification")
    assert policy.period == timedelta(days=30)
    with transaction(runtime.sessions) as s:
        old = add(s, key="old", org_id="org-1")
        failed = add(s, key="failed")
        recent = add(s, key="recent")
        waiting = add(s, key="waiting")
    t0 = utcnow()
    notify.dispatch(runtime.sessions, senders=both(Recorder()), now=t0, ids=[old.id])
    notify.dispatch(
        runtime.sessions,
        senders=both(Recorder(fail=1, error=PermanentSendError("refused"))),
        now=t0,
        ids=[failed.id],
    )
    notify.dispatch(
        runtime.sessions, senders=both(Recorder()), now=t0 + timedelta(days=20), ids=[recent.id]
    )
    registry = retention.RetentionRegistry()
    registry.register(
        record_type=policy.record_type,
        period=policy.period,
        find_expired=policy.find_expired,
        erase=policy.erase,
        erase_timeline=policy.erase_timeline,
    )
    report = retention.enforce(
        sessions=runtime.sessions, now=t0 + timedelta(days=31), registry=registry
    )
    assert report.erased == {"notification": 2}
    with runtime.sessions() as s:
        left = set(s.scalars(select(Notification.id)).all())
        erased_events = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == retention.RECORD_ERASED)
        ).all()
        erase_audits = s.scalars(select(AuditEntry).where(AuditEntry.action == "erase")).all()
    assert left == {recent.id, waiting.id}  # too young, and never finished
    assert sorted(e.payload["record_id"] for e in erased_events) == sorted([old.id, failed.id])
    assert {e.org_id for e in erased_events} == {"org-1", None}
    assert sorted(a.target_id or "" for a in erase_audits) == sorted([old.id, failed.id])
