"""The e-certificate registry: issue, present, revoke / suspend / reinstate, publish.

Persistence, authorisation and audit around the cryptographic core
(:mod:`safecity.eservices.credentials`). Every function takes keyword-only arguments and a
SQLAlchemy ``session``; the caller commits (the API's request session, the CLI's
``sessions.begin()``), so a change, its status-list update, its action row and its audit
record commit together or not at all.

* :func:`issue_for_application` (called by the applications service when a case is
  issued): a batch of :data:`COPIES` SD-JWT VC copies, each bound to its own hosted-wallet
  key and its own *random* index of the open status list (≥ 131,072 entries); claims and
  copies sealed at rest. Idempotent per (application, certificate type).
* :func:`certificate_qr` / :func:`certificate_pdf` / :func:`present_certificate`: what the
  holder shows — an ``SC1:`` offline QR (≤ 400 characters, one purpose profile, expiring
  within 5 minutes), a PDF with that QR, or an SD-JWT presentation with key binding.
* :func:`revoke` / :func:`suspend` / :func:`reinstate` change every batch copy at once;
  :func:`reissue` (an attribute changed) = revoke (code ``superseded``) + issue a new
  generation. A revocation carries a published reason *code*
  (:data:`~.credentials.status_list.REASON_CODES`) and a private free-text reason; each
  change emits an outbox event (:mod:`safecity.eservices.events`: ids and codes only).
* Publication: :func:`status_list_token` (IETF Token Status List JWT, ``ttl`` 300 s),
  :func:`bitstring_credential` (W3C Bitstring Status List, plain or signed ``vc+jwt``),
  :func:`issuer_jwks`, :func:`trust_bundle` (signed offline bundle: every issuer key,
  rotated-out ones too, and a snapshot of every status list).

The issuer URL is the setting ``SAFECITY_ESERVICES_ISSUER`` (:func:`issuer_of`); new
status lists are published under ``{issuer}/status/{n}`` (existing lists keep their URI).
Keys live under the key directory (:mod:`safecity.eservices.registry_keys`).
Permissions: ``certificates:own`` (citizens: their own), ``certificates:read`` (staff, in
org scope), ``certificates:issue``, ``certificates:manage`` (revoke / suspend / reinstate).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from safecity.eservices import events
from safecity.eservices import registry_keys as rk
from safecity.eservices.catalogue import DERIVED_CLAIMS, CertificateSpec, default_catalogue
from safecity.eservices.certificate_pdf import CertificateView, claim_rows, render_certificate_pdf
from safecity.eservices.credentials import (
    IssuedCertificate,
    KeySet,
    StatusList,
    build_bundle,
    get_profile,
    issue_certificate,
    issue_profile_qr,
    present,
    vc_view,
)
from safecity.eservices.credentials.aliases import aliases_json
from safecity.eservices.credentials.jose import sign_jwt
from safecity.eservices.credentials.profiles import Profile, default_profile, derived_claims
from safecity.eservices.credentials.status_list import (
    MIN_SIZE,
    REASON_CODES,
    check_reason_code,
)
from safecity.eservices.registry_models import Certificate, CertificateAction, CertStatusList
from safecity.platform import outbox
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from safecity.platform.runtime import settings_for
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

#: The default issuer (``SAFECITY_ESERVICES_ISSUER`` overrides it: :func:`issuer_of`).
ISSUER = "https://safecity.example"
STATUS_BASE = f"{ISSUER}/status"
COPIES = 3
STATUS_TTL = timedelta(seconds=300)
#: The preferred default profile for a person's certificate (name + last 4 ID digits);
#: a certificate that cannot satisfy it gets the first profile it can
#: (:func:`~.credentials.profiles.default_profile`: a permit gets ``permit-check``).
DEFAULT_PROFILE = "hotel"
MAX_REASON = 500
VC_JWT_TYP = "vc+jwt"

OWN = "certificates:own"
READ = "certificates:read"
ISSUE = "certificates:issue"
MANAGE = "certificates:manage"

rbac.grant("citizen", OWN)
for _role in ("officer", "supervisor", "department_staff"):
    rbac.grant(_role, READ, ISSUE)
rbac.grant("supervisor", MANAGE)
rbac.grant("admin", OWN, READ, ISSUE, MANAGE)

State = Literal["active", "suspended", "revoked"]


class CertificateRead(BaseModel):
    """A certificate without its personal claims (safe to list)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    number: str
    item_code: str
    certificate_type: str
    title_zh: str
    title_en: str
    vct: str
    application_id: str
    generation: int
    replaces_id: str | None
    holder_user_id: str
    org_id: str | None
    status: State
    reason: str | None
    reason_code: str | None = None
    issued_at: datetime
    expires_at: datetime
    kid: str
    copies: int


