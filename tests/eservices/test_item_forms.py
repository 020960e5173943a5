"""The forms of the HK/Macao endorsement, the large-event security permit and the hotel
special-trade permit: each collects its certificate's fields, so an application is
filled, submitted, approved and issued with them; bad answers give zh/en field errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from safecity.eservices import citizens, registry, service
from safecity.eservices.catalogue import default_catalogue
from safecity.eservices.forms import (
    check_answers,
    form_for_item,
    parse_definition,
    validate_answers,
)
from safecity.platform.runtime import Runtime
from tests.conftest import Actor, City
from tests.eservices.applications_support import (
    PDF_BYTES,
    at,
    dept_org,
    fill,
    people,
    png_bytes,
    principal,
)

pytestmark = pytest.mark.db

HK_ANSWERS: dict[str, dict[str, Any]] = {
    "region": {"region": "HK"},
    "endorsement": {"endorsement_type": "family-visit", "entries": "3m-single"},
    "relative": {"relative_name": "陈大文", "relationship": "parent"},
    "travel": {"travel_date": "2026-12-20"},
    "declaration": {"declaration": True},
}
EVENT_ANSWERS: dict[str, dict[str, Any]] = {
    "organiser": {
        "organiser": "上海示例文化传播有限公司",
        "organiser_credit_code": "91310000MA1FL0000X",
    },
    "event": {"event_name": "2026跨年音乐会", "event_type": "performance"},
    "venue": {"venue": "示例体育馆", "venue_address": "上海市徐汇区漕溪北路1111号"},
    "dates": {"event_start": "2026-12-31", "event_end": "2026-12-31", "sessions": 1},
    "attendance": {"max_attendance": 8000, "ticketed": True, "security_staff": 300},
    "declaration": {"declaration": True},
}
HOTEL_ANSWERS: dict[str, dict[str, Any]] = {
    "business": {
        "business_name": "示例精品酒店",
        "business_credit_code": "91310000MA1FL0000X",
        "hotel_type": "hotel",
    },
    "premises": {"premises_address": "上海市黄浦区九江路200号", "premises_tenure": "leased"},
    "capacity": {"rooms": 48, "beds": 80},
    "security": {
        "security_manager": "李保卫",
        "security_staff": 4,
        "guest_registration_system": True,
    },
    "declaration": {"declaration": True},
}
CASES: dict[str, tuple[str, dict[str, dict[str, Any]], dict[str, Any]]] = {
    "hk-macao-endorsement": (
        "psb-exit-entry",
        HK_ANSWERS,
        {"region": "HK", "endorsement_type": "family-visit", "entries": "3m-single"},
    ),
    "large-event-security-permit": (
        "psb-public-order",
        EVENT_ANSWERS,
        {
            "organiser": "上海示例文化传播有限公司",
            "event_name": "2026跨年音乐会",
            "venue": "示例体育馆",
            "event_start": "2026-12-31",
            "event_end": "2026-12-31",
            "max_attendance": 8000,
        },
    ),
    "hotel-special-trade-permit": (
        "psb-public-order",
        HOTEL_ANSWERS,
        {
            "business_name": "示例精品酒店",
            "premises_address": "上海市黄浦区九江路200号",
            "legal_representative": "王小明",  # prefilled from the registry
            "rooms": 48,
        },
    ),
}
DERIVED = {"valid_until", "valid_from", "endorsed_until"}  # computed at issue


@pytest.mark.parametrize("code", sorted(CASES))
def test_the_form_is_valid_and_asks_for_every_certificate_field(code: str) -> None:
    item = default_catalogue().get(code)
    definition = form_for_item(item)
    assert definition.id == code
    assert definition.items == (code,)
    raw = resources.files("safecity.eservices").joinpath("forms", f"{code}.json").read_text()
    assert parse_definition(json.loads(raw)) == definition
    asked = set(definition.questions())
    for spec in item.certificates:
        assert set(spec.attributes) - DERIVED <= asked
    assert {"phone", "declaration"} <= asked
    # the sample answers plus what the registry prefills pass, and read back in both languages
    prefilled = {
        "full_name": "王小明",
        "legal_representative": "王小明",
        "id_number": citizens.resident_profile()["id_number"],
        "phone": "13912345678",
    }
    answers = {k: v for page in CASES[code][1].values() for k, v in page.items()}
    answers.update({k: v for k, v in prefilled.items() if k in asked})
    assert validate_answers(definition, answers) == []
    chosen = [q.options[answers[q.name]] for q in definition.visible(answers) if q.options]
    assert chosen
    for lang in ("zh", "en"):
        shown = [value for _, value in check_answers(definition, answers, lang)]
        assert all(getattr(option, lang) in shown for option in chosen)


@pytest.mark.parametrize("code", sorted(CASES))
def test_fill_submit_approve_and_issue(
    code: str, runtime: Runtime, city: City, make_actor: Callable[..., Actor]
) -> None:
    department, answers, expected = CASES[code]
    folks = people(runtime, city, make_actor)
    staff = make_actor("department_staff", dept_org(runtime, department))
    now = at("2026-11-02")
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        app = service.start_application(session=s, principal=who, item_code=code, now=now)
        draft = service.get_application(session=s, principal=who, application_id=app.id)
        assert draft.form_id == code
        assert draft.answers["phone"] == "13912345678"  # prefilled from the registry
        fill(s, who, app.id, answers, now)
        detail = service.get_application(session=s, principal=who, application_id=app.id)
        for m in detail.materials:
            if m.required and not m.provided:
                pdf = "application/pdf" in m.accept
                service.add_attachment(
                    session=s,
                    principal=who,
                    application_id=app.id,
                    material_code=m.code,
                    filename="scan.pdf" if pdf else "scan.png",
                    content_type="application/pdf" if pdf else "image/png",
                    data=PDF_BYTES if pdf else png_bytes(),
                    now=now,
                )
        done = service.submit(
            session=s,
            principal=who,
            application_id=app.id,
            idempotency_key=f"key-{code}",
            now=now,
        )
        assert done.state == "submitted"
        assert done.reference
    for action, hour in (("accept", 3), ("approve", 5), ("issue", 6)):
        with runtime.sessions.begin() as s:
            moved = service.act(
                session=s,
                principal=principal(s, staff),
                application_id=app.id,
                action=action,
                now=at("2026-11-03", hour),
            )
    assert moved.state == "issued"
    assert moved.certificate_id is not None
    with runtime.sessions.begin() as s:
        cert = registry.get_certificate(
            session=s, principal=principal(s, folks.citizen), certificate_id=moved.certificate_id
        )
        assert cert.certificate_type == default_catalogue().get(code).certificates[0].type
        attributes = cert.claims["attributes"]
        assert {k: attributes[k] for k in expected} == expected
        assert cert.claims["certificate_number"] == done.reference


def test_bad_answers_give_field_errors_in_both_languages(
    runtime: Runtime, city: City, make_actor: Callable[..., Actor]
) -> None:
    folks = people(runtime, city, make_actor)
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        event = service.start_application(
            session=s, principal=who, item_code="large-event-security-permit", now=at("2026-11-02")
        )
        with pytest.raises(service.FormInvalid) as small:
            service.save_page(
                session=s,
                principal=who,
                application_id=event.id,
                page_id="attendance",
                answers={"max_attendance": 500, "ticketed": False, "security_staff": 10},
            )
        (err,) = small.value.field_errors
        assert (err.field, err.code) == ("max_attendance", "minimum")
        assert "1000" in err.zh
        assert "1,000" in err.en
        with pytest.raises(service.FormInvalid) as code:
            service.save_page(
                session=s,
                principal=who,
                application_id=event.id,
                page_id="organiser",
                answers={"organiser": "示例公司", "organiser_credit_code": "12345"},
            )
        assert [(e.field, e.code) for e in code.value.field_errors] == [
            ("organiser_credit_code", "pattern")
        ]
        assert "统一社会信用代码" in code.value.field_errors[0].zh
        hotel = service.start_application(
            session=s, principal=who, item_code="hotel-special-trade-permit", now=at("2026-11-02")
        )
        with pytest.raises(service.FormInvalid) as rooms:
            service.save_page(
                session=s,
                principal=who,
                application_id=hotel.id,
                page_id="capacity",
                answers={"rooms": "many", "beds": 0},
            )
        assert {(e.field, e.code) for e in rooms.value.field_errors} == {
            ("rooms", "type"),
            ("beds", "minimum"),
        }


def test_the_relative_page_is_asked_only_for_a_family_visit(
    runtime: Runtime, city: City, make_actor: Callable[..., Actor]
) -> None:
    folks = people(runtime, city, make_actor)
    now = at("2026-11-02")
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        visit = service.start_application(
            session=s, principal=who, item_code="hk-macao-endorsement", now=now
        )
        without_relative = {k: v for k, v in HK_ANSWERS.items() if k != "relative"}
        fill(s, who, visit.id, without_relative, now)
        with pytest.raises(service.FormInvalid) as missing:
            service.submit(
                session=s, principal=who, application_id=visit.id, idempotency_key="key-hk-0001"
            )
        assert {e.field for e in missing.value.field_errors} == {"relative_name", "relationship"}
        tour = service.start_application(
            session=s, principal=who, item_code="hk-macao-endorsement", now=now
        )
        fill(
            s,
            who,
            tour.id,
            {
                **without_relative,
                "endorsement": {"endorsement_type": "individual-tour", "entries": "1y-single"},
            },
            now,
        )
        sent = service.submit(
            session=s, principal=who, application_id=tour.id, idempotency_key="key-hk-0002"
        )
        assert sent.state == "submitted"
