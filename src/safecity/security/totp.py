"""TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps) via pyotp.

Every human principal who is not only a citizen must have a TOTP secret. A code is
accepted for the current step and one step either side (clock drift), and never twice:
:func:`match_step` returns the step a code belongs to, and the caller stores it as the
user's ``totp_last_step`` (RFC 6238 §5.2, no replay).
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

from safecity.platform.db import utcnow

ISSUER = "SafeCity"
INTERVAL = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    """A fresh base32 secret (160 bits)."""
    return str(pyotp.random_base32(length=32))


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
