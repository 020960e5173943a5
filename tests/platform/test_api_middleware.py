"""Request middleware: request ids, access logs, security headers, body limit, rate limit."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from safecity.app import create_app
from safecity.platform.errors import RateLimited
from safecity.platform.logging import JsonFormatter, TextFormatter, configure_logging
from safecity.platform.middleware import content_security_policy, request_id_for
from safecity.platform.ratelimit import TokenBucketLimiter, rate_limit
from safecity.platform.runtime import Runtime
from safecity.security.rbac import Principal, public, require
from safecity.settings import Settings
from tests.conftest import Actor, City

PROBLEM = "application/problem+json"


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _test_router() -> APIRouter:
    router = APIRouter(prefix="/_test")

    @router.post("/echo", dependencies=[Depends(public)])
    def echo(body: Echo) -> Echo:
        return body

    @router.post("/raw", dependencies=[Depends(public)])
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @router.get("/whoami")
    def whoami(principal: Annotated[Principal, Depends(require("orgs:read"))]) -> dict[str, str]:
        return {"id": principal.id, "request_id": "x"}

    @router.get("/state", dependencies=[Depends(public)])
    def state(request: Request) -> dict[str, str]:
        return {"request_id": request.state.request_id}

    @router.get("/log", dependencies=[Depends(public)])
    def log_something() -> None:
        logging.getLogger("safecity.test").warning("hello from a handler")

    @router.get("/boom", dependencies=[Depends(public)])
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @router.get(
        "/limited",
        dependencies=[Depends(public), Depends(rate_limit("tests", per_minute=2))],
    )
    def limited() -> dict[str, bool]:
        return {"ok": True}

    return router


def _client(runtime: Runtime, **overrides: Any) -> Iterator[TestClient]:
    if overrides:
        runtime.settings = runtime.settings.model_copy(update=overrides)
    app: FastAPI = create_app(runtime=runtime)
    app.include_router(_test_router())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    yield from _client(runtime)


# --- request ids ---------------------------------------------------------------------


def test_request_id_is_generated_echoed_and_on_request_state(api: TestClient) -> None:
    r = api.get("/_test/state")
    rid = r.headers["x-request-id"]
    assert len(rid) == 32
    assert r.json() == {"request_id": rid}
    assert api.get("/_test/state").headers["x-request-id"] != rid


def test_sane_incoming_request_id_is_kept(api: TestClient) -> None:
    r = api.get("/_test/state", headers={"X-Request-ID": "edge-7f3a.42:1"})
    assert r.headers["x-request-id"] == "edge-7f3a.42:1"
    assert r.json()["request_id"] == "edge-7f3a.42:1"


@pytest.mark.parametrize(
    "incoming", ["", "has space", "<script>", "x" * 129, "-starts-with-dash", "a\tb", "ü"]
)
def test_insane_request_id_is_replaced(incoming: str) -> None:
    got = request_id_for(incoming)
    assert got != incoming
    assert len(got) == 32


def test_problem_body_carries_request_id(api: TestClient) -> None:
    r = api.get("/no-such-thing", headers={"X-Request-ID": "trace-1"})
    assert r.status_code == 404
    assert r.json()["request_id"] == "trace-1"
    assert r.headers["x-request-id"] == "trace-1"


# --- access log ----------------------------------------------------------------------


@pytest.mark.db
def test_one_access_log_line_per_request_with_principal(
    api: TestClient,
    city: City,
    make_actor: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    actor: Actor = make_actor("officer", city.stations[0])
    with caplog.at_level(logging.INFO, logger="safecity.access"):
        r = api.get("/_test/whoami", headers={**actor.headers, "X-Request-ID": "log-1"})
    assert r.status_code == 200
    lines = [rec for rec in caplog.records if rec.name == "safecity.access"]
    assert len(lines) == 1
    rec = lines[0]
    fields = json.loads(JsonFormatter().format(rec))
    assert fields["request_id"] == "log-1"
    assert fields["method"] == "GET"
    assert fields["path"] == "/_test/whoami"
    assert fields["route"] == "/_test/whoami"
    assert fields["status"] == 200
    assert fields["principal_id"] == actor.user_id
    assert isinstance(fields["duration_ms"], float)
    assert fields["level"] == "info"
    assert fields["logger"] == "safecity.access"


def test_access_log_for_anonymous_request_has_no_principal(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="safecity.access"):
        api.get("/_test/state")
        api.get("/healthz")  # successful probes: DEBUG only
    (rec,) = [r for r in caplog.records if r.name == "safecity.access"]
    assert rec.principal_id is None  # type: ignore[attr-defined]
    assert rec.status == 200  # type: ignore[attr-defined]
    assert rec.path == "/_test/state"  # type: ignore[attr-defined]


def test_log_lines_written_while_answering_carry_the_request_id(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    for client in _client(runtime, log_json=True):
        capsys.readouterr()
        client.get("/_test/log", headers={"X-Request-ID": "ctx-42"})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        (mine,) = [e for e in lines if e["message"] == "hello from a handler"]
        assert mine["request_id"] == "ctx-42"
        assert mine["level"] == "warning"
        (access,) = [e for e in lines if e["logger"] == "safecity.access"]
        assert access["request_id"] == "ctx-42"
        assert access["status"] == 200


def test_json_formatter_puts_extras_and_exceptions_on_one_line() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("safecity.x").makeRecord(
            "safecity.x", logging.ERROR, __file__, 1, "failed %s", ("job",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    record.job_id = "j1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed job"
    assert entry["job_id"] == "j1"
    assert entry["exc_type"] == "ValueError"
    assert "job_id=j1" in TextFormatter().format(record)


def test_configure_logging_is_idempotent(settings: Settings) -> None:
    root = logging.getLogger()
    configure_logging(settings)
    configure_logging(settings.model_copy(update={"log_json": True}))
    ours = [h for h in root.handlers if getattr(h, "_safecity", False)]
    assert len(ours) == 1
    assert isinstance(ours[0].formatter, JsonFormatter)


# --- security headers ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/no-such-thing", "/_test/boom"])
def test_security_headers_on_every_response(api: TestClient, path: str) -> None:
    r = api.get(path)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "img-src 'self' data:" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in r.headers["permissions-policy"]
    assert "strict-transport-security" not in r.headers  # cookie_secure is off


def test_hsts_when_cookies_are_secure(runtime: Runtime) -> None:
    for client in _client(runtime, cookie_secure=True):
        r = client.get("/healthz")
        assert r.headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize(
    ("tile_url", "expected"),
    [
        ("", "img-src 'self' data:;"),
        ("https://{s}.tile.example.org/{z}/{x}/{y}.png", "img-src 'self' data: https://*.tile"),
        ("https://tiles.city.gov.cn/{z}/{x}/{y}.png", "data: https://tiles.city.gov.cn;"),
        ("/tiles/{z}/{x}/{y}.png", "img-src 'self' data:;"),
        ("https://t{s}.example.cn/{z}/{x}/{y}", "img-src 'self' data: https://*.example.cn;"),
        ("https://tiles.{s}.example/{z}/{x}/{y}", "img-src 'self' data: https:;"),
    ],
)
def test_csp_allows_the_configured_tile_host(
    settings: Settings, tile_url: str, expected: str
) -> None:
    csp = content_security_policy(settings.model_copy(update={"tile_url": tile_url})) + ";"
    assert expected in csp


# --- body size limit -----------------------------------------------------------------


def test_declared_content_length_over_limit_is_refused(runtime: Runtime) -> None:
    for client in _client(runtime, max_body_bytes=100):
        r = client.post("/_test/echo", json={"text": "x" * 200})
        assert r.status_code == 413
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == 413
        assert "content-security-policy" in r.headers
        assert client.post("/_test/echo", json={"text": "small"}).json() == {"text": "small"}


def test_streamed_body_is_counted_and_cut_off(runtime: Runtime) -> None:
    chunks_sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b"x" * 64

    for client in _client(runtime, max_body_bytes=1000):
        r = client.post("/_test/raw", content=chunks())  # chunked: no Content-Length
        assert r.status_code == 413
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/payload-too-large")
        ok = client.post("/_test/raw", content=iter([b"y" * 500]))
        assert ok.json() == {"bytes": 500}


def test_streamed_json_body_over_limit_is_413_not_400(runtime: Runtime) -> None:
    body = json.dumps({"text": "z" * 5000}).encode()
    for client in _client(runtime, max_body_bytes=1000):
        r = client.post(
            "/_test/echo",
            content=iter([body[i : i + 100] for i in range(0, len(body), 100)]),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413


def test_a_registered_upload_route_takes_a_larger_body(runtime: Runtime) -> None:
    from safecity.platform import middleware

    before = list(middleware._UPLOAD_LIMITS)
    middleware.register_upload_limit(r"/_test/raw", 5000)
    try:
        for client in _client(runtime, max_body_bytes=1000):
            ok = client.post("/_test/raw", content=b"u" * 4000)
            assert ok.json() == {"bytes": 4000}
            assert client.post("/_test/raw", content=b"u" * 6000).status_code == 413
            assert client.post("/_test/echo", json={"text": "x" * 2000}).status_code == 413
    finally:
        middleware._UPLOAD_LIMITS[:] = before


# --- rate limiting -------------------------------------------------------------------


def test_login_is_rate_limited_per_client(runtime: Runtime) -> None:
    for client in _client(runtime, login_rate_per_minute=3):
        answers = [client.post("/api/auth/login", json={}).status_code for _ in range(4)]
        assert 429 not in answers[:3]
        assert answers[3] == 429
        r = client.post("/api/auth/login", json={})
        assert r.status_code == 429
        assert r.headers["content-type"] == PROBLEM
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["type"].endswith("/rate-limited")
        # The other password routes share the bucket; other routes are not affected.
        assert client.post("/api/auth/tokens", json={}).status_code == 429
        assert client.post("/console/login", data={}).status_code == 429
        assert client.get("/healthz").status_code == 200


def test_rate_limit_dependency(api: TestClient) -> None:
    assert [api.get("/_test/limited").status_code for _ in range(3)] == [200, 200, 429]


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(rate=1.0, capacity=2, clock=lambda: now[0])
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(1.0)
    assert limiter.acquire("b") == 0.0  # keys are independent
    now[0] = 1.5
    assert limiter.acquire("a") == 0.0
    with pytest.raises(RateLimited) as caught:
        limiter.check("a")
    assert caught.value.extra["retry_after"] == 1


def test_token_bucket_memory_is_bounded() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(rate=1.0, capacity=1, clock=lambda: now[0], max_keys=10)
    for i in range(100):
        limiter.acquire(f"client-{i}")
    assert len(limiter._buckets) <= 10
