"""Verification verdicts for SD-JWT presentations and ``SC1:`` QR certificates.

Pure functions: the caller supplies the trusted issuer keys, a status source and the
time. Verdicts, checked in this order (the first that applies wins):

INVALID (with ``code``: malformed, bad-signature, unknown-key, tampered-disclosure,
kb-missing, kb-bad-signature, wrong-nonce, wrong-audience, kb-too-old, replayed,
not-yet-valid, missing-claims, no-status, status-unavailable, status-undecodable, ...)
→ EXPIRED → REVOKED (with the reason code — superseded, data_corrected, ... — when the
source publishes it; a free-text reason only from a source that has it privately) →
STATUS-STALE (the status snapshot is older than 24 h; ``as_of`` says when it was taken)
→ SUSPENDED → VALID.

A revocation in a stale snapshot is still REVOKED (revocation is final); anything the
verifier cannot decode fails closed (INVALID), never VALID.

Status sources: :class:`SnapshotStatusSource` (decoded Token Status List JWTs or an
offline bundle's snapshots) and :class:`LiveStatusSource` (the issuer's in-memory
:class:`~safecity.eservices.credentials.status_list.StatusList`, server side).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from safecity.eservices.credentials import cwt_qr, sdjwt
from safecity.eservices.credentials.bundle import TrustBundle
from safecity.eservices.credentials.keys import KeySet
from safecity.eservices.credentials.profiles import Profile, get_profile
from safecity.eservices.credentials.status_list import (
    Status,
    StatusList,
    StatusListError,
    StatusSnapshot,
)

MAX_STATUS_AGE = timedelta(hours=24)
CLOCK_SKEW = timedelta(seconds=60)


class VerdictStatus(StrEnum):
    VALID = "VALID"
    REVOKED = "REVOKED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    STATUS_STALE = "STATUS-STALE"
    INVALID = "INVALID"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification. ``claims`` are profile-filtered and only set when
    the signature verified; ``code`` is a stable key for translations and metrics."""

    status: VerdictStatus
    code: str
    reason: str
    format: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    issuer: str | None = None
    vct: str | None = None
    kid: str | None = None
    expires_at: datetime | None = None
    as_of: datetime | None = None
    reason_code: str | None = None
    """Why a REVOKED credential was revoked (:data:`.status_list.REASON_CODES`)."""

    @property
    def valid(self) -> bool:
        return self.status is VerdictStatus.VALID


@dataclass(frozen=True)
class StatusLookup:
    status: int
    as_of: datetime
    reason: str | None = None
    code: str | None = None


class StatusSource(Protocol):
    """Looks up a status-list entry; raises :class:`StatusListError` when it cannot."""

    def lookup(self, uri: str, index: int) -> StatusLookup: ...


class SnapshotStatusSource:
    """Status from decoded snapshots (server cache of status JWTs, or an offline bundle)."""

    def __init__(
        self, snapshots: Mapping[str, StatusSnapshot], undecodable: frozenset[str] = frozenset()
    ) -> None:
        self.snapshots = dict(snapshots)
        self.undecodable = undecodable

    @classmethod
    def from_bundle(cls, bundle: TrustBundle) -> SnapshotStatusSource:
        return cls(bundle.snapshots, bundle.undecodable)

    def lookup(self, uri: str, index: int) -> StatusLookup:
        if uri in self.undecodable:
            raise StatusListError(f"status list {uri} could not be decoded")
        snap = self.snapshots.get(uri)
        if snap is None:
            raise LookupError(uri)
        return StatusLookup(
            status=snap.status(index), as_of=snap.as_of, code=snap.reason_code(index)
        )


class LiveStatusSource:
    """Status straight from the issuer's lists (fresh: ``as_of`` is now, reasons known)."""

    def __init__(
        self, lists: Mapping[str, StatusList], clock: Callable[[], datetime] | None = None
    ) -> None:
        self.lists = dict(lists)
        self.clock = clock or (lambda: datetime.now(UTC))

    def lookup(self, uri: str, index: int) -> StatusLookup:
        sl = self.lists.get(uri)
        if sl is None:
            raise LookupError(uri)
        return StatusLookup(
            status=int(sl.status_at(index)),
            as_of=self.clock(),
            reason=sl.reason_at(index),
            code=sl.code_at(index),
        )


