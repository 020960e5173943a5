"""/healthz, /readyz, /metrics, and what happens when the database or the bus is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from safecity.app import create_app
from safecity.platform import metrics
from safecity.platform.db import make_engine, make_session_factory
from safecity.platform.runtime import DbSession, Runtime
from safecity.security.rbac import Principal, public, require
from safecity.settings import Settings
from tests.conftest import Actor, City

PROBLEM = "application/problem+json"


def _test_router() -> APIRouter:
    router = APIRouter(prefix="/_test")

    @router.get("/items/{item_id}", dependencies=[Depends(public)])
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @router.get("/mine")
    def mine(principal: Annotated[Principal, Depends(require("orgs:read"))]) -> dict[str, str]:
        return {"id": principal.id}

    @router.get("/count", dependencies=[Depends(public)])
    def count(session: DbSession) -> dict[str, int]:
        from sqlalchemy import text

        return {"n": int(session.execute(text("SELECT 1")).scalar_one())}

    return router


def _client(runtime: Runtime) -> Iterator[TestClient]:
    app = create_app(runtime=runtime)
    app.include_router(_test_router())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    yield from _client(runtime)


def _runtime_on(url: str, settings: Settings, **engine_kw: Any) -> Runtime:
    engine = (
        create_engine(url, **engine_kw)
        if url.startswith("sqlite")
        else make_engine(url, **engine_kw)
    )
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))


UNREACHABLE_DATABASES = [
    pytest.param(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        {"connect_args": {"connect_timeout": 2}},
        id="postgresql-refused",
    ),
    pytest.param("sqlite:////nonexistent-dir/safecity/x.db", {}, id="sqlite-unopenable"),
]


# --- liveness and readiness ----------------------------------------------------------


def test_healthz_is_public_and_cheap(api: TestClient) -> None:
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["version"]


@pytest.mark.db
def test_readyz_when_the_database_answers(api: TestClient) -> None:
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["checks"]["database"] == "ok"


@pytest.mark.parametrize(("url", "engine_kw"), UNREACHABLE_DATABASES)
def test_database_down_readyz_fails_and_requests_get_503(
    settings: Settings, url: str, engine_kw: dict[str, Any]
) -> None:
    runtime = _runtime_on(url, settings, **engine_kw)
    try:
        for client in _client(runtime):
            assert client.get("/healthz").status_code == 200  # alive, just not ready
            r = client.get("/readyz")
            assert r.status_code == 503
            assert r.headers["content-type"] == PROBLEM
            body = r.json()
            assert body["checks"]["database"] == "down"
            assert "database" in body["detail"]
            assert "nowhere" not in r.text
            assert "nonexistent" not in r.text
            # Ordinary requests: authenticated and plain database routes alike.
            for path, headers in [
                ("/_test/mine", {"Authorization": "Bearer sct_whatever"}),
                ("/_test/count", {}),
                ("/api/auth/me", {"Authorization": "Bearer sct_whatever"}),
            ]:
                r = client.get(path, headers=headers)
                assert r.status_code == 503, (path, r.text)
                assert r.headers["content-type"] == PROBLEM
                assert r.json()["type"].endswith("/service-unavailable")
                assert "Traceback" not in r.text
    finally:
        runtime.close()


class _FakeNats:
    """A TCP server that greets like NATS (``INFO {...}``), enough for the readiness check."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'INFO {"server_id":"fake"}\r\n')

    def close(self) -> None:
        self.sock.close()


@pytest.mark.db
def test_readyz_checks_nats_when_configured(runtime: Runtime) -> None:
    fake = _FakeNats()
    try:
        runtime.settings = runtime.settings.model_copy(
            update={"bus_url": f"nats://127.0.0.1:{fake.port}"}
        )
        for client in _client(runtime):
            r = client.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["checks"] == {"database": "ok", "bus": "ok"}
    finally:
        fake.close()


