"""A seeded replay simulator of call, SMS, URL and transfer streams with scam episodes.

``safecity fraud sim`` and the pipeline benchmark use it to race the engine against the
first transfer. It writes *feed records* (what operators and banks would send, with
plain phone numbers and accounts of made-up people), so the whole path — intake,
pseudonyms, bus, engine — runs as in production. Everything is synthetic and labelled
so: :class:`Episode` s are the ground truth.

The population: citizens who call, text and pay their own contacts (most calls short,
some long), now and then visit a flagged ad site or pay a new payee; legitimate
telemarketers and couriers (high call rates, short calls — the engine's false-positive
traps); and scam operations. An operation works through fresh SIMs (often virtual
numbers, some with spoofed caller ids), calls many people of whom most hang up, blasts
SMS with its sites, and collects money in a few mule accounts. A victim follows one of
four scripts:

=============== ============================================================ ===========
script          first contact → steps                                        first pay
=============== ============================================================ ===========
fake_police     long call from "the police", SMS with a "case" URL, visit,   40–120 min
                screen-share app, a second call
refund          call from a spoofed service number about a refund, visit,    20–60 min
                remote-control app
investment      SMS with a trading site, visit, app, calls from an "adviser"  2–8 h
brushing        SMS offering part-time "likes" work, visit, chat app          30–180 min
=============== ============================================================ ===========
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

SCRIPTS = ("fake_police", "refund", "investment", "brushing")
MINUTE = 60.0
HOUR = 3600.0
# Shanghai's built-up area, roughly: cell locations are drawn inside it.
LAT = (31.05, 31.40)
LNG = (121.25, 121.70)


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    citizens: int = 20_000
    hours: float = 24.0
    start: datetime = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    operations: int = 8
    episodes: int = 200
    telemarketers: int = 30
    couriers: int = 60
    calls_per_day: float = 4.0
    sms_per_day: float = 2.0
    transfers_per_day: float = 0.3
    flagged_visits_per_day: float = 0.002
    flag_share: float = 0.6  # share of visits/installs on scam sites that operators flag
    report_share: float = 0.03  # answered scam calls the callee reports (victims excepted)
    confirm_after_h: tuple[float, float] = (2.0, 6.0)  # victim → police → confirmed ids

    @classmethod
    def for_city(cls, citizens: int, **overrides: Any) -> SimConfig:
        """A config whose scam operations, telemarketers and couriers scale with the
        population (the defaults are for 20,000 citizens)."""
        scale = citizens / 20_000
        return cls(
            citizens=citizens,
            operations=max(1, round(8 * scale)),
            telemarketers=max(1, round(30 * scale)),
            couriers=max(1, round(60 * scale)),
            **overrides,
        )


@dataclass
class Episode:
    """Ground truth: one scam against one victim."""

    victim_phone: str
    script: str
    operation: int
    first_contact: datetime
    first_transfer: datetime
    amount: str


@dataclass
class _Op:
    index: int
    numbers: list[str]
    domains: list[str]
    mules: list[str]
    spoofed: bool


@dataclass
class SimOutput:
    config: SimConfig
    episodes: list[Episode] = field(default_factory=list)
    records: int = 0


class _Clock:
    """Records queued by event time (a heap), released in order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, dict[str, Any]]] = []
        self._n = 0

    def put(self, at: float, feed: str, record: dict[str, Any]) -> None:
        self._n += 1
        heapq.heappush(self._heap, (at, self._n, feed, record))

    def drain(self) -> Iterator[tuple[float, str, dict[str, Any]]]:
        while self._heap:
            at, _, feed, record = heapq.heappop(self._heap)
            yield at, feed, record


