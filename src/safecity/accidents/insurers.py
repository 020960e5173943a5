"""Insurer hand-off: notices of loss as signed webhooks, delivered at least once, recorded
exactly once; and the demo insurer that acknowledges them.

Wire format (every insurer)::

    POST <insurer url>
    Content-Type: application/json
    Idempotency-Key: accident:<case id>:<role>:<insurer>
    X-SafeCity-Insurer: <insurer code>
    X-SafeCity-Signature: sha256=<hex HMAC-SHA256 of the exact body, per-insurer secret>

    → 200/201/202 {"claim_id": "...", "status": "acknowledged"}

Secrets: ``<key_dir>/accidents-insurer-<code>.key`` (32 random bytes, hex; created on first
use, mode 0600), shared with the insurer out of band. Insurers report assessment and
payment back with a body :class:`~safecity.accidents.schemas.InsurerReport` signed the
same way (``POST /api/accidents/insurers/{code}/reports``).

Delivery mirrors :mod:`safecity.platform.notify`: :func:`dispatch` claims due notices
one at a time with a guarded ``UPDATE`` (status and attempts unchanged, so two dispatchers
never send one notice at once; the claim is a ``LEASE`` of 15 s, longer than the 8 s
HTTP timeout), posts it outside any transaction, then records the outcome only if
the claim is still its own. A failure is retried with exponential backoff up to
``max_attempts``; an acknowledgement is recorded once: a second acknowledgement of the
same notice (a retried request, an insurer answering twice) bumps ``acks`` and changes
nothing else. When every notice of a case is acknowledged the case moves to ``notified``
(t3); assessment (t4) and payment (t5) are stamped when the last insurer reports them, and
the case closes on the last payment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from safecity.accidents import events
from safecity.accidents.models import AccidentCase, AccidentParty, AccidentPhoto, InsurerNotice
from safecity.accidents.workflow import ACCIDENT
from safecity.platform import jobs, outbox, workflow
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import ConfigurationError, NotFound, PermissionDenied
from safecity.platform.runtime import Runtime
from safecity.security import audit

#: How long a claimed notice is another dispatcher's: above the HTTP timeout, so a slow
#: insurer is never sent the same notice twice at once, and short, so a crash delays little.
LEASE = timedelta(seconds=15)
HTTP_TIMEOUT_S = 8
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(minutes=10)
DEMO_URL = "inproc:demo"
SIGNATURE_HEADER = "X-SafeCity-Signature"


@dataclass(frozen=True)
class Insurer:
    code: str
    name_zh: str
    name_en: str
    url: str = DEMO_URL


#: Insurers the drivers can pick. All demo insurers (acknowledged in-process by the demo
#: insurer); a deployment replaces ``url`` with the insurer's webhook.
INSURERS: dict[str, Insurer] = {
    i.code: i
    for i in (
        Insurer("demo_picc", "人保财险（演示）", "PICC P&C (demo)"),
        Insurer("demo_pingan", "平安产险（演示）", "Ping An P&C (demo)"),
        Insurer("demo_cpic", "太平洋产险（演示）", "CPIC P&C (demo)"),
    )
}


def get_insurer(code: str) -> Insurer:
    try:
        return INSURERS[code]
    except KeyError:
        raise NotFound(f"no insurer with code {code!r}") from None


def secret_file(key_dir: Path, name: str) -> bytes:
    """32 random bytes kept hex-encoded in ``key_dir/name`` (created on first use, 0600)."""
    path = key_dir / name
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a hex key") from exc


def secret_for(key_dir: Path, code: str) -> bytes:
    """The HMAC secret shared with insurer ``code``."""
    get_insurer(code)
    return secret_file(key_dir, f"accidents-insurer-{code}.key")


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> None:
    """Raise :class:`PermissionDenied` unless ``header`` is the body's signature."""
    if not header or not hmac.compare_digest(sign(secret, body), header.strip()):
        raise PermissionDenied("the webhook signature does not match the body")


def canonical(data: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8): what is signed and hashed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- payload