class CertificateDetail(CertificateRead):
    """The holder's (or an authorised officer's) view: claims and the VC 2.0 view."""

    claims: dict[str, Any]
    vc: dict[str, Any]


# --------------------------------------------------------------------------- helpers


def key_dir_of(session: Session) -> Path:
    return settings_for(session).effective_key_dir


def issuer_of(session: Session) -> str:
    """The issuer URL (``SAFECITY_ESERVICES_ISSUER``) of ``session``'s runtime."""
    return settings_for(session).eservices_issuer.rstrip("/")


def _spec(item_code: str, certificate_type: str | None) -> CertificateSpec:
    item = default_catalogue().get(item_code)
    if certificate_type is not None:
        return item.certificate(certificate_type)
    if len(item.certificates) != 1:
        types = ", ".join(c.type for c in item.certificates)
        raise InvalidInput(f"item {item_code} outputs several certificates ({types}): name one")
    return item.certificates[0]


def _title(row: Certificate) -> tuple[str, str]:
    try:
        spec = _spec(row.item_code, row.certificate_type)
    except (NotFound, InvalidInput):
        return row.certificate_type, row.certificate_type
    return spec.title.zh, spec.title.en


def _read(row: Certificate) -> CertificateRead:
    zh, en = _title(row)
    return CertificateRead(
        id=row.id,
        number=row.number,
        item_code=row.item_code,
        certificate_type=row.certificate_type,
        title_zh=zh,
        title_en=en,
        vct=row.vct,
        application_id=row.application_id,
        generation=row.generation,
        replaces_id=row.replaces_id,
        holder_user_id=row.holder_user_id,
        org_id=row.org_id,
        status=row.state,
        reason=row.reason,
        reason_code=row.reason_code,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        kid=row.kid,
        copies=len(row.status_indices or []),
    )


def _need(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"permission {permission!r} is required")


def _load(
    session: Session, principal: Principal, certificate_id: str, *, staff: str = READ
) -> Certificate:
    """The certificate if ``principal`` holds it (``certificates:own``) or may see it as
    staff (``staff`` permission and org scope); else 404 (existence does not leak)."""
    row = session.get(Certificate, certificate_id) if certificate_id else None
    if row is None:
        raise NotFound("certificate not found")
    if principal.id == row.holder_user_id and principal.can(OWN):
        return row
    if principal.can(staff) and principal.sees_org(row.org_id):
        return row
    raise NotFound("certificate not found")


def _clean_reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise InvalidInput("a reason is required")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
    return text


def _after_commit_publish(session: Session) -> None:
    """Tell this process's verifier caches that a status list changed once it commits."""

    def stale(_: Session) -> None:
        from safecity.eservices import verification

        verification.mark_stale()

    event.listen(session, "after_commit", stale, once=True)


# --------------------------------------------------------------------------- status lists


def _lock_list(session: Session, *, uri: str | None = None) -> tuple[CertStatusList, StatusList]:
    """The open list (or the list ``uri``) locked for update, decoded."""
    query = select(CertStatusList).with_for_update()
    query = (
        query.where(CertStatusList.uri == uri)
        if uri is not None
        else query.where(CertStatusList.open.is_(True)).order_by(CertStatusList.id)
    )
    row = session.scalars(query.limit(1)).first()
    if row is None:
        if uri is not None:
            raise NotFound(f"status list {uri} not found")
        return _new_list(session)
    return row, StatusList.from_state(row.state)


