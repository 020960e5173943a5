"""18-digit PRC resident identity numbers (GB 11643-1999).

Layout: 6-digit administrative region code, 8-digit birth date (YYYYMMDD), 3-digit
sequence (odd = male, even = female), 1 check character computed with ISO 7064
MOD 11-2 (``0``-``9`` or ``X`` for 10). An invalid number is reported with a reason and
is never used for comparison.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


@dataclass(frozen=True, slots=True)
class IdCheck:
    """The result of checking one ID number."""

    raw: str
    number: str | None  # normalised number when valid, else None
    error: str | None  # why it is invalid, None when valid
    region: str | None = None
    birth_date: dt.date | None = None
    sex: str | None = None  # "M" or "F"

    @property
    def valid(self) -> bool:
        return self.error is None


def normalise(raw: str) -> str:
    """Strip spaces/hyphens, full-width digits to ASCII, lower-case x to X."""
    out = []
    for ch in raw.strip():
        code = ord(ch)
        if 0xFF10 <= code <= 0xFF19:  # full-width digits
            out.append(chr(code - 0xFF10 + 48))
        elif ch in "xＸｘ":
            out.append("X")
        elif ch in " -\u3000":
            continue
        else:
            out.append(ch)
    return "".join(out)


def check(raw: str | None, *, today: dt.date | None = None) -> IdCheck:
    """Validate an ID number; never raises on bad input, reports the reason instead."""
    if raw is None or not str(raw).strip():
        return IdCheck(raw="" if raw is None else str(raw), number=None, error="empty")
    text = normalise(str(raw))
    if not _SHAPE.match(text):
        return IdCheck(raw=str(raw), number=None, error="not 17 digits plus a check character")
    if check_char(text[:17]) != text[17]:
        return IdCheck(raw=str(raw), number=None, error="check digit mismatch")
    try:
        born = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return IdCheck(raw=str(raw), number=None, error="impossible birth date")
    limit = today or dt.date.today()
    if born > limit or born.year < 1880:
        return IdCheck(raw=str(raw), number=None, error="birth date out of range")
    if text[:2] in {"00", "10", "20", "30", "40", "90"} or text[0] == "0":
        return IdCheck(raw=str(raw), number=None, error="unknown region code")
    return IdCheck(
        raw=str(raw),
        number=text,
        error=None,
        region=text[:6],
        birth_date=born,
        sex="M" if int(text[16]) % 2 == 1 else "F",
    )


def make(region: str, born: dt.date, sequence: int) -> str:
    """Build a valid number (for tests and the synthetic generator)."""
    if len(region) != 6 or not region.isdigit() or not 0 <= sequence <= 999:
        raise ValueError("region must be 6 digits and sequence 0..999")
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_char(first17)
