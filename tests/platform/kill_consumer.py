"""Test helper: an idempotent consumer in a process of its own, for ``test_kill.py``.

    python tests/platform/kill_consumer.py --db URL --bus URL --prefix P --name NAME \\
        --expect N [--pause PHASE:AFTER:MARKER] [--ack-wait SECONDS]

It consumes ``test.kill.tick`` events, writing one ``bus_test_effects`` row per event (the
row's primary key is the event id, so an event applied twice would fail), and exits 0
once ``processed_events`` holds ``N`` rows for its name, printing
``applied=A skipped=S``.

The kill hook: with ``--pause received:AFTER:MARKER`` (or ``committed:...``), as soon as
this process has received at least AFTER events, at the moment a batch has arrived
(``received``) or its transaction has committed (``committed``) — in both cases before
the bus is acknowledged — it writes MARKER and blocks, so the test can ``kill -9`` it
there.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

import safecity.models  # noqa: F401  (every table)
from safecity.platform.bus import EventBus
from safecity.platform.bus_memory import MemoryBus
from safecity.platform.bus_nats import NatsBus
from safecity.platform.consumers import BatchResult, Consumer, ProcessedEvent
from safecity.platform.db import make_engine, make_session_factory
from safecity.platform.events import Envelope

effects_metadata = MetaData()
effects = Table(
    "bus_test_effects",
    effects_metadata,
    Column("event_id", String(32), primary_key=True),
    Column("n", Integer, nullable=False),
)

TICK = "test.kill.tick"


def apply_effect(session: Session, envelope: Envelope) -> None:
    session.execute(effects.insert().values(event_id=envelope.id, n=envelope.payload["n"]))


class PauseHook:
    def __init__(self, spec: str | None, phase: str) -> None:
        self.active = False
        self.received = 0
        if spec:
            want_phase, after, marker = spec.split(":", 2)
            self.active = want_phase == phase
            self.after = int(after)
            self.marker = Path(marker)

    def __call__(self, envelopes: Sequence[Envelope], _result: BatchResult | None) -> None:
        self.received += len(envelopes)
        if self.active and self.received >= self.after:
            self.marker.write_text(f"{self.received}\n")
            time.sleep(3600)  # block the whole process (no ack can go out); killed here


async def main(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    sessions = make_session_factory(engine)
    bus: EventBus
    if args.bus.startswith("nats://"):
        bus = NatsBus(args.bus, prefix=args.prefix, ack_wait=args.ack_wait, fetch_timeout=0.5)
    else:
        bus = MemoryBus(sessions, poll_interval=0.05)
    consumer = Consumer(
        name=args.name,
        sessions=sessions,
        apply=apply_effect,
        types=[TICK],
        batch_size=args.batch_size,
        on_received=PauseHook(args.pause, "received"),
        on_committed=PauseHook(args.pause, "committed"),
    )
    count_q = (
        select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.consumer == args.name)
    )
    try:
        await consumer.start(bus)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            with sessions() as s:
                if (s.scalar(count_q) or 0) >= args.expect:
                    break
            await asyncio.sleep(0.1)
        else:
            print(f"timed out: applied={consumer.applied} skipped={consumer.skipped}")
            return 1
    finally:
        await bus.close()
        engine.dispose()
    print(f"applied={consumer.applied} skipped={consumer.skipped}")
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--bus", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--pause")
    parser.add_argument("--ack-wait", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--timeout", type=float, default=120.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