def _new_list(session: Session) -> tuple[CertStatusList, StatusList]:
    next_id = (session.scalar(select(func.max(CertStatusList.id))) or 0) + 1
    sl = StatusList(f"{issuer_of(session)}/status/{next_id}", size=MIN_SIZE, bits=2)
    row = CertStatusList(
        id=next_id, uri=sl.uri, bits=sl.bits, size=sl.size, state=sl.to_state(), version=1
    )
    session.add(row)
    session.flush()
    return row, sl


def _save_list(session: Session, row: CertStatusList, sl: StatusList) -> None:
    row.state = sl.to_state()
    row.version = (row.version or 0) + 1
    row.updated_at = utcnow()
    session.flush()
    _after_commit_publish(session)


def _allocate(
    session: Session, certificate_id: str, copies: int
) -> tuple[CertStatusList, StatusList]:
    row, sl = _lock_list(session)
    if copies > sl.free - sl.size // 10:
        row.open = False
        row, sl = _new_list(session)
    return row, sl


# --------------------------------------------------------------------------- issuing


def _log(
    session: Session,
    principal: Principal,
    row: Certificate,
    action: str,
    *,
    reason: str | None,
    version: int,
    detail: dict[str, Any] | None = None,
    reason_code: str | None = None,
) -> None:
    session.add(
        CertificateAction(
            certificate_id=row.id,
            action=action,
            reason=reason,
            reason_code=reason_code,
            actor_id=principal.id,
            status_uri=row.status_uri,
            list_version=version,
        )
    )
    audit.record(
        session,
        principal=principal,
        action=f"eservices.certificate.{action}",
        target_type="certificate",
        target_id=row.id,
        detail={"item": row.item_code, "state": row.state, **(detail or {})},
    )


_EVENT_TYPES = {
    "revoke": events.CERT_REVOKED,
    "suspend": events.CERT_SUSPENDED,
    "reinstate": events.CERT_REINSTATED,
    "reissue": events.CERT_REISSUED,
}


def _emit(session: Session, row: Certificate, action: str, list_row: CertStatusList) -> None:
    """The outbox event of a status change (ids and codes only: no claims, no free text)."""
    payload: dict[str, Any] = {
        "certificate_id": row.id,
        "item_code": row.item_code,
        "certificate_type": row.certificate_type,
        "org_id": row.org_id,
        "generation": row.generation,
        "status_list": list_row.id,
        "list_version": list_row.version,
        "at": (row.updated_at or utcnow()).astimezone(UTC).isoformat(timespec="seconds"),
    }
    if action == "revoke":
        payload["reason_code"] = row.reason_code or "unspecified"
    if action == "reissue":
        payload["replaces_id"] = row.replaces_id
    outbox.emit(
        session,
        type=_EVENT_TYPES[action],
        source=events.SOURCE,
        org_id=row.org_id,
        payload=payload,
    )


def issue_for_application(
    *,
    session: Session,
    principal: Principal,
    application_id: str,
    item_code: str,
    holder_user_id: str,
    claims: Mapping[str, Any],
    org_id: str | None,
    now: datetime | None = None,
    certificate_type: str | None = None,
    copies: int = COPIES,
) -> CertificateRead:
    """Issue the item's certificate for an application (idempotent: an application's
    certificate of one type is issued once; a repeated call returns it)."""
    _need(principal, ISSUE)
    if org_id is not None:
        rbac.ensure_in_scope(principal, org_id, what="organisation")
    spec = _spec(item_code, certificate_type)
    existing = session.scalars(
        select(Certificate)
        .where(
            Certificate.application_id == application_id,
            Certificate.certificate_type == spec.type,
        )
        .order_by(Certificate.generation.desc())
        .limit(1)
    ).first()
    if existing is not None:
        return _read(existing)
    return _issue(
        session=session,
        principal=principal,
        spec=spec,
        item_code=item_code,
        application_id=application_id,
        holder_user_id=holder_user_id,
        claims=claims,
        org_id=org_id,
        now=now,
        copies=copies,
        generation=1,
        replaces_id=None,
    )


