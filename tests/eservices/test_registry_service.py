"""The certificate registry's service layer: issue, verify, revoke / suspend, keys, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from safecity.eservices import registry, verification
from safecity.eservices.credentials import SigningKey, Verdict, VerdictStatus, issue_qr
from safecity.eservices.credentials.cwt_qr import PREFIX
from safecity.eservices.credentials.status_list import MIN_SIZE, StatusList
from safecity.eservices.registry_models import Certificate, CertificateAction, CertStatusList
from safecity.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.eservices.registry_fixtures import CLAIMS, NOW, People, issue, people, principal

__all__ = ["people"]  # the fixture, imported for pytest

LATER = NOW + timedelta(seconds=30)


def _cache(runtime: Runtime) -> verification.VerifierCache:
    return verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)


def _qr(runtime: Runtime, people: People, cert_id: str, **kw: object) -> str:
    with runtime.sessions.begin() as s:
        return registry.certificate_qr(
            session=s,
            principal=principal(s, people.citizen),
            certificate_id=cert_id,
            now=kw.pop("now", NOW),  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )


def _verify(runtime: Runtime, text: str, **kw: object) -> Verdict:
    return verification.verify_text(text, cache=_cache(runtime), now=kw.pop("now", LATER), **kw)  # type: ignore[arg-type]


def _change(
    runtime: Runtime,
    people: People,
    action: str,
    cert_id: str,
    reason: str,
    **extra: object,
) -> None:
    with runtime.sessions.begin() as s:
        fn = getattr(registry, action)
        fn(
            session=s,
            principal=principal(s, people.supervisor),
            certificate_id=cert_id,
            reason=reason,
            **extra,
        )


def test_issue_persists_a_batch_on_random_indices_and_verifies(
    runtime: Runtime, people: People
) -> None:
    cert = issue(runtime, people)
    assert cert.status == "active"
    assert cert.copies == 3
    assert cert.expires_at == NOW + timedelta(days=90)
    with runtime.sessions() as s:
        row = s.get(Certificate, cert.id)
        lst = s.scalars(select(CertStatusList)).one()
        assert row is not None
        assert "王" not in row.claims_sealed
        assert "310101" not in row.copies_sealed
        assert lst.size >= MIN_SIZE
        assert lst.version == 2
        indices = row.status_indices
        assert len(set(indices)) == 3
        assert all(0 <= i < lst.size for i in indices)
        assert StatusList.from_state(lst.state).indices(cert.id) == indices
    qr = _qr(runtime, people, cert.id)
    assert qr.startswith(PREFIX)
    assert len(qr) <= 400
    verdict = _verify(runtime, qr)
    assert verdict.status is VerdictStatus.VALID
    assert verdict.claims == {"family_name": "王", "given_name": "小明", "id_last4": "1234"}
    assert verdict.as_of is not None


def test_issue_is_idempotent_per_application(runtime: Runtime, people: People) -> None:
    first = issue(runtime, people)
    again = issue(runtime, people)
    assert again.id == first.id
    with runtime.sessions() as s:
        assert len(s.scalars(select(Certificate)).all()) == 1


def test_bad_claims_issue_nothing(runtime: Runtime, people: People) -> None:
    with pytest.raises(InvalidInput, match="carries no address"):
        issue(runtime, people, claims={**CLAIMS, "address": "x"})
    with pytest.raises(InvalidInput, match="birthdate"):
        issue(runtime, people, claims={**CLAIMS, "birthdate": "17/05/1990"})
    with runtime.sessions() as s:
        assert s.scalars(select(Certificate)).all() == []
        assert s.scalars(select(CertStatusList)).all() == []


def test_a_citizen_cannot_issue(runtime: Runtime, people: People) -> None:
    with runtime.sessions.begin() as s, pytest.raises(PermissionDenied):
        registry.issue_for_application(
            session=s,
            principal=principal(s, people.citizen),
            application_id="x",
            item_code="no-criminal-record",
            holder_user_id=people.citizen.user_id,
            claims=CLAIMS,
            org_id=None,
        )


def test_revoke_gives_revoked_with_reason_for_every_copy(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    assert _verify(runtime, qr).valid
    _change(runtime, people, "revoke", cert.id, "record found on review", code="issued_in_error")
    verdict = _verify(runtime, qr)
    assert verdict.status is VerdictStatus.REVOKED
    # the published code, never the private free text (the verify API is public)
    assert verdict.reason_code == "issued_in_error"
    assert verdict.reason == "revoked by the issuer (issued_in_error)"
    with runtime.sessions() as s:
        sl = StatusList.from_state(s.scalars(select(CertStatusList)).one().state)
        row = s.get(Certificate, cert.id)
        assert row is not None
        assert row.state == "revoked"
        assert all(sl.status_at(i) == 1 for i in row.status_indices)
        actions = s.scalars(select(CertificateAction.action).order_by(CertificateAction.at)).all()
        assert actions == ["issue", "revoke"]
    with pytest.raises(Conflict):
        _qr(runtime, people, cert.id)
    with pytest.raises(IllegalTransition):
        _change(runtime, people, "revoke", cert.id, "again")


def test_suspend_and_reinstate(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    _change(runtime, people, "suspend", cert.id, "under review")
    verdict = _verify(runtime, qr)
    assert verdict.status is VerdictStatus.SUSPENDED
    assert verdict.reason == "suspended by the issuer"  # the free text stays private
    with runtime.sessions.begin() as s:
        back = registry.reinstate(
            session=s, principal=principal(s, people.supervisor), certificate_id=cert.id
        )
    assert back.status == "active"
    assert _verify(runtime, qr).valid


def test_expired_qr_and_expired_certificate(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    assert _verify(runtime, qr, now=NOW + timedelta(minutes=6)).status is VerdictStatus.EXPIRED
    with pytest.raises(Conflict, match="expired"):
        _qr(runtime, people, cert.id, now=NOW + timedelta(days=91))
    # an SD-JWT copy presented just before the certificate's end, checked just after
    end = cert.expires_at
    nonce = "n-" + "x" * 20
    with runtime.sessions.begin() as s:
        text = registry.present_certificate(
            session=s,
            principal=principal(s, people.citizen),
            certificate_id=cert.id,
            profile="hotel",
            audience="hotel-1",
            nonce=nonce,
            now=end - timedelta(minutes=1),
        )
    verdict = _verify(
        runtime, text, audience="hotel-1", nonce=nonce, now=end + timedelta(minutes=1)
    )
    assert verdict.status is VerdictStatus.EXPIRED


def test_tampered_qr_and_wrong_issuer_key_are_invalid(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    pos = len(qr) // 2
    tampered = qr[:pos] + ("A" if qr[pos] != "A" else "B") + qr[pos + 1 :]
    assert _verify(runtime, tampered).status is VerdictStatus.INVALID
    forged = issue_qr(
        key=SigningKey.generate("ES256"),
        issuer=registry.ISSUER,
        vct=cert.vct,
        profile="hotel",
        claims={"family_name": "王", "given_name": "小明", "id_last4": "1234"},
        now=NOW,
        status=(registry.STATUS_BASE + "/1", 5),
    )
    verdict = _verify(runtime, forged)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "unknown-key"
    assert verdict.claims == {}
    garbage = _verify(runtime, "hello")
    assert garbage.status is VerdictStatus.INVALID
    assert garbage.code == "malformed"


def test_rotated_key_still_verifies_old_certificates(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    old_qr = _qr(runtime, people, cert.id)
    key_dir = runtime.settings.effective_key_dir
    new_kid = registry.rotate_issuer_key(key_dir)
    assert new_kid != cert.kid
    assert _verify(runtime, old_qr).valid  # minted by the old key
    new_qr = _qr(runtime, people, cert.id)
    verdict = _verify(runtime, new_qr)
    assert verdict.valid
    assert verdict.kid == new_kid
    nonce = "nonce-rotated-1"
    with runtime.sessions.begin() as s:
        text = registry.present_certificate(
            session=s,
            principal=principal(s, people.citizen),
            certificate_id=cert.id,
            profile="hotel",
            audience="hotel-9",
            nonce=nonce,
            now=NOW,
        )
        jwks = registry.issuer_jwks(s)
    old = _verify(runtime, text, audience="hotel-9", nonce=nonce)
    assert old.valid
    assert old.kid == cert.kid
    assert {k["kid"] for k in jwks["keys"]} == {cert.kid, new_kid}


def test_undecodable_status_list_fails_closed(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    assert _verify(runtime, qr).valid
    with runtime.sessions.begin() as s:
        s.execute(
            update(CertStatusList).values(
                state={
                    "uri": registry.STATUS_BASE + "/1",
                    "size": MIN_SIZE,
                    "bits": 2,
                    "statuses": "not base64 zlib",
                    "batches": {},
                },
                version=CertStatusList.version + 1,
            )
        )
    _cache(runtime).refresh(force=True)
    verdict = _verify(runtime, qr)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "status-undecodable"


def test_replayed_presentation_is_refused(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    store = verification.ChallengeStore()
    nonce = store.issue("hotel-42", LATER)
    with runtime.sessions.begin() as s:
        text = registry.present_certificate(
            session=s,
            principal=principal(s, people.citizen),
            certificate_id=cert.id,
            profile="hotel",
            audience="hotel-42",
            nonce=nonce,
            now=LATER,
        )
    first = _verify(runtime, text, audience="hotel-42", nonce=nonce, challenges=store)
    assert first.valid
    assert first.claims["id_last4"] == "1234"
    assert "birthdate" not in first.claims  # only the hotel profile's claims
    again = _verify(runtime, text, audience="hotel-42", nonce=nonce, challenges=store)
    assert again.status is VerdictStatus.INVALID
    assert again.code == "wrong-nonce"
    # without a challenge store the replay guard still refuses the second use
    nonce2 = "self-chosen-nonce-1"
    with runtime.sessions.begin() as s:
        text2 = registry.present_certificate(
            session=s,
            principal=principal(s, people.citizen),
            certificate_id=cert.id,
            profile="hotel",
            audience="hotel-43",
            nonce=nonce2,
            now=LATER,
        )
    assert _verify(runtime, text2, audience="hotel-43", nonce=nonce2).valid
    replay = _verify(runtime, text2, audience="hotel-43", nonce=nonce2)
    assert replay.status is VerdictStatus.INVALID
    assert replay.code == "replayed"
    wrong = _verify(runtime, text2, audience="someone-else", nonce=nonce2)
    assert wrong.status is VerdictStatus.INVALID


def test_scope_citizens_and_staff(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    with runtime.sessions.begin() as s:
        with pytest.raises(NotFound):
            registry.certificate_qr(
                session=s, principal=principal(s, people.other), certificate_id=cert.id
            )
        with pytest.raises(NotFound):
            registry.get_certificate(
                session=s, principal=principal(s, people.other), certificate_id=cert.id
            )
        assert registry.my_certificates(session=s, principal=principal(s, people.other)) == []
        mine = registry.my_certificates(session=s, principal=principal(s, people.citizen))
        assert [c.id for c in mine] == [cert.id]
        with pytest.raises(NotFound):
            registry.revoke(
                session=s,
                principal=principal(s, people.outsider),
                certificate_id=cert.id,
                reason="x",
            )
        with pytest.raises(PermissionDenied):
            registry.revoke(
                session=s,
                principal=principal(s, people.officer),
                certificate_id=cert.id,
                reason="x",
            )
        with pytest.raises(PermissionDenied):
            registry.revoke(
                session=s,
                principal=principal(s, people.citizen),
                certificate_id=cert.id,
                reason="x",
            )
        detail = registry.get_certificate(
            session=s, principal=principal(s, people.officer), certificate_id=cert.id
        )
        assert detail.claims["id_number"] == CLAIMS["id_number"]
        assert detail.vc["credentialStatus"][0]["statusPurpose"] == "revocation"
        with pytest.raises(InvalidInput):
            registry.revoke(
                session=s,
                principal=principal(s, people.supervisor),
                certificate_id=cert.id,
                reason="   ",
            )


def test_reissue_revokes_old_copies_and_issues_the_next_generation(
    runtime: Runtime, people: People
) -> None:
    cert = issue(runtime, people)
    old_qr = _qr(runtime, people, cert.id)
    with runtime.sessions.begin() as s:
        new = registry.reissue(
            session=s,
            principal=principal(s, people.supervisor),
            certificate_id=cert.id,
            changes={"purpose": "出国"},
            reason="purpose corrected",
            now=NOW,
        )
        detail = registry.get_certificate(
            session=s, principal=principal(s, people.citizen), certificate_id=new.id
        )
    assert new.generation == 2
    assert new.replaces_id == cert.id
    assert detail.claims["attributes"]["purpose"] == "出国"
    old = _verify(runtime, old_qr)
    assert old.status is VerdictStatus.REVOKED
    assert old.reason_code == "superseded"
    assert "purpose corrected" not in old.reason
    with runtime.sessions() as s:
        row = s.get(Certificate, cert.id)
        assert row is not None
        assert (row.reason_code, row.reason) == ("superseded", "superseded: purpose corrected")
    assert _verify(runtime, _qr(runtime, people, new.id)).valid


def test_audit_rows_are_written(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    _qr(runtime, people, cert.id)
    _change(runtime, people, "suspend", cert.id, "check")
    with runtime.sessions() as s:
        rows = s.scalars(
            select(AuditEntry).where(AuditEntry.target_id == cert.id).order_by(AuditEntry.seq)
        ).all()
    actions = [r.action for r in rows]
    assert actions == [
        "eservices.certificate.issue",
        "eservices.certificate.qr",
        "eservices.certificate.suspend",
    ]
    assert rows[1].purpose == "present"
    assert rows[1].detail["profile"] == "hotel"
    assert all("王" not in str(r.detail) for r in rows)


def test_profile_qr_drops_optional_claims_to_fit_and_refuses_bad_profiles(
    runtime: Runtime, people: People
) -> None:
    cert = issue(runtime, people)
    employer = _qr(runtime, people, cert.id, profile="employer")
    assert len(employer) <= 400
    verdict = _verify(runtime, employer)
    assert verdict.valid
    assert verdict.claims["family_name"] == "王"
    age = _verify(runtime, _qr(runtime, people, cert.id, profile="age-check"))
    assert age.claims == {"age_over_18": True}
    police = _verify(runtime, _qr(runtime, people, cert.id, profile="roadside-police"))
    assert police.claims["id_number"] == CLAIMS["id_number"]  # compact QR: it fits now
    noise = "".join(chr(0x4E00 + (i * 37) % 2000) for i in range(70))  # zlib cannot shrink
    long_claims = {
        **CLAIMS,
        "attributes": {"result": "未发现有犯罪记录", "query_scope": noise, "purpose": "就业"},
    }
    big = issue(runtime, people, application_id="app-big", claims=long_claims)
    fitted = _verify(runtime, _qr(runtime, people, big.id, profile="employer"))
    assert fitted.valid
    # the least important attributes were left out first, the defining one kept if it fits
    assert fitted.claims["attributes"] == {"result": "未发现有犯罪记录"}
    with pytest.raises(NotFound, match="unknown purpose profile"):
        _qr(runtime, people, cert.id, profile="nosy")
