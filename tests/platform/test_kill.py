"""Kill test: ``kill -9`` a consumer while it holds received-but-unacknowledged events.

10,000 events go through the outbox (plus noise of another type), a relay publishes
them while the consumer runs in a subprocess (``kill_consumer.py``). The consumer is
killed twice at the exact moment its test hook signals — once right after a batch
arrived, once right after a batch's transaction committed but before the ack — and
restarted each time. The effects table's primary key (the event id) would reject an
event applied twice; at the end every event has exactly one effect and none is missing.
Runs on SQLite + the in-process bus, or PostgreSQL + NATS JetStream with
``SAFECITY_TEST_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select

from safecity.platform.bus import make_bus
from safecity.platform.consumers import ProcessedEvent
from safecity.platform.outbox import OutboxEvent, emit
from safecity.platform.relay import Relay
from safecity.platform.runtime import Runtime
from safecity.settings import Settings
from tests.platform.conftest import BusFactory

pytestmark = [pytest.mark.bus, pytest.mark.db, pytest.mark.slow]

EVENTS = 10_000
NOISE = 300
SCRIPT = Path(__file__).with_name("kill_consumer.py")


class RelayThread:
    """The relay loop, running in a thread of the test process."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            bus = make_bus(self.settings, sessions=self.runtime.sessions)
            try:
                await Relay(sessions=self.runtime.sessions, bus=bus, batch_size=500).run(
                    self.stop_event
                )
            finally:
                await bus.close()

        try:
            asyncio.run(run())
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        deadline = time.monotonic() + 5
        while (self.loop is None or self.stop_event is None) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        assert not self.thread.is_alive(), "relay did not stop"
        assert self.error is None, self.error


def start_consumer(settings: Settings, name: str, pause: str | None) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        str(SCRIPT),
        "--db",
        settings.effective_database_url,
        "--bus",
        settings.bus_url,
        "--prefix",
        settings.bus_stream_prefix,
        "--name",
        name,
        "--expect",
        str(EVENTS),
        "--ack-wait",
        "2",
    ]
    if pause:
        args += ["--pause", pause]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def kill_at_marker(proc: subprocess.Popen[str], marker: Path, timeout: float = 60) -> int:
    """Wait for the hook's marker, then SIGKILL; returns how many events it had received."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"consumer exited ({proc.returncode}) before the hook fired:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the consumer's kill hook never fired")
        time.sleep(0.02)
    while not marker.read_text().endswith("\n"):  # fully written
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return int(marker.read_text())


def test_kill9_mid_batch_every_event_takes_effect_exactly_once(
    runtime: Runtime,
    bus_settings: Settings,
    bus_factory: BusFactory,  # NATS: checks the server and deletes the stream afterwards
    effects_table: Table,
    tmp_path: Path,
) -> None:
    expected = set(range(EVENTS))
    with runtime.sessions.begin() as s:
        for n in range(EVENTS):
            emit(s, type="test.kill.tick", source="test", payload={"n": n})
            if n % (EVENTS // NOISE) == 0:
                emit(s, type="test.kill.noise", source="test", payload={"n": n})

    relay = RelayThread(runtime, bus_settings)
    relay.start()
    name = "kill-test"
    try:
        # 1. Killed right after a batch arrived (received, nothing committed, no ack).
        first = start_consumer(bus_settings, name, f"received:2000:{tmp_path / 'm1'}")
        received_1 = kill_at_marker(first, tmp_path / "m1")
        assert received_1 >= 2000

        # 2. Restarted; killed right after a batch committed, before the ack.
        second = start_consumer(bus_settings, name, f"committed:3000:{tmp_path / 'm2'}")
        kill_at_marker(second, tmp_path / "m2")
        with runtime.sessions() as s:
            done = s.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.consumer == name)
            )
        assert done is not None
        assert 0 < done < EVENTS

        # 3. Restarted without a hook: it finishes, skipping what was committed unacked.
        third = start_consumer(bus_settings, name, None)
        out, err = third.communicate(timeout=120)
        assert third.returncode == 0, f"{out}\n{err}"
    finally:
        relay.stop()

    stats = dict(part.split("=") for part in out.split())
    assert int(stats["skipped"]) > 0, "the batch committed before the kill was not redelivered"
    with runtime.sessions() as s:
        applied = [row.n for row in s.execute(select(effects_table.c.n))]
        pending = s.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
        )
        processed = s.scalar(
            select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.consumer == name)
        )
    assert len(applied) == EVENTS  # one effect per event (the primary key forbids two)
    assert set(applied) == expected  # none lost, no noise applied
    assert processed == EVENTS
    assert pending == 0
