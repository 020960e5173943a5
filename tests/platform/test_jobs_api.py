"""GET /api/jobs, POST /api/jobs/{name}/run, GET /api/retention/policies; the jobs CLI."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from safecity.cli import app as cli_app
from safecity.cli import main
from safecity.platform import jobs, jobs_cli, retention
from safecity.platform.jobs import JobContext, JobRun
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.conftest import City

pytestmark = pytest.mark.db

Actors = Callable[..., Any]


@pytest.fixture
def test_job() -> Iterator[list[str]]:
    """A job in the platform registry (removed afterwards) that records its run ids."""
    seen: list[str] = []

    def api_test_job(ctx: JobContext) -> int:
        """A job used by the API tests."""
        seen.append(ctx.run_id)
        return 3

    jobs.registry.register("test.api_job", api_test_job, every=timedelta(minutes=10))
    yield seen
    jobs.registry.unregister("test.api_job")


@pytest.fixture
def test_policy() -> Iterator[None]:
    def erase(*, session: Any, record_id: str) -> None:
        return None

    def find(*, session: Any, cutoff: Any, limit: int) -> list[retention.ExpiredRecord]:
        return []

    retention.policies.register(
        record_type="api_test_record",
        period=timedelta(days=30),
        find_expired=find,
        erase=erase,
        owner="tests",
        description="thirty days",
    )
    yield
    retention.policies.unregister("api_test_record")


@pytest.mark.usefixtures("test_job")
def test_admin_lists_jobs(client: TestClient, city: City, make_actor: Actors) -> None:
    admin = make_actor("admin", city.city)
    response = client.get("/api/jobs", headers=admin.headers)
    assert response.status_code == 200
    by_name = {j["name"]: j for j in response.json()}
    assert {"retention.enforce", "platform.prune", "test.api_job"} <= set(by_name)
    mine = by_name["test.api_job"]
    assert mine["every_seconds"] == 600
    assert mine["description"] == "A job used by the API tests."
    assert mine["last_run"] is None


def test_jobs_need_jobs_run(client: TestClient, city: City, make_actor: Actors) -> None:
    assert client.get("/api/jobs").status_code == 401
    for role in ("officer", "supervisor", "auditor", "analyst"):
        actor = make_actor(role, city.districts[0])
        for response in (
            client.get("/api/jobs", headers=actor.headers),
            client.post("/api/jobs/retention.enforce/run", headers=actor.headers),
        ):
            assert response.status_code == 403, (role, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")


def test_admin_runs_a_job_now(
    client: TestClient, runtime: Runtime, city: City, make_actor: Actors, test_job: list[str]
) -> None:
    admin = make_actor("admin", city.city)
    response = client.post("/api/jobs/test.api_job/run", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["status"], body["items"], body["trigger"]) == (
        "test.api_job",
        "succeeded",
        3,
        "manual",
    )
    assert test_job == [body["id"]]
    with runtime.sessions() as s:
        run = s.get(JobRun, body["id"])
        assert run is not None
        assert run.requested_by == admin.user_id
        audit_row = s.scalars(select(AuditEntry).where(AuditEntry.action == "jobs.run")).one()
        assert (audit_row.actor_id, audit_row.target_id) == (admin.user_id, body["id"])

    listed = {j["name"]: j for j in client.get("/api/jobs", headers=admin.headers).json()}
    assert listed["test.api_job"]["last_run"]["id"] == body["id"]
    history = client.get("/api/jobs/test.api_job/runs", headers=admin.headers)
    assert history.status_code == 200
    assert [r["id"] for r in history.json()] == [body["id"]]
    officer = make_actor("officer", city.stations[0])
    assert client.get("/api/jobs/test.api_job/runs", headers=officer.headers).status_code == 403
    assert client.get("/api/jobs/nope/runs", headers=admin.headers).status_code == 404


def test_unknown_job_is_404(client: TestClient, city: City, make_actor: Actors) -> None:
    admin = make_actor("admin", city.city)
    response = client.post("/api/jobs/no.such.job/run", headers=admin.headers)
    assert response.status_code == 404
    assert response.json()["detail"] == "no job named 'no.such.job'"
    bad = client.post("/api/jobs/bad%20name/run", headers=admin.headers)
    assert bad.status_code == 422


@pytest.mark.usefixtures("test_policy")
def test_retention_policies(client: TestClient, city: City, make_actor: Actors) -> None:
    admin = make_actor("admin", city.city)
    response = client.get("/api/retention/policies", headers=admin.headers)
    assert response.status_code == 200
    mine = next(p for p in response.json() if p["record_type"] == "api_test_record")
    assert mine == {
        "record_type": "api_test_record",
        "period_days": 30,
        "period_seconds": 30 * 86400,
        "owner": "tests",
        "description": "thirty days",
    }
    officer = make_actor("officer", city.stations[0])
    assert client.get("/api/retention/policies", headers=officer.headers).status_code == 403
    assert client.get("/api/retention/policies").status_code == 401


# -- CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli_runtime(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(jobs_cli, "build_runtime", lambda: runtime)
    return runtime


@pytest.mark.usefixtures("cli_runtime")
def test_cli_list_run_and_worker_once(test_job: list[str]) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    assert "retention.enforce" in listed.output
    assert "test.api_job" in listed.output

    ran = runner.invoke(cli_app, ["jobs", "run", "test.api_job"])
    assert ran.exit_code == 0, ran.output
    assert "test.api_job: succeeded (items=3" in ran.output
    assert len(test_job) == 1

    worker = runner.invoke(cli_app, ["jobs", "worker", "--once"])
    assert worker.exit_code == 0, worker.output
    assert "test.api_job: succeeded" in worker.output
    assert "retention.enforce: succeeded" in worker.output
    again = runner.invoke(cli_app, ["jobs", "worker", "--once"])
    assert "test.api_job" not in again.output  # this slot has run
    assert len(test_job) == 2


@pytest.mark.usefixtures("cli_runtime")
def test_cli_unknown_job_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["safecity", "jobs", "run", "no.such.job"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: no job named 'no.such.job'"
