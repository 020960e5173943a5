"""Alembic: one head, upgrade and one-step downgrade on the test backend, models == schema."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from safecity.platform import migrations
from safecity.platform.db import Base, make_engine
from tests.conftest import PG_ADMIN_URL, SERVICES, service_unavailable

pytestmark = pytest.mark.db


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    if not SERVICES:
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    name = f"safecity_migrate_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_unavailable("PostgreSQL", str(exc).splitlines()[0])
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_exactly_one_head() -> None:
    heads = migrations.heads()
    assert len(heads) == 1, f"Alembic has {len(heads)} heads: {heads}"


def test_upgrade_matches_models_and_downgrade_one_step(empty_database_url: str) -> None:
    migrations.upgrade("head", database_url=empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        tables_at_head = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables_at_head

        migrations.downgrade("-1", database_url=empty_database_url)
        migrations.upgrade("head", database_url=empty_database_url)
        assert set(inspect(engine).get_table_names()) == tables_at_head
    finally:
        engine.dispose()
