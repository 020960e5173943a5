"""Issuing an application's e-certificate through the registry.

:func:`certificate_values` gathers the flat values a certificate spec picks its claims
from (the registry record and e-licences, the answers, the reference as certificate
number, the validity); :func:`issue_certificate` calls
:func:`safecity.eservices.registry.issue_for_application` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from safecity.eservices import citizens
from safecity.eservices.access import item_of
from safecity.eservices.catalogue import CertificateSpec
from safecity.eservices.clock import elapsed_workdays
from safecity.eservices.models import Application, CitizenRecord
from safecity.eservices.workdays import local_date
from safecity.platform.errors import IllegalTransition, ServiceUnavailable
from safecity.security.rbac import Principal

ATTRIBUTE_DEFAULTS: dict[str, str] = {
    "result": "no-criminal-record",
    "query_scope": "PRC",
    "residence_purpose": "work",
    "registration_status": "registered",
}


def certificate_values(
    app: Application, record: CitizenRecord | None, spec: CertificateSpec, issued_on: date
) -> dict[str, Any]:
    """The flat values :meth:`CertificateSpec.claims_for` picks claims from: the registry
    record and e-licences, the answers, the reference as certificate number."""
    values: dict[str, Any] = dict(ATTRIBUTE_DEFAULTS)
    if record is not None:
        for data in record.licences.values():
            if isinstance(data, Mapping):
                values.update({k: v for k, v in data.items() if isinstance(v, str | int)})
        values.update(citizens.as_prefill(record))
        values["address"] = record.household_address or record.residence_address
        values["permit_city"] = values.get("permit_city") or "上海"
    answers = dict(app.answers or {})
    values.update({k: v for k, v in answers.items() if v not in (None, "")})
    if answers.get("employer_name"):
        values["employer"] = answers["employer_name"]
    values["certificate_number"] = app.reference
    values["valid_until"] = (issued_on + timedelta(days=spec.valid_days)).isoformat()
    values.setdefault("endorsed_until", values["valid_until"])
    values.setdefault("valid_from", issued_on.isoformat())
    return values


def issue_certificate(
    session: Session, app: Application, actor: Principal, moment: datetime
) -> None:
    """Issue the application's e-certificate through the registry (same transaction)."""
    item = item_of(app)
    if app.certificate_type is None:
        raise IllegalTransition("this application outputs no certificate of its own")
    spec = item.certificate(app.certificate_type)
    record = citizens.get_record(session, app.applicant_id)
    claims = spec.claims_for(certificate_values(app, record, spec, local_date(moment)))
    try:
        from safecity.eservices import registry
    except ImportError as exc:  # pragma: no cover - the registry ships with this domain
        raise ServiceUnavailable("the certificate registry is not available") from exc
    cert = registry.issue_for_application(
        session=session,
        principal=actor,
        application_id=app.id,
        item_code=app.item_code,
        holder_user_id=app.applicant_id,
        claims=claims,
        org_id=app.org_id,
        now=moment,
        certificate_type=app.certificate_type,
    )
    app.certificate_id = str(cert.id)
    app.issued_at = moment
    if app.finished_workdays is None:
        app.finished_workdays = elapsed_workdays(session, app, local_date(moment))
