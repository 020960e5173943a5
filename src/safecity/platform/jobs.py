"""Scheduled jobs: each due job runs once per slot, however many processes run the scheduler.

A domain registers a job at import time (in its ``jobs.py``, listed in
:data:`JOB_MODULES`)::

    @jobs.job("cases.sla_check", every=timedelta(minutes=5))
    def sla_check(ctx: jobs.JobContext) -> int:
        ...  # use ctx.session (committed when the job returns) or ctx.runtime.sessions
        return items_processed

Schedule: ``every`` is cron-like, aligned to the clock (``every=5 min`` runs in the slots
00:00, 00:05, …; ``offset`` shifts them, e.g. daily at 02:00 UTC). A job is due when its
current slot has no run yet. Running a job:

1. a process-local lock, and on PostgreSQL a session-level ``pg_try_advisory_lock`` keyed
   by the job name, so a job never runs twice at the same time across processes (a busy
   lock means "running elsewhere": the scheduler skips, "run now" answers 409);
2. the slot is claimed by inserting a ``job_runs`` row (unique on job name + slot), so two
   runners that both saw the slot free cannot both run it;
3. the job function runs in its own transaction, committed on success, rolled back on
   error; the run row then records the outcome (succeeded, partial, failed).

On SQLite (one process by default) steps 1 and 2 reduce to the local lock and the claim.
A run left "running" by a crashed process is marked "abandoned" by the next process that
holds the PostgreSQL lock.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from safecity.platform.db import ID, Base, UTCDateTime, is_postgres, new_id, transaction, utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import Principal

log = logging.getLogger("safecity.jobs")

# Modules that register jobs (and retention policies) when imported. Domains append theirs.
JOB_MODULES: tuple[str, ...] = (
    "safecity.platform.retention",
    "safecity.platform.notify",
    "safecity.alerts.jobs",
    "safecity.disputes.jobs",
    "safecity.sensing.jobs",
    "safecity.fraud.jobs",
    "safecity.accidents.insurers",
    "safecity.accidents.jobs",
    "safecity.eservices.jobs",
    "safecity.cases.jobs",
    "safecity.cases.reviews_jobs",
    "safecity.crowd.jobs_ingest",
    "safecity.crowd.jobs",
    "safecity.linkage.jobs",
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ERROR_CHARS = 2000

RunStatus = Literal["running", "succeeded", "partial", "failed", "abandoned"]
Trigger = Literal["schedule", "manual"]


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("name", "slot"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    items: Mapped[int | None] = mapped_column(Integer, default=None)
    worker: Mapped[str] = mapped_column(String(120), default="")
    requested_by: Mapped[str | None] = mapped_column(String(64), default=None)


@dataclass
class JobContext:
    """What a job function gets.

    ``session`` is committed when the function returns (rolled back if it raises). A job
    that wants one transaction per item (so one bad item does not undo the rest) opens
    them with ``transaction(ctx.runtime.sessions)`` instead, and then should not write
    through ``session`` as well (SQLite has a single writer).
    """

    runtime: Runtime
    session: Session
    name: str
    run_id: str
    now: datetime
    trigger: Trigger
    principal: Principal = audit.SYSTEM
    failures: list[str] = field(default_factory=list)

    def fail_item(self, message: str) -> None:
        """Note a per-item failure; the run ends "partial" instead of "succeeded"."""
        self.failures.append(message)


JobFunc = Callable[[JobContext], int | None]


@dataclass(frozen=True)
class Job:
    name: str
    func: JobFunc
    every: timedelta
    offset: timedelta = timedelta(0)
    description: str = ""
    enabled: bool = True

    def slot_at(self, now: datetime) -> datetime:
        """Start of the slot containing ``now`` (slots are aligned to the epoch + offset)."""
        step = self.every.total_seconds()
        since = (now - EPOCH - self.offset).total_seconds()
        index = int(since // step)
        return EPOCH + self.offset + timedelta(seconds=index * step)


def parse_interval(spec: str) -> timedelta:
    """``"30s"``, ``"5m"``, ``"2h"``, ``"1d"`` or ``"*/5"`` (cron: every 5 minutes)."""
    s = spec.strip().lower()
    if s.startswith("*/"):
        s = s[2:] + "m"
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if len(s) >= 2 and s[-1] in units and s[:-1].isdigit() and int(s[:-1]) > 0:
        return timedelta(**{units[s[-1]]: int(s[:-1])})
    raise InvalidInput(f"interval {spec!r} is not like 30s, 5m, 2h, 1d or */5")


class JobRegistry:
    """Jobs by name. The module-level :data:`registry` is the one the platform runs."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def register(
        self,
        name: str,
        func: JobFunc,
        *,
        every: timedelta | str,
        offset: timedelta = timedelta(0),
        description: str = "",
        enabled: bool = True,
    ) -> Job:
        interval = parse_interval(every) if isinstance(every, str) else every
        if interval.total_seconds() < 1:
            raise ValueError(f"job {name!r}: interval must be at least one second")
        if not name or len(name) > 120:
            raise ValueError("job name must be 1-120 characters")
        job = Job(
            name=name,
            func=func,
            every=interval,
            offset=offset,
            description=description or (func.__doc__ or "").strip().split("\n")[0],
            enabled=enabled,
        )
        existing = self._jobs.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"job {name!r} is already registered with another function")
        self._jobs[name] = job
        return job

    def job(
        self, name: str, *, every: timedelta | str, offset: timedelta = timedelta(0)
    ) -> Callable[[JobFunc], JobFunc]:
        """Decorator form of :meth:`register`."""

        def decorate(func: JobFunc) -> JobFunc:
            self.register(name, func, every=every, offset=offset)
            return func

        return decorate

    def unregister(self, name: str) -> None:
        self._jobs.pop(name, None)

    def get(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise NotFound(f"no job named {name!r}") from None

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.name)


