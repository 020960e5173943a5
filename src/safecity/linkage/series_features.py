"""Crime records and the pairwise features of crime-series linkage.

A crime is a place (planar ``x``/``y`` in metres, or ``lat``/``lng`` projected to metres
around the data's centre), a time window (``time_from`` .. ``time_to``: the earliest and
latest moment the offence can have happened, as for a burglary found in the morning) and
categorical modus-operandi (MO) fields from a declared list, with optional property taken
(a set of categories) and target type.

The pairwise features follow Porter & Reich (the R package ``crimelinkage``,
``compareCrimes``): spatial distance, temporal distance, circular time-of-day and
day-of-week differences and MO match/mismatch. Time windows are used *aoristically*: a
crime's time-of-day and day-of-week are distributions spread over its window, so a
burglary "between 22:00 and 06:00" is compared fairly with one at 23:30. Missing values
never count as a mismatch: an MO field missing on either side is encoded as 0 (match is
+1, mismatch -1), so it contributes nothing to a linear score. Naive datetimes are read
as UTC; the time-of-day and day-of-week features compare two crimes, so a consistent
zone shift does not change them (a DST change moves a crime by an hour).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from safecity.platform.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_EARTH_M = 6_371_008.8
_TOD_BINS = 48  # half-hour bins of the day
_DOW_BINS = 7
CONTEXT_FEATURES = (
    "space_rank_lo",
    "space_rank_hi",
    "time_rank_lo",
    "time_rank_hi",
    "spacetime_rank_lo",
    "spacetime_rank_hi",
)
_CORE_RECORD_KEYS = frozenset(
    {"id", "x", "y", "lat", "lng", "time_from", "time_to", "mo", "property", "target"}
)


@dataclass(frozen=True, slots=True)
class Crime:
    """One crime: place in metres, time window in hours since the Unix epoch, MO values."""

    id: str
    x: float
    y: float
    t_from: float
    t_to: float
    mo: Mapping[str, str | None] = field(default_factory=dict)
    property: frozenset[str] | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which MO fields exist and whether property taken / target type are compared."""

    mo_fields: tuple[str, ...]
    use_property: bool = False
    use_target: bool = False

    def names(self) -> list[str]:
        """Feature column names, in the order :func:`pair_features` returns them."""
        out = [
            "log_distance",
            "log_gap",
            "window_overlap",
            "tod_diff",
            "tod_similarity",
            "dow_diff",
            "dow_similarity",
            *CONTEXT_FEATURES,
        ]
        for f in self.mo_fields:
            out += [f"mo_{f}", f"mo_{f}_rarity"]
        if self.use_property:
            out.append("property_jaccard")
        if self.use_target:
            out.append("target_match")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "mo_fields": list(self.mo_fields),
            "use_property": self.use_property,
            "use_target": self.use_target,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            mo_fields=tuple(str(f) for f in doc["mo_fields"]),
            use_property=bool(doc.get("use_property", False)),
            use_target=bool(doc.get("use_target", False)),
        )


