"""Redaction is a function of the schema: marked fields never reach a public view."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, model_serializer

from safecity.security.redact import (
    MASK,
    FreeText,
    Personal,
    personal_field,
    personal_fields,
    public_model,
    public_view,
    redact,
    scrub_text,
)


class Address(BaseModel):
    district: str
    flat: Annotated[str, Personal]


class Person(BaseModel):
    id: str
    name: Annotated[str, Personal]
    phone: str = personal_field(default="")
    id_number: str = Field("", json_schema_extra={"personal": True})
    category: str = ""
    note: Annotated[str, FreeText] = ""
    addresses: list[Address] = []
    home: Address | None = None
    by_role: dict[str, Address] = {}
    tags: tuple[str, ...] = ()


class Plain(BaseModel):
    id: str
    count: int = 0


# Personal values from an alphabet the public values never use, so any hit is a leak.
personal_text = st.text(alphabet="甲乙丙丁戊己庚辛壬癸", min_size=2, max_size=12)
public_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", max_size=12)
addresses = st.builds(Address, district=public_text, flat=personal_text)
people = st.builds(
    Person,
    id=public_text,
    name=personal_text,
    phone=personal_text,
    id_number=personal_text,
    category=public_text,
    note=public_text,
    addresses=st.lists(addresses, max_size=3),
    home=st.none() | addresses,
    by_role=st.dictionaries(public_text, addresses, max_size=2),
    tags=st.lists(public_text, max_size=3).map(tuple),
)


def _personal_values(person: Person) -> list[str]:
    values = [person.name, person.phone, person.id_number]
    nested = [*person.addresses, *person.by_role.values()]
    if person.home is not None:
        nested.append(person.home)
    return values + [a.flat for a in nested]


def _strip_flats(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_flats(v) for k, v in data.items() if k != "flat"}
    if isinstance(data, list):
        return [_strip_flats(v) for v in data]
    return data


@given(people)
def test_public_view_never_shows_a_personal_value(person: Person) -> None:
    text = json.dumps(public_view(person), ensure_ascii=False)
    for value in _personal_values(person):
        assert value not in text
    assert not re.search("[甲乙丙丁戊己庚辛壬癸]", text)


@given(people)
def test_public_view_keeps_everything_else(person: Person) -> None:
    expected = person.model_dump(mode="json")
    for key in ("name", "phone", "id_number"):
        del expected[key]
    assert public_view(person) == _strip_flats(expected)


@given(people)
def test_mask_keeps_the_keys_and_hides_the_values(person: Person) -> None:
    masked = redact(person, mask=True)
    assert masked["name"] == masked["phone"] == masked["id_number"] == MASK
    assert all(a["flat"] == MASK for a in masked["addresses"])
    assert set(masked) == set(person.model_dump())
    text = json.dumps(masked, ensure_ascii=False)
    assert not re.search("[甲乙丙丁戊己庚辛壬癸]", text)


def test_markers_show_in_the_schema_and_are_listed() -> None:
    assert personal_fields(Person) == {"name", "phone", "id_number"}
    assert personal_fields(Address(district="d", flat="f")) == {"flat"}
    props = Person.model_json_schema()["properties"]
    assert props["name"]["x-personal"] is True
    assert props["phone"]["x-personal"] is True
    assert props["note"]["x-free-text"] is True
    assert "x-personal" not in props["category"]


def test_public_model_drops_personal_fields_at_every_depth() -> None:
    public = public_model(Person)
    assert public is public_model(Person)  # cached
    assert public_model(Plain) is Plain  # nothing to remove
    schema = json.dumps(public.model_json_schema())
    assert "x-personal" not in schema
    assert '"name"' not in schema
    assert '"flat"' not in schema
    assert '"district"' in schema
    person = Person(
        id="p1",
        name="甲乙",
        phone="13800138000",
        note="call 13800138000",
        addresses=[Address(district="hp", flat="丙丁")],
    )
    shown = public.model_validate(person.model_dump()).model_dump()
    assert "name" not in shown
    assert shown["addresses"] == [{"district": "hp"}]
    assert shown["note"] == f"call {MASK}"


def test_public_model_as_a_response_model() -> None:
    api = FastAPI()

    @api.get("/people/{pid}", response_model=public_model(Person))
    def read(pid: str) -> Any:
        return Person(
            id=pid,
            name="甲乙",
            phone="13912345678",
            addresses=[Address(district="d", flat="3-1702")],
        )

    body = TestClient(api).get("/people/p7").json()
    assert body["id"] == "p7"
    assert "13912345678" not in json.dumps(body)
    assert "3-1702" not in json.dumps(body)
    assert "甲乙" not in json.dumps(body, ensure_ascii=False)


def test_custom_serializer_that_hides_the_fields_is_refused() -> None:
    class Odd(BaseModel):
        name: Annotated[str, Personal]

        @model_serializer
        def dump(self) -> str:
            return self.name

    with pytest.raises(TypeError, match="cannot redact"):
        redact(Odd(name="甲乙"))


# --------------------------------------------------------------------------- free text

mobiles = st.builds(
    lambda second, rest: "1" + second + rest,
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
)


def _id_number(body: str, last: str) -> str:
    return body + last


id_numbers = st.builds(
    _id_number,
    st.text(alphabet="0123456789", min_size=17, max_size=17),
    st.sampled_from("0123456789X"),
)
words = st.text(alphabet="abc 的了，。:", max_size=15)


def _with_separators(number: str, sep: str) -> str:
    if len(number) == 11:
        return f"{number[:3]}{sep}{number[3:7]}{sep}{number[7:]}"
    return f"{number[:6]}{sep}{number[6:14]}{sep}{number[14:]}"


@given(
    before=words,
    after=words,
    number=mobiles | id_numbers,
    sep=st.sampled_from(["", " ", "-"]),
)
def test_scrub_text_masks_phone_and_id_numbers(
    before: str, after: str, number: str, sep: str
) -> None:
    text = f"{before} {_with_separators(number, sep)} {after}"
    scrubbed = scrub_text(text)
    assert number not in re.sub(r"[ \-]", "", scrubbed)
    assert MASK in scrubbed


@pytest.mark.parametrize(
    "text",
    ["2025-01-31 at 08:00", "case 42 in room 7", "order 123456", "+86 is the code"],
)
def test_scrub_text_leaves_ordinary_numbers(text: str) -> None:
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "+86 139 1234 5678",
        "0086-13912345678",
        "021-62345678",
        "110101199003071234",
        "call 13912345678.",
    ],
)
def test_scrub_text_known_forms(text: str) -> None:
    assert not re.search(r"\d{7,}", re.sub(r"[ \-]", "", scrub_text(text)))
