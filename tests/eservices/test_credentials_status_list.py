"""Status lists: IETF Token Status List vectors, W3C Bitstring Status List, batches, fail closed."""

from __future__ import annotations

import base64
import gzip
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.eservices.credentials import status_list as sl_mod
from safecity.eservices.credentials.keys import KeySet, SigningKey
from safecity.eservices.credentials.status_list import (
    Status,
    StatusList,
    StatusListError,
    decode_bitstring,
    decode_lst,
    encode_lst,
)
from safecity.platform.errors import Conflict, IllegalTransition, InvalidInput

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
URI = "https://safecity.example/status/1"

# draft-ietf-oauth-status-list examples: 1-bit and 2-bit byte arrays and their "lst".
IETF_1BIT = ([0xB9, 0xA3], "eNrbuRgAAhcBXQ", [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1])
IETF_2BIT = ([0xC9, 0x44, 0xF9], "eNo76fITAAPfAgc", [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3])


@pytest.mark.parametrize(("bits", "vector"), [(1, IETF_1BIT), (2, IETF_2BIT)])
def test_ietf_example_vectors(bits: int, vector: tuple[list[int], str, list[int]]) -> None:
    byte_array, lst, statuses = vector
    assert decode_lst(lst) == bytes(byte_array)
    assert sl_mod.pack(np.array(statuses, np.uint8), bits) == bytes(byte_array)
    assert list(sl_mod.unpack(bytes(byte_array), bits)[: len(statuses)]) == statuses
    assert [sl_mod.status_at(bytes(byte_array), bits, i) for i in range(len(statuses))] == statuses
    # our encoder's output decodes to the same array (zlib output may differ byte-wise)
    assert decode_lst(encode_lst(bytes(byte_array))) == bytes(byte_array)


def test_w3c_spec_example_decodes_to_empty_16kb_list() -> None:
    # the Bitstring Status List spec's example encodedList: 131,072 zero bits
    example = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
    bits = decode_bitstring(example)
    assert len(bits) == 16_384
    assert not any(bits)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([1, 2, 4, 8]), st.data())
def test_pack_unpack_round_trip(bits: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=300))
    packed = sl_mod.pack(np.array(values, np.uint8), bits)
    assert list(sl_mod.unpack(packed, bits)[: len(values)]) == values
    for i, v in enumerate(values):
        assert sl_mod.status_at(packed, bits, i) == v


def test_allocation_is_random_unique_and_batches_revoke_together() -> None:
    sl = StatusList(URI)
    a = sl.allocate("cert-a", 5)
    b = sl.allocate("cert-b", 5)
    assert len(set(a) | set(b)) == 10
    assert a != sorted(a) or b != sorted(b) or max(a + b) - min(a + b) > 1000  # not sequential
    sl.revoke("cert-a", "document reported lost")
    assert all(sl.status_at(i) == Status.REVOKED for i in a)
    assert all(sl.status_at(i) == Status.VALID for i in b)
    assert sl.reason_at(a[3]) == "document reported lost"
    packed = decode_lst(sl.lst())
    assert all(sl_mod.status_at(packed, 2, i) == 1 for i in a)
    assert sum(sl_mod.unpack(packed, 2)) == 5


def test_suspend_reinstate_and_final_revocation() -> None:
    sl = StatusList(URI)
    idx = sl.allocate("c", 2)
    sl.suspend("c", "under review")
    assert [sl.status_at(i) for i in idx] == [Status.SUSPENDED] * 2
    sl.reinstate("c")
    assert sl.status_of("c") == Status.VALID
    assert sl.reason_at(idx[0]) is None
    sl.revoke("c", "fraud")
    with pytest.raises(IllegalTransition):
        sl.suspend("c", "again")
    with pytest.raises(IllegalTransition):
        sl.reinstate("c")


def test_list_limits() -> None:
    with pytest.raises(InvalidInput, match="herd privacy"):
        StatusList(URI, size=1000)
    sl = StatusList(URI, bits=1)
    sl.allocate("c")
    with pytest.raises(InvalidInput, match="no suspension"):
        sl.suspend("c", "x")
    with pytest.raises(Conflict):
        sl.allocate("c")
    with pytest.raises(Conflict, match="full"):
        sl.allocate("big", sl.size)


