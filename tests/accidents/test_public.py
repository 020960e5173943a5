"""No personal data of the drivers on any public page: the canary walk over every public
route, and the other driver's page, which shows no phone or licence of this one."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.platform.runtime import Runtime
from tests.accidents.flow import join, open_case
from tests.conftest import City
from tests.publicguard import (
    CANARIES,
    assert_no_canary,
    find_canaries,
    seed_canaries,
    walk_public_routes,
)

pytestmark = pytest.mark.db


def test_no_public_route_shows_a_drivers_personal_data(
    runtime: Runtime, app: Any, areas: City
) -> None:
    seeded = seed_canaries(runtime)
    assert seeded.path_values["ref"]
    report = walk_public_routes(
        app, seeded, extra_paths=["/accidents", "/accidents/join?code=ABCDEFGH"]
    )
    assert any(r.startswith("/accidents/{ref}") for r in report.routes)
    assert 200 in report.statuses


def test_the_other_drivers_page_shows_none_of_my_personal_data(
    client: TestClient, areas: City
) -> None:
    a, code = open_case(client)
    b = join(client, code)
    data = {
        "plate": "沪A97531",
        "licence_no": CANARIES.id_number,
        "insurer_code": "demo_picc",
        "policy_no": "PDAA20269999",
        "phone": CANARIES.phone,
    }
    assert a.post("/data", data=data).status_code == 303
    mine = client.get(a.page)
    assert find_canaries(mine.text)  # my own page shows what I typed...
    assert_no_canary(client.get(b.page))  # ...the other driver's does not
    with TestClient(client.app) as stranger:  # no party cookie: the same 404 as a bad link
        page = stranger.get(a.page)
    assert page.status_code == 404
    assert_no_canary(page)
