"""SD-JWT (RFC 9901) with key binding, shaped as an SD-JWT VC (``typ`` dc+sd-jwt).

A thin, complete implementation of what SafeCity needs — joserfc signs and verifies the
JWS parts; this module does the rest:

- issuance: each personal claim becomes a Disclosure ``[salt, name, value]`` whose
  SHA-256 digest goes into ``_sd`` (sorted, with decoy digests so the number of claims is
  hidden); ``iss``, ``vct``, ``iat``, ``exp``, ``cnf`` (holder key) and ``status`` stay
  visible;
- presentation (the holder): keep only the chosen Disclosures and append a KB-JWT
  (``typ`` kb+jwt) over ``nonce``, ``aud``, ``iat`` and ``sd_hash`` (digest of the
  presentation), signed by the holder key named in ``cnf``;
- verification: issuer signature, every Disclosure well-formed, referenced exactly once
  and never clashing with a visible claim (RFC 9901 §7.1), then the KB-JWT: signature by
  the ``cnf`` key, ``typ``, nonce, audience, age and ``sd_hash``.

Errors are :class:`SdJwtError` with a stable ``code`` (for verdicts and translations).
Expiry and status are judged by :mod:`safecity.eservices.credentials.verify`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from safecity.eservices.credentials.jose import (
    JwsError,
    b64url_decode,
    b64url_encode,
    parse_unverified,
    sign_jwt,
    verify_jwt,
    verify_with,
)
from safecity.eservices.credentials.keys import KeySet, PublicKey, SigningKey
from safecity.platform.errors import InvalidInput

SD_JWT_TYP = "dc+sd-jwt"
KB_JWT_TYP = "kb+jwt"
SD_ALG = "sha-256"
MAX_KB_AGE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=60)
_RESERVED = frozenset({"_sd", "...", "_sd_alg", "iss", "iat", "exp", "nbf", "cnf", "status", "vct"})


class SdJwtError(Exception):
    """An SD-JWT presentation was rejected; ``code`` is a stable machine key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def make_disclosure(salt: str, name: str | None, value: Any) -> str:
    """A Disclosure: base64url of the JSON array ``[salt, name, value]`` (``[salt, value]``
    for an array element), serialised as RFC 9901's examples are."""
    content = [salt, value] if name is None else [salt, name, value]
    return b64url_encode(json.dumps(content, ensure_ascii=False).encode("utf-8"))


def disclosure_digest(disclosure: str) -> str:
    """base64url(SHA-256(ASCII of the Disclosure as sent)) — RFC 9901 §4.2.3."""
    return b64url_encode(hashlib.sha256(disclosure.encode("ascii")).digest())


def _salt() -> str:
    return b64url_encode(secrets.token_bytes(16))


@dataclass(frozen=True)
class IssuedSdJwt:
    """An issued SD-JWT: the issuer JWT and a Disclosure per claim name."""

    jwt: str
    disclosures: Mapping[str, str]
    payload: Mapping[str, Any] = field(repr=False)

    @property
    def serialized(self) -> str:
        """The issuance form ``<JWT>~<D1>~...~<Dn>~`` handed to the holder."""
        return "~".join([self.jwt, *self.disclosures.values(), ""])


def issue_sd_jwt(
    *,
    key: SigningKey,
    issuer: str,
    vct: str,
    claims: Mapping[str, Any],
    issued_at: datetime,
    expires_at: datetime,
    holder: PublicKey | None = None,
    status: tuple[str, int] | None = None,
    visible: Mapping[str, Any] | None = None,
    decoys: int = 3,
) -> IssuedSdJwt:
    """Issue an SD-JWT VC: every entry of ``claims`` selectively disclosable, ``visible``
    always shown; ``holder`` becomes ``cnf.jwk``; ``status`` = (list uri, index)."""
    bad = sorted(set(claims) & _RESERVED) + sorted(set(visible or {}) & {"_sd", "...", "_sd_alg"})
    if bad:
        raise InvalidInput(f"claim names reserved by SD-JWT: {', '.join(bad)}")
    both = sorted(set(claims) & set(visible or {}))
    if both:
        raise InvalidInput(f"claims both visible and disclosable: {', '.join(both)}")
    if expires_at <= issued_at:
        raise InvalidInput("expires_at must be after issued_at")
    disclosures = {name: make_disclosure(_salt(), name, value) for name, value in claims.items()}
    digests = [disclosure_digest(d) for d in disclosures.values()]
    digests += [disclosure_digest(_salt()) for _ in range(max(0, decoys))]
    payload: dict[str, Any] = dict(visible or {})
    payload.update(
        {
            "iss": issuer,
            "vct": vct,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "_sd": sorted(digests),
            "_sd_alg": SD_ALG,
        }
    )
    if holder is not None:
        payload["cnf"] = {"jwk": {k: v for k, v in holder.jwk.items() if k not in ("use",)}}
    if status is not None:
        payload["status"] = {"status_list": {"uri": status[0], "idx": int(status[1])}}
    jwt = sign_jwt(payload, key, typ=SD_JWT_TYP)
    return IssuedSdJwt(jwt=jwt, disclosures=disclosures, payload=payload)


