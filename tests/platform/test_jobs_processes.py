"""Two scheduler processes on PostgreSQL: each due slot of a job runs exactly once.

Each process registers the same job and runs the same three slots at the same moment;
the job records (slot, pid) in a table without a unique constraint, so a slot run twice
would show as two rows.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from safecity.platform.jobs import JobRun
from safecity.platform.runtime import Runtime

pytestmark = pytest.mark.db

effects_metadata = MetaData()
effects = Table(
    "job_test_effects",
    effects_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("slot", String(40), nullable=False),
    Column("pid", Integer, nullable=False),
)

RUNNER = """
import os, sys, time
from datetime import datetime, timedelta
from pathlib import Path
from sqlalchemy import text
from safecity.platform.db import make_engine, make_session_factory
from safecity.platform.jobs import JobRegistry, Scheduler
from safecity.platform.runtime import Runtime
from safecity.settings import Settings

url, t0 = sys.argv[1], datetime.fromisoformat(sys.argv[2])
gate, var = Path(sys.argv[3]), sys.argv[4]
engine = make_engine(url)
runtime = Runtime(settings=Settings(database_url=url, var_dir=Path(var)), engine=engine,
                  sessions=make_session_factory(engine))
registry = JobRegistry()

def effect(ctx):
    time.sleep(0.3)  # long enough for the other process to try the same slot
    ctx.session.execute(text("INSERT INTO job_test_effects (slot, pid) VALUES (:s, :p)"),
                        {"s": ctx.now.isoformat(), "p": os.getpid()})
    return 1

registry.register("shared.effect", effect, every=timedelta(minutes=5))
scheduler = Scheduler(runtime, registry)
# Start together: announce readiness, wait until both processes are ready.
(gate / str(os.getpid())).touch()
deadline = time.time() + 30
while len(list(gate.iterdir())) < 2 and time.time() < deadline:
    time.sleep(0.005)
for i in range(3):
    scheduler.run_due(now=t0 + i * timedelta(minutes=5))
engine.dispose()
"""


def test_two_processes_run_each_slot_once(runtime: Runtime, tmp_path: Path) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("several scheduler processes need PostgreSQL (SAFECITY_TEST_SERVICES=1)")
    effects_metadata.drop_all(runtime.engine)
    effects_metadata.create_all(runtime.engine)
    try:
        script = tmp_path / "runner.py"
        script.write_text(RUNNER)
        url = runtime.engine.url.render_as_string(hide_password=False)
        t0 = datetime(2024, 5, 1, 10, 7, tzinfo=UTC).isoformat()
        gate = tmp_path / "gate"
        gate.mkdir()
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), url, t0, str(gate), str(tmp_path / f"var{i}")],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(2)
        ]
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out
        with runtime.engine.connect() as conn:
            rows = conn.execute(select(effects.c.slot, effects.c.pid)).all()
            run_slots = conn.execute(
                select(JobRun.slot).where(JobRun.name == "shared.effect")
            ).all()
        slots = [slot for slot, _ in rows]
        assert len(slots) == 3, rows
        assert len(set(slots)) == 3
        assert len(run_slots) == 3
    finally:
        effects_metadata.drop_all(runtime.engine)
