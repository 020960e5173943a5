"""Health and metrics: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

* ``/healthz`` — liveness: the process answers. Public; touches nothing.
* ``/readyz`` — readiness: the database answers a short query and, with NATS configured,
  the NATS server answers; otherwise 503 problem+json naming what is down. Public, so
  load balancers can use it; it says only "ok" or "down" per dependency.
* ``/metrics`` — Prometheus text. Marked public (Prometheus is not a SafeCity user), but
  when ``SAFECITY_METRICS_TOKEN`` is set the scraper must send it as a bearer token
  (``authorization: {credentials: ...}`` in the Prometheus scrape config).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Annotated, Literal
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import text

from safecity import __version__
from safecity.platform import metrics
from safecity.platform.errors import ServiceUnavailable, Unauthenticated
from safecity.platform.runtime import Runtime, get_runtime
from safecity.security.rbac import public

log = logging.getLogger("safecity.health")

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 2.0


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Literal["ok", "down", "skipped"]]


def _ping_database(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


async def check_database(runtime: Runtime, timeout: float = CHECK_TIMEOUT_S) -> str | None:
    """``None`` when the database answers ``SELECT 1`` within ``timeout``, else why not."""
    try:
        with anyio.fail_after(timeout):
            await anyio.to_thread.run_sync(_ping_database, runtime, abandon_on_cancel=True)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:
        return type(exc).__name__
    return None


async def _nats_answers(url: str, timeout: float) -> None:
    """Open a TCP connection to the first NATS server in ``url`` and read its INFO line."""
    first = url.split(",")[0].strip()
    parts = urlsplit(first)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    reader, writer = await asyncio.open_connection(host, port)
    try:
        line = await reader.readline()
        if not line.startswith(b"INFO"):
            raise ConnectionError("not a NATS server")
    finally:
        writer.close()
        await writer.wait_closed()


async def check_bus(runtime: Runtime, timeout: float = CHECK_TIMEOUT_S) -> str | None:
    """``None`` when the bus is usable, else why not.

    A bus object with an async ``ping()`` is asked directly; otherwise a ``nats://`` URL
    is checked by reading the server's greeting. The in-process bus keeps its log in the
    database, so the database check covers it.
    """
    url = runtime.settings.bus_url
    ping = getattr(runtime.bus, "ping", None)
    try:
        with anyio.fail_after(timeout):
            if runtime.bus is not None and callable(ping):
                await ping()
            elif url.startswith(("nats://", "tls://")):
                await _nats_answers(url, timeout)
            else:
                return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:
        return type(exc).__name__
    return None


@router.get(
    "/healthz",
    dependencies=[Depends(public)],
    summary="Liveness: the process answers",
)
def healthz() -> Liveness:
    return Liveness(version=__version__)


@router.get(
    "/readyz",
    dependencies=[Depends(public)],
    summary="Readiness: the database (and NATS, when configured) answer",
    responses={503: {"description": "A dependency is down (problem+json)"}},
)
async def readyz(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Readiness:
    db_error, bus_error = await asyncio.gather(check_database(runtime), check_bus(runtime))
    uses_nats = runtime.settings.bus_url.startswith(("nats://", "tls://"))
    checks: dict[str, Literal["ok", "down", "skipped"]] = {
        "database": "down" if db_error else "ok",
        "bus": "down" if bus_error else ("ok" if uses_nats or runtime.bus else "skipped"),
    }
    if db_error or bus_error:
        log.warning("not ready", extra={"database": db_error, "bus": bus_error})
        down = ", ".join(name for name, state in checks.items() if state == "down")
        raise ServiceUnavailable(f"not ready: {down} down", checks=checks, retry_after=5)
    return Readiness(checks=checks)


def _check_scrape_token(request: Request, runtime: Runtime) -> None:
    expected = runtime.settings.metrics_token
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise Unauthenticated("a valid metrics scrape token is required")


@router.get(
    "/metrics",
    dependencies=[Depends(public)],
    summary="Prometheus metrics (scrape token when SAFECITY_METRICS_TOKEN is set)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "Scrape token missing or wrong (problem+json)"},
    },
)
def prometheus_metrics(
    request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> Response:
    _check_scrape_token(request, runtime)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
