"""Canary seeder: a registered theft case whose victim is the canary person, with the
canary flat as the case address and in an internal note (the portal must show none); the
codes of its station and the halls above it fill ``/portal/halls/{org_code}``."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import service
from safecity.cases.schemas import PersonIn
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.security import audit
from tests.publicguard import Canaries, Seeded, canary_seeder


def _station(session: Session) -> Org:
    """A city, district and station of their own (the halls need all three tiers)."""
    tag = secrets.token_hex(4)
    parent: Org | None = None
    for kind in ("city", "district", "station"):
        parent = orgs.create(
            session=session,
            code=f"canary-cases-{tag}-{kind}",
            kind=kind,
            name_zh=f"金丝雀{kind}",
            name_en=f"Canary {kind}",
            parent_id=parent.id if parent is not None else None,
        )
    assert parent is not None
    return parent


@canary_seeder("cases")
def seed_case(session: Session, canaries: Canaries) -> Seeded | None:
    station = session.scalar(select(Org).where(Org.kind == "station").order_by(Org.code))
    if station is None:
        station = _station(session)
    victim = PersonIn(
        role="victim",
        name=canaries.name,
        phone=canaries.phone,
        id_number=canaries.id_number,
        address=canaries.flat,
    )
    case = service.open_case(
        session,
        principal=audit.SYSTEM,
        source="report",
        case_type="theft",
        org_id=station.id,
        summary=f"bike stolen from {canaries.flat}",
        address=canaries.flat,
        persons=[victim],
    )
    service.transition(session=session, principal=audit.SYSTEM, case_id=case.id, name="register")
    service.add_note(
        session=session,
        principal=audit.SYSTEM,
        case_id=case.id,
        text=f"victim {canaries.name} {canaries.phone}",
        public=False,
    )
    trail = orgs.ancestors(session=session, org_id=station.id)
    return Seeded(path_values={"org_code": [o.code for o in trail]})
