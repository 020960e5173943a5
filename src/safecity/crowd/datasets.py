"""Hourly people counts per hotspot: the one in-memory shape, its CSV format and the benchmarks.

Counts live on a regular **UTC** hourly grid (``HourlyCounts``): one row per hour, one column
per hotspot, ``NaN`` where no count exists. A missing hour is *marked*, never filled. Calendar
features use the hotspot's time zone and holiday region, so daylight-saving shifts only move
the local hour of a UTC row; they never duplicate or drop a row.

The product's CSV format (``read_counts_csv``), one row per hotspot and hour::

    hotspot,timestamp,count
    bund-east,2026-10-01T19:00:00+08:00,18250

``timestamp`` is ISO 8601, hour start, with a UTC offset (or ``Z``); a naive timestamp is
accepted only when the caller names the time zone (``tz``), and then a local time that does
not exist or exists twice (a daylight-saving change) is rejected. Rejected with a clear error:
a missing or extra column, a count that is not a whole number, negative, or above
``max_count``; a timestamp not on the hour; the same hotspot and UTC hour twice; a hotspot not
in ``known_hotspots`` when that is given. Hours with no row are gaps (``NaN``).

Benchmarks (``load_benchmark``) read the public data sets under
``$SAFECITY_BENCH_DATA/crowd`` (default ``/work/shared/benchmarks``) in place; nothing is
copied into the repository.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from safecity.platform.errors import InvalidInput, NotFound

FloatArray = npt.NDArray[np.float64]
HOUR = timedelta(hours=1)
DEFAULT_MAX_COUNT = 1_000_000
"""Counts above this per hotspot-hour are rejected as absurd (the Bund peaks near 220,000)."""

DEFAULT_BENCH_ROOT = Path("/work/shared/benchmarks")
CSV_COLUMNS = ("hotspot", "timestamp", "count")


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc


@dataclass(frozen=True)
class HourlyCounts:
    """Counts on a regular UTC hourly grid: ``values[i, j]`` is hotspot ``sites[j]`` in the hour
    starting at ``start + i hours``; ``NaN`` = no count (a marked gap)."""

    sites: tuple[str, ...]
    start: datetime
    values: FloatArray
    tz: str = "UTC"
    region: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise InvalidInput("HourlyCounts.start must be an aware UTC datetime")
        if self.start != self.start.replace(minute=0, second=0, microsecond=0):
            raise InvalidInput("HourlyCounts.start must be on the hour")
        if self.values.ndim != 2 or self.values.shape[1] != len(self.sites):
            raise InvalidInput("values must have one column per hotspot")
        if len(set(self.sites)) != len(self.sites):
            raise InvalidInput("hotspot names must be unique")
        zone(self.tz)

    @property
    def hours(self) -> int:
        return int(self.values.shape[0])

    def time_at(self, index: int) -> datetime:
        return self.start + index * HOUR

    def index_of(self, when: datetime) -> int:
        """Row index of the hour starting at ``when`` (aware); may lie outside the grid."""
        if when.tzinfo is None:
            raise InvalidInput("timestamps must carry a time zone")
        delta = when.astimezone(UTC) - self.start
        return math.floor(delta / HOUR)

    def local_midnight_index(self, day: date) -> int:
        """Row index of local midnight starting ``day`` in the hotspots' time zone."""
        local = datetime(day.year, day.month, day.day, tzinfo=zone(self.tz))
        return self.index_of(local)

    def site_index(self, name: str) -> int:
        try:
            return self.sites.index(name)
        except ValueError:
            raise NotFound(f"unknown hotspot {name!r}") from None

    def head(self, rows: int) -> HourlyCounts:
        """The first ``rows`` hours (the data as it was known then)."""
        return replace(self, values=self.values[: max(rows, 0)])

    @property
    def gaps(self) -> int:
        return int(np.isnan(self.values).sum())


@dataclass
class LoadReport:
    """What a loader did: rows read, gaps left marked, cells blanked and why."""

    rows: int = 0
    gaps: int = 0
    outage_cells: int = 0
    dst_duplicates_dropped: int = 0
    notes: list[str] = field(default_factory=list)


