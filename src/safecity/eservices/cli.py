"""``safecity eservices catalogue | apply | list | act | stats``: e-services from the shell.

``apply`` and ``act`` act as a named user (``--as``; the operator running the CLI is
trusted like a maintenance command, and the audit trail names that user); ``stats``
prints the median and p90 working days per item and the share of materials pulled
from e-licences instead of uploaded, from the database. Errors end as one line on
stderr and a non-zero exit (``safecity.cli.main``).
"""

from __future__ import annotations

import json
import mimetypes
import secrets
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices import forms, service
from safecity.eservices.catalogue import materials_cut
from safecity.eservices.schemas import ApplicationRead
from safecity.eservices.workflow import READ
from safecity.platform.db import transaction
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.security.rbac import Principal

app = typer.Typer(help="Citizen e-services (一网通办): catalogue, applications, statistics.")
out = Console()
MAX_ANSWERS_BYTES = 1_000_000


def _runtime() -> Runtime:
    return build_runtime()


def _principal(session: Session, username: str) -> Principal:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return principal_for(session=session, user=user, auth_method="cli")


def _print(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _row(a: ApplicationRead) -> dict[str, Any]:
    return {
        "id": a.id,
        "reference": a.reference,
        "item": a.item_code,
        "department": a.department,
        "state": a.state,
        "due_on": a.due_on.isoformat() if a.due_on else None,
        "paused": a.paused,
        "certificate_id": a.certificate_id,
        "parts": [{"id": p.id, "department": p.department, "state": p.state} for p in a.parts],
    }


def _table(apps: list[ApplicationRead]) -> None:
    table = Table()
    for col in ("id", "reference", "item", "department", "state", "due on", "certificate"):
        table.add_column(col, no_wrap=True)
    for a in apps:
        table.add_row(
            a.id,
            a.reference,
            a.item_code,
            a.department,
            a.state + (" (paused)" if a.paused else ""),
            a.due_on.isoformat() if a.due_on else "-",
            a.certificate_id or "-",
        )
    out.print(table)


@app.command()
def catalogue(as_json: bool = typer.Option(False, "--json", help="JSON lines.")) -> None:
    """The service catalogue: items, deadlines and materials pulled vs uploaded."""
    cat = service.catalogue()
    cut = materials_cut(cat)
    if as_json:
        for code, item in cat.items.items():
            share = cut.items[code]
            _print(
                json.dumps(
                    {
                        "code": code,
                        "name": item.name.en,
                        "deadline_workdays": item.deadline.workdays,
                        "single_window": item.single_window,
                        "pulled": share.pulled,
                        "uploaded": share.uploaded,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(title="一网通办 catalogue")
    for col in ("code", "name", "type", "workdays", "pulled/uploaded", "single window"):
        table.add_column(col)
    for code, item in cat.items.items():
        share = cut.items[code]
        table.add_row(
            code,
            f"{item.name.zh} / {item.name.en}",
            item.type,
            str(item.deadline.workdays),
            f"{share.pulled}/{share.uploaded}",
            "yes" if item.single_window else "",
        )
    out.print(table)
    _print(f"materials pulled overall: {cut.overall.share_pulled:.0%}")


def _pages(item_code: str, answers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Split flat answers (or take ``{page: {...}}``) into the form's pages."""
    definition = forms.form_for_item(service.catalogue().get(item_code))
    page_ids = {p.id for p in definition.pages}
    if answers and all(k in page_ids and isinstance(v, dict) for k, v in answers.items()):
        return {k: dict(v) for k, v in answers.items()}
    known = definition.questions()
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise InvalidInput(f"answers name unknown questions: {', '.join(unknown)}")
    pages: dict[str, dict[str, Any]] = {}
    for page in definition.pages:
        values = {q.name: answers[q.name] for q in page.questions if q.name in answers}
        if values:
            pages[page.id] = values
    return pages


def _attachment(spec: str) -> tuple[str, Path, str]:
    code, sep, path_text = spec.partition("=")
    if not sep or not code or not path_text:
        raise InvalidInput(f"--attach takes MATERIAL=FILE, got {spec!r}")
    path = Path(path_text)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if path.stat().st_size > service.MAX_ATTACHMENT_BYTES:
        raise InvalidInput(f"{path}: larger than {service.MAX_ATTACHMENT_BYTES} bytes")
    ctype = mimetypes.guess_type(path.name)[0] or ""
    return code, path, ctype


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


@app.command()
def apply(
    item: str = typer.Argument(..., help="Catalogue item code, e.g. no-criminal-record."),
    user: str = typer.Option(..., "--as", help="The applicant's username."),
    answers: Path | None = typer.Option(
        None, "--answers", help="JSON answers: flat {question: answer} or {page: {...}}."
    ),
    attach: list[str] = typer.Option([], "--attach", help="MATERIAL=FILE (repeatable)."),
    key: str | None = typer.Option(None, "--key", help="Idempotency key (default: random)."),
    draft_only: bool = typer.Option(False, "--draft", help="Save the draft; do not submit."),
) -> None:
    """Start, fill, attach and submit an application in one transaction (all or nothing)."""
    data: dict[str, Any] = {}
    if answers is not None:
        if not answers.is_file():
            raise InvalidInput(f"{answers}: no such file")
        if answers.stat().st_size > MAX_ANSWERS_BYTES:
            raise InvalidInput(f"{answers} is larger than {MAX_ANSWERS_BYTES} bytes")
        try:
            loaded = json.loads(answers.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{answers}: not valid JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise InvalidInput(f"{answers}: the answers must be a JSON object")
        data = loaded
    uploads = [_attachment(spec) for spec in attach]
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            who = _principal(session, user)
            started = service.start_application(session=session, principal=who, item_code=item)
            for page_id, values in _pages(item, data).items():
                service.save_page(
                    session=session,
                    principal=who,
                    application_id=started.id,
                    page_id=page_id,
                    answers=values,
                )
            for code, path, ctype in uploads:
                service.add_attachment(
                    session=session,
                    principal=who,
                    application_id=started.id,
                    material_code=code,
                    filename=path.name,
                    content_type=ctype,
                    data=_read_bytes(path),
                )
            if draft_only:
                result = started
            else:
                result = service.submit(
                    session=session,
                    principal=who,
                    application_id=started.id,
                    idempotency_key=key or f"cli-{secrets.token_hex(8)}",
                )
    except service.FormInvalid as exc:
        lines = "; ".join(f"{e.field}: {e.en}" for e in exc.field_errors)
        raise InvalidInput(f"{exc.detail} ({lines})") from None
    finally:
        runtime.close()
    _print(
        f"{result.reference} {result.state} id={result.id}"
        + (f" due {result.due_on.isoformat()}" if result.due_on else "")
    )
    for part in result.parts:
        _print(f"  part {part.department}: {part.state} id={part.id}")


@app.command("list")
def list_applications(
    user: str = typer.Option(..., "--as", help="A citizen (their own) or staff (their queue)."),
    state: str | None = typer.Option(None, help="Only this state (staff queue)."),
    limit: int = typer.Option(50, min=1, max=service.MAX_QUEUE),
    as_json: bool = typer.Option(False, "--json", help="JSON lines."),
) -> None:
    """A citizen's own applications, or a staff member's queue."""
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            who = _principal(session, user)
            if who.can(READ):
                apps = service.staff_queue(session=session, principal=who, state=state, limit=limit)
            else:
                apps = service.my_applications(session=session, principal=who)
    finally:
        runtime.close()
    if as_json:
        for a in apps:
            _print(json.dumps(_row(a), ensure_ascii=False))
    else:
        _table(apps)


@app.command()
def act(
    application_id: str = typer.Argument(..., help="The application's id."),
    action: str = typer.Argument(
        ..., help="accept | review | request_supplement | supplement | approve | reject | issue"
    ),
    user: str = typer.Option(..., "--as", help="Who acts (staff; the applicant to supplement)."),
    comment: str | None = typer.Option(None, help="Reason (needed to reject or ask)."),
) -> None:
    """Move an application one step."""
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            who = _principal(session, user)
            result = service.act(
                session=session,
                principal=who,
                application_id=application_id,
                action=action,
                comment=comment,
            )
    finally:
        runtime.close()
    _print(
        f"{result.reference} {result.state}"
        + (f" due {result.due_on.isoformat()}" if result.due_on else "")
        + (f" certificate {result.certificate_id}" if result.certificate_id else "")
    )


@app.command()
def stats(as_json: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """Median / p90 working days per item and the share of materials pulled."""
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            figures = service.stats(session=session, principal=audit.SYSTEM)
    finally:
        runtime.close()
    if as_json:
        _print(json.dumps(figures, ensure_ascii=False))
        return
    table = Table(title="Working days from submission to decision")
    for col in ("item", "applications", "decided", "median", "p90", "late", "overdue"):
        table.add_column(col)
    for row in figures["items"]:
        med, p90 = row["median_workdays"], row["p90_workdays"]
        table.add_row(
            row["item_code"],
            str(row["count"]),
            str(row["finished"]),
            "-" if med is None else f"{med:.1f}",
            "-" if p90 is None else f"{p90:.1f}",
            str(row["late"]),
            str(row["overdue"]),
        )
    out.print(table)
    total = figures["materials_pulled"] + figures["materials_uploaded"]
    _print(
        f"materials pulled instead of uploaded: {figures['materials_pulled']}/{total} "
        f"({figures['share_pulled']:.1%})"
    )


@app.command()
def sim(
    applications: int = typer.Option(300, min=0, max=20_000, help="Simulated applications."),
    seed: int = typer.Option(10, help="Random seed (same seed, same load)."),
    arrival_workdays: int = typer.Option(100, min=1, max=200, help="Working days of arrivals."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the figures as JSON."),
) -> None:
    """Simulate a load of applications in a throw-away database and print the figures."""
    from safecity.eservices import sim as simulation

    if output is not None and not output.parent.is_dir():
        raise InvalidInput(f"--output folder {output.parent} does not exist")
    result = simulation.run_isolated(
        applications=applications, seed=seed, arrival_workdays=arrival_workdays
    )
    figures = result.as_dict()
    if output is not None:
        output.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", "utf-8")
    table = Table(title=f"Simulated working days ({result.first_day} .. {result.last_day})")
    for col in ("item", "deadline", "applications", "median", "p90", "late"):
        table.add_column(col)
    for f in result.items:
        table.add_row(
            f.item_code,
            str(f.deadline_workdays),
            str(f.count),
            "-" if f.median_workdays is None else f"{f.median_workdays:.1f}",
            "-" if f.p90_workdays is None else f"{f.p90_workdays:.1f}",
            str(f.late),
        )
    out.print(table)
    _print(f"materials pulled instead of uploaded: {result.share_pulled:.1%}")
    _print(f"single-window demo case: {result.single_window_demo_workdays} working days")
    if result.issue_failures:
        _print(f"steps refused: {result.issue_failures}")


def _add_registry_commands() -> None:
    from safecity.eservices import registry_cli

    registry_cli.register(app)  # verify, bundle, revoke, suspend, reinstate


_add_registry_commands()
