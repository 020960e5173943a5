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

import heapq
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

import h3
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.errors import InvalidInput
from safecity.security import audit
from safecity.security import service as security
from safecity.security.models import User
from safecity.sensing import registry_import
from safecity.sensing import service as sensors
from safecity.sensing.ingest_api import MAX_BATCH
from safecity.sensing.models import Sensor
from safecity.sim import scenarios
from safecity.sim.scenarios import SCENARIOS, Cabinet

__all__ = [
    "SCENARIOS",
    "CitySim",
    "Fleet",
    "Planted",
    "RunStats",
    "device_token",
    "ensure_sensors",
    "run",
]

DEVICE_USERNAME: Final = "sim-device"
INGEST_PATH: Final = "/api/ingest/events"
CABINET_EVERY: Final = 200
"""One e-bike charging cabinet (a door + meter pair) per this many simulated sensors."""


# --------------------------------------------------------------------------- setup


@dataclass
class Fleet:
    """Registered simulator sensors by registry type."""

    by_type: dict[str, list[str]] = field(default_factory=dict)
    cabinets: list[Cabinet] = field(default_factory=list)

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
    fleet.cabinets = _ensure_cabinets(
        session=session, fleet=fleet, count=max(1, n // CABINET_EVERY)
    )
    return fleet


def _ensure_cabinets(*, session: Session, fleet: Fleet, count: int) -> list[Cabinet]:
    """Charging cabinets next to the first door sensors: ``cab-NNNNN-door`` + ``-meter``."""
    doors = fleet.of("door")[:count]
    if not doors:
        return []
    places = {
        r[0]: (r[1], r[2])
        for r in session.execute(
            select(Sensor.id, Sensor.lat, Sensor.lng).where(Sensor.id.in_(doors))
        )
    }
    cabinets = []
    for i, door in enumerate(doors):
        lat, lng = places[door]
        ids = (f"cab-{i:05d}-door", f"cab-{i:05d}-meter")
        for sensor_id, kind in zip(ids, ("door", "power_meter"), strict=True):
            if session.get(Sensor, sensor_id) is None:
                sensors.register(
                    session=session, actor=None, sensor_id=sensor_id, type=kind, lng=lng, lat=lat
                )
        registered = session.get(Sensor, ids[0])  # where it stands (an earlier, smaller fleet)
        assert registered is not None
        cell = h3.latlng_to_cell(registered.lat, registered.lng, 12)
        cabinets.append(Cabinet(door=ids[0], meter=ids[1], cell=cell))
    return cabinets


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
    also_categories: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "scenario": self.scenario,
                "sensor_id": self.sensor_id,
                "entity": self.entity,
                "expected_category": self.expected_category,
                "also_categories": list(self.also_categories),
                "rule_id": self.rule_id,
                "dedup_key": f"{self.rule_id}:{self.entity}" if self.rule_id else None,
                "time": self.time.isoformat(),
                "messages": self.messages,
                "synthetic": True,
            }
        )


