"""Crowd hotspots: the places whose crowds are counted, forecast and alerted on.

A hotspot (:class:`~safecity.crowd.models.CrowdHotspot`) is a polygon with a capacity and
two density thresholds (people/m²), the org that answers for it, and what diversion
advice uses: entrances, neighbouring hotspots and transit stations with their exits.

Service functions take keyword arguments and a session and never commit; the API route,
the console page or the CLI owns the transaction. Every change is audited
(``crowd.hotspots.create | update | deactivate | import``); reads are not (aggregates about
places, no personal data) but are scoped like every read: a hotspot outside the caller's
org subtree answers 404, as if it did not exist.

Validation (shared by the API, the console form and the GeoJSON import):

* ``code`` matches :data:`~safecity.crowd.schemas.CODE_PATTERN`; names are non-blank;
* ``org`` (a code or an id) names an existing active org **inside the caller's scope**
  (unknown → 422; outside the scope → 403);
* ``geometry`` is a GeoJSON Polygon or MultiPolygon in WGS84 ``[lng, lat]``: every ring
  closed (first position = last), at least 4 positions, finite coordinates in range, and
  a valid polygon (no self-intersection) — see :func:`check_geometry`;
* ``capacity`` > 0 and ``0 < warn_density < critical_density`` (≤ 10 people/m²);
* ``neighbours`` are codes of other existing hotspots (or, in an import, of features in
  the same file), never the hotspot itself, each once;
* ``transit`` entries are ``{"name": str, "exits": [str]}``;
* ``timezone`` is an IANA zone, ``region`` one of the holiday table's regions
  (``crowd/holidays.csv``).

Area
----
``area_m2`` is computed from the polygon on the sphere of mean radius 6 371 008.8 m with
the spherical-excess line integral of Chamberlain & Duquette (JPL 2007, the formula d3 and
Turf use): ``A = R²/2 · |Σ (λ[i+1] − λ[i−1]) · sin φ[i]|`` per ring, holes subtracted. For
places of a few km² the difference from the WGS84 ellipsoid is under 0.5 % — far below the
uncertainty of a hand-drawn outline — and it needs no projection library.

Thresholds
----------
A place is full either when it reaches its operator's capacity or when its people stand
too densely, whichever comes first::

    warn_people     = min(warn_density     × area_m2, WARN_CAPACITY_SHARE × capacity)
    critical_people = min(critical_density × area_m2, capacity)

with ``WARN_CAPACITY_SHARE = 0.8`` (meter the entrances at 80 % of capacity). Since
``warn_density < critical_density`` and 0.8 < 1, ``warn_people < critical_people`` always.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from safecity.crowd.models import CrowdHotspot
from safecity.crowd.schemas import (
    CODE_PATTERN,
    HotspotIn,
    HotspotPatch,
    HotspotRead,
    TransitStation,
)
from safecity.orgs.models import Org
from safecity.platform import geo
from safecity.platform.db import utcnow
from safecity.platform.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.security import audit
from safecity.security.rbac import Principal, scope_clause

WARN_CAPACITY_SHARE = 0.8
MAX_VERTICES = 10_000
MIN_AREA_M2 = 1.0
MAX_AREA_M2 = 100_000_000.0  # 100 km²: a hotspot is a place, not a district
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_FEATURES = 1000
TARGET = "crowd_hotspot"

_CODE = re.compile(CODE_PATTERN)

HOTSPOT_LIST = ListSpec(
    sort={
        "code": CrowdHotspot.code,
        "name_en": CrowdHotspot.name_en,
        "capacity": CrowdHotspot.capacity,
        "updated_at": CrowdHotspot.updated_at,
    },
    filters={
        "org_id": CrowdHotspot.org_id,
        "active": CrowdHotspot.active,
        "region": CrowdHotspot.region,
    },
    default_sort="code",
    tiebreak=CrowdHotspot.id,
)

# Columns written from the validated input, in a stable order (audit "fields", diffing).
FIELDS: tuple[str, ...] = (
    "name_zh",
    "name_en",
    "org_id",
    "geometry",
    "area_m2",
    "capacity",
    "warn_density",
    "critical_density",
    "timezone",
    "region",
    "entrances",
    "neighbours",
    "transit",
    "expected_sensors",
)


# --------------------------------------------------------------------------- geometry


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: coordinates must be numbers")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"{where}: coordinates must be finite numbers")
    return number


def _ring(value: Any, where: str) -> list[list[float]]:
    """A linear ring as ``[[lng, lat], ...]`` (altitude dropped), closed and long enough."""
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: a ring must be a list of positions")
    if len(value) < 4:
        raise InvalidInput(f"{where}: a ring needs at least 4 positions (closed triangle)")
    ring: list[list[float]] = []
    for i, position in enumerate(value):
        if not isinstance(position, list) or not 2 <= len(position) <= 3:
            raise InvalidInput(f"{where}[{i}]: a position must be [lng, lat]")
        lng = _number(position[0], f"{where}[{i}]")
        lat = _number(position[1], f"{where}[{i}]")
        if len(position) == 3:
            _number(position[2], f"{where}[{i}]")
        try:
            geo.check_lng_lat(lng, lat)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}[{i}]: {exc.detail} (WGS84, [lng, lat] order)") from None
        ring.append([lng, lat])
    if ring[0] != ring[-1]:
        raise InvalidInput(f"{where}: the ring is not closed (first and last positions differ)")
    if len({(p[0], p[1]) for p in ring}) < 3:
        raise InvalidInput(f"{where}: a ring needs at least 3 distinct positions")
    return ring


def _polygon(value: Any, where: str) -> list[list[list[float]]]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: a polygon must be a non-empty list of rings")
    return [_ring(ring, f"{where}[{i}]") for i, ring in enumerate(value)]


def check_geometry(value: Any) -> tuple[dict[str, Any], float]:
    """Check a GeoJSON Polygon/MultiPolygon (WGS84) and return it normalised with its area.

    Raises :class:`InvalidInput` — and nothing else — for any other input, with the path
    of the offending part (``coordinates[0][3]``). A Feature wrapper is not accepted here:
    the import unwraps features itself.
    """
    if not isinstance(value, Mapping):
        raise InvalidInput("geometry must be a GeoJSON object")
    kind = value.get("type")
    if kind not in geo.AREA_TYPES:
        shown = kind if isinstance(kind, str) else type(kind).__name__
        raise InvalidInput(f"geometry must be a Polygon or MultiPolygon, not {shown[:40]!r}")
    coordinates = value.get("coordinates")
    if kind == "Polygon":
        polygons = [_polygon(coordinates, "coordinates")]
    else:
        if not isinstance(coordinates, list) or not coordinates:
            raise InvalidInput("coordinates: a MultiPolygon needs a non-empty list of polygons")
        polygons = [_polygon(p, f"coordinates[{i}]") for i, p in enumerate(coordinates)]
    vertices = sum(len(ring) for polygon in polygons for ring in polygon)
    if vertices > MAX_VERTICES:
        raise InvalidInput(f"geometry has {vertices} positions; at most {MAX_VERTICES}")
    normalised: dict[str, Any] = (
        {"type": "Polygon", "coordinates": polygons[0]}
        if kind == "Polygon"
        else {"type": "MultiPolygon", "coordinates": polygons}
    )
    geo.area_geometry(normalised)  # shapely's validity check: self-intersections, holes
    area = sum(polygon_area_m2(polygon) for polygon in polygons)
    if not MIN_AREA_M2 <= area <= MAX_AREA_M2:
        raise InvalidInput(
            f"geometry covers {area:,.0f} m²; a hotspot must cover between "
            f"{MIN_AREA_M2:g} m² and {MAX_AREA_M2 / 1e6:g} km²"
        )
    return normalised, area


def ring_area_m2(ring: Sequence[Sequence[float]]) -> float:
    """Unsigned area (m²) of a closed ``[[lng, lat], ...]`` ring on the mean-radius sphere
    (Chamberlain & Duquette's spherical-excess sum; see the module docstring)."""
    points = list(ring[:-1]) if len(ring) > 1 and list(ring[0]) == list(ring[-1]) else list(ring)
    n = len(points)
    if n < 3:
        return 0.0
    total = 0.0
    for i in range(n):
        lower, middle, upper = points[i - 1], points[i], points[(i + 1) % n]
        total += (math.radians(upper[0]) - math.radians(lower[0])) * math.sin(
            math.radians(middle[1])
        )
    return abs(total) * geo.EARTH_RADIUS_M**2 / 2


def polygon_area_m2(rings: Sequence[Sequence[Sequence[float]]]) -> float:
    """Outer ring's area less its holes'."""
    if not rings:
        return 0.0
    return max(0.0, ring_area_m2(rings[0]) - sum(ring_area_m2(r) for r in rings[1:]))


def geometry_area_m2(geometry: Mapping[str, Any]) -> float:
    """Area (m²) of a checked Polygon/MultiPolygon dict."""
    if geometry.get("type") == "Polygon":
        return polygon_area_m2(geometry["coordinates"])
    return sum(polygon_area_m2(p) for p in geometry["coordinates"])


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    """People present at which a hotspot reaches the warn and the critical level."""

    warn_people: float
    critical_people: float


def thresholds(hotspot: CrowdHotspot) -> Thresholds:
    """The warn/critical people counts: the lower of the capacity rule and the density rule
    (``min(density × area, share × capacity)``; see the module docstring)."""
    return Thresholds(
        warn_people=min(
            hotspot.warn_density * hotspot.area_m2, WARN_CAPACITY_SHARE * hotspot.capacity
        ),
        critical_people=min(hotspot.critical_density * hotspot.area_m2, float(hotspot.capacity)),
    )


def capacity_at(hotspot: CrowdHotspot, level: Literal["warn", "critical"]) -> float:
    """The people threshold of ``level`` (``thresholds(hotspot)``, one field)."""
    found = thresholds(hotspot)
    if level == "warn":
        return found.warn_people
    if level == "critical":
        return found.critical_people
    raise InvalidInput(f"level must be 'warn' or 'critical', not {level!r}")


# --------------------------------------------------------------------------- reference data


@cache
def regions() -> frozenset[str]:
    """Regions of the holiday table shipped with the forecaster (``crowd/holidays.csv``)."""
    text = resources.files("safecity.crowd").joinpath("holidays.csv").read_text("utf-8")
    rows = csv.reader(io.StringIO(text))
    next(rows, None)
    return frozenset(row[0].strip() for row in rows if row and row[0].strip())


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> str:
    if name not in _timezones():
        raise InvalidInput(f"timezone {name[:64]!r} is not an IANA time zone (e.g. Asia/Shanghai)")
    return name


def check_region(name: str) -> str:
    if name not in regions():
        raise InvalidInput(
            f"region {name[:16]!r} has no holiday calendar; known: {', '.join(sorted(regions()))}"
        )
    return name


def _text(value: str, what: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"{what} must not be blank")
    if any(unicodedata.category(c) == "Cc" for c in cleaned):
        raise InvalidInput(f"{what} must not contain control characters")
    return cleaned


def _labels(values: Iterable[str], what: str) -> list[str]:
    out: list[str] = []
    for value in values:
        label = _text(value, what)
        if label in out:
            raise InvalidInput(f"{what} {label[:40]!r} is listed twice")
        out.append(label)
    return out


# --------------------------------------------------------------------------- validation


def resolve_org(session: Session, principal: Principal, ref: str | None) -> Org:
    """The org named by code or id, active and inside the caller's scope.

    Unknown → 422 (the body names something that does not exist); outside the caller's
    org subtree → 403 (the caller may not put places there).
    """
    if ref is None or not ref.strip():
        if not principal.org_id:
            raise InvalidInput("org is required (a station or district code)")
        ref = principal.org_id
    ref = _text(ref, "org")
    org = session.scalars(select(Org).where(Org.code == ref)).one_or_none() or session.get(Org, ref)
    if org is None or not org.active:
        raise InvalidInput(f"unknown organisation {ref[:64]!r}")
    if not principal.sees_org(org.id):
        raise PermissionDenied(f"organisation {ref[:64]!r} is outside your scope")
    return org


def _check(
    session: Session,
    principal: Principal,
    data: HotspotIn,
    *,
    known_codes: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Column values of a hotspot from checked input (raises InvalidInput/PermissionDenied).

    ``known_codes``: neighbour codes acceptable besides the stored hotspots (an import's
    other features).
    """
    if not _CODE.match(data.code):
        raise InvalidInput(f"code {data.code[:64]!r} must match {CODE_PATTERN}")
    geometry, area = check_geometry(data.geometry)
    if not data.warn_density < data.critical_density:
        raise InvalidInput(
            f"warn_density ({data.warn_density:g}) must be below critical_density "
            f"({data.critical_density:g})"
        )
    org = resolve_org(session, principal, data.org)
    neighbours = _labels(data.neighbours, "neighbour")
    if data.code in neighbours:
        raise InvalidInput("a hotspot cannot be its own neighbour")
    if neighbours:
        stored = set(
            session.scalars(select(CrowdHotspot.code).where(CrowdHotspot.code.in_(neighbours)))
        )
        extra = set(known_codes or ())
        missing = [c for c in neighbours if c not in stored and c not in extra]
        if missing:
            raise InvalidInput(f"unknown neighbour hotspot {missing[0]!r}")
    transit = [
        {"name": _text(t.name, "transit station name"), "exits": _labels(t.exits, "exit")}
        for t in data.transit
    ]
    names = [t["name"] for t in transit]
    if len(set(names)) != len(names):
        raise InvalidInput("a transit station is listed twice")
    return {
        "name_zh": _text(data.name_zh, "name_zh"),
        "name_en": _text(data.name_en, "name_en"),
        "org_id": org.id,
        "geometry": geometry,
        "area_m2": area,
        "capacity": data.capacity,
        "warn_density": data.warn_density,
        "critical_density": data.critical_density,
        "timezone": check_timezone(data.timezone),
        "region": check_region(data.region),
        "entrances": _labels(data.entrances, "entrance"),
        "neighbours": neighbours,
        "transit": transit,
        "expected_sensors": data.expected_sensors,
    }


def _as_input(hotspot: CrowdHotspot) -> dict[str, Any]:
    """The stored hotspot as :class:`HotspotIn` fields (the base a patch applies to)."""
    return {
        "code": hotspot.code,
        "name_zh": hotspot.name_zh,
        "name_en": hotspot.name_en,
        "org": hotspot.org_id,
        "geometry": hotspot.geometry,
        "capacity": hotspot.capacity,
        "warn_density": hotspot.warn_density,
        "critical_density": hotspot.critical_density,
        "timezone": hotspot.timezone,
        "region": hotspot.region,
        "entrances": list(hotspot.entrances or []),
        "neighbours": list(hotspot.neighbours or []),
        "transit": list(hotspot.transit or []),
        "expected_sensors": hotspot.expected_sensors,
    }


def validation_message(exc: ValidationError) -> str:
    """The first Pydantic error as one plain line (``capacity: Input should be ...``)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "input"
    return f"{where}: {first.get('msg', 'invalid')}"


def _input(values: Mapping[str, Any]) -> HotspotIn:
    try:
        return HotspotIn.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from None


def _changed(hotspot: CrowdHotspot, values: Mapping[str, Any]) -> list[str]:
    return [name for name in FIELDS if getattr(hotspot, name) != values[name]]


def _apply(hotspot: CrowdHotspot, values: Mapping[str, Any]) -> None:
    for name in FIELDS:
        setattr(hotspot, name, values[name])
    hotspot.updated_at = utcnow()


# --------------------------------------------------------------------------- service


def scoped_query(principal: Principal) -> Select[CrowdHotspot]:
    """Hotspots the principal sees (its org subtree; city-wide roles see all)."""
    return select(CrowdHotspot).where(scope_clause(principal, CrowdHotspot.org_id))


def get(
    *, session: Session, principal: Principal, code: str, active_only: bool = False
) -> CrowdHotspot:
    """One hotspot by code; 404 when missing or outside the caller's scope."""
    query = scoped_query(principal).where(CrowdHotspot.code == code)
    if active_only:
        query = query.where(CrowdHotspot.active.is_(True))
    hotspot = session.scalars(query).one_or_none()
    if hotspot is None:
        raise NotFound(f"hotspot {code[:64]!r} not found")
    return hotspot


def read(hotspot: CrowdHotspot) -> HotspotRead:
    found = thresholds(hotspot)
    return HotspotRead(
        id=hotspot.id,
        code=hotspot.code,
        name_zh=hotspot.name_zh,
        name_en=hotspot.name_en,
        org_id=hotspot.org_id,
        geometry=hotspot.geometry,
        area_m2=round(hotspot.area_m2, 1),
        capacity=hotspot.capacity,
        warn_density=hotspot.warn_density,
        critical_density=hotspot.critical_density,
        warn_people=round(found.warn_people, 1),
        critical_people=round(found.critical_people, 1),
        timezone=hotspot.timezone,
        region=hotspot.region,
        entrances=list(hotspot.entrances or []),
        neighbours=list(hotspot.neighbours or []),
        transit=[TransitStation.model_validate(t) for t in hotspot.transit or []],
        expected_sensors=hotspot.expected_sensors,
        active=hotspot.active,
        created_at=hotspot.created_at,
        updated_at=hotspot.updated_at,
    )


def list_hotspots(
    *, session: Session, principal: Principal, params: ListParams
) -> Page[HotspotRead]:
    """A page of the hotspots in scope (filters: ``org_id``, ``active``, ``region``)."""
    return paginate(session=session, query=scoped_query(principal), params=params, item=read)


def all_in_scope(
    *, session: Session, principal: Principal, active_only: bool = False
) -> list[CrowdHotspot]:
    """Every hotspot the principal sees, by code (the console and the map)."""
    query = scoped_query(principal)
    if active_only:
        query = query.where(CrowdHotspot.active.is_(True))
    return list(session.scalars(query.order_by(CrowdHotspot.code)))


def neighbours_of(session: Session, hotspot: CrowdHotspot) -> list[CrowdHotspot]:
    """The active hotspots named as ``hotspot``'s neighbours, in the order given.

    Not scoped: diversion may send people across a district boundary (the Bund to
    Lujiazui), and the advice names places, not records of people.
    """
    codes = list(hotspot.neighbours or [])
    if not codes:
        return []
    rows = session.scalars(
        select(CrowdHotspot).where(CrowdHotspot.code.in_(codes), CrowdHotspot.active.is_(True))
    )
    by_code = {h.code: h for h in rows}
    return [by_code[c] for c in codes if c in by_code]


def create(*, session: Session, principal: Principal, data: HotspotIn) -> CrowdHotspot:
    """A new hotspot (409 when the code is taken, by any hotspot)."""
    taken = session.scalar(select(CrowdHotspot.id).where(CrowdHotspot.code == data.code))
    if taken is not None:
        raise Conflict(f"hotspot code {data.code!r} is already used")
    values = _check(session, principal, data)
    hotspot = CrowdHotspot(code=data.code, active=True, created_at=utcnow())
    _apply(hotspot, values)
    session.add(hotspot)
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="crowd.hotspots.create",
        target_type=TARGET,
        target_id=hotspot.id,
        detail={"code": hotspot.code, "org_id": hotspot.org_id},
    )
    return hotspot


def update(
    *, session: Session, principal: Principal, code: str, data: HotspotPatch
) -> CrowdHotspot:
    """Change some fields; the whole result is checked again (e.g. a new warn density
    against the stored critical one). The current org must be in scope, and so must a new
    one."""
    hotspot = get(session=session, principal=principal, code=code)
    patch = data.model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in patch.items() if v is None)
    if nulls:
        raise InvalidInput(f"{nulls[0]} cannot be null")
    merged = {**_as_input(hotspot), **patch}
    values = _check(session, principal, _input(merged))
    changed = _changed(hotspot, values)
    if changed:
        _apply(hotspot, values)
        session.flush()
        audit.record(
            session,
            principal=principal,
            action="crowd.hotspots.update",
            target_type=TARGET,
            target_id=hotspot.id,
            detail={"code": hotspot.code, "fields": changed},
        )
    return hotspot


