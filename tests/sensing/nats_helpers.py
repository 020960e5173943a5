"""Helpers for the NATS connector tests: a reachable server, a registry, planted incidents,
worker processes, and an oracle (one in-memory engine) for the alerts expected.

Each test uses its own random subject prefix (so its own streams, consumers, lease and
checkpoint rows) and deletes its streams at the end. Without a NATS server at
``SAFECITY_TEST_NATS_URL`` (default 127.0.0.1:4222) the tests skip on a developer machine
and fail in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing import partitions as leases
from safecity.sensing import service as sensors
from safecity.sensing.connectors.nats import NatsConfig, connect, delete_streams, publish_raw
from safecity.sensing.rules import RuleEngine, RuleSet
from safecity.sensing.rules_schema import parse_rule_text
from tests.conftest import NATS_URL, service_unavailable

ROOT = Path(__file__).resolve().parents[2]

BURST_RULES = """
version: 1
rules:
  - id: test-intrusion-burst
    name: Three intrusions in one zone within a minute
    kind: count
    event: intrusion.detected
    count: 3
    within: 1m
    key: [payload.zone_id]
    severity: high
    alert: {title: alerts.repeated_intrusion, category: intrusion, cooldown: 30m}
"""


def burst_rules() -> RuleSet:
    return RuleSet([parse_rule_text(BURST_RULES, source="burst.yaml")], source="burst.yaml")


def nats_port() -> tuple[str, int]:
    """(host, port) of the test NATS server; skips (or fails in CI) when unreachable."""
    parsed = urlparse(NATS_URL)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
    try:
        with socket.create_connection((host, port), 1.0):
            pass
    except OSError as exc:
        service_unavailable("NATS", f"{NATS_URL}: {exc}")
    return host, port


def nats_config(**overrides: Any) -> NatsConfig:
    nats_port()
    values: dict[str, Any] = {
        "url": NATS_URL,
        "prefix": f"sctest{secrets.token_hex(4)}.sensors",
        "partitions": 4,
        "batch_size": 200,
        "fetch_timeout_s": 0.2,
        "ack_wait_s": 3.0,
        "lease_ttl_s": 3.0,
        "checkpoint_interval_s": 0.2,
    }
    values.update(overrides)
    return NatsConfig(**values)


@contextlib.contextmanager
def streams_deleted(config: NatsConfig) -> Iterator[NatsConfig]:
    try:
        yield config
    finally:

        async def drop() -> None:
            nc = await connect(config.url)
            try:
                await delete_streams(nc.jetstream(), config)
            finally:
                await nc.close()

        with contextlib.suppress(Exception):
            asyncio.run(drop())


# --------------------------------------------------------------------------- registry + events


def register_sensors(runtime: Runtime, count: int, *, compounds: int = 16) -> list[str]:
    """``count`` intrusion sensors spread over ``compounds`` compounds (and 1 in 8 without
    one, partitioned by H3 cell)."""
    ids = []
    with runtime.sessions.begin() as s:
        for i in range(count):
            sensor_id = f"ir-{i}"
            sensors.register(
                session=s,
                actor=None,
                sensor_id=sensor_id,
                type="intrusion",
                lng=121.40 + (i % 40) * 0.003,
                lat=31.20 + (i // 40) * 0.003,
                compound=None if i % 8 == 7 else f"compound-{i % compounds}",
            )
            ids.append(sensor_id)
    return ids


@dataclass
class Traffic:
    bodies: list[bytes] = field(default_factory=list)
    valid: list[dict[str, Any]] = field(default_factory=list)
    """The valid raw events in publish order (the oracle's input)."""
    incidents: int = 0
    invalid: int = 0


def make_traffic(
    sensor_ids: list[str], *, noise: int, incidents: int, start: datetime | None = None
) -> Traffic:
    """``noise`` heartbeats and ``incidents`` planted bursts (3 armed intrusions in a zone of
    its own, 10 s apart, from one sensor), interleaved; event times increase."""
    t0 = start or (datetime.now(UTC) - timedelta(minutes=3))
    traffic = Traffic(incidents=incidents)
    seqs: Counter[str] = Counter()
    every = max(1, noise // max(1, incidents * 3))
    planted = [
        (k, j) for k in range(incidents) for j in range(3)
    ]  # incident k's j-th event, in order
    step = timedelta(milliseconds=5)
    now = t0
    n = 0
    while n < noise or planted:
        sensor = sensor_ids[n % len(sensor_ids)]
        if planted and (n % every == 0 or n >= noise):
            k, j = planted.pop(0)
            sensor = sensor_ids[(k * 7) % len(sensor_ids)]
            body = {
                "sensor_id": sensor,
                "type": "intrusion.detected",
                "time": (t0 + timedelta(seconds=10 * j + k * 0.001)).isoformat(),
                "payload": {"zone_id": f"zone-{k}", "armed": True},
            }
        else:
            body = {
                "sensor_id": sensor,
                "type": "sensor.heartbeat",
                "time": now.isoformat(),
                "payload": {"battery_pct": 80},
            }
            now += step
        seqs[sensor] += 1
        body["seq"] = seqs[sensor]
        traffic.bodies.append(json.dumps(body).encode())
        traffic.valid.append(body)
        n += 1
    return traffic


def expected_alerts(traffic: Traffic, ruleset: RuleSet, places: dict[str, Any]) -> Counter[str]:
    """dedup key → matches, from one in-memory engine over the valid events (the oracle)."""
    engine = RuleEngine(ruleset)
    found: Counter[str] = Counter()
    for body in traffic.valid:
        lat, lng = places[body["sensor_id"]]
        event = {
            **body,
            "id": f"{body['sensor_id']}:{body['seq']}",
            "lat": lat,
            "lng": lng,
            "h3": None,
            "org_id": None,
        }
        for m in engine.process(event):
            if m.severity != "info":
                found[m.dedup_key] += 1
    return found


def sensor_places(runtime: Runtime) -> dict[str, tuple[float, float]]:
    from safecity.sensing.models import Sensor

    with runtime.sessions() as s:
        return {r[0]: (r[1], r[2]) for r in s.execute(select(Sensor.id, Sensor.lat, Sensor.lng))}


def publish(config: NatsConfig, bodies: list[bytes]) -> float:
    """Publish raw messages to the ingest stream; returns the seconds it took."""

    async def go() -> float:
        from safecity.sensing.connectors.nats import ensure_streams

        nc = await connect(config.url)
        try:
            js = nc.jetstream()
            await ensure_streams(js, config)
            began = time.monotonic()
            await publish_raw(js, config, bodies)
            return time.monotonic() - began
        finally:
            await nc.close()

    return asyncio.run(go())


def stream_state(config: NatsConfig) -> dict[str, int]:
    async def go() -> dict[str, int]:
        nc = await connect(config.url)
        try:
            js = nc.jetstream()
            parts = await js.stream_info(config.parts_stream)
            ingest = await js.consumer_info(config.ingest_stream, "ingest")
            ids: Counter[str] = Counter()
            sub = await js.pull_subscribe(f"{config.prefix}.part.*", stream=config.parts_stream)
            read = 0
            while read < parts.state.messages:
                msgs = await sub.fetch(500, timeout=5)
                for m in msgs:
                    body = json.loads(m.data)
                    ids.update(e["id"] for e in (body if isinstance(body, list) else [body]))
                read += len(msgs)
            await sub.unsubscribe()
            return {
                "parts_messages": int(parts.state.messages),
                "parts_events": sum(ids.values()),
                "parts_unique_events": len(ids),
                "ingest_pending": int(ingest.num_pending or 0),
                "ingest_ack_pending": int(ingest.num_ack_pending or 0),
            }
        finally:
            await nc.close()

    return asyncio.run(go())


def alert_counts(runtime: Runtime) -> Counter[str]:
    with runtime.sessions() as s:
        return Counter({a.dedup_key: a.count for a in s.scalars(select(Alert))})


def alerts_rows(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return len(list(s.scalars(select(Alert.id))))


def checkpointed_events(runtime: Runtime, config: NatsConfig) -> int:
    with runtime.sessions() as s:
        return sum(n for _seq, n in leases.checkpoints(s, group=config.group).values())


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# --------------------------------------------------------------------------- worker processes


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


def start_worker(
    config: NatsConfig,
    *,
    database_url: str,
    tmp: Path,
    worker_id: str,
    key_dir: Path,
    rules: str | None = BURST_RULES,
) -> WorkerProcess:
    """``safecity sensors nats-worker`` as a child process on the test's database."""
    args = [
        sys.executable,
        "-m",
        "safecity",
        "sensors",
        "nats-worker",
        "--url",
        config.url,
        "--prefix",
        config.prefix,
        "--partitions",
        str(config.partitions),
        "--worker-id",
        worker_id,
        "--batch",
        str(config.batch_size),
        "--lease-ttl",
        str(config.lease_ttl_s),
        "--ack-wait",
        str(config.ack_wait_s),
        "--checkpoint-interval",
        str(config.checkpoint_interval_s),
        "--status-every",
        "1",
    ]
    if rules is not None:
        path = tmp / f"rules-{worker_id}.yaml"
        path.write_text(rules)
        args += ["--rules", str(path)]
    env = {
        **os.environ,
        "SAFECITY_DATABASE_URL": database_url,
        "SAFECITY_VAR_DIR": str(tmp / "var"),
        "SAFECITY_KEY_DIR": str(key_dir),
        "SAFECITY_LOG_JSON": "false",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp / f"worker-{worker_id}-{secrets.token_hex(2)}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return WorkerProcess(process=process, log=log)
