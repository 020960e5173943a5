"""Cases fixtures: open a case through the API and read the portal code from the one
place it exists in clear, the victim's notification."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from tests.alerts.conftest import areas, point_in_station  # noqa: F401  (fixture, reused)
from tests.conftest import City
from tests.console.conftest import make_staff  # noqa: F401  (fixture, reused)
from tests.publicguard import CANARIES

CODE_IN_BODY = re.compile(r"查询码 ([0-9A-Z]{8})")


def victim(**extra: Any) -> dict[str, Any]:
    return {
        "role": "victim",
        "name": CANARIES.name,
        "phone": CANARIES.phone,
        "id_number": CANARIES.id_number,
        "address": CANARIES.flat,
        **extra,
    }


@dataclass
class Opened:
    id: str
    number: str
    code: str | None
    headers: dict[str, str]


OpenFn = Callable[..., Opened]


def code_sent(runtime: Runtime, case_id: str) -> str | None:
    with runtime.sessions.begin() as s:
        note = s.scalar(
            select(Notification).where(Notification.idempotency_key == f"cases:{case_id}:code")
        )
        if note is None:
            return None
        found = CODE_IN_BODY.search(note.body)
        return found.group(1) if found else None


@pytest.fixture
def open_case(client: TestClient, runtime: Runtime, make_actor: Any, city: City) -> OpenFn:
    """``open_case(station=0, case_type="theft", register=True, **fields)`` via the API."""

    def make(
        station: int = 0, *, case_type: str = "theft", register: bool = True, **fields: Any
    ) -> Opened:
        officer = make_actor("officer", city.stations[station])
        body = {
            "source": "report",
            "case_type": case_type,
            "summary": f"stolen bike near {CANARIES.flat}",
            "address": CANARIES.flat,
            "persons": [victim()],
            **fields,
        }
        r = client.post("/api/cases", json=body, headers=officer.headers)
        assert r.status_code == 201, r.text
        case = r.json()
        if register:
            url = f"/api/cases/{case['id']}/transitions/register"
            assert client.post(url, headers=officer.headers).status_code == 200
        return Opened(case["id"], case["number"], code_sent(runtime, case["id"]), officer.headers)

    return make
