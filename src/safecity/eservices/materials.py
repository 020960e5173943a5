"""The materials of an e-service application: pulled from e-licences, or uploaded.

Every material the catalogue marks "pulled" is attached from the citizen's e-licences
when the draft starts (:func:`pull_materials`, no upload); the others are uploaded
(:func:`add_attachment`: SHA-256 blob store, the catalogue's types, magic bytes checked,
10 MiB at most). A pulled material the registry lacks may be uploaded instead as a PDF
or image. A material another part of the same single window outputs counts as provided.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices import citizens
from safecity.eservices.access import (
    audit_application,
    ensure_editable,
    item_of,
    own_application,
    resolve_now,
    visible_application,
)
from safecity.eservices.catalogue import Material, ServiceItem
from safecity.eservices.models import Application, Attachment, CitizenRecord
from safecity.eservices.schemas import AttachmentRead, MaterialStatus
from safecity.platform.blobs import JPEG, PDF, PNG, blob_store
from safecity.platform.db import new_id
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from safecity.platform.runtime import settings_for
from safecity.security.rbac import Principal

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
FALLBACK_TYPES: tuple[str, ...] = (PDF, JPEG, PNG)
"""Types accepted for a "pulled" material the registry does not have (uploaded instead)."""
PULLED_TYPE = "application/vnd.safecity.e-licence+json"
FILENAME_RE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def materials_for(item: ServiceItem, department: str | None) -> list[Material]:
    """The materials a (part) application needs: all, or those of one part."""
    return [
        m
        for m in item.materials
        if department is None or m.department is None or m.department == department
    ]


def sibling_output(item: ServiceItem, material: Material) -> bool:
    """Pulled from a certificate another part of the same single window issues."""
    return material.source == "pulled" and any(
        p.certificate == material.pulled_from for p in item.parts
    )


def pull_materials(
    session: Session, app: Application, item: ServiceItem, record: CitizenRecord | None
) -> list[str]:
    """Attach every "pulled" material the registry has; returns the codes pulled."""
    pulled: list[str] = []
    for material in item.materials:
        if material.source != "pulled" or material.pulled_from is None:
            continue
        data = citizens.licence(record, material.pulled_from)
        if data is None:
            continue
        blob = json.dumps(
            {"source": material.pulled_from, "data": data}, sort_keys=True, ensure_ascii=False
        ).encode()
        session.add(
            Attachment(
                id=new_id(),
                application_id=app.id,
                material_code=material.code,
                source="pulled",
                pulled_from=material.pulled_from,
                filename=None,
                content_type=PULLED_TYPE,
                size_bytes=len(blob),
                sha256=hashlib.sha256(blob).hexdigest(),
                uploaded_by=None,
                created_at=app.created_at,
            )
        )
        pulled.append(material.code)
    return pulled


def attachments_of(session: Session, app_id: str) -> list[Attachment]:
    return list(
        session.scalars(
            select(Attachment)
            .where(Attachment.application_id == app_id)
            .order_by(Attachment.created_at, Attachment.id)
        )
    )


def material_status(
    item: ServiceItem, app: Application, atts: list[Attachment]
) -> list[MaterialStatus]:
    by_code = {a.material_code: a for a in atts}
    out = []
    for m in materials_for(item, None if app.parent_id is None else app.department):
        got = by_code.get(m.code)
        out.append(
            MaterialStatus(
                code=m.code,
                name_zh=m.name.zh,
                name_en=m.name.en,
                source=m.source,
                pulled_from=m.pulled_from,
                accept=list(m.accept) if m.source == "uploaded" else list(FALLBACK_TYPES),
                required=m.required,
                department=m.department,
                provided=got is not None or sibling_output(item, m),
                provided_as=None if got is None else got.source,
            )
        )
    return out


def attachment_read(a: Attachment) -> AttachmentRead:
    return AttachmentRead.model_validate(a)


def missing_materials(session: Session, app: Application, item: ServiceItem) -> list[str]:
    have = {a.material_code for a in attachments_of(session, app.id)}
    return [
        m.code
        for m in item.materials
        if m.required and m.code not in have and not sibling_output(item, m)
    ]


def clean_filename(filename: str) -> str:
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = FILENAME_RE.sub("_", base)[:200]
    if not base or base in {".", ".."}:
        raise InvalidInput("the file needs a name")
    return base


def add_attachment(
    *,
    session: Session,
    principal: Principal,
    application_id: str,
    material_code: str,
    filename: str,
    content_type: str,
    data: bytes,
    now: datetime | None = None,
) -> AttachmentRead:
    """Upload one material (replacing an earlier upload of it): the type must be one the
    catalogue accepts for it and match the file's content, at most 10 MiB."""
    moment = resolve_now(now)
    app = own_application(session, principal, application_id)
    ensure_editable(app)
    item = item_of(app)
    material = next((m for m in item.materials if m.code == material_code), None)
    if material is None:
        raise InvalidInput(
            f"{item.code} has no material {material_code!r}",
            allowed=[m.code for m in item.materials],
        )
    existing = [a for a in attachments_of(session, app.id) if a.material_code == material.code]
    if material.source == "pulled":
        if any(a.source == "pulled" for a in existing):
            raise Conflict(f"{material.code} was pulled from your e-licence; no upload is needed")
        accept: tuple[str, ...] = FALLBACK_TYPES
    else:
        accept = material.accept
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype not in accept:
        raise InvalidInput(
            f"{material.code} accepts {', '.join(accept)}, not {ctype or 'an unnamed type'}",
            allowed=list(accept),
        )
    if not isinstance(data, bytes | bytearray):
        raise InvalidInput("the file content must be bytes")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise PayloadTooLarge(f"file is larger than {MAX_ATTACHMENT_BYTES} bytes")
    name = clean_filename(filename)
    store = blob_store(settings_for(session), allowed_types=accept)
    ref = store.put(bytes(data), content_type=ctype, max_bytes=MAX_ATTACHMENT_BYTES)
    for old in existing:
        session.delete(old)
    att = Attachment(
        id=new_id(),
        application_id=app.id,
        material_code=material.code,
        source="uploaded",
        pulled_from=None,
        filename=name,
        content_type=ref.content_type,
        size_bytes=ref.size,
        sha256=ref.sha256,
        uploaded_by=principal.id,
        created_at=moment,
    )
    session.add(att)
    app.updated_at = moment
    audit_application(
        session,
        principal,
        "attachment.add",
        app,
        material=material.code,
        sha256=ref.sha256,
        size=ref.size,
        replaced=len(existing),
    )
    session.flush()
    return attachment_read(att)


def attachment_bytes(
    *, session: Session, principal: Principal, application_id: str, attachment_id: str
) -> tuple[bytes, str, str]:
    """An uploaded file (bytes, content type, filename) for the applicant or staff (audited)."""
    app = visible_application(session, principal, application_id)
    att = session.get(Attachment, attachment_id)
    if (
        att is None
        or att.application_id != app.id
        or att.sha256 is None
        or att.source != "uploaded"
    ):
        raise NotFound("attachment not found")
    if app.applicant_id != principal.id:
        audit_application(session, principal, "attachment.read", app, attachment=att.id)
    store = blob_store(settings_for(session))
    return (
        store.get(att.sha256),
        att.content_type or "application/octet-stream",
        att.filename or "file",
    )
