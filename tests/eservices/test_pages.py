"""Citizens' e-service pages and the staff console pages, through the app (TestClient).

A citizen signs in at ``/services/login``, applies for a no-criminal-record certificate one
question per page (field errors shown in a summary that links to each field), saves and
resumes, checks the answers, sends twice with one idempotency key (one application), and
downloads a copy; another citizen gets 404s; department staff accept, ask for a
supplement, approve and issue from ``/console/eservices``; the citizen then sees the QR.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.eservices import citizens, service
from safecity.eservices.models import Application
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security import service as security
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.security.rbac import Principal
from tests.conftest import City
from tests.console.conftest import Staff, csrf_from, log_in, make_staff  # noqa: F401
from tests.eservices.applications_support import (
    FOREIGNER_ANSWERS,
    PDF_BYTES,
    at,
    dept_org,
    fill,
    png_bytes,
)

pytestmark = pytest.mark.db

PASSWORD = "a long citizen passphrase"
LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
NCR = "no-criminal-record"
FOREIGNER_PDFS = ("passport", "contract", "degree", "criminal-record-abroad")


def make_citizen(runtime: Runtime, city: City, username: str, n: int = 0) -> str:
    """A citizen with a password (no second factor) and a registry record; the user id."""
    with runtime.sessions.begin() as s:
        change = security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username=username,
            org_id=city.city.id,
            roles=["citizen"],
            password=PASSWORD,
        )
        assert change.totp_secret is None
        citizens.seed_profile(s, user_id=change.user.id, profile=citizens.resident_profile(n))
        return change.user.id


def sign_in(
    client: TestClient, username: str, next_url: str = "/services", password: str = PASSWORD
) -> Any:
    page = client.get(f"/services/login?next={next_url}")
    assert page.status_code == 200
    token = LOGIN_TOKEN.search(page.text)
    assert token is not None
    return client.post(
        "/services/login",
        data={
            "username": username,
            "password": password,
            "login_token": token.group(1),
            "next": next_url,
        },
        follow_redirects=False,
    )


@pytest.fixture
def citizen(client: TestClient, runtime: Runtime, city: City) -> TestClient:
    make_citizen(runtime, city, "wang")
    response = sign_in(client, "wang")
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def second_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as other:
        yield other


def post_page(client: TestClient, url: str, data: dict[str, Any]) -> Any:
    csrf = csrf_from(client.get(url).text)
    return client.post(url, data={"csrf_token": csrf, **data}, follow_redirects=False)


def start(client: TestClient) -> tuple[str, str]:
    """Start an NCR application; (application id, the page it opens on)."""
    page = client.get(f"/services/{NCR}")
    response = client.post(
        f"/services/{NCR}/start",
        data={"csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/services/applications/([^/]+)(/.*)", response.headers["location"])
    assert found is not None, response.headers["location"]
    return found.group(1), response.headers["location"]


def fill_all(client: TestClient, app_id: str) -> None:
    base = f"/services/applications/{app_id}/pages"
    for page, data in (
        ("where", {"apply_at": "household"}),
        ("purpose", {"purpose": "employment"}),
        ("recipient", {"recipient_org": ""}),
        ("declaration", {"declaration": "true"}),
    ):
        assert post_page(client, f"{base}/{page}", data).status_code == 303, page


def submitted(client: TestClient) -> str:
    app_id, _ = start(client)
    fill_all(client, app_id)
    check = client.get(f"/services/applications/{app_id}/check")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', check.text)
    assert key is not None
    sent = client.post(
        f"/services/applications/{app_id}/submit",
        data={"csrf_token": csrf_from(check.text), "idempotency_key": key.group(1)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    return app_id


def test_catalogue_shows_basis_deadline_and_what_is_pulled(client: TestClient) -> None:
    page = client.get("/services")
    assert page.status_code == 200
    html = page.text
    assert f'data-item="{NCR}"' in html
    assert "公安机关办理无犯罪记录证明工作规定" in html  # the legal basis
    assert 'data-deadline="3"' in html
    assert "3个工作日" in html
    assert 'data-source="pulled"' in html
    assert 'data-source="uploaded"' in html
    assert "电子证照调取" in html
    english = client.get("/services", headers={"Accept-Language": "en"}).text
    assert "3 working days" in english
    assert "Pulled from your e-licences" in english
    start_page = client.get(f"/services/{NCR}")
    assert start_page.status_code == 200
    assert 'data-action="signin"' in start_page.text  # not signed in: sign in to start
    assert client.get("/services/no-such-item").status_code == 404


def test_pages_need_a_citizen_login(
    client: TestClient,
    runtime: Runtime,
    city: City,
    make_staff: Any,  # noqa: F811
) -> None:
    response = client.get("/services/applications", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/services/login?next=/services/applications"
    started = client.post(f"/services/{NCR}/start", follow_redirects=False)
    assert started.status_code == 303  # back to the item's page after signing in
    assert started.headers["location"] == f"/services/login?next=/services/{NCR}"
    make_citizen(runtime, city, "li")
    bad = sign_in(client, "li", password="wrong")
    assert bad.status_code == 401
    assert 'data-error="invalid"' in bad.text
    forged = client.post("/services/login", data={"username": "li", "password": PASSWORD})
    assert forged.status_code == 403
    done = sign_in(client, "li", "/services/applications")
    assert done.status_code == 303
    assert done.headers["location"] == "/services/applications"
    mine = client.get("/services/applications")
    assert mine.status_code == 200
    out = client.post(
        "/services/logout", data={"csrf_token": csrf_from(mine.text)}, follow_redirects=False
    )
    assert out.status_code == 303
    assert out.headers["location"] == "/services"
    assert client.get("/services/applications", follow_redirects=False).status_code == 303
    # staff have a second factor: the password-only page does not let them in
    staff = make_staff("department_staff", dept_org(runtime, "psb-police-station"))
    with TestClient(client.app, raise_server_exceptions=False) as other:
        page = other.get("/services/login")
        token = LOGIN_TOKEN.search(page.text)
        assert token is not None
        refused = other.post(
            "/services/login",
            data={"username": staff.username, "password": staff.password, "login_token": token[1]},
        )
        assert refused.status_code == 401


def test_one_question_per_page_with_errors_prefill_and_check_answers(
    citizen: TestClient,
) -> None:
    app_id, first = start(citizen)
    assert first.endswith("/pages/where")  # name, ID number and phone came prefilled
    page = citizen.get(first)
    assert page.status_code == 200
    assert 'type="radio" name="apply_at" value="household"' in page.text
    assert "第1步，共5步" in page.text or "第2步" in page.text

    empty = post_page(citizen, first, {})
    assert empty.status_code == 422
    assert "data-error-summary" in empty.text
    assert 'href="#q-apply_at-0"' in empty.text  # the summary links to the field
    assert "请填写向哪里申请" in empty.text
    english = citizen.post(
        first,
        data={"csrf_token": csrf_from(empty.text)},
        headers={"Accept-Language": "en"},
    )
    assert english.status_code == 422
    assert "Enter apply where you are" in english.text

    ok = post_page(citizen, first, {"apply_at": "household"})
    assert ok.headers["location"] == f"/services/applications/{app_id}/pages/purpose"
    purpose = f"/services/applications/{app_id}/pages/purpose"
    conditional = citizen.get(purpose).text
    assert 'data-show-if="purpose" data-show-values="other"' in conditional
    missing_detail = post_page(citizen, purpose, {"purpose": "other", "purpose_detail": ""})
    assert missing_detail.status_code == 422
    assert 'href="#q-purpose_detail"' in missing_detail.text
    assert post_page(citizen, purpose, {"purpose": "visa"}).status_code == 303
    declaration = f"/services/applications/{app_id}/pages/declaration"
    unticked = post_page(citizen, declaration, {})
    assert unticked.status_code == 422
    assert "请勾选承诺" in unticked.text
    post_page(citizen, f"/services/applications/{app_id}/pages/recipient", {})
    done = post_page(citizen, declaration, {"declaration": "true"})
    assert done.headers["location"] == f"/services/applications/{app_id}/materials"

    check = citizen.get(f"/services/applications/{app_id}/check")
    assert check.status_code == 200
    assert 'data-answer="full_name"' in check.text
    assert "王小明" in check.text
    assert "出国签证" in check.text  # the option's label, not its code
    change = f"/services/applications/{app_id}/pages/purpose?change=1"
    assert f'href="{change}"' in check.text
    changed = post_page(citizen, change, {"purpose": "employment"})
    assert changed.headers["location"] == f"/services/applications/{app_id}/check"
    assert "就业" in citizen.get(f"/services/applications/{app_id}/check").text


def test_save_and_resume_later(citizen: TestClient) -> None:
    app_id, first = start(citizen)
    saved = post_page(citizen, first, {"apply_at": "residence", "action": "later"})
    assert saved.status_code == 303
    assert saved.headers["location"] == "/services/applications?saved=1"
    mine = citizen.get(saved.headers["location"]).text
    assert "data-saved" in mine
    assert f'href="/services/applications/{app_id}/pages/purpose"' in mine  # resume there
    assert 'data-state="draft"' in mine
    again = citizen.get(f"/services/applications/{app_id}/pages/where").text
    assert 'value="residence" checked' in again


def test_double_submit_makes_one_application_and_a_copy(
    citizen: TestClient, runtime: Runtime
) -> None:
    app_id, _ = start(citizen)
    fill_all(citizen, app_id)
    check = citizen.get(f"/services/applications/{app_id}/check").text
    form = {
        "csrf_token": csrf_from(check),
        "idempotency_key": re.findall(r'name="idempotency_key" value="([^"]+)"', check)[0],
    }
    url = f"/services/applications/{app_id}/submit"
    first = citizen.post(url, data=form, follow_redirects=False)
    second = citizen.post(url, data=form, follow_redirects=False)
    confirm = f"/services/applications/{app_id}/confirmation"
    assert first.headers["location"] == second.headers["location"] == confirm
    reloaded = {**form, "idempotency_key": "another-key-from-a-reloaded-page"}
    assert citizen.post(url, data=reloaded, follow_redirects=False).status_code == 303
    with runtime.sessions() as s:
        apps = s.scalars(select(Application)).all()
        assert len(apps) == 1
        assert apps[0].state == "submitted"
        reference = apps[0].reference
    page = citizen.get(confirm)
    assert f"<strong data-reference>{reference}</strong>" in page.text
    assert 'data-copy="pdf"' in page.text
    pdf = citizen.get(f"/services/applications/{app_id}/copy.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    copy = json.loads(citizen.get(f"/services/applications/{app_id}/copy.json").text)
    assert copy["reference"] == reference
    assert copy["answers"]["apply_at"] == "household"
    # a sent application's pages lead to its status page, not back into the form
    back = citizen.get(f"/services/applications/{app_id}/pages/where", follow_redirects=False)
    assert back.headers["location"] == f"/services/applications/{app_id}"


def test_uploads_per_material_with_limits(citizen: TestClient) -> None:
    app_id, _ = start(citizen)
    materials = f"/services/applications/{app_id}/materials"
    page = citizen.get(materials).text
    assert 'data-upload="agent-authorisation"' in page
    assert "PDF, JPEG, PNG" in page
    assert "10 MB" in page
    csrf = csrf_from(page)
    url = f"{materials}/agent-authorisation"
    ok = citizen.post(
        url,
        data={"csrf_token": csrf},
        files={"upload": ("letter.pdf", PDF_BYTES, "application/pdf")},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    listed = citizen.get(materials).text
    assert "letter.pdf" in listed
    link = re.search(rf'href="(/services/applications/{app_id}/attachments/[^"]+)"', listed)
    assert link is not None
    assert citizen.get(link.group(1)).content == PDF_BYTES
    fake = citizen.post(
        url,
        data={"csrf_token": csrf},
        files={"upload": ("letter.pdf", b"<html>not a pdf</html>", "application/pdf")},
    )
    assert fake.status_code == 422
    assert 'data-upload-error="invalid"' in fake.text
    pulled = citizen.post(
        f"{materials}/applicant-id",
        data={"csrf_token": csrf},
        files={"upload": ("id.pdf", PDF_BYTES, "application/pdf")},
    )
    assert pulled.status_code == 409  # pulled from the e-licence: nothing to upload
    assert 'data-upload-error="pulled"' in pulled.text
    nothing = citizen.post(  # the form sent with no file chosen: told so on the page
        url, data={"csrf_token": csrf}, files={"upload": ("", b"", "application/octet-stream")}
    )
    assert nothing.status_code == 422
    assert 'data-upload-error="empty"' in nothing.text
    no_csrf = citizen.post(url, files={"upload": ("l.pdf", PDF_BYTES, "application/pdf")})
    assert no_csrf.status_code == 403


def test_another_citizen_gets_404(
    citizen: TestClient, second_client: TestClient, runtime: Runtime, city: City
) -> None:
    app_id = submitted(citizen)
    make_citizen(runtime, city, "zhao", 1)
    assert sign_in(second_client, "zhao").status_code == 303
    for path in ("", "/pages/where", "/check", "/confirmation", "/copy.pdf", "/materials"):
        response = second_client.get(f"/services/applications/{app_id}{path}")
        assert response.status_code == 404, path
    csrf = csrf_from(second_client.get("/services/applications").text)
    sent = second_client.post(
        f"/services/applications/{app_id}/supplement", data={"csrf_token": csrf}
    )
    assert sent.status_code == 404
    assert (
        f"/services/applications/{app_id}" not in second_client.get("/services/applications").text
    )


def test_staff_act_and_the_citizen_sees_the_qr(
    citizen: TestClient,
    second_client: TestClient,
    runtime: Runtime,
    make_staff: Callable[..., Staff],  # noqa: F811
) -> None:
    app_id = submitted(citizen)
    staff = make_staff("department_staff", dept_org(runtime, "psb-police-station"))
    log_in(second_client, staff)
    home = second_client.get("/console").text
    assert 'href="/console/eservices" data-domain="eservices"' in home  # in the navigation
    queue = second_client.get("/console/eservices")
    assert queue.status_code == 200
    assert f'data-application="{app_id}" data-state="submitted" data-sla="' in queue.text
    assert second_client.get("/console/eservices?state=issued").text.count("data-application=") == 0
    detail_url = f"/console/eservices/{app_id}"
    detail = second_client.get(detail_url).text
    assert 'data-act="accept"' in detail
    assert 'data-act="approve"' not in detail
    assert "王小明" in detail  # the answers

    def act(action: str, comment: str = "") -> Any:
        csrf = csrf_from(second_client.get(detail_url).text)
        return second_client.post(
            f"{detail_url}/actions/{action}",
            data={"csrf_token": csrf, "comment": comment},
            follow_redirects=False,
        )

    assert act("accept").status_code == 303
    no_reason = act("request_supplement")
    assert no_reason.status_code == 422
    assert 'data-error="reason"' in no_reason.text
    assert act("request_supplement", "请补充委托书扫描件").status_code == 303
    assert 'data-sla="paused"' in second_client.get(detail_url).text

    mine = citizen.get(f"/services/applications/{app_id}").text
    assert "data-supplement-note" in mine
    uploaded = citizen.post(
        f"/services/applications/{app_id}/materials/agent-authorisation",
        data={"csrf_token": csrf_from(mine)},
        files={"upload": ("letter.pdf", PDF_BYTES, "application/pdf")},
        follow_redirects=False,
    )
    assert uploaded.headers["location"] == f"/services/applications/{app_id}#supplement"
    mine = citizen.get(f"/services/applications/{app_id}").text
    assert "letter.pdf" in mine
    assert "请补充委托书扫描件" in mine
    sent = citizen.post(
        f"/services/applications/{app_id}/supplement",
        data={"csrf_token": csrf_from(mine), "comment": "已上传"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    staff_page = second_client.get(detail_url).text
    link = re.search(rf'href="(/console/eservices/{app_id}/attachments/[^"]+)"', staff_page)
    assert link is not None  # staff open the supplemented letter
    assert second_client.get(link.group(1)).content == PDF_BYTES
    assert act("approve").status_code == 303
    assert act("issue").status_code == 303
    assert act("issue").status_code == 409  # already issued: the page says so

    page = citizen.get(f"/services/applications/{app_id}").text
    assert 'data-state="issued"' in page
    qr_text = re.search(r'data-qr-text="([^"]+)"', page)
    assert qr_text is not None
    assert qr_text.group(1).startswith("SC1:")
    assert 'src="data:image/png;base64,' in page
    hotel = citizen.get(f"/services/applications/{app_id}?profile=hotel").text
    assert 'data-profile="hotel"' in hotel
    assert "data-qr-text" in hotel
    cert = re.search(r'href="(/services/applications/[^"]+/certificates/[^"]+\.pdf)"', page)
    assert cert is not None
    pdf = citizen.get(cert.group(1))
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Application)) == 1


def test_console_pages_are_for_staff(
    citizen: TestClient,
    second_client: TestClient,
    runtime: Runtime,
    city: City,
    make_staff: Callable[..., Staff],  # noqa: F811
) -> None:
    assert citizen.get("/console/eservices").status_code == 403  # a citizen: forbidden page
    out = second_client.get("/console/eservices", follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"].startswith("/console/login")
    analyst = make_staff("analyst", city.city)
    log_in(second_client, analyst)
    assert second_client.get("/console/eservices").status_code == 403
    app_id = submitted(citizen)
    other_department = make_staff("department_staff", dept_org(runtime, "hr"), username="hr-1")
    with TestClient(citizen.app, raise_server_exceptions=False) as third:
        log_in(third, other_department)
        assert f'data-application="{app_id}"' not in third.get("/console/eservices").text
        assert third.get(f"/console/eservices/{app_id}").status_code == 404


def _principal(runtime: Runtime, username: str) -> Principal:
    with runtime.sessions() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        return principal_for(session=s, user=user, auth_method="token")


def test_single_window_parts_are_shown_together(
    citizen: TestClient,
    second_client: TestClient,
    runtime: Runtime,
    make_staff: Callable[..., Staff],  # noqa: F811
) -> None:
    now = at("2026-11-02")
    who = _principal(runtime, "wang")
    with runtime.sessions.begin() as s:
        citizens.seed_profile(s, user_id=who.id, profile=citizens.foreigner_profile())
        app = service.start_application(
            session=s, principal=who, item_code="foreigner-work-residence", now=now
        )
        fill(s, who, app.id, FOREIGNER_ANSWERS, now)
        for code, name, ctype, data in (
            *((c, f"{c}.pdf", "application/pdf", PDF_BYTES) for c in FOREIGNER_PDFS),
            ("photo", "photo.png", "image/png", png_bytes()),
        ):
            service.add_attachment(
                session=s,
                principal=who,
                application_id=app.id,
                material_code=code,
                filename=name,
                content_type=ctype,
                data=data,
                now=now,
            )
        parent = service.submit(
            session=s, principal=who, application_id=app.id, idempotency_key="sw-page-1", now=now
        )
    parts = {p.department: p.id for p in parent.parts}
    hr = make_staff("department_staff", dept_org(runtime, "hr"))
    log_in(second_client, hr)
    queue = second_client.get("/console/eservices").text
    assert f'data-application="{parts["hr"]}"' in queue
    assert f'data-application="{parent.id}"' not in queue  # the parts are the work
    page = second_client.get(f"/console/eservices/{parts['hr']}").text
    assert "data-family" in page
    assert f'data-parent="{parent.id}"' in page
    assert f'data-part="{parts["psb-exit-entry"]}"' in page  # the other department's part
    exit_entry = make_staff("department_staff", dept_org(runtime, "psb-exit-entry"))
    for dept, username in (("hr", hr.username), ("psb-exit-entry", exit_entry.username)):
        staff = _principal(runtime, username)
        with runtime.sessions.begin() as s:
            for action in ("accept", "approve"):  # both approved: both issued together
                service.act(
                    session=s,
                    principal=staff,
                    application_id=parts[dept],
                    action=action,
                    now=at("2026-11-03"),
                )
    mine = citizen.get(f"/services/applications/{parent.id}").text
    assert 'data-state="issued"' in mine
    assert mine.count('data-part="') == 2
    assert mine.count("data-certificate=") == 2  # both results, together
    assert mine.count("data-qr-text=") == 2