def payload(session: Session, notice: InsurerNotice) -> dict[str, Any]:
    """The notice of loss, rebuilt from the sealed case (the same bytes on every attempt)."""
    case = session.get(AccidentCase, notice.case_id)
    if case is None or case.sealed_summary is None:
        raise NotFound("the notice's case is gone or not sealed")
    parties = {
        p.role: p
        for p in session.scalars(select(AccidentParty).where(AccidentParty.case_id == case.id))
    }
    insured, other = parties[notice.party_role], parties["B" if notice.party_role == "A" else "A"]
    photos = session.scalars(
        select(AccidentPhoto.sha256)
        .where(AccidentPhoto.case_id == case.id)
        .order_by(AccidentPhoto.sha256)
    ).all()
    return {
        "type": "notice_of_loss",
        "version": 1,
        "notice_id": notice.id,
        "idempotency_key": notice.idempotency_key,
        "insurer": notice.insurer_code,
        "case_ref": case.ref,
        "occurred_at": case.t0_started_at.isoformat(),
        "place": {"lat": case.lat, "lng": case.lng},
        "insured": {
            "role": insured.role,
            "plate": insured.plate,
            "licence_no": insured.licence_no,
            "policy_no": insured.policy_no,
            "contact_phone": insured.phone,
        },
        "other_party": {"role": other.role, "plate": other.plate, "insurer": other.insurer_code},
        "liability": case.liability,
        "summary_sha256": case.seal_sha256,
        "seal_signature": case.seal_signature,
        "evidence_sha256": list(photos),
    }


# --------------------------------------------------------------------------- transport


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


Transport = Callable[[Insurer, bytes, Mapping[str, str]], Reply]


def demo_claim_id(secret: bytes, idempotency_key: str) -> str:
    """The demo insurer's claim id: the same for the same notice, however often sent."""
    return "DEMO-" + hmac.new(secret, idempotency_key.encode(), hashlib.sha256).hexdigest()[:16]


def demo_receive(key_dir: Path, body: bytes, headers: Mapping[str, str]) -> Reply:
    """The demo insurer: check the signature, acknowledge with a stable claim id (raises
    :class:`NotFound` for an unknown insurer, :class:`PermissionDenied` for a bad
    signature or body)."""
    code = headers.get("X-SafeCity-Insurer", "")
    if code not in INSURERS:
        raise NotFound("the demo insurer does not know this insurer code")
    secret = secret_for(key_dir, code)
    verify(secret, body, headers.get(SIGNATURE_HEADER))
    try:
        data = json.loads(body)
    except ValueError:
        raise PermissionDenied("the notice is not JSON") from None
    key = str(data.get("idempotency_key", "")) if isinstance(data, dict) else ""
    return Reply(200, {"claim_id": demo_claim_id(secret, key), "status": "acknowledged"})


def http_transport(key_dir: Path) -> Transport:
    """POST to the insurer's URL; ``inproc:demo`` goes straight to :func:`demo_receive`."""

    def send(insurer: Insurer, body: bytes, headers: Mapping[str, str]) -> Reply:
        if insurer.url == DEMO_URL:
            return demo_receive(key_dir, body, headers)
        if not insurer.url.startswith(("https://", "http://")):
            raise ConfigurationError(f"insurer {insurer.code} has no http(s) webhook URL")
        request = urllib.request.Request(insurer.url, data=body, headers=dict(headers))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
                return Reply(response.status, json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, {})

    return send


# --------------------------------------------------------------------------- dispatch


@dataclass
class DispatchReport:
    acked: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def _due(now: datetime) -> Any:
    return InsurerNotice.status.in_(("pending", "sending")) & (InsurerNotice.next_attempt_at <= now)


