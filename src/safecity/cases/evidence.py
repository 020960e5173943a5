"""Evidence files on a case: upload, list, download, chain of custody.

The file's type is sniffed from its magic bytes (PDF, JPEG, PNG, WebP; anything else is
422), its size is limited (:data:`MAX_EVIDENCE_BYTES`, 413; the route's body limit is
registered next to it in :mod:`safecity.cases.api`), and the bytes are stored by SHA-256
in a :class:`~safecity.platform.blobs.BlobStore`. The row is the chain-of-custody record;
adding a file puts "who added it, its hash" on the case's (internal) timeline. Reads are
scoped like case reads (404 out of scope) and every list and download is audited as a
personal-data read. Evidence is never on the public portal (internal timeline entries,
staff-only routes).

The store is pluggable: :func:`configure_store` installs a factory (settings → store);
the default is :func:`~safecity.platform.blobs.blob_store`, the content-addressed store
the settings name: files under ``var_dir/blobs``, or an S3-compatible bucket
(``SAFECITY_BLOB_BACKEND=s3``, :mod:`safecity.platform.blobs_s3`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import service
from safecity.cases.journal import journal
from safecity.cases.work_models import CaseEvidence
from safecity.cases.workflow import CASE, WRITE
from safecity.platform.blobs import DEFAULT_TYPES, BlobStore, blob_store, sniff
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, NotFound, PayloadTooLarge, PermissionDenied
from safecity.platform.runtime import settings_for
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.settings import Settings

RECORD = CASE.record_type
MAX_EVIDENCE_BYTES = 20 * 1024 * 1024
ALLOWED_TYPES: frozenset[str] = DEFAULT_TYPES
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")

StoreFactory = Callable[[Settings], BlobStore]
"""Settings → the store evidence goes to."""


def _default_store(settings: Settings) -> BlobStore:
    return blob_store(settings, allowed_types=ALLOWED_TYPES)


_factory: StoreFactory = _default_store


def configure_store(factory: StoreFactory | None) -> None:
    """Install the evidence store factory (None: back to the configured store)."""
    global _factory
    _factory = factory or _default_store


def store_for(session: Session) -> BlobStore:
    return _factory(settings_for(session))


class EvidenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    sha256: str
    media_type: str
    size: int
    filename: str
    description: str
    added_by: str
    added_at: datetime


def clean_filename(name: str) -> str:
    """A display name without paths or odd characters (at most 200 characters)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")
    return cleaned[:200] or "evidence"


def add(
    *,
    session: Session,
    principal: Principal,
    case_id: str,
    data: bytes,
    filename: str,
    description: str = "",
) -> CaseEvidence:
    """Check, store and record one evidence file (413 too large, 422 empty or a type that
    is not allowed); on the case's timeline with its hash, audited."""
    if not principal.can(WRITE):
        raise PermissionDenied(f"permission {WRITE!r} is required to add evidence")
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    limit = MAX_EVIDENCE_BYTES
    if len(data) > limit:
        raise PayloadTooLarge(f"file is larger than {limit} bytes")
    if not data:
        raise InvalidInput("file is empty")
    media_type = sniff(data[:16])
    if media_type not in ALLOWED_TYPES:
        raise InvalidInput(
            "evidence must be a PDF, JPEG, PNG or WebP file", allowed=sorted(ALLOWED_TYPES)
        )
    text = description.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInput(f"description is longer than {MAX_NOTE_CHARS} characters")
    ref = store_for(session).put(data, content_type=media_type, max_bytes=limit)
    item = CaseEvidence(
        case_id=case.id,
        sha256=ref.sha256,
        media_type=ref.content_type,
        size=ref.size,
        filename=clean_filename(filename),
        description=text,
        added_by=principal.id,
        added_at=utcnow(),
    )
    session.add(item)
    session.flush()
    journal(
        session,
        case=case,
        principal=principal,
        kind="evidence",
        note=f"{item.filename} sha256:{ref.sha256} ({ref.size} bytes, {ref.content_type})",
        action="cases.evidence.add",
        detail={"evidence": item.id, "sha256": ref.sha256, "size": ref.size},
    )
    return item


def list_for(*, session: Session, principal: Principal, case_id: str) -> list[CaseEvidence]:
    """The case's evidence, oldest first (404 out of scope; audited read)."""
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    rows = list(
        session.scalars(
            select(CaseEvidence)
            .where(CaseEvidence.case_id == case.id)
            .order_by(CaseEvidence.added_at, CaseEvidence.id)
        )
    )
    audit.record(
        session,
        principal=principal,
        action="cases.evidence.list",
        target_type=RECORD,
        target_id=case.id,
        purpose="case handling",
        detail={"count": len(rows)},
    )
    return rows


def download(
    *, session: Session, principal: Principal, case_id: str, evidence_id: str
) -> tuple[bytes, CaseEvidence]:
    """One evidence file's bytes (verified against the hash) and its record; audited."""
    case = service.get_case(session=session, principal=principal, case_id=case_id)
    item = session.get(CaseEvidence, evidence_id)
    if item is None or item.case_id != case.id:
        raise NotFound("evidence not found")
    data = store_for(session).get(item.sha256)
    audit.record(
        session,
        principal=principal,
        action="cases.evidence.read",
        target_type=RECORD,
        target_id=case.id,
        purpose="case handling",
        detail={"evidence": item.id, "sha256": item.sha256},
    )
    return data, item
