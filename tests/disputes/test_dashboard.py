"""Dashboard numbers on a known fixture: counts, overdue follow-ups, median resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from safecity.disputes import service
from safecity.disputes.models import Dispute
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security import audit
from tests.conftest import City
from tests.console.test_pages import assert_csp_clean
from tests.disputes.conftest import RecordFn

pytestmark = pytest.mark.db

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=utcnow().tzinfo)


def _close(runtime: Runtime, dispute_id: str, name: str, days: float) -> None:
    with runtime.sessions.begin() as s:
        service.transition(
            session=s, principal=audit.SYSTEM, dispute_id=dispute_id, name=name, notes="done"
        )
        reported = NOW - timedelta(days=30)
        s.execute(
            update(Dispute)
            .where(Dispute.id == dispute_id)
            .values(reported_at=reported, resolved_at=reported + timedelta(days=days))
        )


def _follow_up_due(runtime: Runtime, dispute_id: str, due: datetime) -> None:
    with runtime.sessions.begin() as s:
        s.execute(update(Dispute).where(Dispute.id == dispute_id).values(next_follow_up_at=due))


@pytest.fixture
def known(runtime: Runtime, record: RecordFn, areas: City) -> dict[str, str]:
    """Station 0: 6 disputes; resolved in 2, 4 and 10 days; one overdue by 3 days.
    Station 1 (same district): one noise dispute."""
    ids = {
        "a": record(0, category="noise").id,
        "b": record(0, category="noise").id,
        "c": record(0, category="parking").id,
        "d": record(0, category="water_leak").id,
        "e": record(0, category="pets").id,
        "f": record(0, category="noise").id,
        "other": record(1, category="noise").id,
    }
    _close(runtime, ids["a"], "agree", 2)
    _close(runtime, ids["b"], "refer", 4)
    _close(runtime, ids["c"], "close_unresolved", 10)
    with runtime.sessions.begin() as s:
        service.transition(session=s, principal=audit.SYSTEM, dispute_id=ids["d"], name="mediate")
    _follow_up_due(runtime, ids["d"], NOW - timedelta(days=3, hours=1))
    _follow_up_due(runtime, ids["e"], NOW + timedelta(days=1))
    return ids


def test_dashboard_numbers_for_one_station(
    runtime: Runtime, known: dict[str, str], areas: City
) -> None:
    with runtime.sessions() as s:
        d = service.dashboard(
            session=s, principal=audit.SYSTEM, org_id=areas.stations[0].id, now=NOW
        )
    assert d.total == 6
    assert d.open == 3
    assert d.by_state == {
        "reported": 2,
        "mediating": 1,
        "agreement_reached": 1,
        "referred": 1,
        "closed_unresolved": 1,
    }
    assert d.by_category == {
        "noise": 3,
        "parking": 1,
        "water_leak": 1,
        "pets": 1,
        "boundary": 0,
        "other": 0,
    }
    assert d.overdue_follow_ups == 1
    assert [(o.id, o.days_overdue) for o in d.overdue] == [(known["d"], 3)]
    assert d.resolved == 3
    assert d.median_days_to_resolution == 4.0


def test_dashboard_follows_the_callers_scope(
    client: TestClient, known: dict[str, str], make_actor: Any, areas: City
) -> None:
    officer = make_actor("officer", areas.stations[1])
    mine = client.get("/api/disputes/dashboard", headers=officer.headers).json()
    assert mine["total"] == 1
    assert mine["by_category"]["noise"] == 1
    url = f"/api/disputes/dashboard?org_id={areas.stations[0].id}"
    assert client.get(url, headers=officer.headers).status_code == 404
    supervisor = make_actor("supervisor", areas.districts[0])
    district = client.get("/api/disputes/dashboard", headers=supervisor.headers).json()
    assert district["total"] == 7
    one = client.get(url, headers=supervisor.headers).json()
    assert one["total"] == 6
    assert one["median_days_to_resolution"] == 4.0


def test_dashboard_page_renders_numbers_and_chart(
    client: TestClient, known: dict[str, str], make_actor: Any, areas: City
) -> None:
    supervisor = make_actor("supervisor", areas.districts[0])
    r = client.get(
        f"/console/disputes/dashboard?org_id={areas.stations[0].id}",
        headers={**supervisor.headers, "Accept-Language": "en"},
    )
    assert r.status_code == 200
    assert 'data-number="open">3<' in r.text
    assert 'data-number="median">4.0<' in r.text
    assert 'data-chart="category"' in r.text
    assert 'data-key="noise" data-count="3"' in r.text
    assert "Station disputes dashboard" in r.text
    assert_csp_clean(r.text)
