"""Reply SLA on citizen comments: a deadline on every citizen comment (two working days,
Beijing calendar), answered by the unit's reply, listed in scope (API and console),
and one overdue alert per comment from the job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from safecity.alerts.models import Alert
from safecity.cases import jobs as cases_jobs
from safecity.cases import replies_due
from safecity.cases.models import CaseComment
from safecity.cases.reply_sla import REPLY_WORKDAYS, reply_due
from safecity.eservices.workdays import CHINA_TZ
from safecity.platform import jobs
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.cases.conftest import Opened, OpenFn
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean

pytestmark = pytest.mark.db

DUE_API = "/api/cases/replies-due"
PROBLEM = "application/problem+json"


def _local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=CHINA_TZ)


@pytest.mark.parametrize(
    ("made", "due"),
    [
        # Thursday morning: Friday and Monday count, due at the end of Monday.
        (_local(2025, 6, 5, 10), _local(2025, 6, 10)),
        # Friday 23:30 local: the day itself is not counted (Mon, Tue).
        (_local(2025, 6, 6, 23, 30), _local(2025, 6, 11)),
        # 16:30 UTC on Friday is Saturday 00:30 in Beijing: still Mon, Tue.
        (datetime(2025, 6, 6, 16, 30, tzinfo=UTC), _local(2025, 6, 11)),
        # The day before the National Day week (1-8 Oct 2025 off): Thu 9, Fri 10.
        (_local(2025, 9, 30, 9), _local(2025, 10, 11)),
        # Past the calendar: calendar days, never a refused comment.
        (_local(2099, 6, 5, 10), _local(2099, 6, 8)),
    ],
)
def test_the_deadline_is_the_end_of_the_second_working_day(made: datetime, due: datetime) -> None:
    assert REPLY_WORKDAYS == 2
    assert reply_due(made) == due


def _comment(client: TestClient, case: Opened, text: str = "any news?") -> None:
    body = {"number": case.number, "code": case.code, "text": text}
    assert client.post("/api/portal/comments", json=body).status_code == 202


def _citizen_comments(runtime: Runtime, case_id: str) -> list[CaseComment]:
    with runtime.sessions() as s:
        return list(
            s.scalars(
                select(CaseComment)
                .where(CaseComment.case_id == case_id, CaseComment.author == "citizen")
                .order_by(CaseComment.created_at, CaseComment.id)
            )
        )


def _make_overdue(runtime: Runtime, case_id: str) -> None:
    """Move the deadlines of the case's comments into the past (time travel)."""
    with runtime.sessions.begin() as s:
        s.execute(
            update(CaseComment)
            .where(CaseComment.case_id == case_id, CaseComment.author == "citizen")
            .values(reply_due_at=utcnow() - timedelta(hours=1))
        )


