"""Offline trust bundles: issuer public keys + status-list snapshots in one signed JWT.

A verifier device (a hotel's tablet, a police handset) downloads the bundle while online
and then verifies SD-JWT presentations and QR certificates without ever contacting the
issuer. The bundle is a compact JWS (``typ`` safecity-trust-bundle+jwt) signed by a
*bundle signer* key the device is provisioned with (its trust anchor; keep it separate
from the issuer keys so issuer rotation needs no device update)::

    {"iss": ..., "iat": ..., "keys": {"keys": [JWK, ...]},
     "vct_aliases": {"1": "<vct URI>", ...}, "reason_codes": ["unspecified", ...],
     "status_lists": [{"uri": ..., "bits": 2, "lst": "<zlib+base64url>",
                       "rsn": "<zlib+base64url>", "iat": ...}, ...]}

Each status list's ``iat`` is its snapshot time; a verdict relying on it becomes
STATUS-STALE 24 hours later (:mod:`safecity.eservices.credentials.verify`). ``rsn`` (only
when the list has revoked entries) holds the revocation reason codes
(:mod:`.status_list`), so an offline verdict reads "REVOKED (superseded)"; the free-text
reasons never leave the issuer. ``vct_aliases`` expands the compact QR's type alias
(:mod:`.aliases`); a bundle without it (older issuer) falls back to the built-in table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from safecity.eservices.credentials.aliases import aliases_from_json, aliases_json
from safecity.eservices.credentials.jose import JwsError, sign_jwt, verify_jwt
from safecity.eservices.credentials.keys import KeySet, SigningKey
from safecity.eservices.credentials.status_list import (
    REASON_CODES,
    StatusList,
    StatusListError,
    StatusSnapshot,
    snapshot_from_payload,
)
from safecity.platform.errors import InvalidInput

BUNDLE_TYP = "safecity-trust-bundle+jwt"


def build_bundle(
    *,
    signer: SigningKey,
    issuer: str,
    keys: KeySet,
    status_lists: Sequence[StatusList],
    now: datetime,
    vct_aliases: Mapping[int, str] | None = None,
) -> str:
    """Sign a bundle of ``keys`` and a snapshot (taken ``now``) of each status list."""
    iat = int(now.timestamp())
    payload = {
        "iss": issuer,
        "iat": iat,
        "keys": keys.jwks(),
        "vct_aliases": aliases_json(vct_aliases),
        "reason_codes": list(REASON_CODES),
        "status_lists": [
            {"uri": sl.uri, **sl.status_list_claim(), "iat": iat} for sl in status_lists
        ],
    }
    return sign_jwt(payload, signer, typ=BUNDLE_TYP)


@dataclass(frozen=True)
class TrustBundle:
    """A verified bundle: the issuer keys to trust and the status snapshots by list URI."""

    issuer: str | None
    issued_at: datetime
    keys: KeySet
    snapshots: dict[str, StatusSnapshot]
    undecodable: frozenset[str] = frozenset()
    vct_aliases: Mapping[int, str] = field(default_factory=dict)


def load_bundle(token: str, anchors: KeySet) -> TrustBundle:
    """Verify ``token`` against the device's trust ``anchors`` and decode it.

    A bad signature or an undecodable key raises :class:`InvalidInput`; an undecodable
    status list is kept out of ``snapshots`` and named in ``undecodable``, so credentials
    on it fail closed (INVALID) rather than pass.
    """
    try:
        parsed, _ = verify_jwt(token, anchors, typ=BUNDLE_TYP)
    except JwsError as exc:
        raise InvalidInput(f"trust bundle rejected: {exc.message}") from exc
    payload = parsed.payload
    iat, jwks, lists = payload.get("iat"), payload.get("keys"), payload.get("status_lists")
    if not isinstance(iat, int) or not isinstance(jwks, dict) or not isinstance(lists, list):
        raise InvalidInput("trust bundle lacks iat, keys or status_lists")
    keys = KeySet.from_jwks(jwks)
    snapshots: dict[str, StatusSnapshot] = {}
    undecodable: set[str] = set()
    for entry in lists:
        if not isinstance(entry, dict):
            continue
        try:
            snap = snapshot_from_payload(_as_token_payload(entry, payload.get("iss")))
        except StatusListError:
            # fail closed: a credential on this list gets INVALID (status undecodable)
            undecodable.add(str(entry.get("uri")))
            continue
        snapshots[snap.uri] = snap
    issuer = payload.get("iss")
    return TrustBundle(
        issuer=issuer if isinstance(issuer, str) else None,
        issued_at=datetime.fromtimestamp(iat, UTC),
        keys=keys,
        snapshots=snapshots,
        undecodable=frozenset(undecodable),
        vct_aliases=aliases_from_json(payload.get("vct_aliases")),
    )


def _as_token_payload(entry: dict[str, Any], iss: Any) -> dict[str, Any]:
    return {
        "iss": iss,
        "sub": entry.get("uri"),
        "iat": entry.get("iat"),
        "status_list": {
            "bits": entry.get("bits"),
            "lst": entry.get("lst"),
            "rsn": entry.get("rsn"),
        },
    }