def deactivate(*, session: Session, principal: Principal, code: str) -> CrowdHotspot:
    """Stop using a hotspot (kept for its history: counts, forecasts and risks refer to
    it). Deactivating an inactive hotspot changes nothing and records nothing."""
    hotspot = get(session=session, principal=principal, code=code)
    if hotspot.active:
        hotspot.active = False
        hotspot.updated_at = utcnow()
        session.flush()
        audit.record(
            session,
            principal=principal,
            action="crowd.hotspots.deactivate",
            target_type=TARGET,
            target_id=hotspot.id,
            detail={"code": hotspot.code},
        )
    return hotspot


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """What an import did; ``codes`` in the file's order."""

    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    codes: list[str] = field(default_factory=list)


def _feature_error(
    index: int, code: str | None, exc: InvalidInput | PermissionDenied
) -> InvalidInput:
    label = f"features[{index}]" + (f" ({code})" if code else "")
    return InvalidInput(f"{label}: {exc.detail}", index=index, code=code)


def import_geojson(*, session: Session, principal: Principal, text: str | bytes) -> ImportReport:
    """Import a GeoJSON FeatureCollection of hotspots (see :func:`import_collection`)."""
    if len(text) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_IMPORT_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"not a JSON document: {str(exc)[:120]}") from None
    return import_collection(session=session, principal=principal, data=data)


