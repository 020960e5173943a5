"""Bulk import of the sensor registry from CSV or GeoJSON, and synthetic registries.

Every import declares the coordinate system its points are in (``wgs84``, ``gcj02`` or
``bd09``); points are stored as WGS84 with their H3 cell and owning station.

The file is read twice, as a stream (900,000 rows never sit in memory as objects):

1. **validate** every row: required fields, the sensor type, coordinates, status, dates,
   label lengths and ids repeated within the file. Problems are reported with their line
   (``sensors.csv line 7: unknown sensor type 'dor'``). With any problem nothing is
   written, unless ``skip_invalid`` is asked for: then the bad rows are reported and left
   out.
2. **write** the valid rows in batches (Core ``INSERT ... ON CONFLICT DO UPDATE``
   executemany) in the caller's transaction: a re-import updates the sensors it names
   (``created_at`` and ``last_seen_at`` are kept, and so is ``installed_at`` where the
   file gives none). Station areas are loaded into one STR-tree
   (:class:`~safecity.sensing.service.StationIndex`) per import.

One audit record and one ``sensing.sensors.imported`` event describe the whole import.

CSV: a header row with ``id, type, lng, lat`` and optionally ``compound, building, unit,
gateway_id, device_group, status, installed_at`` (ISO 8601 with a timezone); unknown
columns are refused. GeoJSON: a FeatureCollection of Point features, or one Feature per
line (newline-delimited or RFC 8142 text sequences); the same keys are read from
``properties`` (``id`` may also be the feature's own ``id``), other properties are ignored.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import IO, Any, Literal, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from safecity.platform import geo, outbox
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import InvalidInput
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.sensing import service
from safecity.sensing.models import SENSOR_STATUSES, SENSOR_TYPES, Sensor

Format = Literal["csv", "geojson"]
Progress = Callable[[int, int], None]

REQUIRED = ("id", "type", "lng", "lat")
OPTIONAL = (
    "compound",
    "building",
    "unit",
    "gateway_id",
    "device_group",
    "status",
    "installed_at",
)
COLUMNS = REQUIRED + OPTIONAL
BATCH_ROWS = 2_000
MAX_KEPT_PROBLEMS = 1_000  # all are counted; this many are kept for the report
MAX_FEATURE_CHARS = 1 << 20
CHUNK_CHARS = 1 << 20
_COLLECTION_RE = re.compile(r'"type"\s*:\s*"FeatureCollection"|"features"\s*:\s*\[')
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_TYPES = frozenset(SENSOR_TYPES)
_STATUSES = frozenset(SENSOR_STATUSES)
_GEOJSON_SUFFIXES = (".geojson", ".json", ".geojsonl", ".geojsons", ".ndjson", ".jsonl")
_UPDATED = (
    "type",
    "lat",
    "lng",
    "h3_cell",
    "compound",
    "building",
    "unit",
    "gateway_id",
    "device_group",
    "org_id",
    "status",
    "updated_at",
)


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ImportResult:
    import_id: str
    filename: str
    crs: str
    format: Format
    total: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    unassigned: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0


class ImportFailed(InvalidInput):
    """The file has problems and nothing was written; ``problems`` lists them."""

    def __init__(self, filename: str, problems: list[Problem], count: int) -> None:
        head = "; ".join(str(p) for p in problems[:3])
        tail = f" (and {count - 3} more)" if count > 3 else ""
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{filename}: {count} {noun}, nothing imported: {head}{tail}",
            errors=[{"where": p.where, "message": p.message} for p in problems[:20]],
            errors_not_shown=max(0, count - 20),
        )
        self.problems = problems
        self.count = count


# A validated row: id, type, lng, lat (in the declared CRS), compound, building, unit,
# gateway_id, device_group, status, installed_at.
Row = tuple[
    str,
    str,
    float,
    float,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str,
    datetime | None,
]


# --------------------------------------------------------------------------- checks


def _coordinate(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(f"{name} is required")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number")
    return number


def _label(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{key} must be text")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > service.LABEL_LIMITS[key]:
        raise InvalidInput(f"{key} is longer than {service.LABEL_LIMITS[key]} characters")
    if "\x00" in text:
        raise InvalidInput(f"{key} contains a NUL character")
    return text


def check_row(data: Mapping[str, Any]) -> Row:
    """Validate one row (raw values from CSV or GeoJSON); raise :class:`InvalidInput`."""
    raw_id = data.get("id")
    if raw_id is None or raw_id == "":
        raise InvalidInput("id is required")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise InvalidInput("id must be text")
    sensor_id = str(raw_id).strip()
    if not _ID_RE.fullmatch(sensor_id):
        raise InvalidInput(
            f"id {sensor_id[:40]!r} must be 1-64 letters, digits or . _ : - "
            "(starting with a letter or digit)"
        )
    kind = data.get("type")
    if kind is None or kind == "":
        raise InvalidInput("type is required")
    if not isinstance(kind, str) or kind.strip() not in _TYPES:
        raise InvalidInput(f"unknown sensor type {str(kind)[:40]!r}")
    lng = _coordinate(data.get("lng"), "lng")
    lat = _coordinate(data.get("lat"), "lat")
    try:
        geo.check_lng_lat(lng, lat)
    except InvalidInput as exc:
        raise InvalidInput(f"bad coordinates: {exc.detail}") from None
    status = data.get("status") or "active"
    if not isinstance(status, str) or status.strip() not in _STATUSES:
        raise InvalidInput(f"unknown status {str(status)[:40]!r}; expected {SENSOR_STATUSES}")
    installed_raw = data.get("installed_at")
    installed_at: datetime | None = None
    if installed_raw not in (None, ""):
        try:
            installed_at = datetime.fromisoformat(str(installed_raw).strip())
        except ValueError:
            shown = str(installed_raw)[:40]
            raise InvalidInput(f"installed_at {shown!r} is not ISO 8601") from None
        if installed_at.tzinfo is None:
            raise InvalidInput("installed_at needs a timezone (e.g. 2024-05-01T00:00+08:00)")
        installed_at = installed_at.astimezone(UTC)
    return (
        sensor_id,
        kind.strip(),
        lng,
        lat,
        _label(data, "compound"),
        _label(data, "building"),
        _label(data, "unit"),
        _label(data, "gateway_id"),
        _label(data, "device_group"),
        status.strip(),
        installed_at,
    )


# --------------------------------------------------------------------------- reading

# Each reader yields (where, raw mapping) or (where, problem text) per record.
Item = tuple[str, Mapping[str, Any] | str]


def format_of(filename: str, fmt: str | None = None) -> Format:
    if fmt is not None:
        if fmt not in ("csv", "geojson"):
            raise InvalidInput(f"unknown format {fmt[:20]!r}; expected csv or geojson")
        return cast(Format, fmt)
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _GEOJSON_SUFFIXES:
        return "geojson"
    raise InvalidInput(f"{filename}: unknown file type; use .csv or .geojson (or --format)")


def _read_csv(text: IO[str], filename: str) -> Iterator[Item]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{filename} is empty") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{filename} line 1: {exc}") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or repeated:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c[:40]) for c in unknown)}")
        if repeated:
            parts.append(f"repeated column(s) {', '.join(repeated)}")
        problem = Problem(f"{filename} line 1", "; ".join(parts) + f"; expected {COLUMNS}")
        raise ImportFailed(filename, [problem], 1)
    width = len(columns)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{filename} line {reader.line_num + 1}: {exc}") from None
        where = f"{filename} line {reader.line_num}"
        if len(values) != width:
            if not any(v.strip() for v in values):
                continue
            yield where, f"has {len(values)} fields, the header has {width}"
            continue
        yield where, dict(zip(columns, values, strict=True))


class _JsonStream:
    """Values of a large JSON text, decoded one at a time with their line numbers."""

    def __init__(self, text: IO[str], filename: str) -> None:
        self.text = text
        self.filename = filename
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.text.read(CHUNK_CHARS)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{self.filename} line {self.line}: not UTF-8 ({exc})") from None
        if not chunk:
            self.eof = True
            return False
        if self.pos > CHUNK_CHARS:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += chunk
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def peek(self, skip: str = " \t\r\n") -> str:
        """The next character that is not in ``skip`` ("" at the end)."""
        while True:
            end = len(self.buf)
            i = self.pos
            while i < end and self.buf[i] in skip:
                i += 1
            self._advance(i)
            if i < end:
                return self.buf[i]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        found = self.peek()
        if not found or found not in chars:
            raise InvalidInput(
                f"{self.filename} line {self.line}: expected {' or '.join(chars)}, "
                f"found {found or 'the end of the file'!r}"
            )
        self._advance(self.pos + 1)
        return found

    def value(self) -> tuple[int, Any]:
        """Decode the next value; returns (its first line, the value)."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos < MAX_FEATURE_CHARS and self._more():
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                where = f"{self.filename} line {line}"
                raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from None
            start = self.line
            self._advance(end)
            return start, value