def _hours(value: Any, what: str, crime_id: str) -> float:
    """A timestamp (datetime, ISO string, or hours since epoch) as hours since epoch, UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidInput(f"crime {crime_id}: {what} is not a finite number")
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"crime {crime_id}: {what} {value!r} is not an ISO time") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return float(value.timestamp()) / 3600.0
    raise InvalidInput(f"crime {crime_id}: {what} is missing or not a time")


def _number(rec: Mapping[str, Any], key: str, crime_id: str) -> float:
    value = rec.get(key)
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"crime {crime_id}: {key} is missing or not a number") from None
    if not math.isfinite(out):
        raise InvalidInput(f"crime {crime_id}: {key} is not a finite number")
    return out


def parse_crimes(records: Iterable[Mapping[str, Any]], spec: FeatureSpec) -> list[Crime]:
    """Validate crime records (mappings) into :class:`Crime` objects.

    Each record has ``id``; ``x``/``y`` (metres) or ``lat``/``lng`` (degrees);
    ``time_from`` and optionally ``time_to`` (datetime, ISO string or epoch hours);
    ``mo`` (a mapping over the declared MO fields, values may be None); optional
    ``property`` (categories) and ``target``. Raises :class:`InvalidInput` on a
    duplicate id, a window ending before it starts, an MO field not declared, a
    missing place or time.
    """
    raw: list[tuple[str, Mapping[str, Any]]] = []
    seen: set[str] = set()
    for rec in records:
        cid = rec.get("id")
        if cid is None or str(cid).strip() == "":
            raise InvalidInput("a crime record has no id")
        cid = str(cid)
        if cid in seen:
            raise InvalidInput(f"duplicate crime id {cid}")
        seen.add(cid)
        unknown = set(rec) - _CORE_RECORD_KEYS
        if unknown:
            raise InvalidInput(f"crime {cid}: unknown keys {', '.join(sorted(map(str, unknown)))}")
        raw.append((cid, rec))
    geo = [r for _, r in raw if r.get("x") is None and r.get("lat") is not None]
    lat0 = float(np.mean([float(r["lat"]) for r in geo])) if geo else 0.0
    lng0 = float(np.mean([float(r["lng"]) for r in geo])) if geo else 0.0
    out: list[Crime] = []
    for cid, rec in raw:
        if rec.get("x") is not None or rec.get("lat") is None:
            x, y = _number(rec, "x", cid), _number(rec, "y", cid)
        else:  # equirectangular projection around the centre: fine within a city
            lat, lng = _number(rec, "lat", cid), _number(rec, "lng", cid)
            if not (-90 <= lat <= 90 and -180 <= lng <= 180):
                raise InvalidInput(f"crime {cid}: lat/lng out of range")
            x = math.radians(lng - lng0) * _EARTH_M * math.cos(math.radians(lat0))
            y = math.radians(lat - lat0) * _EARTH_M
        t_from = _hours(rec.get("time_from"), "time_from", cid)
        to = rec.get("time_to")
        t_to = t_from if to is None else _hours(to, "time_to", cid)
        if t_to < t_from:
            raise InvalidInput(f"crime {cid}: time window ends before it starts")
        mo_in = rec.get("mo") or {}
        if not isinstance(mo_in, Mapping):
            raise InvalidInput(f"crime {cid}: mo must be a mapping of field to category")
        bad = [str(k) for k in mo_in if k not in spec.mo_fields]
        if bad:
            raise InvalidInput(
                f"crime {cid}: unknown MO field {', '.join(sorted(bad))}; "
                f"declared: {', '.join(spec.mo_fields) or 'none'}"
            )
        mo = {f: _category(mo_in.get(f)) for f in spec.mo_fields}
        prop = rec.get("property")
        prop_set = None
        if prop is not None:
            if isinstance(prop, str):
                prop = [prop]
            prop_set = frozenset(c for c in (_category(p) for p in prop) if c is not None)
        out.append(
            Crime(cid, x, y, t_from, t_to, mo, prop_set or None, _category(rec.get("target")))
        )
    return out


def _category(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text == "" or text.upper() == "NA" else text


def _aoristic(t_from: FloatArray, t_to: FloatArray, period: float, bins: int) -> FloatArray:
    """Share of each window falling in each of ``bins`` equal bins of a cycle (rows sum to 1).

    The cumulative time spent in bin k up to t is floor(t/P)*w + clip(t mod P - k*w, 0, w);
    an instant (zero-length window) puts all its weight in its own bin.
    """
    width = period / bins
    starts = np.arange(bins) * width

    def cum(t: FloatArray) -> FloatArray:
        cycles = np.floor(t / period)[:, None]
        rem = (t - cycles[:, 0] * period)[:, None]
        return np.asarray(cycles * width + np.clip(rem - starts[None, :], 0.0, width))

    length = t_to - t_from
    out = cum(t_to) - cum(t_from)
    point = length <= 1e-9
    safe = np.where(point, 1.0, length)
    out = out / safe[:, None]
    if point.any():
        idx = (np.floor(np.mod(t_from[point], period) / width).astype(np.int64)) % bins
        out[point] = 0.0
        out[np.flatnonzero(point), idx] = 1.0
    return np.asarray(out, dtype=np.float64)


def _circular_distance(bins: int, period: float) -> FloatArray:
    centres = (np.arange(bins) + 0.5) * period / bins
    d = np.abs(centres[:, None] - centres[None, :])
    return np.asarray(np.minimum(d, period - d), dtype=np.float64)


@dataclass
class CrimeTable:
    """Crimes as column arrays plus MO category codes, ready for vectorised features."""

    crimes: list[Crime]
    spec: FeatureSpec
    rarity: Mapping[str, Mapping[str, float]]
    ids: list[str] = field(init=False)
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = [c.id for c in self.crimes]
        self.index = {c: i for i, c in enumerate(self.ids)}
        self.x = np.array([c.x for c in self.crimes], dtype=np.float64)
        self.y = np.array([c.y for c in self.crimes], dtype=np.float64)
        self.t0 = np.array([c.t_from for c in self.crimes], dtype=np.float64)
        self.t1 = np.array([c.t_to for c in self.crimes], dtype=np.float64)
        self.tod = _aoristic(self.t0, self.t1, 24.0, _TOD_BINS)
        # the Unix epoch was a Thursday: shift by 3 days so bin 0 is Monday
        self.dow = _aoristic(self.t0 + 72.0, self.t1 + 72.0, 168.0, _DOW_BINS)
        self.mo_codes: dict[str, IntArray] = {}
        self.mo_rarity: dict[str, FloatArray] = {}
        for f in self.spec.mo_fields:
            values = [c.mo.get(f) for c in self.crimes]
            levels = {v: k for k, v in enumerate(sorted({v for v in values if v is not None}))}
            self.mo_codes[f] = np.array(
                [-1 if v is None else levels[v] for v in values], dtype=np.int64
            )
            table = self.rarity.get(f, {})
            default = table.get("\x00unseen", 0.0)
            self.mo_rarity[f] = np.array(
                [0.0 if v is None else table.get(v, default) for v in values], dtype=np.float64
            )


def category_rarity(crimes: Sequence[Crime], spec: FeatureSpec) -> dict[str, dict[str, float]]:
    """-log(share) of each MO category among ``crimes`` (add-one smoothed).

    A match on a rare category (a rarely used entry method) is stronger evidence than a
    match on the commonest one; the fitted model keeps this table so scores do not shift
    with the crimes being ranked.
    """
    out: dict[str, dict[str, float]] = {}
    for f in spec.mo_fields:
        counts = Counter(c.mo.get(f) for c in crimes if c.mo.get(f) is not None)
        total = sum(counts.values()) + len(counts) + 1
        table = {str(k): -math.log((n + 1) / total) for k, n in counts.items()}
        table["\x00unseen"] = -math.log(1 / total)
        out[f] = table
    return out


_TOD_D = _circular_distance(_TOD_BINS, 24.0)
_DOW_D = _circular_distance(_DOW_BINS, 7.0)


def pair_features(table: CrimeTable, i: IntArray, j: IntArray) -> FloatArray:
    """Feature matrix (pairs x :meth:`FeatureSpec.names`) for crime index pairs (i, j)."""
    dist = np.hypot(table.x[i] - table.x[j], table.y[i] - table.y[j])
    mid_i = (table.t0[i] + table.t1[i]) / 2
    mid_j = (table.t0[j] + table.t1[j]) / 2
    gap_days = np.abs(mid_i - mid_j) / 24.0
    inter = np.minimum(table.t1[i], table.t1[j]) - np.maximum(table.t0[i], table.t0[j])
    shorter = np.minimum(table.t1[i] - table.t0[i], table.t1[j] - table.t0[j])
    overlap = np.where(inter >= 0, np.clip(inter / np.maximum(shorter, 1e-9), 0.0, 1.0), 0.0)
    overlap = np.where((inter >= 0) & (shorter <= 1e-9), 1.0, overlap)
    tod_i, tod_j = table.tod[i], table.tod[j]
    dow_i, dow_j = table.dow[i], table.dow[j]
    cols: list[FloatArray] = [
        np.log1p(dist / 100.0),
        np.log1p(gap_days),
        overlap,
        np.einsum("pa,ab,pb->p", tod_i, _TOD_D, tod_j),
        np.minimum(tod_i, tod_j).sum(axis=1),
        np.einsum("pa,ab,pb->p", dow_i, _DOW_D, dow_j),
        np.minimum(dow_i, dow_j).sum(axis=1),
    ]
    cols += context_ranks(table, i, j)
    for f in table.spec.mo_fields:
        a, b = table.mo_codes[f][i], table.mo_codes[f][j]
        known = (a >= 0) & (b >= 0)
        match = np.where(known, np.where(a == b, 1.0, -1.0), 0.0)
        cols += [match, np.where(match > 0, table.mo_rarity[f][i], 0.0)]
    if table.spec.use_property:
        cols.append(_property_jaccard(table, i, j))
    if table.spec.use_target:
        cols.append(_target_match(table, i, j))
    return np.column_stack(cols).astype(np.float64)


def _property_jaccard(table: CrimeTable, i: IntArray, j: IntArray) -> FloatArray:
    out = np.zeros(len(i), dtype=np.float64)
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist(), strict=True)):
        pa, pb = table.crimes[a].property, table.crimes[b].property
        if pa and pb:
            out[k] = 2.0 * len(pa & pb) / len(pa | pb) - 1.0  # -1 disjoint .. +1 same
    return out


def _target_match(table: CrimeTable, i: IntArray, j: IntArray) -> FloatArray:
    out = np.zeros(len(i), dtype=np.float64)
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist(), strict=True)):
        ta, tb = table.crimes[a].target, table.crimes[b].target
        if ta is not None and tb is not None:
            out[k] = 1.0 if ta == tb else -1.0
    return out


def _space(table: CrimeTable, a: int, idx: IntArray | slice) -> FloatArray:
    return np.asarray(np.hypot(table.x[a] - table.x[idx], table.y[a] - table.y[idx]))


def _time(table: CrimeTable, a: int, idx: IntArray | slice) -> FloatArray:
    mid = (table.t0 + table.t1) / 2
    return np.asarray(np.abs(mid[a] - mid[idx]) / 24.0)


def _spacetime(table: CrimeTable, a: int, idx: IntArray | slice) -> FloatArray:
    return np.log1p(_space(table, a, idx) / 100.0) + np.log1p(_time(table, a, idx))


def context_ranks(table: CrimeTable, i: IntArray, j: IntArray) -> list[FloatArray]:
    """log of how near each crime of a pair is to the other, among all crimes of the table.

    For a pair (i, j), r(i->j) is j's rank among i's neighbours (1 = nearest; ties count
    the strictly nearer ones) in space, in time (window midpoints) and in a space-time
    blend (log1p(metres/100) + log1p(days)). The features are log min and log max of
    r(i->j) and r(j->i). They use no labels, only where the other crimes are: two crimes
    400 m apart are close in a quiet suburb and not in a busy centre. Cost is one sort of
    a row of N distances per distinct crime, memory O(N).
    """
    out: list[FloatArray] = []
    for metric in (_space, _time, _spacetime):
        fwd = _ranks(table, metric, i, j)
        back = _ranks(table, metric, j, i)
        out += [np.log(np.minimum(fwd, back)), np.log(np.maximum(fwd, back))]
    return out


def _ranks(table: CrimeTable, metric: Any, i: IntArray, j: IntArray) -> FloatArray:
    ranks = np.empty(len(i), dtype=np.float64)
    order = np.argsort(i, kind="stable")
    starts = np.flatnonzero(np.r_[True, i[order][1:] != i[order][:-1]])
    bounds = [*starts.tolist(), len(order)]
    everyone = slice(None)
    for lo, hi in itertools.pairwise(bounds):
        rows = order[lo:hi]
        a = int(i[rows[0]])
        row = metric(table, a, everyone).copy()
        row[a] = np.inf
        row.sort()
        target = metric(table, a, j[rows])
        ranks[rows] = np.searchsorted(row, target, side="left") + 1.0
    return ranks
