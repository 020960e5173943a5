"""The routing table: service code × area → the org that handles the work order.

Precedence for a point owned by ``area`` (a station, or a community office):

1. a rule for the code and the most specific area on the chain from ``area`` up to the
   city (community office, then station, then district, then city);
2. a city-wide rule for the code (``area_org_id`` null);
3. the first active department (by code) that declares the code in ``service_codes``;
4. for neighbourhood codes (:data:`~safecity.dispatch.services.COMMUNITY_CODES`): the
   first community office under the station;
5. otherwise the area's own org (the station sorts it out or reroutes it).

Changes are audited and emit ``dispatch.routing.changed``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.dispatch import events
from safecity.dispatch.models import CITY_WIDE, RoutingRule
from safecity.dispatch.services import COMMUNITY_CODES
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform import outbox
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.security import audit
from safecity.security.rbac import Principal

HANDLER_KINDS = ("department", "community_office")
AREA_KINDS = ("city", "district", "station", "community_office")


def check_service_code(code: str) -> str:
    if not isinstance(code, str) or not orgs.SERVICE_CODE_RE.match(code):
        raise InvalidInput("service_code must be a code of at most 64 letters, digits, ._:-")
    return code


def _org_of_kind(session: Session, org_id: str, kinds: tuple[str, ...], what: str) -> Org:
    try:
        org = orgs.get(session=session, org_id=org_id)
    except NotFound:
        raise InvalidInput(f"{what} {org_id[:32]!r} does not exist") from None
    if org.kind not in kinds:
        raise InvalidInput(f"{what} must be an organisation of kind {' or '.join(kinds)}")
    if not org.active:
        raise InvalidInput(f"{what} {org.code!r} is not active")
    return org


def resolve(session: Session, *, service_code: str, area_org_id: str) -> str:
    """The org id that handles ``service_code`` at a place owned by ``area_org_id``."""
    chain = orgs.ancestors(session=session, org_id=area_org_id)
    rules = {
        r.area_key: r
        for r in session.scalars(
            select(RoutingRule).where(RoutingRule.service_code == service_code)
        )
    }
    for org in reversed(chain):
        rule = rules.get(org.id)
        if rule is not None:
            return rule.department_id
    if CITY_WIDE in rules:
        return rules[CITY_WIDE].department_id
    departments = session.scalars(
        select(Org).where(Org.kind == "department", Org.active.is_(True)).order_by(Org.code)
    )
    for dept in departments:
        if service_code in (dept.service_codes or []):
            return dept.id
    if service_code in COMMUNITY_CODES:
        station = next((o for o in reversed(chain) if o.kind == "station"), None)
        if chain and chain[-1].kind == "community_office":
            return chain[-1].id
        if station is not None:
            office = session.scalars(
                select(Org)
                .where(
                    Org.kind == "community_office",
                    Org.parent_id == station.id,
                    Org.active.is_(True),
                )
                .order_by(Org.code)
                .limit(1)
            ).first()
            if office is not None:
                return office.id
    return area_org_id


def offered_codes(session: Session) -> list[str]:
    """Service codes the city offers: declared by active departments or routed by a rule."""
    codes: set[str] = set()
    for declared in session.scalars(
        select(Org.service_codes).where(Org.kind == "department", Org.active.is_(True))
    ):
        codes.update(c for c in (declared or []) if isinstance(c, str))
    codes.update(session.scalars(select(RoutingRule.service_code).distinct()))
    return sorted(codes)


def list_rules(session: Session) -> list[RoutingRule]:
    return list(
        session.scalars(
            select(RoutingRule).order_by(RoutingRule.service_code, RoutingRule.area_key)
        )
    )


def _emit(session: Session, rule: RoutingRule, change: str) -> None:
    outbox.emit(
        session,
        type=events.ROUTING_CHANGED,
        source=events.SOURCE,
        org_id=rule.area_org_id,
        payload={
            "rule_id": rule.id,
            "change": change,
            "service_code": rule.service_code,
            "area_org_id": rule.area_org_id,
            "department_id": rule.department_id,
        },
    )


def set_rule(
    session: Session,
    *,
    principal: Principal,
    service_code: str,
    department_id: str,
    area_org_id: str | None = None,
) -> RoutingRule:
    """Create the rule for (code, area), or point the existing one at ``department_id``."""
    check_service_code(service_code)
    _org_of_kind(session, department_id, HANDLER_KINDS, "department_id")
    if area_org_id is not None:
        _org_of_kind(session, area_org_id, AREA_KINDS, "area_org_id")
    key = area_org_id or CITY_WIDE
    rule = session.scalars(
        select(RoutingRule).where(
            RoutingRule.service_code == service_code, RoutingRule.area_key == key
        )
    ).one_or_none()
    change = "updated"
    if rule is None:
        change = "created"
        rule = RoutingRule(
            service_code=service_code,
            area_org_id=area_org_id,
            area_key=key,
            department_id=department_id,
        )
        session.add(rule)
    elif rule.department_id == department_id:
        return rule
    else:
        rule.department_id = department_id
        rule.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal=principal,
        action=f"dispatch.routing.{change}",
        target_type="routing_rule",
        target_id=rule.id,
        detail={"service_code": service_code, "area": key, "department": department_id},
    )
    _emit(session, rule, change)
    return rule


def delete_rule(session: Session, *, principal: Principal, rule_id: str) -> None:
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound("routing rule not found")
    session.delete(rule)
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="dispatch.routing.deleted",
        target_type="routing_rule",
        target_id=rule_id,
        detail={"service_code": rule.service_code, "area": rule.area_key},
    )
    _emit(session, rule, "deleted")
