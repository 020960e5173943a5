"""Sensing → alert pipeline, end to end: from the socket (or the hand-off) to the alert
committed in the database, with validation, dedup and every shipped rule running.

    .venv/bin/python benchmarks/alert_pipeline.py [--sections inproc,mqtt,registry,sim]
        [--events 300000] [--sensors 20000]

Each section starts from a fresh SQLite database (WAL) under a temporary directory with the
demo city (16 districts, 48 station areas) and the simulator's synthetic fleet registered.
Traffic is :class:`safecity.sim.city.CitySim`'s: heartbeats, card door openings, meter
readings, and planted incidents (repeated intrusion, dense smoke, e-bikes on escape routes,
objects thrown from height, ...) in a fifth of the ticks, so alerts are written all along.
The simulator runs in **another process** and sends JSON:

- ``inproc``: one process, no broker: the simulator process writes JSON batches (1,000
  events) into a pipe; the pipeline process decodes each batch and runs
  ``Pipeline.process_raw`` (validation + registry look-up → rules → ``raise_alert`` in one
  transaction per batch). Throughput = events / wall time, as fast as the simulator sends.
  Latency at a paced 20,000 events/s: for every event, the time from the simulator stamping
  it (its ``time`` is the send time) to the commit of the batch that carried it.
- ``mqtt``: a private Mosquitto with the shipped configuration on a free port. Throughput
  is measured on the consumer side by draining a backlog: the consumer opens its
  persistent session and leaves, the simulator process publishes N events (QoS 1), the
  consumer comes back and the clock runs from its reconnect to the N-th event. The raw
  ceiling is a paho QoS 1 subscriber that only counts; then the MQTT connector (manual
  acks) + the pipeline. Latency at half the pipeline's rate, with live paced traffic:
  event time (stamped at publish) → the hand-off of its batch returned (alerts committed).
- ``registry``: 900,000 sensors in the registry; the pipeline's in-memory registry cache
  load time and the process's peak memory (RSS) after running traffic over it.
- ``sim``: precision and recall of the shipped rules against the simulator's ground truth,
  labelled synthetic (``safecity sim evaluate``), without and with a flaky network.

- ``nats``: JetStream at ``SAFECITY_BENCH_NATS`` (default the local server) with a fresh
  PostgreSQL database (``SAFECITY_BENCH_PG``): the raw ceiling (one pull consumer, fetch +
  ack, no processing), then ``safecity sensors nats-worker`` processes (1, then 2, one
  group, 8 partitions) draining a backlog of simulator events: validation, the partitioned
  republish, the rules, alerts and checkpoints in PostgreSQL. The rate is taken from the
  checkpoints' event counts between the first and the last progress.
Writes ``benchmarks/results/alert_pipeline.json`` (sections are merged into what is there).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.demo_city import seed_demo_orgs
from safecity.platform.migrations import upgrade
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit
from safecity.sensing.pipeline import Pipeline
from safecity.settings import Settings
from safecity.sim.city import CitySim, Fleet, ensure_sensors

RESULTS = Path(__file__).resolve().parent / "results" / "alert_pipeline.json"
BATCH = 1000


# --------------------------------------------------------------------------- setup


@contextmanager
def seeded_runtime(sensors: int, database_url: str = "") -> Iterator[tuple[Runtime, Fleet, str]]:
    """Migrated database (SQLite in a temporary directory unless a URL is given) with the
    demo city and the simulator's fleet; yields the runtime, the fleet and the directory."""
    with tempfile.TemporaryDirectory(prefix="sc-bench-") as tmp:
        settings = Settings(
            var_dir=Path(tmp), key_dir=Path(tmp) / "keys", database_url=database_url, log_json=False
        )
        upgrade("head", database_url=settings.effective_database_url)
        runtime = build_runtime(settings)
        try:
            with runtime.sessions.begin() as session:
                seed_demo_orgs(session, actor=audit.SYSTEM)
            with runtime.sessions.begin() as session:
                fleet = ensure_sensors(session=session, n=sensors, seed=1)
            yield runtime, fleet, tmp
        finally:
            runtime.close()


