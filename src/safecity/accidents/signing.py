"""Signing: the summary both drivers sign with a one-time code, the platform's Ed25519
seal over it (with the evidence hashes), the downloadable sealed document, and the
notices of loss the seal makes due (delivered by :mod:`safecity.accidents.insurers`).

The code is sent through the notification outbox (the log sender in development); only
its salted hash is kept, for five minutes, with at most five tries per code and five
codes per driver. A wrong code is counted (the caller commits the attempt).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.accidents import credentials, events, insurers
from safecity.accidents.models import AccidentCase, AccidentParty, AccidentSignature, InsurerNotice
from safecity.accidents.service import audit_action, parties, party_principal, photos, sha256_hex
from safecity.accidents.workflow import ACCIDENT
from safecity.platform import notify, outbox, workflow
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from safecity.platform.runtime import settings_for
from safecity.security import keys
from safecity.security.rbac import Principal

SEAL_KEY_FILE = "accidents-seal.key"
OTP_TTL = timedelta(minutes=5)
OTP_MAX_ATTEMPTS = 5
OTP_MAX_SENDS = 5


def summary(session: Session, case: AccidentCase) -> dict[str, Any]:
    """What both drivers sign: facts, verdict and the evidence hashes (frozen once decided)."""
    found = parties(session, case)
    return {
        "type": "safecity.accident.summary",
        "version": 1,
        "case_ref": case.ref,
        "city": case.city,
        "place": {"lat": case.lat, "lng": case.lng},
        "started_at": case.t0_started_at.isoformat(),
        "road_cleared_at": case.t1_road_cleared_at.isoformat() if case.t1_road_cleared_at else None,
        "parties": [_party_summary(p) for _, p in sorted(found.items())],
        "liability": case.liability,
        "evidence": sorted(
            ({"position": x.position, "sha256": x.sha256} for x in photos(session, case)),
            key=lambda e: (e["position"], e["sha256"]),
        ),
    }


def _party_summary(p: AccidentParty) -> dict[str, Any]:
    """One driver in the summary. ``verified`` (added in place, only when a field was
    filled from an e-certificate, so a summary without one is unchanged) maps each such
    field to the certificate type, its identifier digest, the verdict and its time."""
    out: dict[str, Any] = {
        "role": p.role,
        "plate": p.plate,
        "licence_no": p.licence_no,
        "insurer": p.insurer_code,
        "policy_no": p.policy_no,
        "own_situations": p.own_situations,
        "other_situations": p.other_situations,
    }
    verified = credentials.summary_entries(p)
    if verified:
        out["verified"] = verified
    return out


def summary_sha256(session: Session, case: AccidentCase) -> str:
    return hashlib.sha256(insurers.canonical(summary(session, case))).hexdigest()


def request_otp(*, session: Session, case: AccidentCase, party: AccidentParty) -> None:
    """Send the driver a 6-digit signing code by SMS (through the notification outbox)."""
    if case.state != "evidence_complete":
        raise Conflict("there is nothing to sign yet")
    if party.otp_sent >= OTP_MAX_SENDS:
        raise Conflict("too many codes were sent; ask an officer")
    code = f"{secrets.randbelow(10**6):06d}"
    party.otp_sent += 1
    party.otp_hash = sha256_hex(f"{party.id}:{code}")
    party.otp_expires_at = utcnow() + OTP_TTL
    party.otp_attempts = 0
    notify.enqueue(
        session,
        channel="sms",
        to=party.phone,
        body=f"SafeCity 快处易赔 {case.ref}: 签字验证码 / signing code {code} (5 min)",
        purpose="accident agreement signature",
        idempotency_key=f"accidents:{party.id}:otp:{party.otp_sent}",
        template="accidents.otp",
        org_id=case.org_id,
        expires_at=party.otp_expires_at,
    )
    audit_action(session, party_principal(case, party), "otp", case, role=party.role)


def sign(*, session: Session, case: AccidentCase, party: AccidentParty, code: str) -> str:
    """Sign the summary with the code; the second signature seals the case. Returns
    ``"wrong_code"`` (the failed attempt counts: let the caller commit it), ``"signed"``,
    or ``"sealed"`` (notices to insurers are then due)."""
    if case.state != "evidence_complete":
        raise Conflict("there is nothing to sign now")
    if party.otp_hash is None or party.otp_expires_at is None or party.otp_expires_at < utcnow():
        raise InvalidInput("ask for a new code: none is valid now")
    if party.otp_attempts >= OTP_MAX_ATTEMPTS:
        raise PermissionDenied("too many wrong codes; ask for a new one")
    party.otp_attempts += 1
    if not hmac.compare_digest(party.otp_hash, sha256_hex(f"{party.id}:{code.strip()}")):
        return "wrong_code"
    party.otp_hash = None
    digest = summary_sha256(session, case)
    existing = session.scalars(
        select(AccidentSignature).where(
            AccidentSignature.case_id == case.id, AccidentSignature.role == party.role
        )
    ).first()
    if existing is None:
        session.add(
            AccidentSignature(
                case_id=case.id,
                party_id=party.id,
                role=party.role,
                method="otp",
                summary_sha256=digest,
                signed_at=utcnow(),
            )
        )
    else:  # signed again after an officer's ruling changed the summary
        existing.summary_sha256, existing.signed_at = digest, utcnow()
    session.flush()
    who = party_principal(case, party)
    audit_action(session, who, "sign", case, role=party.role, summary_sha256=digest)
    sigs = session.scalars(
        select(AccidentSignature).where(AccidentSignature.case_id == case.id)
    ).all()
    if len(sigs) < 2 or any(s.summary_sha256 != digest for s in sigs):
        return "signed"
    _seal(session, case, who, digest, list(sigs))
    return "sealed"


def _seal(
    session: Session, case: AccidentCase, who: Principal, digest: str, sigs: list[AccidentSignature]
) -> None:
    now = utcnow()
    document = {
        "summary": summary(session, case),
        "summary_sha256": digest,
        "signatures": [
            {"role": s.role, "method": s.method, "signed_at": s.signed_at.isoformat()}
            for s in sorted(sigs, key=lambda s: s.role)
        ],
        "sealed_at": now.isoformat(),
    }
    body = insurers.canonical(document)
    key = keys.ed25519_key(settings_for(session).effective_key_dir, SEAL_KEY_FILE)
    case.sealed_summary = body.decode()
    case.seal_sha256 = hashlib.sha256(body).hexdigest()
    case.seal_signature = key.sign(body).hex()
    case.t2_signed_at = now
    workflow.apply(session, machine=ACCIDENT, record=case, transition="agree", principal=who)
    outbox.emit(
        session,
        type=events.SEALED,
        source=events.SOURCE,
        org_id=case.org_id,
        payload={"case_id": case.id, "org_id": case.org_id, "summary_sha256": case.seal_sha256},
    )
    for role, p in sorted(parties(session, case).items()):
        session.add(
            InsurerNotice(
                case_id=case.id,
                party_role=role,
                insurer_code=p.insurer_code,
                idempotency_key=f"accident:{case.id}:{role}:{p.insurer_code}",
                next_attempt_at=now,
                created_at=now,
            )
        )
    session.flush()


def sealed_document(session: Session, case: AccidentCase) -> dict[str, Any]:
    """The downloadable seal: the canonical document, its Ed25519 signature, the public key."""
    if case.sealed_summary is None or case.seal_signature is None:
        raise NotFound("the case is not sealed yet")
    key = keys.ed25519_key(settings_for(session).effective_key_dir, SEAL_KEY_FILE)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "document": json.loads(case.sealed_summary),
        "document_sha256": case.seal_sha256,
        "alg": "Ed25519",
        "signature": case.seal_signature,
        "public_key": base64.b64encode(public).decode(),
        "note": "signature over the canonical JSON of document (sorted keys, no spaces, UTF-8)",
    }


def notice_ids(session: Session, case: AccidentCase) -> list[str]:
    return list(session.scalars(select(InsurerNotice.id).where(InsurerNotice.case_id == case.id)))
