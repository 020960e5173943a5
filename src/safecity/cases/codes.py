"""Public case numbers and portal verification codes.

A number is ``AJ`` + 10 characters of an unambiguous base-32 alphabet (50 random bits);
a code is 8 such characters (40 bits). Codes are stored only as HMAC-SHA256 under the
server's case-code key (:func:`safecity.security.keys.case_code_key`), so a check is one
cheap MAC and a database dump reveals no code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy.orm import Session

from safecity.platform.runtime import settings_for
from safecity.security import keys

_SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32
NUMBER_CHARS = 10
CODE_CHARS = 8
NUMBER_RE = re.compile(r"^AJ[0-9A-HJKMNP-TV-Z]{10}$")
CODE_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")


def _random(chars: int) -> str:
    return "".join(secrets.choice(_SYMBOLS) for _ in range(chars))


def new_number() -> str:
    return "AJ" + _random(NUMBER_CHARS)


def new_code() -> str:
    return _random(CODE_CHARS)


_LOOKALIKES = str.maketrans("OIL", "011")


def normalise(text: str) -> str:
    """Upper case, spaces and dashes removed, Crockford look-alikes mapped (O→0, I/L→1)."""
    cleaned = re.sub(r"[\s-]", "", text).upper()
    return cleaned.translate(_LOOKALIKES)


def _key(session: Session) -> bytes:
    return keys.case_code_key(settings_for(session).effective_key_dir)


def code_mac(session: Session, *, number: str, code: str) -> str:
    """HMAC-SHA256 of ``number:code`` under the case-code key (hex)."""
    message = f"{number}:{normalise(code)}".encode()
    return hmac.new(_key(session), message, hashlib.sha256).hexdigest()


def code_matches(session: Session, *, number: str, code: str, stored: str | None) -> bool:
    """Constant-time check of ``code`` against the stored MAC (``None``: never matches, but
    computes the MAC anyway so the answer takes the same time)."""
    mac = code_mac(session, number=number, code=code)
    return hmac.compare_digest(mac, stored or "0" * 64) and stored is not None
