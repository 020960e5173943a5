"""Every catalogue certificate type through the registry: each profile it satisfies
gives a QR of at most 400 characters that verifies, and the default QR and the PDF work
(organisation permits included); status changes emit outbox events without personal data."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from safecity.eservices import events, registry, verification
from safecity.eservices.catalogue import CertificateSpec
from safecity.eservices.credentials import PROFILES, VerdictStatus
from safecity.eservices.credentials.cwt_qr import MAX_CHARS
from safecity.platform.events import validate
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.eservices.cert_samples import PERSON, claims_for, specs
from tests.eservices.registry_fixtures import NOW, People, people, principal

__all__ = ["people"]

LATER = NOW + timedelta(seconds=30)


def _issue(runtime: Runtime, people: People, item: str, spec: CertificateSpec) -> str:
    with runtime.sessions.begin() as s:
        return registry.issue_for_application(
            session=s,
            principal=principal(s, people.officer),
            application_id=f"app-{spec.type}"[:32],
            item_code=item,
            certificate_type=spec.type,
            holder_user_id=people.citizen.user_id,
            claims=claims_for(spec),
            org_id=people.station_id,
            now=NOW,
        ).id


def test_every_type_and_profile_fits_400_characters_and_verifies(
    runtime: Runtime, people: People
) -> None:
    cache = verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)
    checked: list[tuple[str, str, int]] = []
    for item, spec in specs():
        cert_id = _issue(runtime, people, item, spec)
        with runtime.sessions.begin() as s:
            who = principal(s, people.citizen)
            claims = registry.get_certificate(
                session=s, principal=who, certificate_id=cert_id
            ).claims
            fitting = [p for p in PROFILES.values() if p.satisfied_by(claims)]
            assert fitting, spec.type
            texts = {
                p.name: registry.certificate_qr(
                    session=s, principal=who, certificate_id=cert_id, profile=p.name, now=NOW
                )
                for p in fitting
            }
            default = registry.certificate_qr(
                session=s, principal=who, certificate_id=cert_id, now=NOW
            )
            pdf = registry.certificate_pdf(
                session=s, principal=who, certificate_id=cert_id, now=NOW
            )
        assert pdf.startswith(b"%PDF-"), spec.type
        assert len(default) <= MAX_CHARS
        for name, text in texts.items():
            assert len(text) <= MAX_CHARS, (spec.type, name, len(text))
            verdict = verification.verify_text(text, cache=cache, profile=name, now=LATER)
            assert verdict.status is VerdictStatus.VALID, (spec.type, name, verdict.reason)
            assert verdict.vct == spec.vct
            for claim in PROFILES[name].required:
                assert claim in verdict.claims, (spec.type, name, claim)
            checked.append((spec.type, name, len(text)))
        if "family_name" not in spec.claims:  # an organisation permit
            verdict = verification.verify_text(default, cache=cache, now=LATER)
            assert verdict.valid
            org = verdict.claims["attributes"]
            assert org.get("organiser") or org.get("business_name")
            assert "legal_representative" not in org  # the permit check names no person
            until = (NOW + timedelta(days=spec.valid_days)).isoformat()
            assert verdict.claims["valid_until"] == until.replace("+00:00", "Z")
            assert verdict.claims["certificate_number"]
    assert len(checked) >= 30
    assert {t for t, _, _ in checked} == {s.type for _, s in specs()}


def _events(runtime: Runtime) -> list[OutboxEvent]:
    with runtime.sessions() as s:
        return list(
            s.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.type.like("eservices.certificate.%"))
                .order_by(OutboxEvent.seq)
            ).all()
        )


def test_status_changes_emit_events_without_personal_data(runtime: Runtime, people: People) -> None:
    item, spec = next((i, s) for i, s in specs() if s.type == "no-criminal-record-certificate")
    cert_id = _issue(runtime, people, item, spec)
    assert _events(runtime) == []  # issuing is announced by the application workflow
    with runtime.sessions.begin() as s:
        boss = principal(s, people.supervisor)
        registry.suspend(session=s, principal=boss, certificate_id=cert_id, reason="王 is checked")
        registry.reinstate(session=s, principal=boss, certificate_id=cert_id)
        new = registry.reissue(
            session=s,
            principal=boss,
            certificate_id=cert_id,
            changes={"purpose": "出国"},
            reason="purpose corrected for 王",
            now=NOW,
        )
        registry.revoke(
            session=s,
            principal=boss,
            certificate_id=new.id,
            reason="holder asked",
            code="holder_request",
        )
    rows = _events(runtime)
    assert [r.type for r in rows] == [
        events.CERT_SUSPENDED,
        events.CERT_REINSTATED,
        events.CERT_REVOKED,  # the old generation, superseded
        events.CERT_REISSUED,
        events.CERT_REVOKED,
    ]
    for row in rows:
        validate(row.type, row.payload, row.schema_version)
        assert row.source == events.SOURCE
        assert row.org_id == people.station_id
        text = json.dumps(row.payload, ensure_ascii=False)
        for personal in (PERSON["family_name"], PERSON["id_number"], "王", "holder asked"):
            assert personal not in text
    assert rows[2].payload["reason_code"] == "superseded"
    assert rows[2].payload["certificate_id"] == cert_id
    assert rows[3].payload["replaces_id"] == cert_id
    assert rows[3].payload["generation"] == 2
    assert rows[4].payload["reason_code"] == "holder_request"


def test_revoke_with_an_unknown_code_writes_nothing(runtime: Runtime, people: People) -> None:
    item, spec = specs()[0]
    cert_id = _issue(runtime, people, item, spec)
    from safecity.platform.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown reason code"), runtime.sessions.begin() as s:
        registry.revoke(
            session=s,
            principal=principal(s, people.supervisor),
            certificate_id=cert_id,
            reason="x",
            code="because",
        )
    assert _events(runtime) == []
