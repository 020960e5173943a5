"""Each role against every parameterless GET route of the API: the declared permission
decides — holders get an answer (2xx), everyone else 403, nobody a 5xx.

Complements the per-family tests (users, orgs, audit, jobs, notifications), which also
check out-of-scope 404s and in-scope lists.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from safecity.app import create_app
from safecity.platform.runtime import Runtime
from safecity.security.rbac import PERMISSION_ATTR, ROLE_PERMISSIONS
from tests.conftest import City

pytestmark = pytest.mark.db

HUMAN_ROLES = (
    "citizen",
    "officer",
    "supervisor",
    "analyst",
    "department_staff",
    "auditor",
    "admin",
)


def _permission(route: Any) -> str | None:
    stack = [route.dependant]
    while stack:
        current = stack.pop()
        call = getattr(current, "call", None)
        if call is not None:
            perm = getattr(inspect.unwrap(call), PERMISSION_ATTR, None)
            if perm:
                return str(perm)
        stack.extend(getattr(current, "dependencies", None) or [])
    return None


def _get_routes(runtime: Runtime) -> list[tuple[str, str]]:
    app = create_app(runtime=runtime)
    found = []
    for context in iter_route_contexts(list(app.routes)):
        route: Any = context._effective_route
        if not isinstance(context.original_route, APIRoute):
            continue
        path = str(route.path)
        if "GET" not in (route.methods or set()) or "{" in path or not path.startswith("/api/"):
            continue
        perm = _permission(route)
        if perm is not None:
            found.append((path, perm))
    return sorted(set(found))


def test_every_role_gets_what_its_permissions_say(
    client: TestClient, city: City, make_actor: Any, runtime: Runtime
) -> None:
    routes = _get_routes(runtime)
    assert len(routes) >= 8, routes  # the walk really finds the API's list routes
    home = {"admin": city.city, "auditor": city.city, "department_staff": city.department}
    failures = []
    for role in HUMAN_ROLES:
        actor = make_actor(role, home.get(role, city.stations[0]))
        for path, perm in routes:
            r = client.get(path, headers=actor.headers)
            allowed = perm in ROLE_PERMISSIONS[role]
            if r.status_code >= 500:
                failures.append(f"{role} GET {path}: {r.status_code}")
            elif allowed and not 200 <= r.status_code < 300:
                failures.append(f"{role} GET {path} ({perm}): expected 2xx, got {r.status_code}")
            elif not allowed and r.status_code != 403:
                failures.append(f"{role} GET {path} ({perm}): expected 403, got {r.status_code}")
            elif not allowed:
                assert r.headers["content-type"].startswith("application/problem+json")
    assert failures == []