class ReplayGuard:
    """Remembers accepted key-binding proofs until they could expire anyway, so the same
    presentation is accepted once even if a verifier reused a nonce."""

    def __init__(self, window: timedelta = sdjwt.MAX_KB_AGE + CLOCK_SKEW) -> None:
        self.window = window
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, now: datetime) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            expiry = self._seen.get(key)
            if expiry is not None and expiry > now:
                return False
            self._seen[key] = now + self.window
            return True


def _invalid(fmt: str, code: str, reason: str) -> Verdict:
    return Verdict(status=VerdictStatus.INVALID, code=code, reason=reason, format=fmt)


def _judge(
    base: Verdict,
    *,
    exp: int | None,
    nbf: int | None,
    status_ref: tuple[str, int] | None,
    source: StatusSource,
    now: datetime,
    max_status_age: timedelta,
    require_status: bool,
) -> Verdict:
    """Time and status checks shared by both formats (signature already verified)."""

    def out(status: VerdictStatus, code: str, reason: str, **kw: Any) -> Verdict:
        return Verdict(
            status=status,
            code=code,
            reason=reason,
            format=base.format,
            claims=base.claims if status is not VerdictStatus.INVALID else {},
            issuer=base.issuer,
            vct=base.vct,
            kid=base.kid,
            expires_at=base.expires_at,
            **kw,
        )

    ts = now.timestamp()
    if nbf is not None and nbf > ts + CLOCK_SKEW.total_seconds():
        return out(VerdictStatus.INVALID, "not-yet-valid", "credential is not valid yet")
    if exp is None:
        return out(VerdictStatus.INVALID, "malformed", "credential has no expiry")
    if exp <= ts:
        return out(VerdictStatus.EXPIRED, "expired", "credential has expired")
    if status_ref is None:
        if require_status:
            return out(VerdictStatus.INVALID, "no-status", "credential has no status entry")
        return out(VerdictStatus.VALID, "valid", "signature, disclosures and expiry check out")
    uri, index = status_ref
    try:
        found = source.lookup(uri, index)
    except StatusListError as exc:
        return out(VerdictStatus.INVALID, "status-undecodable", f"status unreadable: {exc}")
    except LookupError:
        return out(VerdictStatus.INVALID, "status-unavailable", f"no status list {uri} at hand")
    as_of = found.as_of
    stale = now - as_of > max_status_age
    if found.status == Status.REVOKED:
        shown = found.code not in (None, "unspecified")
        label = "revoked by the issuer" + (f" ({found.code})" if shown else "")
        why = found.reason or label
        return out(VerdictStatus.REVOKED, "revoked", why, as_of=as_of, reason_code=found.code)
    if found.status not in (Status.VALID, Status.SUSPENDED):
        return out(VerdictStatus.INVALID, "status-unknown", f"status value {found.status}")
    if stale:
        when = as_of.isoformat(timespec="seconds")
        return out(VerdictStatus.STATUS_STALE, "stale", f"status as of {when}", as_of=as_of)
    if found.status == Status.SUSPENDED:
        why = found.reason or "suspended by the issuer"
        return out(VerdictStatus.SUSPENDED, "suspended", why, as_of=as_of)
    return out(VerdictStatus.VALID, "valid", "credential is valid", as_of=as_of)


def _profile_claims(
    claims: Mapping[str, Any], profile: Profile | None
) -> tuple[dict[str, Any], list[str]]:
    if profile is None:
        return dict(claims), []
    return profile.filter(claims), profile.missing(claims)


