"""Organisation service functions (keyword-only, take a session, never commit).

Every change writes an audit record and an outbox event in the caller's transaction.
``actor`` is the principal making the change; ``None`` means the system (seeding, jobs).

Visibility (what a principal may *read* of the tree) is wider than data scope: a user
sees their own subtree (plus granted subtrees), the chain of ancestors above their home
org (so a station officer can name their district and city), and every department
(staff route work orders to them). City-wide roles see everything. Anything else is
reported as not found.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from safecity.orgs import events
from safecity.orgs.models import ORG_KINDS, Org
from safecity.platform import geo
from safecity.platform.db import new_id
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.outbox import emit
from safecity.security import audit
from safecity.security.rbac import Principal

# Which kinds may sit under which.
ALLOWED_PARENTS: dict[str, tuple[str | None, ...]] = {
    "city": (None,),
    "district": ("city",),
    "station": ("district",),
    "community_office": ("station",),
    "department": ("city", "district", "department"),
}

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SERVICE_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MAX_NAME = 200
AREA_KINDS = ("district", "station")  # kinds drawn on the map


class _Unset(enum.Enum):
    UNSET = 0


UNSET = _Unset.UNSET
"""Marks an :func:`update` argument that was not given (``None`` may mean "clear")."""


# --------------------------------------------------------------------------- checks


def check_code(code: str) -> str:
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidInput(
            f"organisation code {code!r} is invalid: 1-64 letters, digits, '.', '_' or '-'"
        )
    return code


def check_kind(kind: str) -> str:
    if kind not in ORG_KINDS:
        raise InvalidInput(f"unknown organisation kind {kind!r}; expected one of {ORG_KINDS}")
    return kind


def check_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must not be empty")
    value = value.strip()
    if len(value) > MAX_NAME:
        raise InvalidInput(f"{field} is longer than {MAX_NAME} characters")
    return value


def check_parent_kind(kind: str, parent_kind: str | None) -> None:
    if parent_kind not in ALLOWED_PARENTS[kind]:
        raise InvalidInput(f"a {kind} cannot sit under {parent_kind or 'nothing'}")


def check_service_codes(kind: str, codes: Iterable[str] | None) -> list[str]:
    out: list[str] = []
    for code in codes or ():
        if not isinstance(code, str) or not SERVICE_CODE_RE.match(code):
            raise InvalidInput(f"service code {code!r} is invalid")
        if code not in out:
            out.append(code)
    if out and kind != "department":
        raise InvalidInput("only departments carry service codes")
    return out


def check_area(area: dict[str, Any] | None) -> dict[str, Any] | None:
    """A valid WGS84 Polygon/MultiPolygon (or ``None``), normalised to a plain geometry."""
    if area is None:
        return None
    return geo.normalise_area(area)


# --------------------------------------------------------------------------- reads


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


def visible_ids(*, session: Session, principal: Principal) -> frozenset[str] | None:
    """Ids of the orgs ``principal`` may read; ``None`` means every org."""
    if principal.visible_org_ids is None:
        return None
    ids = set(principal.visible_org_ids)
    home = session.get(Org, principal.org_id) if principal.org_id else None
    if home is not None:
        ids.update(p for p in home.path.split("/") if p)
    ids.update(session.scalars(select(Org.id).where(Org.kind == "department")))
    return frozenset(ids)


def get_visible(*, session: Session, principal: Principal, org_id: str) -> Org:
    """``org_id`` if ``principal`` may see it, else :class:`NotFound` (never 403)."""
    visible = visible_ids(session=session, principal=principal)
    if visible is not None and org_id not in visible:
        raise NotFound(f"organisation {org_id} not found")
    return get(session=session, org_id=org_id)


def visible_query(
    *,
    session: Session,
    principal: Principal | None = None,
    kind: str | None = None,
    parent_id: str | None = None,
    include_inactive: bool = False,
    search: str | None = None,
) -> Select[Org]:
    """The (unordered) query of orgs visible to ``principal`` (all when ``None``)."""
    query = select(Org)
    if principal is not None:
        visible = visible_ids(session=session, principal=principal)
        if visible is not None:
            query = query.where(Org.id.in_(sorted(visible)))
    if kind is not None:
        query = query.where(Org.kind == check_kind(kind))
    if parent_id is not None:
        query = query.where(Org.parent_id == parent_id)
    if not include_inactive:
        query = query.where(Org.active.is_(True))
    if search and search.strip():
        pattern = f"%{search.strip()}%"
        query = query.where(
            Org.code.ilike(pattern) | Org.name_zh.ilike(pattern) | Org.name_en.ilike(pattern)
        )
    return query


def list_orgs(
    *,
    session: Session,
    principal: Principal | None = None,
    kind: str | None = None,
    parent_id: str | None = None,
    include_inactive: bool = False,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[Org], int]:
    """Orgs visible to ``principal`` (all when ``None``), ordered by code; with the total."""
    query = visible_query(
        session=session,
        principal=principal,
        kind=kind,
        parent_id=parent_id,
        include_inactive=include_inactive,
        search=search,
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(Org.code).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query)), int(total)


def tree(
    *, session: Session, principal: Principal | None = None, include_inactive: bool = False
) -> list[dict[str, Any]]:
    """The visible orgs as nested ``{"org": Org, "children": [...]}`` nodes.

    Roots are orgs whose parent is not in the result (normally just the city).
    """
    items, _ = list_orgs(session=session, principal=principal, include_inactive=include_inactive)
    nodes: dict[str, dict[str, Any]] = {o.id: {"org": o, "children": []} for o in items}
    roots: list[dict[str, Any]] = []
    kind_order = {k: i for i, k in enumerate(ORG_KINDS)}
    for org in sorted(items, key=lambda o: (kind_order[o.kind], o.code)):
        node = nodes[org.id]
        parent = nodes.get(org.parent_id) if org.parent_id else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def area_features(
    *,
    session: Session,
    principal: Principal | None = None,
    kinds: Sequence[str] = AREA_KINDS,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the visible, active orgs of ``kinds`` with an area."""
    query = select(Org).where(
        Org.kind.in_([check_kind(k) for k in kinds]),
        Org.area.is_not(None),
        Org.active.is_(True),
    )
    if principal is not None:
        visible = visible_ids(session=session, principal=principal)
        if visible is not None:
            query = query.where(Org.id.in_(sorted(visible)))
    features = [
        {
            "type": "Feature",
            "id": org.id,
            "properties": {
                "id": org.id,
                "code": org.code,
                "kind": org.kind,
                "name_zh": org.name_zh,
                "name_en": org.name_en,
                "parent_id": org.parent_id,
                "synthetic": org.area_synthetic,
            },
            "geometry": org.area,
        }
        for org in session.scalars(query.order_by(Org.code))
        if org.area
    ]
    return {"type": "FeatureCollection", "features": features}