def _issue(
    *,
    session: Session,
    principal: Principal,
    spec: CertificateSpec,
    item_code: str,
    application_id: str,
    holder_user_id: str,
    claims: Mapping[str, Any],
    org_id: str | None,
    now: datetime | None,
    copies: int,
    generation: int,
    replaces_id: str | None,
) -> CertificateRead:
    now = (now or utcnow()).astimezone(UTC)
    values = dict(claims)
    number = str(values.get("certificate_number") or "") or _new_number(now)
    if "certificate_number" in spec.claims:
        values["certificate_number"] = number
    extra = sorted(set(values) - set(spec.claims) - DERIVED_CLAIMS)
    if extra:
        raise InvalidInput(f"certificate {spec.type} carries no {', '.join(extra)}")
    derived_claims(values, on=now.date())  # validates claim names and the birthdate first
    key_dir = key_dir_of(session)
    wallet = rk.wallet_keys(key_dir, holder_user_id, copies)
    issuer_key = rk.issuer_store(key_dir).active()
    cert_id = new_id()
    list_row, sl = _allocate(session, cert_id, copies)
    issued = issue_certificate(
        certificate_id=cert_id,
        key=issuer_key,
        issuer=issuer_of(session),
        vct=spec.vct,
        claims=values,
        status_list=sl,
        holder_keys=[k.public for k in wallet],
        now=now,
        valid_for=timedelta(days=spec.valid_days),
        copies=copies,
    )
    stored_copies = [
        {"sd_jwt": c, "holder_kid": wallet[i % len(wallet)].kid}
        for i, c in enumerate(issued.copies)
    ]
    row = Certificate(
        id=cert_id,
        number=number,
        item_code=item_code,
        certificate_type=spec.type,
        vct=spec.vct,
        application_id=application_id,
        generation=generation,
        replaces_id=replaces_id,
        holder_user_id=holder_user_id,
        org_id=org_id,
        claims_sealed=rk.seal(key_dir, dict(issued.claims), bound_to=cert_id),
        copies_sealed=rk.seal(key_dir, stored_copies, bound_to=cert_id),
        status_uri=sl.uri,
        status_indices=list(issued.indices),
        state="active",
        issued_at=now,
        expires_at=issued.expires_at,
        kid=issuer_key.kid,
        updated_at=now,
    )
    session.add(row)
    _save_list(session, list_row, sl)
    _log(
        session,
        principal,
        row,
        "issue" if replaces_id is None else "reissue",
        reason=None,
        version=list_row.version,
        detail={"application": application_id, "copies": copies, "kid": issuer_key.kid},
    )
    if replaces_id is not None:
        _emit(session, row, "reissue", list_row)
    return _read(row)


def _new_number(now: datetime) -> str:
    return f"SC{now:%Y%m}{secrets.randbelow(10**10):010d}"


# --------------------------------------------------------------------------- holder views


def _claims(session: Session, row: Certificate) -> dict[str, Any]:
    value = rk.unseal(key_dir_of(session), row.claims_sealed, bound_to=row.id)
    return dict(value) if isinstance(value, dict) else {}


def _usable(row: Certificate, now: datetime) -> None:
    if row.state != "active":
        raise Conflict(f"the certificate is {row.state}; it cannot be shown")
    if now >= row.expires_at:
        raise Conflict("the certificate has expired")


def get_certificate(
    *, session: Session, principal: Principal, certificate_id: str, purpose: str = "holder view"
) -> CertificateDetail:
    """One certificate with its claims (a personal-data read: audited)."""
    row = _load(session, principal, certificate_id)
    claims = _claims(session, row)
    audit.record(
        session,
        principal=principal,
        action="eservices.certificate.read",
        target_type="certificate",
        target_id=row.id,
        purpose=purpose,
    )
    vc = vc_view(
        issuer=issuer_of(session),
        vct=row.vct,
        claims=claims,
        valid_from=row.issued_at,
        valid_until=row.expires_at,
        status=(row.status_uri, row.status_indices[0]),
        credential_id=f"urn:safecity:certificate:{row.id}",
    )
    return CertificateDetail(**_read(row).model_dump(), claims=claims, vc=vc)


