import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.linkage import idcard

regions = st.sampled_from(["110105", "310104", "440305", "510107", "330106"])
births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31))
sequences = st.integers(min_value=0, max_value=999)


def test_known_number() -> None:
    res = idcard.check("11010519491231002x")
    assert res.valid
    assert res.number == "11010519491231002X"
    assert res.birth_date == dt.date(1949, 12, 31)
    assert res.sex == "F"
    assert res.region == "110105"


@given(regions, births, sequences)
@settings(max_examples=200)
def test_generated_numbers_pass(region: str, born: dt.date, seq: int) -> None:
    number = idcard.make(region, born, seq)
    res = idcard.check(number)
    assert res.valid, res.error
    assert res.birth_date == born
    assert res.sex == ("M" if seq % 2 else "F")


@given(regions, births, sequences, st.integers(0, 17), st.integers(1, 10))
@settings(max_examples=300)
def test_any_single_character_change_is_caught(
    region: str, born: dt.date, seq: int, pos: int, shift: int
) -> None:
    number = idcard.make(region, born, seq)
    alphabet = "0123456789X" if pos == 17 else "0123456789"
    old = alphabet.index(number[pos])
    new = alphabet[(old + shift) % len(alphabet)]
    if new == number[pos]:
        return
    changed = number[:pos] + new + number[pos + 1 :]
    assert not idcard.check(changed).valid


def test_bad_inputs_flagged_with_reason() -> None:
    assert idcard.check("").error == "empty"
    assert idcard.check("12345").error is not None
    bad_date = "110105" + "19491332" + "002"
    assert idcard.check(bad_date + idcard.check_char(bad_date)).error == "impossible birth date"
