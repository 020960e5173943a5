"""``/api/events/*`` routes, ``safecity events ...`` commands and the app's bus."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from safecity import cli
from safecity.app import create_app
from safecity.platform import events_cli
from safecity.platform.outbox import OutboxEvent, emit
from safecity.platform.runtime import Runtime
from safecity.settings import Settings
from tests.conftest import Actor, City
from tests.platform.conftest import BusFactory

pytestmark = [pytest.mark.db, pytest.mark.bus]

MakeActor = Callable[..., Actor]


def emit_one(runtime: Runtime, n: int = 1) -> str:
    with runtime.sessions.begin() as s:
        return emit(s, type="test.bus.a", source="test", payload={"n": n}).id


@pytest.mark.parametrize("role", ["officer", "analyst", "supervisor", "admin"])
def test_event_types_for_readers(
    client: TestClient, city: City, make_actor: MakeActor, role: str
) -> None:
    actor = make_actor(role, city.stations[0])
    response = client.get("/api/events/types", headers=actor.headers)
    assert response.status_code == 200, response.text
    types = {(t["name"], t["version"]): t for t in response.json()}
    tick = types[("test.bus.a", 1)]
    assert tick["schema"]["required"] == ["n"]
    assert tick["description"] == "test event"


@pytest.mark.parametrize("role", ["citizen", "auditor", "department_staff"])
def test_event_routes_refuse_other_roles(
    client: TestClient, city: City, make_actor: MakeActor, role: str
) -> None:
    actor = make_actor(role, city.stations[0])
    for path in ("/api/events/types", "/api/events/outbox"):
        response = client.get(path, headers=actor.headers)
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("application/problem+json")


def test_event_routes_need_a_login(client: TestClient) -> None:
    for path in ("/api/events/types", "/api/events/outbox"):
        assert client.get(path).status_code == 401


def test_outbox_status(
    client: TestClient, runtime: Runtime, city: City, make_actor: MakeActor
) -> None:
    admin = make_actor("admin", city.city)
    before = client.get("/api/events/outbox", headers=admin.headers).json()
    event_id = emit_one(runtime)
    with runtime.sessions.begin() as s:
        row = s.scalars(select(OutboxEvent).where(OutboxEvent.id == event_id)).one()
        row.attempts, row.last_error = 1, "ConnectionError: broker went away"
    after = client.get("/api/events/outbox", headers=admin.headers).json()
    assert after["pending"] == before["pending"] + 1
    assert after["failing"] == 1
    assert after["last_error"] == "ConnectionError: broker went away"
    assert after["last_error_event_id"] == event_id
    assert after["oldest_pending_age_s"] >= 0


def test_app_lifespan_gives_the_runtime_a_bus(runtime: Runtime) -> None:
    assert runtime.bus is None
    with TestClient(create_app(runtime=runtime)):
        assert runtime.bus is not None
        bus_type = type(runtime.bus).__name__
    assert bus_type == ("NatsBus" if runtime.settings.bus_url.startswith("nats") else "MemoryBus")
    assert runtime.bus is None  # closed and detached on shutdown


@pytest.fixture
def use_test_db(
    runtime: Runtime,
    bus_settings: Settings,
    bus_factory: BusFactory,  # NATS: deletes this test's stream afterwards
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    def fresh() -> Runtime:
        # the command closes the runtime it gets; hand it a copy sharing the test database
        return Runtime(settings=bus_settings, engine=runtime.engine, sessions=runtime.sessions)

    monkeypatch.setattr(events_cli, "_runtime", fresh)
    monkeypatch.setattr(Runtime, "close", lambda self: None)
    return runtime


def test_cli_status_relay_once_and_types(use_test_db: Runtime) -> None:
    runtime = use_test_db
    emit_one(runtime, 1)
    emit_one(runtime, 2)
    runner = CliRunner()
    status = runner.invoke(cli.app, ["events", "status", "--json"])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert data["pending"] == 2
    assert data["last_error"] is None

    relayed = runner.invoke(cli.app, ["events", "relay", "--once"])
    assert relayed.exit_code == 0, relayed.output
    assert "published 2 event(s)" in relayed.output
    data = json.loads(runner.invoke(cli.app, ["events", "status", "--json"]).output)
    assert (data["pending"], data["sent"]) == (0, 2)

    table = runner.invoke(cli.app, ["events", "status"])
    assert table.exit_code == 0
    assert "pending" in table.output

    types = runner.invoke(cli.app, ["events", "types"])
    assert types.exit_code == 0
    assert "test.bus.a" in types.output