@contextmanager
def fresh_runtime(sensors: int) -> Iterator[tuple[Runtime, Fleet]]:
    with seeded_runtime(sensors) as (runtime, fleet, _tmp):
        yield runtime, fleet


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def simulator(fleet: Fleet, *, seed: int) -> CitySim:
    return CitySim(fleet, seed=seed, incident_rate=0.2)


def stamp(batch: list[dict[str, Any]], now: float) -> None:
    """Event time = send time (the latency clock); seq keeps them distinct."""
    text = datetime.fromtimestamp(now, UTC).isoformat()
    for msg in batch:
        if msg["time"] != "1970-01-01T00:00:00+00:00":
            msg["time"] = text


# --------------------------------------------------------------------------- in-process


def _producer(conn: Connection, fleet: Fleet, events: int, rate: float | None, seed: int) -> None:
    sim = simulator(fleet, seed=seed)
    per_tick = BATCH if rate is None else max(1, int(rate / 100))
    interval = None if rate is None else per_tick / rate
    sent = 0
    started = time.perf_counter()
    while sent < events:
        batch, _planted = sim.tick(per_tick)
        stamp(batch, time.time())
        conn.send_bytes(json.dumps(batch).encode())
        sent += len(batch)
        if interval is not None:
            delay = started + (sent / per_tick) * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    conn.send_bytes(b"")
    conn.close()


def run_inproc(
    runtime: Runtime, fleet: Fleet, *, events: int, rate: float | None
) -> dict[str, Any]:
    pipeline = Pipeline(sessions=runtime.sessions, connector="bench")
    pipeline.cache.refresh()
    recv, send = mp.Pipe(duplex=False)
    ctx = mp.get_context("fork")
    child = ctx.Process(target=_producer, args=(send, fleet, events, rate, 7), daemon=True)
    child.start()
    send.close()
    latencies: list[float] = []
    done = 0
    first: float | None = None
    cpu0 = time.process_time()
    while True:
        data = recv.recv_bytes()
        if not data:
            break
        if first is None:
            first = time.perf_counter()
        batch = json.loads(data)
        pipeline.process_raw(batch, source="bench")
        finished = time.time()
        done += len(batch)
        if rate is not None:
            for msg in batch:
                t = msg["time"]
                if t[0] == "2":  # skip the faulty sensors' 1970 stamps
                    latencies.append(finished - datetime.fromisoformat(t).timestamp())
    elapsed = time.perf_counter() - (first or time.perf_counter())
    cpu = time.process_time() - cpu0
    child.join(10)
    stats = pipeline.stats()
    out: dict[str, Any] = {
        "events": done,
        "seconds": round(elapsed, 2),
        "events_per_s": round(done / elapsed) if elapsed else None,
        "events_per_cpu_s": round(done / cpu) if cpu else None,
        "accepted": stats["accepted"],
        "rejected": stats["rejected"],
        "matches": stats["matches"],
        "alert_signals_written": stats["alerts"],
    }
    if rate is not None:
        out.update(
            target_rate=rate,
            latency_ms_p50=ms(percentile(latencies, 0.50)),
            latency_ms_p99=ms(percentile(latencies, 0.99)),
            latency_ms_max=ms(max(latencies) if latencies else None),
        )
    return out


