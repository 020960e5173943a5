"""A city simulator: synthetic sensors, background traffic, planted incidents, ground truth.

    with runtime.sessions.begin() as s:
        fleet = ensure_sensors(session=s, n=500, seed=1)      # registers the missing ones
        token = device_token(session=s)                       # a device principal's token
    sim = CitySim(fleet, seed=1)
    stats = run(client, sim, token=token, rate=50, seconds=60, truth=Path("truth.jsonl"))

The sensors are the registry importer's synthetic fleet (``sc-NNNNNNN`` at points inside the
demo city's districts), registered through :mod:`safecity.sensing.registry_import` when
missing. :class:`CitySim` produces batches of raw device messages
(:mod:`safecity.sensing.event_types`): background traffic (heartbeats, card door openings,
single unarmed intrusion triggers) with, at random, a **planted incident** — repeated
intrusion in an armed zone, an e-bike charging on an escape route, dense smoke — or a
**confounder** that should not raise an alert: charging inside a flat (legitimate by day;
the shipped night rule flags it between 22:00 and 06:00), resent duplicates of an
incident's messages, a faulty sensor sending garbage (wrong unit, broken clock). Every
planted item is one JSON line in the truth file, with the alert category it should (or
should not) produce and the rule dedup key it would carry, so precision and recall of a
rule set can be computed afterwards (label the numbers "synthetic").

:func:`run` posts the batches to ``POST /api/ingest/events`` with an ``httpx.Client``
(a real server's URL) or Starlette's ``TestClient`` (the app itself, no socket) at the chosen
rate, one batch per tick.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.errors import InvalidInput
from safecity.security import audit
from safecity.security import service as security
from safecity.security.models import User
from safecity.sensing import registry_import
from safecity.sensing.ingest_api import MAX_BATCH
from safecity.sensing.models import Sensor

__all__ = ["CitySim", "Fleet", "RunStats", "device_token", "ensure_sensors", "run"]

DEVICE_USERNAME: Final = "sim-device"
INGEST_PATH: Final = "/api/ingest/events"
SCENARIOS: Final = {
    # name: (kind, sensor type, expected alert category or None, rule id)
    "repeated_intrusion": ("incident", "intrusion", "intrusion", "repeated-intrusion"),
    "ebike_escape_route": (
        "incident",
        "ebike_charger",
        "fire_hazard",
        "ebike-charging-escape-route",
    ),
    "dense_smoke": ("incident", "smoke", "fire", "smoke-dense"),
    "charging_in_flat": ("confounder", "ebike_charger", None, "ebike-charging-indoor-night"),
    "duplicates": ("confounder", "intrusion", None, "repeated-intrusion"),
    "sensor_fault": ("confounder", "smoke", None, None),
    "unarmed_intrusion": ("confounder", "intrusion", None, "repeated-intrusion"),
}


# --------------------------------------------------------------------------- setup


@dataclass
class Fleet:
    """Registered simulator sensors by registry type."""

    by_type: dict[str, list[str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.by_type.values())

    def of(self, kind: str) -> list[str]:
        return self.by_type.get(kind, [])


def ensure_sensors(*, session: Session, n: int, seed: int = 1) -> Fleet:
    """Register the synthetic fleet of ``n`` sensors where missing (an upsert of the
    importer's generated file: the same ``seed`` gives the same sensors)."""
    if not 1 <= n <= 1_000_000:
        raise InvalidInput("the simulator runs 1 to 1,000,000 sensors")
    ids = [f"sc-{i:07d}" for i in range(n)]
    ends = {ids[0], ids[-1]}
    present = set(session.scalars(select(Sensor.id).where(Sensor.id.in_(ends))))
    if present != ends:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sim-sensors.csv"
            registry_import.generate(n, path, seed=seed)
            with path.open("rb") as source:
                registry_import.import_sensors(
                    session=session, source=source, filename=path.name, crs="wgs84"
                )
    fleet = Fleet()
    rows = session.execute(
        select(Sensor.id, Sensor.type).where(Sensor.id.in_(ids), Sensor.status != "retired")
    )
    for sensor_id, kind in rows:
        fleet.by_type.setdefault(kind, []).append(sensor_id)
    for members in fleet.by_type.values():
        members.sort()
    return fleet


def device_token(*, session: Session, username: str = DEVICE_USERNAME) -> str:
    """A bearer token of the simulator's device principal (created, in the city org, if
    missing). The token is new on every call; it expires after a day."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        cities, _ = orgs.list_orgs(session=session, kind="city", limit=1)
        if not cities:
            raise InvalidInput("no city organisation: create the org tree (or the demo) first")
        change = security.create_user(
            session=session,
            actor=audit.SYSTEM,
            username=username,
            org_id=cities[0].id,
            roles=["device"],
            kind="device",
            display_name="City simulator",
        )
        user = change.user
    return security.issue_user_token(
        session=session,
        actor=audit.SYSTEM,
        user_id=user.id,
        name="safecity sim",
        ttl=timedelta(days=1),
    )


# --------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Planted:
    kind: str
    scenario: str
    sensor_id: str
    entity: str
    expected_category: str | None
    rule_id: str | None
    time: datetime
    messages: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "scenario": self.scenario,
                "sensor_id": self.sensor_id,
                "entity": self.entity,
                "expected_category": self.expected_category,
                "rule_id": self.rule_id,
                "dedup_key": f"{self.rule_id}:{self.entity}" if self.rule_id else None,
                "time": self.time.isoformat(),
                "messages": self.messages,
                "synthetic": True,
            }
        )


class CitySim:
    """Makes batches of raw messages; ``incident_rate`` of the ticks plant something."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        seed: int = 1,
        incident_rate: float = 0.3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if fleet.size == 0:
            raise InvalidInput("the simulator has no sensors")
        self.fleet = fleet
        self.rng = random.Random(seed)
        self.incident_rate = incident_rate
        self.clock = clock
        self._seq_base = int(time.time() * 1000) * 1000
        self._seq: dict[str, int] = {}
        self._all = [s for members in fleet.by_type.values() for s in members]
        self._scenarios = [name for name, (_k, kind, _c, _r) in SCENARIOS.items() if fleet.of(kind)]
        self._n = 0

    def _msg(
        self, sensor_id: str, type_name: str, payload: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        seq = self._seq.get(sensor_id, self._seq_base) + 1
        self._seq[sensor_id] = seq
        return {
            "sensor_id": sensor_id,
            "type": type_name,
            "time": at.isoformat(),
            "seq": seq,
            "payload": payload,
        }

    def background(self, now: datetime) -> dict[str, Any]:
        sensor_id = self.rng.choice(self._all)
        roll = self.rng.random()
        doors = self.fleet.of("door")
        if roll < 0.15 and doors:
            door = self.rng.choice(doors)
            return self._msg(
                door, "door.opened", {"door_id": f"door-{door}", "method": "card"}, now
            )
        payload = {"battery_pct": round(self.rng.uniform(40, 100), 1)}
        return self._msg(sensor_id, "sensor.heartbeat", payload, now)

    def plant(self, now: datetime) -> tuple[Planted, list[dict[str, Any]]]:
        """One planted incident or confounder and its messages."""
        name = self.rng.choice(self._scenarios)
        kind, sensor_type, category, rule_id = SCENARIOS[name]
        sensor_id = self.rng.choice(self.fleet.of(sensor_type))
        self._n += 1
        tag = f"{self._n:06d}"
        msgs: list[dict[str, Any]] = []
        entity = sensor_id
        if name in ("repeated_intrusion", "duplicates", "unarmed_intrusion"):
            entity = f"zone-{sensor_id}-{tag}"
            armed = name != "unarmed_intrusion"
            repeats = 3 if name == "repeated_intrusion" else 2 if name == "duplicates" else 1
            for i in range(repeats):
                at = now - timedelta(seconds=repeats - i)
                payload = {"zone_id": entity, "detector": "pir", "armed": armed}
                msgs.append(self._msg(sensor_id, "intrusion.detected", payload, at))
            if name == "duplicates":  # resent messages (same seq): two events, not four
                msgs.extend(dict(m) for m in list(msgs))
        elif name in ("ebike_escape_route", "charging_in_flat"):
            entity = f"bldg-{sensor_id}-{tag}"
            where = self.rng.choice(["corridor", "stairwell"]) if category else "flat"
            payload = {
                "building_id": entity,
                "floor": self.rng.randint(1, 30),
                "location": where,
                "detection": "power_signature",
                "power": round(self.rng.uniform(150, 600), 1),
                "unit": "W",
            }
            msgs.append(self._msg(sensor_id, "ebike.charging_indoor", payload, now))
        elif name == "dense_smoke":
            entity = f"smoke-{sensor_id}-{tag}"
            payload = {"zone_id": entity, "obscuration": round(self.rng.uniform(12, 40), 1)}
            msgs.append(self._msg(sensor_id, "smoke.detected", {**payload, "unit": "%/m"}, now))
        else:  # sensor_fault: garbage a broken detector sends (all rejected)
            entity = f"smoke-{sensor_id}-{tag}"
            msgs.append(
                self._msg(
                    sensor_id,
                    "smoke.detected",
                    {"zone_id": entity, "obscuration": 55, "unit": "ppm"},
                    now,
                )
            )
            broken = self._msg(sensor_id, "smoke.detected", {"zone_id": entity}, now)
            broken["time"] = "1970-01-01T00:00:00+00:00"
            msgs.append(broken)
        planted = Planted(
            kind=kind,
            scenario=name,
            sensor_id=sensor_id,
            entity=entity,
            expected_category=category,
            rule_id=rule_id,
            time=now,
            messages=len(msgs),
        )
        return planted, msgs

    def tick(self, size: int) -> tuple[list[dict[str, Any]], list[Planted]]:
        """One batch of about ``size`` messages (planted ones included)."""
        now = self.clock()
        batch: list[dict[str, Any]] = []
        planted: list[Planted] = []
        if self._scenarios and self.rng.random() < self.incident_rate:
            item, msgs = self.plant(now)
            planted.append(item)
            batch.extend(msgs)
        while len(batch) < size:
            batch.append(self.background(now))
        self.rng.shuffle(batch)
        return batch, planted


# --------------------------------------------------------------------------- running


@dataclass
class RunStats:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    batches: int = 0
    failed_batches: int = 0
    alerts: int = 0
    planted: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ticks(rate: float, seconds: float) -> Iterator[int]:
    """Batch sizes: one batch per second (smaller ticks at low rates), totalling rate*seconds."""
    total = max(1, round(rate * seconds))
    per = max(1, min(MAX_BATCH, round(rate)))
    while total > 0:
        size = min(per, total)
        total -= size
        yield size


class _Response(Protocol):
    status_code: int

    def json(self) -> Any: ...


class Poster(Protocol):
    """What :func:`run` needs of an HTTP client: ``httpx.Client`` or a ``TestClient``."""

    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> Any: ...


def run(
    client: Poster,
    sim: CitySim,
    *,
    token: str,
    rate: float,
    seconds: float,
    truth: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RunStats:
    """Post ``rate`` events/s for ``seconds`` to the ingest endpoint; write the truth lines."""
    if rate <= 0 or seconds <= 0:
        raise InvalidInput("rate and duration must be positive")
    headers = {"Authorization": f"Bearer {token}"}
    stats = RunStats()
    started = monotonic()
    for size in _ticks(rate, seconds):
        batch, planted = sim.tick(size)
        for item in planted:
            if truth is not None:
                truth.write(item.to_json() + "\n")
            stats.planted += 1
        response: _Response = client.post(INGEST_PATH, json=batch, headers=headers)
        stats.batches += 1
        stats.sent += len(batch)
        if response.status_code != 202:
            stats.failed_batches += 1
        else:
            body = response.json()
            stats.accepted += int(body["accepted"])
            stats.rejected += int(body["rejected"])
            stats.alerts += int(body["alerts"])
            for item in body["rejections"]:
                stats.reasons[item["reason"]] = stats.reasons.get(item["reason"], 0) + 1
        due = started + stats.sent / rate
        delay = due - monotonic()
        if delay > 0:
            sleep(delay)
    if truth is not None:
        truth.flush()
    stats.seconds = monotonic() - started
    return stats
