"""Disputes fixtures: station areas (from the alerts tests) and a helper to record one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from safecity.disputes import service
from safecity.disputes.models import Dispute
from safecity.disputes.schemas import DisputeCreate
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import Principal
from tests.alerts.conftest import areas, point_in_station  # noqa: F401  (fixture, reused)
from tests.console.conftest import make_staff  # noqa: F401  (fixture, reused)

PARTY = {
    "party_a_name": "王小明",
    "party_a_phone": "13912345678",
    "party_b_name": "李大华",
    "party_b_phone": "13887654321",
    "address": "幸福路 12 号 3 单元 502",
}

RecordFn = Callable[..., Dispute]


@pytest.fixture
def record(runtime: Runtime, areas: Any) -> RecordFn:  # noqa: F811
    """``record(station=0, category="noise", principal=SYSTEM, **fields)`` → committed."""

    def make(station: int = 0, *, principal: Principal = audit.SYSTEM, **fields: Any) -> Dispute:
        lat, lng = point_in_station(station)
        data = DisputeCreate(
            **{"category": "noise", "building": "B12", "lat": lat, "lng": lng, **PARTY, **fields}
        )
        with runtime.sessions.begin() as s:
            dispute = service.create_dispute(session=s, principal=principal, data=data)
            s.flush()
            s.expunge(dispute)
            return dispute

    return make
