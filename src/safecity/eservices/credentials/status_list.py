"""Revocation and suspension status lists, one in-memory structure, two published forms.

:class:`StatusList` holds a status (valid / revoked / suspended) for each of ``size``
entries (at least 131,072, so a published list hides which entry is whose: herd privacy),
hands out *random* unused indices, and groups the indices of one certificate's batch of
credential copies so they are revoked or suspended together. It renders as

- an IETF Token Status List (draft-ietf-oauth-status-list): ``status_list.lst`` is the
  zlib-compressed byte array, ``bits`` (1, 2, 4 or 8) per status, entry 0 in the least
  significant bits of byte 0; signed as a ``statuslist+jwt``;
- W3C Bitstring Status List credentials (VC 2.0): one per purpose (``revocation``,
  ``suspension``), ``encodedList`` = multibase ``u`` + base64url(gzip(bitstring)), entry 0
  the most significant bit of byte 0.

Revocation reason **codes** (:data:`REASON_CODES`, a small closed set; the free-text
reason stays private in :meth:`StatusList.to_state`) are published beside ``lst`` as
``rsn``: base64url(zlib(one byte per *revoked* entry, in index order)) — the code of the
k-th revoked entry is byte k, so a verifier finds an entry's code from the list itself
(:meth:`StatusSnapshot.reason_code`) and the extra bytes grow with the revocations only.

The decoders (:func:`decode_lst`, :func:`decode_bitstring`, :func:`read_token_status_list`)
fail closed: anything undecodable raises :class:`StatusListError`, never "valid".
State for persistence: :meth:`StatusList.to_state` / :meth:`StatusList.from_state`.
"""

from __future__ import annotations

import base64
import gzip
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from safecity.eservices.credentials.jose import (
    JwsError,
    b64url_decode,
    b64url_encode,
    sign_jwt,
    verify_jwt,
)
from safecity.eservices.credentials.keys import KeySet, SigningKey
from safecity.platform.errors import Conflict, IllegalTransition, InvalidInput, NotFound

MIN_SIZE = 131_072
MAX_DECODED_BYTES = 16 * 1024 * 1024  # refuse zlib/gzip bombs
STATUS_LIST_TYP = "statuslist+jwt"
W3C_CONTEXT = "https://www.w3.org/ns/credentials/v2"


#: Revocation reason codes; the position is the published byte (append only).
REASON_CODES: tuple[str, ...] = (
    "unspecified",
    "superseded",
    "data_corrected",
    "holder_request",
    "issued_in_error",
    "withdrawn_by_authority",
)
REASON_NUMBERS: dict[str, int] = {c: i for i, c in enumerate(REASON_CODES)}


def check_reason_code(code: str | None) -> str:
    """``code`` if it is one of :data:`REASON_CODES` (None: ``unspecified``)."""
    if code is None:
        return "unspecified"
    if code not in REASON_NUMBERS:
        raise InvalidInput(f"unknown reason code {code!r}; known: {', '.join(REASON_CODES)}")
    return code


def encode_reasons(codes: bytes) -> str:
    return b64url_encode(zlib.compress(codes, 9))


def decode_reasons(rsn: str) -> bytes:
    try:
        raw = b64url_decode(rsn)
    except (ValueError, TypeError) as exc:
        raise StatusListError("status list 'rsn' is not base64url") from exc
    return _inflate(raw, zlib.MAX_WBITS)


class Status(IntEnum):
    """Token Status List values (0x00 VALID, 0x01 INVALID = revoked, 0x02 SUSPENDED)."""

    VALID = 0
    REVOKED = 1
    SUSPENDED = 2


class StatusListError(Exception):
    """A status list (or an entry of it) cannot be decoded; verifiers fail closed on it."""


def pack(statuses: npt.NDArray[np.uint8], bits: int) -> bytes:
    """Token Status List byte array: entry ``i`` at bit offset ``(i*bits) % 8`` of byte
    ``i*bits // 8`` (least significant first)."""
    if bits not in (1, 2, 4, 8):
        raise InvalidInput("bits must be 1, 2, 4 or 8")
    per = 8 // bits
    arr = np.asarray(statuses, dtype=np.uint8)
    if arr.size and int(arr.max()) >= 1 << bits:
        raise InvalidInput(f"a status does not fit in {bits} bits")
    pad = (-arr.size) % per
    grid = np.concatenate([arr, np.zeros(pad, np.uint8)]).reshape(-1, per).astype(np.uint16)
    shifts = (np.arange(per, dtype=np.uint16) * bits)[None, :]
    packed: bytes = (grid << shifts).sum(axis=1).astype(np.uint8).tobytes()
    return packed


