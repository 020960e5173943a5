"""FastAPI application factory: middleware, problem+json handlers and every router."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from fastapi import FastAPI

from safecity import __version__
from safecity.accidents import api as accidents_api
from safecity.alerts import api as alerts_api
from safecity.alerts import pages as alerts_pages
from safecity.alerts import queue_api as alerts_queue_api
from safecity.alerts import queue_pages as alerts_queue_pages
from safecity.cases import api as cases_api
from safecity.cases import pages as cases_pages
from safecity.cases import pages_halls as cases_halls
from safecity.cases import portal_api as cases_portal
from safecity.cases import reviews_api as cases_reviews
from safecity.cases import reviews_pages as cases_reviews_pages
from safecity.console import pages as console_pages
from safecity.console import pages_admin as console_admin
from safecity.crowd import api as crowd_api
from safecity.crowd import covariates_api as crowd_covariates_api
from safecity.crowd import forecast_api as crowd_forecast_api
from safecity.crowd import ingest_api as crowd_ingest_api
from safecity.crowd import pages as crowd_pages
from safecity.crowd import pages_forecast as crowd_pages_forecast
from safecity.dispatch import api as dispatch_api
from safecity.dispatch import open311 as dispatch_open311
from safecity.dispatch import pages as dispatch_pages
from safecity.disputes import api as disputes_api
from safecity.disputes import pages as disputes_pages
from safecity.eservices import api as eservices_api
from safecity.eservices import pages as eservices_pages
from safecity.eservices import registry_api as eservices_registry_api
from safecity.fraud import api as fraud_api
from safecity.fraud import pages as fraud_pages
from safecity.linkage import api as linkage_api
from safecity.linkage import index_api as linkage_index_api
from safecity.linkage import pages as linkage_pages
from safecity.orgs import api as orgs_api
from safecity.platform import events_api, health, jobs, jobs_api, notify_api
from safecity.platform.bus import attached_bus
from safecity.platform.logging import configure_logging
from safecity.platform.middleware import install_middleware
from safecity.platform.problems import install_problem_handlers
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import api as security_api
from safecity.security import audit_api
from safecity.security.rbac import mark_docs_public
from safecity.sensing import api as sensing_api
from safecity.sensing import ingest_api as sensing_ingest_api
from safecity.sensing import ops_api as sensing_ops_api
from safecity.sensing.timer import absence_timer
from safecity.settings import Settings


@contextmanager
def embedded_scheduler(runtime: Runtime, *, enabled: bool) -> Iterator[None]:
    """Run the job scheduler in a background thread for the lifetime of the block."""
    if not enabled:
        yield
        return
    jobs.load_job_modules()
    stop = threading.Event()
    thread = threading.Thread(
        target=jobs.Scheduler(runtime).run_forever, args=(stop,), name="jobs", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded = runtime.settings.embedded_workers
        # runtime.bus: memory:// or NATS (lazy connect). In the one-process setup the relay,
        # the consumers and the job scheduler run here too.
        async with attached_bus(runtime, run_relay=embedded, run_consumers=embedded):
            with embedded_scheduler(runtime, enabled=embedded), absence_timer(app):
                yield

    app = FastAPI(
        title="SafeCity",
        version=__version__,
        summary="Public-safety operations platform: sensing, dispatch, cases and services.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load from a CDN and use inline script, which the strict CSP
        # and the no-CDN rule forbid; the spec itself is served at /openapi.json.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.runtime = runtime
    mark_docs_public(app)  # FastAPI's own docs/OpenAPI routes: deliberately public
    install_problem_handlers(app)
    configure_logging(runtime.settings)
    install_middleware(app, runtime.settings)
    app.include_router(health.router)
    # The public portal's case lookup is the hottest route: routes are matched in order, so
    # it is matched before the ~500 others (its paths are all fixed; none shadows another).
    app.include_router(cases_portal.router)
    app.include_router(security_api.router)
    app.include_router(orgs_api.router)
    app.include_router(audit_api.router)
    app.include_router(events_api.router)
    app.include_router(jobs_api.router)
    app.include_router(notify_api.router)
    app.include_router(sensing_api.router)
    app.include_router(sensing_ingest_api.router)
    app.include_router(sensing_ops_api.router)
    app.include_router(alerts_api.router)
    app.include_router(alerts_pages.router)
    app.include_router(alerts_queue_api.router)
    app.include_router(alerts_queue_pages.router)
    app.include_router(disputes_api.router)
    app.include_router(disputes_pages.router)
    app.include_router(console_pages.router)
    app.include_router(console_admin.router)
    app.include_router(dispatch_api.router)
    app.include_router(dispatch_pages.router)
    app.include_router(dispatch_open311.router)
    app.include_router(cases_api.router)
    app.include_router(cases_pages.router)
    app.include_router(cases_reviews.router)
    app.include_router(cases_reviews.portal_router)
    app.include_router(cases_reviews_pages.router)
    app.include_router(cases_reviews_pages.portal_router)
    app.include_router(cases_halls.router)
    app.include_router(crowd_ingest_api.ingest_router)
    app.include_router(crowd_forecast_api.forecast_router)
    app.include_router(crowd_covariates_api.covariates_router)
    app.include_router(crowd_api.router)
    app.include_router(crowd_pages.pages_router)
    app.include_router(crowd_pages_forecast.forecast_pages_router)
    app.include_router(fraud_api.router)
    app.include_router(fraud_pages.router)
    app.include_router(accidents_api.routes)
    app.include_router(eservices_api.routes)
    app.include_router(eservices_pages.router)  # citizens' pages + staff console
    app.include_router(eservices_registry_api.routes)
    app.include_router(linkage_api.router)
    app.include_router(linkage_pages.pages_router)
    app.include_router(linkage_index_api.index_router)
    console_pages.install(app)  # static files (marked public) + HTML login redirect
    return app