# (database, kind) → (fingerprint of the areas, their index); see org_for_point.
_AREA_INDEXES: dict[tuple[str, str], tuple[tuple[Any, ...], geo.AreaIndex]] = {}
_AREA_LOCK = threading.Lock()


def _area_index(session: Session, kind: str) -> geo.AreaIndex:
    """The STR-tree over the active areas of ``kind``, rebuilt only when they changed.

    Building it means reading every polygon and preparing it (tens of milliseconds for a
    city's stations), which alert routing would otherwise pay per alert. One aggregate
    query (count, newest change, id range) tells whether the cached index still holds.
    """
    where = (Org.kind == kind, Org.area.is_not(None), Org.active.is_(True))
    fingerprint = tuple(
        session.execute(
            select(
                func.count(), func.max(Org.updated_at), func.min(Org.id), func.max(Org.id)
            ).where(*where)
        ).one()
    )
    key = (str(session.get_bind().engine.url), kind)
    with _AREA_LOCK:
        cached = _AREA_INDEXES.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    rows = session.execute(select(Org.id, Org.area).where(*where)).all()
    index = geo.AreaIndex((r[0], r[1]) for r in rows if r[1])
    with _AREA_LOCK:
        _AREA_INDEXES[key] = (fingerprint, index)
    return index


def org_for_point(*, session: Session, lat: float, lng: float, kind: str = "station") -> Org | None:
    """The active org of ``kind`` whose area contains the WGS84 point, if any."""
    index = _area_index(session, check_kind(kind))
    if len(index) == 0:
        return None
    found = index.find(lat=lat, lng=lng)
    return None if found is None else get(session=session, org_id=str(found))


