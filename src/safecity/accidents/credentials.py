"""Licence and plate from the drivers' e-certificates (e-services' verifiable credentials).

On the data step a driver shows the ``SC1:`` QR of their e-driving licence (and, separately,
of their vehicle's e-registration certificate): scanned with the phone's camera and decoded
in the browser (vendored jsQR), or pasted. The server verifies it through the e-services
domain's public verifier (:func:`safecity.eservices.verification.verify_text` with the
process-wide cache) and never reads e-services tables:

* the certificate type must be the catalogue's ``driving-licence`` (licence) or
  ``vehicle-registration-certificate`` (registration); anything else is ``wrong_type``;
* only a VALID verdict fills anything. EXPIRED (a QR lives 5 minutes), STATUS-STALE,
  INVALID (tampered, damaged, unknown issuer key) and a QR that does not disclose the
  needed claims are refused with a clear code and change nothing;
* a REVOKED or SUSPENDED driving licence is refused too, but it is also what the
  eligibility item ``licences_valid`` is about: the case gets a review flag and is routed
  to the police (escalated, "call 122"), like a "no" in the checklist. A revoked or
  suspended registration is flagged for review (no checklist item covers it).

What is filled, with the purpose profile the verifier applies:

* licence → ``licence_no`` = the holder's ID number (a Chinese driving licence's number
  is the holder's citizen ID number) and ``holder_name`` (family + given name), under the
  ``roadside-police`` profile (names, ID number, birth date, certificate number);
* registration → ``plate`` = ``attributes.plate_number``. No e-services profile is made
  for this exchange; the QR must disclose the certificate's attributes (today the
  ``employer`` profile does), and only the plate is kept.

Every filled field records its source in ``AccidentParty.field_sources``:
``{"source": "credential", "certificate_type", "credential_digest", "verdict",
"verified_at", "status_as_of"}`` where the digest is the SHA-256 of issuer, type and the
certificate's status-list entry (stable for one certificate, revealing nothing). The
summary both drivers sign lists the verified fields (:func:`summary_entries`).

Insurance (insurer and policy number) stays typed: the catalogue has no insurance
credential.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from safecity.accidents import service
from safecity.accidents.models import AccidentCase, AccidentParty
from safecity.eservices import verification
from safecity.eservices.catalogue import default_catalogue
from safecity.eservices.credentials import PROFILES, Verdict, VerdictStatus, cwt_qr
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime

LICENCE = "licence"
REGISTRATION = "registration"
MAX_TEXT = 2000
#: Fields of the signed summary that a credential can fill.
SUMMARY_FIELDS: tuple[str, ...] = ("plate", "licence_no")


@dataclass(frozen=True)
class Kind:
    """One credential the data step accepts."""

    name: str
    certificate_type: str
    profile: str | None  # the e-services purpose profile applied to the claims (None: all)
    fields: tuple[str, ...]


KINDS: dict[str, Kind] = {
    LICENCE: Kind(LICENCE, "driving-licence", "roadside-police", ("licence_no", "holder_name")),
    REGISTRATION: Kind(REGISTRATION, "vehicle-registration-certificate", None, ("plate",)),
}

#: Refusal codes (``accidents.cred.error.<code>`` in the messages).
REFUSALS: tuple[str, ...] = (
    "not_qr",
    "invalid",
    "wrong_type",
    "expired",
    "revoked",
    "suspended",
    "stale",
    "too_little",
)


@lru_cache(maxsize=8)
def vct_of(certificate_type: str) -> str:
    """The ``vct`` the e-services catalogue gives a certificate type."""
    for item in default_catalogue().items.values():
        for spec in item.certificates:
            if spec.type == certificate_type:
                return spec.vct
    raise LookupError(f"the e-services catalogue has no certificate {certificate_type!r}")


def cache_of(runtime: Runtime) -> verification.VerifierCache:
    """The e-services verifier cache of this process for ``runtime``."""
    return verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)


@dataclass(frozen=True)
class Checked:
    """A credential's verdict as the data step sees it: ``code`` is ``"valid"`` or one of
    :data:`REFUSALS`; ``values`` are the fields to fill (only when valid)."""

    kind: str
    code: str
    status: str
    reason: str
    verified_at: datetime
    values: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    as_of: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.code == "valid"

    def source(self) -> dict[str, Any]:
        """The ``field_sources`` entry of a field this credential filled."""
        return {
            "source": "credential",
            "certificate_type": KINDS[self.kind].certificate_type,
            "credential_digest": self.digest,
            "verdict": self.status,
            "verified_at": self.verified_at.isoformat(timespec="seconds"),
            "status_as_of": self.as_of.isoformat(timespec="seconds") if self.as_of else None,
        }


def _clean(text: str) -> str:
    # base45 has a space in its alphabet: only line breaks and tabs from a paste go
    return "".join(ch for ch in (text or "") if ch not in "\r\n\t").strip()


def _digest(text: str, verdict: Verdict, cache: verification.VerifierCache) -> str | None:
    """SHA-256 of issuer, type and the certificate's status entry (signature already
    verified by the verdict; re-decoded here only for the entry)."""
    try:
        status = cwt_qr.verify_qr(text, cache.keys).status
    except cwt_qr.QrError:
        return None
    ref = f"{status[0]}#{status[1]}" if status else ""
    return hashlib.sha256(f"{verdict.issuer}|{verdict.vct}|{ref}".encode()).hexdigest()


def _values(kind: Kind, claims: Mapping[str, Any]) -> dict[str, str] | None:
    """The fields ``kind`` fills from verified ``claims`` (None: not disclosed/usable)."""
    if kind.name == LICENCE:
        number = str(claims.get("id_number") or "").strip().upper()
        if not (6 <= len(number) <= 32 and number.isascii() and number.isalnum()):
            return None
        name = f"{claims.get('family_name') or ''}{claims.get('given_name') or ''}".strip()
        return {"licence_no": number, "holder_name": name[:64]}
    attrs = claims.get("attributes")
    plate = str(attrs.get("plate_number") or "") if isinstance(attrs, Mapping) else ""
    plate = "".join(plate.split()).upper()
    if not (5 <= len(plate) <= 12 and all(ch.isalnum() or ch in "_·-" for ch in plate)):
        return None
    return {"plate": plate}


_STATUS_UNREADABLE = frozenset({"status-unavailable", "status-undecodable", "status-unknown"})
_STATUS_CODES = {
    VerdictStatus.EXPIRED: "expired",
    VerdictStatus.REVOKED: "revoked",
    VerdictStatus.SUSPENDED: "suspended",
    VerdictStatus.STATUS_STALE: "stale",
    VerdictStatus.INVALID: "invalid",
}


def check(
    text: str, *, kind: str, cache: verification.VerifierCache, now: datetime | None = None
) -> Checked:
    """Verify ``text`` (an ``SC1:`` QR) as credential ``kind``; writes nothing."""
    spec = KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"unknown credential kind {kind!r}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    text = _clean(text)

    def out(code: str, verdict: Verdict | None = None, **kw: Any) -> Checked:
        return Checked(
            kind=kind,
            code=code,
            status=str(verdict.status) if verdict else "INVALID",
            reason=(verdict.reason if verdict else code)[:200],
            verified_at=now,
            as_of=verdict.as_of if verdict else None,
            **kw,
        )

    if not text.upper().startswith(cwt_qr.PREFIX) or len(text) > MAX_TEXT:
        return out("not_qr")
    verdict = verification.verify_text(text, cache=cache, now=now)
    unreadable = verdict.code in _STATUS_UNREADABLE  # signature fine, status not at hand
    if verdict.status is VerdictStatus.INVALID and not unreadable:
        return out("invalid", verdict)
    if verdict.vct != vct_of(spec.certificate_type):
        return out("wrong_type", verdict)
    if unreadable:
        return out("stale", verdict)
    if verdict.status is not VerdictStatus.VALID:
        digest = _digest(text, verdict, cache)
        return out(_STATUS_CODES.get(verdict.status, "invalid"), verdict, digest=digest)
    claims: Mapping[str, Any] = verdict.claims
    if spec.profile is not None:
        profile = PROFILES[spec.profile]
        if profile.missing(claims):
            return out("too_little", verdict)
        claims = profile.filter(claims)
    values = _values(spec, claims)
    if values is None:
        return out("too_little", verdict)
    return out("valid", verdict, values=values, digest=_digest(text, verdict, cache))


def fill(
    *,
    session: Session,
    case: AccidentCase,
    party: AccidentParty,
    kind: str,
    text: str,
    cache: verification.VerifierCache,
    now: datetime | None = None,
) -> Checked:
    """Verify a driver's credential and fill their fields from it (never commits).

    Refused credentials change no party data and are audited; a revoked or suspended one
    is flagged for review, and a driving licence so routes the case to the police."""
    service.ensure_editable(case)
    checked = check(text, kind=kind, cache=cache, now=now)
    who = service.party_principal(case, party)
    if not checked.ok:
        service.audit_action(
            session,
            who,
            "credential_refused",
            case,
            role=party.role,
            kind=kind,
            code=checked.code,
            verdict=checked.status,
        )
        if checked.code in ("revoked", "suspended"):
            _flag_status(session, case, who, party, checked)
        return checked
    before = {name: str(getattr(party, name)) for name in KINDS[kind].fields}
    sources = dict(party.field_sources or {})
    for name, value in checked.values.items():
        setattr(party, name, value)
        sources[name] = checked.source()
    party.field_sources = sources
    service.audit_action(
        session,
        who,
        "credential_fill",
        case,
        role=party.role,
        kind=kind,
        fields=sorted(checked.values),
        credential=checked.digest,
    )
    changed = any(before[n] != checked.values.get(n, before[n]) for n in before)
    if changed and service.data_complete(party):
        service.flag(session, case, who, service.repeats(session=session, case=case, party=party))
    return checked


def _flag_status(
    session: Session,
    case: AccidentCase,
    who: Any,
    party: AccidentParty,
    checked: Checked,
) -> None:
    code = f"{checked.kind}_{checked.code}"  # licence_revoked, registration_suspended, ...
    detail = (
        f"driver {party.role}: e-certificate {KINDS[checked.kind].certificate_type} "
        f"{checked.status} ({checked.reason}); credential {(checked.digest or '-')[:16]}"
    )
    service.flag(session, case, who, [{"code": code, "photo": "", "detail": detail}])
    if checked.kind == LICENCE and case.state in ("opened", "joined"):
        service.escalate(
            session=session,
            case=case,
            who=who,
            reason="not_eligible",
            detail=["licences_valid", f"driver {party.role}: driving licence {checked.status}"],
        )


def summary_entries(party: AccidentParty) -> dict[str, dict[str, Any]]:
    """The party's summary fields verified from credentials (for the signed summary)."""
    out: dict[str, dict[str, Any]] = {}
    for name in SUMMARY_FIELDS:
        entry = (party.field_sources or {}).get(name) or {}
        if entry.get("source") == "credential":
            out[name] = {
                "certificate_type": entry.get("certificate_type"),
                "credential_digest": entry.get("credential_digest"),
                "verdict": entry.get("verdict"),
                "verified_at": entry.get("verified_at"),
            }
    return out


def source_of(party: AccidentParty, name: str) -> str:
    """``"credential"`` or ``"typed"`` for one data field (``""`` when still empty)."""
    if not getattr(party, name, ""):
        return ""
    entry = (party.field_sources or {}).get(name) or {}
    return "credential" if entry.get("source") == "credential" else "typed"