def my_certificates(*, session: Session, principal: Principal) -> list[CertificateRead]:
    """The caller's own certificates, newest first."""
    _need(principal, OWN)
    rows = session.scalars(
        select(Certificate)
        .where(Certificate.holder_user_id == principal.id)
        .order_by(Certificate.issued_at.desc(), Certificate.id)
    ).all()
    audit.record(
        session,
        principal=principal,
        action="eservices.certificate.list",
        target_type="certificate",
        purpose="holder view",
        detail={"count": len(rows)},
    )
    return [_read(r) for r in rows]


def list_certificates(
    *,
    session: Session,
    principal: Principal,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CertificateRead]:
    """Certificates issued by orgs in the caller's scope (staff), newest first."""
    _need(principal, READ)
    if state is not None and state not in ("active", "suspended", "revoked"):
        raise InvalidInput("state must be active, suspended or revoked")
    query = select(Certificate).where(rbac.scope_clause(principal, Certificate.org_id))
    if state is not None:
        query = query.where(Certificate.state == state)
    rows = session.scalars(
        query.order_by(Certificate.issued_at.desc(), Certificate.id)
        .limit(max(1, min(limit, 200)))
        .offset(max(0, offset))
    ).all()
    return [_read(r) for r in rows]


def certificate_qr(
    *,
    session: Session,
    principal: Principal,
    certificate_id: str,
    profile: str | None = None,
    now: datetime | None = None,
) -> str:
    """A fresh ``SC1:`` QR for one purpose profile (default: :func:`default_profile_for`),
    valid 5 minutes (less if the certificate expires sooner); audited."""
    row = _load(session, principal, certificate_id)
    now = (now or utcnow()).astimezone(UTC)
    _usable(row, now)
    claims = _claims(session, row)
    name = profile or default_profile_for(claims)
    prof = get_profile(name)
    missing = prof.missing(claims)
    if missing:
        raise InvalidInput(f"this certificate lacks {', '.join(missing)} for profile {name}")
    text = _fitting_qr(session, row, prof, claims, now)
    audit.record(
        session,
        principal=principal,
        action="eservices.certificate.qr",
        target_type="certificate",
        target_id=row.id,
        purpose="present",
        detail={"profile": name},
    )
    return text


def default_profile_for(claims: Mapping[str, Any]) -> str:
    """:data:`DEFAULT_PROFILE` when the claims satisfy it, else the first profile they
    do (a permit's: ``permit-check``)."""
    preferred = get_profile(DEFAULT_PROFILE)
    return preferred.name if preferred.satisfied_by(claims) else default_profile(claims).name


#: Optional claims dropped first when a profile's QR would pass 400 characters.
_DROP_ORDER = ("attributes", "address", "certificate_number", "birthdate", "age_over_18")


def _shrink(
    kept: dict[str, Any], prof: Profile, optional: list[str], type_order: tuple[str, ...]
) -> bool:
    """Leave out one more thing: the least important attribute (keeping the first), else
    the next optional claim of :data:`_DROP_ORDER`. False: nothing left to leave out."""
    attrs = kept.get("attributes")
    if isinstance(attrs, dict) and len(attrs) > 1:
        # the profile's own ranking, else the certificate type's (the catalogue lists
        # the defining attribute first: a no-criminal-record result, a licence class)
        order = list(prof.attributes or type_order)
        ranked = sorted(attrs, key=lambda a: order.index(a) if a in order else len(order))
        kept["attributes"] = {a: attrs[a] for a in ranked[:-1]}
        return True
    droppable = [c for c in optional if c in kept]
    if not droppable:
        return False
    kept.pop(droppable[0])
    return True