# --------------------------------------------------------------------------- writes


def _payload(org: Org) -> dict[str, Any]:
    return {"org_id": org.id, "code": org.code, "kind": org.kind, "parent_id": org.parent_id}


def _actor(actor: Principal | None) -> Principal:
    return actor if actor is not None else audit.SYSTEM


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
    actor: Principal | None = None,
    purpose: str | None = None,
) -> Org:
    """Add an org under ``parent_id``; audited and announced as ``orgs.org.created``."""
    check_code(code)
    check_kind(kind)
    name_zh = check_name(name_zh, "name_zh")
    name_en = check_name(name_en, "name_en")
    codes = check_service_codes(kind, service_codes)
    area = check_area(area)
    parent = get(session=session, org_id=parent_id) if parent_id else None
    check_parent_kind(kind, parent.kind if parent else None)
    if parent is not None and not parent.active:
        raise Conflict(f"parent {parent.code!r} is inactive")
    if session.scalars(select(Org.id).where(Org.code == code)).first() is not None:
        raise Conflict(f"organisation code {code!r} already exists")
    org = Org(
        id=new_id(),  # known before the insert: the materialised path uses it
        code=code,
        kind=kind,
        name_zh=name_zh,
        name_en=name_en,
        parent_id=parent_id,
        area=area,
        area_synthetic=bool(area_synthetic) if area is not None else False,
        service_codes=codes,
        active=True,
    )
    org.path = (parent.path if parent else "/") + f"{org.id}/"
    session.add(org)
    session.flush()
    who = _actor(actor)
    audit.record(
        session,
        principal=who,
        action="orgs.org.create",
        target_type="org",
        target_id=org.id,
        purpose=purpose,
        detail={"code": org.code, "kind": org.kind, "parent_id": org.parent_id},
    )
    emit(
        session,
        type=events.ORG_CREATED,
        source=events.SOURCE,
        org_id=org.id,
        payload={
            **_payload(org),
            "name_zh": org.name_zh,
            "name_en": org.name_en,
            "active": org.active,
            "has_area": org.area is not None,
            "area_synthetic": org.area_synthetic,
            "service_codes": list(org.service_codes),
        },
    )
    return org


def _descendants(session: Session, org: Org) -> list[Org]:
    return list(
        session.scalars(
            select(Org)
            .where(Org.path.startswith(org.path, autoescape=True), Org.id != org.id)
            .order_by(func.length(Org.path))
        )
    )


def _move(session: Session, org: Org, new_parent_id: str | None) -> None:
    parent = get(session=session, org_id=new_parent_id) if new_parent_id else None
    check_parent_kind(org.kind, parent.kind if parent else None)
    if parent is not None:
        if parent.path.startswith(org.path):
            raise InvalidInput("an organisation cannot move under itself or its descendants")
        if not parent.active and org.active:
            raise Conflict(f"parent {parent.code!r} is inactive")
    old_prefix = org.path
    new_prefix = (parent.path if parent else "/") + f"{org.id}/"
    for child in _descendants(session, org):
        child.path = new_prefix + child.path[len(old_prefix) :]
    org.parent_id = new_parent_id
    org.path = new_prefix


