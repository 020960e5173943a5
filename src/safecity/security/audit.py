"""Tamper-evident audit log (interface; the HMAC chain lands with the audit work).

Call :func:`record` inside the same session (transaction) as the change or read it
describes. Rows hold ids, never personal values.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow
from safecity.security.rbac import Principal


class AuditEntry(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(ID, unique=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


SYSTEM = Principal(
    id="system",
    kind="service",
    username="system",
    roles=frozenset({"admin"}),
    org_id="",
    visible_org_ids=None,
)


def record(
    session: Session,
    *,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit record in ``session``'s transaction."""
    json.dumps(detail or {})  # detail must be JSON (ids and codes only)
    entry = AuditEntry(
        actor_id=principal.id,
        actor_kind=principal.kind,
        role=principal.primary_role,
        org_id=principal.org_id or None,
        purpose=purpose,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail or {},
    )
    session.add(entry)
    return entry
