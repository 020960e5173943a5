"""Event bus throughput and latency: outbox → relay → bus → idempotent consumer.

    .venv/bin/python benchmarks/bus_throughput.py [--events 10000] [--rate 200] [--seconds 4]
        [--audit-requests 1000 | --no-audit] [--no-pg] [--no-nats]

For each database (SQLite file, and PostgreSQL when reachable) and each bus
(in-process, NATS JetStream when reachable) it measures, in one process:

* **drain**: ``--events`` events already in the outbox; the relay and a
  :class:`Consumer` (dedup row per event, one transaction per batch) deliver them;
  events/s = events / (start → last event applied): the delivery capacity;
* **end to end**: ``--events`` more emitted through the outbox (100 per transaction) as
  fast as the producer can while relay and consumer run; events/s = events / (first
  emit → last event applied);
* **latency**: ``--rate`` events/s, one per transaction, for ``--seconds``; the time from
  the emit (in the producer's transaction) to the consumer applying it, p50 and p99
  (also reported for the saturated end-to-end run, where it is mostly queueing).

It also measures the **raw NATS JetStream ceiling** in the same run: the same envelopes
published (pipelined) and consumed (pull, batch 500, explicit ack) without outbox,
relay or database.

Prints a table and writes ``benchmarks/results/bus_throughput.json`` (figures, command,
machine, date, library versions). Producer, relay and consumer share one Python
process (and its GIL), as in the embedded one-process deployment.

**Audit overhead** (on by default; ``--no-audit`` skips it), on SQLite and PostgreSQL:
latency of one real state-changing API request, ``PATCH /api/orgs/{id}`` (an admin with a
bearer token renames an org: authentication, RBAC, the change, one audit record, one
outbox event, commit), through the whole ASGI app with FastAPI's TestClient (in process,
no socket). ``--audit-requests`` pairs, each one request with audit and one without, in
alternating order, after 20 warm-up pairs. "Without audit" is a **benchmark-only
monkeypatch**: :func:`audit_switched` replaces ``safecity.security.audit.record`` with a
no-op for that one request, so nothing is recorded, chained or written (production code
has no switch). The run checks that exactly the audited requests wrote a record and that
the chain verifies afterwards. Reported: mean, p50, p99 per mode and the overhead in ms
(with a 95 % interval from the paired differences) and in %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nats
from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

import safecity.models  # noqa: F401  (every table)
from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.app import create_app
from safecity.orgs import service as orgs_service
from safecity.platform.bus import EventBus, decode, encode
from safecity.platform.bus_memory import MemoryBus
from safecity.platform.bus_nats import NatsBus
from safecity.platform.consumers import Consumer
from safecity.platform.db import Base, make_engine, make_session_factory
from safecity.platform.events import Envelope, register_event_type
from safecity.platform.outbox import emit
from safecity.platform.relay import Relay
from safecity.platform.runtime import Runtime
from safecity.security import audit as security_audit
from safecity.security.audit import AuditEntry
from safecity.security.auth import issue_token
from safecity.security.models import User, UserRole
from safecity.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "bus_throughput.json"
EVENT_TYPE = "bench.bus.tick"
register_event_type(
    EVENT_TYPE,
    {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "t": {"type": "number"}},
        "required": ["n", "t"],
    },
    description="benchmark event",
)
PER_TX = 100
RELAY_BATCH = 500
CONSUMER_BATCH = 500


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarise(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


# -- producers -----------------------------------------------------------------------
def produce_bulk(sessions: sessionmaker[Session], count: int, start: int = 0) -> None:
    for first in range(start, start + count, PER_TX):
        with sessions.begin() as s:
            for n in range(first, min(start + count, first + PER_TX)):
                emit(s, type=EVENT_TYPE, source="bench", payload={"n": n, "t": time.time()})


def produce_paced(sessions: sessionmaker[Session], rate: float, seconds: float, start: int) -> int:
    total = int(rate * seconds)
    began = time.perf_counter()
    for i in range(total):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with sessions.begin() as s:
            emit(s, type=EVENT_TYPE, source="bench", payload={"n": start + i, "t": time.time()})
    return total


# -- outbox scenarios ----------------------------------------------------------------
async def outbox_scenario(
    *, sessions: sessionmaker[Session], bus: EventBus, events: int, rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []

    def apply(_session: Session, envelope: Envelope) -> None:
        latencies.append(time.time() - envelope.payload["t"])

    consumer = Consumer(
        name="bench", sessions=sessions, apply=apply, types=[EVENT_TYPE], batch_size=CONSUMER_BATCH
    )

    async def wait_applied(count: int, timeout: float = 120) -> None:
        async with asyncio.timeout(timeout):
            while consumer.applied < count:
                await asyncio.sleep(0.005)

    # 1. drain: the outbox already holds `events` rows; relay + consumer deliver them.
    await asyncio.to_thread(produce_bulk, sessions, events)
    stop = asyncio.Event()
    relay: asyncio.Task[None] | None = None
    try:
        began = time.perf_counter()
        await consumer.start(bus)
        relay = asyncio.create_task(
            Relay(sessions=sessions, bus=bus, batch_size=RELAY_BATCH).run(stop)
        )
        await wait_applied(events)
        drain_s = time.perf_counter() - began

        # 2. end to end: emit `events` more while relay and consumer run.
        latencies.clear()
        began = time.perf_counter()
        await asyncio.to_thread(produce_bulk, sessions, events, events)
        produced_s = time.perf_counter() - began
        await wait_applied(2 * events)
        total_s = time.perf_counter() - began
        throughput_latency = summarise(latencies)

        # 3. paced: latency when the pipeline is not saturated.
        latencies.clear()
        paced = await asyncio.to_thread(produce_paced, sessions, rate, seconds, 2 * events)
        await wait_applied(2 * events + paced)
        paced_latency = summarise(latencies)
    finally:
        stop.set()
        if relay is not None:
            await relay
        await bus.close()
    return {
        "events": events,
        "drain_events_per_s": round(events / drain_s, 1),
        "events_per_s": round(events / total_s, 1),
        "emit_events_per_s_while_delivering": round(events / produced_s, 1),
        "seconds": round(total_s, 3),
        "latency_under_full_load": throughput_latency,
        "paced": {"rate_per_s": rate, "events": paced, **paced_latency},
        "duplicates_skipped": consumer.skipped,
    }


# -- raw JetStream ceiling -----------------------------------------------------------
async def raw_nats(
    url: str, prefix: str, events: int, rate: float, seconds: float
) -> dict[str, Any]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream, subject = f"{prefix}_RAW", f"{prefix}.raw.tick"
    await js.add_stream(name=stream, subjects=[f"{prefix}.raw.>"])
    latencies: list[float] = []
    received = 0

    async def consume(stop: asyncio.Event) -> None:
        nonlocal received
        psub = await js.pull_subscribe(subject, durable="raw", stream=stream)
        while not stop.is_set():
            try:
                msgs = await psub.fetch(CONSUMER_BATCH, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                envelope = decode(msg.data)
                latencies.append(time.time() - envelope.payload["t"])
                await msg.ack()
            received += len(msgs)

    def envelope(n: int) -> Envelope:
        return Envelope(type=EVENT_TYPE, source="bench", payload={"n": n, "t": time.time()})

    stop = asyncio.Event()
    consumer = asyncio.create_task(consume(stop))

    async def wait_received(count: int) -> None:
        async with asyncio.timeout(120):
            while received < count:
                await asyncio.sleep(0.005)

    try:
        began = time.perf_counter()
        for n in range(events):
            env = envelope(n)
            await js.publish_async(subject, encode(env), headers={"Nats-Msg-Id": env.id})
            if n % RELAY_BATCH == RELAY_BATCH - 1:
                await js.publish_async_completed()
        await js.publish_async_completed()
        await wait_received(events)
        total_s = time.perf_counter() - began
        full = summarise(latencies)

        latencies.clear()
        paced = int(rate * seconds)
        start = time.perf_counter()
        for i in range(paced):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            env = envelope(events + i)
            await js.publish(subject, encode(env), headers={"Nats-Msg-Id": env.id})
        await wait_received(events + paced)
        paced_latency = summarise(latencies)
    finally:
        stop.set()
        await consumer
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nc.close()
    return {
        "events": events,
        "events_per_s": round(events / total_s, 1),
        "seconds": round(total_s, 3),
        "latency_under_full_load": full,
        "paced": {"rate_per_s": rate, "events": paced, **paced_latency},
    }


# -- audit overhead -------------------------------------------------------------------
# One real API request that changes state and writes one audit record: the admin renames
# an org (PATCH /api/orgs/{id}, bearer token), through the whole ASGI app (middleware,
# authentication, RBAC, service, outbox event, commit) with FastAPI's TestClient: in
# process, no socket. Each pair of requests runs one with audit and one without, in
# alternating order (on/off, off/on, ...), so drift and background load hit both modes.
AUDIT_WARMUP_PAIRS = 20


def _no_audit_record(session: Session, **_kwargs: Any) -> AuditEntry:
    """BENCHMARK ONLY stand-in for :func:`safecity.security.audit.record`: builds nothing
    into the session, so the request writes no audit row, takes no chain-head lock,
    computes no HMAC and writes no checkpoint. Returns a transient entry that is never
    added to the session (callers may use the return value)."""
    return AuditEntry()


@contextlib.contextmanager
def audit_switched(on: bool) -> Iterator[None]:
    """BENCHMARK ONLY: with ``on=False`` monkeypatch ``safecity.security.audit.record``
    (every caller uses ``audit.record(...)`` through the module) with a no-op for the
    duration of one request; restore it afterwards. Production code has no switch."""
    original = security_audit.record
    if not on:
        security_audit.record = _no_audit_record
    try:
        yield
    finally:
        security_audit.record = original


def _audit_rows(sessions: sessionmaker[Session], action: str) -> int:
    with sessions() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
            )
            or 0
        )


def audit_run(db: Database, *, pairs: int, work: Path) -> dict[str, Any]:
    """``pairs`` timed PATCH requests with audit and as many without, on ``db``."""
    sessions = db.fresh()
    assert db.engine is not None
    settings = Settings(
        var_dir=work / "var",
        database_url=db.url,
        key_dir=work / "keys",
        bus_url="memory://",
        log_json=False,
    )
    runtime = Runtime(settings=settings, engine=db.engine, sessions=sessions)
    with sessions.begin() as s:
        city = orgs_service.create(
            session=s, code="bench-city", kind="city", name_zh="基准市", name_en="Bench city"
        )
        user = User(username="bench-admin", display_name="admin", kind="user", org_id=city.id)
        s.add(user)
        s.flush()
        s.add(UserRole(user_id=user.id, role="admin"))
        token = issue_token(session=s, user_id=user.id, name="bench")
        org_id = city.id
    app = create_app(runtime=runtime)
    # One log line per request to stderr would flood the terminal; both modes skip them
    # alike (the level check is all that remains of them).
    for name in ("safecity.access", "httpx", "httpx2"):  # httpx2: the TestClient's client
        logging.getLogger(name).setLevel(logging.WARNING)
    headers = {"Authorization": f"Bearer {token}"}
    timings: dict[bool, list[float]] = {True: [], False: []}
    diffs: list[float] = []
    counter = 0
    before = _audit_rows(sessions, "orgs.org.update")
    with TestClient(app) as client:
        for i in range(AUDIT_WARMUP_PAIRS + pairs):
            took: dict[bool, float] = {}
            for on in (True, False) if i % 2 == 0 else (False, True):
                counter += 1
                body = {"name_en": f"Bench city {counter}"}
                with audit_switched(on):
                    began = time.perf_counter()
                    response = client.patch(f"/api/orgs/{org_id}", json=body, headers=headers)
                    took[on] = time.perf_counter() - began
                if response.status_code != 200:
                    raise RuntimeError(f"PATCH failed: {response.status_code} {response.text}")
            if i >= AUDIT_WARMUP_PAIRS:
                timings[True].append(took[True])
                timings[False].append(took[False])
                diffs.append(took[True] - took[False])
    written = _audit_rows(sessions, "orgs.org.update") - before
    expected = AUDIT_WARMUP_PAIRS + pairs
    if written != expected:  # every audited request wrote one record, the others none
        raise RuntimeError(f"expected {expected} audit records, found {written}")
    with sessions() as s:
        report = security_audit.verify(s, settings=settings)
    if not report.ok:
        raise RuntimeError(f"audit chain broken after the benchmark: {report.summary()}")
    checkpoint_file = security_audit.checkpoint_path(settings)
    checkpoints = (
        len(checkpoint_file.read_text("utf-8").splitlines()) if checkpoint_file.exists() else 0
    )
    with_audit, without = summarise(timings[True]), summarise(timings[False])
    diff_ms = [d * 1000 for d in diffs]
    half_width = 1.96 * statistics.stdev(diff_ms) / len(diff_ms) ** 0.5
    mean_overhead = statistics.fmean(diff_ms)
    return {
        "requests_per_mode": pairs,
        "warmup_pairs": AUDIT_WARMUP_PAIRS,
        "with_audit": with_audit,
        "without_audit": without,
        "overhead_ms": {
            "mean": round(mean_overhead, 3),
            "mean_95ci": [
                round(mean_overhead - half_width, 3),
                round(mean_overhead + half_width, 3),
            ],
            "p50": round(with_audit["p50_ms"] - without["p50_ms"], 3),
            "p99": round(with_audit["p99_ms"] - without["p99_ms"], 3),
            "median_of_paired_differences": round(statistics.median(diff_ms), 3),
        },
        "overhead_percent": {
            "mean": round(100 * mean_overhead / without["mean_ms"], 1),
            "p50": round(100 * (with_audit["p50_ms"] - without["p50_ms"]) / without["p50_ms"], 1),
        },
        "audit_records_written": written,
        "checkpoints_written": checkpoints,
        "checkpoint_every": settings.audit_checkpoint_every,
        "chain_verified": report.records,
    }


def audit_overhead(args: argparse.Namespace, *, use_pg: bool) -> dict[str, Any]:
    """Latency of one audited API request with vs without audit, in this same run, on
    SQLite and (when reachable) PostgreSQL. See :func:`audit_run`."""
    results: dict[str, Any] = {
        "request": "PATCH /api/orgs/{id} (admin renames an org; bearer token), "
        "TestClient in process; one audit record + one outbox event per request",
        "without_audit": "benchmark-only monkeypatch: safecity.security.audit.record "
        "replaced by a no-op (no row, no head lock, no HMAC, no checkpoint)",
        "order": "pairs, alternating on/off and off/on",
    }
    with tempfile.TemporaryDirectory() as tmp:
        databases = [sqlite_database(Path(tmp))]
        if use_pg:
            databases.append(postgres_database(args.pg_url))
        for db in databases:
            try:
                print(f"audit overhead on {db.label} …", flush=True)
                work = Path(tmp) / db.label
                results[db.label] = audit_run(db, pairs=args.audit_requests, work=work)
            finally:
                db.close()
    return results


# -- databases -----------------------------------------------------------------------
class Database:
    def __init__(self, label: str, url: str, cleanup: Callable[[], None]) -> None:
        self.label, self.url, self._cleanup = label, url, cleanup
        self.engine: Engine | None = None

    def fresh(self) -> sessionmaker[Session]:
        if self.engine is None:
            self.engine = make_engine(self.url)
        Base.metadata.drop_all(self.engine)
        Base.metadata.create_all(self.engine)
        return make_session_factory(self.engine)

    def version(self) -> str:
        assert self.engine is not None
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                return f"SQLite {sqlite3.sqlite_version}"
            return str(conn.execute(text("SHOW server_version")).scalar())

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        self._cleanup()


def sqlite_database(tmp: Path) -> Database:
    return Database("SQLite", f"sqlite:///{tmp / 'bench.db'}", lambda: None)


def postgres_database(admin_url: str) -> Database:
    name = f"safecity_bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return Database("PostgreSQL", f"{admin_url.rsplit('/', 1)[0]}/{name}", drop)


# -- report --------------------------------------------------------------------------
def versions(extra: dict[str, str]) -> dict[str, str]:
    found = {}
    for dist in (
        "safecity",
        "sqlalchemy",
        "nats-py",
        "psycopg",
        "pydantic",
        "jsonschema",
        "fastapi",
        "starlette",
        "httpx2",
        "cryptography",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found | extra


async def nats_server_version(url: str) -> str:
    nc = await nats.connect(url)
    try:
        v = nc.connected_server_version
        return f"{v.major}.{v.minor}.{v.patch}"
    finally:
        await nc.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per throughput run")
    parser.add_argument("--rate", type=float, default=200.0, help="paced latency run, events/s")
    parser.add_argument("--seconds", type=float, default=4.0, help="paced latency run length")
    parser.add_argument(
        "--nats-url", default=os.environ.get("SAFECITY_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "SAFECITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="PostgreSQL admin URL (a temporary database is created and dropped)",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-nats", action="store_true", help="in-process bus only")
    parser.add_argument(
        "--audit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the audit overhead per request (default: on)",
    )
    parser.add_argument(
        "--audit-requests",
        type=int,
        default=1000,
        help="timed requests per mode (with / without audit) and database",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    console = Console()
    use_nats = not args.no_nats and reachable(args.nats_url, 4222)
    use_pg = not args.no_pg and reachable(args.pg_url, 5432)
    prefix = f"SCBENCH_{secrets.token_hex(3)}"
    figures: dict[str, Any] = {}
    extra_versions: dict[str, str] = {}
    notes: list[str] = []
    if not use_nats:
        notes.append(f"NATS not measured ({args.nats_url} unreachable or --no-nats)")
    if not use_pg:
        notes.append("PostgreSQL not measured (unreachable or --no-pg)")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        databases = [sqlite_database(Path(tmp))]
        if use_pg:
            databases.append(postgres_database(args.pg_url))
        for db in databases:
            try:
                buses: list[tuple[str, Callable[[sessionmaker[Session]], EventBus]]] = [
                    ("in-process", lambda s: MemoryBus(s))
                ]
                if use_nats:
                    buses.append(
                        ("NATS JetStream", lambda s: NatsBus(args.nats_url, prefix=prefix))
                    )
                for bus_label, make in buses:
                    sessions = db.fresh()
                    console.print(f"outbox → {bus_label} on {db.label} …")
                    bus = make(sessions)
                    result = asyncio.run(
                        outbox_scenario(
                            sessions=sessions,
                            bus=bus,
                            events=args.events,
                            rate=args.rate,
                            seconds=args.seconds,
                        )
                    )
                    figures[f"outbox → {bus_label} ({db.label})"] = result
                    if isinstance(bus, NatsBus):
                        asyncio.run(_delete_stream(args.nats_url, prefix))
                extra_versions[db.label] = db.version()
            finally:
                db.close()
    if use_nats:
        console.print("raw NATS JetStream …")
        figures["raw NATS JetStream (no outbox)"] = asyncio.run(
            raw_nats(args.nats_url, prefix, args.events, args.rate, args.seconds)
        )
        extra_versions["nats-server"] = asyncio.run(nats_server_version(args.nats_url))
    if args.audit:
        figures["audit_overhead"] = audit_overhead(args, use_pg=use_pg)

    table = Table(title=f"bus throughput ({args.events} events; paced {args.rate:g}/s)")
    columns = ("scenario", "end-to-end ev/s", "drain ev/s", "p50 ms", "p99 ms", "p50 ms loaded")
    for column in columns:
        table.add_column(column, justify="right" if column != "scenario" else "left")
    for label, result in figures.items():
        if not isinstance(result, dict) or "events_per_s" not in result:
            continue
        table.add_row(
            label,
            f"{result['events_per_s']:,.0f}",
            f"{result['drain_events_per_s']:,.0f}" if "drain_events_per_s" in result else "-",
            f"{result['paced']['p50_ms']:.1f}",
            f"{result['paced']['p99_ms']:.1f}",
            f"{result['latency_under_full_load']['p50_ms']:.0f}",
        )
    console.print(table)
    if args.audit:
        console.print(audit_table(figures["audit_overhead"]))
    for note in notes:
        console.print(f"note: {note}")

    report = {
        "benchmark": "bus_throughput",
        "command": " ".join(["python", "benchmarks/bus_throughput.py", *argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(extra_versions),
        "config": {
            "events": args.events,
            "paced_rate_per_s": args.rate,
            "paced_seconds": args.seconds,
            "events_per_transaction": PER_TX,
            "relay_batch": RELAY_BATCH,
            "consumer_batch": CONSUMER_BATCH,
            "one_process": True,
            "audit_requests_per_mode": args.audit_requests if args.audit else 0,
        },
        "figures": figures,
        "notes": notes,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 0


def audit_table(results: dict[str, Any]) -> Table:
    table = Table(title="audit overhead per request (PATCH /api/orgs/{id}, ms)")
    for column in ("database", "mode", "mean", "p50", "p99"):
        table.add_column(column, justify="left" if column in ("database", "mode") else "right")
    for label, result in results.items():
        if not isinstance(result, dict):
            continue
        for mode in ("without_audit", "with_audit"):
            figures = result[mode]
            table.add_row(
                label,
                mode.replace("_", " "),
                f"{figures['mean_ms']:.2f}",
                f"{figures['p50_ms']:.2f}",
                f"{figures['p99_ms']:.2f}",
            )
        over, pct = result["overhead_ms"], result["overhead_percent"]
        low, high = over["mean_95ci"]
        table.add_row(
            label,
            "overhead",
            f"{over['mean']:+.2f} ({pct['mean']:+.0f} %) [{low:+.2f}…{high:+.2f}]",
            f"{over['p50']:+.2f} ({pct['p50']:+.0f} %)",
            f"{over['p99']:+.2f}",
        )
    return table


async def _delete_stream(url: str, prefix: str) -> None:
    bus = NatsBus(url, prefix=prefix)
    try:
        await bus.delete_stream()
    finally:
        await bus.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
