"""The citizen registry stand-in: population / household record and e-licences per user.

A real deployment reads the population register and the e-licence library (电子证照库)
through the city's data-sharing exchange; SafeCity keeps a small table with the same
shape (:class:`~safecity.eservices.models.CitizenRecord`) so that forms are prefilled and
materials marked "pulled" in the catalogue are attached without an upload. Every read is
personal data: :func:`read_record` checks who asks and writes an audit record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices.models import CitizenRecord
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.security import audit
from safecity.security.rbac import Principal

FIELDS: tuple[str, ...] = (
    "name",
    "family_name",
    "given_name",
    "id_number",
    "birthdate",
    "sex",
    "household_address",
    "residence_address",
    "phone",
    "email",
    "nationality",
    "passport_number",
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
DEMO_USERNAME = "citizen"


def resident_id(area: str, born: date, serial: str) -> str:
    """An 18-character resident ID number with its ISO 7064 check digit."""
    body = f"{area}{born:%Y%m%d}{serial}"
    if len(body) != 17 or not body.isdigit():
        raise InvalidInput("a resident ID needs a 6-digit area, a birth date and 3 digits")
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + _ID_CHECK[total % 11]


def get_record(session: Session, user_id: str) -> CitizenRecord | None:
    """The record of ``user_id`` (no audit: callers audit the read they make)."""
    return session.get(CitizenRecord, user_id)


def as_prefill(record: CitizenRecord | None) -> dict[str, Any]:
    """The record as the ``citizen_record`` mapping :func:`forms.prefill` takes."""
    if record is None:
        return {}
    return {f: getattr(record, f) for f in FIELDS if getattr(record, f)}


def read_record(
    *, session: Session, principal: Principal, user_id: str, purpose: str
) -> dict[str, Any]:
    """A citizen's record for ``purpose``: the citizen's own, or staff with
    ``eservices:read``; audited either way (404 when there is none)."""
    if principal.id != user_id and not principal.can("eservices:read"):
        raise NotFound("citizen record not found")
    record = get_record(session, user_id)
    if record is None:
        raise NotFound("citizen record not found")
    audit.record(
        session,
        principal=principal,
        action="eservices.citizen.read",
        target_type="eservice_citizen",
        target_id=user_id,
        purpose=purpose,
    )
    return {**as_prefill(record), "licences": dict(record.licences)}


def licence(record: CitizenRecord | None, source: str) -> Mapping[str, Any] | None:
    """The e-licence / record ``source`` of the citizen, if the registry has it."""
    if record is None:
        return None
    value = record.licences.get(source)
    return value if isinstance(value, Mapping) else None


def upsert(
    session: Session,
    *,
    user_id: str,
    actor: Principal = audit.SYSTEM,
    licences: Mapping[str, Mapping[str, Any]] | None = None,
    **fields: str,
) -> CitizenRecord:
    """Create or update a record (registry sync, demo seeding); audited."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown citizen fields: {', '.join(unknown)}")
    record = get_record(session, user_id)
    if record is None:
        record = CitizenRecord(user_id=user_id, name=fields.get("name", ""), licences={})
        session.add(record)
    for key, value in fields.items():
        setattr(record, key, value)
    if not record.name and record.family_name:
        record.name = f"{record.family_name}{record.given_name}"
    if licences is not None:
        record.licences = {k: dict(v) for k, v in licences.items()}
    record.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal=actor,
        action="eservices.citizen.upsert",
        target_type="eservice_citizen",
        target_id=user_id,
        detail={"licences": sorted(record.licences)},
    )
    return record


def resident_profile(n: int = 0) -> dict[str, Any]:
    """A fictitious Shanghai resident (``n`` varies the serial), with e-licences."""
    born = date(1990, 5, 17)
    idn = resident_id("310101", born, f"{(123 + n) % 1000:03d}")
    return {
        "name": "王小明" if n == 0 else f"王明{n}",
        "family_name": "王",
        "given_name": "小明" if n == 0 else f"明{n}",
        "id_number": idn,
        "birthdate": born.isoformat(),
        "sex": "M",
        "household_address": "上海市黄浦区南京东路100号",
        "residence_address": "上海市黄浦区南京东路100号",
        "phone": f"139{(12345678 + n) % 100000000:08d}",
        "nationality": "CHN",
        "licences": {
            "resident-id": {"number": idn, "valid_until": "2035-05-17"},
            "household-register": {
                "registration_status": "registered",
                "registered_since": "1990-05-30",
                "address": "上海市黄浦区南京东路100号",
            },
            "residence-permit": {"permit_city": "上海", "first_issued": "2019-03-01"},
            "social-insurance": {"months": 84},
            "housing-lease-filing": {"filing": "HP-2024-000123"},
            "driving-licence": {"licence_class": "C1", "valid_from": "2016-07-01"},
            "driver-medical": {"fit": True, "examined_on": "2026-10-12"},
            "vehicle-register": {"plate_number": "沪A12345", "vin_last6": "123456"},
            "exit-entry-photo": {"receipt": "PH-2026-778899"},
            "hk-macao-permit": {"document_number": "C12345678"},
            "passport-record": {"document_number": "E12345678"},
        },
    }


def foreigner_profile(n: int = 0) -> dict[str, Any]:
    """A fictitious foreign professional with the records the single window pulls."""
    return {
        "name": f"Jane Doe {n}" if n else "Jane Doe",
        "family_name": "Doe",
        "given_name": f"Jane{n}" if n else "Jane",
        "birthdate": "1988-02-03",
        "sex": "F",
        "residence_address": "上海市浦东新区世纪大道200号",
        "phone": f"138{(22345678 + n) % 100000000:08d}",
        "nationality": "GBR",
        "passport_number": f"5{(12345678 + n) % 100000000:08d}",
        "licences": {
            "foreigner-entry-record": {"entered_on": "2026-10-01", "port": "PVG"},
            "foreigner-accommodation": {"registered_on": "2026-10-02"},
            "business-licence": {"credit_code": "91310000MA1FL0000X", "name": "Example Ltd"},
            "travel-health-exam": {"examined_on": "2026-10-08", "fit": True},
        },
    }


def seed_profile(
    session: Session, *, user_id: str, profile: Mapping[str, Any], actor: Principal = audit.SYSTEM
) -> CitizenRecord:
    fields = {k: str(v) for k, v in profile.items() if k in FIELDS}
    return upsert(session, user_id=user_id, actor=actor, licences=profile["licences"], **fields)


def seed_demo_citizen(session: Session, *, username: str = DEMO_USERNAME) -> CitizenRecord | None:
    """Give the demo citizen user a registry record (idempotent); None without the user."""
    from safecity.security.models import User

    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        return None
    return seed_profile(session, user_id=user.id, profile=resident_profile())