def test_token_status_list_jwt_round_trip_and_fail_closed() -> None:
    key = SigningKey.generate("Ed25519")
    sl = StatusList(URI)
    idx = sl.allocate("c", 3)
    sl.revoke("c", "x")
    token = sl.sign_token(key, issuer="https://safecity.example", now=NOW)
    snap = sl_mod.read_token_status_list(token, KeySet([key.public]))
    assert snap.uri == URI
    assert snap.as_of == NOW
    assert snap.bits == 2
    assert [snap.status(i) for i in idx] == [1, 1, 1]
    with pytest.raises(StatusListError):
        sl_mod.read_token_status_list(token, KeySet([SigningKey.generate("Ed25519").public]))
    with pytest.raises(StatusListError, match="outside"):
        snap.status(sl.size * 10)


@pytest.mark.parametrize(
    "lst",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"definitely not zlib").decode().rstrip("="),
        base64.urlsafe_b64encode(zlib.compress(b"\x00" * 1000)[:-3]).decode().rstrip("="),
        base64.urlsafe_b64encode(zlib.compress(b"\x00" * (20 * 1024 * 1024))).decode().rstrip("="),
    ],
    ids=["not-base64", "not-zlib", "truncated", "bomb"],
)
def test_undecodable_lst_fails_closed(lst: str) -> None:
    with pytest.raises(StatusListError):
        decode_lst(lst)


def test_w3c_credentials_render_both_purposes() -> None:
    sl = StatusList(URI)
    rev = sl.allocate("r")[0]
    sus = sl.allocate("s")[0]
    sl.revoke("r", "x")
    sl.suspend("s", "y")
    for purpose, idx, other in (("revocation", rev, sus), ("suspension", sus, rev)):
        cred = sl.bitstring_credential(purpose, issuer="https://safecity.example", now=NOW)
        assert cred["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
        subject = cred["credentialSubject"]
        assert subject["statusPurpose"] == purpose
        assert subject["encodedList"].startswith("u")
        bits = decode_bitstring(subject["encodedList"])
        assert len(bits) * 8 == sl.size
        assert sl_mod.bit_at(bits, idx) == 1
        assert sl_mod.bit_at(bits, other) == 0
    with pytest.raises(StatusListError):
        decode_bitstring("u" + base64.urlsafe_b64encode(gzip.compress(b"x")[:-4]).decode())


def test_state_round_trip() -> None:
    sl = StatusList(URI, size=200_000)
    a = sl.allocate("a", 3)
    sl.allocate("b", 2)
    sl.revoke("a", "lost")
    sl.suspend("b", "check")
    back = StatusList.from_state(sl.to_state())
    assert back.size == 200_000
    assert back.lst() == sl.lst()
    assert back.indices("a") == a
    assert back.reason_at(a[0]) == "lost"
    assert back.free == sl.free
    with pytest.raises(Conflict):
        back.allocate("a")
    damaged = {**sl.to_state(), "batches": {"x": [sl.size + 5]}}
    with pytest.raises(InvalidInput, match="damaged"):
        StatusList.from_state(damaged)
    with pytest.raises(InvalidInput, match="damaged"):
        StatusList.from_state({**sl.to_state(), "statuses": "bm90IHpsaWI="})


def test_token_payload_times() -> None:
    sl = StatusList(URI)
    payload = sl.token_payload(issuer="i", now=NOW, ttl=timedelta(hours=12))
    assert payload["exp"] - payload["iat"] == 43_200
    assert payload["ttl"] == 43_200
    assert payload["status_list"]["bits"] == 2


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_decoders_only_raise_status_list_error(text: str) -> None:
    for decode in (decode_lst, decode_bitstring):
        try:
            out = decode(text)
        except StatusListError:
            continue
        assert isinstance(out, bytes)  # anything else raised would fail the test
