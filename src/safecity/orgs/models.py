"""The organisation tree and city departments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, new_id, utcnow

ORG_KINDS = ("city", "district", "station", "community_office", "department")


class Org(Base):
    """One node of the tree. ``path`` is the materialised path of ids (``/a/b/c/``), so a
    subtree is one ``LIKE 'prefix%'`` query; departments hang under the city."""

    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    path: Mapped[str] = mapped_column(String(1000), index=True)
    # GeoJSON geometry (Polygon/MultiPolygon, WGS84) of the area this org covers, if any.
    area: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    area_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    # Departments: the service categories they receive work orders for.
    service_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def parent_path_ids(self) -> list[str]:
        """Ids from the root down to this org's parent."""
        return [p for p in self.path.split("/") if p][:-1]