def section_inproc(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_runtime(args.sensors) as (runtime, fleet):
        sustained = run_inproc(runtime, fleet, events=args.events, rate=None)
        print(f"inproc sustained: {sustained['events_per_s']} events/s", flush=True)
    with fresh_runtime(args.sensors) as (runtime, fleet):
        paced = run_inproc(runtime, fleet, events=min(args.events, 400_000), rate=20_000)
        print(f"inproc @20k/s: p99 {paced['latency_ms_p99']} ms", flush=True)
    return {
        "sustained": sustained,
        "paced_20k": paced,
        "goal": {"events_per_s": 50_000, "p99_ms_at_20k": 200},
    }


# --------------------------------------------------------------------------- MQTT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_mosquitto() -> Iterator[int]:
    import importlib.resources

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    text = (importlib.resources.files("safecity.sensing") / "data" / "mosquitto.conf").read_text()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sc-mosq-") as tmp:
        text = re.sub(
            r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1", text, flags=re.M
        )
        text = re.sub(
            r"^persistence_location .*$", f"persistence_location {tmp}/", text, flags=re.M
        )
        if os.geteuid() == 0:
            text += "\nuser root\n"
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(text)
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _mqtt_publisher(port: int, fleet: Fleet, events: int, rate: float | None, go: Any) -> None:
    """Generate every message first, wait for ``go``, then publish (QoS 1), paced or not."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from safecity.sensing.connectors.mqtt import topic_for

    sim = simulator(fleet, seed=11)
    per_tick = 500 if rate is None else max(1, int(rate / 100))
    batches = []
    total = 0
    while total < events:
        batch, _ = sim.tick(per_tick)
        batches.append(batch)
        total += len(batch)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-pub")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    go.wait(60)
    interval = None if rate is None else per_tick / rate
    started = time.perf_counter()
    last = None
    for n, batch in enumerate(batches, 1):
        stamp(batch, time.time())
        for msg in batch:
            last = client.publish(topic_for(msg["sensor_id"], msg["type"]), json.dumps(msg), qos=1)
        if interval is None and n % 10 == 0:  # keep paho's own queue bounded
            last.wait_for_publish(120)
        if interval is not None:
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    if last is not None:
        last.wait_for_publish(300)
    client.loop_stop()
    client.disconnect()


def publish(port: int, fleet: Fleet, events: int, rate: float | None) -> Any:
    """Start the publisher process; returns it once it has published everything when
    ``rate`` is None (a backlog for a consumer to drain), else at once (live traffic)."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    proc = ctx.Process(target=_mqtt_publisher, args=(port, fleet, events, rate, go), daemon=True)
    proc.start()
    go.set()
    if rate is None:
        proc.join(600)
    return proc


def _raw_client(port: int, on_message: Callable[..., None]) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-raw",
        protocol=mqtt.MQTTv5,
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe("safecity/sensors/+/+", qos=1)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 1000
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    subscribed.wait(10)
    return client


def mqtt_raw(port: int, fleet: Fleet, events: int) -> dict[str, Any]:
    """paho QoS 1 subscriber that only counts, draining a backlog of ``events``."""
    got = 0
    last = 0.0
    done = threading.Event()

    def on_message(*_: Any) -> None:
        nonlocal got, last
        got += 1
        if got >= events:
            last = time.perf_counter()
            done.set()

    client = _raw_client(port, lambda *_: None)  # create the persistent session
    client.loop_stop()
    client.disconnect()
    publish(port, fleet, events, None)
    started = time.perf_counter()
    client = _raw_client(port, on_message)
    done.wait(300)
    client.loop_stop()
    client.disconnect()
    seconds = last - started
    return {
        "messages": got,
        "seconds": round(seconds, 2),
        "msgs_per_s": round(got / seconds) if seconds > 0 else None,
    }


def mqtt_pipeline(
    runtime: Runtime, port: int, fleet: Fleet, events: int, rate: float | None
) -> dict[str, Any]:
    """The MQTT connector + pipeline: draining a backlog (rate None) or live paced traffic."""
    from safecity.sensing.connectors.deadletter import MemoryDeadLetterSink
    from safecity.sensing.connectors.mqtt import MqttConfig, MqttConnector
    from safecity.sensing.event_types import ValidatedEvent, Validator

    pipeline = Pipeline(sessions=runtime.sessions, connector="mqtt")
    pipeline.cache.refresh()
    latencies: list[float] = []
    handled = 0
    last = 0.0

    def handler(batch: list[ValidatedEvent]) -> None:
        nonlocal handled, last
        pipeline.handle(batch)
        now = time.time()
        last = time.perf_counter()
        handled += len(batch)
        if rate is not None:
            latencies.extend(now - v.time.timestamp() for v in batch)

    sink = MemoryDeadLetterSink()
    config = MqttConfig(port=port, client_id=f"bench-conn-{rate}", batch_size=500)

    def connector() -> MqttConnector:
        return MqttConnector(
            config,
            handler=handler,
            dead_letters=sink,
            validator=Validator(known_sensor=pipeline.cache.known),
        )

    if rate is None:  # create the persistent session, go away, let the backlog build
        first = connector()
        first.start()
        time.sleep(1.0)
        first.stop()
        publish(port, fleet, events, None)
        started = time.perf_counter()
        conn = connector()
        conn.start()
    else:
        conn = connector()
        conn.start()
        time.sleep(1.0)
        proc = publish(port, fleet, events, rate)
        started = time.perf_counter()
    deadline = time.monotonic() + 600
    while handled + sink.total < events and time.monotonic() < deadline:
        time.sleep(0.02)
    if rate is not None:
        proc.join(60)
    conn.stop()
    seconds = last - started
    out: dict[str, Any] = {
        "events": events,
        "handled": handled,
        "dead_letters": sink.total,
        "seconds": round(seconds, 2),
        "events_per_s": round(handled / seconds) if seconds > 0 else None,
        "alert_signals_written": pipeline.stats()["alerts"],
    }
    if rate is not None:
        out.update(
            target_rate=rate,
            latency_ms_p50=ms(percentile(latencies, 0.5)),
            latency_ms_p99=ms(percentile(latencies, 0.99)),
        )
    return out


def section_mqtt(args: argparse.Namespace) -> dict[str, Any]:
    n = args.mqtt_events
    with fresh_runtime(args.sensors) as (_runtime, fleet), private_mosquitto() as port:
        raw = mqtt_raw(port, fleet, n)
    print(f"mqtt raw: {raw['msgs_per_s']} msg/s", flush=True)
    with fresh_runtime(args.sensors) as (runtime, fleet), private_mosquitto() as port:
        full = mqtt_pipeline(runtime, port, fleet, n, None)
    print(f"mqtt pipeline: {full['events_per_s']} events/s", flush=True)
    half = round((full["events_per_s"] or 1000) / 2)
    with fresh_runtime(args.sensors) as (runtime, fleet), private_mosquitto() as port:
        paced = mqtt_pipeline(runtime, port, fleet, min(n, half * 20), half)
    print(f"mqtt @{half}/s: p99 {paced['latency_ms_p99']} ms", flush=True)
    ratio = (full["events_per_s"] or 0) / raw["msgs_per_s"] if raw["msgs_per_s"] else None
    return {
        "raw_ceiling": raw,
        "pipeline": full,
        "paced_half": paced,
        "share_of_raw": None if ratio is None else round(ratio, 3),
        "goal": {"share_of_raw": 0.5, "p99_ms_at_half": 1000},
    }


# --------------------------------------------------------------------------- registry


def section_registry(args: argparse.Namespace) -> dict[str, Any]:
    """900,000 sensors: the pipeline's cache load and the process's memory."""
    import random

    from sqlalchemy import insert

    from safecity.platform import geo
    from safecity.sensing.models import Sensor

    n = args.registry_sensors
    with fresh_runtime(2000) as (runtime, fleet):
        rng = random.Random(3)
        started = time.perf_counter()
        with runtime.engine.begin() as conn:
            rows = []
            for i in range(n):
                lat, lng = 30.9 + rng.random() * 0.6, 121.1 + rng.random() * 0.7
                rows.append(
                    {
                        "id": f"reg-{i:07d}",
                        "type": "door",
                        "lat": lat,
                        "lng": lng,
                        "h3_cell": geo.h3_cell(lat=lat, lng=lng),
                        "status": "active",
                    }
                )
                if len(rows) == 20_000:
                    conn.execute(insert(Sensor), rows)
                    rows = []
            if rows:
                conn.execute(insert(Sensor), rows)
        inserted = time.perf_counter() - started
        gc.collect()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        pipeline = Pipeline(sessions=runtime.sessions, connector="bench")
        started = time.perf_counter()
        known = pipeline.cache.refresh()
        load = time.perf_counter() - started
        sim = simulator(fleet, seed=5)
        events = 0
        started = time.perf_counter()
        while events < 200_000:
            batch, _ = sim.tick(BATCH)
            stamp(batch, time.time())
            pipeline.process_raw(batch)
            events += len(batch)
        run_s = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "sensors": known,
        "bulk_insert_s": round(inserted, 1),
        "cache_load_s": round(load, 2),
        "events_after_load": events,
        "events_per_s_after_load": round(events / run_s),
        "peak_rss_mib_before_pipeline": round(rss_before),
        "peak_rss_mib": round(rss),
        "goal": {"peak_rss_mib": 2048},
        "note": "registry import time (CSV/GeoJSON importer, 900k): see sensor_import.json",
    }


