"""Fixtures shared by the registry and verification tests (import them into a test file)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from safecity.eservices import registry
from safecity.eservices.registry import CertificateRead
from safecity.platform.runtime import Runtime
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.security.rbac import Principal

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CLAIMS: dict[str, Any] = {
    "family_name": "王",
    "given_name": "小明",
    "birthdate": "1990-05-17",
    "id_number": "310101199005171234",
    "attributes": {"result": "无犯罪记录", "query_scope": "全国", "purpose": "就业"},
}


@dataclass
class People:
    citizen: Any  # tests.conftest.Actor
    other: Any
    officer: Any
    supervisor: Any
    outsider: Any  # a supervisor of the other district
    auditor: Any
    station_id: str


def principal(session: Session, actor: Any) -> Principal:
    user = session.get(User, actor.user_id)
    assert user is not None
    return principal_for(session=session, user=user, auth_method="token")


@pytest.fixture
def people(city: Any, make_actor: Any) -> People:
    st, far = city.stations[0], city.stations[2]
    return People(
        citizen=make_actor("citizen", city.city),
        other=make_actor("citizen", city.city),
        officer=make_actor("officer", st),
        supervisor=make_actor("supervisor", st),
        outsider=make_actor("supervisor", far),
        auditor=make_actor("auditor", city.city),
        station_id=st.id,
    )


def issue(
    runtime: Runtime,
    people: People,
    *,
    application_id: str = "app-0001",
    now: datetime = NOW,
    claims: dict[str, Any] | None = None,
) -> CertificateRead:
    with runtime.sessions.begin() as s:
        return registry.issue_for_application(
            session=s,
            principal=principal(s, people.officer),
            application_id=application_id,
            item_code="no-criminal-record",
            holder_user_id=people.citizen.user_id,
            claims=claims or CLAIMS,
            org_id=people.station_id,
            now=now,
        )