def update(
    *,
    session: Session,
    org_id: str,
    actor: Principal | None = None,
    name_zh: str | _Unset = UNSET,
    name_en: str | _Unset = UNSET,
    parent_id: str | _Unset | None = UNSET,
    area: dict[str, Any] | _Unset | None = UNSET,
    area_synthetic: bool | _Unset = UNSET,
    service_codes: list[str] | _Unset = UNSET,
    purpose: str | None = None,
) -> Org:
    """Change names, parent (moves the whole subtree), area or service codes.

    Only arguments that are given are applied; ``area=None`` clears the area. Emits
    ``orgs.org.updated`` listing the fields that really changed (nothing when none did).
    """
    org = get(session=session, org_id=org_id)
    changed: list[str] = []
    if not isinstance(name_zh, _Unset):
        value = check_name(name_zh, "name_zh")
        if value != org.name_zh:
            org.name_zh = value
            changed.append("name_zh")
    if not isinstance(name_en, _Unset):
        value = check_name(name_en, "name_en")
        if value != org.name_en:
            org.name_en = value
            changed.append("name_en")
    if not isinstance(service_codes, _Unset):
        codes = check_service_codes(org.kind, service_codes)
        if codes != list(org.service_codes):
            org.service_codes = codes
            changed.append("service_codes")
    if not isinstance(area, _Unset):
        new_area = check_area(area)
        if new_area != org.area:
            org.area = new_area
            changed.append("area")
            if new_area is None and org.area_synthetic:
                org.area_synthetic = False
                changed.append("area_synthetic")
    if not isinstance(area_synthetic, _Unset) and bool(area_synthetic) != org.area_synthetic:
        if area_synthetic and org.area is None:
            raise InvalidInput("area_synthetic needs an area")
        org.area_synthetic = bool(area_synthetic)
        if "area_synthetic" not in changed:
            changed.append("area_synthetic")
    if not isinstance(parent_id, _Unset) and parent_id != org.parent_id:
        _move(session, org, parent_id)
        changed.append("parent_id")
    if not changed:
        return org
    session.flush()
    audit.record(
        session,
        principal=_actor(actor),
        action="orgs.org.update",
        target_type="org",
        target_id=org.id,
        purpose=purpose,
        detail={"code": org.code, "changed": changed},
    )
    emit(
        session,
        type=events.ORG_UPDATED,
        source=events.SOURCE,
        org_id=org.id,
        payload={**_payload(org), "changed": changed},
    )
    return org


def rename(
    *,
    session: Session,
    org_id: str,
    actor: Principal | None = None,
    name_zh: str | None = None,
    name_en: str | None = None,
) -> Org:
    """Change one or both names."""
    if name_zh is None and name_en is None:
        raise InvalidInput("give name_zh, name_en or both")
    return update(
        session=session,
        org_id=org_id,
        actor=actor,
        name_zh=UNSET if name_zh is None else name_zh,
        name_en=UNSET if name_en is None else name_en,
    )


def deactivate(
    *,
    session: Session,
    org_id: str,
    actor: Principal | None = None,
    cascade: bool = False,
    purpose: str | None = None,
) -> list[Org]:
    """Deactivate an org (and, with ``cascade``, its active descendants).

    Without ``cascade`` an org that still has active children is refused (409), so no
    station is silently orphaned. Returns the orgs that changed (empty when none did).
    """
    org = get(session=session, org_id=org_id)
    if not org.active:
        return []
    below = [o for o in _descendants(session, org) if o.active]
    if below and not cascade:
        raise Conflict(
            f"{org.code!r} has {len(below)} active organisation(s) below it; "
            "deactivate them first or cascade"
        )
    who = _actor(actor)
    changed = [org, *below]
    for item in changed:
        item.active = False
    session.flush()
    for item in changed:
        audit.record(
            session,
            principal=who,
            action="orgs.org.deactivate",
            target_type="org",
            target_id=item.id,
            purpose=purpose,
            detail={"code": item.code, "cascade_from": org.id if item is not org else None},
        )
        emit(
            session,
            type=events.ORG_DEACTIVATED,
            source=events.SOURCE,
            org_id=item.id,
            payload={**_payload(item), "cascade_from": org.id if item is not org else None},
        )
    return changed


def reactivate(
    *, session: Session, org_id: str, actor: Principal | None = None, purpose: str | None = None
) -> Org:
    """Make an inactive org active again (its parent must be active)."""
    org = get(session=session, org_id=org_id)
    if org.active:
        return org
    if org.parent_id is not None and not get(session=session, org_id=org.parent_id).active:
        raise Conflict("reactivate the parent organisation first")
    org.active = True
    session.flush()
    audit.record(
        session,
        principal=_actor(actor),
        action="orgs.org.reactivate",
        target_type="org",
        target_id=org.id,
        purpose=purpose,
        detail={"code": org.code},
    )
    emit(
        session,
        type=events.ORG_REACTIVATED,
        source=events.SOURCE,
        org_id=org.id,
        payload={**_payload(org), "cascade_from": None},
    )
    return org
