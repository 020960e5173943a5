"""Realistic (long-ish) claim values for every certificate type of the catalogue.

Used by the QR-size and PDF tests: each type's claims as :func:`issue_for_application`
receives them (the derived claims are added by the credential core).
"""

from __future__ import annotations

from typing import Any

from safecity.eservices.catalogue import CertificateSpec, default_catalogue

PERSON: dict[str, Any] = {
    "family_name": "欧阳",
    "given_name": "晓明",
    "birthdate": "1990-05-17",
    "id_number": "31010119900517123X",
    "address": "上海市黄浦区南京东路街道九江路200弄12号1203室",
}

ATTRIBUTES: dict[str, Any] = {
    # household-registration-proof
    "registration_status": "在册",
    "registered_since": "2008-09-01",
    # no-criminal-record-certificate
    "result": "未发现有犯罪记录",
    "query_scope": "全国公安机关违法犯罪人员信息系统",
    "purpose": "出国（境）留学",
    # residence permits
    "permit_city": "上海市",
    "first_issued": "2024-03-15",
    "endorsed_until": "2027-03-14",
    # exit-entry
    "document_number": "E12345678",
    "valid_until": "2036-11-25",
    "region": "HK",
    "endorsement_type": "individual-tour",
    "entries": "1y-multiple",
    # vehicles and drivers
    "licence_class": "C1",
    "valid_from": "2026-11-26",
    "plate_number": "沪A·D12345",
    "vin_last6": "123456",
    # security permits (organisations)
    "organiser": "上海示例文化传播有限公司",
    "event_name": "2026跨年音乐会",
    "venue": "上海示例体育馆",
    "event_start": "2026-12-31",
    "event_end": "2027-01-01",
    "max_attendance": 18000,
    "business_name": "上海示例精品酒店有限公司",
    "premises_address": "上海市黄浦区九江路200号",
    "legal_representative": "李保卫",
    "rooms": 148,
    # foreigners
    "nationality": "DEU",
    "passport_number": "C01X00T47",
    "employer": "Example Engineering (Shanghai) Co., Ltd.",
    "position": "Senior Software Engineer",
    "residence_purpose": "work",
}


def specs() -> list[tuple[str, CertificateSpec]]:
    """(item code, certificate spec) of every certificate type the catalogue outputs."""
    cat = default_catalogue()
    return [(item.code, spec) for item in cat.items.values() for spec in item.certificates]


def claims_for(spec: CertificateSpec) -> dict[str, Any]:
    """The claims of one certificate of ``spec`` (no certificate_number: the registry
    numbers it)."""
    out: dict[str, Any] = {
        c: PERSON[c] for c in spec.claims if c in PERSON and c not in ("attributes",)
    }
    if spec.attributes:
        out["attributes"] = {a: ATTRIBUTES[a] for a in spec.attributes}
    return out