def unpack(data: bytes, bits: int) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`pack`: one status per entry (``len(data) * 8 // bits`` entries)."""
    if bits not in (1, 2, 4, 8):
        raise StatusListError("bits must be 1, 2, 4 or 8")
    per = 8 // bits
    raw = np.frombuffer(data, dtype=np.uint8)
    shifts = (np.arange(per, dtype=np.uint8) * bits)[None, :]
    out = ((raw[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)
    return np.asarray(out, dtype=np.uint8)


def status_at(data: bytes, bits: int, index: int) -> int:
    """The status of entry ``index`` in a packed byte array (O(1))."""
    if index < 0 or (index * bits) // 8 >= len(data):
        raise StatusListError(f"status index {index} is outside the list")
    byte = data[(index * bits) // 8]
    return (byte >> ((index * bits) % 8)) & ((1 << bits) - 1)


def _inflate(data: bytes, wbits: int) -> bytes:
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, MAX_DECODED_BYTES)
        if d.unconsumed_tail or not d.eof:
            raise StatusListError("status list is truncated or too large")
    except zlib.error as exc:
        raise StatusListError("status list is not valid compressed data") from exc
    return out


def encode_lst(packed: bytes) -> str:
    return b64url_encode(zlib.compress(packed, 9))


def decode_lst(lst: str) -> bytes:
    """The byte array of a Token Status List ``lst`` value (base64url of zlib)."""
    try:
        raw = b64url_decode(lst)
    except (ValueError, TypeError) as exc:
        raise StatusListError("status list 'lst' is not base64url") from exc
    return _inflate(raw, zlib.MAX_WBITS)


def encode_bitstring(bitstring: bytes) -> str:
    return "u" + b64url_encode(gzip.compress(bitstring, compresslevel=9, mtime=0))


def decode_bitstring(encoded_list: str) -> bytes:
    """The bitstring of a W3C ``encodedList`` (multibase ``u``-prefixed, or bare, base64url
    of gzip)."""
    if not isinstance(encoded_list, str) or not encoded_list:
        raise StatusListError("encodedList is empty")
    text = encoded_list[1:] if encoded_list[0] == "u" else encoded_list
    try:
        raw = b64url_decode(text)
    except ValueError as exc:
        raise StatusListError("encodedList is not base64url") from exc
    return _inflate(raw, 16 + zlib.MAX_WBITS)


def bit_at(bitstring: bytes, index: int) -> int:
    """Entry ``index`` of a W3C bitstring (most significant bit of byte 0 is entry 0)."""
    if index < 0 or index // 8 >= len(bitstring):
        raise StatusListError(f"status index {index} is outside the list")
    return (bitstring[index // 8] >> (7 - index % 8)) & 1


class StatusList:
    """One status list: statuses, allocated indices, and each certificate's indices."""

    def __init__(self, uri: str, *, size: int = MIN_SIZE, bits: int = 2) -> None:
        if size < MIN_SIZE:
            raise InvalidInput(f"a status list needs at least {MIN_SIZE} entries (herd privacy)")
        if bits not in (1, 2, 4, 8):
            raise InvalidInput("bits must be 1, 2, 4 or 8")
        self.uri = uri
        self.size = size
        self.bits = bits
        self.statuses: npt.NDArray[np.uint8] = np.zeros(size, np.uint8)
        self.allocated: npt.NDArray[np.bool_] = np.zeros(size, np.bool_)
        self.batches: dict[str, list[int]] = {}
        self.reasons: dict[str, str] = {}
        self.codes: dict[str, str] = {}
        self._owner: dict[int, str] = {}

    # -- allocation and status changes ---------------------------------------------------
    @property
    def free(self) -> int:
        return self.size - int(self.allocated.sum())

    def allocate(self, certificate_id: str, copies: int = 1) -> list[int]:
        """``copies`` random unused indices for a certificate's batch of credentials."""
        if copies < 1:
            raise InvalidInput("copies must be at least 1")
        if certificate_id in self.batches:
            raise Conflict(f"certificate {certificate_id} already has status indices")
        if copies > self.free - self.size // 10:  # keep 10% headroom: sampling stays fast
            raise Conflict(f"status list {self.uri} is full; open a new list")
        chosen: list[int] = []
        while len(chosen) < copies:
            idx = secrets.randbelow(self.size)
            if not self.allocated[idx]:
                self.allocated[idx] = True
                chosen.append(idx)
        self.batches[certificate_id] = chosen
        for idx in chosen:
            self._owner[idx] = certificate_id
        return list(chosen)

    def indices(self, certificate_id: str) -> list[int]:
        try:
            return list(self.batches[certificate_id])
        except KeyError:
            raise NotFound(f"certificate {certificate_id} has no entry in {self.uri}") from None

    def status_of(self, certificate_id: str) -> Status:
        return Status(int(self.statuses[self.indices(certificate_id)[0]]))

    def revoke(self, certificate_id: str, reason: str, code: str | None = None) -> list[int]:
        """Revoke every copy of a certificate (final), with a published reason ``code``
        (:data:`REASON_CODES`) and a private free-text ``reason``. Returns the indices."""
        checked = check_reason_code(code)
        changed = self._set(certificate_id, Status.REVOKED, reason)
        self.codes[certificate_id] = checked
        return changed

    def suspend(self, certificate_id: str, reason: str) -> list[int]:
        """Suspend every copy (needs ``bits`` >= 2); :meth:`reinstate` lifts it."""
        if self.bits < 2:
            raise InvalidInput(f"status list {self.uri} has 1 bit per entry: no suspension")
        if self.status_of(certificate_id) == Status.REVOKED:
            raise IllegalTransition(f"certificate {certificate_id} is revoked; cannot suspend")
        return self._set(certificate_id, Status.SUSPENDED, reason)

    def reinstate(self, certificate_id: str) -> list[int]:
        """Lift a suspension (a revoked certificate stays revoked)."""
        if self.status_of(certificate_id) != Status.SUSPENDED:
            raise IllegalTransition(f"certificate {certificate_id} is not suspended")
        self.reasons.pop(certificate_id, None)
        return self._set(certificate_id, Status.VALID, None)

    def _set(self, certificate_id: str, status: Status, reason: str | None) -> list[int]:
        idx = self.indices(certificate_id)
        self.statuses[idx] = int(status)
        if reason is not None:
            self.reasons[certificate_id] = reason
        return idx

    def status_at(self, index: int) -> Status:
        if not 0 <= index < self.size:
            raise StatusListError(f"status index {index} is outside the list")
        return Status(int(self.statuses[index]))

    def reason_at(self, index: int) -> str | None:
        owner = self._owner.get(index)
        return self.reasons.get(owner) if owner is not None else None

    def code_at(self, index: int) -> str | None:
        """The reason code of a revoked entry (None when not revoked)."""
        if self.status_at(index) != Status.REVOKED:
            return None
        owner = self._owner.get(index)
        return self.codes.get(owner, "unspecified") if owner is not None else "unspecified"

    def reason_bytes(self) -> bytes:
        """One code byte per revoked entry, in index order (see the module doc)."""
        revoked = np.flatnonzero(self.statuses == int(Status.REVOKED))
        if not revoked.size:
            return b""
        by_index = {
            i: REASON_NUMBERS.get(self.codes.get(cid, "unspecified"), 0)
            for cid in self.codes
            for i in self.batches.get(cid, [])
        }
        return bytes(by_index.get(int(i), 0) for i in revoked)

    def rsn(self) -> str | None:
        """The published ``rsn`` value (None when nothing is revoked)."""
        data = self.reason_bytes()
        return encode_reasons(data) if data else None

    # -- rendering -----------------------------------------------------------------------
    def packed(self) -> bytes:
        return pack(self.statuses, self.bits)

    def lst(self) -> str:
        """The Token Status List ``lst`` value."""
        return encode_lst(self.packed())

    def token_payload(self, *, issuer: str, now: datetime, ttl: timedelta) -> dict[str, Any]:
        return {
            "iss": issuer,
            "sub": self.uri,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "ttl": int(ttl.total_seconds()),
            "status_list": self.status_list_claim(),
        }

    def status_list_claim(self) -> dict[str, Any]:
        """``{"bits", "lst"}`` plus ``rsn`` (reason codes) when anything is revoked."""
        out: dict[str, Any] = {"bits": self.bits, "lst": self.lst()}
        rsn = self.rsn()
        if rsn is not None:
            out["rsn"] = rsn
        return out

    def sign_token(
        self, key: SigningKey, *, issuer: str, now: datetime, ttl: timedelta = timedelta(hours=24)
    ) -> str:
        """The signed Token Status List JWT (``typ`` statuslist+jwt)."""
        return sign_jwt(
            self.token_payload(issuer=issuer, now=now, ttl=ttl), key, typ=STATUS_LIST_TYP
        )

    def bitstring(self, purpose: str) -> bytes:
        wanted = {"revocation": Status.REVOKED, "suspension": Status.SUSPENDED}.get(purpose)
        if wanted is None:
            raise InvalidInput("purpose must be 'revocation' or 'suspension'")
        return np.packbits(self.statuses == int(wanted), bitorder="big").tobytes()

    def bitstring_credential(self, purpose: str, *, issuer: str, now: datetime) -> dict[str, Any]:
        """An unsigned W3C ``BitstringStatusListCredential`` (VC 2.0) for ``purpose``."""
        list_id = f"{self.uri}/{purpose}"
        return {
            "@context": [W3C_CONTEXT],
            "id": list_id,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": issuer,
            "validFrom": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "credentialSubject": {
                "id": f"{list_id}#list",
                "type": "BitstringStatusList",
                "statusPurpose": purpose,
                "encodedList": encode_bitstring(self.bitstring(purpose)),
            },
        }

    # -- persistence ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of everything (for the lead's persistence)."""
        return {
            "uri": self.uri,
            "size": self.size,
            "bits": self.bits,
            "statuses": base64.b64encode(zlib.compress(self.packed())).decode(),
            "batches": {k: list(v) for k, v in self.batches.items()},
            "reasons": dict(self.reasons),
            "codes": dict(self.codes),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StatusList:
        """Rebuild a list from :meth:`to_state`; a damaged state raises InvalidInput."""
        try:
            sl = cls(str(state["uri"]), size=int(state["size"]), bits=int(state["bits"]))
            packed = zlib.decompress(base64.b64decode(state["statuses"]))
            statuses = unpack(packed, sl.bits)
            if len(statuses) < sl.size:
                raise ValueError("fewer statuses than entries")
            sl.statuses = statuses[: sl.size].copy()
            for cid, idx in dict(state["batches"]).items():
                indices = [int(i) for i in idx]
                if not indices or min(indices) < 0 or max(indices) >= sl.size:
                    raise ValueError(f"indices of {cid} are outside the list")
                sl.batches[str(cid)] = indices
                sl.allocated[indices] = True
                for i in indices:
                    sl._owner[i] = str(cid)
            reasons = dict(state.get("reasons", {}))
            codes = {
                str(k): check_reason_code(str(v)) for k, v in dict(state.get("codes", {})).items()
            }
        except (KeyError, TypeError, ValueError, zlib.error, StatusListError) as exc:
            raise InvalidInput(f"status list state is damaged: {exc}") from exc
        sl.reasons = {str(k): str(v) for k, v in reasons.items()}
        sl.codes = codes
        return sl


@dataclass(frozen=True)
class StatusSnapshot:
    """A decoded, verified Token Status List: look entries up in O(1)."""

    uri: str
    bits: int
    data: bytes
    as_of: datetime
    issuer: str | None = None
    reasons: bytes | None = None
    """One code byte per revoked entry in index order (``rsn``), when published."""

    def status(self, index: int) -> int:
        return status_at(self.data, self.bits, index)

    @cached_property
    def _revoked_rank(self) -> npt.NDArray[np.int64]:
        revoked = unpack(self.data, self.bits) == int(Status.REVOKED)
        return np.cumsum(revoked, dtype=np.int64)

    def reason_code(self, index: int) -> str | None:
        """The published reason code of a revoked entry; None when the snapshot carries
        no codes or they do not match the list (never guessed)."""
        if self.reasons is None or self.status(index) != Status.REVOKED:
            return None
        ranks = self._revoked_rank
        if not ranks.size or int(ranks[-1]) != len(self.reasons):
            return None
        number = self.reasons[int(ranks[index]) - 1]
        return REASON_CODES[number] if number < len(REASON_CODES) else None


def snapshot_from_payload(payload: Mapping[str, Any]) -> StatusSnapshot:
    """A :class:`StatusSnapshot` from a Token Status List JWT payload (already verified)."""
    sl = payload.get("status_list")
    sub, iat = payload.get("sub"), payload.get("iat")
    if not isinstance(sl, dict) or not isinstance(sub, str) or not isinstance(iat, int):
        raise StatusListError("status list token lacks sub, iat or status_list")
    bits, lst = sl.get("bits"), sl.get("lst")
    if bits not in (1, 2, 4, 8) or not isinstance(lst, str):
        raise StatusListError("status_list needs bits in (1, 2, 4, 8) and a string lst")
    issuer = payload.get("iss")
    rsn = sl.get("rsn")
    reasons: bytes | None = None
    if isinstance(rsn, str):
        try:
            reasons = decode_reasons(rsn)
        except StatusListError:
            reasons = None  # codes are an extra: the statuses themselves still decode
    return StatusSnapshot(
        uri=sub,
        bits=int(bits),
        data=decode_lst(lst),
        as_of=datetime.fromtimestamp(iat, UTC),
        issuer=issuer if isinstance(issuer, str) else None,
        reasons=reasons,
    )


def read_token_status_list(token: str, keys: KeySet) -> StatusSnapshot:
    """Verify a Token Status List JWT with ``keys`` and decode it (fail closed)."""
    try:
        parsed, _ = verify_jwt(token, keys, typ=STATUS_LIST_TYP)
    except JwsError as exc:
        raise StatusListError(f"status list token rejected: {exc.message}") from exc
    return snapshot_from_payload(parsed.payload)
