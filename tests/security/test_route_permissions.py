"""Every route declares its permission or is explicitly public.

Walks ``app.routes`` of the real application — API routes, console pages, SSE and XML
routes, static mounts, websockets, included routers — not only the OpenAPI spec, and fails
on any route whose dependency tree holds neither a ``require(...)`` dependency (attribute
``__safecity_permission__``) nor ``public`` (``__safecity_public__``). A route that cannot
carry dependencies (a Starlette ``Route``/``Mount``) must carry the marker itself (on the
route, its endpoint or the mounted app). No route is exempt: FastAPI's own docs/OpenAPI
routes are marked public by ``create_app`` (:func:`~safecity.security.rbac.mark_docs_public`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Host, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from safecity.app import create_app
from safecity.platform.runtime import Runtime
from safecity.security.rbac import (
    PERMISSION_ATTR,
    PUBLIC_ATTR,
    Principal,
    mark_docs_public,
    public,
    require,
)


def _marked(obj: object) -> bool:
    return bool(getattr(obj, PUBLIC_ATTR, False)) or bool(getattr(obj, PERMISSION_ATTR, None))


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    stack = [dependant]
    while stack:
        current = stack.pop()
        call = getattr(current, "call", None)
        if call is not None:
            yield inspect.unwrap(call)
        stack.extend(getattr(current, "dependencies", None) or [])


def _docs_paths(app: FastAPI) -> set[str]:
    paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    return {p for p in paths if p}


def unprotected_routes(
    app: FastAPI, routes: Sequence[BaseRoute] | None = None, prefix: str = ""
) -> list[str]:
    """Descriptions of the routes that declare neither a permission nor ``public``."""
    found: list[str] = []
    for context in iter_route_contexts(list(app.routes if routes is None else routes)):
        original = context.original_route
        effective: Any = context._effective_route  # the route as mounted (prefix applied)
        path = prefix + str(getattr(effective, "path", "") or getattr(original, "path", "?"))
        methods = ",".join(sorted(getattr(effective, "methods", None) or [])) or "*"
        label = f"{methods} {path} ({type(original).__name__})"
        dependant = getattr(effective, "dependant", None)
        if dependant is not None:
            if not any(_marked(call) for call in _calls(dependant)):
                found.append(label)
            continue
        if isinstance(original, Mount | Host):
            if _marked(original) or _marked(original.app):
                continue
            inner = getattr(original.app, "routes", None)
            if inner:
                found.extend(unprotected_routes(app, inner, prefix=path))
            else:
                found.append(label)
            continue
        if isinstance(original, Route | WebSocketRoute):
            if not (_marked(original) or _marked(original.endpoint)):
                found.append(label)
            continue
        found.append(label + " [unknown route type]")
    return found


def _paths(descriptions: Iterable[str]) -> set[str]:
    return {d.split(" ")[1] for d in descriptions}


def test_every_route_of_the_app_declares_permission_or_public(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    contexts = list(iter_route_contexts(list(app.routes)))
    assert len(contexts) > 10  # the walk really sees the included routers' routes
    assert unprotected_routes(app) == []


def test_docs_routes_are_marked_public_not_exempt(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    docs = [
        c.original_route
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, Route) and c.original_route.path in _docs_paths(app)
    ]
    assert len(docs) == len(_docs_paths(app)) >= 1  # /openapi.json at least
    assert all(r.endpoint.__module__ == "fastapi.applications" for r in docs)
    assert all(getattr(r.endpoint, PUBLIC_ATTR, False) for r in docs)
    # Without the marking they would be flagged: the walk has no exemption.
    bare = FastAPI()
    assert _paths(unprotected_routes(bare)) == _docs_paths(bare)
    mark_docs_public(bare)
    assert unprotected_routes(bare) == []


def test_the_walk_sees_routes_of_included_routers(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    seen = {getattr(c._effective_route, "path", None) for c in iter_route_contexts(app.routes)}
    assert {"/api/auth/login", "/api/users/{user_id}", "/console/login"} <= seen


def _helper(p: Annotated[Principal, Depends(require("orgs:read"))]) -> str:
    """A dependency that itself requires a permission (nested declaration counts)."""
    return p.id


def _fixture_app() -> FastAPI:
    """An app with one of each kind of route, protected and not."""
    app = FastAPI()
    guarded = APIRouter()
    open_router = APIRouter(dependencies=[Depends(public)])

    @guarded.get("/guarded")
    def guarded_route(p: Annotated[Principal, Depends(require("orgs:read"))]) -> None: ...

    @guarded.get("/naked")
    def naked_route() -> None: ...

    @guarded.get("/public", dependencies=[Depends(public)])
    def public_route() -> None: ...

    @open_router.get("/router-level-public")
    def router_level_public() -> None: ...

    @guarded.get("/nested")
    def nested(v: Annotated[str, Depends(_helper)]) -> None: ...

    @guarded.websocket("/ws-naked")
    async def ws_naked(websocket: Any) -> None: ...

    app.include_router(guarded, prefix="/api")
    app.include_router(open_router)

    async def plain(request: Any) -> Any: ...

    app.router.routes.append(Route("/starlette-naked", plain))
    marked = Route("/starlette-public", plain)
    setattr(marked, PUBLIC_ATTR, True)
    app.router.routes.append(marked)
    app.mount("/static-naked", StaticFiles(directory=".", check_dir=False))
    static = Mount("/static-public", app=StaticFiles(directory=".", check_dir=False))
    setattr(static, PUBLIC_ATTR, True)
    app.router.routes.append(static)
    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @sub.get("/inner")
    def inner() -> None: ...

    app.mount("/sub", sub)
    mark_docs_public(app)
    return app


def test_checker_flags_each_kind_of_unprotected_route() -> None:
    flagged = _paths(unprotected_routes(_fixture_app()))
    assert flagged == {
        "/api/naked",
        "/api/ws-naked",
        "/starlette-naked",
        "/static-naked",
        "/sub/inner",
    }


def test_a_route_posing_as_docs_is_not_marked() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.openapi_url = "/openapi.json"  # the path FastAPI would use...

    @app.get("/openapi.json")
    def impostor() -> None: ...  # ...but the route is ours, and unprotected

    mark_docs_public(app)
    assert _paths(unprotected_routes(app)) == {"/openapi.json"}
