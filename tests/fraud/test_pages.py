"""The anti-fraud centre's console page: counters, charts, closing an action, review."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.fraud.models import Action, Indicator
from safecity.platform.runtime import Runtime
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in, make_staff  # noqa: F401
from tests.fraud.conftest import Deliver, point_in_station
from tests.fraud.test_indicators import add
from tests.fraud.test_pipeline import SCAMMER, call, ingest

pytestmark = pytest.mark.db


def test_the_centre_sees_counters_charts_and_closes_an_action(
    client: TestClient,
    runtime: Runtime,
    areas: City,
    deliver: Deliver,
    make_staff: Any,  # noqa: F811
) -> None:
    with runtime.sessions.begin() as s:
        add(
            s,
            areas,
            kind="phone",
            value=SCAMMER,
            source="case",
            evidence="case C-7",
            active=True,
        )
        add(
            s,
            areas,
            kind="domain",
            value="refund-help.example.top",
            source="model",
            evidence="engine: spread by 3 suspect numbers",
            confidence=0.9,
        )
    ingest(runtime, "call", [call("c1", 0), call("c1", 0, 20)])
    deliver()
    staff = make_staff("supervisor", areas.city)
    log_in(client, staff)
    page = client.get("/console/fraud")
    assert page.status_code == 200
    html = page.text
    assert 'data-number="numbers_shut">1<' in html
    assert 'data-chart="weeks"' in html
    assert "data-action-id=" in html
    assert "refund-help.example.top" in html  # the reviewer sees the proposal's value
    assert point_in_station(1)  # the call came through station 1's cell
    with runtime.sessions() as s:
        action = s.scalars(select(Action).where(Action.action.in_(("callback", "visit")))).first()
        proposal = s.scalars(select(Indicator).where(Indicator.state == "proposed")).one()
    assert action is not None
    token = csrf_from(html)
    bad = client.post(
        f"/console/fraud/actions/{action.id}/close",
        data={"csrf_token": token, "outcome": "money_frozen"},
    )
    assert bad.status_code == 422  # a warning cannot end with frozen money
    done = client.post(
        f"/console/fraud/actions/{action.id}/close",
        data={"csrf_token": token, "outcome": "dissuaded", "notes": "called her; no transfer"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    approved = client.post(
        f"/console/fraud/indicators/{proposal.id}/approve",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    html = client.get("/console/fraud").text
    assert 'data-number="people_dissuaded">1<' in html
    assert 'data-number="sites_blocked">1<' in html
    assert not re.search(r"1380013800\d", html)  # no phone number of a person on the page


def test_people_without_the_permission_do_not_get_the_page(
    client: TestClient,
    city: City,
    make_staff: Any,  # noqa: F811
) -> None:
    staff = make_staff("department_staff", city.department)
    log_in(client, staff)
    assert client.get("/console/fraud").status_code == 403