class CitySim:
    def __init__(self, config: SimConfig) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.t0 = config.start.timestamp()
        self.end = self.t0 + config.hours * HOUR
        self.out = SimOutput(config=config)
        self._clock = _Clock()
        self._last_dialed: list[str] = []
        self._ids = 0
        self._used: set[str] = set()
        self.citizens = [self._mobile() for _ in range(config.citizens)]
        self.accounts = {p: self._account() for p in self.citizens}
        self.cells = {p: self._cell() for p in self.citizens}
        self.sim_days = {p: self.rng.randint(60, 4000) for p in self.citizens}
        self.ages = {
            p: self.rng.choices(["under_25", "25_59", "60_plus"], [2, 6, 2])[0]
            for p in self.citizens
        }
        self.contacts = {
            p: self.rng.sample(self.citizens, k=min(len(self.citizens) - 1, 12))
            for p in self.citizens
        }
        self.ad_domains = [f"promo{i}.example.cn" for i in range(40)]
        self.scam_numbers: list[str] = []
        self.scam_domains: list[str] = []
        self.scam_targets: set[str] = set()  # everyone a scam number called or texted

    # ------------------------------------------------------------ identities

    def _mobile(
        self, prefixes: tuple[str, ...] = ("138", "139", "186", "158", "135"), total: int = 11
    ) -> str:
        while True:
            prefix = self.rng.choice(prefixes)
            rest = total - len(prefix)
            number = prefix + f"{self.rng.randrange(10**rest):0{rest}d}"
            if number not in self._used:
                self._used.add(number)
                return number

    def _account(self) -> str:
        return "6222" + f"{self.rng.randrange(10**15):015d}"

    def _cell(self) -> tuple[float, float]:
        return (round(self.rng.uniform(*LAT), 4), round(self.rng.uniform(*LNG), 4))

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self.c.seed}-{self._ids}"

    @staticmethod
    def _iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    # ------------------------------------------------------------ emitters

    def call(
        self,
        at: float,
        caller: str,
        callee: str,
        duration: float,
        *,
        caller_id_type: str = "normal",
        sim_activated: date | None = None,
    ) -> None:
        if at >= self.end:
            return
        lat, lng = self.cells.get(callee) or self._cell()
        record: dict[str, Any] = {
            "id": self._id("call"),
            "caller": caller,
            "callee": callee,
            "started_at": self._iso(at),
            "caller_id_type": caller_id_type,
            "cell_lat": lat,
            "cell_lng": lng,
            "callee_age_band": self.ages.get(callee),
        }
        if sim_activated is None and caller in self.sim_days:
            sim_activated = self.c.start.date() - timedelta(days=self.sim_days[caller])
        if sim_activated is not None:
            record["caller_sim_activated_on"] = sim_activated.isoformat()
        self._clock.put(at, "call", record)
        end = at + max(1.0, duration)
        if end < self.end:
            self._clock.put(end, "call", {**record, "ended_at": self._iso(end)})

    def sms(self, at: float, sender: str, recipient: str, urls: list[str]) -> None:
        if at < self.end:
            self._clock.put(
                at,
                "sms",
                {
                    "id": self._id("sms"),
                    "sender": sender,
                    "recipient": recipient,
                    "sent_at": self._iso(at),
                    "urls": [f"https://{u}/" for u in urls],
                },
            )

    def web(self, at: float, subject: str, domain: str, kind: str, *, flag: float = 1.0) -> None:
        if at < self.end and self.rng.random() < flag:
            self._clock.put(
                at,
                "web",
                {
                    "id": self._id("web"),
                    "subject": subject,
                    "url": f"https://{domain}/a",
                    "kind": kind,
                    "flagged_by": "operator",
                    "seen_at": self._iso(at),
                },
            )

    def transfer(self, at: float, payer: str, payee_account: str, amount: float, new: bool) -> None:
        if at < self.end:
            self._clock.put(
                at,
                "transfer",
                {
                    "id": self._id("tx"),
                    "payer_account": self.accounts[payer],
                    "payer_phone": payer,
                    "payee_account": payee_account,
                    "amount": f"{amount:.2f}",
                    "channel": "mobile_app",
                    "new_payee": new,
                    "attempted_at": self._iso(at),
                },
            )

    def report(self, at: float, kind: str, value: str) -> None:
        if at < self.end:
            self._clock.put(
                at,
                "report",
                {
                    "id": self._id("rep"),
                    "identifiers": [{"kind": kind, "value": value}],
                    "reported_at": self._iso(at),
                },
            )

    def confirmed(self, at: float, kind: str, value: str) -> None:
        if at < self.end:
            self._clock.put(
                at,
                "confirmed",
                {
                    "id": self._id("conf"),
                    "kind": kind,
                    "value": value,
                    "case_id": self._id("case"),
                    "confirmed_at": self._iso(at),
                },
            )

    # ------------------------------------------------------------ background

    def _poisson_times(self, rate_per_day: float) -> Iterator[float]:
        if rate_per_day <= 0:
            return
        t = self.t0
        while True:
            t += self.rng.expovariate(rate_per_day / (24 * HOUR))
            if t >= self.end:
                return
            hour = ((t - self.t0) / HOUR) % 24
            if 1 <= hour < 7 and self.rng.random() < 0.85:
                continue  # people sleep
            yield t

    def background(self) -> None:
        rng = self.rng
        for person in self.citizens:
            for t in self._poisson_times(self.c.calls_per_day):
                long = rng.random() < 0.06
                duration = rng.uniform(600, 2400) if long else rng.lognormvariate(math.log(70), 1.0)
                self.call(t, person, rng.choice(self.contacts[person]), duration)
            for t in self._poisson_times(self.c.sms_per_day):
                self.sms(t, person, rng.choice(self.contacts[person]), [])
            for t in self._poisson_times(self.c.transfers_per_day):
                new = rng.random() < 0.12
                payee = self._account() if new else self.accounts[rng.choice(self.contacts[person])]
                big = rng.random() < 0.05
                amount = (
                    rng.uniform(10_000, 80_000) if big else rng.lognormvariate(math.log(300), 1.1)
                )
                self.transfer(t, person, payee, amount, new)
            for t in self._poisson_times(self.c.flagged_visits_per_day):
                self.web(t, person, rng.choice(self.ad_domains), "visit")
        for _ in range(self.c.telemarketers):
            prefix = rng.choice(("170", "4008", "0216"))
            number = self._mobile((prefix,), total=10 if prefix == "4008" else 11)
            if prefix == "170":
                self.sim_days[number] = rng.randint(20, 1500)
            self._dialer(
                number,
                rate_per_hour=rng.uniform(20, 60),
                answer_share=0.35,
                mean_talk=rng.uniform(40, 150),
                hours=(9, 18),
            )
        for _ in range(self.c.couriers):
            number = self._mobile(("138", "186"))
            self.sim_days[number] = rng.randint(30, 2000)
            self._dialer(
                number,
                rate_per_hour=rng.uniform(8, 20),
                answer_share=0.8,
                mean_talk=25,
                hours=(8, 20),
            )
            for t in self._poisson_times(6):  # customers call couriers back
                self.call(t, rng.choice(self.citizens), number, rng.uniform(10, 60))

    def _dialer(
        self,
        number: str,
        *,
        rate_per_hour: float,
        answer_share: float,
        mean_talk: float,
        hours: tuple[int, int],
        caller_id_type: str = "normal",
        sim_activated: date | None = None,
        start: float | None = None,
        stop: float | None = None,
    ) -> list[tuple[float, str]]:
        """Calls from ``number`` to random citizens; the answered (time, callee) pairs."""
        rng = self.rng
        t = self.t0 if start is None else start
        stop = self.end if stop is None else stop
        answered: list[tuple[float, str]] = []
        self._last_dialed = []
        while True:
            t += rng.expovariate(rate_per_hour / HOUR)
            if t >= stop:
                return answered
            hour = ((t - self.t0) / HOUR) % 24
            if not hours[0] <= hour < hours[1]:
                continue
            callee = rng.choice(self.citizens)
            self._last_dialed.append(callee)
            if rng.random() < answer_share:
                self.call(
                    t,
                    number,
                    callee,
                    rng.expovariate(1 / mean_talk) + 5,
                    caller_id_type=caller_id_type,
                    sim_activated=sim_activated,
                )
                answered.append((t, callee))
            else:
                self.call(
                    t,
                    number,
                    callee,
                    rng.uniform(1, 12),
                    caller_id_type=caller_id_type,
                    sim_activated=sim_activated,
                )

    # ------------------------------------------------------------ scams

    def scams(self) -> None:
        rng = self.rng
        day = self.c.start.date()
        ops = [
            _Op(
                index=i,
                numbers=[self._mobile(("170", "171", "165", "138")) for _ in range(4)],
                domains=[f"op{i}-{k}.example.top" for k in range(3)],
                mules=[self._account() for _ in range(4)],
                spoofed=rng.random() < 0.4,
            )
            for i in range(self.c.operations)
        ]
        for op in ops:
            self.scam_numbers.extend(op.numbers)
            self.scam_domains.extend(op.domains)
        victims = rng.sample(self.citizens, k=min(self.c.episodes, len(self.citizens)))
        for op in ops:  # each number dials out all day; most hang up
            for number in op.numbers:
                activated = day - timedelta(days=rng.randint(0, 20))
                answered = self._dialer(
                    number,
                    rate_per_hour=rng.uniform(15, 45),
                    answer_share=0.12,
                    mean_talk=40,
                    hours=(8, 22),
                    sim_activated=activated,
                    caller_id_type="spoofed_suspect" if op.spoofed else "normal",
                )
                self.scam_targets.update(self._last_dialed)
                for t, _ in answered:  # a few people report the number
                    if rng.random() < self.c.report_share:
                        self.report(t + rng.uniform(5, 60) * MINUTE, "phone", number)
                for t in self._poisson_times(rng.uniform(20, 80)):  # SMS blasts
                    target = rng.choice(self.citizens)
                    self.scam_targets.add(target)
                    self.sms(t, number, target, [rng.choice(op.domains)])
        for victim in victims:
            self._episode(rng.choice(ops), victim, rng.choice(SCRIPTS), day)

    def _episode(self, op: _Op, victim: str, script: str, day: date) -> None:
        rng = self.rng
        fs = self.c.flag_share
        number = rng.choice(op.numbers)
        domain = rng.choice(op.domains)
        mule = rng.choice(op.mules)
        start = rng.uniform(self.t0 + 1 * HOUR, self.end - 10 * HOUR)
        hour = ((start - self.t0) / HOUR) % 24
        if hour < 8:
            start += (8 - hour) * HOUR
        kw: dict[str, Any] = {
            "sim_activated": day - timedelta(days=rng.randint(0, 20)),
            "caller_id_type": "spoofed_suspect" if op.spoofed else "normal",
        }
        if script in ("fake_police", "refund"):
            talk = (
                rng.uniform(15, 40) * MINUTE
                if script == "fake_police"
                else rng.uniform(8, 25) * MINUTE
            )
            self.call(start, number, victim, talk, **kw)
            if rng.random() < 0.7:
                self.sms(start + rng.uniform(3, 10) * MINUTE, number, victim, [domain])
            self.web(start + rng.uniform(8, 20) * MINUTE, victim, domain, "visit", flag=fs)
            if rng.random() < 0.7:
                self.web(
                    start + rng.uniform(15, 30) * MINUTE, victim, domain, "app_install", flag=fs
                )
            if rng.random() < 0.6:
                self.call(
                    start + talk + rng.uniform(5, 20) * MINUTE,
                    number,
                    victim,
                    rng.uniform(5, 20) * MINUTE,
                    **kw,
                )
            delay = rng.uniform(40, 120) if script == "fake_police" else rng.uniform(20, 60)
            first = start + delay * MINUTE
        else:
            self.sms(start, number, victim, [domain])
            self.web(start + rng.uniform(5, 60) * MINUTE, victim, domain, "visit", flag=fs)
            if rng.random() < 0.8:
                self.web(
                    start + rng.uniform(60, 120) * MINUTE, victim, domain, "app_install", flag=fs
                )
            if script == "investment":
                self.call(
                    start + rng.uniform(1, 2) * HOUR,
                    number,
                    victim,
                    rng.uniform(10, 30) * MINUTE,
                    **kw,
                )
                first = start + rng.uniform(2, 8) * HOUR
            else:
                first = start + rng.uniform(30, 180) * MINUTE
        amount = rng.uniform(2_000, 200_000) if script != "brushing" else rng.uniform(50, 500)
        self.transfer(first, victim, mule, amount, True)
        confirm = first + rng.uniform(*self.c.confirm_after_h) * HOUR
        for kind, value in (("phone", number), ("domain", domain), ("account", mule)):
            self.confirmed(confirm, kind, value)
        if first < self.end:
            self.out.episodes.append(
                Episode(
                    victim,
                    script,
                    op.index,
                    datetime.fromtimestamp(start, UTC),
                    datetime.fromtimestamp(first, UTC),
                    f"{amount:.2f}",
                )
            )

    # ------------------------------------------------------------ run

    def records(self) -> Iterator[tuple[float, str, dict[str, Any]]]:
        """All feed records, in event-time order: (epoch seconds, feed, record)."""
        self.background()
        self.scams()
        for item in self._clock.drain():
            self.out.records += 1
            yield item


def generate(config: SimConfig) -> tuple[CitySim, Iterator[tuple[float, str, dict[str, Any]]]]:
    sim = CitySim(config)
    return sim, sim.records()
