"""Compact JWS helpers: sign a JSON payload (joserfc), read and verify by ``kid``.

Every signed JSON object in this package (SD-JWT issuer JWT, KB-JWT, Token Status List
JWT, offline trust bundle) goes through :func:`sign_jwt` and :func:`verify_jwt`, so the
algorithm allow-list and the header checks live in one place. Verification checks the
signature with the key's cached ``cryptography`` object directly on the already-parsed
parts (joserfc would parse the token a second time: ~30 % of a presentation check);
tests cross-check both directions with joserfc.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws

from safecity.eservices.credentials.keys import ALGS, KeySet, PublicKey, SigningKey


class JwsError(Exception):
    """A JWS could not be read or verified; ``code`` is a stable machine key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_TO_STD = bytes.maketrans(b"-_", b"+/")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}


def b64url_decode(text: str) -> bytes:
    """Strict, canonical base64url without padding (RFC 7515 §2); raises ``ValueError``.

    Canonical: a string whose unused trailing bits are not zero (another spelling of the
    same bytes) is refused, so a signed token has exactly one accepted form."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url")
    data = text.encode("ascii")
    if b"+" in data or b"/" in data or b"=" in data:
        raise ValueError("not base64url")
    rem = len(data) % 4
    if rem == 1:
        raise ValueError("not base64url (bad length)")
    try:
        raw = binascii.a2b_base64(data.translate(_TO_STD) + b"=" * (-rem % 4), strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
    if rem and _INDEX[data[-1]] & (0x0F if rem == 2 else 0x03):
        raise ValueError("not canonical base64url")
    return raw


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON (stable key order) for JWT payloads."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def sign_jwt(payload: Mapping[str, Any], key: SigningKey, *, typ: str, **header: Any) -> str:
    """A compact JWS of ``payload`` with ``alg``, ``kid`` and ``typ`` in the protected header."""
    protected = {"alg": key.alg, "kid": key.kid, "typ": typ, **header}
    return jws.serialize_compact(
        protected, json_bytes(dict(payload)), key.jose, algorithms=[key.alg]
    )


@dataclass(frozen=True)
class ParsedJws:
    header: dict[str, Any]
    payload: dict[str, Any]
    token: str
    signing_input: bytes
    signature: bytes


def parse_unverified(token: str) -> ParsedJws:
    """Header and payload of a compact JWS, without checking the signature."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise JwsError("malformed", "not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwsError("malformed", "JWS parts are not base64url JSON") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JwsError("malformed", "JWS header and payload must be JSON objects")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return ParsedJws(header, payload, token, signing_input, signature)


def verify_with(parsed: ParsedJws, key: PublicKey, *, typ: str | None) -> None:
    """Check the signature of ``parsed`` against ``key``; raise :class:`JwsError` if bad."""
    alg = parsed.header.get("alg")
    if alg not in ALGS or alg != key.alg:
        raise JwsError("bad-algorithm", f"JWS alg {alg!r} is not allowed for this key")
    if typ is not None and parsed.header.get("typ") != typ:
        raise JwsError("bad-type", f"JWS typ must be {typ!r}")
    if not key.verify(parsed.signing_input, parsed.signature):
        raise JwsError("bad-signature", "signature does not verify")


def verify_jwt(token: str, keys: KeySet, *, typ: str | None) -> tuple[ParsedJws, PublicKey]:
    """Parse ``token`` and verify it with the key its ``kid`` names in ``keys``."""
    parsed = parse_unverified(token)
    kid = parsed.header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise JwsError("unknown-key", f"issuer key {kid!r} is not trusted")
    verify_with(parsed, key, typ=typ)
    return parsed, key
