"""Public-data guard: seed canary personal data, then prove no public response shows it.

Use it on every public surface (HTML, JSON, XML, SSE, error pages)::

    from tests.publicguard import CANARIES, assert_no_canary, seed_canaries

    def test_portal_hides_people(runtime, client):
        seed_canaries(runtime)               # name, phone, ID number, flat number
        assert_no_canary(client.get("/portal/reports"))

``seed_canaries`` runs every registered **seeder** (a function ``(session, canaries) ->
Seeded | None`` decorated with :func:`canary_seeder`) in its own transaction. The core
seeder here puts the name, phone number and ID number on a user through
``safecity.security.service``; a domain that stores personal data adds its own seeder in
``tests/<area>/canaries.py`` (found and imported automatically), writing the canaries
through its service functions — e.g. a case whose reporter is ``canaries.name``, phone
``canaries.phone`` and address ``canaries.flat`` — and returns the ids public pages take
(``Seeded(path_values={"tracking_code": [...]})``) so that :func:`walk_public_routes` can
fill path parameters with real records.

:func:`assert_no_canary` looks for each canary as written, HTML-unescaped (``&#x5F20;``),
JSON-unescaped (``\\u5f20``), URL-decoded, and, for the phone and ID numbers, with spaces,
dashes or dots between the digits; masked forms (``139****5678``) pass.

:func:`walk_public_routes` GETs every route whose dependencies include ``public``
(``__safecity_public__``), with real and bogus path values and malformed query values (so
404 and 422 pages are checked too), plus unknown paths under each area, following
redirects. It drives the ASGI app directly and stops reading a streaming response (SSE)
after a short while, so an endless event stream cannot hang the test.
"""

from __future__ import annotations

import asyncio
import html
import importlib
import inspect
import json
import random
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session
from starlette.routing import Mount

from safecity.platform.runtime import Runtime
from safecity.security.rbac import PUBLIC_ATTR

# --------------------------------------------------------------------------- canaries

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_GIVEN = "翎瑶骞琨珩璟芃婕翊昶旻暄霁晞"  # uncommon given-name characters


def id_check_digit(first17: str) -> str:
    """GB 11643 check character of an 18-character resident ID number."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class Canaries:
    """Unique fake personal values; any of them in a public response is a leak."""

    name: str  # Chinese name, e.g. 司徒翎瑶
    name_en: str  # its romanised form with a unique tag
    phone: str  # mainland mobile number, 11 digits
    id_number: str  # 18-character resident ID number with a valid check character
    flat: str  # street address down to the flat

    @classmethod
    def generate(cls, seed: int | None = None) -> Canaries:
        rnd = random.Random(seed if seed is not None else secrets.randbits(64))
        surname = rnd.choice(["司徒", "欧阳", "诸葛", "上官", "皇甫", "令狐"])
        given = "".join(rnd.sample(_GIVEN, 2))
        tag = "".join(rnd.choice("bcdfghjkmnpqrstvwxz") for _ in range(6))
        phone = "1" + rnd.choice("3456789") + "".join(rnd.choice("0123456789") for _ in range(9))
        born = date(1950, 1, 1) + timedelta(days=rnd.randrange(365 * 55))
        first17 = f"310101{born:%Y%m%d}{rnd.randrange(1000):03d}"
        lane, number, room = (
            rnd.randrange(100, 999),
            rnd.randrange(1, 99),
            rnd.randrange(1001, 3299),
        )
        flat = f"金雀路{lane}弄{number}号{room}室"
        return cls(
            name=surname + given,
            name_en=f"Canary {tag.capitalize()}",
            phone=phone,
            id_number=first17 + id_check_digit(first17),
            flat=flat,
        )

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "name_en": self.name_en,
            "phone": self.phone,
            "id_number": self.id_number,
            "flat": self.flat,
        }

    @property
    def username(self) -> str:
        """A login name derived from the canaries (itself a canary: the phone number)."""
        return self.phone


CANARIES = Canaries.generate()
"""This test run's canaries (random per run; :meth:`Canaries.generate` with a seed for more)."""


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    """What a seeder made that public routes can be asked about."""

    path_values: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: Seeded | None) -> None:
        if other is None:
            return
        for name, values in other.path_values.items():
            self.path_values.setdefault(name, []).extend(values)


