"""Identifiers in the fraud feeds — phone numbers, bank accounts, web domains — normalised
and turned into pseudonyms.

Everything the fraud engine keeps and publishes is keyed by a pseudonym: a keyed hash
(HMAC-SHA256 under ``fraud-pseudonym.key`` in the key directory, never in the database)
of the identifier's kind and normalised value, so the same number written two ways
gives one pseudonym, and someone holding the rows but not the key cannot test a guess.
The block list keeps the plain value too (operators must know what to shut) — that is
the only place it lives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safecity.fraud.phones import normalise_phone
from safecity.platform.errors import InvalidInput

Kind = Literal["phone", "account", "domain"]
KINDS: tuple[Kind, ...] = ("phone", "account", "domain")
PSEUDONYM_PREFIX = {"phone": "p", "account": "a", "domain": "d"}
PSEUDONYM = re.compile(r"^[pad]_[0-9a-f]{32}$")

_ACCOUNT = re.compile(r"^[0-9A-Za-z]{6,34}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_account(raw: str) -> str:
    """A bank card / account number or an e-wallet id: spaces and dashes dropped,
    letters upper-cased (IBAN-style), 6–34 characters."""
    text = re.sub(r"[\s\-]", "", raw or "").upper()
    if not _ACCOUNT.match(text):
        raise InvalidInput(f"{(raw or '')[:24]!r} is not an account number (6-34 letters/digits)")
    return text


def normalise_domain(raw: str) -> str:
    """The host of a URL or a bare domain, lower-case, IDNA-encoded, ``www.`` dropped."""
    text = (raw or "").strip()
    if not text:
        raise InvalidInput("domain is empty")
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    try:
        host = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise InvalidInput(f"{text[:40]!r} is not a domain name") from None
    if host.startswith("www."):
        host = host[4:]
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{text[:40]!r} is not a domain name")
    return host


def normalise(kind: str, raw: str) -> str:
    if kind == "phone":
        return normalise_phone(raw).e164
    if kind == "account":
        return normalise_account(raw)
    if kind == "domain":
        return normalise_domain(raw)
    raise InvalidInput(f"identifier kind must be one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Pseudonymiser:
    """Keyed pseudonyms of normalised identifiers (see the module docstring)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) < 32:
            raise ValueError("the pseudonym key must be at least 32 bytes")

    def of_normalised(self, kind: str, value: str) -> str:
        if kind not in PSEUDONYM_PREFIX:
            raise InvalidInput(f"identifier kind must be one of {', '.join(KINDS)}")
        mac = hmac.new(self.key, f"{kind}\x00{value}".encode(), hashlib.sha256)
        return f"{PSEUDONYM_PREFIX[kind]}_{mac.hexdigest()[:32]}"

    def of(self, kind: str, raw: str) -> str:
        """The pseudonym of a raw identifier (normalised first; InvalidInput if bad)."""
        return self.of_normalised(kind, normalise(kind, raw))


def _seal_key(key: bytes) -> bytes:
    return hmac.new(key, b"safecity-fraud-seal-v1", hashlib.sha256).digest()


def seal(pseudonyms: Pseudonymiser, kind: str, value: str) -> str:
    """A sealed copy of a *suspect's* normalised identifier (AES-256-GCM under a key
    derived from the pseudonym key, bound to its kind): carried with caller and sender
    pseudonyms only, so that a block proposal can name the number for the reviewer.
    Victims' identifiers are never sealed."""
    nonce = os.urandom(12)
    box = AESGCM(_seal_key(pseudonyms.key)).encrypt(nonce, value.encode(), kind.encode())
    return base64.urlsafe_b64encode(nonce + box).decode("ascii").rstrip("=")


def unseal(pseudonyms: Pseudonymiser, kind: str, sealed: str) -> str:
    """The identifier in ``sealed``; :class:`InvalidInput` if it was not sealed by this key
    for this kind."""
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        return AESGCM(_seal_key(pseudonyms.key)).decrypt(raw[:12], raw[12:], kind.encode()).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise InvalidInput("sealed identifier does not open with this key") from None


def is_pseudonym(value: str, kind: str | None = None) -> bool:
    if not isinstance(value, str) or not PSEUDONYM.match(value):
        return False
    return kind is None or value[0] == PSEUDONYM_PREFIX.get(kind, "?")
