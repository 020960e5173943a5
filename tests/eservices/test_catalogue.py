"""Service catalogue: the packaged YAML loads, validation errors are clear, metric."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from safecity.eservices.catalogue import (
    default_catalogue,
    load_catalogue,
    materials_cut,
    parse_catalogue,
)
from safecity.eservices.credentials import StatusList, issue_certificate
from safecity.eservices.credentials.keys import SigningKey
from safecity.eservices.credentials.profiles import CLAIMS
from safecity.platform.errors import InvalidInput, NotFound

CAT = default_catalogue()
RAW: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "src/safecity/eservices/catalogue.yaml").read_text("utf-8")
)
EXPECTED_ITEMS = {
    "household-proof",
    "no-criminal-record",
    "residence-permit-apply",
    "residence-permit-renew",
    "passport-ordinary",
    "hk-macao-endorsement",
    "driving-licence-renewal",
    "vehicle-reg-cert-replacement",
    "large-event-security-permit",
    "hotel-special-trade-permit",
    "foreigner-work-residence",
}


def _doc() -> dict[str, Any]:
    return copy.deepcopy(RAW)


def _item(doc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(i for i in doc["items"] if i["code"] == code)


def test_packaged_catalogue_has_the_issue_items() -> None:
    assert set(CAT.items) == EXPECTED_ITEMS
    for item in CAT.items.values():
        assert item.deadline.workdays > 0
        assert item.legal_basis
        assert item.name.zh
        assert item.name.en
        for mat in item.materials:
            if mat.source == "pulled":
                assert mat.pulled_from in CAT.sources
            else:
                assert mat.accept
        for cert in item.certificates:
            assert set(cert.claims) <= set(CLAIMS)
            assert cert.vct == f"https://safecity.example/vct/{cert.type}"
    assert CAT.get("no-criminal-record").type == "service"
    assert CAT.get("hotel-special-trade-permit").type == "approval"
    with pytest.raises(NotFound):
        CAT.get("nope")


def test_foreigner_item_is_single_window_and_issues_both() -> None:
    item = CAT.get("foreigner-work-residence")
    assert item.single_window
    assert item.delivery == "together"
    assert set(item.departments) == {"hr", "psb-exit-entry"}
    by_dept = {p.department: p for p in item.parts}
    assert by_dept["hr"].certificate == "foreign-work-permit"
    assert by_dept["psb-exit-entry"].certificate == "foreign-residence-permit"
    assert {c.issued_by for c in item.certificates} == {"hr", "psb-exit-entry"}
    # the residence part pulls the work permit the HR part issues
    wp = next(m for m in item.materials if m.code == "work-permit")
    assert (wp.source, wp.pulled_from, wp.department) == (
        "pulled",
        "foreign-work-permit",
        "psb-exit-entry",
    )


def test_pause_events_have_a_basis() -> None:
    assert CAT.pause_events["expert-review"].basis.startswith("中华人民共和国行政许可法")
    assert "supplement-requested" in CAT.get("hotel-special-trade-permit").pauses


def test_materials_cut_metric() -> None:
    cut = materials_cut(CAT)
    s = cut.items["residence-permit-renew"]
    assert (s.pulled, s.uploaded, s.share_pulled) == (4, 0, 1.0)
    s = cut.items["large-event-security-permit"]
    assert (s.pulled, s.uploaded) == (3, 4)
    assert cut.overall.pulled == sum(x.pulled for x in cut.items.values())
    assert cut.overall.total == sum(len(i.materials) for i in CAT.items.values())
    assert 0 < cut.overall.share_pulled < 1
    req = materials_cut(CAT, required_only=True)
    assert req.overall.total == sum(m.required for i in CAT.items.values() for m in i.materials)
    assert req.overall.total < cut.overall.total


def test_claims_for_feeds_issue_certificate() -> None:
    spec = CAT.get("no-criminal-record").certificates[0]
    values = {
        "family_name": "王",
        "given_name": "小明",
        "birthdate": "1990-05-01",
        "id_number": "11010519900501123X",
        "certificate_number": "WFZ-2026-000123",
        "result": "no_record",
        "query_scope": "mainland",
        "purpose": "employment",
        "ignored": "x",
    }
    claims = spec.claims_for(values)
    assert claims["attributes"] == {
        "result": "no_record",
        "query_scope": "mainland",
        "purpose": "employment",
    }
    assert "ignored" not in claims
    key = SigningKey.generate("Ed25519")
    cert = issue_certificate(
        certificate_id="c-1",
        key=key,
        issuer="https://safecity.example",
        vct=spec.vct,
        claims=claims,
        status_list=StatusList("https://safecity.example/status/1"),
        holder_keys=[SigningKey.generate("Ed25519").public],
        now=datetime(2026, 11, 26, tzinfo=UTC),
        valid_for=timedelta(days=spec.valid_days),
    )
    assert cert.claims["id_last4"] == "123X"
    del values["purpose"]
    with pytest.raises(InvalidInput, match="missing purpose"):
        spec.claims_for(values)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _item(d, "household-proof")["materials"][0].update(source="fax"), "source"),
        (
            lambda d: _item(d, "household-proof")["materials"][0].update({"from": "ufo-register"}),
            "unknown material source 'ufo-register'",
        ),
        (
            lambda d: d["items"].append(copy.deepcopy(d["items"][0])),
            "duplicate item code 'household-proof'",
        ),
        (
            lambda d: _item(d, "passport-ordinary")["deadline"].update(workdays=0),
            "positive whole number",
        ),
        (
            lambda d: _item(d, "passport-ordinary")["deadline"].update(workdays=-3),
            "deadline.workdays",
        ),
        (
            lambda d: _item(d, "foreigner-work-residence").update(departments=["hr"]),
            "single-window item must name at least two departments",
        ),
        (
            lambda d: _item(d, "no-criminal-record").update(departments=["hr", "psb-exit-entry"]),
            "must be marked single_window",
        ),
        (
            lambda d: _item(d, "no-criminal-record")["certificates"][0]["claims"].append(
                "blood_type"
            ),
            "unknown claims ['blood_type']",
        ),
        (
            lambda d: _item(d, "household-proof")["materials"][2].update(accept=["text/html"]),
            "accept must list types",
        ),
        (
            lambda d: _item(d, "household-proof").update(pauses=["lunch-break"]),
            "unknown pause events",
        ),
        (
            lambda d: _item(d, "foreigner-work-residence")["parts"][0].update(deadline_workdays=30),
            "exceeds the item's deadline",
        ),
        (
            lambda d: _item(d, "foreigner-work-residence")["parts"].pop(),
            "one part per department",
        ),
        (
            lambda d: _item(d, "household-proof").update(departments=["mars-office"]),
            "unknown departments",
        ),
    ],
)
def test_validation_errors(mutate: Any, message: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_catalogue(doc)


def test_error_names_the_item() -> None:
    doc = _doc()
    _item(doc, "passport-ordinary")["deadline"]["workdays"] = 0
    with pytest.raises(InvalidInput) as info:
        parse_catalogue(doc)
    assert info.value.detail.startswith("catalogue item passport-ordinary:")


def test_folder_of_yaml_files(tmp_path: Path) -> None:
    doc = _doc()
    items = doc.pop("items")
    (tmp_path / "00-registry.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    (tmp_path / "10-items.yaml").write_text(
        yaml.safe_dump({"items": items[:5]}, allow_unicode=True), "utf-8"
    )
    (tmp_path / "20-items.yaml").write_text(
        yaml.safe_dump({"items": items[5:]}, allow_unicode=True), "utf-8"
    )
    assert set(load_catalogue(tmp_path).items) == EXPECTED_ITEMS
    (tmp_path / "30-dupe.yaml").write_text(
        yaml.safe_dump({"items": items[:1]}, allow_unicode=True), "utf-8"
    )
    with pytest.raises(InvalidInput, match="duplicate item code"):
        load_catalogue(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: [unclosed", "utf-8")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_catalogue(bad)
