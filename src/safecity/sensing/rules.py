"""The declarative rule engine: sensor events in, rule matches out.

    ruleset = RuleSet.shipped()                # or RuleSet.from_file(path)
    engine = RuleEngine(ruleset)
    for event in events:                       # plain dicts, see below
        for match in engine.process(event):    # list[Match]
            ...                                # the alert layer dedups/cools down by dedup_key
    engine.advance(watermark)                  # event-time clock tick: fires absence timeouts

An event is a plain dict ``{"id", "type", "sensor_id", "time", "lat", "lng", "h3", "org_id",
"payload": {...}}``; ``time`` is a tz-aware datetime, an ISO 8601 string with an offset, or
epoch seconds. The hot path is plain Python on dicts and tuples: rules are indexed by event
type and compiled to closures once; no Pydantic and no database per event.

Semantics (event time):

* **Watermark** = the largest event time seen (or given to :meth:`RuleEngine.advance`).
  A windowed rule (count, sequence, absence) drops an event older than ``watermark -
  lateness`` and counts it (``dropped_late``); single-event rules (threshold, geofence,
  time_of_day) accept late events unless the rule sets ``lateness`` explicitly.
* **count** matches at each matching event ``e`` whose window ``(e.time - within, e.time]``
  holds ``count`` or more matching events of the same key; **sequence** matches at each
  ``then`` event with a ``first`` event of the same key in ``[then.time - within,
  then.time]``; **absence** matches when a ``first`` event has no ``then`` event in
  ``(first.time, first.time + within]`` once the watermark passes ``first.time + within +
  lateness``. Late (within lateness) and out-of-order events re-evaluate the windows they
  fall into, so the set of matches does not depend on arrival order. A burst therefore yields
  one match per qualifying event: the alert layer merges them by ``dedup_key`` (one alert with
  a count), the engine never retracts.
* **Duplicates**: an event id seen among the last ``dedup_capacity`` ids is ignored (counted).
* **State** is keyed by (rule, key); :meth:`RuleEngine.snapshot` / :meth:`RuleEngine.restore`
  export and import it as JSON, optionally one partition of the keys
  (:func:`partition_of`), and :meth:`RuleEngine.reload` keeps the state of unchanged rules.
"""

from __future__ import annotations

import heapq
import math
import time
import zlib
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import h3
import shapely
from shapely.geometry import Polygon

from safecity.platform.errors import InvalidInput
from safecity.sensing.rules_schema import (
    OPS,
    SHIPPED_DIR,
    AbsenceRule,
    Condition,
    CountRule,
    Geofence,
    GeofenceRule,
    RuleFile,
    SequenceRule,
    Step,
    ThresholdRule,
    TimeOfDay,
    TimeOfDayRule,
    check_field_path,
    read_rule_file,
    rule_digest,
)

__all__ = [
    "Match",
    "RuleEngine",
    "RuleSet",
    "partition_of",
]

SNAPSHOT_FORMAT = 1
WINDOW_KINDS = frozenset({"count", "sequence", "absence"})
MAX_IDS_PER_MATCH = 50
_MISSING: Any = object()
_T = itemgetter(0)
Event = Mapping[str, Any]
Pred = Callable[[Event, float], bool]
# (sensor_id, lat, lng, h3, org_id, type) of the event a match points at
Place = tuple[Any, Any, Any, Any, Any, Any]


def partition_of(key: str, partitions: int) -> int:
    """The partition (0..partitions-1) that owns a rule key; stable across processes."""
    return zlib.crc32(key.encode()) % partitions


_MAX_TIME = 7258118400.0  # 2200-01-01: later (or pre-1970) stamps are broken clocks


