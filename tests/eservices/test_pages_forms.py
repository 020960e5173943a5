"""The e-service pages' pure parts: question widgets from the JSON form definitions,
reading a posted page back, the SLA colour of the staff queue, the sign-in redirect."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest
from starlette.datastructures import FormData

from safecity.eservices import forms
from safecity.eservices.catalogue import Text
from safecity.eservices.pages_auth import safe_services_next
from safecity.eservices.pages_console import sla_of
from safecity.eservices.pages_forms import local_time, parse_page, visible_pages, widget_for

FOREIGNER = forms.load_definition("foreigner-work-residence")
NCR = forms.load_definition("no-criminal-record")
HOUSEHOLD = forms.load_definition("household-proof")


def question(definition: forms.FormDefinition, name: str) -> forms.Question:
    return definition.questions()[name]


@pytest.mark.parametrize(
    ("definition", "name", "kind", "input_type", "inputmode"),
    [
        (FOREIGNER, "birthdate", "date", "date", None),
        (FOREIGNER, "contract_months", "number", "text", "numeric"),
        (FOREIGNER, "permit_category", "radios", "text", None),
        (FOREIGNER, "with_family", "yesno", "text", None),
        (FOREIGNER, "declaration", "checkbox", "text", None),
        (FOREIGNER, "phone", "text", "tel", "numeric"),
        (FOREIGNER, "email", "text", "email", None),
        (FOREIGNER, "residence_address", "textarea", "text", None),
        (NCR, "full_name", "text", "text", None),
        (NCR, "id_number", "text", "text", None),
    ],
)
def test_widgets_follow_the_question_schema(
    definition: forms.FormDefinition,
    name: str,
    kind: str,
    input_type: str,
    inputmode: str | None,
) -> None:
    w = widget_for(question(definition, name), "zh", None)
    assert (w.kind, w.input_type, w.inputmode) == (kind, input_type, inputmode)


def test_labels_options_and_conditions_come_from_the_definition() -> None:
    purpose = widget_for(question(NCR, "purpose"), "en", "visa")
    assert purpose.label == "Purpose of the certificate"
    assert ("visa", "Visa application") in purpose.options
    assert purpose.is_selected("visa")
    assert not purpose.is_selected("other")
    detail = widget_for(question(NCR, "purpose_detail"), "zh", None)
    assert detail.show_if == ("purpose", "other")
    family = widget_for(question(FOREIGNER, "family_count"), "zh", None)
    assert family.show_if == ("with_family", "true")  # a boolean condition, as posted
    yes = widget_for(question(FOREIGNER, "with_family"), "zh", True)
    assert yes.is_selected("true")
    assert widget_for(question(NCR, "id_number"), "zh", None).maxlength == 18
    recipient = widget_for(question(NCR, "recipient_org"), "zh", None)
    assert not recipient.required


def test_long_enums_are_a_select_and_lists_are_checkboxes() -> None:
    many = forms.Question(
        name="district",
        label=Text("区", "District"),
        schema={"type": "string", "enum": [f"d{i}" for i in range(8)]},
    )
    assert widget_for(many, "en", None).kind == "select"
    several = forms.Question(
        name="langs",
        label=Text("语言", "Languages"),
        schema={"type": "array", "items": {"type": "string", "enum": ["zh", "en", "fr"]}},
    )
    w = widget_for(several, "en", ["zh", "fr"])
    assert w.kind == "checkboxes"
    assert w.is_selected("fr")
    assert not w.is_selected("en")
    assert w.anchor == "q-langs-0"  # the error summary links to the first box


def test_a_posted_page_is_read_back_typed() -> None:
    job = FOREIGNER.page("job")
    form = FormData(
        [
            ("position", "  Engineer "),
            ("start_date", "2026-12-01"),
            ("contract_months", "24"),
            ("annual_salary_cny", "lots"),
        ]
    )
    assert parse_page(job, form, form.getlist) == {
        "position": "Engineer",
        "start_date": "2026-12-01",
        "contract_months": 24,
        "annual_salary_cny": "lots",  # left as typed: validation explains the problem
    }
    family = FOREIGNER.page("family")
    posted = FormData([("with_family", "false"), ("family_count", "")])
    assert parse_page(family, posted, posted.getlist) == {
        "with_family": False,
        "family_count": None,
    }
    unticked = FormData([])
    declaration = FOREIGNER.page("declaration")
    assert parse_page(declaration, unticked, unticked.getlist) == {"declaration": None}
    applicant = NCR.page("applicant")
    typed = FormData([("full_name", "王小明"), ("id_number", "11010519491231002x")])
    assert parse_page(applicant, typed, typed.getlist)["id_number"] == "11010519491231002X"
    errors = forms.validate_answers(
        NCR, parse_page(applicant, typed, typed.getlist), page_id="applicant"
    )
    assert errors == []


def test_conditional_pages_appear_only_when_their_condition_holds() -> None:
    plain = [p.id for p in visible_pages(HOUSEHOLD, {"proof_type": "in-household"})]
    kin = [p.id for p in visible_pages(HOUSEHOLD, {"proof_type": "kinship"})]
    assert "relative" not in plain
    assert "relative" in kin


TODAY = date(2026, 11, 26)  # a Thursday


def app(state: str = "review", due: date | None = None, paused: bool = False) -> object:
    return SimpleNamespace(state=state, due_on=due, paused=paused)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (app(due=date(2026, 11, 25)), ("overdue", -1)),
        (app(due=TODAY), ("soon", 0)),
        (app(due=date(2026, 11, 27)), ("soon", 1)),
        (app(due=date(2026, 11, 30)), ("ok", 2)),  # the weekend does not count
        (app(due=date(2026, 11, 20), paused=True), ("paused", -4)),
        (app(state="issued", due=date(2026, 11, 20)), ("none", None)),
        (app(state="submitted"), ("none", None)),
    ],
)
def test_sla_colours(case: object, expected: tuple[str, int | None]) -> None:
    assert sla_of(case, TODAY) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/services/applications", "/services/applications"),
        ("/services/no-criminal-record?x=1", "/services/no-criminal-record?x=1"),
        ("/services", "/services"),
        ("//evil.example/services", "/services"),
        ("https://evil.example/services", "/services"),
        ("/console/admin", "/services"),
        ("/servicesX", "/services"),
        ("/services/../console", "/services"),
        ("/services/login", "/services"),
        ("/services\\evil", "/services"),
        ("", "/services"),
    ],
)
def test_sign_in_goes_back_only_to_a_services_page(value: str, expected: str) -> None:
    assert safe_services_next(value) == expected


def test_times_show_in_beijing() -> None:
    from datetime import UTC, datetime

    assert local_time(datetime(2026, 11, 26, 23, 30, tzinfo=UTC)) == "2026-11-27 07:30"
    assert local_time(datetime(2026, 11, 26, 1, 0)) == "2026-11-26 09:00"  # naive = UTC
    assert local_time(None) == "–"