def mark_outages(counts: HourlyCounts) -> tuple[HourlyCounts, int]:
    """Blank every hotspot-day (local day) whose counts total 0: a sensor outage, not a quiet day.

    Returns the new counts and the number of observed cells blanked. Values are never invented;
    the cells become marked gaps.
    """
    values = counts.values.copy()
    if counts.hours == 0:
        return counts, 0
    tz = zone(counts.tz)
    days = np.array(
        [(counts.time_at(i).astimezone(tz).date().toordinal()) for i in range(counts.hours)]
    )
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    totals = np.add.reduceat(np.nan_to_num(values, nan=0.0), starts, axis=0)
    observed = np.add.reduceat((~np.isnan(values)).astype(np.int64), starts, axis=0)
    dead = (totals == 0) & (observed > 0)
    ends = np.r_[starts[1:], counts.hours]
    blanked = 0
    for d, j in zip(*np.nonzero(dead), strict=True):
        block = values[starts[d] : ends[d], j]
        blanked += int((~np.isnan(block)).sum())
        block[:] = np.nan
    return replace(counts, values=values), blanked


def _parse_count(raw: str, *, where: str, max_count: float) -> float:
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{where}: count {raw!r} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise InvalidInput(f"{where}: count {raw!r} is not a whole number")
    if value < 0:
        raise InvalidInput(f"{where}: negative count {raw!r}")
    if value > max_count:
        raise InvalidInput(f"{where}: count {raw!r} is above the limit {max_count:g} per hour")
    return value


def parse_instant(raw: object, *, name: str, where: str, **extra: Any) -> datetime:
    """An aware UTC instant from an ISO 8601 string with a UTC offset (or an aware datetime,
    as YAML builds): errors read ``{where}: {name} ...`` (``extra`` goes to the problem)."""
    shown = repr(str(raw)[:40])

    def fail(message: str) -> InvalidInput:
        return InvalidInput(f"{where}: {name} {message}", **extra)

    if isinstance(raw, datetime):
        when = raw
    elif isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise fail(f"{shown} is not an ISO 8601 timestamp") from None
    else:
        raise fail("must be an ISO 8601 timestamp with a UTC offset")
    if when.tzinfo is None or when.utcoffset() is None:
        raise fail(f"{shown} has no UTC offset; add one (e.g. +08:00 or Z)")
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        raise fail(f"{shown} is out of range") from None


def parse_timestamp(raw: str, *, tz: str | None, where: str) -> datetime:
    """An ISO 8601 hour-start timestamp → aware UTC datetime (see the module docstring)."""
    text = raw.strip()
    try:
        when = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise InvalidInput(f"{where}: timestamp {raw!r} is not ISO 8601") from None
    if when.tzinfo is None:
        if tz is None:
            raise InvalidInput(
                f"{where}: timestamp {raw!r} has no UTC offset; add one or name the time zone"
            )
        tzinfo = zone(tz)
        first = when.replace(tzinfo=tzinfo, fold=0)
        second = when.replace(tzinfo=tzinfo, fold=1)
        if first.utcoffset() != second.utcoffset():
            raise InvalidInput(
                f"{where}: local time {raw!r} is ambiguous or does not exist in {tz} "
                "(daylight-saving change); give a UTC offset"
            )
        back = first.astimezone(UTC).astimezone(tzinfo)
        if back.replace(tzinfo=None) != when:
            raise InvalidInput(f"{where}: local time {raw!r} does not exist in {tz}")
        when = first
    if when.minute or when.second or when.microsecond:
        raise InvalidInput(f"{where}: timestamp {raw!r} is not on the hour")
    return when.astimezone(UTC)


def read_counts_csv(
    source: str | Path,
    *,
    tz: str = "UTC",
    region: str = "",
    known_hotspots: Sequence[str] | None = None,
    max_count: float = DEFAULT_MAX_COUNT,
    naive_tz: str | None = None,
) -> tuple[HourlyCounts, LoadReport]:
    """Read the product's long CSV (``hotspot,timestamp,count``) into ``HourlyCounts``.

    ``source`` is a path (``.gz`` allowed) or the CSV text itself when it contains a newline.
    ``tz``/``region`` are the hotspots' time zone and holiday region (calendar features);
    ``naive_tz`` is how naive timestamps are read (default: rejected).
    """
    text = read_text(source)
    try:
        return _parse_rows(
            csv.reader(io.StringIO(text, newline="")),
            tz=tz,
            region=region,
            known_hotspots=known_hotspots,
            max_count=max_count,
            naive_tz=naive_tz,
        )
    except csv.Error as exc:
        raise InvalidInput(f"counts CSV is malformed: {exc}") from None