@dataclass(frozen=True)
class SdJwtParts:
    jwt: str
    disclosures: list[str]
    kb_jwt: str | None

    @property
    def without_kb(self) -> str:
        """``<JWT>~<D1>~...~`` — the string ``sd_hash`` covers."""
        return "~".join([self.jwt, *self.disclosures, ""])


def split(presentation: str) -> SdJwtParts:
    """Split ``<JWT>~<D>~...~[<KB-JWT>]``; refuses other shapes."""
    if not isinstance(presentation, str) or "~" not in presentation:
        raise SdJwtError("malformed", "not an SD-JWT (no '~' separator)")
    if not presentation.isascii():
        raise SdJwtError("malformed", "an SD-JWT is ASCII (base64url parts and '~')")
    parts = presentation.split("~")
    jwt, disclosures, last = parts[0], parts[1:-1], parts[-1]
    if not jwt or any(not d for d in disclosures):
        raise SdJwtError("malformed", "SD-JWT has an empty part")
    return SdJwtParts(jwt=jwt, disclosures=disclosures, kb_jwt=last or None)


def present(
    issued: str,
    disclose: Iterable[str],
    *,
    holder_key: SigningKey | None,
    audience: str | None = None,
    nonce: str | None = None,
    now: datetime | None = None,
) -> str:
    """The holder's presentation: only Disclosures whose claim name is in ``disclose``,
    plus a KB-JWT when ``holder_key`` is given (then ``audience``, ``nonce``, ``now`` too)."""
    parts = split(issued)
    wanted = set(disclose)
    kept = []
    for d in parts.disclosures:
        decoded = _decode_disclosure(d)
        if len(decoded) == 3 and decoded[1] in wanted:
            kept.append(d)
    base = SdJwtParts(jwt=parts.jwt, disclosures=kept, kb_jwt=None).without_kb
    if holder_key is None:
        return base
    if audience is None or nonce is None or now is None:
        raise InvalidInput("a key-bound presentation needs audience, nonce and now")
    kb_payload = {
        "iat": int(now.timestamp()),
        "aud": audience,
        "nonce": nonce,
        "sd_hash": b64url_encode(hashlib.sha256(base.encode("ascii")).digest()),
    }
    return base + sign_jwt(kb_payload, holder_key, typ=KB_JWT_TYP)


@dataclass(frozen=True)
class VerifiedSdJwt:
    """A verified presentation: the signed payload, the disclosed claims, the keys used."""

    payload: Mapping[str, Any]
    claims: dict[str, Any]
    issuer_key: PublicKey
    kb_payload: Mapping[str, Any] | None


def _decode_disclosure(disclosure: str) -> list[Any]:
    try:
        decoded = json.loads(b64url_decode(disclosure))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SdJwtError("tampered-disclosure", "a Disclosure is not base64url JSON") from exc
    if (
        not isinstance(decoded, list)
        or len(decoded) not in (2, 3)
        or not isinstance(decoded[0], str)
        or (len(decoded) == 3 and (not isinstance(decoded[1], str) or decoded[1] in ("_sd", "...")))
    ):
        raise SdJwtError("tampered-disclosure", "a Disclosure is not [salt, (name,) value]")
    return decoded


class _Unpacker:
    """RFC 9901 §7.1 steps 3-5: replace digests by disclosed values, each used once."""

    def __init__(self, disclosures: list[str]) -> None:
        self.by_digest: dict[str, list[Any]] = {}
        for d in disclosures:
            digest = disclosure_digest(d)
            if digest in self.by_digest:
                raise SdJwtError("tampered-disclosure", "the same Disclosure appears twice")
            self.by_digest[digest] = _decode_disclosure(d)
        self.seen: set[str] = set()
        self.used: set[str] = set()

    def _claim(self, digest: Any) -> list[Any] | None:
        if not isinstance(digest, str):
            raise SdJwtError("malformed", "a digest is not a string")
        if digest in self.seen:
            raise SdJwtError("malformed", "a digest appears more than once in the SD-JWT")
        self.seen.add(digest)
        found = self.by_digest.get(digest)
        if found is not None:
            self.used.add(digest)
        return found

    def unpack(self, node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: self.unpack(v) for k, v in node.items() if k not in ("_sd", "_sd_alg")}
            sd = node.get("_sd", [])
            if not isinstance(sd, list):
                raise SdJwtError("malformed", "_sd is not an array")
            for digest in sd:
                found = self._claim(digest)
                if found is None:
                    continue  # undisclosed claim or decoy
                if len(found) != 3:
                    raise SdJwtError("tampered-disclosure", "array Disclosure used for a claim")
                if found[1] in out:
                    raise SdJwtError("tampered-disclosure", f"claim {found[1]!r} disclosed twice")
                out[found[1]] = self.unpack(found[2])
            return out
        if isinstance(node, list):
            items: list[Any] = []
            for item in node:
                if isinstance(item, dict) and set(item) == {"..."}:
                    found = self._claim(item["..."])
                    if found is None:
                        continue
                    if len(found) != 2:
                        raise SdJwtError("tampered-disclosure", "claim Disclosure in an array")
                    items.append(self.unpack(found[1]))
                else:
                    items.append(self.unpack(item))
            return items
        return node


