"""What of a work order or a place may be shown in public: building level, no flat.

A flat (room/unit) number identifies a household: public output keeps the street,
lane, number and building, and drops the flat. Phone and ID numbers in free text are
masked (:func:`safecity.security.redact.scrub_text`).
"""

from __future__ import annotations

import re

from safecity.security.redact import scrub_text

# 1203室, 12楼1203, 5层, 1203户, 3单元 (Chinese), Room/Flat/Apt/Unit/Suite/# 1203 (English),
# and a trailing "-1203" after a building number.
_FLAT_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"[0-9A-Za-z一二三四五六七八九十〇零-]+\s*(?:室|户|房|号房)"),
    re.compile(r"[0-9一二三四五六七八九十]+\s*(?:楼|层|单元)(?![0-9A-Za-z]*号)"),
    re.compile(
        r"(?i)(?:,\s*)?\b(?:room|rm\.?|flat|apt\.?|apartment|unit|suite|floor|fl\.?)\s*#?\s*"
        r"[0-9A-Za-z-]+"
    ),
    re.compile(r"#\s*[0-9A-Za-z-]+"),
)


def building_level(text: str | None) -> str:
    """``text`` (an address or label) without flat/room/unit/floor numbers."""
    if not text:
        return ""
    out = text
    for pattern in _FLAT_PATTERNS:
        out = pattern.sub("", out)
    out = re.sub(r"\s{2,}", " ", out).strip(" ,，-")
    return out


def public_text(text: str | None) -> str:
    """Free text for the public: flat numbers dropped, phone and ID numbers masked."""
    return scrub_text(building_level(text)) if text else ""


def round_coordinate(value: float | None, digits: int = 4) -> float | None:
    """A coordinate rounded to about ten metres (building, not window)."""
    return None if value is None else round(value, digits)
