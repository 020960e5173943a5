"""The platform's own administration pages: organisations, users, audit log, operations.

Each page declares its permission with :func:`console_require`; the navigation shows a
link only to those holding it. Pages never query tables: the organisation, security,
audit, job, relay and notification services do the work (and the auditing). Forms are
plain HTML posts carrying the session's CSRF token (checked during authentication, before
the handler runs); their results and problems are shown in the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse

from safecity.console.pages import _org_name, _translator, console_require, msg, render, templates
from safecity.orgs import importer
from safecity.orgs import service as orgs
from safecity.orgs.models import ORG_KINDS, Org
from safecity.platform import jobs, notify, relay
from safecity.platform.db import utcnow
from safecity.platform.errors import SafeCityError
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security import audit
from safecity.security import service as security
from safecity.security.rbac import MACHINE_ROLES, ROLES, Principal

# Values that templates turn into message keys ("org.kind." ~ kind …).
ORG_KIND_KEYS: tuple[str, ...] = ORG_KINDS
JOB_STATUS_KEYS: tuple[str, ...] = ("running", "succeeded", "partial", "failed", "abandoned")
NOTIFY_STATUS_KEYS: tuple[str, ...] = notify.STATUSES
STAFF_ROLES: tuple[str, ...] = tuple(r for r in ROLES if r not in (*MACHINE_ROLES, "citizen"))

USERS_PAGE = 25
AUDIT_PAGE = 50
MAX_UPLOAD = importer.MAX_IMPORT_BYTES


@dataclass(frozen=True)
class AdminLink:
    """An administration page in the navigation, shown to holders of ``permission``."""

    key: str
    label: str
    href: str
    permission: str


ADMIN_LINKS: tuple[AdminLink, ...] = (
    AdminLink("orgs", msg("nav.admin.orgs"), "/console/orgs", "orgs:read"),
    AdminLink("users", msg("nav.admin.users"), "/console/users", "users:read"),
    AdminLink("audit", msg("nav.admin.audit"), "/console/audit", "audit:read"),
    AdminLink("ops", msg("nav.admin.ops"), "/console/ops", "jobs:run"),
)


def _when(value: datetime | None) -> str:
    """A UTC timestamp as ``YYYY-MM-DD HH:MM:SS`` (empty when missing)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["when"] = _when
templates.env.globals["admin_links"] = ADMIN_LINKS

router = APIRouter(include_in_schema=False)

OrgReader = Annotated[Principal, Depends(console_require("orgs:read"))]
OrgWriter = Annotated[Principal, Depends(console_require("orgs:write"))]
UserReader = Annotated[Principal, Depends(console_require("users:read"))]
UserWriter = Annotated[Principal, Depends(console_require("users:write"))]
AuditReader = Annotated[Principal, Depends(console_require("audit:read"))]
AuditVerifier = Annotated[Principal, Depends(console_require("audit:verify"))]
JobRunner = Annotated[Principal, Depends(console_require("jobs:run"))]

UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
JobName = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _page(
    request: Request,
    session: DbSession,
    principal: Principal,
    template: str,
    *,
    active: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    context.setdefault("notice", None)
    context.setdefault("notice_args", {})
    context.setdefault("error", None)
    context.setdefault("error_args", {})
    context.setdefault("error_detail", None)
    return render(
        request,
        template,
        status_code=status_code,
        principal=principal,
        active=active,
        org_name=_org_name(session, principal, _translator(request).lang),
        **context,
    )


def _detail(exc: SafeCityError) -> str:
    return exc.detail


# --- organisations -----------------------------------------------------------------------


def _orgs_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return _page(
        request,
        session,
        principal,
        "admin/orgs.html",
        active="orgs",
        status_code=status_code,
        tree=orgs.tree(session=session, principal=principal),
        max_upload_mib=MAX_UPLOAD // 1048576,
        **({"result": None, "problems": [], "problems_more": 0} | context),
    )


@router.get("/console/orgs", response_class=HTMLResponse)
def orgs_page(request: Request, session: DbSession, principal: OrgReader) -> HTMLResponse:
    return _orgs_page(request, session, principal)


@router.post("/console/orgs/import", response_class=HTMLResponse)
def orgs_import(
    request: Request,
    session: DbSession,
    principal: OrgWriter,
    file: Annotated[UploadFile | None, File()] = None,
    dry_run: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    if file is None or not file.filename:
        return _orgs_page(
            request, session, principal, status_code=422, error=msg("orgs.error.no_file")
        )
    content = file.file.read(MAX_UPLOAD + 1)
    try:
        result = importer.import_orgs(
            session=session,
            content=content,
            filename=file.filename,
            actor=principal,
            dry_run=dry_run,
        )
    except importer.ImportFailed as exc:
        shown = exc.problems[: importer.MAX_REPORTED]
        return _orgs_page(
            request,
            session,
            principal,
            status_code=422,
            error=msg("orgs.error.problems"),
            error_args={"count": len(exc.problems)},
            problems=[(p.where, p.message) for p in shown],
            problems_more=len(exc.problems) - len(shown),
        )
    except SafeCityError as exc:
        return _orgs_page(
            request,
            session,
            principal,
            status_code=exc.status,
            error=msg("orgs.error.unreadable"),
            error_detail=_detail(exc),
        )
    notice = msg("orgs.import.dry_run_ok") if result.dry_run else msg("orgs.import.done")
    return _orgs_page(request, session, principal, notice=notice, result=result)


# --- users -------------------------------------------------------------------------------


def _scoped_orgs(session: DbSession, principal: Principal) -> list[Org]:
    items, _ = orgs.list_orgs(session=session, principal=principal)
    return [o for o in items if principal.sees_org(o.id)]


def _users_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    offset: int = 0,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    params = security.USER_LIST.parse(limit=USERS_PAGE, offset=offset)
    page = security.list_users(session=session, principal=principal, params=params)
    roles = security.roles_by_user(session=session, user_ids=[u.id for u in page.items])
    visible, _ = orgs.list_orgs(session=session, principal=principal, include_inactive=True)
    lang = _translator(request).lang
    org_names = {o.id: (o.name_zh if lang == "zh" else o.name_en) for o in visible}
    now = utcnow()
    rows = [
        {
            "user": u,
            "roles": roles.get(u.id, []),
            "org": org_names.get(u.org_id, ""),
            "locked": u.locked_until is not None and u.locked_until > now,
        }
        for u in page.items
    ]
    context.setdefault("created", None)
    context.setdefault("form", {})
    return _page(
        request,
        session,
        principal,
        "admin/users.html",
        active="users",
        status_code=status_code,
        rows=rows,
        total=page.total,
        offset=page.offset,
        limit=page.limit,
        prev_offset=max(page.offset - page.limit, 0) if page.offset > 0 else None,
        next_offset=page.offset + page.limit if page.offset + page.limit < page.total else None,
        org_choices=_scoped_orgs(session, principal) if principal.can("users:write") else [],
        role_choices=STAFF_ROLES,
        **context,
    )


@router.get("/console/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    session: DbSession,
    principal: UserReader,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    return _users_page(request, session, principal, offset=offset)


@router.post("/console/users", response_class=HTMLResponse)
def users_create(
    request: Request,
    session: DbSession,
    principal: UserWriter,
    username: Annotated[str, Form(max_length=150)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    org_id: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> HTMLResponse:
    form = {"username": username, "display_name": display_name, "org_id": org_id, "role": role}
    if not (username.strip() and org_id and role and password):
        return _users_page(
            request,
            session,
            principal,
            status_code=422,
            error=msg("users.error.missing"),
            form=form,
        )
    try:
        change = security.create_user(
            session=session,
            actor=principal,
            username=username,
            display_name=display_name.strip(),
            org_id=org_id,
            roles=[role],
            password=password,
        )
    except SafeCityError as exc:
        session.rollback()
        return _users_page(
            request,
            session,
            principal,
            status_code=exc.status,
            error=msg("users.error.create"),
            error_detail=_detail(exc),
            form=form,
        )
    return _users_page(
        request,
        session,
        principal,
        notice=msg("users.created"),
        notice_args={"username": change.user.username},
        created={
            "username": change.user.username,
            "secret": change.totp_secret,
            "uri": change.totp_uri,
        },
    )


def _user_action(
    request: Request, session: DbSession, principal: Principal, user_id: str, action: str
) -> HTMLResponse:
    try:
        if action == "unlock":
            user = security.unlock_user(session=session, actor=principal, user_id=user_id)
            notice = msg("users.unlocked")
        else:
            user = security.deactivate_user(session=session, actor=principal, user_id=user_id)
            notice = msg("users.deactivated")
    except SafeCityError as exc:
        session.rollback()
        return _users_page(
            request,
            session,
            principal,
            status_code=exc.status,
            error=msg("users.error.action"),
            error_detail=_detail(exc),
        )
    return _users_page(
        request, session, principal, notice=notice, notice_args={"username": user.username}
    )


@router.post("/console/users/{user_id}/unlock", response_class=HTMLResponse)
def users_unlock(
    request: Request, session: DbSession, principal: UserWriter, user_id: UserId
) -> HTMLResponse:
    return _user_action(request, session, principal, user_id, "unlock")


@router.post("/console/users/{user_id}/deactivate", response_class=HTMLResponse)
def users_deactivate(
    request: Request, session: DbSession, principal: UserWriter, user_id: UserId
) -> HTMLResponse:
    return _user_action(request, session, principal, user_id, "deactivate")


# --- audit -------------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _action_filter(value: str | None) -> str | None:
    """``cases`` or ``cases.`` match a prefix; a dotted name matches exactly."""
    if value is None:
        return None
    if value.endswith((".", ".*", "*")) or "." not in value:
        return value.rstrip("*").rstrip(".") + ".*"
    return value


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _audit_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    filters: dict[str, str],
    before: int | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    entries: list[audit.AuditEntry] = []
    more = False
    error = None
    try:
        since_day, until_day = _day(filters.get("since")), _day(filters.get("until"))
    except ValueError:
        error = msg("audit.error.date")
        since_day = until_day = None
    if error is None:
        since = (
            datetime(since_day.year, since_day.month, since_day.day, tzinfo=UTC)
            if since_day
            else None
        )
        until = (
            datetime(until_day.year, until_day.month, until_day.day, tzinfo=UTC) + timedelta(days=1)
            if until_day
            else None
        )
        found = audit.search(
            session,
            actor_id=filters.get("actor"),
            action=_action_filter(filters.get("action")),
            target_type=filters.get("target_type"),
            target_id=filters.get("target_id"),
            since=since,
            until=until,
            before_seq=before,
            limit=AUDIT_PAGE + 1,
        )
        more = len(found) > AUDIT_PAGE
        entries = found[:AUDIT_PAGE]
        audit.record(
            session,
            principal=principal,
            action="audit.read",
            target_type="audit_log",
            request_id=getattr(request.state, "request_id", None),
            detail={
                "filters": {**filters, **({"before_seq": str(before)} if before else {})},
                "returned": len(entries),
                "seqs": [entries[0].seq, entries[-1].seq] if entries else [],
            },
        )
    else:
        status_code = 422
    context.setdefault("verify", None)
    context.setdefault("error_verify", None)
    return _page(
        request,
        session,
        principal,
        "admin/audit.html",
        active="audit",
        status_code=status_code,
        entries=entries,
        filters=filters,
        older=entries[-1].seq if more and entries else None,
        paged=before is not None,
        error=error,
        **context,
    )


@router.get("/console/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: DbSession,
    principal: AuditReader,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    target_type: Annotated[str | None, Query(max_length=64)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    raw = {
        "action": action,
        "actor": actor,
        "target_type": target_type,
        "target_id": target_id,
        "since": since,
        "until": until,
    }
    filters = {k: v for k, v in ((k, _clean(v)) for k, v in raw.items()) if v is not None}
    return _audit_page(request, session, principal, filters=filters, before=before)


@router.post("/console/audit/verify", response_class=HTMLResponse)
def audit_verify(request: Request, session: DbSession, principal: AuditVerifier) -> HTMLResponse:
    try:
        report = audit.verify(session)
    except (SafeCityError, OSError):
        return _audit_page(
            request, session, principal, filters={}, error_verify=msg("audit.verify.unavailable")
        )
    bad = report.first_bad
    audit.record(
        session,
        principal=principal,
        action="audit.verify",
        target_type="audit_log",
        request_id=getattr(request.state, "request_id", None),
        detail={
            "ok": report.ok,
            "records": report.records,
            "first_bad_seq": bad.seq if bad else None,
            "code": bad.code if bad else None,
        },
    )
    return _audit_page(request, session, principal, filters={}, verify=report)


# --- operations --------------------------------------------------------------------------


def _ops_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    jobs.load_job_modules()
    scheduler = jobs.Scheduler(get_runtime(request))
    outbox = relay.outbox_status(session)
    notifications = (
        notify.status(session, principal=principal, limit=0)
        if principal.can("notify:read")
        else None
    )
    return _page(
        request,
        session,
        principal,
        "admin/ops.html",
        active="ops",
        status_code=status_code,
        statuses=scheduler.statuses(session),
        outbox=outbox,
        outbox_age=int(outbox.oldest_pending_age_s) if outbox.oldest_pending_age_s else None,
        notifications=notifications,
        notify_statuses=NOTIFY_STATUS_KEYS,
        **context,
    )


@router.get("/console/ops", response_class=HTMLResponse)
def ops_page(request: Request, session: DbSession, principal: JobRunner) -> HTMLResponse:
    return _ops_page(request, session, principal)


@router.post("/console/ops/jobs/{name}/run", response_class=HTMLResponse)
def ops_run_job(
    request: Request, session: DbSession, principal: JobRunner, name: JobName
) -> HTMLResponse:
    jobs.load_job_modules()
    scheduler = jobs.Scheduler(get_runtime(request))
    try:
        scheduler.jobs.get(name)
        # The job writes in its own transactions; end the request's one first (SQLite has
        # a single writer and the request may already hold it).
        session.commit()
        outcome = scheduler.run_now(name, requested_by=principal.id)
    except SafeCityError as exc:
        return _ops_page(
            request,
            session,
            principal,
            status_code=exc.status,
            error=msg("ops.run.error"),
            error_detail=_detail(exc),
        )
    audit.record(
        session,
        principal=principal,
        action="jobs.run",
        target_type="job",
        target_id=outcome.run_id,
        detail={"job": name, "status": outcome.status},
    )
    return _ops_page(
        request,
        session,
        principal,
        notice=msg("ops.run.done"),
        notice_args={"name": name, "items": outcome.items or 0},
    )