def _fitting_qr(
    session: Session, row: Certificate, prof: Profile, claims: dict[str, Any], now: datetime
) -> str:
    """The profile's QR; when it would pass :data:`~.cwt_qr.MAX_CHARS`, the profile's
    least important attributes and then optional (not required) claims, in
    :data:`_DROP_ORDER`, are left out until it fits."""
    key = rk.issuer_store(key_dir_of(session)).active()
    optional = [c for c in _DROP_ORDER if c in prof.claims and c not in prof.required]
    try:
        type_order = _spec(row.item_code, row.certificate_type).attributes
    except (NotFound, InvalidInput):
        type_order = ()
    kept = prof.filter(claims)
    while True:
        try:
            return issue_profile_qr(
                IssuedCertificate(
                    certificate_id=row.id,
                    copies=[],
                    status_uri=row.status_uri,
                    indices=list(row.status_indices),
                    claims=kept,
                    issued_at=row.issued_at,
                    expires_at=row.expires_at,
                ),
                key=key,
                issuer=issuer_of(session),
                vct=row.vct,
                profile=prof.name,
                now=now,
            )
        except PayloadTooLarge:
            if not _shrink(kept, prof, optional, type_order):
                raise


def certificate_pdf(
    *, session: Session, principal: Principal, certificate_id: str, now: datetime | None = None
) -> bytes:
    """The printable certificate with a fresh (5-minute) QR of the default profile."""
    qr = certificate_qr(
        session=session, principal=principal, certificate_id=certificate_id, now=now
    )
    row = _load(session, principal, certificate_id)
    claims = _claims(session, row)
    spec = _spec(row.item_code, row.certificate_type)
    name = f"{claims.get('family_name', '')}{claims.get('given_name', '')}".strip()
    attrs = claims.get("attributes") if isinstance(claims.get("attributes"), dict) else {}
    org = attrs.get("organiser") or attrs.get("business_name") if attrs else None
    view = CertificateView(
        title=spec.title,
        holder_name=name or (str(org) if org else "-"),
        certificate_number=row.number,
        issuer="SafeCity 一网通办",
        issued_on=row.issued_at.date(),
        valid_until=row.expires_at.date(),
        qr_text=qr,
        rows=claim_rows(claims, skip=("family_name", "given_name", "certificate_number")),
    )
    return render_certificate_pdf(view)


def present_certificate(
    *,
    session: Session,
    principal: Principal,
    certificate_id: str,
    profile: str,
    audience: str,
    nonce: str,
    now: datetime | None = None,
) -> str:
    """The hosted wallet's SD-JWT presentation of one batch copy (chosen at random),
    disclosing only ``profile``'s claims, key-bound to ``audience`` + ``nonce``."""
    row = _load(session, principal, certificate_id, staff="__holder_only__")
    now = (now or utcnow()).astimezone(UTC)
    _usable(row, now)
    prof = get_profile(profile)
    key_dir = key_dir_of(session)
    copies = rk.unseal(key_dir, row.copies_sealed, bound_to=row.id)
    chosen = copies[secrets.randbelow(len(copies))]
    holder = rk.wallet_key(key_dir, row.holder_user_id, chosen["holder_kid"])
    text = present(
        chosen["sd_jwt"], prof.claims, holder_key=holder, audience=audience, nonce=nonce, now=now
    )
    audit.record(
        session,
        principal=principal,
        action="eservices.certificate.present",
        target_type="certificate",
        target_id=row.id,
        purpose="present",
        detail={"profile": profile},
    )
    return text


# --------------------------------------------------------------------------- status changes


def _change(
    session: Session,
    principal: Principal,
    certificate_id: str,
    action: str,
    reason: str | None,
    code: str | None = None,
) -> Certificate:
    _need(principal, MANAGE)
    row = _load(session, principal, certificate_id, staff=MANAGE)
    if not principal.can(MANAGE) or not principal.sees_org(row.org_id):
        raise NotFound("certificate not found")
    list_row, sl = _lock_list(session, uri=row.status_uri)
    if action == "revoke":
        if row.state == "revoked":
            raise IllegalTransition("the certificate is already revoked")
        code = check_reason_code(code)
        sl.revoke(row.id, reason or "", code)
        row.state, row.reason, row.reason_code = "revoked", reason, code
    elif action == "suspend":
        if row.state != "active":
            raise IllegalTransition(f"the certificate is {row.state}; only an active one suspends")
        sl.suspend(row.id, reason or "")
        row.state, row.reason = "suspended", reason
    else:
        if row.state != "suspended":
            raise IllegalTransition(f"the certificate is {row.state}, not suspended")
        sl.reinstate(row.id)
        row.state, row.reason = "active", None
    row.updated_at = utcnow()
    _save_list(session, list_row, sl)
    _log(
        session,
        principal,
        row,
        action,
        reason=reason,
        version=list_row.version,
        reason_code=code if action == "revoke" else None,
        detail={"reason_code": code} if action == "revoke" else None,
    )
    _emit(session, row, action, list_row)
    return row


