"""The indicator store: block lists of scam numbers, accounts and domains.

Every entry carries its source, confidence, evidence (a case id, a report, a review
note — an entry without evidence is refused), expiry and review state. Entries come
from a case's confirmation (active at once: the case is the review) or as *proposals*
from the engine or a reviewer, which a supervisor approves or rejects. Operators,
banks and registrars receive the active entries as CSV or as a signed JSON feed
(compact JWS, Ed25519 (RFC 9864), under ``fraud-feed.key``); anyone listed can appeal, and an upheld
appeal removes the entry. Reading the plain values is personal-data access: scoped and
audited, with a purpose.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.fraud.events import INDICATOR_CHANGED, SOURCE
from safecity.fraud.identifiers import KINDS, Pseudonymiser, normalise
from safecity.fraud.models import INDICATOR_SOURCES, Appeal, Indicator
from safecity.fraud.workflow import INDICATOR, REVIEW
from safecity.orgs import service as orgs
from safecity.platform import outbox, workflow
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from safecity.platform.runtime import settings_for
from safecity.security import audit, keys, rbac
from safecity.security.rbac import Principal

DEFAULT_TTL = {
    "phone": timedelta(days=180),
    "account": timedelta(days=365),
    "domain": timedelta(days=90),
}
MAX_TTL = timedelta(days=730)
PURPOSE = "fraud_prevention"
FEED_ISSUER = "safecity-fraud"


def pseudonymiser(session: Session) -> Pseudonymiser:
    return Pseudonymiser(keys.fraud_pseudonym_key(settings_for(session).effective_key_dir))


def _city(session: Session) -> str:
    cities, _ = orgs.list_orgs(session=session, kind="city", limit=1)
    if not cities:
        raise InvalidInput("no city organisation yet: create the city first")
    return cities[0].id


def _announce(session: Session, indicator: Indicator) -> None:
    outbox.emit(
        session,
        type=INDICATOR_CHANGED,
        source=SOURCE,
        org_id=indicator.org_id,
        payload={
            "indicator_id": indicator.id,
            "kind": indicator.kind,
            "pseudonym": indicator.pseudonym,
            "state": indicator.state,
        },
    )


# --------------------------------------------------------------------------- writes


def _existing(session: Session, kind: str, pseudonym: str) -> Indicator | None:
    return session.scalars(
        select(Indicator).where(Indicator.kind == kind, Indicator.pseudonym == pseudonym)
    ).first()


def add(
    *,
    session: Session,
    principal: Principal,
    kind: str,
    value: str,
    source: str,
    evidence: str,
    confidence: float = 1.0,
    reasons: Iterable[str] = (),
    expires_at: datetime | None = None,
    active: bool = False,
) -> Indicator:
    """Propose an entry (``active=True``: list it at once — for confirmed cases only).

    :class:`InvalidInput` for a bad value, kind, source, confidence or expiry, or when
    ``evidence`` is empty; :class:`Conflict` when the identifier is already on the list
    (approve, reinstate or appeal that entry instead).
    """
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    if source not in INDICATOR_SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(INDICATOR_SOURCES)}")
    evidence = (evidence or "").strip()
    if not evidence:
        raise InvalidInput("a block-list entry needs evidence (a case id, report or review note)")
    if len(evidence) > 300:
        raise InvalidInput("evidence must be at most 300 characters")
    if not 0.0 < confidence <= 1.0:
        raise InvalidInput("confidence must be in (0, 1]")
    now = utcnow()
    if expires_at is None:
        expires_at = now + DEFAULT_TTL[kind]
    if expires_at.tzinfo is None or expires_at <= now or expires_at > now + MAX_TTL:
        raise InvalidInput("expires_at must be a zoned time in the next two years")
    plain = normalise(kind, value)
    pseudonym = pseudonymiser(session).of_normalised(kind, plain)
    existing = _existing(session, kind, pseudonym)
    if existing is not None:
        raise Conflict(
            f"this {kind} is already on the list ({existing.state}, entry {existing.id})",
            indicator_id=existing.id,
        )
    indicator = Indicator(
        kind=kind,
        value=plain,
        pseudonym=pseudonym,
        source=source,
        confidence=confidence,
        evidence=evidence,
        reasons=list(reasons),
        org_id=_city(session),
        expires_at=expires_at,
        created_by=principal.id,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():  # another transaction may list it at the same moment
            workflow.start(session, machine=INDICATOR, record=indicator, principal=principal)
    except IntegrityError:
        if indicator in session:
            session.expunge(indicator)
        raced = _existing(session, kind, pseudonym)
        raise Conflict(
            f"this {kind} was put on the list at the same moment"
            + (f" (entry {raced.id})" if raced is not None else ""),
            indicator_id=raced.id if raced is not None else None,
        ) from None
    audit.record(
        session,
        principal=principal,
        action="fraud.indicator.add",
        target_type=INDICATOR.record_type,
        target_id=indicator.id,
        detail={"kind": kind, "source": source, "active": active},
    )
    if active:
        workflow.apply(
            session,
            machine=INDICATOR,
            record=indicator,
            transition="approve",
            principal=principal,
            note=f"confirmed: {evidence[:100]}",
        )
    _announce(session, indicator)
    return indicator


def transition(
    *,
    session: Session,
    principal: Principal,
    indicator_id: str,
    name: str,
    notes: str | None = None,
) -> Indicator:
    indicator = get(session=session, principal=principal, indicator_id=indicator_id)
    text = notes.strip() if notes and notes.strip() else None
    workflow.apply(
        session,
        machine=INDICATOR,
        record=indicator,
        transition=name,
        principal=principal,
        note=text,
        fields={"notes": text},
    )
    _announce(session, indicator)
    return indicator


def expire_due(*, session: Session, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire active entries past their expiry (the scheduler's job); how many."""
    now = now or utcnow()
    due = session.scalars(
        select(Indicator)
        .where(Indicator.state == "active", Indicator.expires_at <= now)
        .limit(limit)
    ).all()
    for indicator in due:
        workflow.apply(
            session,
            machine=INDICATOR,
            record=indicator,
            transition="expire",
            principal=audit.SYSTEM,
            note="expired",
        )
        _announce(session, indicator)
    return len(due)