def _parse_rows(
    reader: Iterator[list[str]],
    *,
    tz: str,
    region: str,
    known_hotspots: Sequence[str] | None,
    max_count: float,
    naive_tz: str | None,
) -> tuple[HourlyCounts, LoadReport]:
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("counts CSV is empty") from None
    header = [h.strip().lower() for h in header]
    if tuple(header) != CSV_COLUMNS:
        raise InvalidInput(
            f"counts CSV header must be {','.join(CSV_COLUMNS)!r}, got {','.join(header)!r}"
        )
    known = set(known_hotspots) if known_hotspots is not None else None
    cells: dict[tuple[str, datetime], float] = {}
    order: dict[str, None] = {}
    rows = 0
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"line {lineno}"
        if len(row) != len(CSV_COLUMNS):
            raise InvalidInput(f"{where}: expected 3 fields, got {len(row)}")
        name = row[0].strip()
        if not name:
            raise InvalidInput(f"{where}: empty hotspot")
        if known is not None and name not in known:
            raise InvalidInput(f"{where}: unknown hotspot {name!r}")
        when = parse_timestamp(row[1], tz=naive_tz, where=where)
        value = _parse_count(row[2], where=where, max_count=max_count)
        key = (name, when)
        if key in cells:
            raise InvalidInput(f"{where}: duplicated hour {when.isoformat()} for hotspot {name!r}")
        cells[key] = value
        order.setdefault(name, None)
        rows += 1
    if not cells:
        raise InvalidInput("counts CSV has no data rows")
    sites = tuple(known_hotspots) if known_hotspots is not None else tuple(order)
    counts = from_cells(cells, sites=sites, tz=tz, region=region)
    return counts, LoadReport(rows=rows, gaps=counts.gaps)


def from_cells(
    cells: dict[tuple[str, datetime], float],
    *,
    sites: Sequence[str],
    tz: str,
    region: str,
) -> HourlyCounts:
    """Place ``{(hotspot, utc hour): count}`` on the smallest grid holding them all."""
    first = min(when for _, when in cells)
    last = max(when for _, when in cells)
    hours = int((last - first) / HOUR) + 1
    values = np.full((hours, len(sites)), np.nan)
    column = {name: j for j, name in enumerate(sites)}
    for (name, when), value in cells.items():
        values[int((when - first) / HOUR), column[name]] = value
    return HourlyCounts(sites=tuple(sites), start=first, values=values, tz=tz, region=region)


def write_counts_csv(counts: HourlyCounts, path: Path) -> int:
    """Write observed cells in the product CSV format; returns the rows written."""
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for i in range(counts.hours):
            stamp = counts.time_at(i).strftime("%Y-%m-%dT%H:%M:%SZ")
            for j, name in enumerate(counts.sites):
                v = counts.values[i, j]
                if not np.isnan(v):
                    out.writerow((name, stamp, int(v)))
                    rows += 1
    return rows


def read_text(source: str | Path) -> str:
    if isinstance(source, str) and "\n" in source:
        return source
    path = Path(source)
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name} is not UTF-8 text") from None


# --------------------------------------------------------------------------- benchmarks


@dataclass(frozen=True)
class Benchmark:
    """A public data set with this project's protocol (see the folder's README)."""

    name: str
    counts: HourlyCounts
    train_end: date  # last local day of training (inclusive)
    test_start: date
    test_end: date  # inclusive
    report: LoadReport
    folder: Path

    @property
    def calibration_start(self) -> date:
        """The validation window (train_end + 1 .. test_start - 1) is the calibration window."""
        return self.train_end + timedelta(days=1)


BENCHMARKS = {
    "melbourne-2021": "melbourne-pedestrian-2021-2022",
    "melbourne-2015": "melbourne-pedestrian-2015-2016",
}


def bench_root() -> Path:
    return Path(os.environ.get("SAFECITY_BENCH_DATA", str(DEFAULT_BENCH_ROOT)))


