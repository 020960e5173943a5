"""Issuer signing keys: generation, an on-disk key store with rotation, public JWK sets.

An issuer key is Ed25519 (JOSE ``alg`` "Ed25519", RFC 9864; COSE alg -8) or ECDSA P-256
(``ES256``; COSE alg -7). Its ``kid`` is the RFC 7638 JWK thumbprint of the public key, so
the name is derived from the key itself and cannot be forged or collide by accident.

The key store defaults to ES256: SD-JWT VC wallet profiles (OpenID4VC HAIP) require it,
and OpenSSL verifies P-256 faster than Ed25519 on our servers (see
``benchmarks/eservices_verify.py``); Ed25519 stays available per store or per rotation.

:class:`IssuerKeyStore` keeps one file per key under a key directory (never in the
repository; the caller passes ``settings.effective_key_dir / "eservices"`` or similar)::

    <kid>.key.json   private JWK, mode 0600, created atomically (never half-written)
    <kid>.pub.json   public JWK, mode 0644 — kept forever, so credentials signed by a
                     rotated-out key still verify
    active           the kid that signs new credentials (replaced atomically on rotation)

File writing reuses :mod:`safecity.security.keys` (temporary file + hard link, exact
modes; a secret file writable by other users is refused).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc.jwk import ECKey, OKPKey

from safecity.platform.errors import ConfigurationError, InvalidInput, NotFound
from safecity.security.keys import _check_mode, _write_new

Alg = Literal["Ed25519", "ES256"]
ALGS: tuple[Alg, ...] = ("Ed25519", "ES256")
COSE_ALG: dict[Alg, int] = {"Ed25519": -8, "ES256": -7}
ACTIVE_FILE = "active"

JoseKey = OKPKey | ECKey


def _jose_alg(jwk: Mapping[str, Any]) -> Alg:
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        return "Ed25519"
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        return "ES256"
    raise InvalidInput(f"unsupported key type {jwk.get('kty')}/{jwk.get('crv')}")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a public OKP or EC key."""
    members = ("crv", "kty", "x") if jwk.get("kty") == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("JWK member is not a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PublicKey:
    """A verification key: kid, algorithm, public JWK and the ready ``cryptography`` key."""

    kid: str
    alg: Alg
    jwk: Mapping[str, Any]
    crypto: Ed25519PublicKey | ec.EllipticCurvePublicKey = field(repr=False, compare=False)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """Import a public JWK (private members are dropped); ``kid`` is recomputed as the
        RFC 7638 thumbprint and must match a ``kid`` the JWK carries."""
        alg = _jose_alg(jwk)
        public = {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}
        crypto: Ed25519PublicKey | ec.EllipticCurvePublicKey
        try:
            if alg == "Ed25519":
                crypto = Ed25519PublicKey.from_public_bytes(_b64(public["x"]))
            else:
                x, y = _b64(public["x"]), _b64(public["y"])
                if len(x) != 32 or len(y) != 32:
                    raise ValueError("P-256 coordinates are 32 bytes")
                crypto = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), b"\x04" + x + y
                )
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(f"not a valid {alg} public JWK") from exc
        kid = jwk_thumbprint(public)
        if "kid" in jwk and jwk["kid"] != kid:
            raise InvalidInput(f"JWK kid {jwk['kid']!r} is not its thumbprint {kid!r}")
        return cls(
            kid=kid, alg=alg, jwk={**public, "kid": kid, "alg": alg, "use": "sig"}, crypto=crypto
        )

    def verify(self, data: bytes, signature: bytes) -> bool:
        """``True`` when ``signature`` (JOSE/COSE raw form; r||s for ES256) signs ``data``."""
        pub = self.crypto
        try:
            if isinstance(pub, Ed25519PublicKey):
                pub.verify(signature, data)
            elif isinstance(pub, ec.EllipticCurvePublicKey):
                if len(signature) != 64:
                    return False
                r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                pub.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
            else:  # pragma: no cover - from_jwk admits no other key type
                return False
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private issuer (or holder) key with its public half."""

    public: PublicKey
    jose: JoseKey = field(repr=False, compare=False)

    @property
    def kid(self) -> str:
        return self.public.kid

    @property
    def alg(self) -> Alg:
        return self.public.alg

    @classmethod
    def generate(cls, alg: Alg = "Ed25519") -> SigningKey:
        """A fresh random key."""
        if alg not in ALGS:
            raise InvalidInput(f"unsupported algorithm {alg!r}; use one of {', '.join(ALGS)}")
        key: JoseKey = (
            OKPKey.generate_key("Ed25519", auto_kid=False)
            if alg == "Ed25519"
            else ECKey.generate_key("P-256", auto_kid=False)
        )
        return cls.from_private_jwk(key.as_dict(private=True))

    @classmethod
    def from_private_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        alg = _jose_alg(jwk)
        if "d" not in jwk:
            raise InvalidInput("JWK has no private part 'd'")
        private = {k: jwk[k] for k in ("kty", "crv", "x", "y", "d") if k in jwk}
        key: JoseKey = OKPKey.import_key(private) if alg == "Ed25519" else ECKey.import_key(private)
        return cls(public=PublicKey.from_jwk(private), jose=key)

    def private_jwk(self) -> dict[str, Any]:
        return {**self.jose.as_dict(private=True), "kid": self.kid, "alg": self.alg}

    def sign(self, data: bytes) -> bytes:
        """Raw signature over ``data`` (64 bytes: Ed25519, or r||s for ES256)."""
        priv = self.jose.private_key
        if isinstance(priv, Ed25519PrivateKey):
            return priv.sign(data)
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(priv.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        raise ConfigurationError("signing key has no private part")  # pragma: no cover


class KeySet:
    """Public keys by kid — what a verifier trusts (from a key store or an offline bundle)."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[str, PublicKey] = {k.kid: k for k in keys}

    def get(self, kid: str) -> PublicKey | None:
        return self._keys.get(kid)

    def add(self, key: PublicKey) -> None:
        self._keys[key.kid] = key

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._keys.values())

    def jwks(self) -> dict[str, Any]:
        """The RFC 7517 JWK Set of these keys (sorted by kid, stable output)."""
        return {"keys": [dict(self._keys[k].jwk) for k in sorted(self._keys)]}

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> KeySet:
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise InvalidInput("JWK Set has no 'keys' list")
        return cls(PublicKey.from_jwk(k) for k in keys if isinstance(k, dict))


