"""Shared fixtures.

Backends: by default every test runs on SQLite and the in-process bus. With
``SAFECITY_TEST_SERVICES=1`` (set by ``make test`` for its second pass when ``CI=true``)
tests marked ``db`` or ``bus`` run on PostgreSQL and NATS JetStream instead; each run
creates its own randomly named database (and stream names) and drops them at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

import safecity.models  # noqa: F401  (registers every table)
from safecity.app import create_app
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.db import Base, make_engine, make_session_factory
from safecity.platform.runtime import Runtime
from safecity.security.auth import issue_token
from safecity.security.models import User, UserRole
from safecity.settings import Settings

SERVICES = os.environ.get("SAFECITY_TEST_SERVICES") == "1"
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "SAFECITY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("SAFECITY_TEST_NATS_URL", "nats://127.0.0.1:4222")
RUN_TOKEN = secrets.token_hex(4)


def service_unavailable(what: str, reason: str) -> None:
    """Skip on a developer machine without the service; fail in CI."""
    message = f"{what} is not reachable ({reason})"
    if IN_CI or SERVICES:
        pytest.fail(message + " — required when CI=true")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Cheap argon2id parameters keep the tests fast; production uses RFC 9106's."""
    from safecity.security import passwords

    previous = passwords.configure(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords.configure(**previous)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not SERVICES:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    name = f"safecity_test_{RUN_TOKEN}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_unavailable("PostgreSQL", str(exc).splitlines()[0])
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def schema_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        bus_url=NATS_URL if SERVICES else "memory://",
        bus_stream_prefix=f"SCTEST_{RUN_TOKEN}",
        key_dir=tmp_path / "keys",
        log_json=False,
    )


@pytest.fixture
def runtime(settings: Settings, schema_engine: Engine) -> Iterator[Runtime]:
    _truncate(schema_engine)
    rt = Runtime(
        settings=settings, engine=schema_engine, sessions=make_session_factory(schema_engine)
    )
    return rt


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as s:
        yield s


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(runtime=runtime)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@dataclass
class City:
    """A small org tree: the city, two districts, two stations each, one department."""

    city: Org
    districts: list[Org]
    stations: list[Org]
    department: Org


@pytest.fixture
def city(runtime: Runtime) -> City:
    with runtime.sessions.begin() as s:
        root = orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
        districts, stations = [], []
        for d in ("hp", "pd"):
            dist = orgs.create(
                session=s,
                code=d,
                kind="district",
                name_zh=f"{d}区",
                name_en=f"District {d}",
                parent_id=root.id,
            )
            districts.append(dist)
            for n in (1, 2):
                stations.append(
                    orgs.create(
                        session=s,
                        code=f"{d}-s{n}",
                        kind="station",
                        name_zh=f"{d}派出所{n}",
                        name_en=f"{d} station {n}",
                        parent_id=dist.id,
                    )
                )
        dept = orgs.create(
            session=s,
            code="sanitation",
            kind="department",
            name_zh="绿化市容局",
            name_en="Sanitation",
            parent_id=root.id,
            service_codes=["litter"],
        )
        return City(city=root, districts=districts, stations=stations, department=dept)


@dataclass
class Actor:
    user_id: str
    username: str
    org_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_actor(runtime: Runtime):  # type: ignore[no-untyped-def]
    """``make_actor(role, org)`` → an active user with that role and a bearer token."""

    def make(role: str, org: Org, *, username: str | None = None, kind: str = "user") -> Actor:
        with runtime.sessions.begin() as s:
            user = User(
                username=username or f"{role}-{org.code}-{secrets.token_hex(3)}",
                display_name=role,
                kind=kind,
                org_id=org.id,
            )
            s.add(user)
            s.flush()
            s.add(UserRole(user_id=user.id, role=role))
            token = issue_token(session=s, user_id=user.id, name="test")
            return Actor(user_id=user.id, username=user.username, org_id=org.id, token=token)

    return make
