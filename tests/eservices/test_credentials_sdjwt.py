"""SD-JWT: RFC 9901 vectors, round trips, the sd-jwt reference package as oracle, tampering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto.jwk import JWK  # type: ignore[import-untyped]
from sd_jwt.holder import SDJWTHolder  # type: ignore[import-untyped]
from sd_jwt.issuer import SDJWTIssuer  # type: ignore[import-untyped]
from sd_jwt.verifier import SDJWTVerifier  # type: ignore[import-untyped]

from safecity.eservices.credentials import sdjwt
from safecity.eservices.credentials.jose import b64url_decode, b64url_encode
from safecity.eservices.credentials.keys import KeySet, SigningKey
from safecity.eservices.credentials.sdjwt import SdJwtError

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
ISS = "https://safecity.example"
VCT = "https://safecity.example/vct/residence-permit"
CLAIMS = {
    "family_name": "王",
    "given_name": "小明",
    "id_number": "110101199003071234",
    "id_last4": "1234",
    "birthdate": "1990-03-07",
    "address": {"city": "上海", "street": "人民路 1 号"},
}

# RFC 9901 §4.2.1 / §5.1 example Disclosures and their SHA-256 digests.
RFC_VECTORS = [
    (
        "WyIyR0xDNDJzS1F2ZUNmR2ZyeU5STjl3IiwgImdpdmVuX25hbWUiLCAiSm9obiJd",
        "jsu9yVulwQQlhFlM_3JlzMaSFzglhQG0DpfayQwLUK4",
        ["2GLC42sKQveCfGfryNRN9w", "given_name", "John"],
    ),
    (
        "WyJlbHVWNU9nM2dTTklJOEVZbnN4QV9BIiwgImZhbWlseV9uYW1lIiwgIkRvZSJd",
        "TGf4oLbgwd5JQaHyKVQZU9UdGE0w5rtDsrZzfUaomLo",
        ["eluV5Og3gSNII8EYnsxA_A", "family_name", "Doe"],
    ),
    (
        "WyI2SWo3dE0tYTVpVlBHYm9TNXRtdlZBIiwgImVtYWlsIiwgImpvaG5kb2VAZXhhbXBsZS5jb20iXQ",
        "JzYjH4svliH0R3PyEMfeZu6Jt69u5qehZo7F7EPYlSE",
        ["6Ij7tM-a5iVPGboS5tmvVA", "email", "johndoe@example.com"],
    ),
    (
        "WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0",
        "X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0",
        ["_26bc4LT-ac6q2KI6cBW5es", "family_name", "Möbius"],
    ),
]


@pytest.mark.parametrize(("disclosure", "digest", "content"), RFC_VECTORS)
def test_rfc9901_disclosure_vectors(disclosure: str, digest: str, content: list[str]) -> None:
    assert sdjwt.disclosure_digest(disclosure) == digest
    assert json.loads(b64url_decode(disclosure)) == content
    assert sdjwt.make_disclosure(content[0], content[1], content[2]) == disclosure


def test_rfc_disclosures_unpack_into_claims() -> None:
    payload = {"iss": ISS, "_sd": sorted(d for _, d, _ in RFC_VECTORS[:3]), "_sd_alg": "sha-256"}
    claims = sdjwt.unpack_claims(payload, [RFC_VECTORS[0][0], RFC_VECTORS[2][0]])
    assert claims == {"iss": ISS, "given_name": "John", "email": "johndoe@example.com"}


@pytest.fixture(scope="module")
def issuer() -> SigningKey:
    return SigningKey.generate("Ed25519")


@pytest.fixture(scope="module")
def holder() -> SigningKey:
    return SigningKey.generate("ES256")


def _issue(issuer: SigningKey, holder: SigningKey, **kw: object) -> str:
    return sdjwt.issue_sd_jwt(
        key=issuer,
        issuer=ISS,
        vct=VCT,
        claims=CLAIMS,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=30),
        holder=holder.public,
        status=("https://safecity.example/status/1", 42),
        **kw,  # type: ignore[arg-type]
    ).serialized


def _present(issued: str, holder: SigningKey, names: set[str], **kw: object) -> str:
    args: dict[str, object] = {"audience": "hotel-1", "nonce": "n-123", "now": NOW}
    args.update(kw)
    return sdjwt.present(issued, names, holder_key=holder, **args)  # type: ignore[arg-type]


def _verify(presentation: str, keys: KeySet, **kw: object) -> sdjwt.VerifiedSdJwt:
    args: dict[str, object] = {"audience": "hotel-1", "nonce": "n-123", "now": NOW}
    args.update(kw)
    return sdjwt.verify_sd_jwt(presentation, keys, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_round_trip_discloses_only_chosen_claims(alg: str, holder: SigningKey) -> None:
    issuer = SigningKey.generate(alg)  # type: ignore[arg-type]
    issued = _issue(issuer, holder)
    pres = _present(issued, holder, {"family_name", "id_last4"})
    out = _verify(pres, KeySet([issuer.public]))
    assert out.claims["family_name"] == "王"
    assert out.claims["id_last4"] == "1234"
    assert "id_number" not in out.claims
    assert "birthdate" not in out.claims
    assert out.payload["status"] == {
        "status_list": {"uri": "https://safecity.example/status/1", "idx": 42}
    }
    assert out.kb_payload is not None
    assert out.kb_payload["aud"] == "hotel-1"


def test_issued_payload_hides_claims_and_has_decoys(issuer: SigningKey, holder: SigningKey) -> None:
    issued = sdjwt.issue_sd_jwt(
        key=issuer,
        issuer=ISS,
        vct=VCT,
        claims=CLAIMS,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        holder=holder.public,
        decoys=4,
    )
    text = json.dumps(issued.payload, ensure_ascii=False)
    assert "小明" not in text
    assert "110101199003071234" not in text
    assert len(issued.payload["_sd"]) == len(CLAIMS) + 4
    assert issued.payload["_sd"] == sorted(issued.payload["_sd"])


def test_reserved_claim_names_refused(issuer: SigningKey) -> None:
    from safecity.platform.errors import InvalidInput

    with pytest.raises(InvalidInput, match="reserved"):
        sdjwt.issue_sd_jwt(
            key=issuer,
            issuer=ISS,
            vct=VCT,
            claims={"_sd": 1},
            issued_at=NOW,
            expires_at=NOW + timedelta(days=1),
        )
    with pytest.raises(InvalidInput, match="both visible"):
        sdjwt.issue_sd_jwt(
            key=issuer,
            issuer=ISS,
            vct=VCT,
            claims={"given_name": "A"},
            visible={"given_name": "B"},
            issued_at=NOW,
            expires_at=NOW + timedelta(days=1),
        )


# -- the sd-jwt reference package as an oracle ------------------------------------------------


def _jwcrypto(key: SigningKey, private: bool) -> JWK:
    data = key.private_jwk() if private else dict(key.public.jwk)
    return JWK.from_json(json.dumps({k: v for k, v in data.items() if k not in ("alg", "use")}))


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_oracle_verifies_our_sd_jwt(alg: str, holder: SigningKey) -> None:
    issuer = SigningKey.generate(alg)  # type: ignore[arg-type]
    issued = _issue(issuer, holder)
    pres = _present(issued, holder, {"given_name", "address"})  # ES256 holder: oracle's KB alg
    verifier = SDJWTVerifier(
        pres,
        lambda iss, header: _jwcrypto(issuer, private=False),
        expected_aud="hotel-1",
        expected_nonce="n-123",
    )
    claims = verifier.get_verified_payload()
    assert claims["given_name"] == "小明"
    assert claims["address"] == {"city": "上海", "street": "人民路 1 号"}
    assert "id_number" not in claims


def test_we_verify_oracle_sd_jwt(holder: SigningKey) -> None:
    from sd_jwt.common import SDObj  # type: ignore[import-untyped]

    issuer = SigningKey.generate("ES256")
    user_claims = {
        "iss": ISS,
        "vct": VCT,
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(days=1)).timestamp()),
        SDObj("given_name"): "John",
        SDObj("family_name"): "Doe",
        "nationalities": [SDObj("US"), SDObj("DE")],
    }
    oracle = SDJWTIssuer(
        user_claims,
        _jwcrypto(issuer, private=True),
        holder_key=_jwcrypto(holder, private=False),
        sign_alg="ES256",
        add_decoy_claims=True,
        extra_header_parameters={"typ": sdjwt.SD_JWT_TYP, "kid": issuer.kid},
    )
    wallet = SDJWTHolder(oracle.sd_jwt_issuance)
    wallet.create_presentation(
        {"given_name": True, "nationalities": [False, True]},
        nonce="n-123",
        aud="hotel-1",
        holder_key=_jwcrypto(holder, private=True),
        sign_alg="ES256",
    )
    # the oracle stamps the KB-JWT with the wall clock; judge its age at that time
    kb_iat = json.loads(b64url_decode(wallet.sd_jwt_presentation.split("~")[-1].split(".")[1]))
    now = datetime.fromtimestamp(kb_iat["iat"], UTC)
    out = _verify(wallet.sd_jwt_presentation, KeySet([issuer.public]), now=now)
    assert out.claims["given_name"] == "John"
    assert "family_name" not in out.claims
    assert out.claims["nationalities"] == ["DE"]


# -- bad input -------------------------------------------------------------------------------


def _tamper_jwt_part(token: str, part: int, change: dict[str, object]) -> str:
    pieces = token.split(".")
    body = json.loads(b64url_decode(pieces[part]))
    body.update(change)
    pieces[part] = b64url_encode(json.dumps(body).encode())
    return ".".join(pieces)


def test_tampered_payload_is_rejected(issuer: SigningKey, holder: SigningKey) -> None:
    pres = _present(_issue(issuer, holder), holder, {"given_name"})
    jwt, rest = pres.split("~", 1)
    forged = _tamper_jwt_part(jwt, 1, {"exp": 4102444800}) + "~" + rest
    with pytest.raises(SdJwtError) as err:
        _verify(forged, KeySet([issuer.public]))
    assert err.value.code == "bad-signature"


def test_tampered_signature_is_rejected(issuer: SigningKey, holder: SigningKey) -> None:
    pres = _present(_issue(issuer, holder), holder, {"given_name"})
    jwt, rest = pres.split("~", 1)
    head, body, sig = jwt.split(".")
    raw = bytearray(b64url_decode(sig))
    raw[0] ^= 1
    with pytest.raises(SdJwtError) as err:
        _verify(f"{head}.{body}.{b64url_encode(bytes(raw))}~{rest}", KeySet([issuer.public]))
    assert err.value.code == "bad-signature"


@pytest.mark.parametrize("which", range(len(CLAIMS)))
def test_each_tampered_disclosure_is_rejected(
    which: int, issuer: SigningKey, holder: SigningKey
) -> None:
    issued = _issue(issuer, holder)
    parts = issued.split("~")
    salt, name, value = json.loads(b64url_decode(parts[1 + which]))
    forged = sdjwt.make_disclosure(salt, name, "forged" if value != "forged" else "x")
    parts[1 + which] = forged
    pres = _present("~".join(parts), holder, set(CLAIMS))
    with pytest.raises(SdJwtError) as err:
        _verify(pres, KeySet([issuer.public]))
    assert err.value.code == "tampered-disclosure"


def test_disclosure_swapped_after_key_binding_is_rejected(
    issuer: SigningKey, holder: SigningKey
) -> None:
    issued = _issue(issuer, holder)
    pres = _present(issued, holder, {"given_name"})
    other = next(d for d in issued.split("~")[1:-1] if d not in pres)
    parts = pres.split("~")
    parts.insert(1, other)  # add a Disclosure the holder never signed over
    with pytest.raises(SdJwtError) as err:
        _verify("~".join(parts), KeySet([issuer.public]))
    assert err.value.code == "tampered-disclosure"


def test_duplicate_disclosure_is_rejected(issuer: SigningKey, holder: SigningKey) -> None:
    issued = _issue(issuer, holder)
    parts = issued.split("~")
    doubled = "~".join([parts[0], parts[1], parts[1], ""])
    with pytest.raises(SdJwtError, match="twice"):
        _verify(doubled, KeySet([issuer.public]), require_kb=False)


def test_unknown_and_wrong_issuer_key(issuer: SigningKey, holder: SigningKey) -> None:
    pres = _present(_issue(issuer, holder), holder, {"given_name"})
    stranger = SigningKey.generate("Ed25519")
    with pytest.raises(SdJwtError) as err:
        _verify(pres, KeySet([stranger.public]))
    assert err.value.code == "unknown-key"
    forged = sdjwt.issue_sd_jwt(
        key=stranger,
        issuer=ISS,
        vct=VCT,
        claims=CLAIMS,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        holder=holder.public,
    ).serialized
    # claim to be the trusted issuer's kid, signed with the stranger's key
    jwt, rest = forged.split("~", 1)
    relabelled = _tamper_jwt_part(jwt, 0, {"kid": issuer.kid}) + "~" + rest
    with pytest.raises(SdJwtError) as err:
        _verify(_present(relabelled, holder, {"given_name"}), KeySet([issuer.public]))
    assert err.value.code == "bad-signature"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"nonce": "other"}, "wrong-nonce"),
        ({"audience": "police-7"}, "wrong-audience"),
        ({"now": NOW + timedelta(minutes=6)}, "kb-too-old"),
        ({"now": NOW - timedelta(minutes=5)}, "kb-too-old"),
    ],
)
def test_replayed_key_binding_is_rejected(
    change: dict[str, object], code: str, issuer: SigningKey, holder: SigningKey
) -> None:
    pres = _present(_issue(issuer, holder), holder, {"given_name"})
    with pytest.raises(SdJwtError) as err:
        _verify(pres, KeySet([issuer.public]), **change)
    assert err.value.code == code


def test_key_binding_by_another_key_or_missing(issuer: SigningKey, holder: SigningKey) -> None:
    issued = _issue(issuer, holder)
    thief = SigningKey.generate("ES256")
    with pytest.raises(SdJwtError) as err:
        _verify(_present(issued, thief, {"given_name"}), KeySet([issuer.public]))
    assert err.value.code == "kb-bad-signature"
    bare = sdjwt.present(issued, {"given_name"}, holder_key=None)
    with pytest.raises(SdJwtError) as err:
        _verify(bare, KeySet([issuer.public]))
    assert err.value.code == "kb-missing"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_garbage_never_verifies(text: str) -> None:
    key = SigningKey.generate("Ed25519")
    with pytest.raises(SdJwtError):
        _verify(text, KeySet([key.public]))


def test_non_canonical_base64_is_refused() -> None:
    assert b64url_decode("QQ") == b"A"
    with pytest.raises(ValueError, match="canonical"):
        b64url_decode("QR")  # the same byte, spelled with non-zero padding bits


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_character_change_is_rejected(data: st.DataObject) -> None:
    issuer = _KEYS[0]
    pres = _PRESENTATION
    pos = data.draw(st.integers(0, len(pres) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~."
    new = data.draw(st.sampled_from(alphabet).filter(lambda c: c != pres[pos]))
    mutated = pres[:pos] + new + pres[pos + 1 :]
    with pytest.raises(SdJwtError):
        _verify(mutated, KeySet([issuer.public]))


_KEYS = (SigningKey.generate("Ed25519"), SigningKey.generate("ES256"))
_PRESENTATION = _present(_issue(*_KEYS), _KEYS[1], {"given_name", "id_last4"})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.text(max_size=12))
def test_b64url_round_trip_and_canonical(raw: bytes, text: str) -> None:
    assert b64url_decode(b64url_encode(raw)) == raw
    try:
        decoded = b64url_decode(text)
    except ValueError:
        return
    assert b64url_encode(decoded) == text  # whatever is accepted is the one canonical form
