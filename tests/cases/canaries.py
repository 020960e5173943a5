"""Canary seeder: a registered theft case whose victim is the canary person, with the
canary flat as the case address and in an internal note (the portal must show none)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import service
from safecity.cases.schemas import PersonIn
from safecity.orgs.models import Org
from safecity.security import audit
from tests.publicguard import Canaries, Seeded, canary_seeder


@canary_seeder("cases")
def seed_case(session: Session, canaries: Canaries) -> Seeded | None:
    station = session.scalar(select(Org).where(Org.kind == "station").order_by(Org.code))
    if station is None:
        return None
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
    return Seeded()