def revoke(
    *,
    session: Session,
    principal: Principal,
    certificate_id: str,
    reason: str,
    code: str | None = None,
) -> CertificateRead:
    """Revoke every batch copy (final). ``code`` (one of
    :data:`~.credentials.status_list.REASON_CODES`, default ``unspecified``) is published
    in the status lists; the free-text ``reason`` stays private."""
    code = check_reason_code(code)
    why = _clean_reason(reason)
    return _read(_change(session, principal, certificate_id, "revoke", why, code))


def suspend(
    *, session: Session, principal: Principal, certificate_id: str, reason: str
) -> CertificateRead:
    """Suspend every batch copy until :func:`reinstate`."""
    return _read(_change(session, principal, certificate_id, "suspend", _clean_reason(reason)))


def reinstate(
    *, session: Session, principal: Principal, certificate_id: str, reason: str | None = None
) -> CertificateRead:
    """Lift a suspension."""
    cleaned = _clean_reason(reason) if reason else None
    row = _change(session, principal, certificate_id, "reinstate", cleaned)
    return _read(row)


def reissue(
    *,
    session: Session,
    principal: Principal,
    certificate_id: str,
    changes: Mapping[str, Any],
    reason: str,
    now: datetime | None = None,
) -> CertificateRead:
    """An attribute changed: revoke every copy of the old certificate (code
    ``superseded``) and issue the next generation with the changed claims (same
    application, same holder)."""
    why = _clean_reason(reason)
    row = _load(session, principal, certificate_id, staff=MANAGE)
    _need(principal, ISSUE)
    claims = {
        k: v for k, v in _claims(session, row).items() if k not in ("id_last4", "age_over_18")
    }
    attrs = dict(claims.get("attributes") or {})
    for key, value in changes.items():
        if key in attrs:
            attrs[key] = value
        else:
            claims[key] = value
    if attrs:
        claims["attributes"] = attrs
    claims.pop("certificate_number", None)
    spec = _spec(row.item_code, row.certificate_type)
    if row.state != "revoked":
        _change(session, principal, row.id, "revoke", f"superseded: {why}", "superseded")
    return _issue(
        session=session,
        principal=principal,
        spec=spec,
        item_code=row.item_code,
        application_id=row.application_id,
        holder_user_id=row.holder_user_id,
        claims=claims,
        org_id=row.org_id,
        now=now,
        copies=len(row.status_indices) or COPIES,
        generation=row.generation + 1,
        replaces_id=row.id,
    )


# --------------------------------------------------------------------------- publication


def status_lists(session: Session) -> list[StatusList]:
    rows = session.scalars(select(CertStatusList).order_by(CertStatusList.id)).all()
    return [StatusList.from_state(r.state) for r in rows]


def _list_row(session: Session, list_id: int) -> CertStatusList:
    row = session.get(CertStatusList, list_id)
    if row is None:
        raise NotFound(f"status list {list_id} not found")
    return row


_token_cache: dict[tuple[str, int], tuple[int, datetime, str]] = {}


