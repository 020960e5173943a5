"""Compact offline QR e-certificates: ``SC1:`` + base45(zlib(COSE_Sign1(CWT))).

The same layering as the EU Digital COVID Certificate ("HC1:"), with our own prefix. A
QR is minted on demand for one purpose profile (only that profile's claims) and lives at
most :data:`MAX_TTL` (5 minutes), so a photographed QR is useless soon after: that is its
replay defence. It carries the certificate's status-list entry, so an offline verifier
holding a trust bundle can still see a revocation.

CWT claims: 1 ``iss``, 4 ``exp``, 6 ``iat``, 65535 ``status`` and :data:`CLAIM_KEY` — a
map of the certificate's claims under short keys (:data:`SHORT`). The protected header
holds the algorithm and an 8-byte key id (:func:`short_kid`), since a 43-character JWK
thumbprint would eat a tenth of the QR.

Compact form (written since the aliases existed; :mod:`.aliases`): the certificate type
``t`` is a registered integer alias of the vct, the profile ``p`` a registered profile
number, the status ``[n, idx]`` stands for list ``{iss}/status/{n}`` and the names in
``attributes`` are registered integers. The long form —
``t`` the vct URI, ``p`` the profile name, status
``{"status_list": {"idx": n, "uri": u}}`` as in the IETF Token Status List draft,
attribute names as text — is
still written when no alias applies, and always accepted. ``vu`` (``valid_until``) is the
certificate's own expiry (epoch seconds; the CWT ``exp`` is the QR's 5-minute life),
shown as an ISO date-time.

pycose builds and signs the COSE_Sign1; verification recomputes the ``Sig_structure`` with
cbor2 and checks it with a cached ``cryptography`` key (pycose re-imports an EC key on
every call, ~2 ms for ES256). A test checks pycose accepts what we sign.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import base45  # type: ignore[import-untyped]
import cbor2
import segno
from pycose.algorithms import EdDSA, Es256
from pycose.headers import KID, Algorithm
from pycose.keys.curves import P256, Ed25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message

from safecity.eservices.credentials.aliases import (
    ATTRIBUTE_IDS,
    ATTRIBUTE_NUMBERS,
    PROFILE_IDS,
    PROFILE_NUMBERS,
    VCT_ALIASES,
    vct_numbers,
)
from safecity.eservices.credentials.jose import b64url_decode
from safecity.eservices.credentials.keys import COSE_ALG, KeySet, PublicKey, SigningKey
from safecity.platform.errors import InvalidInput, PayloadTooLarge

PREFIX = "SC1:"
MAX_CHARS = 400
MAX_TTL = timedelta(minutes=5)
CLAIM_KEY = -70001
STATUS_KEY = 65535
SHORT = {
    "vct": "t",
    "profile": "p",
    "family_name": "fn",
    "given_name": "gn",
    "birthdate": "bd",
    "id_number": "id",
    "id_last4": "l4",
    "age_over_18": "18",
    "address": "ad",
    "certificate_number": "cn",
    "attributes": "at",
    "valid_until": "vu",
}
LONG = {v: k for k, v in SHORT.items()}
_MAX_INFLATED = 8192


class QrError(Exception):
    """A QR string was rejected; ``code`` is a stable machine key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def short_kid(kid: str) -> bytes:
    """The first 8 bytes of the SHA-256 JWK thumbprint named by ``kid``."""
    return b64url_decode(kid)[:8]


def _cose_key(key: SigningKey) -> OKPKey | EC2Key:
    jwk = key.private_jwk()
    d, x = b64url_decode(jwk["d"]), b64url_decode(jwk["x"])
    if key.alg == "Ed25519":
        return OKPKey(crv=Ed25519, x=x, d=d)
    return EC2Key(crv=P256, x=x, y=b64url_decode(jwk["y"]), d=d)


