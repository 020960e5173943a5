"""E-service applications at the service layer: prefill and pulled materials, pages with
field errors, attachments (types, sizes, magic bytes), idempotent submission, scope and
audit, notices."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from safecity.eservices import service
from safecity.eservices.models import Application, Attachment
from safecity.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.conftest import Actor, City
from tests.eservices.applications_support import (
    NCR_ANSWERS,
    PDF_BYTES,
    People,
    at,
    fill,
    people,
    png_bytes,
    principal,
    submitted_ncr,
)

pytestmark = pytest.mark.db
NOW = at("2026-11-02")


@pytest.fixture
def folks(runtime: Runtime, city: City, make_actor: Callable[..., Actor]) -> People:
    return people(runtime, city, make_actor)


def _audits(runtime: Runtime, action: str) -> list[AuditEntry]:
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_start_prefills_from_the_registry_and_pulls_materials(
    runtime: Runtime, folks: People
) -> None:
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        app = service.start_application(
            session=s, principal=who, item_code="no-criminal-record", now=NOW
        )
        detail = service.get_application(session=s, principal=who, application_id=app.id)
    assert app.state == "draft"
    assert app.reference.startswith("YW-2026-11-02-")
    assert detail.answers["full_name"] == "王小明"
    assert len(detail.answers["id_number"]) == 18
    assert detail.answers["phone"].startswith("139")
    assert app.current_page == "where"  # the first page the registry could not answer
    pulled = {a.material_code: a for a in detail.attachments}
    # applicant-id (resident-id) and residence (residence-permit) are pulled; agent-id is
    # pulled too (same source); only the agent's letter would be uploaded
    assert {"applicant-id", "residence", "agent-id"} <= set(pulled)
    assert all(a.source == "pulled" and a.sha256 for a in pulled.values())
    status = {m.code: m for m in detail.materials}
    assert status["applicant-id"].provided_as == "pulled"
    assert status["agent-authorisation"].provided is False
    reads = _audits(runtime, "eservices.citizen.read")
    assert [r.target_id for r in reads] == [folks.citizen.user_id]
    assert reads[0].purpose == "prefill application"


def test_unknown_item_and_bad_code(runtime: Runtime, folks: People) -> None:
    with runtime.sessions() as s:
        who = principal(s, folks.citizen)
        with pytest.raises(NotFound):
            service.start_application(session=s, principal=who, item_code="no-such-item")
        with pytest.raises(InvalidInput):
            service.start_application(session=s, principal=who, item_code="../etc")
        staff = principal(s, folks.police)
        with pytest.raises(PermissionDenied):
            service.start_application(session=s, principal=staff, item_code="no-criminal-record")


def test_malformed_answers_give_field_errors_and_save_nothing(
    runtime: Runtime, folks: People
) -> None:
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        app = service.start_application(
            session=s, principal=who, item_code="no-criminal-record", now=NOW
        )
    with runtime.sessions() as s:
        who = principal(s, folks.citizen)
        with pytest.raises(service.FormInvalid) as caught:
            service.save_page(
                session=s,
                principal=who,
                application_id=app.id,
                page_id="applicant",
                answers={"full_name": "", "id_number": "110101199003071234"},
            )
        errors = {e.field: e for e in caught.value.field_errors}
        assert set(errors) == {"full_name", "id_number"}
        assert errors["id_number"].code == "format"
        assert errors["id_number"].zh
        assert errors["id_number"].en
        assert caught.value.extra["errors"][0]["field"] in {"full_name", "id_number"}
        with pytest.raises(InvalidInput):  # a question of another page
            service.save_page(
                session=s,
                principal=who,
                application_id=app.id,
                page_id="applicant",
                answers={"purpose": "visa"},
            )
        with pytest.raises(NotFound):
            service.save_page(
                session=s, principal=who, application_id=app.id, page_id="nope", answers={}
            )
        with pytest.raises(service.FormInvalid):  # an incomplete application
            service.submit(
                session=s, principal=who, application_id=app.id, idempotency_key="k-incomplete"
            )
    with runtime.sessions() as s:
        stored = s.get(Application, app.id)
        assert stored is not None
        assert stored.answers["full_name"] == "王小明"
        assert stored.state == "draft"


def test_save_pages_then_submit_sets_reference_and_due_date(
    runtime: Runtime, folks: People
) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=NOW)
    with runtime.sessions() as s:
        detail = service.get_application(
            session=s, principal=principal(s, folks.citizen), application_id=app_id
        )
    assert detail.state == "submitted"
    assert detail.submitted_at is not None
    assert detail.current_page is None
    # Mon 2 Nov 2026 + 3 working days = Thu 5 Nov
    assert detail.due_on is not None
    assert detail.due_on.isoformat() == "2026-11-05"
    assert detail.deadline.workdays == 3
    assert detail.deadline.basis == "statute"
    assert [t.to_state for t in detail.timeline] == ["draft", "submitted"]


def test_idempotent_submission_never_makes_a_second_application(
    runtime: Runtime, folks: People
) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=NOW, key="retry-key-123")
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        again = service.submit(
            session=s, principal=who, application_id=app_id, idempotency_key="retry-key-123"
        )
        assert again.id == app_id
        # a second draft submitted with the same key (a double click that started twice)
        twin = service.start_application(
            session=s, principal=who, item_code="no-criminal-record", now=NOW
        )
        fill(s, who, twin.id, NCR_ANSWERS, NOW)
        same = service.submit(
            session=s, principal=who, application_id=twin.id, idempotency_key="retry-key-123"
        )
        assert same.id == app_id
        # the first one again under a new key: still the same application
        other_key = service.submit(
            session=s, principal=who, application_id=app_id, idempotency_key="another-key-1"
        )
        assert other_key.id == app_id
        assert other_key.state == "submitted"
    with runtime.sessions() as s:
        submitted = s.scalar(
            select(func.count()).select_from(Application).where(Application.state != "draft")
        )
        assert submitted == 1
        notices = s.scalar(select(func.count()).select_from(Notification))
        assert notices == 1  # one notice for the one submission
        with pytest.raises(Conflict):  # someone else's key
            service.submit(
                session=s,
                principal=principal(s, folks.other_citizen),
                application_id=app_id,
                idempotency_key="retry-key-123",
            )
        with pytest.raises(InvalidInput):
            service.submit(
                session=s,
                principal=principal(s, folks.citizen),
                application_id=app_id,
                idempotency_key="bad key!",
            )


def test_attachment_limits(runtime: Runtime, folks: People) -> None:
    with runtime.sessions.begin() as s:
        who = principal(s, folks.citizen)
        app = service.start_application(
            session=s, principal=who, item_code="no-criminal-record", now=NOW
        )

    def attach(code: str, ctype: str, data: bytes, name: str = "letter.pdf") -> None:
        with runtime.sessions() as s:
            service.add_attachment(
                session=s,
                principal=principal(s, folks.citizen),
                application_id=app.id,
                material_code=code,
                filename=name,
                content_type=ctype,
                data=data,
            )

    with pytest.raises(InvalidInput, match="accepts"):
        attach("agent-authorisation", "text/html", b"<html></html>")
    with pytest.raises(InvalidInput, match="content is image/png"):
        attach("agent-authorisation", "application/pdf", png_bytes())
    with pytest.raises(PayloadTooLarge):
        attach("agent-authorisation", "application/pdf", b"%PDF-" + b"0" * (10 * 1024 * 1024))
    with pytest.raises(InvalidInput, match="no material"):
        attach("passport-scan", "application/pdf", PDF_BYTES)
    with pytest.raises(Conflict, match="pulled"):
        attach("applicant-id", "application/pdf", PDF_BYTES)
    with pytest.raises(InvalidInput, match="empty"):
        attach("agent-authorisation", "application/pdf", b"")
    with runtime.sessions.begin() as s:
        att = service.add_attachment(
            session=s,
            principal=principal(s, folks.citizen),
            application_id=app.id,
            material_code="agent-authorisation",
            filename="../../etc/委托书.pdf",
            content_type="application/pdf",
            data=PDF_BYTES,
        )
    assert att.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert att.filename == "委托书.pdf"
    assert att.source == "uploaded"
    assert att.size_bytes == len(PDF_BYTES)
    with runtime.sessions.begin() as s:  # uploading again replaces it
        service.add_attachment(
            session=s,
            principal=principal(s, folks.citizen),
            application_id=app.id,
            material_code="agent-authorisation",
            filename="scan.png",
            content_type="image/png",
            data=png_bytes(),
        )
    with runtime.sessions() as s:
        rows = s.scalars(
            select(Attachment).where(
                Attachment.application_id == app.id,
                Attachment.material_code == "agent-authorisation",
            )
        ).all()
        assert [r.content_type for r in rows] == ["image/png"]
        data, ctype, _ = service.attachment_bytes(
            session=s,
            principal=principal(s, folks.citizen),
            application_id=app.id,
            attachment_id=rows[0].id,
        )
        assert ctype == "image/png"
        assert data == png_bytes()
    assert len(_audits(runtime, "eservices.attachment.add")) == 2


def test_a_submitted_application_can_no_longer_change(runtime: Runtime, folks: People) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=NOW)
    with runtime.sessions() as s:
        who = principal(s, folks.citizen)
        with pytest.raises(IllegalTransition):
            service.save_page(
                session=s,
                principal=who,
                application_id=app_id,
                page_id="purpose",
                answers={"purpose": "visa"},
            )
        with pytest.raises(IllegalTransition):
            service.add_attachment(
                session=s,
                principal=who,
                application_id=app_id,
                material_code="agent-authorisation",
                filename="a.pdf",
                content_type="application/pdf",
                data=PDF_BYTES,
            )


def test_scope_citizens_see_their_own_and_staff_their_org(runtime: Runtime, folks: People) -> None:
    app_id = submitted_ncr(runtime, folks.citizen, now=NOW)
    with runtime.sessions.begin() as s:
        other = principal(s, folks.other_citizen)
        with pytest.raises(NotFound):
            service.get_application(session=s, principal=other, application_id=app_id)
        assert service.my_applications(session=s, principal=other) == []
        with pytest.raises(NotFound):
            service.act(
                session=s,
                principal=other,
                application_id=app_id,
                action="supplement",
            )
        mine = service.my_applications(session=s, principal=principal(s, folks.citizen))
        assert [a.id for a in mine] == [app_id]
        assert mine[0].actions == []  # nothing for the applicant to do now

        stranger = principal(s, folks.exit_entry)  # staff of another department
        with pytest.raises(NotFound):
            service.get_application(session=s, principal=stranger, application_id=app_id)
        with pytest.raises(NotFound):
            service.act(session=s, principal=stranger, application_id=app_id, action="accept")
        assert service.staff_queue(session=s, principal=stranger) == []

        police = principal(s, folks.police)
        queue = service.staff_queue(session=s, principal=police)
        assert [a.id for a in queue] == [app_id]
        assert "accept" in queue[0].actions
        assert "reject" in queue[0].actions
        detail = service.get_application(session=s, principal=police, application_id=app_id)
        assert detail.answers["full_name"] == "王小明"
        assert detail.idempotency_key is None
        with pytest.raises(InvalidInput):
            service.staff_queue(session=s, principal=police, state="nonsense")
        with pytest.raises(PermissionDenied):
            service.staff_queue(session=s, principal=principal(s, folks.citizen))
    reads = _audits(runtime, "eservices.application.read")
    assert [(r.actor_id, r.target_id) for r in reads] == [(folks.police.user_id, app_id)]


def test_drafts_stay_private(runtime: Runtime, folks: People) -> None:
    with runtime.sessions.begin() as s:
        app = service.start_application(
            session=s,
            principal=principal(s, folks.citizen),
            item_code="household-proof",
            now=NOW,
        )
    with runtime.sessions() as s:
        police = principal(s, folks.police)
        assert service.staff_queue(session=s, principal=police) == []
        with pytest.raises(NotFound):
            service.get_application(session=s, principal=police, application_id=app.id)
