"""The administration pages: organisations, users, audit log and operations."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.orgs import service as orgs
from safecity.platform import jobs
from safecity.platform.errors import NotFound, SafeCityError
from safecity.platform.runtime import Runtime
from safecity.security import service as security
from safecity.security.auth import totp_secret_of
from safecity.security.models import User
from tests.conftest import City
from tests.console.conftest import PASSWORD, csrf_from, log_in
from tests.console.test_pages import assert_csp_clean
from tests.security.audit_support import set_column

pytestmark = pytest.mark.db

NEW_DISTRICT_CSV = (
    "code,kind,name_zh,name_en,parent\n"
    "jd,district,嘉定区,Jiading,sh\n"
    "jd-s1,station,嘉定派出所,Jiading station,jd\n"
)
BAD_CSV = (
    "code,kind,name_zh,name_en,parent\njd,district,嘉定区,Jiading,nowhere\nbad code,town,,x,\n"
)


def audit_actions(html: str) -> set[str]:
    return set(re.findall(r'<tr data-seq="\d+" data-action="([^"]+)"', html))


def nav_links(html: str) -> set[str]:
    return set(re.findall(r'data-nav="([a-z]+)"', html))


def user_named(runtime: Runtime, username: str) -> User | None:
    with runtime.sessions() as s:
        return s.scalars(select(User).where(User.username == username)).one_or_none()


def org_exists(runtime: Runtime, code: str) -> bool:
    with runtime.sessions() as s:
        try:
            orgs.get_by_code(session=s, code=code)
        except NotFound:
            return False
        return True


def assert_html_403(response: Any) -> None:
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "forbidden-title" in response.text


def assert_csrf_refused(response: Any) -> None:
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


# --- navigation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", {"orgs", "users", "ops"}),
        ("auditor", {"audit"}),
        ("supervisor", {"orgs", "users"}),
        ("officer", {"orgs"}),
    ],
)
def test_navigation_shows_only_permitted_admin_pages(
    client: TestClient, city: City, make_staff: Any, role: str, expected: set[str]
) -> None:
    log_in(client, make_staff(role, city.districts[0]))
    page = client.get("/console")
    assert page.status_code == 200
    assert nav_links(page.text) == expected
    for key in expected:
        assert f'href="/console/{key}"' in page.text


# --- organisations -------------------------------------------------------------------------


def test_orgs_page_shows_the_scoped_tree_without_import_form_for_officer(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("officer", city.stations[0]))
    page = client.get("/console/orgs")
    assert page.status_code == 200
    assert_csp_clean(page.text)
    shown = set(re.findall(r'data-org="([^"]+)"', page.text))
    # own station, its ancestors, and every department; not the other stations
    assert shown == {"sh", "hp", "hp-s1", "sanitation"}
    assert "District hp" in page.text
    assert "hp区" in page.text
    assert 'data-kind="district"' in page.text
    assert "litter" in page.text  # the department's service codes
    assert 'data-nav="orgs"' in page.text
    assert 'aria-current="page"' in page.text
    assert "/console/orgs/import" not in page.text


def test_orgs_page_forbidden_without_orgs_read(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("auditor", city.city))
    assert_html_403(client.get("/console/orgs"))


def test_admin_import_dry_run_shows_counts_and_writes_nothing(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/orgs")
    assert set(re.findall(r'data-org="([^"]+)"', page.text)) >= {"hp-s2", "pd-s2"}
    assert 'enctype="multipart/form-data"' in page.text
    response = client.post(
        "/console/orgs/import",
        data={"csrf_token": csrf_from(page.text), "dry_run": "true"},
        files={"file": ("orgs.csv", NEW_DISTRICT_CSV.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert 'data-notice="orgs.import.dry_run_ok"' in response.text
    assert "data-created>2<" in response.text
    assert not org_exists(runtime, "jd")


def test_admin_import_creates_orgs(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/orgs")
    response = client.post(
        "/console/orgs/import",
        data={"csrf_token": csrf_from(page.text)},
        files={"file": ("orgs.csv", NEW_DISTRICT_CSV.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert 'data-notice="orgs.import.done"' in response.text
    assert 'data-org="jd-s1"' in response.text  # the tree already shows it
    assert org_exists(runtime, "jd")
    assert org_exists(runtime, "jd-s1")


def test_import_problems_are_shown_in_the_page_and_nothing_is_written(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/orgs")
    response = client.post(
        "/console/orgs/import",
        data={"csrf_token": csrf_from(page.text)},
        files={"file": ("orgs.csv", BAD_CSV.encode(), "text/csv")},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-error="orgs.error.problems"' in response.text
    assert "data-problems" in response.text
    assert "orgs.csv line 2" in response.text
    assert "nowhere" in response.text
    assert not org_exists(runtime, "jd")


def test_import_without_file_is_a_form_error(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/orgs")
    response = client.post("/console/orgs/import", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 422
    assert 'data-error="orgs.error.no_file"' in response.text


def test_import_without_csrf_token_is_refused(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    response = client.post(
        "/console/orgs/import",
        files={"file": ("orgs.csv", NEW_DISTRICT_CSV.encode(), "text/csv")},
    )
    assert_csrf_refused(response)
    assert not org_exists(runtime, "jd")


def test_import_needs_orgs_write(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("supervisor", city.districts[0]))
    page = client.get("/console/orgs")
    response = client.post(
        "/console/orgs/import",
        data={"csrf_token": csrf_from(page.text)},
        files={"file": ("orgs.csv", NEW_DISTRICT_CSV.encode(), "text/csv")},
    )
    assert_html_403(response)
    assert not org_exists(runtime, "jd")


# --- users ---------------------------------------------------------------------------------


def test_users_page_is_scoped_and_read_only_for_supervisor(
    client: TestClient, city: City, make_staff: Any
) -> None:
    make_staff("officer", city.stations[0], username="near")  # hp district
    make_staff("officer", city.stations[2], username="far")  # pd district
    log_in(client, make_staff("supervisor", city.districts[0], username="boss"))
    page = client.get("/console/users")
    assert page.status_code == 200
    assert_csp_clean(page.text)
    listed = set(re.findall(r'data-user="([^"]+)"', page.text))
    assert listed == {"near", "boss"}
    assert 'data-role="officer"' in page.text
    assert 'data-status="active"' in page.text
    assert 'action="/console/users"' not in page.text  # no create form
    assert "/deactivate" not in page.text


def test_users_page_forbidden_without_users_read(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("officer", city.stations[0]))
    assert_html_403(client.get("/console/users"))


def test_users_page_paginates(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    from safecity.console import pages_admin

    log_in(client, make_staff("admin", city.city, username="aaa-admin"))
    for n in range(pages_admin.USERS_PAGE):
        make_staff("officer", city.stations[0], username=f"officer{n:02d}")
    first = client.get("/console/users")
    assert len(re.findall(r'data-user="', first.text)) == pages_admin.USERS_PAGE
    assert 'data-page="next"' in first.text
    assert 'data-page="prev"' not in first.text
    second = client.get(f"/console/users?offset={pages_admin.USERS_PAGE}")
    assert re.findall(r'data-user="([^"]+)"', second.text) == ["officer24"]
    assert 'data-page="prev"' in second.text


def test_admin_creates_user_and_sees_totp_secret_once(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/users")
    assert 'data-form="user-create"' in page.text
    assert f'value="{city.stations[1].id}"' in page.text
    response = client.post(
        "/console/users",
        data={
            "csrf_token": csrf_from(page.text),
            "username": "new.officer",
            "display_name": "New Officer",
            "org_id": city.stations[1].id,
            "role": "officer",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 200, response.text
    assert 'data-notice="users.created"' in response.text
    secret = re.search(r"<code data-secret>([A-Z2-7]+)</code>", response.text)
    assert secret is not None
    user = user_named(runtime, "new.officer")
    assert user is not None
    with runtime.sessions() as s:
        assert totp_secret_of(session=s, user=user) == secret.group(1)
    assert user.display_name == "New Officer"
    again = client.get("/console/users")
    assert "data-secret" not in again.text  # shown once only
    assert 'data-user="new.officer"' in again.text


def test_create_user_errors_are_shown_in_the_page(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    token = csrf_from(client.get("/console/users").text)
    weak = client.post(
        "/console/users",
        data={
            "csrf_token": token,
            "username": "weakling",
            "org_id": city.city.id,
            "role": "analyst",
            "password": "short",
        },
    )
    assert weak.status_code == 422
    assert 'data-error="users.error.create"' in weak.text
    assert "at least 12" in weak.text
    assert 'value="weakling"' in weak.text  # the form keeps what was typed
    assert user_named(runtime, "weakling") is None
    missing = client.post("/console/users", data={"csrf_token": token, "username": "x"})
    assert missing.status_code == 422
    assert 'data-error="users.error.missing"' in missing.text


def test_create_user_without_csrf_token_is_refused(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    response = client.post(
        "/console/users",
        data={
            "username": "sneaky",
            "org_id": city.city.id,
            "role": "admin",
            "password": PASSWORD,
        },
    )
    assert_csrf_refused(response)
    assert user_named(runtime, "sneaky") is None


def test_supervisor_cannot_post_the_create_form(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("supervisor", city.districts[0]))
    token = csrf_from(client.get("/console/users").text)
    response = client.post(
        "/console/users",
        data={
            "csrf_token": token,
            "username": "sneaky",
            "org_id": city.districts[0].id,
            "role": "officer",
            "password": PASSWORD,
        },
    )
    assert_html_403(response)
    assert user_named(runtime, "sneaky") is None


def _lock(runtime: Runtime, username: str) -> None:
    for _ in range(runtime.settings.lockout_attempts):
        with runtime.sessions.begin() as s, pytest.raises(SafeCityError):
            security.login(
                session=s,
                username=username,
                password="wrong password!",
                totp_code="000000",
                settings=runtime.settings,
            )


def test_admin_unlocks_and_deactivates_users(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    make_staff("officer", city.stations[0], username="locked-out")
    _lock(runtime, "locked-out")
    locked = user_named(runtime, "locked-out")
    assert locked is not None
    assert locked.locked_until is not None
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/users")
    assert 'data-status="locked"' in page.text
    token = csrf_from(page.text)
    refused = client.post(f"/console/users/{locked.id}/unlock")
    assert_csrf_refused(refused)
    still = user_named(runtime, "locked-out")
    assert still is not None
    assert still.locked_until is not None

    unlocked = client.post(f"/console/users/{locked.id}/unlock", data={"csrf_token": token})
    assert unlocked.status_code == 200
    assert 'data-notice="users.unlocked"' in unlocked.text
    after = user_named(runtime, "locked-out")
    assert after is not None
    assert after.locked_until is None

    refused = client.post(f"/console/users/{locked.id}/deactivate")
    assert_csrf_refused(refused)
    active = user_named(runtime, "locked-out")
    assert active is not None
    assert active.active

    gone = client.post(f"/console/users/{locked.id}/deactivate", data={"csrf_token": token})
    assert gone.status_code == 200
    assert 'data-notice="users.deactivated"' in gone.text
    assert 'data-status="inactive"' in gone.text
    inactive = user_named(runtime, "locked-out")
    assert inactive is not None
    assert not inactive.active

    unknown = client.post("/console/users/nosuchuser/unlock", data={"csrf_token": token})
    assert unknown.status_code == 404
    assert 'data-error="users.error.action"' in unknown.text


# --- audit ---------------------------------------------------------------------------------


def test_auditor_reads_and_filters_the_audit_log(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("auditor", city.city))
    page = client.get("/console/audit")
    assert page.status_code == 200
    assert_csp_clean(page.text)
    actions = audit_actions(page.text)
    assert {"orgs.org.create", "users.create"} <= actions
    filtered = client.get("/console/audit?action=users")
    found = audit_actions(filtered.text)
    assert found
    assert all(a.startswith("users.") for a in found)
    assert 'value="users"' in filtered.text
    exact = client.get("/console/audit?action=orgs.org.create&until=2999-01-01")
    assert audit_actions(exact.text) == {"orgs.org.create"}
    future = client.get("/console/audit?since=2999-01-01")
    assert "data-empty" in future.text
    with runtime.sessions() as s:
        reads = s.scalar(
            select(func.count())
            .select_from(security.audit.AuditEntry)
            .where(security.audit.AuditEntry.action == "audit.read")
        )
    assert reads == 4  # every read of the log is itself audited


def test_audit_page_pages_by_seq(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    from safecity.console import pages_admin
    from tests.security.audit_support import write_records

    write_records(runtime, pages_admin.AUDIT_PAGE + 5, per_transaction=pages_admin.AUDIT_PAGE)
    log_in(client, make_staff("auditor", city.city))
    first = client.get("/console/audit?action=test.touch")
    seqs = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', first.text)]
    assert len(seqs) == pages_admin.AUDIT_PAGE
    assert seqs == sorted(seqs, reverse=True)
    older = re.search(r'href="(/console/audit\?[^"]+)"[^>]*data-page="older"', first.text)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&"))
    rest = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', second.text)]
    assert len(rest) == 5
    assert max(rest) < min(seqs)
    assert 'data-page="newest"' in second.text


def test_bad_date_filter_is_reported_in_the_page(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("auditor", city.city))
    response = client.get("/console/audit?since=2024-13-45")
    assert response.status_code == 422
    assert 'data-error="audit.error.date"' in response.text


def test_audit_page_forbidden_for_admin(client: TestClient, city: City, make_staff: Any) -> None:
    log_in(client, make_staff("admin", city.city))
    assert_html_403(client.get("/console/audit"))


def test_verify_chain_ok_then_first_bad_link(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("auditor", city.city))
    token = csrf_from(client.get("/console/audit").text)
    ok = client.post("/console/audit/verify", data={"csrf_token": token})
    assert ok.status_code == 200
    assert 'data-verify="ok"' in ok.text
    set_column(runtime.engine, 2, action="tampered.action")
    bad = client.post("/console/audit/verify", data={"csrf_token": token})
    assert 'data-verify="failed"' in bad.text
    assert 'data-first-bad="2"' in bad.text


def test_verify_without_csrf_token_is_refused(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("auditor", city.city))
    assert_csrf_refused(client.post("/console/audit/verify"))
    with runtime.sessions() as s:
        verifies = s.scalar(
            select(func.count())
            .select_from(security.audit.AuditEntry)
            .where(security.audit.AuditEntry.action == "audit.verify")
        )
    assert verifies == 0


# --- operations ----------------------------------------------------------------------------


def test_ops_page_shows_jobs_outbox_and_notifications(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    page = client.get("/console/ops")
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert 'data-job="notify.dispatch"' in page.text
    assert 'action="/console/ops/jobs/notify.dispatch/run"' in page.text
    pending = re.search(r'data-pending="(\d+)"', page.text)
    assert pending is not None
    assert int(pending.group(1)) > 0
    assert 'data-notify-status="failed"' in page.text


def test_ops_page_forbidden_without_jobs_run(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("supervisor", city.districts[0]))
    assert_html_403(client.get("/console/ops"))


def test_run_now_runs_the_job_and_needs_csrf(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("admin", city.city))
    token = csrf_from(client.get("/console/ops").text)
    refused = client.post("/console/ops/jobs/notify.dispatch/run")
    assert_csrf_refused(refused)
    with runtime.sessions() as s:
        assert jobs.recent_runs(s, name="notify.dispatch") == []
    done = client.post("/console/ops/jobs/notify.dispatch/run", data={"csrf_token": token})
    assert done.status_code == 200, done.text
    assert 'data-notice="ops.run.done"' in done.text
    assert 'data-run-status="succeeded"' in done.text
    with runtime.sessions() as s:
        runs = jobs.recent_runs(s, name="notify.dispatch")
    assert len(runs) == 1
    assert runs[0].trigger == "manual"
    unknown = client.post("/console/ops/jobs/no.such.job/run", data={"csrf_token": token})
    assert unknown.status_code == 404
    assert 'data-error="ops.run.error"' in unknown.text


def test_auditor_dashboard_has_no_map_it_may_not_load(
    client: TestClient, city: City, make_actor: Any
) -> None:
    """The map reads /api/orgs/areas.geojson (orgs:read); the auditor holds only audit
    permissions, so the dashboard leaves the map out instead of showing a 403 in it."""
    auditor = make_actor("auditor", city.city)
    page = client.get("/console", headers=auditor.headers)
    assert page.status_code == 200
    assert 'id="city-map"' not in page.text
    officer = make_actor("officer", city.stations[0])
    assert 'id="city-map"' in client.get("/console", headers=officer.headers).text