def verify_presentation(
    presentation: str,
    *,
    keys: KeySet,
    status: StatusSource,
    audience: str,
    nonce: str,
    now: datetime,
    profile: str | None = None,
    replay_guard: ReplayGuard | None = None,
    max_status_age: timedelta = MAX_STATUS_AGE,
    require_status: bool = True,
) -> Verdict:
    """Verdict on an SD-JWT VC presentation with a KB-JWT for ``audience`` + ``nonce``."""
    fmt = "dc+sd-jwt"
    prof = get_profile(profile) if profile is not None else None
    try:
        checked = sdjwt.verify_sd_jwt(presentation, keys, audience=audience, nonce=nonce, now=now)
    except sdjwt.SdJwtError as exc:
        return _invalid(fmt, exc.code, exc.message)
    payload = checked.payload
    if replay_guard is not None and checked.kb_payload is not None:
        key = f"{checked.kb_payload.get('sd_hash')}|{nonce}"
        if not replay_guard.first_use(key, now):
            return _invalid(fmt, "replayed", "this presentation was already used")
    meta = {"iss", "vct", "iat", "exp", "nbf", "cnf", "status"}
    shown = {k: v for k, v in checked.claims.items() if k not in meta}
    exp_claim = payload.get("exp")
    if prof is not None and "valid_until" in prof.claims and isinstance(exp_claim, int):
        shown["valid_until"] = (
            datetime.fromtimestamp(exp_claim, UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z")
        )
    claims, missing = _profile_claims(shown, prof)
    if missing:
        return _invalid(fmt, "missing-claims", f"profile {profile} needs {', '.join(missing)}")
    ref: tuple[str, int] | None = None
    st = payload.get("status")
    if st is not None:
        sl = st.get("status_list") if isinstance(st, dict) else None
        if (
            not isinstance(sl, dict)
            or not isinstance(sl.get("uri"), str)
            or not isinstance(sl.get("idx"), int)
        ):
            return _invalid(fmt, "malformed", "status claim is malformed")
        ref = (sl["uri"], sl["idx"])
    exp = payload.get("exp")
    nbf = payload.get("nbf")
    base = Verdict(
        status=VerdictStatus.VALID,
        code="valid",
        reason="",
        format=fmt,
        claims=claims,
        issuer=payload.get("iss") if isinstance(payload.get("iss"), str) else None,
        vct=payload.get("vct") if isinstance(payload.get("vct"), str) else None,
        kid=checked.issuer_key.kid,
        expires_at=datetime.fromtimestamp(exp, UTC) if isinstance(exp, int) else None,
    )
    return _judge(
        base,
        exp=exp if isinstance(exp, int) else None,
        nbf=nbf if isinstance(nbf, int) else None,
        status_ref=ref,
        source=status,
        now=now,
        max_status_age=max_status_age,
        require_status=require_status,
    )


def verify_qr(
    text: str,
    *,
    keys: KeySet,
    status: StatusSource,
    now: datetime,
    profile: str | None = None,
    max_status_age: timedelta = MAX_STATUS_AGE,
    require_status: bool = True,
    vct_aliases: Mapping[int, str] | None = None,
) -> Verdict:
    """Verdict on an ``SC1:`` QR certificate (expired after its ≤ 5-minute life);
    ``vct_aliases``: the issuer's published type aliases (a trust bundle's)."""
    fmt = "cwt-qr"
    prof = get_profile(profile) if profile is not None else None
    try:
        checked = cwt_qr.verify_qr(text, keys, vct_aliases=vct_aliases)
    except cwt_qr.QrError as exc:
        return _invalid(fmt, exc.code, exc.message)
    claims, missing = _profile_claims(checked.claims, prof)
    if missing:
        return _invalid(fmt, "missing-claims", f"profile {profile} needs {', '.join(missing)}")
    exp = int(checked.expires_at.timestamp()) if checked.expires_at else None
    iat = int(checked.issued_at.timestamp()) if checked.issued_at else None
    if exp is not None and iat is not None and exp - iat > cwt_qr.MAX_TTL.total_seconds():
        return _invalid(fmt, "malformed", "QR lifetime exceeds 5 minutes")
    base = Verdict(
        status=VerdictStatus.VALID,
        code="valid",
        reason="",
        format=fmt,
        claims=claims,
        issuer=checked.issuer,
        vct=checked.vct,
        kid=checked.key.kid,
        expires_at=checked.expires_at,
    )
    return _judge(
        base,
        exp=exp,
        nbf=iat,
        status_ref=checked.status,
        source=status,
        now=now,
        max_status_age=max_status_age,
        require_status=require_status,
    )