class IssuerKeyStore:
    """Issuer keys on disk under ``key_dir``, one active; rotation keeps old public keys."""

    def __init__(self, key_dir: Path, *, alg: Alg = "ES256") -> None:
        if alg not in ALGS:
            raise InvalidInput(f"unsupported algorithm {alg!r}; use one of {', '.join(ALGS)}")
        self.key_dir = Path(key_dir)
        self.alg: Alg = alg
        self._signing: dict[str, SigningKey] = {}

    # -- reading -----------------------------------------------------------------------
    def active_kid(self) -> str | None:
        path = self.key_dir / ACTIVE_FILE
        if not path.exists():
            return None
        kid = path.read_text(encoding="ascii").strip()
        return kid or None

    def active(self, *, create: bool = True) -> SigningKey:
        """The key that signs new credentials (created on first use unless ``create=False``)."""
        kid = self.active_kid()
        if kid is None:
            if not create:
                raise ConfigurationError(f"no active issuer key in {self.key_dir}")
            return self.rotate()
        return self.signing_key(kid)

    def signing_key(self, kid: str) -> SigningKey:
        cached = self._signing.get(kid)
        if cached is not None:
            return cached
        path = self.key_dir / f"{kid}.key.json"
        if not path.exists():
            raise NotFound(f"issuer private key {kid} is not in {self.key_dir}")
        _check_mode(path)
        try:
            key = SigningKey.from_private_jwk(json.loads(path.read_bytes()))
        except (ValueError, InvalidInput) as exc:
            raise ConfigurationError(f"{path} is not a valid private JWK") from exc
        if key.kid != kid:
            raise ConfigurationError(f"{path} holds key {key.kid}, not {kid}")
        self._signing[kid] = key
        return key

    def public_keys(self) -> KeySet:
        """Every public key ever made here (active and rotated out)."""
        keys = []
        for path in sorted(self.key_dir.glob("*.pub.json")) if self.key_dir.exists() else []:
            try:
                keys.append(PublicKey.from_jwk(json.loads(path.read_bytes())))
            except (ValueError, InvalidInput) as exc:
                raise ConfigurationError(f"{path} is not a valid public JWK") from exc
        return KeySet(keys)

    # -- writing -----------------------------------------------------------------------
    def rotate(self, *, alg: Alg | None = None, drop_old_private: bool = False) -> SigningKey:
        """Make a new key the active one; the old public key stays. With
        ``drop_old_private`` the previous private key file is deleted (it can sign no more)."""
        old = self.active_kid()
        key = SigningKey.generate(alg or self.alg)
        payload = json.dumps(key.private_jwk(), sort_keys=True).encode()
        _write_new(self.key_dir / f"{key.kid}.key.json", payload, 0o600)
        public = json.dumps(dict(key.public.jwk), sort_keys=True).encode()
        _write_new(self.key_dir / f"{key.kid}.pub.json", public, 0o644)
        self._set_active(key.kid)
        self._signing[key.kid] = key
        if drop_old_private and old and old != key.kid:
            (self.key_dir / f"{old}.key.json").unlink(missing_ok=True)
            self._signing.pop(old, None)
        return key

    def _set_active(self, kid: str) -> None:
        tmp = self.key_dir / f".{ACTIVE_FILE}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(kid + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.key_dir / ACTIVE_FILE)
