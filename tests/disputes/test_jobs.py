"""The overdue follow-up reminder raises one alert per due time, at the dispute's station."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.disputes import jobs as dispute_jobs
from safecity.disputes import service
from safecity.disputes.schemas import FollowUpCreate
from safecity.platform import jobs, timeline
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security import audit
from tests.conftest import City
from tests.disputes.conftest import RecordFn

pytestmark = pytest.mark.db


def _due_in(runtime: Runtime, dispute_id: str, delta: timedelta) -> None:
    with runtime.sessions.begin() as s:
        service.add_follow_up(
            session=s,
            principal=audit.SYSTEM,
            dispute_id=dispute_id,
            data=FollowUpCreate(
                kind="call",
                happened_at=utcnow() - timedelta(days=30),
                next_due_at=utcnow() + delta,
            ),
        )


def _alerts(runtime: Runtime) -> list[Alert]:
    with runtime.sessions() as s:
        return list(s.scalars(select(Alert).where(Alert.category == dispute_jobs.CATEGORY)))


def test_overdue_follow_up_raises_one_reminder_alert(
    runtime: Runtime, record: RecordFn, areas: City
) -> None:
    overdue = record(0)
    on_time = record(1)
    no_point = record(0, lat=None, lng=None, org_id=areas.stations[3].id)  # area: a square
    _due_in(runtime, overdue.id, -timedelta(days=2))
    _due_in(runtime, on_time.id, timedelta(days=2))
    _due_in(runtime, no_point.id, -timedelta(hours=1))
    with runtime.sessions.begin() as s:
        report = dispute_jobs.remind_overdue(session=s, now=utcnow())
    assert sorted(report.reminded) == sorted([overdue.id, no_point.id])
    raised = {a.detail["dispute_id"]: a for a in _alerts(runtime)}
    assert set(raised) == {overdue.id, no_point.id}
    assert raised[overdue.id].org_id == areas.stations[0].id
    assert raised[no_point.id].org_id == areas.stations[3].id  # inside its station's area
    assert raised[overdue.id].severity == "low"
    with runtime.sessions() as s:
        kinds = [e.kind for e in timeline.list_for(s, record_type="dispute", record_id=overdue.id)]
    assert kinds[-1] == "reminder"

    # Once per due time: the next run raises nothing; a new overdue due time does.
    with runtime.sessions.begin() as s:
        assert dispute_jobs.remind_overdue(session=s, now=utcnow()).reminded == []
    _due_in(runtime, overdue.id, -timedelta(minutes=5))
    with runtime.sessions.begin() as s:
        assert dispute_jobs.remind_overdue(session=s, now=utcnow()).reminded == [overdue.id]
    assert len(_alerts(runtime)) == 3


def test_closed_disputes_are_not_reminded_and_the_job_is_registered(
    runtime: Runtime, record: RecordFn, make_actor: Any
) -> None:
    dispute = record(0)
    _due_in(runtime, dispute.id, -timedelta(days=1))
    with runtime.sessions.begin() as s:
        service.transition(
            session=s,
            principal=audit.SYSTEM,
            dispute_id=dispute.id,
            name="close_unresolved",
            notes="moved away",
        )
    job = jobs.registry.get("disputes.follow_up_reminder")
    assert job.every == dispute_jobs.EVERY
    outcome = jobs.Scheduler(runtime).run_now("disputes.follow_up_reminder")
    assert outcome.status == "succeeded"
    assert _alerts(runtime) == []