def event_time(value: Any) -> float:
    """Event ``time`` → epoch seconds; naive, unparsable or absurd times raise ``ValueError``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        t = value.timestamp()
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value)
        if dt.tzinfo is None:
            raise ValueError("time without a UTC offset")
        t = dt.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        t = float(value)
    else:
        raise ValueError("unsupported time")
    if not 0.0 <= t < _MAX_TIME:  # also rejects NaN
        raise ValueError("time out of range")
    return t


@dataclass(slots=True)
class Match:
    """One rule match: what the alert layer turns into (or merges into) an alert.

    Treat it as read-only (not ``frozen``: a frozen dataclass costs a ``__setattr__`` per
    field on the hot path).
    """

    rule_id: str
    kind: str
    key: str
    time: datetime
    event_ids: tuple[str, ...]
    """The events behind the match, the triggering one last (count: up to 50 of the window;
    sequence: first, then; absence: the first that was not followed)."""
    count: int
    """Events in the window when the match was emitted (1 for single-event kinds)."""
    severity: str
    title: str
    category: str
    dedup_key: str
    cooldown_s: float
    sensor_id: str | None
    lat: float | None
    lng: float | None
    h3: str | None
    org_id: str | None
    event_type: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "key": self.key,
            "time": self.time.isoformat(),
            "event_ids": list(self.event_ids),
            "count": self.count,
            "severity": self.severity,
            "title": self.title,
            "category": self.category,
            "dedup_key": self.dedup_key,
            "cooldown_s": self.cooldown_s,
            "sensor_id": self.sensor_id,
            "lat": self.lat,
            "lng": self.lng,
            "h3": self.h3,
            "org_id": self.org_id,
            "event_type": self.event_type,
        }


# --------------------------------------------------------------------------- rule sets


class RuleSet:
    """A validated set of rules (one file, or the shipped files merged)."""

    def __init__(self, files: Iterable[RuleFile], *, source: str = "<rules>") -> None:
        self.files = list(files)
        self.source = source
        seen: dict[str, str] = {}
        self.rules: list[Any] = []
        for f in self.files:
            for rule in f.rules:
                if rule.id in seen:
                    raise InvalidInput(f"{source}: duplicate rule id {rule.id!r}")
                seen[rule.id] = rule.id
                self.rules.append(rule)
        self.revision = ";".join(f.revision for f in self.files if f.revision)
        self.digests = {r.id: rule_digest(r) for r in self.rules}

    @classmethod
    def from_file(cls, path: str | Path) -> RuleSet:
        return cls([read_rule_file(path)], source=str(path))

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> RuleSet:
        ps = sorted(Path(p) for p in paths)
        return cls([read_rule_file(p) for p in ps], source=",".join(str(p) for p in ps))

    @classmethod
    def shipped(cls) -> RuleSet:
        """The starter rules under ``sensing/data/rules/*.yaml``."""
        return cls.from_files(SHIPPED_DIR.glob("*.yaml"))

    def __len__(self) -> int:
        return len(self.rules)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rules:
            out[r.kind] = out.get(r.kind, 0) + 1
        return out


# --------------------------------------------------------------------------- compilation


def _getter(path: str) -> Callable[[Event], Any]:
    parts = check_field_path(path)
    if parts[0] != "payload":
        name = parts[0]
        return lambda e: e.get(name, _MISSING)
    if len(parts) == 2:
        field = parts[1]

        def get_payload(e: Event) -> Any:
            p = e.get("payload")
            return p.get(field, _MISSING) if isinstance(p, dict) else _MISSING

        return get_payload
    rest = parts[1:]

    def get_nested(e: Event) -> Any:
        v: Any = e.get("payload")
        for part in rest:
            if not isinstance(v, dict):
                return _MISSING
            v = v.get(part, _MISSING)
        return v

    return get_nested


def _condition(c: Condition) -> Pred:
    get = _getter(c.field)
    op = OPS[c.op]
    want = c.value
    if op == "exists":
        return lambda e, t: get(e) not in (_MISSING, None)
    if op == "missing":
        return lambda e, t: get(e) in (_MISSING, None)
    if op in ("in", "not_in"):
        members = frozenset(want)
        if op == "in":
            return lambda e, t: _in(get(e), members)
        return lambda e, t: (v := get(e)) is not _MISSING and not _in(v, members)
    if op == "prefix":
        return lambda e, t: isinstance(v := get(e), str) and v.startswith(want)
    if op == "eq":
        return lambda e, t: get(e) == want
    if op == "ne":
        return lambda e, t: (v := get(e)) is not _MISSING and v != want
    cmp: Callable[[Any, Any], bool] = {
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }[op]

    def compare(e: Event, t: float) -> bool:
        v = get(e)
        if v is _MISSING or v is None or isinstance(v, bool):
            return False
        try:
            return cmp(v, want)
        except TypeError:  # a string where a number belongs: no match, never a crash
            return False

    return compare


def _in(v: Any, members: frozenset[Any]) -> bool:
    try:
        return v in members
    except TypeError:  # unhashable payload value
        return False


def _geofence(g: Geofence) -> Pred:
    inside = g.inside
    if g.polygon is not None:
        poly = Polygon(g.polygon)
        shapely.prepare(poly)
        minx, miny, maxx, maxy = poly.bounds

        def in_polygon(e: Event, t: float) -> bool:
            lat, lng = e.get("lat"), e.get("lng")
            if not isinstance(lat, int | float) or not isinstance(lng, int | float):
                return False  # unknown place matches neither inside nor outside
            hit = (
                minx <= lng <= maxx
                and miny <= lat <= maxy
                and bool(shapely.contains_xy(poly, lng, lat))
            )
            return hit == inside

        return in_polygon
    cells = frozenset(g.cells or ())
    resolutions = sorted({int(h3.get_resolution(c)) for c in cells})

    def in_cells(e: Event, t: float) -> bool:
        lat, lng = e.get("lat"), e.get("lng")
        cell = e.get("h3")
        try:
            if isinstance(lat, int | float) and isinstance(lng, int | float):
                hit = any(h3.latlng_to_cell(lat, lng, r) in cells for r in resolutions)
            elif isinstance(cell, str):
                res = h3.get_resolution(cell)
                hit = any(h3.cell_to_parent(cell, r) in cells for r in resolutions if r <= res)
            else:
                return False
        except (ValueError, TypeError, h3.H3BaseException):
            return False
        return hit == inside

    return in_cells


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _time_of_day(w: TimeOfDay) -> Pred:
    zone = ZoneInfo(w.tz)
    start = w.start.hour * 3600 + w.start.minute * 60 + w.start.second
    end = w.end.hour * 3600 + w.end.minute * 60 + w.end.second
    days = frozenset(_DAYS.index(d) for d in w.days) if w.days else None
    crosses = start > end

    def in_window(e: Event, t: float) -> bool:
        local = datetime.fromtimestamp(t, zone)
        s = local.hour * 3600 + local.minute * 60 + local.second
        if crosses:
            if s >= start:
                day = local.weekday()
            elif s < end:
                day = (local.weekday() - 1) % 7  # the night belongs to the day it began
            else:
                return False
        elif start <= s < end:
            day = local.weekday()
        else:
            return False
        return days is None or day in days

    return in_window


def _step(step: Step, extra: Iterable[Pred] = ()) -> Pred:
    checks: list[Pred] = [_condition(c) for c in step.where]
    checks.extend(extra)
    if step.geofence is not None:
        checks.append(_geofence(step.geofence))
    if step.time_of_day is not None:
        checks.append(_time_of_day(step.time_of_day))
    if not checks:
        return lambda e, t: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda e, t: a(e, t) and b(e, t)
    return lambda e, t: all(c(e, t) for c in checks)


def _key(parts: list[str]) -> Callable[[Event], str | None]:
    def one(part: str) -> Callable[[Event], Any]:
        if part.startswith("h3@"):
            res = int(part[3:])

            def cell_at(e: Event) -> Any:
                lat, lng, cell = e.get("lat"), e.get("lng"), e.get("h3")
                try:
                    if isinstance(cell, str) and h3.get_resolution(cell) >= res:
                        return h3.cell_to_parent(cell, res)
                    if isinstance(lat, int | float) and isinstance(lng, int | float):
                        return h3.latlng_to_cell(lat, lng, res)
                except (ValueError, TypeError, h3.H3BaseException):
                    return _MISSING
                return _MISSING

            return cell_at
        return _getter(part)

    getters = [one(p) for p in parts]
    if len(getters) == 1:
        get = getters[0]

        def single(e: Event) -> str | None:
            v = get(e)
            return None if v is _MISSING or v is None else str(v)

        return single

    def multi(e: Event) -> str | None:
        vals = []
        for g in getters:
            v = g(e)
            if v is _MISSING or v is None:
                return None
            vals.append(str(v))
        return "|".join(vals)

    return multi


def _place(e: Event) -> Place:
    return (e.get("sensor_id"), e.get("lat"), e.get("lng"), e.get("h3"), e.get("org_id"), e["type"])


# --------------------------------------------------------------------------- compiled rules


class _Compiled:
    """A rule compiled for the hot path; ``state`` maps key → kind-specific state."""

    default_lateness: ClassVar[float] = 300.0

    def __init__(self, rule: Any, digest: str) -> None:
        self.rule = rule
        self.id: str = rule.id
        self.kind: str = rule.kind
        self.digest = digest
        self.severity: str = rule.severity
        self.title: str = rule.alert.title
        self.category: str = rule.alert.category
        self.cooldown: float = rule.alert.cooldown
        self.dedup_template: str = rule.alert.dedup
        self.lateness: float = (
            rule.lateness if "lateness" in rule.model_fields_set else self.default_lateness
        )
        self.key_fn = _key(rule.key)
        self.state: dict[str, Any] = {}
        self.dropped_late = 0
        self.no_key = 0
        self.matches = 0

    # roles: 0 = the single step or ``first``, 1 = ``then``
    def steps(self) -> list[tuple[list[str], int]]:
        return [(self.rule.types(), 0)]

    def on_event(self, e: Event, t: float, role: int, eng: RuleEngine, out: list[Match]) -> None:
        raise NotImplementedError

    def prune(self, wm: float) -> None:  # windowed kinds forget what can no longer matter
        return None

    def dump_state(self, st: Any) -> Any:
        return None

    def load_state(self, obj: Any) -> Any:
        return None

    def make_match(
        self, key: str, t: float, ids: tuple[str, ...], count: int, place: Place
    ) -> Match:
        self.matches += 1
        sensor_id, lat, lng, cell, org_id, etype = place
        if self.dedup_template == "{rule}:{key}":
            dedup = f"{self.id}:{key}"
        else:
            dedup = self.dedup_template.format_map(
                {
                    "rule": self.id,
                    "key": key,
                    "sensor_id": sensor_id or "",
                    "h3": cell or "",
                    "org_id": org_id or "",
                    "type": etype or "",
                }
            )
        return Match(
            rule_id=self.id,
            kind=self.kind,
            key=key,
            time=datetime.fromtimestamp(t, UTC),
            event_ids=ids,
            count=count,
            severity=self.severity,
            title=self.title,
            category=self.category,
            dedup_key=dedup,
            cooldown_s=self.cooldown,
            sensor_id=sensor_id,
            lat=lat,
            lng=lng,
            h3=cell,
            org_id=org_id,
            event_type=etype,
        )


class _Single(_Compiled):
    """threshold, geofence, time_of_day: one event, no state."""

    default_lateness = math.inf

    def __init__(self, rule: Any, digest: str) -> None:
        super().__init__(rule, digest)
        extra = [_condition(rule.threshold)] if isinstance(rule, ThresholdRule) else []
        self.pred = _step(rule, extra)

    def on_event(self, e: Event, t: float, role: int, eng: RuleEngine, out: list[Match]) -> None:
        if not self.pred(e, t):
            return
        key = self.key_fn(e)
        if key is None:
            self.no_key += 1
            return
        if t < eng.watermark - self.lateness:
            self.dropped_late += 1
            return
        out.append(self.make_match(key, t, (str(e["id"]),), 1, _place(e)))


class _Count(_Compiled):
    """state[key] = (entries sorted by (t, id): [(t, id, place)], fired ids)."""

    def __init__(self, rule: CountRule, digest: str) -> None:
        super().__init__(rule, digest)
        self.pred = _step(rule)
        self.n = rule.count
        self.within = rule.within

    def on_event(self, e: Event, t: float, role: int, eng: RuleEngine, out: list[Match]) -> None:
        if not self.pred(e, t):
            return
        key = self.key_fn(e)
        if key is None:
            self.no_key += 1
            return
        wm = eng.watermark
        if t < wm - self.lateness:
            self.dropped_late += 1
            return
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = ([], set())
        entries: list[tuple[float, str, Place]] = st[0]
        fired: set[str] = st[1]
        entry = (t, str(e["id"]), _place(e))
        if not entries or entries[-1][0] < t:
            entries.append(entry)
        else:
            insort(entries, entry)
        horizon = wm - self.lateness - self.within
        if entries[0][0] < horizon:
            cut = bisect_left(entries, horizon, key=_T)
            for old in entries[:cut]:
                fired.discard(old[1])
            del entries[:cut]
        if len(entries) < self.n:
            return
        within = self.within
        j = bisect_left(entries, t, key=_T)
        stop = t + within
        n = len(entries)
        while j < n:
            end = entries[j]
            if end[0] >= stop:
                break
            if end[1] not in fired:
                hi = bisect_right(entries, end[0], key=_T)
                lo = bisect_right(entries, end[0] - within, key=_T)
                if hi - lo >= self.n:
                    fired.add(end[1])
                    # the window's ids, the triggering event last
                    trig = end[1]
                    window = entries[max(lo, hi - MAX_IDS_PER_MATCH) : hi]
                    ids = (*(x[1] for x in window if x[1] != trig), trig)
                    out.append(self.make_match(key, end[0], ids, hi - lo, end[2]))
            j += 1

    def prune(self, wm: float) -> None:
        horizon = wm - self.lateness - self.within
        for key in list(self.state):
            entries, fired = self.state[key]
            if entries and entries[0][0] < horizon:
                cut = bisect_left(entries, horizon, key=_T)
                for old in entries[:cut]:
                    fired.discard(old[1])
                del entries[:cut]
            if not entries:
                del self.state[key]

    def dump_state(self, st: Any) -> Any:
        return {"e": [[t, i, list(p)] for t, i, p in st[0]], "f": sorted(st[1])}

    def load_state(self, obj: Any) -> Any:
        return ([(float(t), str(i), tuple(p)) for t, i, p in obj["e"]], set(obj["f"]))


class _Sequence(_Compiled):
    """state[key] = [firsts [(t, id)], thens [(t, id, place)], matched then-ids]."""

    def __init__(self, rule: SequenceRule, digest: str) -> None:
        super().__init__(rule, digest)
        self.preds = (_step(rule.first), _step(rule.then))
        self.within = rule.within

    def steps(self) -> list[tuple[list[str], int]]:
        return [(self.rule.then.types(), 1), (self.rule.first.types(), 0)]

    def _admit(self, e: Event, t: float, role: int, eng: RuleEngine) -> tuple[str, Any] | None:
        if not self.preds[role & 1](e, t):  # role 2 (absence, first == then) uses first
            return None
        key = self.key_fn(e)
        if key is None:
            self.no_key += 1
            return None
        if t < eng.watermark - self.lateness:
            self.dropped_late += 1
            return None
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = self.new_state()
        return key, st

    def new_state(self) -> Any:
        return ([], [], set())

    def on_event(self, e: Event, t: float, role: int, eng: RuleEngine, out: list[Match]) -> None:
        admitted = self._admit(e, t, role, eng)
        if admitted is None:
            return
        key, (firsts, thens, matched) = admitted
        eid = str(e["id"])
        within = self.within
        if role == 0:
            insort(firsts, (t, eid))
            i = bisect_left(thens, t, key=_T)
            while i < len(thens) and thens[i][0] <= t + within:
                bt, bid, bplace = thens[i]
                if bid not in matched and bid != eid:
                    matched.add(bid)
                    out.append(self.make_match(key, bt, (eid, bid), 2, bplace))
                i += 1
        else:
            place = _place(e)
            insort(thens, (t, eid, place))
            i = bisect_right(firsts, t, key=_T) - 1
            while i >= 0 and firsts[i][0] >= t - within:
                if firsts[i][1] != eid:
                    matched.add(eid)
                    out.append(self.make_match(key, t, (firsts[i][1], eid), 2, place))
                    break
                i -= 1
        self._prune_key(key, firsts, thens, matched, eng.watermark)

    def _prune_key(
        self, key: str, firsts: list[Any], thens: list[Any], matched: set[str], wm: float
    ) -> None:
        a_horizon = wm - self.lateness - self.within
        if firsts and firsts[0][0] < a_horizon:
            del firsts[: bisect_left(firsts, a_horizon, key=_T)]
        b_horizon = wm - self.lateness  # a first that may still arrive is no older than this
        if thens and thens[0][0] < b_horizon:
            cut = bisect_left(thens, b_horizon, key=_T)
            for old in thens[:cut]:
                matched.discard(old[1])
            del thens[:cut]
        if not firsts and not thens:
            self.state.pop(key, None)

    def prune(self, wm: float) -> None:
        for key in list(self.state):
            firsts, thens, matched = self.state[key]
            self._prune_key(key, firsts, thens, matched, wm)

    def dump_state(self, st: Any) -> Any:
        firsts, thens, matched = st
        return {
            "a": [[t, i] for t, i in firsts],
            "b": [[t, i, list(p)] for t, i, p in thens],
            "m": sorted(matched),
        }

    def load_state(self, obj: Any) -> Any:
        return (
            [(float(t), str(i)) for t, i in obj["a"]],
            [(float(t), str(i), tuple(p)) for t, i, p in obj["b"]],
            set(obj["m"]),
        )


class _Absence(_Sequence):
    """state[key] = [pending firsts [(t, id, place)], thens [(t, id)]].

    One timer per key (``scheduled[key]`` = when its earliest pending first falls due), not
    one per event: a sensor beating every minute keeps one heap entry, re-armed when it pops.
    """

    def __init__(self, rule: SequenceRule, digest: str) -> None:
        super().__init__(rule, digest)
        self.scheduled: dict[str, float] = {}

    def arm(self, key: str, at: float, eng: RuleEngine) -> None:
        cur = self.scheduled.get(key)
        if cur is None or at < cur:
            self.scheduled[key] = at
            eng.schedule(at, self.id, key)

    def new_state(self) -> Any:
        return ([], [])

    def steps(self) -> list[tuple[list[str], int]]:
        if self.rule.first == self.rule.then:  # "x not followed by another x" (heartbeats)
            return [(self.rule.first.types(), 2)]
        return super().steps()

    def on_event(self, e: Event, t: float, role: int, eng: RuleEngine, out: list[Match]) -> None:
        admitted = self._admit(e, t, role, eng)
        if admitted is None:
            return
        key, (pending, thens) = admitted
        eid = str(e["id"])
        within = self.within
        if role >= 1:  # as a ``then``: it follows the pending firsts before it
            if not thens or thens[-1][0] < t:
                thens.append((t, eid))
            else:
                insort(thens, (t, eid))
            if pending and pending[0][0] < t:
                pending[:] = [p for p in pending if not (p[0] < t <= p[0] + within)]
        if role != 1:  # as a ``first``
            i = bisect_right(thens, t, key=_T)
            if i < len(thens) and thens[i][0] <= t + within:
                pass  # already followed (the then arrived first)
            else:
                insort(pending, (t, eid, _place(e)))
                self.arm(key, t + within + self.lateness, eng)
        b_horizon = eng.watermark - self.lateness
        if thens and thens[0][0] < b_horizon:
            del thens[: bisect_left(thens, b_horizon, key=_T)]
        if not pending and not thens:
            self.state.pop(key, None)

    def fire_due(self, key: str, at: float, eng: RuleEngine, out: list[Match]) -> None:
        """The timer of ``key`` popped: report every pending first now past its deadline."""
        if self.scheduled.get(key) != at:
            return  # superseded by an earlier timer for this key
        del self.scheduled[key]
        st = self.state.get(key)
        if st is None:
            return
        pending, thens = st
        limit = eng.watermark - self.lateness - self.within  # deadline + lateness < watermark
        n = 0
        while n < len(pending) and pending[n][0] < limit:
            t, pid, place = pending[n]
            out.append(self.make_match(key, t + self.within, (pid,), 1, place))
            n += 1
        del pending[:n]
        if pending:
            self.arm(key, pending[0][0] + self.within + self.lateness, eng)
        elif not thens:
            del self.state[key]

    def prune(self, wm: float) -> None:
        b_horizon = wm - self.lateness
        for key in list(self.state):
            pending, thens = self.state[key]
            if thens and thens[0][0] < b_horizon:
                del thens[: bisect_left(thens, b_horizon, key=_T)]
            if not pending and not thens:
                del self.state[key]

    def dump_state(self, st: Any) -> Any:
        pending, thens = st
        return {"p": [[t, i, list(p)] for t, i, p in pending], "b": [[t, i] for t, i in thens]}

    def load_state(self, obj: Any) -> Any:
        return (
            [(float(t), str(i), tuple(p)) for t, i, p in obj["p"]],
            [(float(t), str(i)) for t, i in obj["b"]],
        )


def _compile(rule: Any, digest: str) -> _Compiled:
    if isinstance(rule, AbsenceRule):
        return _Absence(rule, digest)
    if isinstance(rule, SequenceRule):
        return _Sequence(rule, digest)
    if isinstance(rule, CountRule):
        return _Count(rule, digest)
    if isinstance(rule, ThresholdRule | GeofenceRule | TimeOfDayRule):
        return _Single(rule, digest)
    raise TypeError(f"unknown rule kind {rule!r}")  # pragma: no cover


# --------------------------------------------------------------------------- engine


class RuleEngine:
    """Runs a :class:`RuleSet` over events; one instance per process (or per partition)."""

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        dedup_capacity: int = 100_000,
        future_tolerance: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``future_tolerance`` (seconds; off by default, as for replaying recordings): an
        event stamped later than ``clock() + future_tolerance`` (a sensor with a skewed
        clock) is still evaluated but counted in ``future`` and does not move the watermark
        past that bound, so one bad clock cannot make every other event late."""
        self.watermark: float = -math.inf
        self.dedup_capacity = dedup_capacity
        self.future_tolerance = future_tolerance
        self.clock = clock
        self.future = 0
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self.processed = 0
        self.duplicates = 0
        self.invalid = 0
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._rules: dict[str, _Compiled] = {}
        self._by_type: dict[str, list[tuple[_Compiled, int]]] = {}
        self._install(ruleset, {})

    # -- rules ---------------------------------------------------------------------------

    def _install(self, ruleset: RuleSet, keep: dict[str, _Compiled]) -> None:
        self.ruleset = ruleset
        rules: dict[str, _Compiled] = {}
        by_type: dict[str, list[tuple[_Compiled, int]]] = {}
        for rule in ruleset.rules:
            if not rule.enabled:
                continue
            digest = ruleset.digests[rule.id]
            old = keep.get(rule.id)
            keep_old = old is not None and old.digest == digest
            compiled = old if keep_old and old is not None else _compile(rule, digest)
            rules[rule.id] = compiled
            for types, role in compiled.steps():
                for etype in types:
                    by_type.setdefault(etype, []).append((compiled, role))
        self._rules = rules
        self._by_type = by_type
        self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        heap: list[tuple[float, int, str, str]] = []
        for rule in self._rules.values():
            if isinstance(rule, _Absence):
                rule.scheduled.clear()
                for key, (pending, _thens) in rule.state.items():
                    if pending:
                        at = pending[0][0] + rule.within + rule.lateness
                        rule.scheduled[key] = at
                        self._seq += 1
                        heap.append((at, self._seq, rule.id, key))
        heapq.heapify(heap)
        self._heap = heap

    def reload(self, ruleset: RuleSet) -> dict[str, list[str]]:
        """Swap in a new rule set; unchanged rules (same id and definition) keep their state.

        Returns ``{"kept": [...], "changed": [...], "added": [...], "removed": [...]}``.
        """
        old = self._rules
        new_ids = {r.id for r in ruleset.rules if r.enabled}
        report: dict[str, list[str]] = {"kept": [], "changed": [], "added": [], "removed": []}
        for rid in sorted(new_ids):
            if rid not in old:
                report["added"].append(rid)
            elif old[rid].digest == ruleset.digests[rid]:
                report["kept"].append(rid)
            else:
                report["changed"].append(rid)
        report["removed"] = sorted(set(old) - new_ids)
        self._install(ruleset, old)
        return report

    @property
    def rules(self) -> Mapping[str, _Compiled]:
        return self._rules

    # -- events --------------------------------------------------------------------------

    def schedule(self, fire_at: float, rule_id: str, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (fire_at, self._seq, rule_id, key))

    def process(self, event: Event) -> list[Match]:
        """Evaluate one event against every rule interested in its type."""
        try:
            eid = event["id"]
            etype = event["type"]
            t = event_time(event["time"])
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            self.invalid += 1
            return []
        if not isinstance(etype, str):
            self.invalid += 1
            return []
        if not isinstance(eid, str):
            eid = str(eid)
        seen = self._seen
        if eid in seen:
            self.duplicates += 1
            return []
        seen.add(eid)
        order = self._seen_order
        order.append(eid)
        if len(order) > self.dedup_capacity:
            seen.discard(order.popleft())
        self.processed += 1
        if t > self.watermark:
            if self.future_tolerance is not None:
                bound = self.clock() + self.future_tolerance
                if t > bound:
                    self.future += 1
                    self.watermark = max(self.watermark, bound)
                else:
                    self.watermark = t
            else:
                self.watermark = t
        out: list[Match] = []
        handlers = self._by_type.get(etype)
        if handlers is not None:
            for rule, role in handlers:
                rule.on_event(event, t, role, self, out)
        if self._heap and self._heap[0][0] < self.watermark:
            self._fire_due(out)
        return out

    def advance(self, watermark: datetime | float | str) -> list[Match]:
        """Move the event-time clock (never backwards), fire due absences, forget old state."""
        wm = event_time(watermark)
        if wm > self.watermark:
            self.watermark = wm
        out: list[Match] = []
        self._fire_due(out)
        for rule in self._rules.values():
            rule.prune(self.watermark)
        return out

    def _fire_due(self, out: list[Match]) -> None:
        heap = self._heap
        wm = self.watermark
        while heap and heap[0][0] < wm:
            at, _seq, rule_id, key = heapq.heappop(heap)
            rule = self._rules.get(rule_id)
            if isinstance(rule, _Absence):
                rule.fire_due(key, at, self, out)

    # -- state ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "future": self.future,
            "dropped_late": sum(r.dropped_late for r in self._rules.values()),
            "watermark": None if self.watermark == -math.inf else self.watermark,
            "rules": {
                rid: {
                    "matches": r.matches,
                    "dropped_late": r.dropped_late,
                    "no_key": r.no_key,
                    "keys": len(r.state),
                }
                for rid, r in self._rules.items()
            },
        }

    def snapshot(self, *, partition: tuple[int, int] | None = None) -> dict[str, Any]:
        """JSON-serialisable state; ``partition=(i, n)`` exports only the keys partition i owns.

        Counters travel with partition 0 only (restoring every partition sums them once); the
        dedup memory (recent event ids) travels with every partition.
        """
        counters = partition is None or partition[0] == 0
        rules: dict[str, Any] = {}
        for rid, rule in self._rules.items():
            keys = {
                key: rule.dump_state(st)
                for key, st in rule.state.items()
                if partition is None or partition_of(key, partition[1]) == partition[0]
            }
            rules[rid] = {
                "digest": rule.digest,
                "kind": rule.kind,
                "dropped_late": rule.dropped_late if counters else 0,
                "matches": rule.matches if counters else 0,
                "keys": keys,
            }
        return {
            "format": SNAPSHOT_FORMAT,
            "watermark": None if self.watermark == -math.inf else self.watermark,
            "processed": self.processed if counters else 0,
            "duplicates": self.duplicates if counters else 0,
            "invalid": self.invalid if counters else 0,
            "seen": list(self._seen_order),
            "rules": rules,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Merge a :meth:`snapshot` into this engine (several partitions may be restored).

        State of a rule whose definition changed since the snapshot is discarded.
        """
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise InvalidInput(f"unsupported rule-engine snapshot format {snapshot.get('format')}")
        wm = snapshot.get("watermark")
        if wm is not None and wm > self.watermark:
            self.watermark = float(wm)
        self.processed += int(snapshot.get("processed", 0))
        self.duplicates += int(snapshot.get("duplicates", 0))
        self.invalid += int(snapshot.get("invalid", 0))
        for eid in snapshot.get("seen", []):
            if eid not in self._seen:
                self._seen.add(eid)
                self._seen_order.append(eid)
        while len(self._seen_order) > self.dedup_capacity:
            self._seen.discard(self._seen_order.popleft())
        for rid, data in snapshot.get("rules", {}).items():
            rule = self._rules.get(rid)
            if rule is None or rule.digest != data.get("digest"):
                continue
            rule.dropped_late += int(data.get("dropped_late", 0))
            rule.matches += int(data.get("matches", 0))
            for key, st in data.get("keys", {}).items():
                rule.state[key] = rule.load_state(st)
        self._rebuild_heap()