@pytest.mark.db
def test_readyz_fails_when_nats_is_down(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"bus_url": "nats://127.0.0.1:1"})
    for client in _client(runtime):
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": "ok", "bus": "down"}
        assert r.headers["retry-after"]


class _Bus:
    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy

    async def ping(self) -> None:
        if not self.healthy:
            raise ConnectionError("bus gone")


@pytest.mark.db
@pytest.mark.parametrize(("healthy", "status"), [(True, 200), (False, 503)])
def test_readyz_asks_a_bus_that_can_ping(runtime: Runtime, healthy: bool, status: int) -> None:
    runtime.bus = _Bus(healthy)  # type: ignore[assignment]
    for client in _client(runtime):
        assert client.get("/readyz").status_code == status


# --- metrics -------------------------------------------------------------------------


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            got = head[len(name) + 1 : -1]
            if ",".join(sorted(got.split(","))) == wanted:
                return float(value)
    return 0.0


def test_metrics_count_requests_by_route_template(api: TestClient) -> None:
    before = _sample(
        api.get("/metrics").text,
        "safecity_http_requests_total",
        method="GET",
        route="/_test/items/{item_id}",
        status="200",
    )
    for i in (1, 2, 3):
        assert api.get(f"/_test/items/{i}").status_code == 200
    api.get("/_test/items/not-a-number")
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    labels = {"method": "GET", "route": "/_test/items/{item_id}"}
    assert _sample(text, "safecity_http_requests_total", status="200", **labels) == before + 3
    assert _sample(text, "safecity_http_requests_total", status="422", **labels) >= 1
    assert _sample(text, "safecity_http_request_duration_seconds_count", **labels) >= 4
    assert 'route="/_test/items/1"' not in text  # raw paths never become labels


def test_unmatched_paths_share_one_label(api: TestClient) -> None:
    api.get("/random/abc123")
    text = api.get("/metrics").text
    assert 'route="<unmatched>"' in text
    assert "abc123" not in text


def test_other_areas_register_metrics(api: TestClient) -> None:
    dead = metrics.counter("safecity_test_dead_letters_total", "Dead letters (test)", ["type"])
    assert metrics.counter("safecity_test_dead_letters_total", "again", ["type"]) is dead
    dead.labels(type="test.thing").inc(2)
    assert (
        _sample(api.get("/metrics").text, "safecity_test_dead_letters_total", type="test.thing")
        >= 2
    )
    with pytest.raises(ValueError, match="already registered"):
        metrics.gauge("safecity_test_dead_letters_total", "clash")


def test_metrics_scrape_token(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"metrics_token": "scrape-secret"})
    for client in _client(runtime):
        r = client.get("/metrics")
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200
        assert "safecity_http_requests_total" in ok.text


def test_health_routes_are_marked_public() -> None:
    from fastapi.routing import APIRoute

    from safecity.platform import health
    from safecity.security.rbac import PUBLIC_ATTR

    routes = {r.path: r for r in health.router.routes if isinstance(r, APIRoute)}
    assert set(routes) == {"/healthz", "/readyz", "/metrics"}
    for path, route in routes.items():
        deps = [d.call for d in route.dependant.dependencies]
        assert any(getattr(d, PUBLIC_ATTR, False) for d in deps), path


@pytest.mark.db
def test_principal_is_logged_by_id(api: TestClient, city: City, make_actor: Any) -> None:
    actor: Actor = make_actor("officer", city.stations[0])
    assert api.get("/_test/mine", headers=actor.headers).json() == {"id": actor.user_id}


def test_metrics_of_several_worker_processes_are_summed(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (several uvicorn workers) any worker reports for all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = (
        "from safecity.platform import metrics; "
        "metrics.observe_request(method='GET', route='/w', status=200, seconds=0.01)"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, check=True, timeout=60)
    render = "from safecity.platform import metrics; print(metrics.render().decode())"
    out = subprocess.run(
        [sys.executable, "-c", render], env=env, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    assert _sample(out, "safecity_http_requests_total", method="GET", route="/w", status="200") == 2
