"""OIDC login against a small OpenID provider run inside the test (real HTTP on a local
port): discovery, JWKS, authorize (with PKCE) and token endpoints. The provider can be told
to misbehave: wrong issuer, wrong audience, wrong nonce, expired token, bad signature..."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from safecity.platform.runtime import Runtime
from safecity.security import audit, oidc, sessions
from safecity.security import service as security
from safecity.security.models import UserSession
from tests.conftest import City

pytestmark = pytest.mark.db

CLIENT_ID = "safecity-console"
CLIENT_SECRET = "provider-issued-secret"
SUBJECT = "248289761001"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Provider:
    """A minimal OpenID provider; ``mode`` says how to get the id_token wrong."""

    issuer: str = ""
    mode: str = "ok"
    subject: str = SUBJECT
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1", "use": "sig"})
    )
    rogue: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1"}))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != CLIENT_ID
            or q.get("code_challenge_method") != "S256"
            or "openid" not in q.get("scope", "").split()
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q["nonce"],
            "redirect_uri": q["redirect_uri"],
            "challenge": q["code_challenge"],
        }
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        grant = self.codes.pop(str(form.get("code")), None)  # single use
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or _b64(hashlib.sha256(str(form.get("code_verifier")).encode()).digest())
            != grant["challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "id_token": self.id_token(grant)}
        )

    def id_token(self, grant: dict[str, str]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": CLIENT_ID,
            "nonce": grant["nonce"],
            "iat": now,
            "exp": now + 300,
        }
        key = self.key
        header: dict[str, Any] = {"alg": "RS256", "kid": "k1"}
        if self.mode == "wrong_issuer":
            claims["iss"] = "http://127.0.0.1:1/other-issuer"
        elif self.mode == "wrong_audience":
            claims["aud"] = "another-client"
        elif self.mode == "several_audiences_no_azp":
            claims["aud"] = [CLIENT_ID, "another-client"]
        elif self.mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.mode == "missing_nonce":
            del claims["nonce"]
        elif self.mode == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif self.mode == "issued_in_future":
            claims["iat"], claims["exp"] = now + 3600, now + 7200
        elif self.mode == "bad_signature":
            key = self.rogue  # claims the published kid, signed with another key
        elif self.mode == "unknown_key":
            key, header = self.rogue, {"alg": "RS256", "kid": "k2"}
        elif self.mode == "alg_none":
            head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{head}.{_b64(json.dumps(claims).encode())}."
        elif self.mode == "garbage":
            return "this-is-not-a-jwt"
        return jwt.encode(header, claims, key, algorithms=["RS256"])


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    prov = Provider(issuer=f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        prov.app(), log_level="warning", lifespan="off", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "OIDC test provider did not start"
        time.sleep(0.01)
    yield prov
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def oidc_client(
    provider: Provider, runtime: Runtime, client: TestClient, city: City
) -> Iterator[TestClient]:
    provider.mode = "ok"
    provider.subject = SUBJECT
    oidc.clear_caches()
    runtime.settings = runtime.settings.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
        }
    )
    with runtime.sessions.begin() as s:
        security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username="alice",
            org_id=city.stations[0].id,
            roles=["officer"],
            oidc_subject=SUBJECT,
        )
    yield client
    oidc.clear_caches()


def _flow(client: TestClient) -> tuple[Any, str]:
    """Browser: start at SafeCity, visit the provider, come back. Returns the callback's
    answer and the callback path (to replay)."""
    start = client.get("/api/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 303, start.text
    assert oidc.STATE_COOKIE in start.headers["set-cookie"]
    assert "SameSite=lax" in start.headers["set-cookie"]
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert back.path == "/api/auth/oidc/callback"
    path = f"{back.path}?{back.query}"
    return client.get(path, follow_redirects=False), path


def _session_count(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(UserSession)) or 0)


def test_authorization_request_carries_state_nonce_and_pkce(oidc_client: TestClient) -> None:
    start = oidc_client.get("/api/auth/oidc/login", follow_redirects=False)
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    assert len(query["nonce"][0]) >= 32
    assert query["state"] != query["nonce"]


def test_oidc_login_succeeds_and_starts_a_session(
    oidc_client: TestClient, runtime: Runtime
) -> None:
    answer, _ = _flow(oidc_client)
    assert answer.status_code == 200, answer.text
    assert sessions.SESSION_COOKIE in answer.headers["set-cookie"]
    assert 'http-equiv="refresh"' in answer.text
    me = oidc_client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.json()["auth_method"] == "oidc"
    assert _session_count(runtime) == 1


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong_issuer", "claims"),
        ("wrong_audience", "claims"),
        ("several_audiences_no_azp", "azp"),
        ("wrong_nonce", "nonce"),
        ("missing_nonce", "claims"),
        ("expired", "expired"),
        ("issued_in_future", "claims"),
        ("bad_signature", "signature"),
        ("unknown_key", "signature"),
        ("alg_none", "signature"),
        ("garbage", ""),
    ],
)
def test_invalid_id_tokens_are_refused(
    oidc_client: TestClient, provider: Provider, runtime: Runtime, mode: str, reason: str
) -> None:
    provider.mode = mode
    answer, _ = _flow(oidc_client)
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert reason in answer.json()["detail"]
    assert sessions.SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert _session_count(runtime) == 0
    assert oidc_client.get("/api/auth/me").status_code == 401
    with runtime.sessions() as s:
        failed = s.scalars(
            select(audit.AuditEntry).where(audit.AuditEntry.action == "auth.login_failed")
        ).all()
    assert [f.detail["reason"] for f in failed] == ["oidc_token"]


def test_callback_cannot_be_replayed(oidc_client: TestClient, provider: Provider) -> None:
    first, path = _flow(oidc_client)
    assert first.status_code == 200
    tokens_before = provider.token_requests
    again = oidc_client.get(path, follow_redirects=False)
    assert again.status_code == 401
    assert provider.token_requests == tokens_before  # refused before talking to the provider


def test_state_must_come_from_the_same_browser(
    oidc_client: TestClient, app: object, runtime: Runtime
) -> None:
    start = oidc_client.get("/api/auth/oidc/login", follow_redirects=False)
    back = urlsplit(httpx.get(start.headers["location"]).headers["location"])
    with TestClient(app) as victim:  # type: ignore[arg-type]  # no state cookie
        answer = victim.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert answer.status_code == 401
    assert "state" in answer.json()["detail"]
    assert _session_count(runtime) == 0


def test_unknown_subject_gets_no_session(
    oidc_client: TestClient, provider: Provider, runtime: Runtime
) -> None:
    provider.subject = "someone-else"
    answer, _ = _flow(oidc_client)
    assert answer.status_code == 401
    assert _session_count(runtime) == 0


def test_provider_error_and_missing_code_are_refused(oidc_client: TestClient) -> None:
    r = oidc_client.get("/api/auth/oidc/callback", params={"error": "access_denied"})
    assert r.status_code == 401
    r = oidc_client.get("/api/auth/oidc/callback", params={"state": "x"})
    assert r.status_code == 401


def test_oidc_is_off_without_configuration(client: TestClient) -> None:
    r = client.get("/api/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_unreachable_provider_is_503(client: TestClient, runtime: Runtime) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    oidc.clear_caches()
    runtime.settings = runtime.settings.model_copy(
        update={"oidc_issuer": f"http://127.0.0.1:{port}", "oidc_client_id": CLIENT_ID}
    )
    r = client.get("/api/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 503
    oidc.clear_caches()
