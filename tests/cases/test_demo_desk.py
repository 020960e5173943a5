"""The demo duty desk: alerts of the chosen categories become cases from the alert (once
per alert), the victim gets number + code that work in the portal, older desk cases move
along their workflow (approvals included) with public notes, the job is off by default,
and the starter lookup that ``safecity demo`` prints works."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from safecity.alerts import service as alerts
from safecity.alerts.models import Alert
from safecity.cases import demo_desk, portal
from safecity.cases.models import Case, CasePerson
from safecity.cases.work_models import CaseApproval
from safecity.platform import jobs
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.conftest import City

pytestmark = pytest.mark.db


@pytest.fixture
def demo_users(make_actor: Any, city: City) -> dict[str, Any]:
    """The demo officer (station 0) and the demo supervisor (district 0)."""
    return {
        "officer": make_actor("officer", city.stations[0], username=demo_desk.OFFICER),
        "supervisor": make_actor("supervisor", city.districts[0], username=demo_desk.SUPERVISOR),
    }


def _raise(runtime: Runtime, org_id: str, category: str = "theft", n: int = 0) -> str:
    with runtime.sessions.begin() as s:
        alert = alerts.raise_alert(
            s,
            source="sensing.rules",
            category=category,
            severity="high",
            title_key="alerts.ebike_battery_theft",
            lat=31.2,
            lng=121.4,
            dedup_key=f"test:{category}:{n}",
            occurred_at=utcnow(),
            org_id=org_id,
        )
        return alert.id


def _cases(runtime: Runtime) -> list[Case]:
    with runtime.sessions() as s:
        rows = list(s.scalars(select(Case).order_by(Case.created_at)))
        s.expunge_all()
        return rows


def _works(runtime: Runtime, lookup: demo_desk.PortalLookup) -> Any:
    with runtime.sessions.begin() as s:
        found = portal.lookup(s, client="test", number=lookup.number, code=lookup.code)
        assert found is not None, "the issued number + code do not open the case"
        return found


def test_alerts_become_cases_once_and_move_along(
    runtime: Runtime, city: City, demo_users: dict[str, Any]
) -> None:
    own = [_raise(runtime, city.stations[0].id, n=i) for i in range(2)]
    own.append(_raise(runtime, city.stations[0].id, "intrusion", n=9))
    fire = _raise(runtime, city.stations[0].id, "fire")  # not a crime: left alone
    report = demo_desk.run(runtime, max_open=5)
    assert not report.failures
    rows = _cases(runtime)
    assert sorted(c.alert_id or "" for c in rows) == sorted(own)
    assert fire not in {c.alert_id for c in rows}
    assert {c.source for c in rows} == {"alert"}
    assert {c.state for c in rows} == {"registered"}
    assert {c.case_type for c in rows} == {"theft"}
    # the demo officer opened them (a real demo user, not SYSTEM), audited as such
    assert {c.created_by for c in rows} == {demo_users["officer"].user_id}
    with runtime.sessions() as s:
        actors = set(
            s.scalars(select(AuditEntry.actor_id).where(AuditEntry.action == "cases.open"))
        )
        assert actors == {demo_users["officer"].user_id}
        victims = list(s.scalars(select(CasePerson)))
        assert len(victims) == 3
        assert all("（演示）" in v.name for v in victims)
        assert all(v.phone.startswith("1380000") for v in victims)
    assert len(report.lookups) == 3
    public = _works(runtime, report.lookups[0])
    assert public.stage == "registered"
    assert any(e.kind == "note" for e in public.timeline)

    again = demo_desk.run(runtime, max_open=5)  # idempotent: no alert opens a second case
    assert again.opened == []
    assert again.advanced == []
    assert len(_cases(runtime)) == 3

    later = utcnow() + timedelta(minutes=10)
    moved = demo_desk.run(runtime, now=later, max_open=5, max_advance=1)  # bounded
    assert len(moved.advanced) == 1
    assert moved.advanced[0][1] == "investigate"
    assert sorted(c.state for c in _cases(runtime)) == ["investigating", "registered", "registered"]
    case_id = moved.advanced[0][0]
    number = next(c.number for c in _cases(runtime) if c.id == case_id)
    lookup = next(x for x in report.lookups if x.number == number)
    stages = [e.stage for e in _works(runtime, lookup).timeline if e.kind == "stage"]
    assert stages == ["received", "registered", "investigating"]


def test_a_case_is_solved_or_closed_through_the_approvals_path(
    runtime: Runtime, city: City, demo_users: dict[str, Any]
) -> None:
    _raise(runtime, city.stations[0].id)
    first = demo_desk.run(runtime)
    (lookup,) = first.lookups
    steps: list[str] = []
    at = utcnow()
    for _ in range(6):
        at += timedelta(minutes=10)
        steps += [name for _, name in demo_desk.run(runtime, now=at).advanced]
        if _cases(runtime)[0].state in ("solved", "closed"):
            break
    (case,) = _cases(runtime)
    assert case.state in ("solved", "closed")
    assert steps[:2] == ["investigate", "request"]
    assert steps[-1] == "approve"
    with runtime.sessions() as s:
        approved = s.scalar(
            select(CaseApproval).where(
                CaseApproval.case_id == case.id, CaseApproval.state == "approved"
            )
        )
        assert approved is not None
        assert approved.requested_by == demo_users["officer"].user_id
        assert approved.decided_by == demo_users["supervisor"].user_id
    public = _works(runtime, lookup)
    assert public.stage == case.state
    assert len([e for e in public.timeline if e.kind == "note"]) >= 3


def test_outside_the_demo_users_scope_the_desk_takes_a_share(
    runtime: Runtime, city: City, demo_users: dict[str, Any]
) -> None:
    far = city.stations[3]  # the other district: not the demo users' scope
    ids = [_raise(runtime, far.id, n=i) for i in range(30)]
    report = demo_desk.run(runtime, max_open=40)
    taken = {c.alert_id for c in _cases(runtime)}
    assert taken == {i for i in ids if demo_desk.in_share(i)}
    assert 0 < len(taken) < len(ids)
    assert {c.created_by for c in _cases(runtime)} == {demo_desk.DESK.id}
    assert len(report.lookups) == len(taken)


def test_the_job_is_off_unless_the_setting_is_on(
    runtime: Runtime, city: City, demo_users: dict[str, Any]
) -> None:
    _raise(runtime, city.stations[0].id)
    jobs.load_job_modules()  # what every scheduler loads: the desk is not among them
    assert demo_desk.JOB not in {j.name for j in jobs.registry.all()}
    registry = jobs.JobRegistry()
    demo_desk.register(registry)  # what `safecity demo` does in its own process
    scheduler = jobs.Scheduler(runtime, registry)
    off = scheduler.run_now(demo_desk.JOB)
    assert off.items == 0
    assert _cases(runtime) == []
    runtime.settings.demo_duty_desk = True
    on = scheduler.run_now(demo_desk.JOB)
    assert on.status == "succeeded"
    assert on.items == 1
    assert len(_cases(runtime)) == 1


def test_starter_lookup_opens_a_case_that_the_portal_finds(
    runtime: Runtime, city: City, demo_users: dict[str, Any]
) -> None:
    first = demo_desk.starter_lookup(runtime)  # no alert yet: one is raised at the station
    assert first is not None
    assert _works(runtime, first).stage == "registered"
    second = demo_desk.starter_lookup(runtime)  # a rerun opens another, from a new alert
    assert second is not None
    assert second.number != first.number
    rows = _cases(runtime)
    assert len(rows) == 2
    assert len({c.alert_id for c in rows}) == 2
    assert {c.org_id for c in rows} == {city.stations[0].id}
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 2
        sources = set(s.scalars(select(Alert.source)))
        assert sources == {demo_desk.SEED_SOURCE}