# --------------------------------------------------------------------------- reads


def scoped_query(principal: Principal) -> Select[Any]:
    return select(Indicator).where(rbac.scope_clause(principal, Indicator.org_id))


def get(*, session: Session, principal: Principal, indicator_id: str) -> Indicator:
    return rbac.get_in_scope(session, Indicator, indicator_id, principal, what="indicator")


def read(*, session: Session, principal: Principal, indicator_id: str) -> Indicator:
    """One entry, its plain value read with an audit record."""
    entry = get(session=session, principal=principal, indicator_id=indicator_id)
    audit.record(
        session,
        principal=principal,
        action="fraud.indicator.read",
        target_type="fraud_indicator",
        target_id=entry.id,
        purpose=PURPOSE,
    )
    return entry


def list_indicators(
    *,
    session: Session,
    principal: Principal,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Indicator]:
    """Entries in scope, newest first; reading their values is audited."""
    query = scoped_query(principal).order_by(Indicator.updated_at.desc(), Indicator.id)
    if state:
        query = query.where(Indicator.state == state)
    if kind:
        query = query.where(Indicator.kind == kind)
    rows = list(session.scalars(query.limit(min(limit, 500)).offset(offset)))
    audit.record(
        session,
        principal=principal,
        action="fraud.indicator.list",
        target_type="fraud_indicator",
        purpose=PURPOSE,
        detail={"count": len(rows), "state": state or "", "kind": kind or ""},
    )
    return rows


def active_pseudonyms(*, session: Session) -> list[tuple[str, float]]:
    """(pseudonym, confidence) of every active entry: what the engine matches against."""
    rows = session.execute(
        select(Indicator.pseudonym, Indicator.confidence).where(Indicator.state == "active")
    ).all()
    return [(p, float(c)) for p, c in rows]


# --------------------------------------------------------------------------- exports


def _active_rows(session: Session, kind: str | None) -> list[Indicator]:
    query = (
        select(Indicator)
        .where(Indicator.state == "active")
        .order_by(Indicator.kind, Indicator.value)
    )
    if kind:
        query = query.where(Indicator.kind == kind)
    return list(session.scalars(query))


def _export_audit(session: Session, principal: Principal, fmt: str, count: int) -> None:
    audit.record(
        session,
        principal=principal,
        action="fraud.indicator.export",
        target_type="fraud_indicator",
        purpose=PURPOSE,
        detail={"format": fmt, "count": count},
    )


def export_csv(*, session: Session, principal: Principal, kind: str | None = None) -> str:
    rows = _active_rows(session, kind)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["kind", "value", "source", "confidence", "listed_at", "expires_at", "entry_id"]
    )
    for r in rows:
        writer.writerow(
            [
                r.kind,
                r.value,
                r.source,
                f"{r.confidence:.2f}",
                (r.reviewed_at or r.created_at).isoformat(),
                r.expires_at.isoformat(),
                r.id,
            ]
        )
    _export_audit(session, principal, "csv", len(rows))
    return buffer.getvalue()


def feed_key(session: Session) -> OKPKey:
    private = keys.fraud_feed_key(settings_for(session).effective_key_dir)
    return OKPKey.import_key(private)