def load_benchmark(name: str, *, root: Path | None = None) -> Benchmark:
    if name not in BENCHMARKS:
        raise InvalidInput(f"unknown dataset {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    folder = (root or bench_root()) / "crowd" / BENCHMARKS[name]
    if not folder.is_dir():
        raise InvalidInput(f"dataset folder not found: {folder} (set SAFECITY_BENCH_DATA)")
    if name == "melbourne-2021":
        counts, report = _load_wide_local(
            folder / "counts_hourly.csv.gz", tz="Australia/Melbourne", region="AU-VIC"
        )
        split = (date(2022, 6, 30), date(2022, 9, 1), date(2022, 10, 31))
    else:
        counts, report = _load_long_utc(
            folder / "pedestrian_hourly.csv.gz", tz="Australia/Melbourne", region="AU-VIC"
        )
        split = (date(2016, 7, 31), date(2016, 10, 1), date(2016, 12, 31))
    counts, blanked = mark_outages(counts)
    report.outage_cells = blanked
    report.gaps = counts.gaps
    return Benchmark(name, counts, *split, report=report, folder=folder)


def _load_wide_local(path: Path, *, tz: str, region: str) -> tuple[HourlyCounts, LoadReport]:
    """Wide CSV, ``timestamp_local`` naive local hour-start (24 rows a day, DST not expanded).

    Each local stamp maps to UTC with the zone's rules (the first reading of an ambiguous
    hour); a spring-forward stamp that does not exist collides with the next hour's UTC and
    the later row (the real hour) is kept: the collision is counted, never silently merged.
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if not header or header[0] != "timestamp_local":
        raise InvalidInput(f"{path.name}: first column must be timestamp_local")
    sites = tuple(header[1:])
    tzinfo = zone(tz)
    report = LoadReport()
    cells: dict[tuple[str, datetime], float] = {}
    for lineno, row in enumerate(reader, start=2):
        naive = datetime.strptime(row[0], "%Y-%m-%d %H:%M")
        when = naive.replace(tzinfo=tzinfo).astimezone(UTC)
        for name, raw in zip(sites, row[1:], strict=True):
            if not raw:
                continue
            key = (name, when)
            if key in cells:
                report.dst_duplicates_dropped += 1
            cells[key] = _parse_count(raw, where=f"line {lineno}", max_count=DEFAULT_MAX_COUNT)
        report.rows += 1
    counts = from_cells(cells, sites=sites, tz=tz, region=region)
    return counts, report


def _load_long_utc(path: Path, *, tz: str, region: str) -> tuple[HourlyCounts, LoadReport]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text))
    cells: dict[tuple[str, datetime], float] = {}
    order: dict[str, None] = {}
    report = LoadReport()
    for lineno, row in enumerate(reader, start=2):
        when = datetime.strptime(row["timestamp_utc"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        name = row["sensor"]
        key = (name, when)
        if key in cells:
            raise InvalidInput(f"{path.name} line {lineno}: duplicated hour for {name!r}")
        cells[key] = _parse_count(row["count"], where=f"line {lineno}", max_count=1e9)
        order.setdefault(name, None)
        report.rows += 1
    return from_cells(cells, sites=tuple(order), tz=tz, region=region), report


def synthetic_counts(
    *,
    sites: Iterable[str] = ("a", "b", "c"),
    days: int = 70,
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC),
    seed: int = 0,
    tz: str = "UTC",
    region: str = "",
    noise: float = 0.1,
) -> HourlyCounts:
    """A seasonal series (daily and weekly cycle, multiplicative noise) for tests and demos."""
    rng = np.random.default_rng(seed)
    names = tuple(sites)
    hours = days * 24
    t = np.arange(hours)
    hour = t % 24
    dow = (t // 24) % 7
    daily = 1.0 + 0.8 * np.sin((hour - 6) / 24 * 2 * np.pi)
    weekly = np.where(dow >= 5, 1.4, 1.0)
    base = rng.uniform(50, 2000, size=len(names))
    mean = np.outer(daily * weekly, base)
    values = np.round(mean * rng.lognormal(0.0, noise, size=mean.shape))
    return HourlyCounts(sites=names, start=start, values=values, tz=tz, region=region)
