"""The public-data guard itself, and the walk over every public route of the real app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.app import create_app
from safecity.platform.runtime import DbSession, Runtime
from safecity.security.models import User
from safecity.security.rbac import public

from .publicguard import (
    CANARIES,
    Canaries,
    assert_no_canary,
    fetch,
    find_canaries,
    id_check_digit,
    public_get_routes,
    seed_canaries,
    walk_public_routes,
)

# --------------------------------------------------------------------------- canaries


def test_canaries_look_real_and_are_unique() -> None:
    assert id_check_digit("11010519491231002") == "X"  # the GB 11643 worked example
    c = Canaries.generate(seed=7)
    assert c == Canaries.generate(seed=7)
    assert c != Canaries.generate(seed=8)
    assert len(c.id_number) == 18
    assert c.id_number[-1] == id_check_digit(c.id_number[:17])
    assert len(c.phone) == 11
    assert c.phone.startswith("1")
    assert len(set(c.values().values())) == 5
    assert "室" in c.flat


# --------------------------------------------------------------------------- detection

C = Canaries.generate(seed=1)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"<td>{C.name}</td>", "name"),
        (json.dumps({"reporter": C.name}), "name"),  # \\u escapes
        ("".join(f"&#x{ord(ch):x};" for ch in C.name), "name"),  # HTML entities
        (f"<reporter>{C.flat}</reporter>", "flat"),
        (f"/search?q={quote(C.flat)}", "flat"),
        (f"data: {json.dumps({'phone': C.phone})}\n\n", "phone"),  # SSE
        (f"{C.phone[:3]} {C.phone[3:7]} {C.phone[7:]}", "phone"),
        (f"{C.phone[:3]}-{C.phone[3:7]}-{C.phone[7:]}", "phone"),
        (f"id {C.id_number.lower()}", "id_number"),
        (f"{C.id_number[:6]} {C.id_number[6:14]} {C.id_number[14:]}", "id_number"),
        (f"Dear {C.name_en.upper()},", "name_en"),
    ],
)
def test_find_canaries_sees_through_encodings(text: str, kind: str) -> None:
    assert kind in find_canaries(text, C)
    with pytest.raises(AssertionError, match=kind):
        assert_no_canary(text, C)


@pytest.mark.parametrize(
    "text",
    [
        "nothing to see",
        f"{C.phone[:3]}****{C.phone[7:]}",  # masked the usual way
        f"{C.id_number[:6]}********{C.id_number[14:]}",
        C.name[0] + "**",
        "",
    ],
)
def test_masked_or_absent_values_pass(text: str) -> None:
    assert find_canaries(text, C) == []
    assert_no_canary(text, C)


def test_checks_headers_bytes_and_json_data() -> None:
    api = FastAPI()

    @api.get("/h")
    def leaky_header() -> Response:
        return Response("ok", headers={"X-Reporter": quote(C.name)})

    response = TestClient(api).get("/h")
    with pytest.raises(AssertionError, match="name"):
        assert_no_canary(response, C)
    with pytest.raises(AssertionError, match="phone"):
        assert_no_canary(C.phone.encode(), C)
    with pytest.raises(AssertionError, match="flat"):
        assert_no_canary({"items": [{"address": C.flat}]}, C)
    with pytest.raises(TypeError):
        assert_no_canary(42, C)


# --------------------------------------------------------------------------- seeding + walking


@pytest.mark.db
def test_seed_puts_canaries_in_the_data_through_services(runtime: Runtime) -> None:
    seeded = seed_canaries(runtime)
    with runtime.sessions() as session:
        user = session.scalars(select(User).where(User.username == CANARIES.username)).one()
    assert user.display_name == CANARIES.name
    assert user.oidc_subject == CANARIES.id_number
    assert seeded.path_values["user_id"] == [user.id]


def _leaky_app(runtime: Runtime) -> FastAPI:
    app = create_app(runtime=runtime)

    @app.get("/public-leak/{user_id}", dependencies=[Depends(public)])
    def leak(user_id: str, session: DbSession) -> dict[str, Any]:
        user = session.get(User, user_id)
        return {"shown": user.display_name if user else None}

    return app


@pytest.mark.db
def test_walk_catches_a_leaking_public_json_route(runtime: Runtime) -> None:
    seeded = seed_canaries(runtime)
    app = _leaky_app(runtime)
    with pytest.raises(AssertionError, match=r"public-leak/.*canary name"):
        walk_public_routes(app, seeded)


@pytest.mark.db
def test_walk_catches_a_leaking_error_page(runtime: Runtime) -> None:
    seed_canaries(runtime)
    app = create_app(runtime=runtime)

    @app.get("/public-items/{item_id}", dependencies=[Depends(public)])
    def item(item_id: int, session: DbSession) -> dict[str, Any]:
        return {"id": item_id}

    @app.exception_handler(422)
    async def chatty(request: Any, exc: Any) -> HTMLResponse:
        return HTMLResponse(f"<p>bad input; ask {CANARIES.phone}</p>", status_code=422)

    from fastapi.exceptions import RequestValidationError

    app.exception_handlers[RequestValidationError] = chatty
    with pytest.raises(AssertionError, match=r"422.*canary phone"):
        walk_public_routes(app)


@pytest.mark.db
def test_walk_reads_endless_streams_for_a_moment_only(runtime: Runtime) -> None:
    seed_canaries(runtime)
    app = create_app(runtime=runtime)

    async def quiet() -> AsyncIterator[str]:
        while True:
            yield ": ping\n\n"
            await asyncio.sleep(0.05)

    async def leaky() -> AsyncIterator[str]:
        yield ": hello\n\n"
        await asyncio.sleep(0.2)
        yield f"data: {json.dumps({'who': CANARIES.name})}\n\n"
        await asyncio.sleep(3600)

    @app.get("/public-stream/quiet", dependencies=[Depends(public)])
    def quiet_stream() -> StreamingResponse:
        return StreamingResponse(quiet(), media_type="text/event-stream")

    # the app's first request builds its middleware stack and first connection: not timed
    (warm,) = fetch(app, "/healthz", timeout=10)
    assert warm.status == 200
    # the reading window is generous (a loaded 2-core CI machine answered the first byte
    # after 0.6 s); what is tested is that an endless stream ends at the window
    (hop,) = fetch(app, "/public-stream/quiet", timeout=2.0)
    assert hop.status == 200
    assert hop.truncated
    assert hop.content.startswith(b": ping")
    report = walk_public_routes(app, timeout=2.0)
    assert "/public-stream/quiet" in report.routes

    @app.get("/public-stream/leaky", dependencies=[Depends(public)])
    def leaky_stream() -> StreamingResponse:
        return StreamingResponse(leaky(), media_type="text/event-stream")

    with pytest.raises(AssertionError, match=r"public-stream/leaky.*canary name"):
        walk_public_routes(app, timeout=2.0)


@pytest.mark.db
def test_every_public_route_keeps_personal_data_out(runtime: Runtime) -> None:
    """The guard over the real application: every GET route marked public, with real and
    bogus path values and bad query values, plus unknown paths (404 pages)."""
    seeded = seed_canaries(runtime)
    app = create_app(runtime=runtime)
    assert public_get_routes(app), "no public GET route found: is the walker broken?"
    report = walk_public_routes(app, seeded)
    assert report.routes
    assert 404 in report.statuses
    assert any(200 <= f.status < 300 for f in report.checked)
    assert all(f.status != 0 for f in report.checked), "a request got no response"