def issue_qr(
    *,
    key: SigningKey,
    issuer: str,
    vct: str,
    profile: str,
    claims: Mapping[str, Any],
    now: datetime,
    ttl: timedelta = MAX_TTL,
    status: tuple[str, int] | None = None,
    compact: bool = True,
    vct_aliases: Mapping[int, str] | None = None,
) -> str:
    """A signed ``SC1:`` QR string; refuses a ttl over 5 minutes or more than 400 chars.

    ``compact`` (default) writes registered aliases where they apply (module doc);
    ``valid_until`` in ``claims`` is a datetime (the certificate's expiry)."""
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise InvalidInput(f"a QR certificate lives at most {int(MAX_TTL.total_seconds())} s")
    unknown = sorted(set(claims) - set(SHORT))
    if unknown:
        raise InvalidInput(f"claims not allowed in a QR: {', '.join(unknown)}")
    body = {SHORT[k]: v for k, v in claims.items()}
    until = body.get("vu")
    if isinstance(until, datetime):
        body["vu"] = int(until.timestamp())
    attrs = body.get("at")
    if compact and isinstance(attrs, Mapping):
        body["at"] = {ATTRIBUTE_NUMBERS.get(str(k), k): v for k, v in attrs.items()}
    vct_ref: str | int = vct_numbers(vct_aliases).get(vct, vct) if compact else vct
    profile_ref: str | int = PROFILE_NUMBERS.get(profile, profile) if compact else profile
    body.update({SHORT["vct"]: vct_ref, SHORT["profile"]: profile_ref})
    cwt: dict[int, Any] = {
        1: issuer,
        6: int(now.timestamp()),
        4: int((now + ttl).timestamp()),
        CLAIM_KEY: body,
    }
    if status is not None:
        cwt[STATUS_KEY] = _status_claim(issuer, status[0], int(status[1]), compact)
    alg = EdDSA if key.alg == "Ed25519" else Es256
    msg = Sign1Message(phdr={Algorithm: alg, KID: short_kid(key.kid)}, payload=cbor2.dumps(cwt))
    msg.key = _cose_key(key)
    encoded: bytes = base45.b45encode(zlib.compress(msg.encode(), 9))
    text = PREFIX + encoded.decode("ascii")
    if len(text) > MAX_CHARS:
        raise PayloadTooLarge(
            f"QR certificate would be {len(text)} characters (limit {MAX_CHARS}); "
            "use a narrower profile"
        )
    return text


def _status_claim(issuer: str, uri: str, idx: int, compact: bool) -> Any:
    prefix = f"{issuer}/status/"
    if compact and uri.startswith(prefix):
        tail = uri[len(prefix) :]
        if tail.isdigit() and str(int(tail)) == tail:
            return [int(tail), idx]
    return {"status_list": {"idx": idx, "uri": uri}}


def _read_status(value: Any, issuer: Any) -> tuple[str, int]:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        if not isinstance(issuer, str):
            raise QrError("malformed", "a compact status reference needs the issuer")
        return f"{issuer}/status/{value[0]}", value[1]
    sl = value.get("status_list") if isinstance(value, dict) else None
    if (
        not isinstance(sl, dict)
        or not isinstance(sl.get("idx"), int)
        or not isinstance(sl.get("uri"), str)
    ):
        raise QrError("malformed", "QR status claim is malformed")
    return sl["uri"], sl["idx"]


@dataclass(frozen=True)
class VerifiedQr:
    """A QR whose signature verified: issuer key, CWT claims, certificate claims."""

    key: PublicKey
    issuer: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    vct: str | None
    profile: str | None
    claims: dict[str, Any]
    status: tuple[str, int] | None


def _decode(text: str) -> tuple[bytes, dict[Any, Any], bytes, bytes]:
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise QrError("bad-prefix", f"not a SafeCity QR certificate (no {PREFIX!r} prefix)")
    if len(text) > MAX_CHARS * 2:
        raise QrError("malformed", "QR string is far too long")
    try:
        compressed = base45.b45decode(text[len(PREFIX) :])
    except (ValueError, KeyError) as exc:
        raise QrError("malformed", "QR payload is not valid base45") from exc
    try:
        d = zlib.decompressobj()
        raw = d.decompress(compressed, _MAX_INFLATED)
        if not d.eof or d.unconsumed_tail:
            raise QrError("malformed", "QR payload is truncated or too large")
        obj = cbor2.loads(raw)
    except (zlib.error, cbor2.CBORDecodeError, ValueError) as exc:
        raise QrError("malformed", "QR payload is not compressed CBOR") from exc
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != 18:
            raise QrError("malformed", f"CBOR tag {obj.tag} is not COSE_Sign1 (18)")
        obj = obj.value
    if (
        not isinstance(obj, list)
        or len(obj) != 4
        or not isinstance(obj[0], bytes)
        or not isinstance(obj[2], bytes)
        or not isinstance(obj[3], bytes)
    ):
        raise QrError("malformed", "not a COSE_Sign1 structure")
    try:
        protected = cbor2.loads(obj[0]) if obj[0] else {}
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise QrError("malformed", "COSE protected header is not CBOR") from exc
    if not isinstance(protected, dict):
        raise QrError("malformed", "COSE protected header is not a map")
    return obj[0], protected, obj[3], obj[2]


