"""GET /api/notifications (admin only, no addresses or bodies) and ``safecity notify``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from safecity.cli import app as cli_app
from safecity.cli import main
from safecity.platform import notify, notify_cli
from safecity.platform.db import transaction
from safecity.platform.notify import Notification
from safecity.platform.notify_senders import LogSender, PermanentSendError, SendError
from safecity.platform.runtime import Runtime
from tests.conftest import City

pytestmark = pytest.mark.db

Actors = Callable[..., Any]
PHONE = "13912345678"
EMAIL = "wang.wu.canary@example.com"
BODY = "Verification code 551902"


class Failing:
    name = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def send(self, message: Any) -> str | None:
        raise self.error


def seed(runtime: Runtime, city: City) -> dict[str, str]:
    """One sent SMS, one failed e-mail, one e-mail retrying, one pending SMS."""
    ids: dict[str, str] = {}
    with transaction(runtime.sessions) as s:
        for key, channel, to in (
            ("sent", "sms", PHONE),
            ("failed", "email", EMAIL),
            ("retrying", "email", EMAIL),
            ("pending", "sms", PHONE),
        ):
            ids[key] = notify.enqueue(
                s,
                channel=channel,
                to=to,
                subject="Case update",
                body=BODY,
                purpose="case progress",
                idempotency_key=f"seed:{key}",
                template="cases.stage_changed",
                org_id=city.stations[0].id,
            ).id
    notify.dispatch(runtime.sessions, senders={"sms": LogSender()}, ids=[ids["sent"]])
    notify.dispatch(
        runtime.sessions,
        senders={"email": Failing(PermanentSendError(f"550 <{EMAIL}> user unknown"))},
        ids=[ids["failed"]],
    )
    notify.dispatch(
        runtime.sessions,
        senders={"email": Failing(SendError(f"451 try later ({EMAIL})"))},
        ids=[ids["retrying"]],
    )
    return ids


def test_admin_sees_counts_and_failures_without_addresses(
    client: TestClient, runtime: Runtime, city: City, make_actor: Actors
) -> None:
    ids = seed(runtime, city)
    admin = make_actor("admin", city.city)
    response = client.get("/api/notifications", headers=admin.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    counts = {(c["status"], c["channel"]): c["count"] for c in data["counts"]}
    assert counts == {
        ("sent", "sms"): 1,
        ("failed", "email"): 1,
        ("pending", "email"): 1,
        ("pending", "sms"): 1,
    }
    assert data["totals"] == {"pending": 2, "sending": 0, "sent": 1, "failed": 1}
    assert data["due_now"] == 1  # the retrying one waits for its backoff
    assert data["senders"] == {"email": "log", "sms": "log"}
    failures = {f["id"]: f for f in data["recent_failures"]}
    assert set(failures) == {ids["failed"], ids["retrying"]}
    assert failures[ids["failed"]]["status"] == "failed"
    assert "550" in failures[ids["failed"]]["last_error"]
    assert "w***@example.com" in failures[ids["failed"]]["last_error"]
    assert failures[ids["retrying"]]["status"] == "pending"
    assert failures[ids["retrying"]]["attempts"] == 1
    for secret in (PHONE, EMAIL, "wang.wu", BODY, "551902"):
        assert secret not in response.text


def test_limit_is_validated(client: TestClient, city: City, make_actor: Actors) -> None:
    admin = make_actor("admin", city.city)
    response = client.get("/api/notifications?limit=0", headers=admin.headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", ["officer", "supervisor", "analyst", "auditor", "citizen"])
def test_other_roles_are_denied(
    client: TestClient, city: City, make_actor: Actors, role: str
) -> None:
    actor = make_actor(role, city.stations[0])
    response = client.get("/api/notifications", headers=actor.headers)
    assert response.status_code == 403
    assert response.json()["status"] == 403


def test_anonymous_is_asked_to_log_in(client: TestClient) -> None:
    assert client.get("/api/notifications").status_code == 401


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_runtime(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(notify_cli, "_runtime", lambda: runtime)
    return runtime


def test_cli_status(cli_runtime: Runtime, city: City) -> None:
    ids = seed(cli_runtime, city)
    runner = CliRunner()
    as_json = runner.invoke(cli_app, ["notify", "status", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["totals"]["failed"] == 1
    assert {f["id"] for f in data["recent_failures"]} == {ids["failed"], ids["retrying"]}
    table = runner.invoke(cli_app, ["notify", "status"])
    assert table.exit_code == 0, table.output
    assert "recent failures" in table.output
    for output in (as_json.output, table.output):
        for secret in (PHONE, EMAIL, BODY):
            assert secret not in output


def test_cli_send_test_with_the_log_sender(cli_runtime: Runtime) -> None:
    result = CliRunner().invoke(cli_app, ["notify", "send-test", "--channel", "sms", "--to", PHONE])
    assert result.exit_code == 0, result.output
    assert "sent (log sender)" in result.output
    assert PHONE not in result.output
    with cli_runtime.sessions() as s:
        [n] = s.scalars(select(Notification)).all()
    assert (n.status, n.template, n.channel) == ("sent", "notify.test", "sms")


def test_cli_dispatch(cli_runtime: Runtime) -> None:
    with transaction(cli_runtime.sessions) as s:
        notify.enqueue(s, channel="sms", to=PHONE, body=BODY, purpose="test", idempotency_key="d1")
    result = CliRunner().invoke(cli_app, ["notify", "dispatch"])
    assert result.exit_code == 0, result.output
    assert "sent 1, retrying 0, failed 0" in result.output


@pytest.mark.usefixtures("cli_runtime")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--channel", "pigeon", "--to", PHONE], "error: notification channel: Input should be"),
        (["--channel", "email", "--to", "nobody"], "error: notification: 'to' is not an e-mail"),
        (["--channel", "sms", "--to", "12ab"], "error: notification: 'to' is not a phone number"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    monkeypatch.setattr(sys, "argv", ["safecity", "notify", "send-test", *args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected)
    assert len(err.splitlines()) == 1
