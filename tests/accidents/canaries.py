"""Canary seeder: an accident whose drivers' phones and licence numbers are the canaries
(the public phone pages and every error page must show none of them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.accidents import service
from safecity.accidents.schemas import ELIGIBILITY, DeclarationIn, OpenIn, PartyDataIn
from safecity.orgs.models import Org
from tests.publicguard import Canaries, Seeded, canary_seeder


@canary_seeder("accidents")
def seed_accident(session: Session, canaries: Canaries) -> Seeded | None:
    if session.scalars(select(Org).where(Org.kind == "city")).first() is None:
        return None
    opened = service.open_case(
        session=session,
        data=OpenIn(lat=31.205, lng=121.405, eligibility=dict.fromkeys(ELIGIBILITY, True)),
    )
    joined = service.join_case(
        session=session, join_code=service.join_code_for(session, opened.case.id)
    )
    for party, plate in ((opened.party, "沪A13579"), (joined.party, "沪B24680")):
        data = PartyDataIn(
            plate=plate,
            licence_no=canaries.id_number,
            insurer_code="demo_picc",
            policy_no="PDAA20260001",
            phone=canaries.phone,
        )
        service.set_party_data(session=session, case=opened.case, party=party, data=data)
        service.declare(
            session=session,
            case=opened.case,
            party=party,
            data=DeclarationIn(own=["straight"], other=["straight"]),
        )
    return Seeded(path_values={"ref": [opened.case.ref], "role": ["A", "B"]})
