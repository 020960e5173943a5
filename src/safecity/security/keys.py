"""Secret key files, kept outside the database under ``settings.effective_key_dir``.

Two keys protect the audit log (:mod:`safecity.security.audit`):

- ``audit-hmac.key`` — 32 random bytes (hex): the HMAC-SHA256 key that chains audit rows.
  Someone with database access but without this file cannot recompute the chain.
- ``audit-checkpoint.key`` — an Ed25519 private key (PEM, PKCS#8) that signs the chain-head
  checkpoints; ``audit-checkpoint.pub`` is its public half (enough to verify signatures).

Both are created on first use: the directory with mode 0700, the secret files with mode
0600, atomically (written to a temporary file, then hard-linked into place, so two
processes starting at once agree on one key and nobody ever reads a half-written file).
A secret file that other users can write is refused; one they can read is used with a
warning. Loading never creates anything when ``create=False`` (``audit verify`` must not
invent a new key and then report every record as forged).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from safecity.platform.errors import ConfigurationError

log = logging.getLogger("safecity.security.keys")

HMAC_KEY_FILE = "audit-hmac.key"
TOTP_KEY_FILE = "totp-seal.key"
CASE_CODE_KEY_FILE = "case-code.key"
FRAUD_PSEUDONYM_KEY_FILE = "fraud-pseudonym.key"
FRAUD_FEED_KEY_FILE = "fraud-feed.key"
SIGNING_KEY_FILE = "audit-checkpoint.key"
SIGNING_PUBLIC_FILE = "audit-checkpoint.pub"

_lock = threading.Lock()
_cache: dict[tuple[str, str], object] = {}


def clear_cache() -> None:
    """Forget keys loaded so far (tests that replace key files)."""
    with _lock:
        _cache.clear()


def _check_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:
        raise ConfigurationError(
            f"secret key file {path} is writable by other users (mode {mode:o}); chmod 600 it"
        )
    if mode & 0o044:
        log.warning("secret key file %s is readable by other users (mode %o)", path, mode)


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` holding ``data`` unless it exists; ``True`` if this call created it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed or widened nothing; be exact
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _read_secret(key_dir: Path, name: str, *, create: bool, make: bytes | None) -> bytes:
    path = key_dir / name
    if not path.exists():
        if not create or make is None:
            raise ConfigurationError(f"secret key file {path} is missing")
        if _write_new(path, make, 0o600):
            log.info("created secret key file %s", path)
    _check_mode(path)
    return path.read_bytes()


def _hex_key(key_dir: Path, name: str, *, create: bool, length: int, at_least: bool) -> bytes:
    """A random key kept hex-encoded in ``key_dir/name`` (created on first use)."""
    cache_key = (str(key_dir.resolve()), name)
    with _lock:
        cached = _cache.get(cache_key)
        if isinstance(cached, bytes):
            return cached
        raw = _read_secret(
            key_dir, name, create=create, make=(secrets.token_hex(length) + "\n").encode()
        )
        try:
            key = bytes.fromhex(raw.decode("ascii").strip())
        except ValueError as exc:
            raise ConfigurationError(f"{key_dir / name} is not a hex key") from exc
        if len(key) < length or (not at_least and len(key) != length):
            wanted = f"at least {length}" if at_least else f"exactly {length}"
            raise ConfigurationError(f"{key_dir / name} must hold {wanted} bytes")
        _cache[cache_key] = key
        return key


def audit_hmac_key(key_dir: Path, *, create: bool = True) -> bytes:
    """The audit chain's HMAC key (created on first use unless ``create=False``)."""
    return _hex_key(key_dir, HMAC_KEY_FILE, create=create, length=32, at_least=True)


def totp_sealing_key(key_dir: Path, *, create: bool = True) -> bytes:
    """The AES-256-GCM key that seals TOTP secrets at rest (created on first use)."""
    return _hex_key(key_dir, TOTP_KEY_FILE, create=create, length=32, at_least=False)


def case_code_key(key_dir: Path, *, create: bool = True) -> bytes:
    """The HMAC-SHA256 key under which portal verification codes of cases are stored."""
    return _hex_key(key_dir, CASE_CODE_KEY_FILE, create=create, length=32, at_least=True)


def fraud_pseudonym_key(key_dir: Path, *, create: bool = True) -> bytes:
    """The HMAC-SHA256 key that turns phone numbers, accounts and domains in the fraud
    feeds into pseudonyms (kept outside the database: rows alone can't be reversed)."""
    return _hex_key(key_dir, FRAUD_PSEUDONYM_KEY_FILE, create=create, length=32, at_least=True)


def ed25519_key(key_dir: Path, name: str, *, create: bool = True) -> Ed25519PrivateKey:
    """An Ed25519 private key kept as PEM in ``key_dir/name`` (created on first use), its
    public half written beside it as ``<stem>.pub``."""
    cache_key = (str(key_dir.resolve()), name)
    with _lock:
        cached = _cache.get(cache_key)
        if isinstance(cached, Ed25519PrivateKey):
            return cached
        fresh = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        raw = _read_secret(key_dir, name, create=create, make=fresh)
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except ValueError as exc:
            raise ConfigurationError(f"{key_dir / name} is not a PEM key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"{key_dir / name} is not an Ed25519 key")
        public_path = key_dir / f"{Path(name).stem}.pub"
        if not public_path.exists():
            _write_new(public_path, _public_pem(key.public_key()), 0o644)
        _cache[cache_key] = key
        return key


def checkpoint_signing_key(key_dir: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 key that signs audit checkpoints (created on first use)."""
    return ed25519_key(key_dir, SIGNING_KEY_FILE, create=create)


def fraud_feed_key(key_dir: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 key that signs the block-list feeds for operators and registrars."""
    return ed25519_key(key_dir, FRAUD_FEED_KEY_FILE, create=create)


def checkpoint_public_key(key_dir: Path) -> Ed25519PublicKey:
    """The public key that verifies checkpoints: ``audit-checkpoint.pub``, or derived from
    the private key when only that is present."""
    public_path = key_dir / SIGNING_PUBLIC_FILE
    derived = (
        checkpoint_signing_key(key_dir, create=False).public_key()
        if (key_dir / SIGNING_KEY_FILE).exists()
        else None
    )
    if not public_path.exists():
        if derived is None:
            raise ConfigurationError(f"checkpoint public key {public_path} is missing")
        return derived
    try:
        key = serialization.load_pem_public_key(public_path.read_bytes())
    except ValueError as exc:
        raise ConfigurationError(f"{public_path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"{public_path} is not an Ed25519 public key")
    if derived is not None and key_fingerprint(derived) != key_fingerprint(key):
        raise ConfigurationError(f"{public_path} does not match {key_dir / SIGNING_KEY_FILE}")
    return key


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key (first 16 hex digits of its SHA-256)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
