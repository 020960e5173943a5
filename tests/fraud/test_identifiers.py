"""Phone numbers, accounts and domains as the feeds write them, and their pseudonyms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecity.fraud.identifiers import (
    Pseudonymiser,
    is_pseudonym,
    normalise_account,
    normalise_domain,
)
from safecity.fraud.phones import normalise_phone
from safecity.platform.errors import InvalidInput

KEY = b"k" * 32


@pytest.mark.parametrize(
    "raw",
    [
        "+86 138-0013-8000",
        "008613800138000",
        "8613800138000",
        "13800138000",
        "138 0013 8000",
        "１３８００１３８０００",  # full-width digits from a form
        "(+86) 138.0013.8000",
    ],
)
def test_one_mobile_number_written_many_ways_is_one_e164(raw: str) -> None:
    phone = normalise_phone(raw)
    assert phone.e164 == "+8613800138000"
    assert phone.kind == "mobile"


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("010-12345678", "+861012345678", "landline"),
        ("(021)61234567", "+862161234567", "landline"),
        ("021 6123 4567", "+862161234567", "landline"),
        ("400-820-8820", "+864008208820", "toll_free"),
        ("17012345678", "+8617012345678", "virtual"),
        ("+1 415 555 0100", "+14155550100", "foreign"),
        ("95588", "+8695588", "short"),
        ("110", "+86110", "short"),
    ],
)
def test_landlines_service_and_foreign_numbers(raw: str, e164: str, kind: str) -> None:
    phone = normalise_phone(raw)
    assert (phone.e164, phone.kind) == (e164, kind)


@pytest.mark.parametrize(
    "raw", ["", "abc", "0013800138000", "12345678901234567890", "+86 1", "138-0013-800O"]
)
def test_what_is_no_phone_number_is_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidInput, match="phone number"):
        normalise_phone(raw)


@given(st.text(max_size=50))
def test_normalising_any_text_gives_a_number_or_invalid_input(raw: str) -> None:
    try:
        phone = normalise_phone(raw)
    except InvalidInput:
        return
    assert phone.e164.startswith("+")
    assert normalise_phone(phone.e164).e164 == phone.e164  # idempotent


def test_accounts_and_domains_normalise() -> None:
    assert normalise_account("6222 0200-1234 5678") == "6222020012345678"
    assert normalise_account("de89 3704 0044 0532 0130 00") == "DE89370400440532013000"
    assert normalise_domain("https://WWW.Example.COM/login?x=1") == "example.com"
    assert normalise_domain("例子.测试") == "xn--fsqu00a.xn--0zwm56d"
    for bad in ("", "localhost", "http://", "-bad-.com"):
        with pytest.raises(InvalidInput):
            normalise_domain(bad)
    with pytest.raises(InvalidInput):
        normalise_account("12")


def test_pseudonyms_are_keyed_stable_and_kind_separated() -> None:
    p = Pseudonymiser(KEY)
    a = p.of("phone", "138 0013 8000")
    assert a == p.of("phone", "+8613800138000")
    assert is_pseudonym(a, "phone")
    assert not is_pseudonym(a, "account")
    assert a != Pseudonymiser(b"j" * 32).of("phone", "13800138000")  # the key matters
    assert "13800138000" not in a
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymiser(b"short")
    with pytest.raises(InvalidInput):
        p.of("email", "x@example.com")