def test_a_portal_comment_gets_a_deadline_and_a_general_reply_answers_it(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    _comment(client, case)
    [item] = _citizen_comments(runtime, case.id)
    assert item.reply_due_at == reply_due(item.created_at)
    assert item.answered_at is None
    listed = client.get(DUE_API, headers=case.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 1
    row = body["items"][0]
    assert (row["id"], row["case_number"], row["overdue"]) == (item.id, case.number, False)
    assert "text" not in row  # the citizen's words stay on the case page
    r = client.post(f"/api/cases/{case.id}/replies", json={"text": "on it"}, headers=case.headers)
    assert r.status_code == 201
    assert r.json()["reply_to"] is None
    [item] = _citizen_comments(runtime, case.id)
    assert item.answered_at is not None
    assert client.get(DUE_API, headers=case.headers).json()["total"] == 0


def test_a_reply_to_one_comment_answers_that_one_and_an_unknown_one_is_404(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    _comment(client, case, "first")
    _comment(client, case, "second")
    first, second = _citizen_comments(runtime, case.id)
    url = f"/api/cases/{case.id}/replies"
    missing = client.post(
        url, json={"text": "x", "reply_to": "nosuchcomment"}, headers=case.headers
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith(PROBLEM)
    r = client.post(
        url, json={"text": "about the first", "reply_to": first.id}, headers=case.headers
    )
    assert r.status_code == 201
    first, second = _citizen_comments(runtime, case.id)
    assert first.answered_at is not None
    assert second.answered_at is None
    assert [i["id"] for i in client.get(DUE_API, headers=case.headers).json()["items"]] == [
        second.id
    ]


def test_the_overdue_job_marks_once_and_alerts_the_station_once(
    client: TestClient, runtime: Runtime, open_case: OpenFn, city: City
) -> None:
    case = open_case(0)
    answered = open_case(0)
    _comment(client, case)
    _comment(client, answered)
    r = client.post(
        f"/api/cases/{answered.id}/replies", json={"text": "done"}, headers=answered.headers
    )
    assert r.status_code == 201
    [item] = _citizen_comments(runtime, case.id)
    assert item.reply_due_at is not None
    with runtime.sessions.begin() as s:  # not yet due
        assert replies_due.check_overdue(s, now=item.reply_due_at - timedelta(minutes=1)) == 0
    _make_overdue(runtime, case.id)
    _make_overdue(runtime, answered.id)  # answered: never overdue
    scheduler = jobs.Scheduler(runtime)
    outcome = scheduler.run_now(cases_jobs.REPLIES_OVERDUE)
    assert outcome.status == "succeeded"
    assert outcome.items == 1
    assert scheduler.run_now(cases_jobs.REPLIES_OVERDUE).items == 0  # nothing new
    with runtime.sessions() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.category == replies_due.CATEGORY)))
        assert len(alerts) == 1
        assert alerts[0].org_id == city.stations[0].id
        assert alerts[0].title_key == replies_due.TITLE_KEY
        assert alerts[0].detail["comment_id"] == item.id
        marked = s.get(CaseComment, item.id)
        assert marked is not None
        assert marked.overdue_alerted_at is not None
        audited = s.scalars(
            select(AuditEntry.target_id).where(AuditEntry.action == "cases.reply.overdue_alert")
        ).all()
        assert audited == [case.id]
    row = client.get(DUE_API, headers=case.headers).json()["items"][0]
    assert row["overdue"] is True
    assert row["overdue_alerted_at"] is not None


def test_the_list_is_scoped_paged_audited_and_needs_the_read_permission(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    hp_a, hp_b, pd = open_case(0), open_case(1), open_case(2)
    for case in (hp_a, hp_b, pd):
        _comment(client, case)
    _make_overdue(runtime, hp_b.id)
    hp_boss = make_actor("supervisor", city.districts[0])
    pd_boss = make_actor("supervisor", city.districts[1])
    mine = client.get(DUE_API, headers=hp_boss.headers).json()
    assert mine["total"] == 2
    assert [i["case_id"] for i in mine["items"]] == [hp_b.id, hp_a.id]  # overdue first
    assert [i["overdue"] for i in mine["items"]] == [True, False]
    theirs = client.get(DUE_API, headers=pd_boss.headers).json()
    assert [i["case_id"] for i in theirs["items"]] == [pd.id]
    only = client.get(DUE_API, params={"overdue": "true"}, headers=hp_boss.headers).json()
    assert [i["case_id"] for i in only["items"]] == [hp_b.id]
    paged = client.get(DUE_API, params={"limit": 1}, headers=hp_boss.headers).json()
    assert len(paged["items"]) == 1
    assert paged["next"] is not None
    bad = client.get(DUE_API, params={"sort": "text"}, headers=hp_boss.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith(PROBLEM)
    auditor = make_actor("auditor", city.city)
    denied = client.get(DUE_API, headers=auditor.headers)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith(PROBLEM)
    with runtime.sessions() as s:
        counts = s.scalars(
            select(AuditEntry.detail).where(
                AuditEntry.action == "cases.replies_due.list",
                AuditEntry.actor_id == pd_boss.user_id,
            )
        ).all()
        assert [d["count"] for d in counts] == [1]


def test_the_console_shows_deadlines_overdue_marks_and_the_queue(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_staff: Any, city: City
) -> None:
    case = open_case(0)
    theirs = open_case(2)
    _comment(client, case, "first")
    _comment(client, case, "second")
    _comment(client, theirs)
    _make_overdue(runtime, case.id)
    log_in(client, make_staff("officer", city.stations[0]))
    listing = client.get("/console/cases")
    assert listing.status_code == 200
    assert 'href="/console/cases/replies"' in listing.text
    assert 'href="/console/cases/approvals"' not in listing.text  # an officer approves nothing
    assert 'data-awaiting="2"' in listing.text
    assert "data-reply-overdue" in listing.text
    queue = client.get("/console/cases/replies")
    assert queue.status_code == 200
    assert_csp_clean(queue.text)
    assert queue.text.count("data-comment-id=") == 2
    assert queue.text.count("data-reply-overdue") == 2
    assert theirs.number not in queue.text
    assert client.get("/console/cases/replies?overdue=false").text.count("data-comment-id=") == 0
    page = client.get(f"/console/cases/{case.id}")
    assert page.status_code == 200
    assert page.text.count("data-awaiting-reply=") == 2
    assert 'name="reply_to"' in page.text
    first, _second = _citizen_comments(runtime, case.id)
    token = csrf_from(page.text)
    replied = client.post(
        f"/console/cases/{case.id}/replies",
        data={"csrf_token": token, "text": "answer", "reply_to": first.id},
    )
    assert replied.status_code == 200
    assert replied.text.count("data-awaiting-reply=") == 1
    unknown = client.post(
        f"/console/cases/{case.id}/replies",
        data={"csrf_token": token, "text": "answer", "reply_to": "nosuchcomment"},
    )
    assert unknown.status_code == 404
    client.post(f"/console/cases/{case.id}/replies", data={"csrf_token": token, "text": "all"})
    assert client.get("/console/cases/replies").text.count("data-comment-id=") == 0