def _claim_one(
    sessions: sessionmaker[Session], now: datetime, ids: Collection[str] | None
) -> tuple[str, int, str, bytes, str] | None:
    """Claim the most overdue notice: (id, attempt, insurer code, body, idempotency key).

    One notice per claim, so a dispatcher that dies holds the lease of one notice only;
    the others are taken by the next dispatcher at once.
    """
    with transaction(sessions) as s:
        stmt = select(InsurerNotice).where(_due(now)).order_by(InsurerNotice.next_attempt_at)
        if ids is not None:
            stmt = stmt.where(InsurerNotice.id.in_(list(ids)))
        for row in s.scalars(stmt.limit(10)).all():
            guard = (
                (InsurerNotice.id == row.id)
                & (InsurerNotice.attempts == row.attempts)
                & (InsurerNotice.status == row.status)
            )
            if row.attempts >= row.max_attempts:  # its last attempt was cut short
                done = s.execute(update(InsurerNotice).where(guard).values(status="failed"))
                if getattr(done, "rowcount", 0):
                    _failed(s, row)
                continue
            done = s.execute(
                update(InsurerNotice)
                .where(guard)
                .values(status="sending", attempts=row.attempts + 1, next_attempt_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if getattr(done, "rowcount", 0):
                body = canonical(payload(s, row))
                return row.id, row.attempts + 1, row.insurer_code, body, row.idempotency_key
    return None


def dispatch(
    sessions: sessionmaker[Session],
    *,
    key_dir: Path,
    transport: Transport | None = None,
    now: datetime | None = None,
    ids: Collection[str] | None = None,
    limit: int = 100,
    urls: Mapping[str, str] | None = None,
) -> DispatchReport:
    """Send up to ``limit`` due notices (or those of ``ids``), each at most once per call.

    ``urls`` (the ``accidents_insurer_urls`` setting) names the webhook of each insurer;
    those not named keep their built-in URL (the in-process demo insurer).
    """
    send = transport or http_transport(key_dir)
    report = DispatchReport()
    for _ in range(limit):
        claimed = _claim_one(sessions, now or utcnow(), ids)
        if claimed is None:
            break
        notice_id, attempt, code, body, key = claimed
        error: str | None = None
        claim_id: str | None = None
        try:  # a bad insurer code or an unreadable secret is this notice's failure only
            insurer = get_insurer(code)
            if urls and code in urls:
                insurer = dataclasses.replace(insurer, url=urls[code])
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": key,
                "X-SafeCity-Insurer": code,
                SIGNATURE_HEADER: sign(secret_for(key_dir, code), body),
            }
            reply = send(insurer, body, headers)
            claim_id = str(reply.body.get("claim_id") or "") or None
            if reply.status not in (200, 201, 202) or claim_id is None:
                error = f"insurer answered {reply.status} without a claim id"
        except Exception as exc:  # any transport failure is retried
            error = f"{type(exc).__name__}: {exc}"[:500]
        with transaction(sessions) as s:
            if error is None and claim_id is not None:
                record_ack(s, notice_id=notice_id, claim_id=claim_id, attempt=attempt)
                report.acked += 1
            elif _retry(s, notice_id, attempt, error or "unknown error", now or utcnow()):
                report.retrying += 1
                report.errors.append((notice_id, error or ""))
            else:
                report.failed += 1
                report.errors.append((notice_id, error or ""))
    return report


def _retry(s: Session, notice_id: str, attempt: int, error: str, now: datetime) -> bool:
    row = s.get(InsurerNotice, notice_id)
    if row is None or row.status != "sending" or row.attempts != attempt:
        return True  # re-claimed meanwhile: the other claim records its own outcome
    if attempt >= row.max_attempts:
        row.status, row.last_error = "failed", error
        _failed(s, row)
        return False
    delay = min(BACKOFF_BASE.total_seconds() * 2 ** (attempt - 1), BACKOFF_CAP.total_seconds())
    row.status, row.last_error = "pending", error
    row.next_attempt_at = now + timedelta(seconds=delay)
    return True


def _failed(s: Session, row: InsurerNotice) -> None:
    """A notice that could not be delivered goes to an officer (the case's review alert)."""
    from safecity.accidents.service import flag  # service imports this module

    case = s.get(AccidentCase, row.case_id)
    if case is not None:
        detail = f"notice to {row.insurer_code} failed after {row.attempts} attempts"
        flag(
            s, case, audit.SYSTEM, [{"code": "insurer_unreachable", "photo": "", "detail": detail}]
        )


def record_ack(
    s: Session, *, notice_id: str, claim_id: str, attempt: int | None = None
) -> InsurerNotice:
    """Record an acknowledgement once: the first sets the claim id and ``acked_at`` and may
    move the case to ``notified``; any later one only counts (``acks``)."""
    row = s.scalars(
        select(InsurerNotice)
        .where(InsurerNotice.id == notice_id)
        .execution_options(populate_existing=True)
    ).one()
    row.acks += 1
    if row.status == "acked":
        return row
    now = utcnow()
    row.status, row.acked_at, row.external_claim_id, row.last_error = "acked", now, claim_id, None
    _announce(s, row, "acknowledged")
    case = s.get(AccidentCase, row.case_id)
    if case is not None and _all(s, case.id, InsurerNotice.acked_at):
        case.t3_insurer_ack_at = now
        if case.state == "agreed":
            workflow.apply(
                s, machine=ACCIDENT, record=case, transition="notify", principal=audit.SYSTEM
            )
    return row


def _all(s: Session, case_id: str, column: Any) -> bool:
    values = s.scalars(select(column).where(InsurerNotice.case_id == case_id)).all()
    return bool(values) and all(v is not None for v in values)


def _announce(s: Session, row: InsurerNotice, event: str) -> None:
    outbox.emit(
        s,
        type=events.INSURER_REPORTED,
        source=events.SOURCE,
        payload={
            "case_id": row.case_id,
            "notice_id": row.id,
            "insurer": row.insurer_code,
            "event": event,
        },
    )


def apply_report(
    s: Session, *, key_dir: Path, code: str, body: bytes, signature: str | None
) -> InsurerNotice:
    """An insurer's signed report (assessed / paid) about one of its claims; idempotent."""
    from safecity.accidents.schemas import InsurerReport

    verify(secret_for(key_dir, code), body, signature)
    report = InsurerReport.model_validate_json(body)
    row = s.scalars(
        select(InsurerNotice).where(
            InsurerNotice.insurer_code == code, InsurerNotice.external_claim_id == report.claim_id
        )
    ).first()
    if row is None:
        raise NotFound("no notice with this claim id")
    at = report.at or utcnow()
    column = "assessed_at" if report.event == "assessed" else "paid_at"
    if getattr(row, column) is not None:
        return row  # reported before: nothing changes
    setattr(row, column, at)
    if report.event == "paid" and row.assessed_at is None:
        row.assessed_at = at
    _announce(s, row, report.event)
    s.flush()
    case = s.get(AccidentCase, row.case_id)
    if case is None:
        return row
    if _all(s, case.id, InsurerNotice.assessed_at) and case.t4_assessed_at is None:
        case.t4_assessed_at = at
    if _all(s, case.id, InsurerNotice.paid_at) and case.t5_paid_at is None:
        case.t5_paid_at = at
        if case.state == "notified":
            workflow.apply(
                s, machine=ACCIDENT, record=case, transition="close", principal=audit.SYSTEM
            )
    return row


def deliver(runtime: Runtime, ids: Collection[str] | None = None) -> DispatchReport:
    """:func:`dispatch` with the runtime's key directory and insurer webhook URLs."""
    settings = runtime.settings
    return dispatch(
        runtime.sessions,
        key_dir=settings.effective_key_dir,
        ids=ids,
        urls=settings.accidents_insurer_urls,
    )


@jobs.job("accidents.insurers", every=timedelta(seconds=10))
def dispatch_job(ctx: jobs.JobContext) -> int:
    """Send due notices of loss to insurers (retried with backoff)."""
    report = deliver(ctx.runtime)
    for notice_id, error in report.errors:
        ctx.fail_item(f"notice {notice_id}: {error}")
    return report.acked + report.retrying + report.failed
