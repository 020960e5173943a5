"""Audit rows written during an API request carry that request's id."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.conftest import City

pytestmark = pytest.mark.db


def test_audit_row_carries_the_request_id(
    client: TestClient,
    city: City,
    make_actor,
    runtime: Runtime,  # type: ignore[no-untyped-def]
) -> None:
    admin = make_actor("admin", city.city)
    station = city.stations[0]
    r = client.patch(
        f"/api/orgs/{station.id}",
        json={"name_en": "Renamed station"},
        headers={**admin.headers, "X-Request-ID": "req-audit-42"},
    )
    assert r.status_code == 200, r.text
    with runtime.sessions() as s:
        rows = s.scalars(
            select(AuditEntry).where(
                AuditEntry.target_id == station.id, AuditEntry.actor_id == admin.user_id
            )
        ).all()
    assert rows, "the change was not audited"
    assert {row.request_id for row in rows} == {"req-audit-42"}
