"""Pydantic shapes of organisations in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from safecity.orgs.models import Org

OrgKind = Literal["city", "district", "station", "community_office", "department"]


class OrgRead(BaseModel):
    """An organisation without its area geometry (lists stay small)."""

    id: str
    code: str
    kind: OrgKind
    name_zh: str
    name_en: str
    parent_id: str | None
    active: bool
    has_area: bool
    area_synthetic: bool
    service_codes: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, org: Org) -> OrgRead:
        return cls(
            id=org.id,
            code=org.code,
            kind=org.kind,
            name_zh=org.name_zh,
            name_en=org.name_en,
            parent_id=org.parent_id,
            active=org.active,
            has_area=org.area is not None,
            area_synthetic=org.area_synthetic,
            service_codes=list(org.service_codes),
            created_at=org.created_at,
            updated_at=org.updated_at,
        )


class OrgDetail(OrgRead):
    """One organisation with its area and its ancestors' ids (root first)."""

    area: dict[str, Any] | None = Field(description="GeoJSON geometry (WGS84) or null.")
    ancestor_ids: list[str]

    @classmethod
    def of(cls, org: Org) -> OrgDetail:
        base = OrgRead.of(org).model_dump()
        return cls(**base, area=org.area, ancestor_ids=org.parent_path_ids)


class OrgTreeNode(BaseModel):
    id: str
    code: str
    kind: OrgKind
    name_zh: str
    name_en: str
    active: bool
    children: list[OrgTreeNode] = Field(default_factory=list)

    @classmethod
    def of(cls, node: dict[str, Any]) -> OrgTreeNode:
        org: Org = node["org"]
        return cls(
            id=org.id,
            code=org.code,
            kind=org.kind,
            name_zh=org.name_zh,
            name_en=org.name_en,
            active=org.active,
            children=[cls.of(child) for child in node["children"]],
        )


class OrgCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: OrgKind
    name_zh: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, max_length=64)
    area: dict[str, Any] | None = Field(
        default=None, description="GeoJSON Polygon/MultiPolygon (WGS84, lng/lat order)."
    )
    area_synthetic: bool = False
    service_codes: list[str] = Field(default_factory=list, max_length=200)


class OrgUpdate(BaseModel):
    """Only the fields present are changed; ``"area": null`` clears the area."""

    model_config = ConfigDict(extra="forbid")

    name_zh: str | None = Field(default=None, min_length=1, max_length=200)
    name_en: str | None = Field(default=None, min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, max_length=64)
    area: dict[str, Any] | None = None
    area_synthetic: bool | None = None
    service_codes: list[str] | None = Field(default=None, max_length=200)
    active: bool | None = None
    cascade: bool = Field(
        default=False, description="With active=false: also deactivate everything below."
    )


class ImportProblem(BaseModel):
    where: str
    message: str


class ImportReport(BaseModel):
    filename: str
    dry_run: bool
    total: int
    created: int
    updated: int
    unchanged: int