Seeder = Callable[[Session, Canaries], "Seeded | None"]
_SEEDERS: dict[str, Seeder] = {}


def canary_seeder(name: str) -> Callable[[Seeder], Seeder]:
    """Register a seeder (``@canary_seeder("cases")``); it must use service functions."""

    def register(fn: Seeder) -> Seeder:
        _SEEDERS[name] = fn
        return fn

    return register


def _discover() -> None:
    tests_dir = Path(__file__).resolve().parent
    for path in sorted(tests_dir.glob("*/canaries.py")):
        importlib.import_module(f"tests.{path.parent.name}.canaries")


@canary_seeder("security.users")
def _seed_user(session: Session, canaries: Canaries) -> Seeded:
    from safecity.orgs import service as orgs
    from safecity.security import audit
    from safecity.security import service as users

    tag = secrets.token_hex(4)
    city = orgs.create(
        session=session,
        code=f"canary-{tag}",
        kind="city",
        name_zh="金丝雀市",
        name_en="Canary City",
    )
    district = orgs.create(
        session=session,
        code=f"canary-{tag}-district",
        kind="district",
        name_zh="金丝雀区",
        name_en="Canary District",
        parent_id=city.id,
    )
    change = users.create_user(
        session=session,
        actor=audit.SYSTEM,
        username=canaries.username,
        org_id=district.id,
        roles=["citizen"],
        display_name=canaries.name,
        oidc_subject=canaries.id_number,
    )
    return Seeded(
        path_values={"user_id": [change.user.id], "org_id": [district.id, city.id]},
    )


def seed_canaries(runtime: Runtime, canaries: Canaries = CANARIES) -> Seeded:
    """Run every registered seeder, each in its own transaction (once per database: the
    canaries are unique values)."""
    _discover()
    seeded = Seeded()
    for _name, seeder in sorted(_SEEDERS.items()):
        with runtime.sessions.begin() as session:
            seeded.merge(seeder(session, canaries))
    return seeded


# --------------------------------------------------------------------------- detection

_SEPARATORS = r"[\s\-.\u00a0]?"


def _digit_pattern(number: str) -> re.Pattern[str]:
    parts = [
        re.escape(ch) if ch.isdigit() else "[" + ch.lower() + ch.upper() + "]" for ch in number
    ]
    return re.compile(_SEPARATORS.join(parts))


def _json_unescape(text: str) -> str:
    def pair(match: re.Match[str]) -> str:
        try:
            decoded: str = json.loads('"' + match.group(0) + '"')
            return decoded
        except ValueError:
            return match.group(0)

    return re.sub(r"(?:\\u[0-9a-fA-F]{4})+", pair, text)


def _variants(text: str) -> Iterator[str]:
    yield text
    unescaped = html.unescape(text)
    yield unescaped
    yield _json_unescape(unescaped)
    yield unquote(text)
    yield unquote(_json_unescape(unescaped), errors="replace")


def _as_text(subject: Any) -> str:
    if isinstance(subject, str):
        return subject
    if isinstance(subject, bytes | bytearray):
        return bytes(subject).decode("utf-8", errors="replace")
    if isinstance(subject, dict | list):
        return json.dumps(subject, ensure_ascii=False)
    content = getattr(subject, "content", None)
    headers = getattr(subject, "headers", None)
    if isinstance(content, bytes | bytearray):
        head = ""
        if headers is not None:
            items = headers.items() if hasattr(headers, "items") else headers
            head = "\n".join(f"{k}: {v}" for k, v in items)
        return head + "\n\n" + bytes(content).decode("utf-8", errors="replace")
    raise TypeError(f"cannot check a {type(subject).__name__} for canaries")


