"""Key material of the e-certificate registry — all of it files under the key directory.

Nothing here is ever written to the database or the repository. Under
``settings.effective_key_dir`` (``SAFECITY_KEY_DIR``; default ``var/keys``)::

    eservices/            issuer keys (IssuerKeyStore: <kid>.key.json 0600, <kid>.pub.json,
                          active); ``safecity keys rotate`` adds one, old public keys stay
    eservices-bundle/     the trust-bundle signer (a separate IssuerKeyStore): offline
                          verifier devices pin its public key (GET /api/eservices/trust-anchor)
                          so an issuer-key rotation needs no device update
    eservices-wallet/<user id>/k<n>.json
                          hosted-wallet holder keys of each citizen (0600, one per batch
                          copy, so the copies are not linkable by their ``cnf`` key); the
                          portal presents on the citizen's behalf with them
    eservices-claims.key  AES-256-GCM key sealing certificate claims and copies at rest

Back the directory up with the database: without ``eservices-claims.key`` the stored
claims cannot be read (the issued credentials still verify: they carry their own
signatures); without the wallet keys the hosted wallet cannot present old copies (reissue).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safecity.eservices.credentials.keys import IssuerKeyStore, SigningKey
from safecity.platform.errors import ConfigurationError, InvalidInput
from safecity.security.keys import _check_mode, _hex_key, _write_new

ISSUER_DIR = "eservices"
BUNDLE_DIR = "eservices-bundle"
WALLET_DIR = "eservices-wallet"
CLAIMS_KEY_FILE = "eservices-claims.key"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_lock = threading.Lock()
_stores: dict[tuple[str, str], IssuerKeyStore] = {}


def _store(key_dir: Path, sub: str, alg: str) -> IssuerKeyStore:
    path = Path(key_dir) / sub
    cache_key = (str(path.resolve()), alg)
    with _lock:
        store = _stores.get(cache_key)
        if store is None:
            store = _stores[cache_key] = IssuerKeyStore(
                path, alg="ES256" if alg == "ES256" else "Ed25519"
            )
        return store


def issuer_store(key_dir: Path) -> IssuerKeyStore:
    """The issuer key store (ES256 by default; see :mod:`.credentials.keys`)."""
    return _store(key_dir, ISSUER_DIR, "ES256")


def bundle_store(key_dir: Path) -> IssuerKeyStore:
    """The trust-bundle signer's key store (Ed25519)."""
    return _store(key_dir, BUNDLE_DIR, "Ed25519")


def bundle_signer(key_dir: Path) -> SigningKey:
    return bundle_store(key_dir).active()


def wallet_keys(key_dir: Path, user_id: str, count: int) -> list[SigningKey]:
    """The citizen's hosted-wallet holder keys ``k0..k{count-1}`` (created on first use)."""
    if not _SAFE_ID.match(user_id):
        raise InvalidInput("holder user id is not a valid id")
    folder = Path(key_dir) / WALLET_DIR / user_id
    keys: list[SigningKey] = []
    for n in range(count):
        path = folder / f"k{n}.json"
        if not path.exists():
            fresh = SigningKey.generate("ES256")
            _write_new(path, json.dumps(fresh.private_jwk(), sort_keys=True).encode(), 0o600)
        _check_mode(path)
        try:
            keys.append(SigningKey.from_private_jwk(json.loads(path.read_bytes())))
        except (ValueError, InvalidInput) as exc:
            raise ConfigurationError(f"{path} is not a valid private JWK") from exc
    return keys


def wallet_key(key_dir: Path, user_id: str, kid: str, *, search: int = 20) -> SigningKey:
    """The holder key named ``kid`` among the citizen's wallet keys."""
    folder = Path(key_dir) / WALLET_DIR / user_id
    for n in range(search):
        path = folder / f"k{n}.json"
        if not path.exists():
            break
        key = SigningKey.from_private_jwk(json.loads(path.read_bytes()))
        if key.kid == kid:
            return key
    raise ConfigurationError(f"hosted-wallet key {kid} of holder {user_id} is missing")


def _claims_key(key_dir: Path) -> bytes:
    return _hex_key(Path(key_dir), CLAIMS_KEY_FILE, create=True, length=32, at_least=False)


def seal(key_dir: Path, value: Any, *, bound_to: str) -> str:
    """AES-256-GCM over the JSON of ``value``, bound to ``bound_to`` (the certificate id)."""
    nonce = os.urandom(12)
    data = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
    box = AESGCM(_claims_key(key_dir)).encrypt(nonce, data, bound_to.encode())
    return base64.urlsafe_b64encode(nonce + box).decode("ascii")


def unseal(key_dir: Path, sealed: str, *, bound_to: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(sealed)
        data = AESGCM(_claims_key(key_dir)).decrypt(raw[:12], raw[12:], bound_to.encode())
        return json.loads(data)
    except (InvalidTag, ValueError) as exc:
        raise ConfigurationError(
            "sealed certificate data does not open with eservices-claims.key"
        ) from exc