def import_collection(*, session: Session, principal: Principal, data: Any) -> ImportReport:
    """Create or update (by code) every feature's hotspot — all of them, or none.

    Each feature is a Polygon/MultiPolygon with the hotspot's fields as ``properties``
    (``org`` a code or an id). Every feature is checked before anything is written; the
    first bad one refuses the whole file with its index (``features[3] (yuyuan): ...``).
    Neighbours may name features of the same file. An existing hotspot is updated (and
    reactivated) only when it lies in the caller's scope. One audit record per import.
    """
    if not isinstance(data, Mapping) or data.get("type") != "FeatureCollection":
        raise InvalidInput("expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise InvalidInput("the FeatureCollection has no features")
    if len(features) > MAX_IMPORT_FEATURES:
        raise InvalidInput(f"at most {MAX_IMPORT_FEATURES} features per import")
    inputs: list[HotspotIn] = []
    seen: set[str] = set()
    for index, feature in enumerate(features):
        code: str | None = None
        try:
            if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
                raise InvalidInput("not a GeoJSON Feature")
            props = feature.get("properties")
            if not isinstance(props, Mapping):
                raise InvalidInput("the feature has no properties")
            raw_code = props.get("code")
            code = raw_code[:64] if isinstance(raw_code, str) else None
            if "geometry" in props:
                raise InvalidInput("'geometry' belongs to the feature, not its properties")
            item = _input({**props, "geometry": feature.get("geometry")})
            if item.code in seen:
                raise InvalidInput(f"code {item.code!r} appears twice in the file")
            seen.add(item.code)
            inputs.append(item)
        except (InvalidInput, PermissionDenied) as exc:
            raise _feature_error(index, code, exc) from None
    existing = {
        h.code: h for h in session.scalars(select(CrowdHotspot).where(CrowdHotspot.code.in_(seen)))
    }
    checked: list[tuple[HotspotIn, dict[str, Any]]] = []
    for index, item in enumerate(inputs):
        try:
            current = existing.get(item.code)
            if current is not None and not principal.sees_org(current.org_id):
                raise PermissionDenied(
                    f"code {item.code!r} is used by a hotspot outside your scope"
                )
            checked.append((item, _check(session, principal, item, known_codes=seen)))
        except (InvalidInput, PermissionDenied) as exc:
            raise _feature_error(index, item.code, exc) from None
    report = ImportReport(total=len(checked))
    for item, values in checked:
        report.codes.append(item.code)
        hotspot = existing.get(item.code)
        if hotspot is None:
            hotspot = CrowdHotspot(code=item.code, active=True, created_at=utcnow())
            _apply(hotspot, values)
            session.add(hotspot)
            report.created += 1
        elif _changed(hotspot, values) or not hotspot.active:
            _apply(hotspot, values)
            hotspot.active = True
            report.updated += 1
        else:
            report.unchanged += 1
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="crowd.hotspots.import",
        target_type=TARGET,
        detail={
            "total": report.total,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
        },
    )
    return report
