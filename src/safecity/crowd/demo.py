"""The Bund crowd demo (issue 8): a weekly surge forecast hours ahead by a model told nothing.

``safecity demo`` calls :func:`simulate_bund`, which

1. imports the sample hotspots (``crowd/data/bund_hotspots.geojson``: the Bund promenade,
   East Nanjing Road, Yu Garden, People's Square, Lujiazui riverside) through
   :func:`safecity.crowd.hotspots.import_geojson` (an idempotent upsert by code);
2. plays :data:`WEEKS` weeks of hourly counts of a synthetic crowd (:class:`Crowd`, a
   seeded generator) into the product's ingest path,
   :func:`safecity.crowd.counts.record_counts`, as a counting gateway (:data:`GATEWAY`,
   a device principal), one report per counter and hour;
3. trains the product's model (:func:`safecity.crowd.forecasting.train`, the shipped
   configuration), forecasts from the last complete hour
   (:func:`~safecity.crowd.forecasting.run_forecast`) and assesses the forecasts
   (:func:`safecity.crowd.risk.assess_forecasts`), which raises the alert and its advice.

**The crowd.** Every hotspot has a daily shape (a night low, a morning rise, a busy
afternoon, the evening high), a higher level on weekends and public holidays (the same
holiday table the forecaster's calendar reads), and multiplicative noise. Once a week, on
the same local weekday at the same local hour, the promenade fills far beyond its usual
evening (a show on the river: a build-up, two full hours from the peak hour, a release) and
its neighbours get a little of the overflow while keeping room. The surge is **only in the
counts**: the forecaster gets the counts and the holiday calendar, nothing else (no event
flag, no schedule, no peak hour; :func:`~safecity.crowd.forecasting.run_forecast` takes
only a time). What it has to learn is that the surge **recurs weekly**: the same weekday
and hour in each past week (its seasonal lags 1-4 weeks back and the target's weekday and
hour).

**The demo clock is real time.** The timeline is laid out so that the surge recurs on the
weekday of the demo's start and peaks in the hour that starts two hours after the start of
the current hour: with the last complete hour ``t`` as the forecast origin, the peak hour
is ``t + 3 h``, within the model's 1-3 h horizons, and it starts more than an hour (at
most two) after the forecast is made. The surge's weekday and hour are kept in
``<var>/demo/crowd.json`` for the live feeder only; the forecaster never reads it.

**Idempotent.** Counts are reported only for hours whose stored count differs from the
generator's (missing, or played by an earlier run whose surge hour was another): a second
run at the same time reports nothing; a run on another day or hour rewrites the surge hours
so that the history stays one consistent weekly pattern. The alert is raised once per
hotspot and target hour by :mod:`safecity.crowd.risk`.

**The live feeder** (job :data:`FEEDER_JOB`, every 10 minutes, registered only in the
``safecity demo`` process and gated by the setting ``demo_crowd``): reports the last
complete hours of the same generator (same seed, same surge), so the hourly
``crowd.forecast`` job finds fresh counts and keeps forecasting, and the surge's hours
arrive as they happen.

The numbers are illustrative: the levels are set from each hotspot's warn threshold, not
from any measured crowd.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.panel import Panel
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.crowd import counts as crowd_counts
from safecity.crowd import hotspots as crowd_hotspots
from safecity.crowd.counts import MAX_BATCH, floor_hour
from safecity.crowd.datasets import HOUR, zone
from safecity.crowd.forecast import ForecastConfig, default_holidays
from safecity.crowd.models import CrowdCount, CrowdForecast, CrowdHotspot, CrowdRisk
from safecity.platform import jobs
from safecity.platform.db import transaction
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.settings import Settings

log = logging.getLogger("safecity.crowd.demo")

FloatArray = npt.NDArray[np.float64]

SEED = 8
WEEKS = 10
"""Weeks of history played in: ten surges to learn from. The product model needs four
weeks (a week of lags, a week to fit, two weeks of calibration), but the fewer the surges
the more of the peak it shrinks towards the usual evening: with eight weeks a surge on a
Friday at 20:00 was forecast with its upper bound only 3 % over the warn line."""
TZ = "Asia/Shanghai"
REGION = "CN"
PROMENADE = "bund-promenade"
FEEDER_JOB = "crowd.demo_feed"
FEED_CATCHUP = 6
"""Complete hours the feeder looks back over (hours missed while the demo was down)."""
STATE_FILE = Path("demo") / "crowd.json"

GATEWAY = Principal(
    id="demo-crowd-gateway",
    kind="device",
    username="demo-crowd-gateway",
    roles=frozenset({"device"}),
    org_id="",
    visible_org_ids=None,
)
"""The demo's counting gateway: reports counts like a sensor gateway's device key."""

PROFILE = np.array(
    [
        *(0.35, 0.2, 0.12, 0.08, 0.07, 0.1, 0.18, 0.3, 0.4, 0.5, 0.58, 0.62),  # 00:00-11:00
        *(0.65, 0.68, 0.7, 0.72, 0.75, 0.82, 0.92, 1.0, 1.0, 0.9, 0.72, 0.52),  # 12:00-23:00
    ]
)
"""Share of the usual evening high by local hour."""
REST_DAY = 1.25
"""Weekends and public holidays are this much busier."""
USUAL = {
    PROMENADE: 0.40,
    "nanjing-road-east": 0.38,
    "yuyuan": 0.35,
    "peoples-square": 0.30,
    "lujiazui-riverside": 0.35,
}
"""Each hotspot's usual evening high on a working day, as a share of its warn threshold
(a usual day never comes near it)."""
DEFAULT_USUAL = 0.3
PEAK = 1.1
"""The promenade's count in the surge's peak hours, as a multiple of its warn threshold:
over the warn line, under the critical one (the place is not yet full)."""
OVERFLOW = {"nanjing-road-east": 0.12, "yuyuan": 0.06, "lujiazui-riverside": 0.15}
"""Extra people at the neighbours in the peak hour (share of their own warn threshold):
busier, with room left."""
SHAPE = {-2: 0.12, -1: 0.35, 0: 1.0, 1: 0.95, 2: 0.4}
"""The surge by hour from its peak (share of the peak's extra people): a two-hour build-up,
two full hours (the show and the crowd staying on), a release. The hour before the peak
stays well under the warn line, so the demo's alert is for the peak hour alone."""
NOISE = 0.06
"""Sigma of the multiplicative (log-normal) noise."""


# --------------------------------------------------------------------------- the crowd


@dataclass(frozen=True)
class Surge:
    """When the weekly surge peaks: local weekday (0 = Monday) and the hour that starts it."""

    weekday: int
    hour: int
    tz: str = TZ

    @classmethod
    def for_demo(cls, now: datetime, tz: str = TZ) -> Surge:
        """The surge of a demo started at ``now``: today's weekday, peaking in the hour that
        starts 2 h after the current hour's start (the last complete hour + 3 h)."""
        peak = peak_hour(now).astimezone(zone(tz))
        return cls(weekday=peak.weekday(), hour=peak.hour, tz=tz)


def peak_hour(now: datetime) -> datetime:
    """The UTC start of the simulated peak hour for a demo started at ``now``."""
    return floor_hour(now) + 2 * HOUR


@dataclass(frozen=True)
class Spot:
    """What the generator needs of a hotspot."""

    code: str
    warn: float
    sensors: int


@dataclass(frozen=True)
class Crowd:
    """The synthetic Bund crowd: a deterministic function of the seed, the surge and the
    UTC hour (the same hour always gives the same counts, whichever run asks)."""

    spots: tuple[Spot, ...]
    surge: Surge
    seed: int = SEED

    @classmethod
    def of(cls, hotspots: list[CrowdHotspot], surge: Surge, seed: int = SEED) -> Crowd:
        spots = tuple(
            Spot(h.code, crowd_hotspots.thresholds(h).warn_people, max(h.expected_sensors, 1))
            for h in sorted(hotspots, key=lambda h: h.code)
        )
        return cls(spots=spots, surge=surge, seed=seed)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.spots)

    def _usual(self, local: datetime) -> FloatArray:
        """Noise-free usual count of every hotspot at a local hour."""
        rest = _rest_day(local.date())
        factor = PROFILE[local.hour] * (REST_DAY if rest else 1.0)
        return np.array([USUAL.get(s.code, DEFAULT_USUAL) * s.warn * factor for s in self.spots])

    def _extra(self, local: datetime) -> FloatArray:
        """The surge's extra people at a local hour (zero outside the surge)."""
        out = np.zeros(len(self.spots))
        tz = zone(self.surge.tz)
        for offset, share in SHAPE.items():
            peak = (local.astimezone(UTC) - offset * HOUR).astimezone(tz)
            if peak.weekday() != self.surge.weekday or peak.hour != self.surge.hour:
                continue
            usual = self._usual(peak)
            for j, s in enumerate(self.spots):
                if s.code == PROMENADE:
                    out[j] = share * max(PEAK * s.warn - usual[j], 0.0)
                else:
                    out[j] = share * OVERFLOW.get(s.code, 0.0) * s.warn
        return out

    def _rng(self, hour: datetime) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(hour.timestamp()) // 3600])

    def totals(self, hours: list[datetime]) -> FloatArray:
        """People per hour, ``(len(hours), len(spots))``, whole numbers."""
        tz = zone(self.surge.tz)
        out = np.zeros((len(hours), len(self.spots)))
        for i, hour in enumerate(hours):
            local = hour.astimezone(tz)
            noise = self._rng(hour).lognormal(0.0, NOISE, size=len(self.spots))
            out[i] = np.round(self._usual(local) * noise + self._extra(local))
        return out

    def reports(self, hour: datetime, code: str, total: float) -> list[dict[str, Any]]:
        """One report per counter of ``code`` for ``hour``, summing exactly to ``total``."""
        j = self.codes.index(code)
        n = self.spots[j].sensors
        rng = np.random.default_rng([self.seed, int(hour.timestamp()) // 3600, j + 1])
        weights = (1.0 + 0.5 * np.arange(n)) * rng.uniform(0.9, 1.1, size=n)
        parts = np.floor(total * weights / weights.sum())
        parts[0] += total - parts.sum()
        return [
            {
                "hotspot": code,
                "sensor": f"{code}-c{k + 1}",
                "hour": hour,
                "count": int(parts[k]),
                "kind": "counter",
            }
            for k in range(n)
        ]


def _rest_day(day: date) -> bool:
    kind = default_holidays().get((REGION, day))
    if kind is not None:
        return kind == "holiday"
    return day.weekday() >= 5


# --------------------------------------------------------------------------- seeding, feeding


def sample_path() -> Path:
    return Path(str(resources.files("safecity.crowd").joinpath("data", "bund_hotspots.geojson")))


def seed_bund(runtime: Runtime) -> crowd_hotspots.ImportReport:
    """Import the sample Bund hotspots (idempotent: an unchanged file changes nothing)."""
    text = sample_path().read_text(encoding="utf-8")
    with transaction(runtime.sessions) as session:
        return crowd_hotspots.import_geojson(session=session, principal=audit.SYSTEM, text=text)


def sample_codes() -> list[str]:
    data = json.loads(sample_path().read_text(encoding="utf-8"))
    return [str(f["properties"]["code"]) for f in data["features"]]


def _hotspots(session: Session, codes: list[str]) -> list[CrowdHotspot]:
    return list(
        session.scalars(
            select(CrowdHotspot).where(CrowdHotspot.code.in_(codes), CrowdHotspot.active.is_(True))
        )
    )


def feed(
    session: Session,
    *,
    crowd: Crowd,
    hotspots: list[CrowdHotspot],
    start: datetime,
    end: datetime,
    now: datetime,
) -> int:
    """Report the hours in ``[start, end)`` whose stored count is not the generator's
    (missing, a gap, or played by a run with another surge); returns the reports sent."""
    start, end = floor_hour(start), floor_hour(end)
    hours = [start + i * HOUR for i in range(int((end - start) / HOUR))]
    if not hours or not hotspots:
        return 0
    by_id = {h.id: h.code for h in hotspots}
    stored: dict[tuple[str, datetime], float] = {}
    for hotspot_id, hour, count, status in session.execute(
        select(CrowdCount.hotspot_id, CrowdCount.hour, CrowdCount.count, CrowdCount.status).where(
            CrowdCount.hotspot_id.in_(sorted(by_id)),
            CrowdCount.hour >= start,
            CrowdCount.hour < end,
        )
    ):
        if count is not None and status == "ok":
            stored[(by_id[hotspot_id], hour.astimezone(UTC))] = float(count)
    values = crowd.totals(hours)
    wanted = {h.code for h in hotspots}
    reports: list[dict[str, Any]] = []
    for i, hour in enumerate(hours):
        for j, code in enumerate(crowd.codes):
            if code not in wanted:
                continue
            have = stored.get((code, hour))
            if have is not None and abs(have - values[i, j]) < 0.5:
                continue
            reports.extend(crowd.reports(hour, code, float(values[i, j])))
    for k in range(0, len(reports), MAX_BATCH):
        batch = reports[k : k + MAX_BATCH]
        crowd_counts.record_counts(session, principal=GATEWAY, reports=batch, now=now)
    return len(reports)


def state_path(settings: Settings) -> Path:
    return settings.var_dir / STATE_FILE


def save_state(settings: Settings, crowd: Crowd) -> None:
    """Keep the surge and seed for the live feeder (never read by the forecaster)."""
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "seed": crowd.seed,
        "weekday": crowd.surge.weekday,
        "hour": crowd.surge.hour,
        "tz": crowd.surge.tz,
        "hotspots": list(crowd.codes),
    }
    path.write_text(json.dumps(state), encoding="utf-8")


def load_state(settings: Settings) -> tuple[int, Surge, list[str]] | None:
    try:
        state = json.loads(state_path(settings).read_text(encoding="utf-8"))
        surge = Surge(weekday=int(state["weekday"]), hour=int(state["hour"]), tz=str(state["tz"]))
        return int(state["seed"]), surge, [str(c) for c in state["hotspots"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def feed_recent(session: Session, *, settings: Settings, now: datetime) -> int:
    """The live feeder's step: report the last :data:`FEED_CATCHUP` complete hours that
    are not stored yet (0 when the demo has not been simulated here)."""
    state = load_state(settings)
    if state is None:
        return 0
    seed, surge, codes = state
    hotspots = _hotspots(session, codes)
    if not hotspots:
        return 0
    crowd = Crowd.of(hotspots, surge, seed)
    end = floor_hour(now)
    return feed(
        session, crowd=crowd, hotspots=hotspots, start=end - FEED_CATCHUP * HOUR, end=end, now=now
    )


def feed_job(ctx: jobs.JobContext) -> int:
    """Demo only: report the simulated Bund crowd's last complete hours (demo crowd feeder)."""
    if not ctx.runtime.settings.demo_crowd:
        return 0
    return feed_recent(ctx.session, settings=ctx.runtime.settings, now=ctx.now)


def register(registry: jobs.JobRegistry | None = None) -> jobs.Job:
    """Register :data:`FEEDER_JOB` (every 10 minutes); idempotent."""
    return (registry or jobs.registry).register(FEEDER_JOB, feed_job, every="10m")


# --------------------------------------------------------------------------- the scenario


@dataclass
class BundOutcome:
    """What :func:`simulate_bund` did and what the forecaster said about the peak."""

    now: datetime
    origin: datetime
    """The forecast's origin: the last complete hour (its count is the latest it read)."""
    peak: datetime
    """The simulated peak hour (UTC start); the forecaster was not told it."""
    surge: Surge
    hotspot: str
    name_zh: str
    name_en: str
    warn: float
    critical: float
    peak_count: float
    """The simulated count of the peak hour (not yet counted when the forecast is made)."""
    point: float | None = None
    lower: float | None = None
    upper: float | None = None
    horizon: int | None = None
    """Hours from the origin to the peak hour in the forecast that raised the alert."""
    level: str | None = None
    alert_id: str | None = None
    raised_now: bool = False
    """False when this run found the alert already raised (a second run)."""
    advice: dict[str, Any] = field(default_factory=dict)
    other_risks: list[tuple[str, datetime, str]] = field(default_factory=list)
    """Any other (hotspot, hour, level) this run alerted on (none expected)."""
    reports: int = 0
    model_version: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def lead(self) -> timedelta:
        """From the forecast to the start of the peak hour."""
        return self.peak - self.now


def training_config() -> ForecastConfig:
    """The shipped model's configuration on one thread: the same model (LightGBM is run
    deterministic), but the demo trains while the server, the simulator and the feeders
    share the machine, and two OpenMP threads on a busy two-core box took over ten times
    as long as one in our runs."""
    from safecity.crowd import forecasting

    return dataclasses.replace(forecasting.PRODUCT_CONFIG, threads=1)


def simulate_bund(
    runtime: Runtime, now: datetime | None = None, *, weeks: int = WEEKS, seed: int = SEED
) -> BundOutcome:
    """Seed the hotspots, play ``weeks`` of counts, train, forecast, assess (see the module
    docstring). The forecaster is given nothing but the counts: the surge's hour is used
    only to generate them."""
    from safecity.crowd import forecasting, risk

    now = (now or datetime.now(UTC)).astimezone(UTC)
    settings = runtime.settings
    timings: dict[str, float] = {}
    started = time.perf_counter()
    seed_bund(runtime)
    codes = sample_codes()
    surge = Surge.for_demo(now)
    origin = forecasting.last_complete_hour(now)
    peak = peak_hour(now)
    with transaction(runtime.sessions) as session:
        hotspots = _hotspots(session, codes)
        crowd = Crowd.of(hotspots, surge, seed)
        save_state(settings, crowd)
        end = origin + HOUR
        sent = feed(
            session,
            crowd=crowd,
            hotspots=hotspots,
            start=end - weeks * 7 * 24 * HOUR,
            end=end,
            now=now,
        )
    timings["counts"] = time.perf_counter() - started
    mark = time.perf_counter()
    with transaction(runtime.sessions) as session:
        model = forecasting.train(
            session, settings=settings, now=now, weeks=weeks, config=training_config()
        )
        version = model.version
    timings["train"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with transaction(runtime.sessions) as session:
        run = forecasting.run_forecast(session, settings=settings, now=now)
        assessed = risk.assess_forecasts(session, forecasts=run.forecasts, now=now)
        spot = session.scalars(select(CrowdHotspot).where(CrowdHotspot.code == PROMENADE)).one()
        limits = crowd_hotspots.thresholds(spot)
        j = crowd.codes.index(PROMENADE)
        outcome = BundOutcome(
            now=now,
            origin=origin,
            peak=peak,
            surge=surge,
            hotspot=spot.code,
            name_zh=spot.name_zh,
            name_en=spot.name_en,
            warn=limits.warn_people,
            critical=limits.critical_people,
            peak_count=float(crowd.totals([peak])[0, j]),
            reports=sent,
            model_version=version,
        )
        forecast = session.scalar(
            select(CrowdForecast).where(
                CrowdForecast.hotspot_id == spot.id,
                CrowdForecast.origin == origin,
                CrowdForecast.target == peak,
            )
        )
        if forecast is not None:
            outcome.point, outcome.lower, outcome.upper = (
                forecast.point,
                forecast.lower,
                forecast.upper,
            )
            outcome.horizon = forecast.horizon
        found = session.scalar(
            select(CrowdRisk).where(CrowdRisk.hotspot_id == spot.id, CrowdRisk.target == peak)
        )
        if found is not None:
            outcome.level = found.level
            outcome.alert_id = found.alert_id
            outcome.advice = dict(found.advice)
            outcome.raised_now = any(r.id == found.id for r in assessed.risks)
        names = {h.id: h.code for h in hotspots}
        outcome.other_risks = [
            (names.get(r.hotspot_id, r.hotspot_id), r.target, r.level)
            for r in assessed.risks
            if found is None or r.id != found.id
        ]
    timings["forecast"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    outcome.seconds = {k: round(v, 2) for k, v in timings.items()}
    log.info("crowd demo: %s", outcome.seconds)
    return outcome


# --------------------------------------------------------------------------- printing


def _local(when: datetime, tz: str = TZ) -> str:
    return when.astimezone(zone(tz)).strftime("%a %H:%M")


def print_outcome(outcome: BundOutcome, console: Console) -> None:
    """The scenario's result as a panel: the forecast, the alert and its advice."""
    o = outcome
    lines = [
        f"Counts: {WEEKS} weeks of a simulated crowd at the Bund, a surge every "
        f"{_weekday(o.surge.weekday)} at {o.surge.hour:02d}:00 local (only in the counts: "
        "the model was given counts and the holiday calendar, never the surge's time); "
        f"{o.reports:,} counter reports ingested this run.",
        f"Forecast made {_local(o.now)} from counts up to the hour {_local(o.origin)} "
        f"(model {o.model_version}); simulated peak: the hour from {_local(o.peak)} local, "
        f"{o.lead.total_seconds() / 3600:.1f} h after the forecast.",
    ]
    if o.point is not None and o.upper is not None and o.lower is not None:
        lines.append(
            f"{o.name_zh} ({o.name_en}) at the peak: forecast {o.point:,.0f} people "
            f"(90 % interval {o.lower:,.0f}-{o.upper:,.0f}, {o.horizon} h ahead), "
            f"warn at {o.warn:,.0f}, critical at {o.critical:,.0f}; "
            f"simulated count {o.peak_count:,.0f}."
        )
    if o.alert_id is None:
        lines.append("[bold red]No crowd alert was raised for the peak.[/bold red]")
    else:
        state = "raised now" if o.raised_now else "already raised by an earlier run"
        lines.append(f"[bold]{(o.level or '').upper()} alert {o.alert_id}[/bold] ({state}).")
        advice = o.advice
        lines.append("Meter the entrances: " + "、".join(advice.get("meter_entrances", [])))
        divert = advice.get("divert_to") or []
        lines.append(
            "Divert to: "
            + (
                ", ".join(f"{d['name_en']} ({d['headroom']:,} people of room)" for d in divert)
                or "no neighbour has room"
            )
        )
        for station in advice.get("close_exits") or []:
            lines.append(f"Close exits: {station['station']} {'、'.join(station['exits'])}")
    for code, target, level in o.other_risks:
        lines.append(f"Also alerted: {code} {level} for {_local(target)}")
    lines.append(
        f"Took {o.seconds.get('total', 0):.1f} s (counts {o.seconds.get('counts', 0):.1f} s, "
        f"training {o.seconds.get('train', 0):.1f} s). Hotspots: /console/crowd/hotspots; "
        "the demo feeder reports each new hour, the hourly forecast job goes on from there."
    )
    console.print(Panel("\n".join(lines), title="Crowd demo: the Bund (issue 8)", expand=False))


def _weekday(n: int) -> str:
    return ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[n]
