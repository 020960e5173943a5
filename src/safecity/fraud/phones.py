"""Phone numbers as the fraud feeds write them, normalised to one form (E.164).

Operators, banks and citizens write the same number many ways: ``+86 138-0013-8000``,
``008613800138000``, ``8613800138000``, ``13800138000``, full-width digits, landlines
with or without the trunk ``0`` (``(021)61234567``, ``021 6123 4567``), toll-free
``400-820-8820``, foreign numbers with ``+``. :func:`normalise_phone` parses them with
``phonenumbers`` (Google's libphonenumber metadata), mainland China as the default
region, and returns the E.164 string plus a kind. Chinese service short codes (``95588``,
``110``, ``12110``) are kept as ``+86`` followed by the code with kind ``short``: scammers
imitate them, so they must be matchable, but they are not dialable E.164 numbers.

Anything else (letters, too few or too many digits, a number no plan knows) raises
:class:`~safecity.platform.errors.InvalidInput` with the offending text cut short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from safecity.platform.errors import InvalidInput

PhoneKind = Literal["mobile", "virtual", "landline", "toll_free", "short", "foreign", "other"]

DEFAULT_REGION = "CN"
MAX_RAW_LENGTH = 40
# Mainland mobile prefixes that mobile virtual network operators use (170/171/162/165/167):
# numbers there are cheap to obtain in bulk and a known risk signal, not a verdict.
VIRTUAL_PREFIXES = ("170", "171", "162", "165", "167")
_ALLOWED = re.compile(r"^[\s0-9０-９+＋()\-.·/]+$")
_SHORT = re.compile(r"^(?:1[0-2]\d{1,3}|9\d{4}|96\d{3,4})$")


@dataclass(frozen=True)
class Phone:
    e164: str
    kind: PhoneKind

    @property
    def domestic(self) -> bool:
        return self.e164.startswith("+86")


def _clip(raw: str) -> str:
    return raw if len(raw) <= 24 else raw[:24] + "…"


def normalise_phone(raw: str, *, region: str = DEFAULT_REGION) -> Phone:
    """The number ``raw`` in E.164 with its kind; :class:`InvalidInput` if it is none.
    Results are cached (feeds repeat the same numbers all day; parsing is the cost)."""
    if not isinstance(raw, str):
        raise InvalidInput("a phone number must be text")
    return _normalise(raw, region)


@lru_cache(maxsize=200_000)
def _normalise(raw: str, region: str) -> Phone:
    text = raw.strip()
    if not text:
        raise InvalidInput("phone number is empty")
    if len(text) > MAX_RAW_LENGTH or not _ALLOWED.match(text):
        raise InvalidInput(f"{_clip(text)!r} is not a phone number")
    digits = re.sub(r"\D", "", text.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    if region == "CN" and _SHORT.match(digits) and not text.lstrip().startswith(("+", "＋")):
        return Phone(e164=f"+86{digits}", kind="short")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        raise InvalidInput(f"{_clip(text)!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"{_clip(text)!r} is not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.country_code != 86:
        return Phone(e164=e164, kind="foreign")
    national = str(number.national_number)
    kind: PhoneKind
    match phonenumbers.number_type(number):
        case PhoneNumberType.MOBILE:
            kind = "virtual" if national.startswith(VIRTUAL_PREFIXES) else "mobile"
        case PhoneNumberType.FIXED_LINE:
            kind = "landline"
        case PhoneNumberType.TOLL_FREE | PhoneNumberType.SHARED_COST:
            kind = "toll_free"
        case PhoneNumberType.FIXED_LINE_OR_MOBILE:
            kind = "mobile"
        case _:
            kind = "other"
    return Phone(e164=e164, kind=kind)
