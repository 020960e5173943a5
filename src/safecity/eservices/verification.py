"""Verifying e-certificates on the server (warm cache) and offline (trust bundle only).

:func:`verify_text` takes what a verifier scanned or received — an ``SC1:`` QR text or an
SD-JWT VC presentation (``<JWT>~<D>~...~<KB-JWT>``) — and returns a
:class:`~safecity.eservices.credentials.Verdict`: VALID, REVOKED (reason), SUSPENDED,
EXPIRED, STATUS-STALE (as of), or INVALID (with a code).

Server side, a :class:`VerifierCache` per (database, key directory) keeps the issuer
public keys and every status list decoded in memory. It rechecks the lists' ``version``
numbers at most every :data:`REFRESH_SECONDS` (one small query) and reloads only what
changed; a status change committed in this process marks the caches stale at once
(:func:`mark_stale`), so a revocation is seen by the next verification here and within
:data:`REFRESH_SECONDS` in other processes. ``as_of`` of a verdict is the time the status
was last confirmed from the database. A list whose stored state cannot be decoded fails
closed: credentials on it get INVALID (``status-undecodable``), never VALID. An unknown
``kid`` reloads the key files once (a rotation elsewhere), at most every 5 seconds.

Presentations must be key-bound to an ``audience`` and a ``nonce``; when a
:class:`ChallengeStore` is given (the API), the nonce must be one it issued for that
audience and is consumed on use; a :class:`~safecity.eservices.credentials.ReplayGuard`
refuses the same key-binding proof twice either way.

Offline (:func:`verify_offline`): only a signed trust bundle and the pinned trust anchor
(the bundle signer's public JWK Set): no database, no network; snapshots older than 24 h
give STATUS-STALE. Revocation reason *codes* (superseded, data_corrected, ...) are in
the bundle and in every verdict (``reason_code``, and "revoked by the issuer
(superseded)"); the free-text reasons stay private to staff (the certificate record), and
the public verification API does not show them either.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from safecity.eservices import registry_keys as rk
from safecity.eservices.credentials import (
    KeySet,
    ReplayGuard,
    SnapshotStatusSource,
    Verdict,
    VerdictStatus,
    load_bundle,
    verify_presentation,
    verify_qr,
)
from safecity.eservices.credentials.cwt_qr import PREFIX
from safecity.eservices.credentials.jose import JwsError, parse_unverified
from safecity.eservices.credentials.status_list import Status, StatusListError, unpack
from safecity.eservices.credentials.verify import StatusLookup
from safecity.eservices.registry_models import CertStatusList
from safecity.platform.errors import InvalidInput, PayloadTooLarge

REFRESH_SECONDS = 1.0
KEY_RELOAD_SECONDS = 5.0
MAX_TEXT = 16_384
CHALLENGE_TTL = timedelta(minutes=5)

_generation = 0
_gen_lock = threading.Lock()


def mark_stale() -> None:
    """Every cache in this process rechecks its lists on its next use."""
    global _generation
    with _gen_lock:
        _generation += 1


@dataclass(frozen=True)
class DecodedList:
    """What a verifier needs of a persisted status list: the statuses and the reason
    codes of the revoked entries (free text and allocation bookkeeping left undecoded)."""

    uri: str
    size: int
    statuses: npt.NDArray[np.uint8]
    codes: dict[int, str]

    def status_at(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise StatusListError(f"status index {index} is outside the list")
        return int(self.statuses[index])


def decode_state(state: Mapping[str, Any]) -> DecodedList:
    """Decode ``StatusList.to_state()`` for verification; a damaged state raises
    :class:`StatusListError` (the verifier then fails closed)."""
    try:
        size, bits = int(state["size"]), int(state["bits"])
        packed = zlib.decompress(base64.b64decode(state["statuses"], validate=True))
        statuses = unpack(packed, bits)
        if size < 1 or len(statuses) < size:
            raise ValueError("fewer statuses than entries")
        batches = state.get("batches") or {}
        codes: dict[int, str] = {}
        for cid, code in dict(state.get("codes") or {}).items():
            for idx in batches.get(cid, []):
                codes[int(idx)] = str(code)
        return DecodedList(str(state["uri"]), size, statuses[:size].copy(), codes)
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error) as exc:
        raise StatusListError(f"status list state is damaged: {exc}") from exc


class _CachedStatus:
    """A status source over the cache's decoded lists (fail closed on undecodable ones)."""

    def __init__(self, cache: VerifierCache) -> None:
        self.cache = cache

    def lookup(self, uri: str, index: int) -> StatusLookup:
        if uri in self.cache.undecodable:
            raise StatusListError(f"status list {uri} could not be decoded")
        found = self.cache.lists.get(uri)
        if found is None:
            raise LookupError(uri)
        status = found.status_at(index)
        code = found.codes.get(index, "unspecified") if status == Status.REVOKED else None
        return StatusLookup(status=status, as_of=self.cache.as_of, code=code)


