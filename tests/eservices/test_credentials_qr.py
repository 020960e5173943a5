"""SC1: QR certificates: round trip, pycose interop, a real QR decoder, bad input."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import base45  # type: ignore[import-untyped]
import cbor2
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycose.keys.curves import P256, Ed25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message

from safecity.eservices.credentials import cwt_qr
from safecity.eservices.credentials.cwt_qr import QrError
from safecity.eservices.credentials.jose import b64url_decode
from safecity.eservices.credentials.keys import KeySet, SigningKey
from safecity.platform.errors import InvalidInput, PayloadTooLarge

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOTEL = {"family_name": "王", "given_name": "小明", "id_last4": "1234"}
STATUS = ("https://safecity.example/status/1", 98765)


def _qr(key: SigningKey, claims: Mapping[str, object] | None = None, **kw: object) -> str:
    args: dict[str, object] = {"now": NOW, "status": STATUS}
    args.update(kw)
    return cwt_qr.issue_qr(
        key=key,
        issuer="https://safecity.example",
        vct="residence-permit",
        profile="hotel",
        claims=HOTEL if claims is None else claims,
        **args,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_round_trip(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    text = _qr(key)
    assert text.startswith("SC1:")
    assert len(text) <= 400
    out = cwt_qr.verify_qr(text, KeySet([key.public]))
    assert out.claims == HOTEL
    assert out.profile == "hotel"
    assert out.vct == "residence-permit"
    assert out.status == STATUS
    assert out.issuer == "https://safecity.example"
    assert out.expires_at == NOW + timedelta(minutes=5)
    assert out.key.kid == key.kid


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_pycose_verifies_our_cose_sign1(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    raw = zlib.decompress(base45.b45decode(_qr(key)[4:]))
    msg = Sign1Message.decode(raw)
    jwk = key.public.jwk
    msg.key = (
        OKPKey(crv=Ed25519, x=b64url_decode(jwk["x"]))
        if alg == "Ed25519"
        else EC2Key(crv=P256, x=b64url_decode(jwk["x"]), y=b64url_decode(jwk["y"]))
    )
    assert msg.verify_signature()
    assert msg.payload is not None
    claims = cbor2.loads(msg.payload)
    assert claims[cwt_qr.CLAIM_KEY]["l4"] == "1234"


def test_png_decodes_with_zxing_and_svg_renders() -> None:
    key = SigningKey.generate("Ed25519")
    text = _qr(key)
    png = cwt_qr.qr_png(text)
    assert png.startswith(b"\x89PNG")
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))
    assert [r.text for r in found] == [text]
    assert cwt_qr.verify_qr(found[0].text, KeySet([key.public])).claims == HOTEL
    assert b"<svg" in cwt_qr.qr_svg(text)


def test_oversize_payload_refused_at_issue_time() -> None:
    key = SigningKey.generate("Ed25519")
    # 80 distinct CJK characters: zlib cannot shrink them (the compact form would
    # absorb a repeated phrase)
    address = "".join(chr(0x4E00 + (i * 37) % 2000) for i in range(80))
    long_address = {**HOTEL, "address": address}
    with pytest.raises(PayloadTooLarge, match="400"):
        _qr(key, long_address)


def test_ttl_over_five_minutes_and_unknown_claims_refused() -> None:
    key = SigningKey.generate("Ed25519")
    with pytest.raises(InvalidInput, match="300 s"):
        _qr(key, ttl=timedelta(minutes=6))
    with pytest.raises(InvalidInput, match="not allowed"):
        _qr(key, {"photo": "..."})


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("HC1:NCFOXN%TS3DH", "bad-prefix"),
        ("", "bad-prefix"),
        ("SC1:!!!notbase45", "malformed"),
        ("SC1:" + base45.b45encode(b"not zlib").decode(), "malformed"),
        ("SC1:" + base45.b45encode(zlib.compress(b"\xff\xff")).decode(), "malformed"),
        ("SC1:" + base45.b45encode(zlib.compress(cbor2.dumps([1, 2]))).decode(), "malformed"),
    ],
)
def test_malformed_strings(text: str, code: str) -> None:
    key = SigningKey.generate("Ed25519")
    with pytest.raises(QrError) as err:
        cwt_qr.verify_qr(text, KeySet([key.public]))
    assert err.value.code == code


Parts = list[bytes | dict[int, object]]


def _reencode(text: str, change: Callable[[Parts], Parts]) -> str:
    raw = zlib.decompress(base45.b45decode(text[4:]))
    parts = change(list(cbor2.loads(raw).value))
    encoded: bytes = base45.b45encode(zlib.compress(cbor2.dumps(cbor2.CBORTag(18, parts))))
    return "SC1:" + encoded.decode()


def test_tampered_payload_signature_and_wrong_key() -> None:
    key = SigningKey.generate("Ed25519")
    text = _qr(key)

    def payload(parts: Parts) -> Parts:
        assert isinstance(parts[2], bytes)
        claims = cbor2.loads(parts[2])
        claims[cwt_qr.CLAIM_KEY]["l4"] = "9999"
        return [parts[0], parts[1], cbor2.dumps(claims), parts[3]]

    def signature(parts: Parts) -> Parts:
        assert isinstance(parts[3], bytes)
        sig = bytearray(parts[3])
        sig[5] ^= 1
        return [parts[0], parts[1], parts[2], bytes(sig)]

    for change in (payload, signature):
        with pytest.raises(QrError) as err:
            cwt_qr.verify_qr(_reencode(text, change), KeySet([key.public]))
        assert err.value.code == "bad-signature"
    with pytest.raises(QrError) as err:
        cwt_qr.verify_qr(text, KeySet([SigningKey.generate("Ed25519").public]))
    assert err.value.code == "unknown-key"


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=120))
def test_random_base45_never_verifies(body: str) -> None:
    key = SigningKey.generate("Ed25519")
    with pytest.raises(QrError):
        cwt_qr.verify_qr("SC1:" + body, KeySet([key.public]))


_KEY = SigningKey.generate("Ed25519")
_TEXT = _qr(_KEY)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_character_change_is_rejected(data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(_TEXT) - 1))
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    new = data.draw(st.sampled_from(alphabet).filter(lambda c: c != _TEXT[pos]))
    with pytest.raises(QrError):
        cwt_qr.verify_qr(_TEXT[:pos] + new + _TEXT[pos + 1 :], KeySet([_KEY.public]))
