"""Organisation service functions (keyword-only, take a session, never commit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs.models import ORG_KINDS, Org
from safecity.platform.errors import InvalidInput, NotFound

# Which kinds may sit under which.
ALLOWED_PARENTS: dict[str, tuple[str | None, ...]] = {
    "city": (None,),
    "district": ("city",),
    "station": ("district",),
    "community_office": ("station",),
    "department": ("city", "district", "department"),
}


def get(*, session: Session, org_id: str) -> Org:
    org = session.get(Org, org_id)
    if org is None:
        raise NotFound(f"organisation {org_id} not found")
    return org


def get_by_code(*, session: Session, code: str) -> Org:
    org = session.scalars(select(Org).where(Org.code == code)).one_or_none()
    if org is None:
        raise NotFound(f"organisation {code!r} not found")
    return org


def create(
    *,
    session: Session,
    code: str,
    kind: str,
    name_zh: str,
    name_en: str,
    parent_id: str | None = None,
    area: dict[str, Any] | None = None,
    area_synthetic: bool = False,
    service_codes: list[str] | None = None,
) -> Org:
    if kind not in ORG_KINDS:
        raise InvalidInput(f"unknown organisation kind {kind!r}; expected one of {ORG_KINDS}")
    parent = get(session=session, org_id=parent_id) if parent_id else None
    parent_kind = parent.kind if parent else None
    if parent_kind not in ALLOWED_PARENTS[kind]:
        raise InvalidInput(f"a {kind} cannot sit under {parent_kind or 'nothing'}")
    if session.scalars(select(Org.id).where(Org.code == code)).first() is not None:
        raise InvalidInput(f"organisation code {code!r} already exists")
    org = Org(
        code=code,
        kind=kind,
        name_zh=name_zh,
        name_en=name_en,
        parent_id=parent_id,
        area=area,
        area_synthetic=area_synthetic,
        service_codes=service_codes or [],
    )
    org.path = (parent.path if parent else "/") + f"{org.id}/"
    session.add(org)
    session.flush()
    return org


def subtree_ids(*, session: Session, org_id: str) -> frozenset[str]:
    """Ids of ``org_id`` and every org below it."""
    org = get(session=session, org_id=org_id)
    ids = session.scalars(select(Org.id).where(Org.path.startswith(org.path, autoescape=True)))
    return frozenset(ids)


def ancestors(*, session: Session, org_id: str) -> list[Org]:
    """From the root down to ``org_id`` itself."""
    org = get(session=session, org_id=org_id)
    ids = [p for p in org.path.split("/") if p]
    by_id = {o.id: o for o in session.scalars(select(Org).where(Org.id.in_(ids)))}
    return [by_id[i] for i in ids if i in by_id]
