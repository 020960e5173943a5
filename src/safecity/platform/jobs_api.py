"""Routes for scheduled jobs and retention policies (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from safecity.platform import jobs, retention
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security import audit
from safecity.security.rbac import Principal, require

router = APIRouter(tags=["jobs"])


class JobRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    trigger: str
    slot: datetime | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    error: str | None
    items: int | None


class JobRead(BaseModel):
    name: str
    description: str
    every_seconds: int
    enabled: bool
    last_run: JobRunRead | None
    next_due: datetime


class RetentionPolicyRead(BaseModel):
    record_type: str
    period_days: int
    period_seconds: int
    owner: str
    description: str


JobName = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.get("/api/jobs", response_model=list[JobRead])
def list_jobs(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(require("jobs:run"))],
) -> list[JobRead]:
    """Registered jobs with their last run and when they are next due."""
    jobs.load_job_modules()
    scheduler = jobs.Scheduler(get_runtime(request))
    return [
        JobRead(
            name=st.job.name,
            description=st.job.description,
            every_seconds=int(st.job.every.total_seconds()),
            enabled=st.job.enabled,
            last_run=JobRunRead.model_validate(st.last_run) if st.last_run else None,
            next_due=st.next_due,
        )
        for st in scheduler.statuses(session)
    ]


@router.get("/api/jobs/{name}/runs", response_model=list[JobRunRead])
def list_job_runs(
    name: JobName,
    session: DbSession,
    principal: Annotated[Principal, Depends(require("jobs:run"))],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[JobRunRead]:
    """The job's most recent runs, newest first."""
    jobs.load_job_modules()
    jobs.registry.get(name)
    runs = jobs.recent_runs(session, name=name, limit=limit)
    return [JobRunRead.model_validate(run) for run in runs]


@router.post("/api/jobs/{name}/run", response_model=JobRunRead)
def run_job(
    name: JobName,
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(require("jobs:run"))],
) -> JobRunRead:
    """Run a job now, outside its schedule (409 while it runs elsewhere)."""
    jobs.load_job_modules()
    scheduler = jobs.Scheduler(get_runtime(request))
    scheduler.jobs.get(name)  # 404 before anything else
    # The job writes in its own transactions; end the request's one first, since SQLite
    # has a single writer and the request may already hold it (e.g. token bookkeeping).
    session.commit()
    outcome = scheduler.run_now(name, requested_by=principal.id)
    audit.record(
        session,
        principal=principal,
        action="jobs.run",
        target_type="job",
        target_id=outcome.run_id,
        detail={"job": name, "status": outcome.status},
    )
    run = session.get(jobs.JobRun, outcome.run_id)
    assert run is not None
    return JobRunRead.model_validate(run)


@router.get("/api/retention/policies", response_model=list[RetentionPolicyRead])
def list_retention_policies(
    principal: Annotated[Principal, Depends(require("retention:run"))],
) -> list[RetentionPolicyRead]:
    """Retention period of every record type that has one."""
    jobs.load_job_modules()
    return [
        RetentionPolicyRead(
            record_type=p.record_type,
            period_days=p.period.days,
            period_seconds=int(p.period.total_seconds()),
            owner=p.owner,
            description=p.description,
        )
        for p in retention.policies.all()
    ]
