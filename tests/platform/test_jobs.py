"""The job scheduler: slots, registry, run-once-per-slot, failures, locks, the worker loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from safecity.platform import jobs, timeline
from safecity.platform.db import transaction
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.jobs import JobContext, JobRegistry, JobRun, Scheduler
from safecity.platform.runtime import Runtime

T0 = datetime(2024, 5, 1, 10, 7, 30, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def noop(ctx: JobContext) -> int:
    return 0


# -- no database ------------------------------------------------------------------------


def test_slots_are_aligned_to_the_clock() -> None:
    every5 = jobs.Job(name="x", func=noop, every=FIVE)
    assert every5.slot_at(T0) == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    assert every5.slot_at(datetime(2024, 5, 1, 10, 10, tzinfo=UTC)) == datetime(
        2024, 5, 1, 10, 10, tzinfo=UTC
    )
    daily_at_3 = jobs.Job(name="y", func=noop, every=timedelta(days=1), offset=timedelta(hours=3))
    assert daily_at_3.slot_at(datetime(2024, 5, 2, 2, 59, tzinfo=UTC)) == datetime(
        2024, 5, 1, 3, tzinfo=UTC
    )
    assert daily_at_3.slot_at(datetime(2024, 5, 2, 3, 0, tzinfo=UTC)) == datetime(
        2024, 5, 2, 3, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", FIVE),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("*/15", timedelta(minutes=15)),
        (" 10M ", timedelta(minutes=10)),
    ],
)
def test_parse_interval(spec: str, expected: timedelta) -> None:
    assert jobs.parse_interval(spec) == expected


@pytest.mark.parametrize("spec", ["", "5", "0m", "-5m", "5w", "*/x", "m", "1.5h"])
def test_parse_interval_rejects_nonsense(spec: str) -> None:
    with pytest.raises(InvalidInput):
        jobs.parse_interval(spec)


def test_registry_rules() -> None:
    reg = JobRegistry()

    @reg.job("a.job", every="5m")
    def a_job(ctx: JobContext) -> int:
        """Does a thing."""
        return 1

    assert reg.get("a.job").every == FIVE
    assert reg.get("a.job").description == "Does a thing."
    reg.register("a.job", a_job, every="5m")  # same function again: fine
    with pytest.raises(ValueError, match="another function"):
        reg.register("a.job", noop, every="5m")
    with pytest.raises(ValueError, match="at least one second"):
        reg.register("fast", noop, every=timedelta(milliseconds=10))
    with pytest.raises(NotFound):
        reg.get("missing")
    reg.unregister("a.job")
    assert reg.all() == []


def test_advisory_key_is_stable_and_fits_bigint() -> None:
    key = jobs.advisory_key("retention.enforce")
    assert key == jobs.advisory_key("retention.enforce")
    assert key != jobs.advisory_key("retention.enforcf")
    assert -(2**63) <= key < 2**63


def test_platform_jobs_are_registered() -> None:
    jobs.load_job_modules()
    names = [j.name for j in jobs.registry.all()]
    assert "retention.enforce" in names
    assert "platform.prune" in names


# -- with the database ------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, ctx: JobContext) -> int:
        with self.lock:
            self.calls += 1
        return 7


@pytest.fixture
def reg() -> JobRegistry:
    return JobRegistry()


def runs(runtime: Runtime, name: str) -> list[JobRun]:
    with runtime.sessions() as s:
        return list(s.scalars(select(JobRun).where(JobRun.name == name).order_by(JobRun.slot)))


@pytest.mark.db
def test_run_due_runs_each_job_once_per_slot(runtime: Runtime, reg: JobRegistry) -> None:
    counter = Counter()
    reg.register("count", counter, every=FIVE)
    scheduler = Scheduler(runtime, reg)

    first = scheduler.run_due(now=T0)
    assert [(o.name, o.status, o.items) for o in first] == [("count", "succeeded", 7)]
    assert scheduler.run_due(now=T0 + timedelta(minutes=2)) == []  # same slot: not due
    assert counter.calls == 1
    scheduler.run_due(now=T0 + FIVE)
    assert counter.calls == 2

    rows = runs(runtime, "count")
    assert [r.slot for r in rows] == [
        datetime(2024, 5, 1, 10, 5, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 10, tzinfo=UTC),
    ]
    assert {(r.status, r.trigger, r.items) for r in rows} == {("succeeded", "schedule", 7)}
    assert all(r.finished_at is not None and r.finished_at >= r.started_at for r in rows)


@pytest.mark.db
def test_job_session_commits_on_success_and_rolls_back_on_failure(
    runtime: Runtime, reg: JobRegistry
) -> None:
    def writes(ctx: JobContext) -> int:
        timeline.add(ctx.session, record_type="job_test", record_id="ok", kind="note")
        return 1

    def breaks(ctx: JobContext) -> int:
        timeline.add(ctx.session, record_type="job_test", record_id="bad", kind="note")
        ctx.session.flush()
        raise RuntimeError("disk on fire")

    reg.register("a.breaks", breaks, every=FIVE)
    reg.register("b.writes", writes, every=FIVE)
    outcomes = Scheduler(runtime, reg).run_due(now=T0)

    assert [(o.name, o.status) for o in outcomes] == [
        ("a.breaks", "failed"),
        ("b.writes", "succeeded"),
    ]
    assert outcomes[0].error == "RuntimeError: disk on fire"
    with runtime.sessions() as s:
        assert [e.record_id for e in timeline.list_for(s, record_type="job_test", record_id="ok")]
        assert timeline.list_for(s, record_type="job_test", record_id="bad") == []
    failed = runs(runtime, "a.breaks")[0]
    assert (failed.status, failed.error, failed.items) == (
        "failed",
        "RuntimeError: disk on fire",
        None,
    )


@pytest.mark.db
def test_item_failures_make_a_partial_run(runtime: Runtime, reg: JobRegistry) -> None:
    def some_fail(ctx: JobContext) -> int:
        ctx.fail_item("record 3: locked")
        return 2

    reg.register("partly", some_fail, every=FIVE)
    outcome = Scheduler(runtime, reg).run_due(now=T0)[0]
    assert (outcome.status, outcome.items, outcome.error) == ("partial", 2, "record 3: locked")


@pytest.mark.db
def test_run_now_is_manual_and_leaves_the_slot_free(runtime: Runtime, reg: JobRegistry) -> None:
    counter = Counter()
    reg.register("count", counter, every=FIVE)
    scheduler = Scheduler(runtime, reg)
    outcome = scheduler.run_now("count", requested_by="user-1", now=T0)
    assert outcome.status == "succeeded"
    [row] = runs(runtime, "count")
    assert (row.trigger, row.slot, row.requested_by) == ("manual", None, "user-1")
    # A manual run does not take the scheduled slot.
    assert [o.status for o in scheduler.run_due(now=T0)] == ["succeeded"]
    # Manual runs can repeat (no slot, so no uniqueness clash).
    scheduler.run_now("count", now=T0)
    assert counter.calls == 3
    with pytest.raises(NotFound):
        scheduler.run_now("nope")


@pytest.mark.db
def test_a_running_job_is_not_started_again(runtime: Runtime, reg: JobRegistry) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(ctx: JobContext) -> int:
        started.set()
        assert release.wait(10)
        return 1

    reg.register("slow", slow, every=FIVE)
    first = Scheduler(runtime, reg)
    worker = threading.Thread(target=lambda: first.run_due(now=T0))
    worker.start()
    try:
        assert started.wait(10)
        second = Scheduler(runtime, reg)
        with pytest.raises(Conflict):
            second.run_now("slow")
        # The next slot is due, but the job is still running: skipped, not queued.
        [skipped] = second.run_due(now=T0 + FIVE)
        assert (skipped.status, skipped.reason) == ("skipped", "locked")
    finally:
        release.set()
        worker.join(10)
    assert [r.status for r in runs(runtime, "slow")] == ["succeeded"]


@pytest.mark.db
def test_two_concurrent_runners_run_a_slot_once(runtime: Runtime, reg: JobRegistry) -> None:
    counter = Counter()

    def slowish(ctx: JobContext) -> int:
        threading.Event().wait(0.2)
        return counter(ctx)

    reg.register("shared", slowish, every=FIVE)
    runners = [Scheduler(runtime, reg), Scheduler(runtime, reg)]
    for slot in range(3):
        barrier = threading.Barrier(2)
        now = T0 + slot * FIVE

        def go(s: Scheduler, now: datetime = now, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(5)
            s.run_due(now=now)

        threads = [threading.Thread(target=go, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert counter.calls == 3
    assert len({r.slot for r in runs(runtime, "shared")}) == 3
    assert len(runs(runtime, "shared")) == 3


@pytest.mark.db
def test_statuses_report_last_run_and_next_due(runtime: Runtime, reg: JobRegistry) -> None:
    reg.register("count", Counter(), every=FIVE)
    scheduler = Scheduler(runtime, reg)
    with runtime.sessions() as s:
        [before] = scheduler.statuses(s, now=T0)
    assert before.last_run is None
    assert before.next_due == T0  # due now
    scheduler.run_due(now=T0)
    with runtime.sessions() as s:
        [after] = scheduler.statuses(s, now=T0)
    assert after.last_run is not None
    assert after.last_run.status == "succeeded"
    assert after.next_due == datetime(2024, 5, 1, 10, 10, tzinfo=UTC)


@pytest.mark.db
def test_run_forever_runs_due_jobs_until_stopped(runtime: Runtime, reg: JobRegistry) -> None:
    stop = threading.Event()
    calls: list[str] = []

    def once(ctx: JobContext) -> int:
        calls.append(ctx.run_id)
        stop.set()
        return 1

    reg.register("stopper", once, every=timedelta(hours=1))
    loop = threading.Thread(target=Scheduler(runtime, reg).run_forever, args=(stop,))
    loop.start()
    loop.join(10)
    assert not loop.is_alive()
    assert len(calls) == 1


@pytest.mark.db
def test_prune_runs_deletes_old_finished_runs(runtime: Runtime, reg: JobRegistry) -> None:
    reg.register("count", Counter(), every=FIVE)
    Scheduler(runtime, reg).run_due(now=T0)
    with transaction(runtime.sessions) as s:
        assert jobs.prune_runs(s, finished_before=datetime(2000, 1, 1, tzinfo=UTC)) == 0
    with transaction(runtime.sessions) as s:
        assert jobs.prune_runs(s, finished_before=jobs.utcnow() + timedelta(seconds=1)) == 1
    assert runs(runtime, "count") == []


@pytest.mark.db
def test_prune_runs_drops_idle_runs_sooner(runtime: Runtime, reg: JobRegistry) -> None:
    reg.register("busy", Counter(), every=FIVE)  # returns 7 items
    reg.register("idle", lambda ctx: 0, every=FIVE)
    Scheduler(runtime, reg).run_due(now=T0)
    soon = jobs.utcnow() + timedelta(seconds=1)
    with transaction(runtime.sessions) as s:
        assert jobs.prune_runs(s, finished_before=datetime(2000, 1, 1, tzinfo=UTC)) == 0
    with transaction(runtime.sessions) as s:
        pruned = jobs.prune_runs(
            s, finished_before=datetime(2000, 1, 1, tzinfo=UTC), idle_before=soon
        )
        assert pruned == 1
    assert runs(runtime, "idle") == []
    assert [r.items for r in runs(runtime, "busy")] == [7]


# -- PostgreSQL: the advisory lock across connections ------------------------------------


@pytest.fixture
def postgres_only(runtime: Runtime) -> Iterator[None]:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock exists on PostgreSQL only (SAFECITY_TEST_SERVICES=1)")
    return


@pytest.mark.db
@pytest.mark.usefixtures("postgres_only")
def test_advisory_lock_held_elsewhere_skips_the_job(runtime: Runtime, reg: JobRegistry) -> None:
    counter = Counter()
    reg.register("locked.job", counter, every=FIVE)
    scheduler = Scheduler(runtime, reg)
    key = jobs.advisory_key("locked.job")
    with runtime.engine.connect() as other_process:
        assert other_process.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        [outcome] = scheduler.run_due(now=T0)
        assert (outcome.status, outcome.reason) == ("skipped", "locked")
        with pytest.raises(Conflict):
            scheduler.run_now("locked.job")
        other_process.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        other_process.commit()
    assert counter.calls == 0
    assert [o.status for o in scheduler.run_due(now=T0)] == ["succeeded"]
    # The lock is released after the run.
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@pytest.mark.db
@pytest.mark.usefixtures("postgres_only")
def test_run_left_running_by_a_crash_is_abandoned(runtime: Runtime, reg: JobRegistry) -> None:
    job = reg.register("crashy", Counter(), every=FIVE)
    scheduler = Scheduler(runtime, reg)
    # A process claimed the slot and died before finishing (its lock went with it).
    crashed = scheduler._claim(
        job, trigger="schedule", slot=job.slot_at(T0), requested_by=None, now=T0
    )
    assert crashed is not None
    assert scheduler.run_due(now=T0) == []  # the slot stays taken: at most once per slot
    scheduler.run_due(now=T0 + FIVE)
    by_id = {r.id: r.status for r in runs(runtime, "crashy")}
    assert by_id.pop(crashed) == "abandoned"
    assert list(by_id.values()) == ["succeeded"]
    with runtime.sessions() as s:
        running = s.scalar(
            select(func.count()).select_from(JobRun).where(JobRun.status == "running")
        )
    assert running == 0


@pytest.mark.parametrize(
    ("every", "shown"),
    [
        (FIVE, "5m"),
        (timedelta(hours=1), "1h"),
        (timedelta(days=1), "1d"),
        (timedelta(seconds=90), "90s"),
    ],
)
def test_cli_interval_format(every: timedelta, shown: str) -> None:
    from safecity.platform.jobs_cli import format_interval

    assert format_interval(every) == shown
