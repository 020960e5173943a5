"""Tables of the e-certificate registry (issue 10): certificates, status lists, actions.

* :class:`Certificate` — one issued e-certificate (a batch of SD-JWT VC copies). The
  claims and the copies are personal data: they are kept **sealed** (AES-256-GCM under
  ``eservices-claims.key`` in the key directory, never in the database), read only
  through :mod:`safecity.eservices.registry` (permission, scope, audit). ``status_uri``
  + ``status_indices`` name the random status-list entries of the batch copies.
* :class:`CertStatusList` — one persisted :class:`~safecity.eservices.credentials.StatusList`
  (≥ 131,072 entries) as its ``to_state()`` JSON; ``version`` grows with every change, so
  verifier caches know when to reload.
* :class:`CertificateAction` — the registry's own log of issue / revoke / suspend /
  reinstate / reissue (reason, actor, time), beside the hash-chained audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

STATES: tuple[str, ...] = ("active", "suspended", "revoked")
ACTIONS: tuple[str, ...] = ("issue", "revoke", "suspend", "reinstate", "reissue")


class Certificate(Base):
    """An issued e-certificate; ``state`` mirrors its status-list entries."""

    __tablename__ = "eservice_certificates"
    __table_args__ = (
        UniqueConstraint("application_id", "certificate_type", "generation"),
        Index("ix_eservice_certificates_holder", "holder_user_id", "issued_at"),
        Index("ix_eservice_certificates_org_state", "org_id", "state"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    """The printed certificate number (not personal)."""
    item_code: Mapped[str] = mapped_column(String(64), index=True)
    certificate_type: Mapped[str] = mapped_column(String(64))
    vct: Mapped[str] = mapped_column(String(200))
    application_id: Mapped[str] = mapped_column(ID, index=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    """1 for the first issuance; a reissue (changed attribute) gets the next number."""
    replaces_id: Mapped[str | None] = mapped_column(ID, default=None)
    holder_user_id: Mapped[str] = mapped_column(ID)
    org_id: Mapped[str | None] = mapped_column(ID, default=None)
    claims_sealed: Mapped[str] = mapped_column(Text, info={"personal": True})
    copies_sealed: Mapped[str] = mapped_column(Text, info={"personal": True})
    status_uri: Mapped[str] = mapped_column(String(200))
    status_indices: Mapped[list[int]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="active", index=True)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    """Free-text reason of a revocation / suspension: private (staff only)."""
    reason_code: Mapped[str | None] = mapped_column(String(32), default=None)
    """The published revocation reason code (``status_list.REASON_CODES``)."""
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kid: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CertStatusList(Base):
    """A persisted status list: ``state`` is ``StatusList.to_state()``."""

    __tablename__ = "eservice_status_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    uri: Mapped[str] = mapped_column(String(200), unique=True)
    bits: Mapped[int] = mapped_column(Integer, default=2)
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    open: Mapped[bool] = mapped_column(default=True)
    """New certificates draw indices from the open list; a full list is closed."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CertificateAction(Base):
    """One issue / revoke / suspend / reinstate / reissue of a certificate."""

    __tablename__ = "eservice_certificate_actions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    certificate_id: Mapped[str] = mapped_column(ID, index=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    reason_code: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_id: Mapped[str] = mapped_column(String(64))
    status_uri: Mapped[str] = mapped_column(String(200))
    list_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
