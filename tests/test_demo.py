"""`safecity demo` seeds a city and users of every role who can log in; reruns are safe."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from safecity.cases import portal
from safecity.demo import DEMO_USERS, prepare
from safecity.orgs.models import Org
from safecity.platform.db import make_engine, make_session_factory, utcnow
from safecity.platform.runtime import Runtime
from safecity.security import totp
from safecity.security.auth import login
from safecity.security.models import User
from safecity.settings import Settings


@pytest.fixture
def demo_runtime(tmp_path: Path) -> Runtime:
    settings = Settings(var_dir=tmp_path / "var", key_dir=tmp_path / "keys", log_json=False)
    engine = make_engine(settings.effective_database_url)
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))


def test_demo_seeds_every_role_and_admin_logs_in(demo_runtime: Runtime) -> None:
    setup = prepare(demo_runtime)
    logins = setup.logins
    people_roles = {"citizen", "officer", "supervisor", "analyst", "department_staff"}
    assert {login_.role for login_ in logins} == people_roles | {"auditor", "admin"}
    admin = next(x for x in logins if x.username == "admin")
    assert admin.totp_secret is not None
    with demo_runtime.sessions.begin() as s:
        districts = s.scalar(select(func.count()).select_from(Org).where(Org.kind == "district"))
        assert districts == 16
        principal, token = login(
            session=s,
            username="admin",
            password=admin.password,
            totp_code=totp.code_at(admin.totp_secret, utcnow()),
            settings=demo_runtime.settings,
        )
        assert "admin" in principal.roles
        assert token

    assert setup.lookup is not None  # the printed case number + code open the portal
    with demo_runtime.sessions.begin() as s:
        case = portal.verify(
            s, client="t", number=setup.lookup.number, code=setup.lookup.code, action="test"
        )
        assert case is not None
        assert case.state == "registered"

    rerun = prepare(demo_runtime)  # a second run resets passwords, creates no user
    again = rerun.logins
    assert again[0].password != admin.password
    assert rerun.lookup is not None
    assert rerun.lookup.number != setup.lookup.number
    with demo_runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(User)) == len(DEMO_USERS)
    demo_runtime.close()
