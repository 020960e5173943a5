"""FastAPI application factory: middleware, problem+json handlers and every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from safecity import __version__
from safecity.console import pages as console_pages
from safecity.orgs import api as orgs_api
from safecity.platform import events_api, health, jobs_api
from safecity.platform.problems import install_problem_handlers
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import api as security_api
from safecity.security import audit_api
from safecity.settings import Settings


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="SafeCity",
        version=__version__,
        summary="Public-safety operations platform: sensing, dispatch, cases and services.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(security_api.router)
    app.include_router(orgs_api.router)
    app.include_router(audit_api.router)
    app.include_router(events_api.router)
    app.include_router(jobs_api.router)
    app.include_router(console_pages.router)
    return app
