"""Guided photos: checked, stored in the blob store, fingerprinted and matched against
every stored photo of other cases (exact and near duplicates), EXIF time and place checked
against the claim. Matches and EXIF mismatches are review flags: never a refusal.

The fingerprints are kept per database engine in this process and refreshed from the rows
uploaded since the last look (rebuilt when rows went away, e.g. after retention); the
scan itself is linear in the stored photos (see ``docs/benchmarks.d/accidents-flow.md``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.accidents.exif import Severity, check_exif
from safecity.accidents.models import POSITIONS, AccidentCase, AccidentParty, AccidentPhoto
from safecity.accidents.photos import (
    PhotoIndex,
    PhotoInfo,
    PhotoLimits,
    PhotoMatch,
    load_photo,
    packed_hashes,
)
from safecity.accidents.service import (
    advance,
    audit_action,
    ensure_editable,
    flag,
    party_principal,
)
from safecity.platform.blobs import blob_store
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import settings_for

PHOTO_LIMITS = PhotoLimits(max_bytes=8 * 1024 * 1024)
_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass
class _CachedIndex:
    index: PhotoIndex = field(default_factory=PhotoIndex)
    seen: set[tuple[str, str]] = field(default_factory=set)  # (photo id, sha256)
    rows: int = 0  # photo rows in the table at the last refresh
    watermark: datetime | None = None  # latest uploaded_at read


_INDEXES: dict[int, _CachedIndex] = {}
_INDEX_LOCK = threading.Lock()


def _matches(session: Session, case_id: str, info: PhotoInfo) -> list[PhotoMatch]:
    """Stored photos of other cases matching ``info``. The fingerprints are kept per
    database engine in this process and refreshed from the rows uploaded since the last
    look (rebuilt when rows went away); a replaced photo's old fingerprint stays until
    the process restarts (a flag for a reviewer at worst, never a block)."""
    engine = session.get_bind()
    with _INDEX_LOCK:
        total = session.scalar(select(func.count()).select_from(AccidentPhoto)) or 0
        cached = _INDEXES.get(id(engine))
        if cached is None or total < cached.rows:
            cached = _INDEXES[id(engine)] = _CachedIndex()
        query = select(
            AccidentPhoto.case_id,
            AccidentPhoto.id,
            AccidentPhoto.sha256,
            AccidentPhoto.pixel_sha256,
            AccidentPhoto.packed_hashes,
            AccidentPhoto.uploaded_at,
        )
        if cached.watermark is not None:
            query = query.where(AccidentPhoto.uploaded_at >= cached.watermark)
        for owner, photo_id, sha, pixel_sha, packed, at in session.execute(query):
            if (photo_id, sha) in cached.seen:
                continue
            cached.seen.add((photo_id, sha))
            cached.index.insert_packed(
                owner, photo_id, sha256=sha, pixel_sha256=pixel_sha, packed=packed
            )
            cached.watermark = at if cached.watermark is None else max(cached.watermark, at)
        cached.rows = total
        return cached.index.matches(case_id, info)


def add_photo(
    *, session: Session, case: AccidentCase, party: AccidentParty, position: str, data: bytes
) -> AccidentPhoto:
    """Check, store and fingerprint one guided photo (a new one replaces the slot's)."""
    if position not in POSITIONS:
        raise InvalidInput(f"photo position must be one of {', '.join(POSITIONS)}")
    ensure_editable(case)
    info = load_photo(data, limits=PHOTO_LIMITS)  # 422 not an image, 413 too large
    settings = settings_for(session)
    blob_store(settings).put(
        data, content_type=_CONTENT_TYPES[info.format], max_bytes=PHOTO_LIMITS.max_bytes
    )
    exif = check_exif(
        info.exif, claimed_time=case.t0_started_at, claimed_place=(case.lat, case.lng)
    )
    matches = _matches(session, case.id, info)
    photo = session.scalars(
        select(AccidentPhoto).where(
            AccidentPhoto.case_id == case.id,
            AccidentPhoto.party_id == party.id,
            AccidentPhoto.position == position,
        )
    ).first() or AccidentPhoto(case_id=case.id, party_id=party.id, position=position)
    photo.sha256, photo.pixel_sha256 = info.sha256, info.pixel_sha256
    photo.content_type, photo.size_bytes = _CONTENT_TYPES[info.format], info.size_bytes
    photo.width, photo.height = info.width, info.height
    photo.packed_hashes = packed_hashes(info)
    photo.exif_taken_at = info.exif.taken_at
    photo.exif_flags = [f.code for f in exif]
    photo.matches = [
        {"case_id": m.case_id, "photo_id": m.photo_id, "kind": str(m.kind), "distance": m.distance}
        for m in matches[:10]
    ]
    photo.uploaded_at = utcnow()
    session.add(photo)
    session.flush()
    who = party_principal(case, party)
    audit_action(session, who, "photo", case, position=position, sha256=info.sha256)
    review = [
        {"code": f.code, "photo": position, "detail": f.detail}
        for f in exif
        if f.severity is Severity.REVIEW
    ]
    review += [
        {"code": f"duplicate_{m.kind}", "photo": position, "detail": f"case {m.case_id}"}
        for m in matches[:3]
    ]
    flag(session, case, who, review)
    advance(session=session, case=case, who=who)
    return photo
