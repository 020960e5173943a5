"""Issuing an e-certificate: a batch of SD-JWT VC copies, its VC 2.0 view, a QR on demand.

A certificate is issued as ``copies`` SD-JWTs, each with fresh salts, its own random
status-list index and (when the wallet supplies several) its own holder key, so two
verifiers comparing notes cannot link the copies; revoking the certificate revokes every
copy at once (:meth:`StatusList.revoke`). The lead's service layer persists the
:class:`StatusList` state and an issuance record; this module touches no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from safecity.eservices.credentials import cwt_qr, sdjwt
from safecity.eservices.credentials.keys import PublicKey, SigningKey
from safecity.eservices.credentials.profiles import derived_claims, get_profile
from safecity.eservices.credentials.status_list import W3C_CONTEXT, StatusList
from safecity.platform.errors import InvalidInput

MAX_COPIES = 20


@dataclass(frozen=True)
class IssuedCertificate:
    """What issuance produced: the copies (issuance form, for the holder), status indices."""

    certificate_id: str
    copies: list[str]
    status_uri: str
    indices: list[int]
    claims: Mapping[str, Any]
    issued_at: datetime
    expires_at: datetime


def issue_certificate(
    *,
    certificate_id: str,
    key: SigningKey,
    issuer: str,
    vct: str,
    claims: Mapping[str, Any],
    status_list: StatusList,
    holder_keys: Sequence[PublicKey],
    now: datetime,
    valid_for: timedelta,
    copies: int | None = None,
) -> IssuedCertificate:
    """Issue ``copies`` (default: one per holder key) SD-JWT VCs of one certificate.

    Holder keys are used round-robin when fewer than ``copies``. The derived claims
    ``id_last4`` and ``age_over_18`` are added so purpose profiles can use them.
    """
    n = copies if copies is not None else len(holder_keys)
    if not holder_keys:
        raise InvalidInput("at least one holder key is needed (key binding)")
    if not 1 <= n <= MAX_COPIES:
        raise InvalidInput(f"copies must be between 1 and {MAX_COPIES}")
    full = derived_claims(claims, on=now.astimezone(UTC).date())
    expires = now + valid_for
    indices = status_list.allocate(certificate_id, n)
    issued = [
        sdjwt.issue_sd_jwt(
            key=key,
            issuer=issuer,
            vct=vct,
            claims=full,
            issued_at=now,
            expires_at=expires,
            holder=holder_keys[i % len(holder_keys)],
            status=(status_list.uri, idx),
        ).serialized
        for i, idx in enumerate(indices)
    ]
    return IssuedCertificate(
        certificate_id=certificate_id,
        copies=issued,
        status_uri=status_list.uri,
        indices=indices,
        claims=full,
        issued_at=now,
        expires_at=expires,
    )


def issue_profile_qr(
    certificate: IssuedCertificate,
    *,
    key: SigningKey,
    issuer: str,
    vct: str,
    profile: str,
    now: datetime,
    ttl: timedelta = cwt_qr.MAX_TTL,
) -> str:
    """A fresh ``SC1:`` QR carrying only ``profile``'s claims, valid ``ttl`` (≤ 5 min);
    a profile listing ``valid_until`` also gets the certificate's expiry."""
    prof = get_profile(profile)
    if now >= certificate.expires_at:
        raise InvalidInput("the certificate has expired")
    claims = prof.filter(certificate.claims)
    if "valid_until" in prof.claims:
        claims["valid_until"] = certificate.expires_at
    return cwt_qr.issue_qr(
        key=key,
        issuer=issuer,
        vct=vct,
        profile=profile,
        claims=claims,
        now=now,
        ttl=min(ttl, certificate.expires_at - now),
        status=(certificate.status_uri, certificate.indices[0]),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def vc_view(
    *,
    issuer: str,
    vct: str,
    claims: Mapping[str, Any],
    valid_from: datetime,
    valid_until: datetime,
    status: tuple[str, int] | None = None,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """A W3C VC 2.0 (JSON-LD shaped) view of the same claims, for display and export.

    ``credentialStatus`` names the same index in the revocation and the suspension
    Bitstring Status List credentials (:meth:`StatusList.bitstring_credential`).
    """
    doc: dict[str, Any] = {
        "@context": [W3C_CONTEXT],
        "type": ["VerifiableCredential", "SafeCityCertificate"],
        "issuer": issuer,
        "validFrom": _iso(valid_from),
        "validUntil": _iso(valid_until),
        "credentialSchema": {"id": vct, "type": "SdJwtVcType"},
        "credentialSubject": dict(claims),
    }
    if credential_id is not None:
        doc["id"] = credential_id
    if status is not None:
        uri, idx = status
        doc["credentialStatus"] = [
            {
                "id": f"{uri}/{purpose}#{idx}",
                "type": "BitstringStatusListEntry",
                "statusPurpose": purpose,
                "statusListIndex": str(idx),
                "statusListCredential": f"{uri}/{purpose}",
            }
            for purpose in ("revocation", "suspension")
        ]
    return doc