def status_list_token(session: Session, list_id: int, *, now: datetime | None = None) -> str:
    """The signed Token Status List JWT of list ``list_id`` (``ttl`` 300 s). A token is
    re-signed when the list changes or after a minute, so ``iat`` stays recent."""
    now = (now or utcnow()).astimezone(UTC)
    row = _list_row(session, list_id)
    key_dir = key_dir_of(session)
    cache_key = (str(key_dir), list_id)
    cached = _token_cache.get(cache_key)
    if (
        cached
        and cached[0] == row.version
        and timedelta(0) <= now - cached[1] < timedelta(minutes=1)
    ):
        return cached[2]
    sl = StatusList.from_state(row.state)
    token = sl.sign_token(
        rk.issuer_store(key_dir).active(), issuer=issuer_of(session), now=now, ttl=STATUS_TTL
    )
    _token_cache[cache_key] = (row.version, now, token)
    return token


def bitstring_credential(
    session: Session,
    list_id: int,
    purpose: str,
    *,
    signed: bool = False,
    now: datetime | None = None,
) -> dict[str, Any] | str:
    """The W3C Bitstring Status List credential of ``purpose`` (revocation / suspension);
    ``ttl`` 300 s. ``signed``: as a VC-JOSE-COSE ``vc+jwt`` (compact JWS)."""
    now = (now or utcnow()).astimezone(UTC)
    sl = StatusList.from_state(_list_row(session, list_id).state)
    doc = sl.bitstring_credential(purpose, issuer=issuer_of(session), now=now)
    doc["credentialSubject"]["ttl"] = int(STATUS_TTL.total_seconds() * 1000)
    doc["validUntil"] = (now + STATUS_TTL).isoformat(timespec="seconds").replace("+00:00", "Z")
    if not signed:
        return doc
    key = rk.issuer_store(key_dir_of(session)).active()
    return sign_jwt(doc, key, typ=VC_JWT_TYP, cty="vc")


def issuer_jwks(session: Session) -> dict[str, Any]:
    """Every issuer public key (active and rotated out) as a JWK Set."""
    store = rk.issuer_store(key_dir_of(session))
    store.active()  # a fresh installation publishes its first key
    return store.public_keys().jwks()


def issuer_metadata(session: Session) -> dict[str, Any]:
    """SD-JWT VC issuer metadata, with the QR's registered type aliases and the
    revocation reason codes (what an independent verifier needs to expand a compact QR)."""
    return {
        "issuer": issuer_of(session),
        "jwks": issuer_jwks(session),
        "vct_aliases": aliases_json(),
        "revocation_reason_codes": list(REASON_CODES),
    }


def trust_anchor_jwks(key_dir: Path) -> dict[str, Any]:
    """The bundle signer's public key: what offline verifier devices pin."""
    return KeySet([rk.bundle_signer(key_dir).public]).jwks()


_bundle_cache: dict[str, tuple[tuple[Any, ...], datetime, str]] = {}


def trust_bundle(session: Session, *, now: datetime | None = None) -> str:
    """The signed offline trust bundle: all issuer keys + a snapshot of every status list.

    Served publicly, so it is built once and reused while no list changed, the active key
    is the same and it is less than a minute old (as :func:`status_list_token` does)."""
    now = (now or utcnow()).astimezone(UTC)
    key_dir = key_dir_of(session)
    store = rk.issuer_store(key_dir)
    versions = session.execute(
        select(CertStatusList.id, CertStatusList.version).order_by(CertStatusList.id)
    ).all()
    stamp = (store.active().kid, tuple(tuple(v) for v in versions))
    cached = _bundle_cache.get(str(key_dir))
    if cached and cached[0] == stamp and timedelta(0) <= now - cached[1] < timedelta(minutes=1):
        return cached[2]
    token = build_bundle(
        signer=rk.bundle_signer(key_dir),
        issuer=issuer_of(session),
        keys=store.public_keys(),
        status_lists=status_lists(session),
        now=now,
    )
    _bundle_cache[str(key_dir)] = (stamp, now, token)
    return token


def rotate_issuer_key(key_dir: Path, *, alg: str | None = None) -> str:
    """Make a new issuer key active (old public keys stay); returns the new kid."""
    if alg not in (None, "ES256", "Ed25519"):
        raise InvalidInput("alg must be ES256 or Ed25519")
    key = rk.issuer_store(key_dir).rotate(alg=alg)  # type: ignore[arg-type]
    from safecity.eservices import verification

    verification.mark_stale()
    return key.kid
