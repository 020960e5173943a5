"""Retention of accident records: photos and personal data do not outlive their purpose.

A closed case — its parties (names of nobody, but plates, licence and policy numbers and
phones), photos, signatures and insurer notices — is erased :data:`KEEP_CLOSED` after it
closed; the insurer holds its own copy of the claim from the notice on. A photo's bytes
leave the blob store too, unless another case still refers to the same content.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from safecity.accidents.models import (
    AccidentCase,
    AccidentParty,
    AccidentPhoto,
    AccidentSignature,
    InsurerNotice,
)
from safecity.platform import retention
from safecity.platform.blobs import blob_store
from safecity.platform.runtime import settings_for

KEEP_CLOSED = timedelta(days=3 * 365)


def erase_case(*, session: Session, record_id: str) -> None:
    """Erase one case and everything of it (the retention job's eraser)."""
    hashes = set(
        session.scalars(select(AccidentPhoto.sha256).where(AccidentPhoto.case_id == record_id))
    )
    for table in (AccidentSignature, InsurerNotice, AccidentPhoto):
        session.execute(delete(table).where(table.case_id == record_id))
    session.execute(delete(AccidentParty).where(AccidentParty.case_id == record_id))
    session.execute(delete(AccidentCase).where(AccidentCase.id == record_id))
    store = blob_store(settings_for(session))
    for sha in sorted(hashes):
        still_used = session.scalar(
            select(func.count()).select_from(AccidentPhoto).where(AccidentPhoto.sha256 == sha)
        )
        if not still_used:
            store.delete(sha)


retention.register(
    record_type="accident",
    period=KEEP_CLOSED,
    find_expired=retention.expired_by(
        AccidentCase.closed_at, id=AccidentCase.id, org=AccidentCase.org_id
    ),
    erase=erase_case,
    owner="accidents",
    description="closed accident cases with their photos and parties: 3 years after closing",
)
