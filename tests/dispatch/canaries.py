"""Canary seeder: an Open311-style work order whose requester is the canary person and
whose address is the canary flat (public output must show neither)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from safecity.dispatch import service
from safecity.orgs import service as orgs
from tests.publicguard import Canaries, Seeded, canary_seeder


@canary_seeder("dispatch")
def seed_work_order(session: Session, canaries: Canaries) -> Seeded | None:
    cities, _ = orgs.list_orgs(session=session, kind="city", limit=1)
    if not cities:
        return None
    order = service.open_work_order(
        session,
        service_code="litter",
        description=f"rubbish at {canaries.flat}, call me on {canaries.phone}",
        lat=31.2301,
        lng=121.4701,
        source="open311",
        org_id=cities[0].id,
        requester={
            "email": "canary@example.org",
            "first_name": canaries.name,
            "last_name": canaries.name_en,
            "phone": canaries.phone,
        },
        address=canaries.flat,
    )
    return Seeded(path_values={"request_id": [order.service_request_id], "fmt": ["json", "xml"]})
