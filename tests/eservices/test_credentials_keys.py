"""Issuer key store: file modes, kid = JWK thumbprint, rotation keeps old public keys."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.jwk import OKPKey

from safecity.eservices.credentials.jose import JwsError, sign_jwt, verify_jwt
from safecity.eservices.credentials.keys import IssuerKeyStore, KeySet, PublicKey, SigningKey
from safecity.platform.errors import ConfigurationError, InvalidInput, NotFound


def test_first_use_creates_a_private_key_file_0600(tmp_path: Path) -> None:
    store = IssuerKeyStore(tmp_path / "keys")
    key = store.active()
    private = tmp_path / "keys" / f"{key.kid}.key.json"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert json.loads(private.read_text())["d"]
    assert "d" not in json.loads((tmp_path / "keys" / f"{key.kid}.pub.json").read_text())
    assert IssuerKeyStore(tmp_path / "keys").active().kid == key.kid  # reloaded, not recreated


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_kid_is_the_rfc7638_thumbprint(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    assert key.kid == key.jose.thumbprint()
    assert PublicKey.from_jwk(dict(key.public.jwk)).kid == key.kid
    with pytest.raises(InvalidInput, match="thumbprint"):
        PublicKey.from_jwk({**key.public.jwk, "kid": "made-up"})


def test_rfc7638_example_thumbprint() -> None:
    # RFC 8037 §A.3: the thumbprint of the example Ed25519 public key
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    jwk: dict[str, str | list[str]] = {"kty": "OKP", "crv": "Ed25519", "x": x}
    assert PublicKey.from_jwk(jwk).kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert OKPKey.import_key(jwk).thumbprint() == PublicKey.from_jwk(jwk).kid


def test_rotation_keeps_old_tokens_verifiable(tmp_path: Path) -> None:
    store = IssuerKeyStore(tmp_path / "k")
    old = store.active()
    token = sign_jwt({"n": 1}, old, typ="test+jwt")
    new = store.rotate(drop_old_private=True)
    assert new.kid != old.kid
    assert store.active_kid() == new.kid
    assert not (tmp_path / "k" / f"{old.kid}.key.json").exists()
    fresh = IssuerKeyStore(tmp_path / "k")
    parsed, key = verify_jwt(token, fresh.public_keys(), typ="test+jwt")
    assert parsed.payload == {"n": 1}
    assert key.kid == old.kid
    assert {k.kid for k in fresh.public_keys()} == {old.kid, new.kid}
    with pytest.raises(NotFound):
        fresh.signing_key(old.kid)


def test_rotation_to_es256_and_jwks(tmp_path: Path) -> None:
    store = IssuerKeyStore(tmp_path / "k", alg="ES256")
    store.active()
    store.rotate(alg="Ed25519")
    jwks = store.public_keys().jwks()
    assert sorted(k["alg"] for k in jwks["keys"]) == ["ES256", "Ed25519"]
    assert len(KeySet.from_jwks(jwks)) == 2


def test_refuses_group_writable_key_and_missing_active(tmp_path: Path) -> None:
    store = IssuerKeyStore(tmp_path / "k")
    with pytest.raises(ConfigurationError, match="no active"):
        store.active(create=False)
    key = store.active()
    os.chmod(tmp_path / "k" / f"{key.kid}.key.json", 0o666)  # noqa: S103 - the point of the test
    with pytest.raises(ConfigurationError, match="writable"):
        IssuerKeyStore(tmp_path / "k").active()


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_raw_sign_verify(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    sig = key.sign(b"data")
    assert len(sig) == 64
    assert key.public.verify(b"data", sig)
    assert not key.public.verify(b"date", sig)
    assert not key.public.verify(b"data", sig[:-1] + bytes([sig[-1] ^ 1]))


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_jws_interoperates_with_joserfc(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    token = sign_jwt({"sub": "x"}, key, typ="test+jwt")
    public = key.jose.import_key(dict(key.public.jwk))
    assert jws.deserialize_compact(token, public, algorithms=[alg]).payload == b'{"sub":"x"}'
    theirs = jws.serialize_compact(
        {"alg": alg, "kid": key.kid, "typ": "test+jwt"}, b'{"n":2}', key.jose, algorithms=[alg]
    )
    parsed, _ = verify_jwt(theirs, KeySet([key.public]), typ="test+jwt")
    assert parsed.payload == {"n": 2}
    with pytest.raises(JwsError) as err:
        verify_jwt(theirs[:-4] + "AAAA", KeySet([key.public]), typ="test+jwt")
    assert err.value.code == "bad-signature"
    with pytest.raises(JwsError) as err:
        verify_jwt(theirs, KeySet([key.public]), typ="other+jwt")
    assert err.value.code == "bad-type"
