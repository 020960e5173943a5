"""Form definitions: loading, prefill, per-field zh/en errors, drafts, summaries, refs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from safecity.eservices.catalogue import default_catalogue
from safecity.eservices.forms import (
    CROCKFORD,
    DEFINITION_SCHEMA,
    PREFILL_KEYS,
    Draft,
    answers_schema,
    check_answers,
    copy_json,
    copy_text,
    form_for_item,
    is_resident_id,
    load_definition,
    new_reference,
    next_page,
    parse_definition,
    parse_reference,
    prefill,
    save_page,
    start_draft,
    submit,
    validate_answers,
)
from safecity.platform.errors import InvalidInput, NotFound

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
FORMS = Path(__file__).parents[2] / "src/safecity/eservices/forms"
NCR = load_definition("no-criminal-record")
HOUSEHOLD = load_definition("household-proof")
FOREIGNER = load_definition("foreigner-work-residence")


def resident_id(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return (
        body17 + "10X98765432"[sum(int(d) * w for d, w in zip(body17, weights, strict=True)) % 11]
    )


ID = resident_id("11010519900501123")
CITIZEN = {
    "family_name": "王",
    "given_name": "小明",
    "id_number": ID,
    "household_address": "北京市西城区示例街道1号",
    "phone": "13800138000",
    "email": "wang@example.cn",
}
NCR_OK = {
    "full_name": "王小明",
    "id_number": ID,
    "apply_at": "household",
    "purpose": "employment",
    "phone": "13800138000",
    "declaration": True,
}


def test_every_catalogue_item_has_a_form_and_the_named_ones_are_specific() -> None:
    forms = {code: form_for_item(item) for code, item in default_catalogue().items.items()}
    assert forms["no-criminal-record"].id == "no-criminal-record"
    assert forms["household-proof"].id == "household-proof"
    assert forms["foreigner-work-residence"].id == "foreigner-work-residence"
    assert forms["passport-ordinary"].id == "generic"
    for form in forms.values():
        for page in form.pages:
            for q in page.questions:
                assert q.label.zh
                assert q.label.en
    assert DEFINITION_SCHEMA["$defs"]["question"]["properties"]["prefill_from"]["enum"] == list(
        PREFILL_KEYS
    )


def test_specific_forms_name_their_items_and_whole_schema_is_valid() -> None:
    for form in (NCR, HOUSEHOLD, FOREIGNER):
        assert form.items == (form.id,)
        schema = answers_schema(form)
        Draft202012Validator.check_schema(schema)
        assert set(schema["properties"]) == set(form.questions())
    schema = answers_schema(NCR)
    assert "purpose_detail" not in schema["required"]  # conditional
    assert "recipient_org" not in schema["required"]  # optional
    assert Draft202012Validator(schema).is_valid(NCR_OK)


def test_prefill_from_citizen_record() -> None:
    answers = prefill(NCR, CITIZEN)
    assert answers == {"full_name": "王小明", "id_number": ID, "phone": "13800138000"}
    # existing answers win; a record value failing the schema is not prefilled
    kept = prefill(NCR, {**CITIZEN, "phone": "12345"}, {"full_name": "王晓明"})
    assert kept["full_name"] == "王晓明"
    assert "phone" not in kept
    assert prefill(HOUSEHOLD, CITIZEN)["household_address"] == CITIZEN["household_address"]


def test_valid_answers_have_no_errors() -> None:
    assert validate_answers(NCR, NCR_OK) == []


def test_errors_are_per_field_and_bilingual() -> None:
    bad = {**NCR_OK, "id_number": ID[:-1] + ("0" if ID[-1] != "0" else "1"), "phone": "0101234"}
    del bad["purpose"]
    errors = {e.field: e for e in validate_answers(NCR, bad)}
    assert set(errors) == {"id_number", "phone", "purpose"}
    assert errors["id_number"].code == "format"
    assert errors["id_number"].zh == "请输入有效的18位公民身份号码"
    assert errors["id_number"].en == "Enter a valid 18-character resident ID number"
    assert errors["phone"].en == "Enter a valid 11-digit mobile number"
    assert errors["purpose"].code == "required"
    assert errors["purpose"].zh == "请填写证明用途"
    for e in errors.values():
        assert "is not valid under" not in e.en
        assert "does not match" not in e.en


def test_custom_and_keyword_messages() -> None:
    errs = validate_answers(NCR, {**NCR_OK, "declaration": False, "full_name": "王"})
    by = {e.field: e for e in errs}
    assert by["declaration"].en == "Confirm the declaration to continue"
    assert by["full_name"].code == "minLength"
    assert by["full_name"].zh == "姓名至少2个字"
    errs = validate_answers(NCR, {**NCR_OK, "purpose": "bribery", "surprise": 1})
    by = {e.field: e for e in errs}
    assert by["purpose"].code == "enum"
    assert by["surprise"].code == "unknown"


def test_conditional_questions() -> None:
    other = {**NCR_OK, "purpose": "other"}
    assert [e.field for e in validate_answers(NCR, other)] == ["purpose_detail"]
    assert validate_answers(NCR, {**other, "purpose_detail": "赴港工作"}) == []
    # an answer to a question that became hidden is ignored, and not summarised
    back = {**other, "purpose_detail": "赴港工作", "purpose": "visa"}
    assert validate_answers(NCR, back) == []
    assert "其他用途说明" not in dict(check_answers(NCR, back))

    # a stale answer to a hidden question does not open what depends on it
    def q(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "label": {"zh": name, "en": name},
            "schema": {"type": "string"},
            **extra,
        }

    chain = parse_definition(
        {
            "id": "chain",
            "version": 1,
            "title": {"zh": "链", "en": "Chain"},
            "pages": [
                {
                    "id": "p",
                    "title": {"zh": "页", "en": "Page"},
                    "questions": [
                        q("a"),
                        q("b", show_if={"question": "a", "equals": "x"}),
                        q("c", show_if={"question": "b", "equals": "y"}),
                    ],
                }
            ],
        }
    )
    assert [x.name for x in chain.visible({"a": "x", "b": "y"})] == ["a", "b", "c"]
    assert [x.name for x in chain.visible({"a": "z", "b": "y"})] == ["a"]
    kin = {"proof_type": "kinship"}
    names = [q.name for q in HOUSEHOLD.visible(kin)]
    assert "relationship" in names
    assert "relationship" not in [q.name for q in HOUSEHOLD.visible({"proof_type": "cancelled"})]


def test_check_answers_summary() -> None:
    rows = check_answers(NCR, NCR_OK, "zh")
    assert ("证明用途", "就业") in rows
    assert ("本人承诺所填信息真实、准确", "是") in rows
    assert ("接收单位名称", "未填写") in rows
    en = dict(check_answers(NCR, NCR_OK, "en"))
    assert en["Apply where you are"] == "Registered household"


def test_draft_save_resume_submit() -> None:
    draft = start_draft(NCR, now=NOW, citizen_record=CITIZEN)
    assert draft.current_page == "where"  # applicant page already prefilled
    assert draft.reference.startswith("YW-2026-11-26-")
    errors = save_page(NCR, draft, "where", {"apply_at": "moon"}, now=NOW)
    assert [e.field for e in errors] == ["apply_at"]
    assert "apply_at" not in draft.answers  # invalid input not saved
    assert save_page(NCR, draft, "where", {"apply_at": "residence"}, now=NOW) == []
    assert draft.current_page == "purpose"
    # save, resume from plain data (through JSON)
    resumed = Draft.from_dict(json.loads(json.dumps(draft.to_dict())))
    assert resumed == draft
    for page, values in (
        ("purpose", {"purpose": "employment"}),
        ("contact", {"phone": "13800138000"}),
        ("declaration", {"declaration": True}),
    ):
        assert save_page(NCR, resumed, page, values, now=NOW) == []
    assert next_page(NCR, resumed.answers) is None
    final = submit(NCR, resumed, now=NOW)
    assert final["apply_at"] == "residence"
    assert resumed.submitted_at == NOW
    with pytest.raises(InvalidInput, match="already submitted"):
        save_page(NCR, resumed, "purpose", {"purpose": "visa"}, now=NOW)
    with pytest.raises(InvalidInput, match="has no questions"):
        save_page(NCR, start_draft(NCR, now=NOW), "where", {"purpose": "visa"}, now=NOW)


def test_submit_incomplete_lists_fields() -> None:
    draft = start_draft(NCR, now=NOW, citizen_record=CITIZEN)
    with pytest.raises(InvalidInput, match="incomplete: apply_at, purpose, declaration") as info:
        submit(NCR, draft, now=NOW)
    assert {e.field for e in info.value.extra["errors"]} == {"apply_at", "purpose", "declaration"}


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(InvalidInput, match="not a saved draft"):
        Draft.from_dict({"form_id": "x"})
    doc = start_draft(NCR, now=NOW).to_dict()
    doc["reference"] = "nope"
    with pytest.raises(InvalidInput):
        Draft.from_dict(doc)


def test_downloadable_copies() -> None:
    draft = start_draft(NCR, now=NOW, citizen_record=CITIZEN)
    draft.answers.update({"apply_at": "household", "purpose": "visa", "declaration": True})
    text = copy_text(NCR, draft, "zh")
    assert text.startswith("无犯罪记录证明申请\n申请编号: YW-2026-11-26-")
    assert "证明用途: 出国签证" in text
    doc = copy_json(NCR, draft)
    assert doc["answers"]["purpose"] == "visa"
    assert ["Purpose of the certificate", "Visa application"] in json.loads(json.dumps(doc))[
        "summary"
    ]["en"]


def test_foreigner_form_validates_its_fields() -> None:
    answers = {
        "family_name": "Martin",
        "given_name": "Claire",
        "nationality": "fra",
        "birthdate": "1990-02-30",
        "passport_number": "19AB12345",
        "employer_credit_code": "91310000MA1FL0XX1X",
        "contract_months": 0,
        "with_family": True,
    }
    answers["annual_salary_cny"] = "lots"
    by = {e.field: e for e in validate_answers(FOREIGNER, answers)}
    assert by["annual_salary_cny"].en == "Annual salary (CNY) must be a whole number"
    assert by["nationality"].en == "Enter a three-letter country code, like FRA"
    assert by["birthdate"].code == "format"
    assert by["contract_months"].en == "Contract length in months must be 1 or more"
    assert by["family_count"].code == "required"
    assert "passport_number" not in by


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["pages"][0]["questions"][0].update(schema={"type": "strin"}), "bad schema"),
        (lambda d: d["pages"][0]["questions"][0].update(prefill_from="salary"), "prefill_from"),
        (
            lambda d: d["pages"][1]["questions"].append(
                copy.deepcopy(d["pages"][0]["questions"][0])
            ),
            "defined twice",
        ),
        (
            lambda d: d["pages"][0].update(show_if={"question": "purpose", "equals": "x"}),
            "later question",
        ),
        (lambda d: d["pages"][2]["questions"][0]["options"].pop("visa"), "options do not match"),
        (lambda d: d["pages"][0]["questions"][0]["label"].pop("en"), "'en' is a required property"),
        (lambda d: d.update(pages=[]), "pages"),
    ],
)
def test_bad_definitions(mutate: Any, message: str) -> None:
    doc = json.loads((FORMS / "no-criminal-record.json").read_text("utf-8"))
    mutate(doc)
    with pytest.raises(InvalidInput, match=message):
        parse_definition(doc)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_definition("nothing-here")
    with pytest.raises(InvalidInput):
        load_definition("../etc")
    (tmp_path / "x.json").write_text("{", "utf-8")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        load_definition("x", folder=tmp_path)


def test_resident_id_checksum() -> None:
    assert is_resident_id("11010519491231002X")  # the GB 11643 example number
    assert not is_resident_id("110105194912310021")
    assert not is_resident_id("11010519491331002X")  # month 13


def test_reference_numbers() -> None:
    ref = new_reference(date(2026, 11, 26))
    assert len(ref) == len("YW-2026-11-26-") + 6
    assert all(c in CROCKFORD for c in ref[-6:])
    assert parse_reference(" yw-2026-11-26-abcdlo ") == "YW-2026-11-26-ABCD10"
    with pytest.raises(InvalidInput):
        parse_reference("YW-2026-02-30-ABCDEF")
    with pytest.raises(InvalidInput):
        parse_reference("YW-2026-11-26-ABCDEU")  # U is not Crockford
    assert len({new_reference(date(2026, 11, 26)) for _ in range(200)}) == 200


@settings(max_examples=200)
@given(token=st.text(alphabet=CROCKFORD, min_size=6, max_size=6), day=st.dates())
def test_reference_round_trip(token: str, day: date) -> None:
    if day.year < 1000:
        return
    ref = new_reference(day, token=token)
    assert parse_reference(ref) == ref
    assert parse_reference(ref.lower()) == ref


@settings(max_examples=100, deadline=None)
@given(
    answers=st.dictionaries(
        st.sampled_from(sorted(NCR.questions())),
        st.one_of(st.none(), st.text(max_size=30), st.booleans(), st.integers()),
    )
)
def test_validation_never_crashes_and_names_real_fields(answers: dict[str, Any]) -> None:
    errors = validate_answers(NCR, answers)
    for e in errors:
        assert e.field in NCR.questions()
        assert e.zh
        assert e.en