def find_canaries(subject: Any, canaries: Canaries = CANARIES) -> list[str]:
    """Which canaries (by kind) appear in ``subject`` (text, bytes, JSON data or a response)."""
    text = _as_text(subject)
    found: list[str] = []
    variants = list(_variants(text))
    for kind, value in canaries.values().items():
        if kind in ("phone", "id_number"):
            pattern = _digit_pattern(value)
            hit = any(pattern.search(v) for v in variants)
        else:
            hit = any(value in v or value.lower() in v.lower() for v in variants)
        if hit:
            found.append(kind)
    return found


def assert_no_canary(subject: Any, canaries: Canaries = CANARIES, *, where: str = "") -> None:
    """Fail if any canary appears in ``subject`` (a response's body and headers, text,
    bytes or JSON data)."""
    found = find_canaries(subject, canaries)
    if found:
        label = where or getattr(getattr(subject, "request", None), "url", "") or "response"
        raise AssertionError(f"personal data leaked in {label}: canary {', '.join(found)}")


# --------------------------------------------------------------------------- walking


@dataclass
class Fetched:
    """One response, read directly from the ASGI app (``truncated``: a stream cut short)."""

    path: str
    status: int
    headers: list[tuple[str, str]]
    content: bytes
    truncated: bool = False

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "content-type"), "")

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


async def _fetch(
    app: Any, target: str, *, headers: dict[str, str], timeout: float, max_bytes: int
) -> Fetched:
    parts = urlsplit(target)
    raw_path = parts.path or "/"
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1", errors="replace"),
        "root_path": "",
        "query_string": parts.query.encode("latin-1", errors="replace"),
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    status = 0
    got: list[tuple[str, str]] = []
    body = bytearray()
    finished = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            got.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if not message.get("more_body", False) or len(body) >= max_bytes:
                finished.set()

    task = asyncio.ensure_future(app(scope, receive, send))
    truncated = False
    try:
        await asyncio.wait_for(_wait_either(finished, task), timeout)
    except TimeoutError:
        truncated = True
    finally:
        finished.set()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    truncated = truncated or len(body) >= max_bytes
    return Fetched(target, status, got, bytes(body), truncated)


async def _wait_either(event: asyncio.Event, task: asyncio.Future[Any]) -> None:
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def fetch(
    app: Any,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
    max_bytes: int = 512 * 1024,
    follow_redirects: int = 5,
) -> list[Fetched]:
    """GET ``path`` from ``app`` (following local redirects); every hop's response."""

    async def run() -> list[Fetched]:
        hops: list[Fetched] = []
        target = path
        for _ in range(follow_redirects + 1):
            fetched = await _fetch(
                app, target, headers=headers or {}, timeout=timeout, max_bytes=max_bytes
            )
            hops.append(fetched)
            location = fetched.location
            if not (300 <= fetched.status < 400 and location):
                break
            parts = urlsplit(location)
            if parts.netloc and parts.netloc != "testserver":
                break
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        return hops

    return asyncio.run(run())


def is_public(route: Any) -> bool:
    """Whether ``route`` is marked public (a ``public`` dependency, or the marker on it)."""
    if getattr(route, PUBLIC_ATTR, False):
        return True
    stack = [getattr(route, "dependant", None)]
    while stack:
        current = stack.pop()
        if current is None:
            continue
        call = getattr(current, "call", None)
        if call is not None and getattr(inspect.unwrap(call), PUBLIC_ATTR, False):
            return True
        stack.extend(getattr(current, "dependencies", None) or [])
    return False