registry = JobRegistry()
register = registry.register
job = registry.job


def load_job_modules() -> None:
    """Import every module in :data:`JOB_MODULES` so their jobs are registered."""
    for module in JOB_MODULES:
        importlib.import_module(module)


@dataclass(frozen=True)
class RunOutcome:
    """What happened when a runner looked at a job."""

    name: str
    status: RunStatus | Literal["skipped"]
    run_id: str | None = None
    items: int | None = None
    error: str | None = None
    reason: str | None = None  # why skipped: "locked" | "claimed" | "not due"


@dataclass(frozen=True)
class JobStatus:
    job: Job
    last_run: JobRun | None
    next_due: datetime


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock``."""
    digest = hashlib.sha256(b"safecity.job:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_LOCAL_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


def _local_lock(runtime: Runtime, name: str) -> threading.Lock:
    key = (runtime.engine.url.render_as_string(hide_password=True), name)
    with _LOCAL_LOCKS_GUARD:
        return _LOCAL_LOCKS.setdefault(key, threading.Lock())


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:120]


def last_runs(session: Session, names: list[str] | None = None) -> dict[str, JobRun]:
    """The most recent run of each job (by start time)."""
    latest = select(JobRun.name, func.max(JobRun.started_at).label("started")).group_by(JobRun.name)
    if names is not None:
        latest = latest.where(JobRun.name.in_(names))
    sub = latest.subquery()
    rows = session.scalars(
        select(JobRun).join(sub, (JobRun.name == sub.c.name) & (JobRun.started_at == sub.c.started))
    )
    return {run.name: run for run in rows}


def recent_runs(session: Session, *, name: str, limit: int = 20) -> list[JobRun]:
    return list(
        session.scalars(
            select(JobRun)
            .where(JobRun.name == name)
            .order_by(JobRun.started_at.desc(), JobRun.id)
            .limit(limit)
        )
    )


def prune_runs(
    session: Session, *, finished_before: datetime, idle_before: datetime | None = None
) -> int:
    """Delete finished job runs older than ``finished_before``, and runs that succeeded
    with nothing to do (``items == 0``) older than ``idle_before``; returns the count.

    Frequent jobs (a delivery queue polled every few seconds) mostly find nothing to do;
    their idle runs say nothing after a day and would fill the table.
    """
    old = JobRun.finished_at.is_not(None) & (JobRun.finished_at < finished_before)
    if idle_before is not None:
        idle = (
            (JobRun.status == "succeeded")
            & (JobRun.items == 0)
            & JobRun.finished_at.is_not(None)
            & (JobRun.finished_at < idle_before)
        )
        old = old | idle
    result = session.execute(delete(JobRun).where(old))
    return int(getattr(result, "rowcount", 0) or 0)


class Scheduler:
    """Runs the jobs of a :class:`JobRegistry` against one :class:`Runtime`."""

    def __init__(self, runtime: Runtime, jobs: JobRegistry | None = None) -> None:
        self.runtime = runtime
        self.jobs = jobs if jobs is not None else registry

    # -- status ---------------------------------------------------------------------------

    def _slot_claimed(self, session: Session, job: Job, slot: datetime) -> bool:
        found = session.scalar(
            select(JobRun.id).where(JobRun.name == job.name, JobRun.slot == slot)
        )
        return found is not None

    def statuses(self, session: Session, *, now: datetime | None = None) -> list[JobStatus]:
        now = now or utcnow()
        jobs = self.jobs.all()
        last = last_runs(session, [j.name for j in jobs])
        out = []
        for j in jobs:
            slot = j.slot_at(now)
            next_due = slot + j.every if self._slot_claimed(session, j, slot) else now
            out.append(JobStatus(job=j, last_run=last.get(j.name), next_due=next_due))
        return out

    def is_due(self, session: Session, job: Job, now: datetime) -> bool:
        return job.enabled and not self._slot_claimed(session, job, job.slot_at(now))

    # -- running --------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self, name: str) -> Iterator[bool]:
        """Hold the job's local lock and, on PostgreSQL, its advisory lock; yields success."""
        local = _local_lock(self.runtime, name)
        if not local.acquire(blocking=False):
            yield False
            return
        try:
            if not is_postgres(self.runtime.engine):
                yield True
                return
            key = advisory_key(name)
            with self.runtime.engine.connect() as conn:
                got = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                )
                conn.commit()
                if not got:
                    yield False
                    return
                try:
                    yield True
                finally:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
                    except Exception:  # a broken connection must not keep the lock
                        log.exception("could not release the advisory lock of job %s", name)
                        conn.invalidate()
        finally:
            local.release()

    def _claim(
        self,
        job: Job,
        *,
        trigger: Trigger,
        slot: datetime | None,
        requested_by: str | None,
        now: datetime,
    ) -> str | None:
        """Insert the run row (claims the slot); ``None`` if the slot is already taken."""
        try:
            with transaction(self.runtime.sessions) as s:
                if is_postgres(s):
                    # We hold the advisory lock: any "running" row of this job is dead.
                    s.execute(
                        update(JobRun)
                        .where(JobRun.name == job.name, JobRun.status == "running")
                        .values(status="abandoned", finished_at=now)
                    )
                if slot is not None and self._slot_claimed(s, job, slot):
                    return None
                run = JobRun(
                    id=new_id(),
                    name=job.name,
                    trigger=trigger,
                    slot=slot,
                    started_at=utcnow(),
                    status="running",
                    worker=_worker_id(),
                    requested_by=requested_by,
                )
                s.add(run)
                s.flush()
                return run.id
        except IntegrityError:
            return None

    def _execute(self, job: Job, *, run_id: str, trigger: Trigger, now: datetime) -> RunOutcome:
        status: RunStatus = "succeeded"
        error: str | None = None
        items: int | None = None
        interrupted: BaseException | None = None
        session = self.runtime.sessions()
        ctx = JobContext(
            runtime=self.runtime,
            session=session,
            name=job.name,
            run_id=run_id,
            now=now,
            trigger=trigger,
        )
        try:
            items = job.func(ctx)
            session.commit()
            if ctx.failures:
                status = "partial"
                error = "; ".join(ctx.failures)
        except Exception as exc:
            session.rollback()
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed", job.name)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: record, then re-raise
            session.rollback()
            status, error, interrupted = "failed", f"interrupted ({type(exc).__name__})", exc
        finally:
            session.close()
        if error is not None:
            error = error[:MAX_ERROR_CHARS]
        with transaction(self.runtime.sessions) as s:
            s.execute(
                update(JobRun)
                .where(JobRun.id == run_id)
                .values(status=status, error=error, items=items, finished_at=utcnow())
            )
        if interrupted is not None:
            raise interrupted
        log.info("job %s %s (items=%s)", job.name, status, items)
        return RunOutcome(name=job.name, status=status, run_id=run_id, items=items, error=error)

    def _run(
        self,
        job: Job,
        *,
        trigger: Trigger,
        slot: datetime | None,
        now: datetime,
        requested_by: str | None = None,
    ) -> RunOutcome:
        with self._exclusive(job.name) as held:
            if not held:
                return RunOutcome(name=job.name, status="skipped", reason="locked")
            run_id = self._claim(
                job, trigger=trigger, slot=slot, requested_by=requested_by, now=now
            )
            if run_id is None:
                return RunOutcome(name=job.name, status="skipped", reason="claimed")
            return self._execute(job, run_id=run_id, trigger=trigger, now=now)

    def run_due(self, *, now: datetime | None = None) -> list[RunOutcome]:
        """Run every enabled job whose current slot has no run yet; one pass."""
        now = now or utcnow()
        outcomes = []
        for j in self.jobs.all():
            if not j.enabled:
                continue
            with self.runtime.sessions() as s:
                due = self.is_due(s, j, now)
            if not due:
                continue
            outcomes.append(self._run(j, trigger="schedule", slot=j.slot_at(now), now=now))
        return outcomes

    def run_now(
        self, name: str, *, requested_by: str | None = None, now: datetime | None = None
    ) -> RunOutcome:
        """Run one job now, outside its schedule; :class:`Conflict` if it is running."""
        j = self.jobs.get(name)
        outcome = self._run(
            j, trigger="manual", slot=None, now=now or utcnow(), requested_by=requested_by
        )
        if outcome.status == "skipped":
            raise Conflict(f"job {name!r} is running elsewhere; try again when it has finished")
        return outcome

    def seconds_until_next(self, *, now: datetime | None = None) -> float | None:
        now = now or utcnow()
        enabled = [j for j in self.jobs.all() if j.enabled]
        if not enabled:
            return None
        return min((j.slot_at(now) + j.every - now).total_seconds() for j in enabled)

    def run_forever(self, stop: threading.Event, *, poll_seconds: float = 30.0) -> None:
        """The worker loop: run due jobs, sleep until the next slot (at most ``poll_seconds``)."""
        log.info("scheduler started with %d job(s)", len(self.jobs.all()))
        while not stop.is_set():
            try:
                self.run_due()
            except Exception:  # the database may be briefly away; keep the worker alive
                log.exception("scheduler pass failed")
            wait = self.seconds_until_next()
            wait = poll_seconds if wait is None else min(max(wait, 0.5), poll_seconds)
            stop.wait(wait)
        log.info("scheduler stopped")


def to_dict(run: JobRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "trigger": run.trigger,
        "slot": run.slot,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "error": run.error,
        "items": run.items,
        "worker": run.worker,
        "requested_by": run.requested_by,
    }