class CitySim:
    """Makes batches of raw messages; ``incident_rate`` of the ticks plant something.

    A flaky network can be simulated: ``loss_rate`` of the messages never arrive and
    ``delay_rate`` of them arrive up to ``max_delay`` late (a gateway that buffered them),
    so the score shows what lost and late messages cost the rules.

    ``horizon`` (the end of the simulated time, when known) lets scenarios that take days
    (a group rental's week of water readings) be planted when they can still play out;
    without it (the live demo) they are not planted.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        seed: int = 1,
        incident_rate: float = 0.3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        horizon: datetime | None = None,
        loss_rate: float = 0.0,
        delay_rate: float = 0.0,
        max_delay: timedelta = timedelta(minutes=4),
    ) -> None:
        if fleet.size == 0:
            raise InvalidInput("the simulator has no sensors")
        self.fleet = fleet
        self.rng = random.Random(seed)
        self.incident_rate = incident_rate
        self.clock = clock
        self.horizon = horizon
        if not (0.0 <= loss_rate < 1.0 and 0.0 <= delay_rate < 1.0):
            raise InvalidInput("loss and delay rates are shares between 0 and 1")
        self.loss_rate = loss_rate
        self.delay_rate = delay_rate
        self.max_delay = max_delay
        self.lost = 0
        self.delayed = 0
        self._seq_base = int(time.time() * 1000) * 1000
        self._seq: dict[str, int] = {}
        self._all = [s for members in fleet.by_type.values() for s in members]
        self._scheduled: list[tuple[datetime, int, dict[str, Any], bool]] = []
        self._pushed = 0
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
        """Ordinary traffic: heartbeats, card door openings, a family's meter readings."""
        roll = self.rng.random()
        pick = self.rng.choice
        if roll < 0.15 and self.fleet.of("door"):
            door = pick(self.fleet.of("door"))
            payload: dict[str, Any] = {"door_id": f"door-{door}", "method": "card"}
            return self._msg(door, "door.opened", payload, now)
        if roll < 0.20 and self.fleet.of("water_meter"):
            meter = pick(self.fleet.of("water_meter"))
            volume = round(self.rng.uniform(150, 700))
            payload = {
                "meter_id": f"wm-{meter}",
                "volume": volume,
                "unit": "L",
                "interval_s": 86400,
            }
            return self._msg(meter, "utility.water_reading", payload, now)
        if roll < 0.25 and self.fleet.of("power_meter"):
            meter = pick(self.fleet.of("power_meter"))
            power = round(self.rng.uniform(80, 2000), 1)
            payload = {"meter_id": f"pm-{meter}", "power": power, "unit": "W", "interval_s": 3600}
            return self._msg(meter, "utility.power_reading", payload, now)
        payload = {"battery_pct": round(self.rng.uniform(40, 100), 1)}
        return self._msg(pick(self._all), "sensor.heartbeat", payload, now)

    def available(self, now: datetime) -> list[str]:
        """Scenarios that can play out now with this fleet."""
        names = []
        for name, sc in SCENARIOS.items():
            has = (
                bool(self.fleet.cabinets)
                if sc.sensor_type == "cabinet"
                else bool(self.fleet.of(sc.sensor_type))
            )
            if not has or (sc.when is not None and not sc.when(now)):
                continue
            if sc.span > timedelta(minutes=10) and (
                self.horizon is None or now + sc.span > self.horizon
            ):
                continue
            names.append(name)
        return names

    def plant(self, now: datetime) -> tuple[Planted, list[dict[str, Any]]] | None:
        """One planted incident or confounder and its messages due now (later ones are
        sent by later ticks); None when no scenario can play out now."""
        names = self.available(now)
        if not names:
            return None
        name = self.rng.choice(names)
        sc = SCENARIOS[name]
        cabinet = self.rng.choice(self.fleet.cabinets) if sc.sensor_type == "cabinet" else None
        sensor_id = cabinet.door if cabinet else self.rng.choice(self.fleet.of(sc.sensor_type))
        self._n += 1
        entity, msgs = scenarios.plant(
            name,
            rng=self.rng,
            msg=self._msg,
            sensor_id=sensor_id,
            cabinet=cabinet,
            tag=f"{self._n:06d}",
            now=now,
        )
        due = [m for m in msgs if _msg_time(m) <= now]
        for m in msgs:
            if _msg_time(m) > now:
                self._push(_msg_time(m), m, final=False)
        planted = Planted(
            kind=sc.kind,
            scenario=name,
            sensor_id=sensor_id,
            entity=entity,
            expected_category=sc.category,
            rule_id=sc.rule_id,
            time=now,
            messages=len(msgs),
            also_categories=sc.also,
        )
        return planted, due

    @property
    def scheduled(self) -> int:
        """Messages of planted items still to be sent."""
        return len(self._scheduled)

    def tick(self, size: int) -> tuple[list[dict[str, Any]], list[Planted]]:
        """One batch of about ``size`` messages (planted and due scheduled ones included)."""
        now = self.clock()
        due: list[dict[str, Any]] = []
        late: list[dict[str, Any]] = []  # already through the flaky network once
        while self._scheduled and self._scheduled[0][0] <= now:
            _at, _n, msg, final = heapq.heappop(self._scheduled)
            (late if final else due).append(msg)
        planted: list[Planted] = []
        if self.rng.random() < self.incident_rate:
            found = self.plant(now)
            if found is not None:
                planted.append(found[0])
                due.extend(found[1])
        batch = late + self._network(due, now)
        while len(batch) < size:
            batch.append(self.background(now))
        self.rng.shuffle(batch)
        batch.sort(key=lambda m: str(m["time"]))  # devices send in time order; ties mixed
        return batch, planted

    def drain(self, until: datetime) -> list[dict[str, Any]]:
        """The planted messages still held back and due by ``until`` (the end of a run)."""
        out: list[dict[str, Any]] = []
        while self._scheduled and self._scheduled[0][0] <= until:
            out.append(heapq.heappop(self._scheduled)[2])
        return out

    def _network(self, msgs: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Planted messages through a flaky network: some lost, some held back."""
        if not self.loss_rate and not self.delay_rate:
            return msgs
        arrive = []
        for msg in msgs:
            roll = self.rng.random()
            if roll < self.loss_rate:
                self.lost += 1
            elif roll < self.loss_rate + self.delay_rate:
                self.delayed += 1
                at = now + self.max_delay * self.rng.random()
                self._push(at, msg, final=True)
            else:
                arrive.append(msg)
        return arrive

    def _push(self, at: datetime, msg: dict[str, Any], *, final: bool) -> None:
        self._pushed += 1
        heapq.heappush(self._scheduled, (at, self._pushed, msg, final))


def _msg_time(msg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(msg["time"])


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
