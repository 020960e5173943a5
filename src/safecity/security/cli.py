"""``safecity users …``: manage people and non-human principals from the shell.

The shell user acts as an admin (recorded in the audit log as actor ``cli``). Bad input
ends with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.db import transaction
from safecity.platform.errors import InvalidInput, SafeCityError
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import service
from safecity.security.models import User
from safecity.security.rbac import ROLES, Principal

app = typer.Typer(help="Users, service accounts, device keys and API keys.", no_args_is_help=True)

CLI_PRINCIPAL = Principal(
    id="cli",
    kind="service",
    username="cli",
    roles=frozenset({"admin"}),
    org_id="",
    visible_org_ids=None,
    auth_method="cli",
)


COLUMNS = ("username", "kind", "roles", "org", "active", "locked", "totp", "last login")


def _runtime() -> Runtime:
    """The runtime the commands use (tests replace this)."""
    return build_runtime()


@contextmanager
def _unit() -> Iterator[Session]:
    """One transaction; a SafeCity error becomes one line on stderr and a non-zero exit."""
    try:
        with transaction(_runtime().sessions) as session:
            yield session
    except SafeCityError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"error: {exc.detail}", markup=False, highlight=False
        )
        raise typer.Exit(exc.exit_code) from None


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _user(session: Session, username: str) -> User:
    return service.get_user_by_username(session=session, principal=CLI_PRINCIPAL, username=username)


def _show_totp(change: service.UserChange) -> None:
    if change.totp_secret is None:
        return
    out = _out()
    out.print(f"TOTP secret: {change.totp_secret}", markup=False)
    out.print(f"TOTP URI:    {change.totp_uri}", markup=False)
    out.print("Show these once to the user (authenticator app); they are not shown again.")


@app.command("create")
def create(
    username: str = typer.Argument(..., help="Login name (lowercase letters, digits, . _ @ -)."),
    org: str = typer.Option(..., "--org", help="Home organisation code."),
    role: list[str] = typer.Option(..., "--role", help=f"Role (repeatable): {', '.join(ROLES)}."),
    kind: str = typer.Option("user", help="user | service | device | apikey."),
    display_name: str = typer.Option("", help="Name shown in the console."),
    password: str | None = typer.Option(
        None, help="Password for a person (prompted when omitted and needed)."
    ),
    oidc_subject: str | None = typer.Option(None, help="Link to this OIDC 'sub' claim."),
) -> None:
    """Create a person (password, and TOTP for staff) or a non-human principal."""
    if kind == "user" and password is None and oidc_subject is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _unit() as session:
        org_row = orgs.get_by_code(session=session, code=org)
        change = service.create_user(
            session=session,
            actor=CLI_PRINCIPAL,
            username=username,
            org_id=org_row.id,
            roles=role,
            kind=kind,
            display_name=display_name,
            password=password,
            oidc_subject=oidc_subject,
        )
        _out().print(
            f"created {change.user.kind} {change.user.username} ({change.user.id}) "
            f"in {org_row.code} with roles {', '.join(change.roles)}",
            markup=False,
        )
        _show_totp(change)
        if change.user.kind != "user":
            _out().print(f"issue a bearer token with: safecity users token {change.user.username}")


@app.command("list")
def list_(
    org: str | None = typer.Option(None, "--org", help="Only this organisation (code)."),
    role: str | None = typer.Option(None, "--role", help="Only holders of this role."),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind."),
    limit: int = typer.Option(50, help="At most this many rows."),
    offset: int = typer.Option(0, help="Skip this many rows."),
) -> None:
    """List principals as a table."""
    with _unit() as session:
        if role is not None and role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        filters: dict[str, str | None] = {"kind": kind}
        if org is not None:
            filters["org_id"] = orgs.get_by_code(session=session, code=org).id
        params = service.USER_LIST.parse(limit=limit, offset=offset, filters=filters)
        page = service.list_users(
            session=session, principal=CLI_PRINCIPAL, params=params, role=role
        )
        roles = service.roles_by_user(session=session, user_ids=[u.id for u in page.items])
        now = datetime.now(UTC)
        table = Table(
            title=f"users {page.offset + 1}–{page.offset + len(page.items)} of {page.total}"
        )
        for column in (
            "username",
            "kind",
            "roles",
            "org",
            "active",
            "locked",
            "totp",
            "last login",
        ):
            table.add_column(column, overflow="fold")
        for user in page.items:
            table.add_row(
                user.username,
                user.kind,
                ", ".join(roles[user.id]),
                orgs.get(session=session, org_id=user.org_id).code,
                "yes" if user.active else "no",
                "yes" if user.locked_until and user.locked_until > now else "",
                "yes" if user.totp_secret else "",
                user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "",
            )
        Console(highlight=False, width=160).print(table)


@app.command("add-role")
def add_role(
    username: str = typer.Argument(...),
    role: str = typer.Argument(..., help=f"One of: {', '.join(ROLES)}."),
) -> None:
    """Give a principal one more role (a person who becomes staff gets a TOTP secret)."""
    with _unit() as session:
        user = _user(session, username)
        change = service.add_role(session=session, actor=CLI_PRINCIPAL, user_id=user.id, role=role)
        _out().print(f"{user.username}: roles {', '.join(change.roles)}", markup=False)
        _show_totp(change)


@app.command("token")
def token(
    username: str = typer.Argument(...),
    name: str = typer.Option("cli", help="A label for the token."),
    ttl_hours: int | None = typer.Option(None, help="Lifetime in hours; omit for no expiry."),
) -> None:
    """Issue a bearer token (printed once, alone on stdout)."""
    with _unit() as session:
        if ttl_hours is not None and ttl_hours <= 0:
            raise InvalidInput("--ttl-hours must be positive")
        user = _user(session, username)
        value = service.issue_user_token(
            session=session,
            actor=CLI_PRINCIPAL,
            user_id=user.id,
            name=name,
            ttl=timedelta(hours=ttl_hours) if ttl_hours is not None else None,
        )
    typer.echo(value)


@app.command("unlock")
def unlock(username: str = typer.Argument(...)) -> None:
    """Lift a lockout after failed logins."""
    with _unit() as session:
        user = service.unlock_user(
            session=session, actor=CLI_PRINCIPAL, user_id=_user(session, username).id
        )
        _out().print(f"{user.username}: unlocked", markup=False)


@app.command("reset-totp")
def reset_totp(username: str = typer.Argument(...)) -> None:
    """Give a person a new TOTP secret (their sessions end)."""
    with _unit() as session:
        change = service.reset_totp(
            session=session, actor=CLI_PRINCIPAL, user_id=_user(session, username).id
        )
        _show_totp(change)


@app.command("deactivate")
def deactivate(username: str = typer.Argument(...)) -> None:
    """Deactivate a principal; its sessions end and its tokens are revoked."""
    with _unit() as session:
        user = service.deactivate_user(
            session=session, actor=CLI_PRINCIPAL, user_id=_user(session, username).id
        )
        _out().print(f"{user.username}: deactivated", markup=False)


@app.command("set-password")
def set_password(
    username: str = typer.Argument(...),
    password: str | None = typer.Option(None, help="New password (prompted when omitted)."),
) -> None:
    """Set a person's password (their sessions end)."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _unit() as session:
        user = service.set_password(
            session=session,
            actor=CLI_PRINCIPAL,
            user_id=_user(session, username).id,
            password=password,
        )
        _out().print(f"{user.username}: password set", markup=False)