class VerifierCache:
    """Issuer keys and decoded status lists, refreshed by version (see module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        key_dir: Path,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.key_dir = Path(key_dir)
        self.refresh_seconds = refresh_seconds
        self.clock = clock or (lambda: datetime.now(UTC))
        self.keys = KeySet()
        self.lists: dict[str, DecodedList] = {}
        self.versions: dict[str, int] = {}
        self.undecodable: frozenset[str] = frozenset()
        self.as_of = datetime.fromtimestamp(0, UTC)
        self._checked = -1e18
        self._generation = -1
        self._keys_loaded = -1e18
        self._lock = threading.Lock()
        self.source = _CachedStatus(self)
        self.replay_guard = ReplayGuard()

    def _reload_keys(self) -> None:
        self.keys = rk.issuer_store(self.key_dir).public_keys()
        self._keys_loaded = time.monotonic()

    def _due(self) -> bool:
        mono = time.monotonic()
        return mono - self._checked >= self.refresh_seconds or self._generation != _generation

    def refresh(self, *, force: bool = False) -> None:
        """Recheck list versions now (or when due) and reload what changed. While one
        thread reloads, the others go on with the current lists (unless ``force``)."""
        if not (force or self._due()):
            return
        never_loaded = self._generation == -1
        if not self._lock.acquire(blocking=force or never_loaded):
            return
        try:
            if not (force or self._due()):
                return
            self._reload(force=force)
        finally:
            self._lock.release()

    def _reload(self, *, force: bool) -> None:
        mono = time.monotonic()
        generation = _generation
        with self.sessions() as session:
            rows = session.execute(select(CertStatusList.uri, CertStatusList.version)).all()
            changed = [uri for uri, ver in rows if self.versions.get(uri) != ver]
            lists = dict(self.lists)
            versions = dict(self.versions)
            bad = set(self.undecodable)
            for row in (
                session.scalars(select(CertStatusList).where(CertStatusList.uri.in_(changed)))
                if changed
                else []
            ):
                versions[row.uri] = row.version
                try:
                    lists[row.uri] = decode_state(row.state)
                    bad.discard(row.uri)
                except StatusListError:
                    lists.pop(row.uri, None)
                    bad.add(row.uri)
        if force or not len(self.keys) or mono - self._keys_loaded >= 60:
            self._reload_keys()
        self.lists, self.versions, self.undecodable = lists, versions, frozenset(bad)
        self.as_of = self.clock()
        self._checked = mono
        self._generation = generation

    def reload_keys_if_due(self) -> bool:
        """Reload the key files (an unknown kid: rotated elsewhere?), at most every
        :data:`KEY_RELOAD_SECONDS`; ``True`` if it did."""
        if time.monotonic() - self._keys_loaded < KEY_RELOAD_SECONDS:
            return False
        self._reload_keys()
        return True


_caches: dict[tuple[int, str], VerifierCache] = {}
_caches_lock = threading.Lock()


def cache_for(sessions: sessionmaker[Session], key_dir: Path) -> VerifierCache:
    """The process-wide cache for this session factory and key directory."""
    key = (id(sessions), str(Path(key_dir).resolve()))
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None or cache.sessions is not sessions:
            cache = _caches[key] = VerifierCache(sessions, key_dir)
        return cache


class ChallengeStore:
    """One-time nonces handed to verifiers (``POST /api/eservices/verify/challenge``)."""

    def __init__(self, ttl: timedelta = CHALLENGE_TTL, max_items: int = 100_000) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def issue(self, audience: str, now: datetime) -> str:
        nonce = secrets.token_urlsafe(24)
        with self._lock:
            if len(self._items) >= self.max_items:
                self._items = {k: v for k, v in self._items.items() if v[1] > now}
                if len(self._items) >= self.max_items:
                    raise PayloadTooLarge("too many open verification challenges; retry later")
            self._items[nonce] = (audience, now + self.ttl)
        return nonce

    def consume(self, nonce: str, audience: str, now: datetime) -> bool:
        with self._lock:
            item = self._items.pop(nonce, None)
        return item is not None and item[0] == audience and item[1] > now


CHALLENGES = ChallengeStore()


def _kind(text: str) -> str:
    if text.upper().startswith(PREFIX):
        return "qr"
    if "~" in text and "." in text.split("~", 1)[0]:
        return "sd-jwt"
    return "unknown"


def _invalid(code: str, reason: str, fmt: str = "unknown") -> Verdict:
    return Verdict(status=VerdictStatus.INVALID, code=code, reason=reason, format=fmt)


def _reload_for_unknown_kid(cache: VerifierCache, jwt: str) -> None:
    try:
        kid = parse_unverified(jwt).header.get("kid")
    except JwsError:
        return
    if isinstance(kid, str) and kid not in cache.keys:
        cache.reload_keys_if_due()


def verify_text(
    text: str,
    *,
    cache: VerifierCache,
    profile: str | None = None,
    audience: str | None = None,
    nonce: str | None = None,
    challenges: ChallengeStore | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Server verdict on a scanned ``SC1:`` QR text or an SD-JWT VC presentation."""
    now = now or datetime.now(UTC)
    text = (text or "").strip()
    if not text:
        return _invalid("malformed", "nothing to verify")
    if len(text) > MAX_TEXT:
        return _invalid("malformed", f"longer than {MAX_TEXT} characters")
    cache.refresh()
    kind = _kind(text)
    if kind == "qr":
        verdict = verify_qr(text, keys=cache.keys, status=cache.source, now=now, profile=profile)
        if verdict.code == "unknown-key" and cache.reload_keys_if_due():
            verdict = verify_qr(
                text, keys=cache.keys, status=cache.source, now=now, profile=profile
            )
        return verdict
    if kind == "sd-jwt":
        if not audience or not nonce:
            return _invalid(
                "kb-missing", "a presentation needs its audience and nonce", "dc+sd-jwt"
            )
        _reload_for_unknown_kid(cache, text.split("~", 1)[0])
        if challenges is not None and not challenges.consume(nonce, audience, now):
            return _invalid("wrong-nonce", "nonce unknown, used or expired", "dc+sd-jwt")
        return verify_presentation(
            text,
            keys=cache.keys,
            status=cache.source,
            audience=audience,
            nonce=nonce,
            now=now,
            profile=profile,
            replay_guard=cache.replay_guard,
        )
    return _invalid("malformed", "not an SC1: QR text or an SD-JWT presentation")


