"""``safecity users``: create, list, add-role, token, unlock, reset-totp, deactivate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from safecity.cli import app as cli_app
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security import auth, totp
from safecity.security import cli as users_cli
from safecity.security.auth import totp_secret_of
from safecity.security.models import User
from tests.conftest import City

pytestmark = pytest.mark.db

PASSWORD = "a sufficiently long passphrase"


Run = Callable[..., Result]


@pytest.fixture
def run(runtime: Runtime, city: City, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setattr(users_cli, "_runtime", lambda: runtime)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli_app, ["users", *args], input=input)

    return invoke


def _users(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(User)) or 0)


def _user(runtime: Runtime, username: str) -> User:
    with runtime.sessions() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        return user


def _secret_from(output: str) -> str:
    line = next(x for x in output.splitlines() if x.startswith("TOTP secret:"))
    return line.split(":", 1)[1].strip()


def test_create_staff_prints_totp_and_they_can_log_in(run: Run, runtime: Runtime) -> None:
    result = run(
        "create", "duty.officer", "--org", "hp-s1", "--role", "officer", "--password", PASSWORD
    )
    assert result.exit_code == 0, result.output
    secret = _secret_from(result.output)
    assert "otpauth://totp/" in result.output
    with runtime.sessions.begin() as s:
        principal, _token = auth.login(
            session=s,
            username="duty.officer",
            password=PASSWORD,
            totp_code=totp.code_at(secret, utcnow()),
            settings=runtime.settings,
        )
    assert principal.roles == frozenset({"officer"})


def test_create_prompts_for_the_password(run: Run, runtime: Runtime) -> None:
    result = run(
        "create", "prompted", "--org", "sh", "--role", "citizen", input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert _user(runtime, "prompted").password_hash is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create", "x1", "--org", "hp-s1", "--role", "overlord", "--password", PASSWORD],
            "unknown role",
        ),
        (
            ["create", "x1", "--org", "nowhere", "--role", "officer", "--password", PASSWORD],
            "not found",
        ),
        (
            ["create", "x1", "--org", "hp-s1", "--role", "officer", "--password", "short"],
            "at least 12",
        ),
        (
            ["create", "Bad Name!", "--org", "hp-s1", "--role", "officer", "--password", PASSWORD],
            "username must be",
        ),
        (
            ["create", "dev1", "--org", "hp-s1", "--role", "device", "--kind", "robot"],
            "unknown kind",
        ),
        (["add-role", "nobody", "officer"], "not found"),
        (["token", "nobody"], "not found"),
        (["list", "--role", "overlord"], "unknown role"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    run: Run,
    runtime: Runtime,
    args: list[str],
    message: str,
) -> None:
    before = _users(runtime)
    result = run(*args)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert _users(runtime) == before


def test_device_key_and_token(run: Run, runtime: Runtime) -> None:
    result = run(
        "create", "cam-gateway-7", "--org", "hp-s1", "--role", "device", "--kind", "device"
    )
    assert result.exit_code == 0, result.output
    assert "TOTP" not in result.output
    token_run = run("token", "cam-gateway-7", "--ttl-hours", "24")
    assert token_run.exit_code == 0
    token = token_run.stdout.strip()
    assert token.startswith(auth.TOKEN_PREFIX)
    with runtime.sessions() as s:
        principal = auth.authenticate_token(session=s, token=token)
    assert principal.kind == "device"
    assert principal.roles == frozenset({"device"})
    assert run("token", "cam-gateway-7", "--ttl-hours", "0").exit_code != 0


def test_list_shows_a_table(run: Run, runtime: Runtime) -> None:
    run("create", "listed.one", "--org", "hp-s1", "--role", "officer", "--password", PASSWORD)
    run("create", "listed.two", "--org", "pd-s1", "--role", "analyst", "--password", PASSWORD)
    result = run("list")
    assert result.exit_code == 0, result.output
    assert "listed.one" in result.output
    assert "listed.two" in result.output
    assert "hp-s1" in result.output
    only = run("list", "--org", "pd-s1")
    assert "listed.two" in only.output
    assert "listed.one" not in only.output
    by_role = run("list", "--role", "officer")
    assert "listed.one" in by_role.output
    assert "listed.two" not in by_role.output


def test_add_role_unlock_reset_totp_deactivate(run: Run, runtime: Runtime) -> None:
    run("create", "citizen.li", "--org", "hp-s1", "--role", "citizen", "--password", PASSWORD)
    assert _user(runtime, "citizen.li").totp_secret is None
    promoted = run("add-role", "citizen.li", "department_staff")
    assert promoted.exit_code == 0, promoted.output
    first_secret = _secret_from(promoted.output)  # became staff → needs TOTP
    with runtime.sessions() as s:
        user_id = _user(runtime, "citizen.li").id
        assert auth.roles_of(session=s, user_id=user_id) == ["citizen", "department_staff"]

    with runtime.sessions.begin() as s:
        s.execute(
            update(User)
            .where(User.id == user_id)
            .values(failed_logins=3, locked_until=utcnow().replace(year=utcnow().year + 1))
        )
    assert run("unlock", "citizen.li").exit_code == 0
    unlocked = _user(runtime, "citizen.li")
    assert unlocked.locked_until is None
    assert unlocked.failed_logins == 0

    reset = run("reset-totp", "citizen.li")
    assert reset.exit_code == 0
    assert _secret_from(reset.output) != first_secret
    with runtime.sessions() as s:
        user = s.scalars(select(User).where(User.username == "citizen.li")).one()
        assert user.totp_secret != _secret_from(reset.output)  # sealed at rest
        assert totp_secret_of(session=s, user=user) == _secret_from(reset.output)

    assert run("deactivate", "citizen.li").exit_code == 0
    assert _user(runtime, "citizen.li").active is False