def _feature_item(where: str, feature: Any) -> Item:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return where, "not a GeoJSON Feature"
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return where, "geometry must be a Point"
    coords = geometry.get("coordinates")
    if not isinstance(coords, list) or len(coords) not in (2, 3):
        return where, "bad coordinates: a Point needs [lng, lat]"
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        return where, "properties must be an object"
    data = {k: props.get(k) for k in COLUMNS if k in props}
    if data.get("id") in (None, "") and feature.get("id") is not None:
        data["id"] = feature["id"]
    data["lng"], data["lat"] = coords[0], coords[1]
    return where, data


def _read_geojson(text: IO[str], filename: str) -> Iterator[Item]:
    stream = _JsonStream(text, filename)
    first = stream.peek(" \t\r\n\x1e")
    if first == "":
        raise InvalidInput(f"{filename} is empty")
    if first != "{":
        raise InvalidInput(f"{filename} line {stream.line}: expected a GeoJSON object")
    line, head = stream.value() if _is_sequence(stream) else (0, None)
    if head is not None:
        # One Feature per line (newline-delimited / RFC 8142): `head` is the first.
        yield _feature_item(f"{filename} line {line}", head)
        while stream.peek(" \t\r\n\x1e"):
            line, feature = stream.value()
            yield _feature_item(f"{filename} line {line}", feature)
        return
    stream.expect("{")
    kinds: list[Any] = []
    saw_features = False
    if stream.peek() == "}":
        raise InvalidInput(f"{filename}: not a FeatureCollection")
    while True:
        _, key = stream.value()
        stream.expect(":")
        if key == "features":
            saw_features = True
            stream.expect("[")
            if stream.peek() == "]":
                stream.expect("]")
            else:
                while True:
                    line, feature = stream.value()
                    yield _feature_item(f"{filename} line {line}", feature)
                    if stream.expect(",]") == "]":
                        break
        else:
            _, value = stream.value()
            if key == "type":
                kinds.append(value)
        if stream.expect(",}") == "}":
            break
    if kinds != ["FeatureCollection"] or not saw_features:
        raise InvalidInput(f"{filename}: not a GeoJSON FeatureCollection with features")