@dataclass(frozen=True)
class PublicRoute:
    path: str
    dependant: Any

    @property
    def query_names(self) -> list[str]:
        names: list[str] = []
        stack = [self.dependant]
        while stack:
            current = stack.pop()
            for param in getattr(current, "query_params", None) or []:
                alias = getattr(param, "alias", None) or getattr(param, "name", None)
                if isinstance(alias, str) and alias not in names:
                    names.append(alias)
            stack.extend(getattr(current, "dependencies", None) or [])
        return names


def public_get_routes(app: FastAPI) -> list[PublicRoute]:
    """Every GET route marked public, as mounted (included routers and prefixes applied)."""
    found: list[PublicRoute] = []
    for context in iter_route_contexts(list(app.routes)):
        effective: Any = context._effective_route
        methods = getattr(effective, "methods", None) or set()
        dependant = getattr(effective, "dependant", None)
        path = getattr(effective, "path", None)
        if dependant is None or "GET" not in methods or not isinstance(path, str):
            continue
        if is_public(effective) or is_public(context.original_route):
            found.append(PublicRoute(path, dependant))
    return found


_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def _fill(path: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: quote(values[m.group(1)], safe=""), path)


def _targets(route: PublicRoute, seeded: Seeded) -> Iterator[str]:
    names = _PARAM.findall(route.path)
    bogus = {n: f"no-such-{secrets.token_hex(4)}" for n in names}
    yield _fill(route.path, bogus)  # 404 (or 422 for typed parameters)
    if names:
        real = {n: seeded.path_values.get(n, []) for n in names}
        if all(real.values()):
            for i in range(max(len(v) for v in real.values())):
                yield _fill(route.path, {n: v[i % len(v)] for n, v in real.items()})
    base = _fill(route.path, bogus) if names else route.path
    for name in route.query_names:
        # A value no typed parameter accepts: 422 pages are checked too.
        yield base + "?" + urlencode({name: "\x7fnot-valid"})


def _error_probe_paths(app: FastAPI) -> list[str]:
    token = secrets.token_hex(4)
    prefixes = {"/", "/api/", "/console/"}
    for context in iter_route_contexts(list(app.routes)):
        path = str(getattr(context._effective_route, "path", "") or "")
        segments = [s for s in path.strip("/").split("/") if s and "{" not in s][:2]
        for depth in range(1, len(segments) + 1):
            prefixes.add("/" + "/".join(segments[:depth]) + "/")
        if isinstance(context.original_route, Mount) and is_public(context.original_route):
            prefixes.add(path.rstrip("/") + "/")
    probes = sorted(f"{p}no-such-page-{token}" for p in prefixes)
    return [*probes, f"/api/no-such-{token}.xml", f"/api/no-such-{token}?format=xml"]


# Each target is fetched as an API client and as a browser (HTML error pages).
ACCEPTS = ("application/json", "text/html,application/xhtml+xml,*/*;q=0.8")


@dataclass
class WalkReport:
    checked: list[Fetched] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)

    @property
    def statuses(self) -> set[int]:
        return {f.status for f in self.checked}


def walk_public_routes(
    app: FastAPI,
    seeded: Seeded | None = None,
    canaries: Canaries = CANARIES,
    *,
    extra_paths: Iterable[str] = (),
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
) -> WalkReport:
    """GET every public route (real and bogus path values, bad query values), unknown paths
    and ``extra_paths``; assert no canary in any response (a stream is read for at most
    ``timeout`` seconds). Returns what was checked."""
    seeded = seeded or Seeded()
    report = WalkReport()
    targets: list[str] = []
    for route in public_get_routes(app):
        report.routes.append(route.path)
        targets.extend(_targets(route, seeded))
    targets.extend(_error_probe_paths(app))
    targets.extend(extra_paths)
    for target in targets:
        for accept in ACCEPTS:
            for hop in fetch(
                app, target, headers={"accept": accept, **(headers or {})}, timeout=timeout
            ):
                assert_no_canary(
                    hop, canaries, where=f"GET {hop.path} ({hop.status} {hop.content_type})"
                )
                report.checked.append(hop)
    return report