def _key_for(keys: KeySet, kid: Any, alg: Any) -> PublicKey:
    if not isinstance(kid, bytes) or len(kid) != 8:
        raise QrError("unknown-key", "QR names no 8-byte issuer key id")
    for key in keys:
        if short_kid(key.kid) == kid:
            if COSE_ALG[key.alg] != alg:
                raise QrError("bad-algorithm", "QR algorithm does not match the issuer key")
            return key
    raise QrError("unknown-key", f"issuer key {kid.hex()} is not trusted")


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


def verify_qr(
    text: str, keys: KeySet, *, vct_aliases: Mapping[int, str] | None = None
) -> VerifiedQr:
    """Decode an ``SC1:`` string and verify its signature (expiry/status: see verify.py).

    ``vct_aliases``: the issuer's published alias table (a trust bundle's); the built-in
    registered table fills what it lacks. An alias neither knows is rejected
    (``unknown-type``): a verifier must know what kind of certificate it is looking at."""
    protected_bytes, protected, signature, payload = _decode(text)
    key = _key_for(keys, protected.get(4), protected.get(1))
    sig_structure = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    if not key.verify(sig_structure, signature):
        raise QrError("bad-signature", "QR signature does not verify")
    try:
        cwt = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise QrError("malformed", "QR CWT claims are not CBOR") from exc
    if not isinstance(cwt, dict) or not isinstance(cwt.get(CLAIM_KEY), dict):
        raise QrError("malformed", "QR CWT has no certificate claims")
    body = cwt[CLAIM_KEY]
    issuer = cwt.get(1)
    st = cwt.get(STATUS_KEY)
    status = _read_status(st, issuer) if st is not None else None
    claims = {LONG[k]: v for k, v in body.items() if k in LONG and k not in ("t", "p")}
    attrs = claims.get("attributes")
    if isinstance(attrs, dict):
        claims["attributes"] = {
            ATTRIBUTE_IDS.get(k, f"#{k}") if isinstance(k, int) else k: v for k, v in attrs.items()
        }
    until = claims.get("valid_until")
    if until is not None:
        if not isinstance(until, int) or isinstance(until, bool):
            raise QrError("malformed", "QR valid_until is not a time")
        claims["valid_until"] = (
            datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    vct = body.get("t")
    if isinstance(vct, int) and not isinstance(vct, bool):
        table = {**VCT_ALIASES, **(vct_aliases or {})}
        if vct not in table:
            raise QrError("unknown-type", f"certificate type alias {vct} is not registered")
        vct = table[vct]
    prof = body.get("p")
    if isinstance(prof, int) and not isinstance(prof, bool):
        prof = PROFILE_IDS.get(prof, f"#{prof}")
    return VerifiedQr(
        key=key,
        issuer=issuer if isinstance(issuer, str) else None,
        issued_at=_when(cwt.get(6)),
        expires_at=_when(cwt.get(4)),
        vct=vct if isinstance(vct, str) else None,
        profile=prof if isinstance(prof, str) else None,
        claims=claims,
        status=status,
    )


def qr_png(text: str, *, scale: int = 4) -> bytes:
    """A PNG image of the QR string (error correction M, alphanumeric mode)."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def qr_svg(text: str, *, scale: int = 4) -> bytes:
    """An SVG image of the QR string."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="svg", scale=scale, border=4)
    return buf.getvalue()