# --------------------------------------------------------------------------- sim truth


def section_sim(args: argparse.Namespace) -> dict[str, Any]:
    from safecity.sim.evaluate import evaluate

    out: dict[str, Any] = {}
    for label, loss, delay in (("clean_network", 0.0, 0.0), ("flaky_network", 0.02, 0.05)):
        with fresh_runtime(10) as (runtime, _fleet):
            report = evaluate(
                runtime, sensors=1000, days=10, seed=1, loss_rate=loss, delay_rate=delay
            )
        out[label] = report
        print(f"sim {label}: precision {report['precision']} recall {report['recall']}", flush=True)
    return out


# --------------------------------------------------------------------------- NATS


@contextmanager
def pg_runtime(sensors: int) -> Iterator[tuple[Runtime, Fleet, str]]:
    """A fresh PostgreSQL database (the NATS group's processes share it)."""
    import secrets

    from sqlalchemy import create_engine, text

    admin_url = os.environ.get(
        "SAFECITY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"sc_bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        with seeded_runtime(sensors, url) as seeded:
            yield seeded
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _nats_bodies(fleet: Fleet, events: int) -> list[bytes]:
    sim = simulator(fleet, seed=13)
    bodies: list[bytes] = []
    while len(bodies) < events:
        batch, _ = sim.tick(BATCH)
        stamp(batch, time.time())
        bodies.extend(json.dumps(m).encode() for m in batch)
    return bodies[:events]


def _checkpointed(runtime: Runtime, group: str) -> int:
    from sqlalchemy import func, select

    from safecity.sensing.partition_models import RuleCheckpoint

    with runtime.sessions() as session:
        total = session.scalar(
            select(func.sum(RuleCheckpoint.events)).where(RuleCheckpoint.group_name == group)
        )
    return int(total or 0)


def nats_group(args: argparse.Namespace, processes: int, url: str) -> dict[str, Any]:
    """Drain a backlog of raw events with ``processes`` worker processes (one group)."""
    import asyncio
    import secrets
    import signal

    import nats as nats_client

    from safecity.sensing.connectors.nats import NatsConfig, ensure_streams, publish_raw

    n = args.nats_events
    prefix = f"bench{secrets.token_hex(3)}"
    config = NatsConfig(url=url, prefix=prefix, partitions=8)
    with pg_runtime(args.sensors) as (runtime, fleet, tmp):
        bodies = _nats_bodies(fleet, n)

        async def load() -> None:
            nc = await nats_client.connect(url)
            js = nc.jetstream()
            await ensure_streams(js, config)
            await publish_raw(js, config, bodies)
            await nc.close()

        asyncio.run(load())
        env = {
            **os.environ,
            "SAFECITY_DATABASE_URL": runtime.settings.effective_database_url,
            "SAFECITY_VAR_DIR": tmp,
            "SAFECITY_KEY_DIR": str(Path(tmp) / "keys"),
        }
        safecity = str(Path(sys.executable).with_name("safecity"))
        profile = os.environ.get("SAFECITY_BENCH_PROFILE")  # cProfile output of worker 0
        procs = [
            subprocess.Popen(
                [
                    *(
                        [sys.executable, "-m", "cProfile", "-o", profile]
                        if profile and i == 0
                        else []
                    ),
                    safecity,
                    "sensors",
                    "nats-worker",
                    "--partitions",
                    "8",
                    "--url",
                    url,
                    "--prefix",
                    prefix,
                    "--worker-id",
                    f"w{i}",
                    "--status-every",
                    "0",
                    "--checkpoint-interval",
                    str(args.checkpoint_interval),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(processes)
        ]
        first_t: float | None = None
        first_n = last_n = 0
        last_change = time.perf_counter()
        deadline = time.monotonic() + 900
        try:
            while time.monotonic() < deadline:
                time.sleep(0.1)
                done = _checkpointed(runtime, prefix)
                now = time.perf_counter()
                if done and first_t is None:
                    first_t, first_n = now, done
                if done != last_n:
                    last_n, last_change = done, now
                elif first_t is not None and now - last_change > 3.0:
                    break
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

            async def drop() -> None:
                nc = await nats_client.connect(url)
                js = nc.jetstream()
                for stream in (config.ingest_stream, config.parts_stream):
                    with contextlib.suppress(Exception):
                        await js.delete_stream(stream)
                await nc.close()

            asyncio.run(drop())
    seconds = last_change - (first_t or last_change)
    measured = last_n - first_n
    return {
        "processes": processes,
        "events_published": n,
        "events_through_rules": last_n,
        "seconds": round(seconds, 2),
        "events_per_s": round(measured / seconds) if seconds > 0 else None,
    }


def section_nats(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from safecity.sensing.connectors.nats import measure_raw_ceiling

    url = os.environ.get("SAFECITY_BENCH_NATS", "nats://127.0.0.1:4222")
    raw = asyncio.run(measure_raw_ceiling(url, count=args.nats_events))
    print(f"nats raw: {raw['per_second']:.0f} msg/s", flush=True)
    one = nats_group(args, 1, url)
    print(f"nats 1 process: {one['events_per_s']} events/s", flush=True)
    two = nats_group(args, 2, url)
    print(f"nats 2 processes: {two['events_per_s']} events/s", flush=True)
    ceiling = raw["per_second"]
    return {
        "raw_ceiling": {k: round(v, 2) for k, v in raw.items()},
        "one_process": one,
        "two_processes": two,
        "share_of_raw_one_process": round((one["events_per_s"] or 0) / ceiling, 3),
        "scaling_two_over_one": round((two["events_per_s"] or 0) / (one["events_per_s"] or 1), 2),
        "goal": {"share_of_raw_per_process": 0.5, "scaling": "near-linear"},
        "note": "PostgreSQL (the group's processes share it); 8 partitions; backlog drain",
    }


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "inproc": section_inproc,
    "mqtt": section_mqtt,
    "registry": section_registry,
    "sim": section_sim,
    "nats": section_nats,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default="inproc,mqtt,registry,sim")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--mqtt-events", type=int, default=100_000)
    parser.add_argument("--nats-events", type=int, default=60_000)
    parser.add_argument(
        "--checkpoint-interval", type=float, default=1.0, help="NATS workers' (the default)"
    )
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--registry-sensors", type=int, default=900_000)
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.sections.split(","):
        started = time.perf_counter()
        section = SECTIONS[name](args)
        section["section_seconds"] = round(time.perf_counter() - started, 1)
        section["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        section["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        section["machine"] = machine()
        results[name] = section
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(dict(results.items()), indent=1)[:4000])


if __name__ == "__main__":
    main()
