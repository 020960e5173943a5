"""The application workflow: transitions and illegal ones, the working-day clock paused
and resumed across holidays and make-up workdays, notices, SLA alerts, issuing, and the
single window (fan-out to departments, results issued together)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.eservices import citizens, jobs, service
from safecity.eservices.models import Application, Attachment
from safecity.platform.errors import IllegalTransition, InvalidInput, NotFound, PermissionDenied
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.conftest import Actor, City
from tests.eservices.applications_support import (
    FOREIGNER_ANSWERS,
    PDF_BYTES,
    People,
    act,
    at,
    fill,
    people,
    png_bytes,
    principal,
    submitted_ncr,
)

pytestmark = pytest.mark.db


@pytest.fixture
def folks(runtime: Runtime, city: City, make_actor: Callable[..., Actor]) -> People:
    return people(runtime, city, make_actor)


def _app(runtime: Runtime, app_id: str) -> Application:
    with runtime.sessions() as s:
        app = s.get(Application, app_id)
        assert app is not None
        s.expunge(app)
        return app


def test_full_flow_with_a_supplement_and_issue(runtime: Runtime, folks: People) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=at("2026-11-02"))
    assert act(runtime, folks.police, app_id, "accept", now=at("2026-11-02", 5)).state == "accepted"
    assert act(runtime, folks.police, app_id, "review", now=at("2026-11-03")).state == "review"
    asked = act(
        runtime,
        folks.police,
        app_id,
        "request_supplement",
        now=at("2026-11-03", 3),
        comment="Please upload the letter of authorisation",
    )
    assert asked.state == "supplement_requested"
    assert asked.paused
    with runtime.sessions.begin() as s:  # the applicant supplements a material
        service.add_attachment(
            session=s,
            principal=principal(s, folks.citizen),
            application_id=app_id,
            material_code="agent-authorisation",
            filename="letter.pdf",
            content_type="application/pdf",
            data=PDF_BYTES,
        )
    back = act(runtime, folks.citizen, app_id, "supplement", now=at("2026-11-05"))
    assert back.state == "review"
    assert not back.paused
    # submitted Mon 2 Nov (3 days → Thu 5); paused 4–5 Nov (2 working days) → Mon 9 Nov
    assert back.due_on == date(2026, 11, 9)
    assert back.paused_workdays == 2
    approved = act(runtime, folks.police, app_id, "approve", now=at("2026-11-06"))
    assert approved.state == "approved"
    issued = act(runtime, folks.police, app_id, "issue", now=at("2026-11-06", 3))
    assert issued.state == "issued"
    assert issued.certificate_id is not None
    app = _app(runtime, app_id)
    assert app.finished_workdays == 2  # 3 Nov and 6 Nov counted; 4–5 Nov paused
    with runtime.sessions() as s:
        detail = service.get_application(
            session=s, principal=principal(s, folks.citizen), application_id=app_id
        )
        assert [t.to_state for t in detail.timeline] == [
            "draft",
            "submitted",
            "accepted",
            "review",
            "supplement_requested",
            "review",
            "approved",
            "issued",
        ]
        supplement_step = detail.timeline[4]
        assert supplement_step.note == "Please upload the letter of authorisation"
        assert supplement_step.actor_id is None  # staff ids are not shown to the applicant
        notices = s.scalars(select(Notification).order_by(Notification.created_at)).all()
        # one notice per transition after the draft: submitted .. issued
        assert len(notices) == 7
        assert all(n.recipient.startswith("139") for n in notices)
        assert any("letter of authorisation" in n.body for n in notices)
        actions = set(s.scalars(select(AuditEntry.action)))
        assert {
            "eservice_application.submit",
            "eservice_application.request_supplement",
            "eservice_application.issue",
        } <= actions


def test_illegal_transitions_and_permissions(runtime: Runtime, folks: People) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=at("2026-11-02"))
    with pytest.raises(IllegalTransition):
        act(runtime, folks.police, app_id, "approve", now=at("2026-11-02"))
    with pytest.raises(IllegalTransition):
        act(runtime, folks.police, app_id, "issue", now=at("2026-11-02"))
    with pytest.raises(IllegalTransition):
        act(runtime, folks.citizen, app_id, "supplement", now=at("2026-11-02"))
    with pytest.raises(NotFound):  # a citizen cannot act as staff (not even see it as staff)
        act(runtime, folks.citizen, app_id, "accept", now=at("2026-11-02"))
    with pytest.raises(PermissionDenied):  # staff cannot supplement for the applicant
        act(runtime, folks.police, app_id, "supplement", now=at("2026-11-02"))
    with pytest.raises(InvalidInput):
        act(runtime, folks.police, app_id, "teleport", now=at("2026-11-02"))
    act(runtime, folks.police, app_id, "accept", now=at("2026-11-02"))
    with pytest.raises(InvalidInput, match="reason"):
        act(runtime, folks.police, app_id, "request_supplement", now=at("2026-11-02"))
    with pytest.raises(InvalidInput, match="reason"):
        act(runtime, folks.police, app_id, "reject", now=at("2026-11-02"), comment="  ")
    rejected = act(
        runtime, folks.police, app_id, "reject", now=at("2026-11-03"), comment="Not eligible"
    )
    assert rejected.state == "rejected"
    assert rejected.actions == []
    with pytest.raises(IllegalTransition):
        act(runtime, folks.police, app_id, "approve", now=at("2026-11-03"))
    app = _app(runtime, app_id)
    assert app.decision_note == "Not eligible"
    assert app.finished_workdays == 1


def test_clock_pauses_across_a_holiday_and_a_make_up_workday(
    runtime: Runtime, folks: People
) -> None:
    # Thu 17 Sep 2026, 3 working days: Fri 18, Sun 20 (make-up workday), Mon 21
    app_id = submitted_ncr(runtime, folks.citizen, now=at("2026-09-17"))
    assert _app(runtime, app_id).due_on == date(2026, 9, 21)
    act(runtime, folks.police, app_id, "accept", now=at("2026-09-18"))
    act(
        runtime,
        folks.police,
        app_id,
        "request_supplement",
        now=at("2026-09-18", 6),
        comment="Residence permit page missing",
    )
    with runtime.sessions() as s:  # while paused, the clock shows it
        clock = service.deadline(s, s.get(Application, app_id), today=date(2026, 9, 24))  # type: ignore[arg-type]
        assert clock.paused
        assert clock.elapsed_workdays == 1
    back = act(runtime, folks.citizen, app_id, "supplement", now=at("2026-09-28"))
    # paused 19–28 Sep: the make-up Sunday 20th, 21–24, and Mon 28 (the Mid-Autumn
    # holidays 25–27 are not working days anyway) → 6 working days paused;
    # counted: Fri 18, then Tue 29 and Wed 30 → due Wed 30 Sep
    assert back.paused_workdays == 6
    assert back.due_on == date(2026, 9, 30)
    with runtime.sessions() as s:
        clock = service.deadline(s, s.get(Application, app_id), today=date(2026, 9, 29))  # type: ignore[arg-type]
        assert clock.elapsed_workdays == 2
        assert clock.remaining_workdays == 1
        assert [(p.started_on, p.ended_on, p.workdays) for p in clock.pauses] == [
            (date(2026, 9, 18), date(2026, 9, 28), 6)
        ]


def test_a_deadline_beyond_a_holiday_lands_on_a_make_up_workday(
    runtime: Runtime, folks: People
) -> None:
    # submitted on National Day (a holiday): 8 Oct, 9 Oct, then Sat 10 Oct (make-up day)
    app_id = submitted_ncr(runtime, folks.citizen, now=at("2026-10-01"))
    assert _app(runtime, app_id).due_on == date(2026, 10, 10)


def test_sla_alerts_due_soon_then_overdue_once_each(runtime: Runtime, folks: People) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=at("2026-11-02"))  # due Thu 5 Nov
    with runtime.sessions.begin() as s:
        assert jobs.check_sla(s, now=at("2026-11-02")) == 0
    with runtime.sessions.begin() as s:
        assert jobs.check_sla(s, now=at("2026-11-04")) == 1
    with runtime.sessions.begin() as s:
        assert jobs.check_sla(s, now=at("2026-11-05")) == 0  # already raised
    with runtime.sessions.begin() as s:
        assert jobs.check_sla(s, now=at("2026-11-06")) == 1
    with runtime.sessions() as s:
        alerts = s.scalars(select(Alert).order_by(Alert.severity)).all()
        assert sorted(a.severity for a in alerts) == ["high", "medium"]
        assert {a.org_id for a in alerts} == {folks.police.org_id}
        assert all(a.detail["application_id"] == app_id for a in alerts)
    assert _app(runtime, app_id).sla_level == "overdue"


def _foreigner_application(runtime: Runtime, actor: Actor) -> str:
    now = at("2026-11-02")
    with runtime.sessions.begin() as s:
        citizens.seed_profile(s, user_id=actor.user_id, profile=citizens.foreigner_profile())
        who = principal(s, actor)
        app = service.start_application(
            session=s, principal=who, item_code="foreigner-work-residence", now=now
        )
        fill(s, who, app.id, FOREIGNER_ANSWERS, now)
        for code in ("passport", "contract", "degree", "criminal-record-abroad"):
            service.add_attachment(
                session=s,
                principal=who,
                application_id=app.id,
                material_code=code,
                filename=f"{code}.pdf",
                content_type="application/pdf",
                data=PDF_BYTES,
                now=now,
            )
        service.add_attachment(
            session=s,
            principal=who,
            application_id=app.id,
            material_code="photo",
            filename="photo.png",
            content_type="image/png",
            data=png_bytes(),
            now=now,
        )
        submitted = service.submit(
            session=s, principal=who, application_id=app.id, idempotency_key="sw-key-0001", now=now
        )
    assert submitted.state == "submitted"
    assert [p.department for p in submitted.parts] == ["hr", "psb-exit-entry"]
    return app.id


def test_single_window_fans_out_and_issues_together(
    runtime: Runtime, folks: People, make_actor: Callable[..., Actor], city: City
) -> None:
    applicant = make_actor("citizen", city.city)
    parent_id = _foreigner_application(runtime, applicant)
    with runtime.sessions() as s:
        parent = service.get_application(
            session=s, principal=principal(s, applicant), application_id=parent_id
        )
        parts = {p.department: p for p in parent.parts}
        assert parts["hr"].due_on == date(2026, 11, 16)  # 10 working days
        assert parts["psb-exit-entry"].due_on == date(2026, 11, 23)  # 15 working days
        hr_atts = {
            a.material_code
            for a in s.scalars(
                select(Attachment).where(Attachment.application_id == parts["hr"].id)
            )
        }
        assert {"contract", "degree", "passport"} <= hr_atts
        assert "entry-record" not in hr_atts  # the exit-entry part's material
        hr_queue = service.staff_queue(session=s, principal=principal(s, folks.hr))
        assert [a.id for a in hr_queue] == [parts["hr"].id]  # the part, not the parent
        police_queue = service.staff_queue(session=s, principal=principal(s, folks.police))
        assert police_queue == []
    hr_id, ee_id = parts["hr"].id, parts["psb-exit-entry"].id
    with pytest.raises(IllegalTransition):  # the parent moves only with its parts
        act(runtime, folks.hr, parent_id, "accept", now=at("2026-11-03"))
    act(runtime, folks.hr, hr_id, "accept", now=at("2026-11-03"))
    assert _app(runtime, parent_id).state == "submitted"
    act(runtime, folks.exit_entry, ee_id, "accept", now=at("2026-11-03"))
    assert _app(runtime, parent_id).state == "accepted"
    act(runtime, folks.hr, hr_id, "approve", now=at("2026-11-05"))
    with pytest.raises(IllegalTransition):  # parts are not issued one by one
        act(runtime, folks.hr, hr_id, "issue", now=at("2026-11-05"))
    assert _app(runtime, hr_id).state == "approved"
    assert _app(runtime, parent_id).state == "accepted"
    act(runtime, folks.exit_entry, ee_id, "approve", now=at("2026-11-09"))
    parent_row, hr, ee = (_app(runtime, i) for i in (parent_id, hr_id, ee_id))
    assert (parent_row.state, hr.state, ee.state) == ("issued", "issued", "issued")
    assert hr.certificate_id
    assert ee.certificate_id
    assert hr.certificate_id != ee.certificate_id
    assert hr.certificate_type == "foreign-work-permit"
    assert ee.certificate_type == "foreign-residence-permit"
    assert parent_row.issued_at == hr.issued_at == ee.issued_at
    assert parent_row.finished_workdays == 5  # 3, 4, 5, 6, 9 Nov: within 7 working days
    with runtime.sessions() as s:
        together = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "eservices.application.issued_together")
        ).all()
        assert len(together) == 1


def test_single_window_one_rejected_part_rejects_the_whole(
    runtime: Runtime, folks: People, make_actor: Callable[..., Actor], city: City
) -> None:
    applicant = make_actor("citizen", city.city)
    parent_id = _foreigner_application(runtime, applicant)
    with runtime.sessions() as s:
        kids = s.scalars(select(Application).where(Application.parent_id == parent_id)).all()
        by_dept = {k.department: k.id for k in kids}
    act(
        runtime,
        folks.exit_entry,
        by_dept["psb-exit-entry"],
        "reject",
        now=at("2026-11-03"),
        comment="Passport expires too soon",
    )
    parent = _app(runtime, parent_id)
    assert parent.state == "rejected"
    assert parent.decision_note
    assert "Passport expires too soon" in parent.decision_note
    with runtime.sessions() as s:
        issued = s.scalar(
            select(func.count())
            .select_from(Application)
            .where(Application.certificate_id.is_not(None))
        )
        assert issued == 0


def test_the_sla_job_is_scheduled() -> None:
    from safecity.platform import jobs as platform_jobs

    platform_jobs.load_job_modules()
    job = platform_jobs.registry.get("eservices.sla")
    assert job.func is jobs.sla_job
