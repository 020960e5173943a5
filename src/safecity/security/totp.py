"""TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps) via pyotp.

Every human principal who is not only a citizen must have a TOTP secret. A code is
accepted for the current step and one step either side (clock drift), and never twice:
:func:`match_step` returns the step a code belongs to, and the caller stores it as the
user's ``totp_last_step`` (RFC 6238 §5.2, no replay).

Secrets are sealed at rest (:func:`seal` / :func:`unseal`, AES-256-GCM with a key from the
key directory, bound to the user id), so a database dump alone yields no second factor.
"""

from __future__ import annotations

import base64
import hmac
import os
from datetime import datetime

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safecity.platform.db import utcnow
from safecity.platform.errors import ConfigurationError

ISSUER = "SafeCity"
INTERVAL = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    """A fresh base32 secret (160 bits)."""
    return str(pyotp.random_base32(length=32))


SEALED_PREFIX = "v1:"


def seal(secret: str, *, key: bytes, user_id: str) -> str:
    """``secret`` encrypted for storage (AES-GCM; the user id is authenticated data, so a
    sealed secret copied onto another user's row does not open)."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, secret.encode("ascii"), user_id.encode())
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(stored: str, *, key: bytes, user_id: str) -> str:
    """The secret inside a value made by :func:`seal`."""
    if not stored.startswith(SEALED_PREFIX):
        raise ConfigurationError(
            "TOTP secret is not sealed; reset it with `safecity users reset-totp`"
        )
    raw = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :])
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], user_id.encode()).decode("ascii")
    except InvalidTag as exc:
        raise ConfigurationError(
            "a TOTP secret does not open with this key directory's totp-seal.key"
        ) from exc


def provisioning_uri(secret: str, *, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI an authenticator app scans (as a QR code) or imports."""
    return str(
        pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
            name=username, issuer_name=issuer
        )
    )


def step_at(moment: datetime) -> int:
    """The TOTP time step containing ``moment``."""
    return int(moment.timestamp()) // INTERVAL


def code_at(secret: str, moment: datetime) -> str:
    """The code for ``moment`` (tests, the demo)."""
    return str(pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).at(moment))


def match_step(
    secret: str, code: str, *, now: datetime | None = None, after_step: int | None = None
) -> int | None:
    """The time step ``code`` is valid for, or ``None``.

    Steps at or before ``after_step`` (the last one used) are refused.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = step_at(now or utcnow())
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Compare every candidate (constant work), remember the match.
        if hmac.compare_digest(str(totp.generate_otp(step)), code) and found is None:
            found = step
    if found is None or (after_step is not None and found <= after_step):
        return None
    return found
