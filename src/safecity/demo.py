"""``safecity demo``: a demo city on the embedded defaults, ready to log in to.

Migrates the SQLite database, seeds Shanghai's districts, stations and departments, creates
one demo user for every role (new passwords on every run, printed once), prints the admin's
TOTP secret, then serves the API and the console on http://127.0.0.1:8000.
Demo users exist only when this command creates them.

Each run also opens one case from an alert (:func:`safecity.cases.demo_desk.starter_lookup`)
and prints its number + portal code to try at ``/portal``; while the demo serves, the demo
duty desk job opens cases from simulated alerts and moves them along.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases.demo_desk import PortalLookup, starter_lookup
from safecity.demo_city import (
    CITY_CODE,
    DEMO_DEPARTMENT_CODE,
    DEMO_DISTRICT_CODE,
    DEMO_OTHER_DISTRICT_CODE,
    DEMO_STATION_CODE,
    seed_demo_orgs,
)
from safecity.orgs import service as orgs
from safecity.platform.db import transaction, utcnow
from safecity.platform.migrations import upgrade
from safecity.platform.runtime import Runtime
from safecity.security import audit, totp
from safecity.security import service as users
from safecity.security.models import User

# (username, role, org code, display name)
#: The e-services department that handles no-criminal-record certificates (its org is
#: created on first use; the demo creates it before seeding the clerk).
ESERVICES_WINDOW = "psb-police-station"
ESERVICES_WINDOW_CODE = "eservices-" + ESERVICES_WINDOW

DEMO_USERS: tuple[tuple[str, str, str, str], ...] = (
    ("admin", "admin", CITY_CODE, "Demo administrator"),
    ("auditor", "auditor", CITY_CODE, "Demo auditor"),
    ("analyst", "analyst", CITY_CODE, "Demo city analyst"),
    ("supervisor", "supervisor", DEMO_DISTRICT_CODE, "Demo district supervisor (Huangpu)"),
    ("officer", "officer", DEMO_STATION_CODE, "Demo station officer (Huangpu)"),
    ("officer-pd", "officer", DEMO_OTHER_DISTRICT_CODE, "Demo officer (Pudong)"),
    ("dept", "department_staff", DEMO_DEPARTMENT_CODE, "Demo sanitation staff"),
    ("clerk", "department_staff", ESERVICES_WINDOW_CODE, "Demo e-services clerk (police window)"),
    ("citizen", "citizen", CITY_CODE, "Demo citizen"),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    org_code: str
    password: str
    totp_secret: str | None


@dataclass(frozen=True)
class DemoSetup:
    """What ``prepare`` made: the logins, and one case's portal lookup (number + code)."""

    logins: list[DemoLogin]
    lookup: PortalLookup | None


def _password() -> str:
    return "demo-" + secrets.token_urlsafe(12)


def seed_demo_users(session: Session) -> list[DemoLogin]:
    """Create the demo users, or give existing ones a new password and TOTP secret."""
    logins: list[DemoLogin] = []
    for username, role, org_code, display in DEMO_USERS:
        org = orgs.get_by_code(session=session, code=org_code)
        password = _password()
        existing = session.scalars(select(User).where(User.username == username)).one_or_none()
        if existing is None:
            change = users.create_user(
                session=session,
                actor=audit.SYSTEM,
                username=username,
                org_id=org.id,
                roles=[role],
                display_name=display,
                password=password,
            )
            secret = change.totp_secret
        else:
            users.set_password(
                session=session, actor=audit.SYSTEM, user_id=existing.id, password=password
            )
            users.unlock_user(session=session, actor=audit.SYSTEM, user_id=existing.id)
            secret = None
            if existing.totp_secret is not None:
                secret = users.reset_totp(
                    session=session, actor=audit.SYSTEM, user_id=existing.id
                ).totp_secret
        logins.append(DemoLogin(username, role, org_code, password, secret))
    return logins


def prepare(runtime: Runtime) -> DemoSetup:
    """Migrate and seed; returns the demo logins (passwords in clear, shown once) and a
    fresh case's portal lookup (its code is in clear only now)."""
    from safecity.eservices.citizens import seed_demo_citizen
    from safecity.eservices.service import department_org

    upgrade("head", database_url=runtime.settings.effective_database_url)
    with transaction(runtime.sessions) as session:
        seed_demo_orgs(session, actor=audit.SYSTEM)
        department_org(session, ESERVICES_WINDOW)
        logins = seed_demo_users(session)
        seed_demo_citizen(session)  # the demo citizen's registry record (e-services prefill)
    # two simulated drivers settle a rear-end collision; the demo insurers acknowledge
    from safecity.accidents.demo import simulate_rear_end

    simulate_rear_end(runtime)
    # the demo citizen's no-criminal-record certificate: issued, shown as a QR, verified
    # offline (VALID); a second one revoked (REVOKED); files under <var>/demo/
    from safecity.eservices.demo import print_outcome, simulate_no_criminal_record

    print_outcome(simulate_no_criminal_record(runtime), Console(width=max(Console().width, 140)))
    # the Bund's simulated crowd: a weekly surge caught hours ahead by a model told nothing
    # about it, a pre-limit alert with diversion advice (issue 8)
    from safecity.crowd.demo import print_outcome as print_crowd
    from safecity.crowd.demo import simulate_bund

    print_crowd(simulate_bund(runtime), Console(width=max(Console().width, 140)))
    return DemoSetup(logins=logins, lookup=starter_lookup(runtime))


def print_logins(logins: list[DemoLogin], console: Console, *, url: str) -> None:
    table = Table(title="SafeCity demo users (passwords change on every `safecity demo`)")
    for column in ("username", "role", "org", "password", "TOTP secret"):
        table.add_column(column, no_wrap=True)
    for login in logins:
        table.add_row(
            login.username, login.role, login.org_code, login.password, login.totp_secret or "-"
        )
    console.print(table)
    admin = next(login for login in logins if login.username == "admin")
    console.print(f"[bold]Admin password:[/bold] {admin.password}")
    if admin.totp_secret:
        console.print(f"[bold]Admin TOTP secret:[/bold] {admin.totp_secret}")
        console.print(
            f"TOTP URI: {totp.provisioning_uri(admin.totp_secret, username='admin')}",
            soft_wrap=True,
        )
        console.print(f"Admin TOTP code right now: {totp.code_at(admin.totp_secret, utcnow())}")
    console.print(f"Console: {url}/console   health: {url}/healthz")


def print_lookup(lookup: PortalLookup | None, console: Console, *, url: str) -> None:
    if lookup is None:
        console.print("No case portal lookup this time (the demo case got no code).")
        return
    console.print(
        f"[bold]Case portal:[/bold] {url}/portal   number {lookup.number}   code {lookup.code}"
    )