def export_signed(*, session: Session, principal: Principal, kind: str | None = None) -> str:
    """The active entries as a compact JWS (alg Ed25519, RFC 9864); ``kid`` = key fingerprint."""
    rows = _active_rows(session, kind)
    key = feed_key(session)
    kid = keys.key_fingerprint(
        keys.fraud_feed_key(settings_for(session).effective_key_dir).public_key()
    )
    now = utcnow()
    body = {
        "iss": FEED_ISSUER,
        "iat": int(now.timestamp()),
        "entries": [
            {
                "kind": r.kind,
                "value": r.value,
                "confidence": round(r.confidence, 2),
                "expires_at": r.expires_at.isoformat(),
                "id": r.id,
            }
            for r in rows
        ],
    }
    _export_audit(session, principal, "jws", len(rows))
    token = jws.serialize_compact(
        {"alg": "Ed25519", "kid": kid, "typ": "safecity-blocklist+jws"},
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        key,
        algorithms=["Ed25519"],
    )
    return token


def verify_feed(token: str, public_key: OKPKey) -> dict[str, Any]:
    """What a receiver runs: the feed's body, or :class:`InvalidInput` if the signature or
    the format is wrong."""
    try:
        obj = jws.deserialize_compact(token, public_key, algorithms=["Ed25519"])
        body = json.loads(obj.payload)
    except Exception as exc:  # joserfc raises several error types; all mean "not valid"
        raise InvalidInput(f"block-list feed does not verify: {type(exc).__name__}") from None
    if not isinstance(body, dict) or body.get("iss") != FEED_ISSUER:
        raise InvalidInput("block-list feed has the wrong issuer")
    return body


# --------------------------------------------------------------------------- appeals


def appeal(*, session: Session, kind: str, value: str, contact: str, reason: str) -> Appeal:
    """Someone asks to be taken off the list (public: no login). The answer never says
    whether the identifier is listed; an appeal for an unlisted one is dropped quietly."""
    contact, reason = (contact or "").strip(), (reason or "").strip()
    if not contact or len(contact) > 200:
        raise InvalidInput(
            "give a contact (phone or e-mail, at most 200 characters) for the answer"
        )
    if not reason or len(reason) > 2000:
        raise InvalidInput("say why the entry is wrong (at most 2,000 characters)")
    pseudonym = pseudonymiser(session).of(kind, value)
    indicator = session.scalars(
        select(Indicator).where(Indicator.kind == kind, Indicator.pseudonym == pseudonym)
    ).first()
    record = Appeal(
        indicator_id=indicator.id if indicator else "",
        org_id=indicator.org_id if indicator else _city(session),
        contact=contact,
        reason=reason,
        state="open" if indicator else "dropped",
        created_at=utcnow(),
    )
    if indicator is None:
        return record  # not stored: nothing to decide, nothing to reveal
    session.add(record)
    session.flush()
    audit.record(
        session,
        principal=audit.SYSTEM,
        action="fraud.appeal.file",
        target_type="fraud_appeal",
        target_id=record.id,
        detail={"indicator": indicator.id},
    )
    return record


def list_appeals(*, session: Session, principal: Principal, limit: int = 100) -> list[Appeal]:
    rows = list(
        session.scalars(
            select(Appeal)
            .where(rbac.scope_clause(principal, Appeal.org_id), Appeal.state == "open")
            .order_by(Appeal.created_at)
            .limit(min(limit, 500))
        )
    )
    audit.record(
        session,
        principal=principal,
        action="fraud.appeal.list",
        target_type="fraud_appeal",
        purpose=PURPOSE,
        detail={"count": len(rows)},
    )
    return rows


def decide_appeal(
    *, session: Session, principal: Principal, appeal_id: str, uphold: bool, notes: str
) -> Appeal:
    if not principal.can(REVIEW):
        raise PermissionDenied("permission 'fraud:review' is required to decide appeals")
    record = rbac.get_in_scope(session, Appeal, appeal_id, principal, what="appeal")
    if record.state != "open":
        raise Conflict(f"this appeal is already {record.state}")
    if not notes or not notes.strip():
        raise InvalidInput("deciding an appeal requires notes")
    record.state = "upheld" if uphold else "rejected"
    record.decided_by, record.decided_at, record.decision_note = (
        principal.id,
        utcnow(),
        notes.strip(),
    )
    if uphold:
        indicator = session.get(Indicator, record.indicator_id)
        if indicator is None:
            raise NotFound("the appealed entry no longer exists")
        if indicator.state == "active":
            transition(
                session=session,
                principal=principal,
                indicator_id=indicator.id,
                name="remove",
                notes=f"appeal {record.id} upheld: {notes.strip()[:200]}",
            )
    audit.record(
        session,
        principal=principal,
        action="fraud.appeal.decide",
        target_type="fraud_appeal",
        target_id=record.id,
        detail={"upheld": uphold},
    )
    return record