def _is_sequence(stream: _JsonStream) -> bool:
    """Whether the text starts with a whole Feature (a feature-per-line file)."""
    head = stream.buf[stream.pos : stream.pos + 4096]
    return _COLLECTION_RE.search(head) is None


def _items(source: IO[bytes], filename: str, fmt: Format) -> Iterator[Item]:
    source.seek(0)
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    try:
        if fmt == "csv":
            yield from _read_csv(text, filename)
        else:
            yield from _read_geojson(text, filename)
    finally:
        text.detach()  # leave the caller's file open


# --------------------------------------------------------------------------- import


def _insert_statement(session: Session) -> Any:
    table = cast(Table, Sensor.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise InvalidInput(f"sensor import does not support {dialect}")
    updates: dict[str, Any] = {name: stmt.excluded[name] for name in _UPDATED}
    updates["installed_at"] = func.coalesce(stmt.excluded.installed_at, table.c.installed_at)
    return stmt.on_conflict_do_update(index_elements=[table.c.id], set_=updates)


def validate(
    *, source: IO[bytes], filename: str, fmt: Format, max_kept: int = MAX_KEPT_PROBLEMS
) -> tuple[int, set[str], list[Problem], int]:
    """First pass: (valid rows, the ``where`` of bad rows, kept problems, problem count)."""
    seen: dict[str, str] = {}
    bad: set[str] = set()
    problems: list[Problem] = []
    count = 0
    valid = 0
    for where, item in _items(source, filename, fmt):
        message: str | None = None
        if isinstance(item, str):
            message = item
        else:
            try:
                row = check_row(item)
            except InvalidInput as exc:
                message = exc.detail
            else:
                first = seen.get(row[0])
                if first is not None:
                    message = f"duplicate id {row[0]!r} (first at {first.split(' ', 1)[1]})"
                else:
                    seen[row[0]] = where
        if message is None:
            valid += 1
            continue
        bad.add(where)
        count += 1
        if len(problems) < max_kept:
            problems.append(Problem(where, message))
    return valid, bad, problems, count


def import_sensors(
    *,
    session: Session,
    source: IO[bytes],
    filename: str,
    crs: str,
    fmt: str | None = None,
    skip_invalid: bool = False,
    actor: Principal | None = None,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ImportResult:
    """Validate the whole file, then upsert its sensors in ``session``'s transaction.

    ``source`` is a seekable binary file (it is read twice). Raises :class:`ImportFailed`
    (422, nothing written) when a row is bad and ``skip_invalid`` is false.
    """
    started = time.perf_counter()
    name = PurePath(filename).name or "upload"
    crs = service.check_crs(crs)
    kind = format_of(name, fmt)
    valid, bad, problems, count = validate(source=source, filename=name, fmt=kind)
    if count and not skip_invalid:
        raise ImportFailed(name, problems, count)
    if valid == 0:
        raise InvalidInput(f"{name} contains no valid sensors")
    result = ImportResult(
        import_id=new_id(),
        filename=name,
        crs=crs,
        format=kind,
        total=valid,
        skipped=count,
        problems=problems,
        problem_count=count,
    )
    stations = service.StationIndex(session)
    statement = _insert_statement(session)
    connection = session.connection()
    batch: list[dict[str, Any]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        ids = [r["id"] for r in batch]
        existing = set(connection.scalars(select(Sensor.id).where(Sensor.id.in_(ids))))
        connection.execute(statement, batch)
        result.updated += len(existing)
        result.created += len(batch) - len(existing)
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress(done, valid)

    now = utcnow()
    for where, item in _items(source, name, kind):
        if where in bad or isinstance(item, str):
            continue
        row = check_row(item)
        point = geo.to_wgs84(row[2], row[3], crs=crs)
        org_id = stations.station_for(lat=point.lat, lng=point.lng)
        if org_id is None:
            result.unassigned += 1
        batch.append(
            {
                "id": row[0],
                "type": row[1],
                "lng": point.lng,
                "lat": point.lat,
                "h3_cell": geo.h3_cell(lat=point.lat, lng=point.lng),
                "compound": row[4],
                "building": row[5],
                "unit": row[6],
                "gateway_id": row[7],
                "device_group": row[8],
                "org_id": org_id,
                "status": row[9],
                "installed_at": row[10],
                "last_seen_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(batch) >= batch_rows:
            flush()
    if batch:
        flush()
    result.seconds = round(time.perf_counter() - started, 3)
    counts = {
        "total": result.total,
        "created": result.created,
        "updated": result.updated,
        "skipped": result.skipped,
        "unassigned": result.unassigned,
    }
    audit.record(
        session,
        principal=actor if actor is not None else audit.SYSTEM,
        action="sensing.sensors.import",
        target_type="sensor_import",
        target_id=result.import_id,
        detail={"filename": name[:100], "crs": crs, "format": kind, **counts},
    )
    outbox.emit(
        session,
        type=service.SENSORS_IMPORTED,
        source=service.SOURCE,
        payload={
            "import_id": result.import_id,
            "filename": name[:200],
            "crs": crs,
            "format": kind,
            **counts,
        },
    )
    return result


# --------------------------------------------------------------------------- synthetic

# Share of each type in a synthetic registry (most devices sit in residential compounds).
TYPE_MIX: dict[str, float] = {
    "door": 0.28,
    "smoke": 0.16,
    "intrusion": 0.10,
    "water_meter": 0.10,
    "power_meter": 0.10,
    "ebike_charger": 0.08,
    "parking": 0.05,
    "camera_detector": 0.05,
    "report_terminal": 0.02,
    "pedestrian_crossing": 0.03,
    "noise_meter": 0.02,
    "tunnel_light": 0.01,
}
STREET_TYPES = frozenset({"pedestrian_crossing", "noise_meter", "tunnel_light", "parking"})
UNIT_TYPES = frozenset({"door", "smoke", "ebike_charger", "water_meter", "power_meter"})
SENSORS_PER_COMPOUND = 90


def generate(
    n: int,
    out: Path,
    *,
    fmt: Format = "csv",
    crs: str = "wgs84",
    seed: int = 1,
    district_codes: list[str] | None = None,
) -> int:
    """Write ``n`` synthetic sensors to ``out``: compounds at random points inside the demo
    city's districts, sensors scattered ~80 m around them, coordinates in ``crs``."""
    import numpy as np
    import shapely
    from shapely.ops import unary_union

    from safecity import demo_city

    if n < 1:
        raise InvalidInput("N must be at least 1")
    crs = service.check_crs(crs)
    features = demo_city.district_outlines()["features"]
    if district_codes:
        features = [f for f in features if f["properties"]["code"] in district_codes]
        if not features:
            raise InvalidInput(f"no demo district among {district_codes}")
    districts = [(f["properties"]["code"], geo.area_geometry(f["geometry"])) for f in features]
    union = unary_union([g for _, g in districts])
    shapely.prepare(union)
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    minx, miny, maxx, maxy = union.bounds
    n_compounds = max(1, n // SENSORS_PER_COMPOUND)
    centres: list[tuple[float, float]] = []
    while len(centres) < n_compounds:
        xs = rng.uniform(minx, maxx, 4 * n_compounds)
        ys = rng.uniform(miny, maxy, 4 * n_compounds)
        inside = shapely.contains_xy(union, xs, ys)
        centres.extend(zip(xs[inside].tolist(), ys[inside].tolist(), strict=True))
    centres = centres[:n_compounds]
    types = list(TYPE_MIX)
    weights = list(TYPE_MIX.values())
    kinds = pyrng.choices(types, weights=weights, k=n)
    compound_of = rng.integers(0, n_compounds, n)
    cxs = np.array([c[0] for c in centres])[compound_of]
    cys = np.array([c[1] for c in centres])[compound_of]
    xs = cxs + rng.normal(0.0, 0.0008, n)
    ys = cys + rng.normal(0.0, 0.0008, n)
    outside = ~shapely.contains_xy(union, xs, ys)
    xs[outside], ys[outside] = cxs[outside], cys[outside]
    lngs, lats = xs.tolist(), ys.tolist()
    start = datetime(2021, 1, 1, tzinfo=UTC)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        else:
            fh.write('{"type": "FeatureCollection", "features": [\n')
        for i in range(n):
            kind = kinds[i]
            c = int(compound_of[i])
            lng, lat = lngs[i], lats[i]
            if crs != "wgs84":
                lng, lat = geo.convert(lng, lat, src="wgs84", dst=crs)
            street = kind in STREET_TYPES
            building = None if street else f"{pyrng.randint(1, 40)}号楼"
            unit = (
                f"{pyrng.randint(1, 30)}{pyrng.randint(1, 8):02d}室" if kind in UNIT_TYPES else None
            )
            installed = start + timedelta(minutes=pyrng.randint(0, 5 * 365 * 24 * 60))
            values: dict[str, Any] = {
                "id": f"sc-{i:07d}",
                "type": kind,
                "lng": round(lng, 7),
                "lat": round(lat, 7),
                "compound": None if street else f"小区{c:05d}",
                "building": building,
                "unit": unit,
                "gateway_id": f"gw-{c:05d}-{pyrng.randint(1, 4)}",
                "device_group": f"{kind}-vendor{pyrng.randint(1, 3)}",
                "status": "maintenance" if pyrng.random() < 0.01 else "active",
                "installed_at": installed.isoformat().replace("+00:00", "Z"),
            }
            if writer is not None:
                writer.writerow(["" if values[k] is None else values[k] for k in COLUMNS])
            else:
                props = {k: v for k, v in values.items() if k not in ("lng", "lat")}
                feature = {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [values["lng"], values["lat"]]},
                    "properties": props,
                }
                sep = ",\n" if i < n - 1 else "\n"
                fh.write(json.dumps(feature, ensure_ascii=False) + sep)
        if writer is None:
            fh.write("]}\n")
    return n