def unpack_claims(payload: Mapping[str, Any], disclosures: list[str]) -> dict[str, Any]:
    """The processed SD-JWT payload: disclosed claims in place, ``_sd``/``_sd_alg`` gone."""
    if payload.get("_sd_alg", SD_ALG) != SD_ALG:
        raise SdJwtError("malformed", f"unsupported _sd_alg {payload.get('_sd_alg')!r}")
    unpacker = _Unpacker(disclosures)
    claims = unpacker.unpack(dict(payload))
    if unpacker.used != set(unpacker.by_digest):
        raise SdJwtError("tampered-disclosure", "a Disclosure is not referenced by the SD-JWT")
    if not isinstance(claims, dict):  # pragma: no cover - a dict unpacks to a dict
        raise SdJwtError("malformed", "payload is not an object")
    return claims


def _verify_kb(
    parts: SdJwtParts,
    payload: Mapping[str, Any],
    *,
    audience: str,
    nonce: str,
    now: datetime,
    max_age: timedelta,
) -> dict[str, Any]:
    if parts.kb_jwt is None:
        raise SdJwtError("kb-missing", "presentation has no key-binding JWT")
    cnf = payload.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(jwk, dict):
        raise SdJwtError("kb-missing", "credential has no holder key (cnf.jwk)")
    try:
        holder = PublicKey.from_jwk({k: v for k, v in jwk.items() if k != "kid"})
        kb = parse_unverified(parts.kb_jwt)
        verify_with(kb, holder, typ=KB_JWT_TYP)
    except InvalidInput as exc:
        raise SdJwtError("malformed", f"holder key: {exc.detail}") from exc
    except JwsError as exc:
        code = "kb-bad-signature" if exc.code == "bad-signature" else "malformed"
        raise SdJwtError(code, f"key-binding JWT: {exc.message}") from exc
    claims = kb.payload
    expected_hash = b64url_encode(hashlib.sha256(parts.without_kb.encode("ascii")).digest())
    if not secrets.compare_digest(str(claims.get("sd_hash", "")), expected_hash):
        raise SdJwtError("tampered-disclosure", "KB-JWT sd_hash does not match the presentation")
    if claims.get("aud") != audience:
        raise SdJwtError("wrong-audience", "KB-JWT is for another audience")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
        claims["nonce"], nonce
    ):
        raise SdJwtError("wrong-nonce", "KB-JWT nonce does not match the challenge")
    iat = claims.get("iat")
    if not isinstance(iat, int):
        raise SdJwtError("malformed", "KB-JWT has no iat")
    ts = now.timestamp()
    if iat < ts - max_age.total_seconds() or iat > ts + CLOCK_SKEW.total_seconds():
        raise SdJwtError("kb-too-old", "KB-JWT is too old (or from the future): replay?")
    return claims


def verify_sd_jwt(
    presentation: str,
    keys: KeySet,
    *,
    audience: str | None,
    nonce: str | None,
    now: datetime,
    max_kb_age: timedelta = MAX_KB_AGE,
    require_kb: bool = True,
) -> VerifiedSdJwt:
    """Verify signature, Disclosures and (when required or present) the KB-JWT."""
    parts = split(presentation)
    try:
        parsed, issuer_key = verify_jwt(parts.jwt, keys, typ=SD_JWT_TYP)
    except JwsError as exc:
        raise SdJwtError(exc.code, exc.message) from exc
    claims = unpack_claims(parsed.payload, parts.disclosures)
    kb: dict[str, Any] | None = None
    if require_kb or parts.kb_jwt is not None:
        if audience is None or nonce is None:
            raise InvalidInput("verifying key binding needs the expected audience and nonce")
        kb = _verify_kb(
            parts, parsed.payload, audience=audience, nonce=nonce, now=now, max_age=max_kb_age
        )
    return VerifiedSdJwt(
        payload=parsed.payload, claims=claims, issuer_key=issuer_key, kb_payload=kb
    )
