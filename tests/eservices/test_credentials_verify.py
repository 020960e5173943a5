"""Verdicts end to end: issue a certificate, present it, verify online and offline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from safecity.eservices.credentials import (
    PROFILES,
    IssuedCertificate,
    IssuerKeyStore,
    KeySet,
    LiveStatusSource,
    ReplayGuard,
    SigningKey,
    SnapshotStatusSource,
    StatusList,
    Verdict,
    VerdictStatus,
    build_bundle,
    issue_certificate,
    issue_profile_qr,
    load_bundle,
    present,
    vc_view,
    verify_presentation,
    verify_qr,
)
from safecity.eservices.credentials.bundle import BUNDLE_TYP
from safecity.eservices.credentials.jose import sign_jwt
from safecity.eservices.credentials.profiles import derived_claims, get_profile
from safecity.platform.errors import InvalidInput, NotFound

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
ISS = "https://safecity.example"
VCT = "https://safecity.example/vct/residence-permit"
URI = "https://safecity.example/status/7"
PERSON = {
    "family_name": "王",
    "given_name": "小明",
    "id_number": "110101199003071234",
    "birthdate": "1990-03-07",
    "address": "上海市黄浦区人民大道 200 号",
}


class World:
    def __init__(self, tmp: Path) -> None:
        self.store = IssuerKeyStore(tmp / "issuer")
        self.anchor = IssuerKeyStore(tmp / "anchor").active()
        self.key = self.store.active()
        self.list = StatusList(URI)
        self.holder = SigningKey.generate("Ed25519")
        self.cert = self.issue("cert-1")

    def issue(self, cid: str, *, valid_for: timedelta = timedelta(days=365)) -> IssuedCertificate:
        return issue_certificate(
            certificate_id=cid,
            key=self.key,
            issuer=ISS,
            vct=VCT,
            claims=PERSON,
            status_list=self.list,
            holder_keys=[self.holder.public],
            now=NOW,
            valid_for=valid_for,
            copies=3,
        )

    def live(self, at: datetime = NOW) -> LiveStatusSource:
        return LiveStatusSource({URI: self.list}, clock=lambda: at)

    def presentation(self, copy: int = 0, profile: str = "hotel", at: datetime = NOW) -> str:
        return present(
            self.cert.copies[copy],
            PROFILES[profile].claims,
            holder_key=self.holder,
            audience="hotel-1",
            nonce="nonce-1",
            now=at,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _check(world: World, pres: str, at: datetime = NOW, **kw: Any) -> Verdict:
    args: dict[str, object] = {
        "keys": world.store.public_keys(),
        "status": world.live(at),
        "audience": "hotel-1",
        "nonce": "nonce-1",
        "now": at,
        "profile": "hotel",
    }
    args.update(kw)
    return verify_presentation(pres, **args)  # type: ignore[arg-type]


def test_valid_hotel_presentation_sees_only_hotel_claims(world: World) -> None:
    verdict = _check(world, world.presentation())
    assert verdict.status is VerdictStatus.VALID
    assert verdict.valid
    assert verdict.claims == {"family_name": "王", "given_name": "小明", "id_last4": "1234"}
    assert verdict.issuer == ISS
    assert verdict.vct == VCT
    assert verdict.kid == world.key.kid


def test_over_disclosure_is_filtered_and_missing_claims_refused(world: World) -> None:
    everything = world.presentation(profile="roadside-police")
    verdict = _check(world, everything, profile="age-check")
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "missing-claims"
    police = _check(world, everything, profile="roadside-police")
    assert police.valid
    assert police.claims["id_number"] == "110101199003071234"
    assert "address" not in police.claims


def test_every_copy_is_revoked_together_with_reason(world: World) -> None:
    world.list.revoke("cert-1", "document reported stolen")
    for copy in range(3):
        verdict = _check(world, world.presentation(copy))
        assert verdict.status is VerdictStatus.REVOKED
        assert verdict.reason == "document reported stolen"
    other = world.issue("cert-2")
    pres = present(
        other.copies[0],
        {"family_name", "given_name", "id_last4"},
        holder_key=world.holder,
        audience="hotel-1",
        nonce="nonce-1",
        now=NOW,
    )
    assert _check(world, pres).valid


def test_suspended_then_reinstated(world: World) -> None:
    world.list.suspend("cert-1", "address check pending")
    verdict = _check(world, world.presentation())
    assert verdict.status is VerdictStatus.SUSPENDED
    assert verdict.reason == "address check pending"
    world.list.reinstate("cert-1")
    assert _check(world, world.presentation()).valid


def test_expired(world: World) -> None:
    world.cert = world.issue("short", valid_for=timedelta(days=1))
    later = NOW + timedelta(days=2)
    verdict = _check(world, world.presentation(at=later), at=later)
    assert verdict.status is VerdictStatus.EXPIRED
    assert verdict.code == "expired"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"nonce": "nonce-2"}, "wrong-nonce"),
        ({"audience": "hotel-2"}, "wrong-audience"),
    ],
)
def test_replay_to_another_verifier_is_invalid(
    world: World, change: dict[str, Any], code: str
) -> None:
    verdict = _check(world, world.presentation(), **change)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == code
    assert verdict.claims == {}


def test_old_presentation_and_replay_guard(world: World) -> None:
    pres = world.presentation()
    late = NOW + timedelta(minutes=10)
    assert _check(world, pres, at=late).code == "kb-too-old"
    guard = ReplayGuard()
    assert _check(world, pres, replay_guard=guard).valid
    again = _check(world, pres, replay_guard=guard, now=NOW + timedelta(seconds=30))
    assert again.status is VerdictStatus.INVALID
    assert again.code == "replayed"


def test_wrong_issuer_key_is_invalid(world: World) -> None:
    verdict = _check(world, world.presentation(), keys=KeySet([SigningKey.generate().public]))
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "unknown-key"


def test_unknown_status_list_fails_closed(world: World) -> None:
    verdict = _check(world, world.presentation(), status=LiveStatusSource({}))
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "status-unavailable"


# -- offline bundle ------------------------------------------------------------------------


def _offline(world: World, at: datetime = NOW) -> tuple[KeySet, SnapshotStatusSource]:
    token = build_bundle(
        signer=world.anchor,
        issuer=ISS,
        keys=world.store.public_keys(),
        status_lists=[world.list],
        now=at,
    )
    bundle = load_bundle(token, KeySet([world.anchor.public]))
    return bundle.keys, SnapshotStatusSource.from_bundle(bundle)


def test_offline_bundle_verifies_and_goes_stale_after_24h(world: World) -> None:
    keys, source = _offline(world)
    assert _check(world, world.presentation(), keys=keys, status=source).valid
    later = NOW + timedelta(hours=25)
    stale = _check(world, world.presentation(at=later), at=later, keys=keys, status=source)
    assert stale.status is VerdictStatus.STATUS_STALE
    assert stale.as_of == NOW
    assert stale.claims["id_last4"] == "1234"


def test_offline_bundle_shows_revocation_even_when_stale(world: World) -> None:
    world.list.revoke("cert-1", "lost")
    keys, source = _offline(world)
    later = NOW + timedelta(hours=30)
    verdict = _check(world, world.presentation(at=later), at=later, keys=keys, status=source)
    assert verdict.status is VerdictStatus.REVOKED
    assert verdict.reason == "revoked by the issuer"


def test_bundle_after_key_rotation_still_verifies_old_credentials(world: World) -> None:
    world.store.rotate(drop_old_private=True)
    keys, source = _offline(world)
    assert len(keys) == 2
    assert _check(world, world.presentation(), keys=keys, status=source).valid


def test_bundle_with_bad_signature_or_undecodable_list(world: World) -> None:
    token = build_bundle(
        signer=world.key,
        issuer=ISS,
        keys=world.store.public_keys(),
        status_lists=[world.list],
        now=NOW,
    )
    with pytest.raises(InvalidInput, match="bundle rejected"):
        load_bundle(token, KeySet([world.anchor.public]))
    broken = sign_jwt(
        {
            "iss": ISS,
            "iat": int(NOW.timestamp()),
            "keys": world.store.public_keys().jwks(),
            "status_lists": [{"uri": URI, "bits": 2, "lst": "AAAA-not-zlib", "iat": 1}],
        },
        world.anchor,
        typ=BUNDLE_TYP,
    )
    bundle = load_bundle(broken, KeySet([world.anchor.public]))
    assert bundle.undecodable == {URI}
    source = SnapshotStatusSource.from_bundle(bundle)
    verdict = _check(world, world.presentation(), keys=bundle.keys, status=source)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "status-undecodable"


# -- QR verdicts ---------------------------------------------------------------------------


def test_qr_verdicts(world: World) -> None:
    qr = issue_profile_qr(world.cert, key=world.key, issuer=ISS, vct="rp", profile="hotel", now=NOW)
    keys, source = _offline(world)
    ok = verify_qr(qr, keys=keys, status=source, now=NOW + timedelta(minutes=1), profile="hotel")
    assert ok.valid
    assert ok.claims == {"family_name": "王", "given_name": "小明", "id_last4": "1234"}
    late = verify_qr(qr, keys=keys, status=source, now=NOW + timedelta(minutes=6))
    assert late.status is VerdictStatus.EXPIRED
    world.list.revoke("cert-1", "lost")
    assert verify_qr(qr, keys=keys, status=world.live(), now=NOW).status is VerdictStatus.REVOKED
    bad = verify_qr("HC1:XYZ", keys=keys, status=source, now=NOW)
    assert bad.status is VerdictStatus.INVALID
    assert bad.code == "bad-prefix"
    police = verify_qr(qr, keys=keys, status=source, now=NOW, profile="roadside-police")
    assert police.code == "missing-claims"


# -- issuance helpers and profiles ------------------------------------------------------------


def test_copies_are_unlinkable(world: World) -> None:
    jwts = [c.split("~")[0] for c in world.cert.copies]
    disclosures = [set(c.split("~")[1:-1]) for c in world.cert.copies]
    assert len(set(jwts)) == 3
    assert not (disclosures[0] & disclosures[1])
    assert len(set(world.cert.indices)) == 3


def test_vc_view_has_the_same_claims(world: World) -> None:
    view = vc_view(
        issuer=ISS,
        vct=VCT,
        claims=world.cert.claims,
        valid_from=NOW,
        valid_until=world.cert.expires_at,
        status=(URI, world.cert.indices[0]),
    )
    assert view["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert view["credentialSubject"]["id_number"] == PERSON["id_number"]
    assert view["validFrom"] == "2026-11-26T08:00:00Z"
    assert [s["statusPurpose"] for s in view["credentialStatus"]] == ["revocation", "suspension"]
    assert view["credentialStatus"][0]["statusListIndex"] == str(world.cert.indices[0])


def test_profiles_and_derived_claims() -> None:
    claims = derived_claims(PERSON, on=date(2008, 3, 7))  # the 18th birthday
    assert claims["id_last4"] == "1234"
    assert claims["age_over_18"] is True
    assert derived_claims(PERSON, on=date(2008, 3, 6))["age_over_18"] is False
    assert derived_claims({"birthdate": "2008-03-07"}, on=date(2026, 3, 6))["age_over_18"] is False
    assert get_profile("hotel").filter(claims) == {
        "family_name": "王",
        "given_name": "小明",
        "id_last4": "1234",
    }
    with pytest.raises(NotFound):
        get_profile("casino")
    with pytest.raises(InvalidInput):
        derived_claims({"photo": "x"}, on=date(2026, 1, 1))