def read_anchors(data: bytes | str | Mapping[str, Any]) -> KeySet:
    """A trust-anchor JWK Set (the bundle signer's public keys) from JSON."""
    try:
        doc = json.loads(data) if isinstance(data, bytes | str) else dict(data)
    except ValueError as exc:
        raise InvalidInput("trust anchor is not JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("trust anchor must be a JWK Set")
    return KeySet.from_jwks(doc)


def verify_offline(
    text: str,
    *,
    bundle: str,
    anchors: KeySet,
    profile: str | None = None,
    audience: str | None = None,
    nonce: str | None = None,
    replay_guard: ReplayGuard | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Verdict from a trust bundle alone (raises InvalidInput for a bundle that fails its
    signature check against ``anchors``)."""
    now = now or datetime.now(UTC)
    loaded = load_bundle(bundle.strip(), anchors)
    source = SnapshotStatusSource.from_bundle(loaded)
    text = (text or "").strip()
    kind = _kind(text)
    if kind == "qr":
        return verify_qr(
            text,
            keys=loaded.keys,
            status=source,
            now=now,
            profile=profile,
            vct_aliases=loaded.vct_aliases,
        )
    if kind == "sd-jwt":
        if not audience or not nonce:
            return _invalid(
                "kb-missing", "a presentation needs its audience and nonce", "dc+sd-jwt"
            )
        return verify_presentation(
            text,
            keys=loaded.keys,
            status=source,
            audience=audience,
            nonce=nonce,
            now=now,
            profile=profile,
            replay_guard=replay_guard,
        )
    return _invalid("malformed", "not an SC1: QR text or an SD-JWT presentation")


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat(timespec="seconds") if value else None

    return {
        "status": str(verdict.status),
        "code": verdict.code,
        "reason": verdict.reason,
        "reason_code": verdict.reason_code,
        "format": verdict.format,
        "claims": dict(verdict.claims),
        "issuer": verdict.issuer,
        "vct": verdict.vct,
        "kid": verdict.kid,
        "expires_at": iso(verdict.expires_at),
        "as_of": iso(verdict.as_of),
    }
