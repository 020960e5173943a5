"""The rule file format: YAML, versioned, validated as a whole.

A rule file is ``version: 1`` plus ``rules:``, a list of rules. Each rule has an ``id``, a
``kind`` and the fields of that kind; every kind shares ``key`` (per-entity state),
``severity``, ``lateness`` (allowed event-time lateness) and ``alert`` (the template of the
alert a match raises). Pydantic validates the *file* (once, at load); the engine compiles the
validated rules into plain closures and tuples for the per-event hot path.

Kinds::

    threshold    one event whose payload field passes ``threshold: {field, op, value}``
    count        ``count: N`` matching events within ``within: T`` per key (sliding, event time)
    sequence     ``first`` then ``then`` within T per key
    absence      ``first`` not followed by ``then`` within T per key (fires on the watermark)
    geofence     one event inside (or outside) a polygon or a set of H3 cells
    time_of_day  one event inside a local-time window (``start``/``end`` may cross midnight)

Every match step (the rule itself for single-step kinds, ``first``/``then`` for the others)
filters on ``event`` (type or list of types), ``where`` (payload/field conditions) and may
add ``geofence`` and ``time_of_day`` as extra filters.

Any error rejects the whole file with :class:`InvalidInput` whose message names the rule and
the field, e.g. ``rules[3] 'repeated-intrusion': within: duration must be positive``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import h3
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from safecity.platform.errors import InvalidInput

FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "rules"

#: Top-level fields of a sensor event that rules may read; anything else is ``payload.<name>``.
EVENT_FIELDS = frozenset({"id", "type", "sensor_id", "lat", "lng", "h3", "org_id"})
OPS = {
    "==": "eq",
    "eq": "eq",
    "!=": "ne",
    "ne": "ne",
    ">": "gt",
    "gt": "gt",
    ">=": "ge",
    "ge": "ge",
    "<": "lt",
    "lt": "lt",
    "<=": "le",
    "le": "le",
    "in": "in",
    "not_in": "not_in",
    "exists": "exists",
    "missing": "missing",
    "prefix": "prefix",
}
TEMPLATE_FIELDS = frozenset({"rule", "key", "sensor_id", "h3", "org_id", "type"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")]
Severity = Literal["info", "low", "medium", "high", "critical"]


def parse_duration(value: Any) -> float:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"7d"`` or a number of seconds → seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("duration must be like 30s, 10m, 2h, 7d or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("duration must be like 30s, 10m, 2h, 7d or a number of seconds")
    if not 0 <= seconds <= 366 * 86400 or seconds != seconds:
        raise ValueError("duration must be between 0 and 366 days")
    return seconds


def check_field_path(path: str) -> tuple[str, ...]:
    """``sensor_id`` or ``payload.a.b`` → path tuple; anything else is an error."""
    parts = tuple(path.split("."))
    if any(not p for p in parts):
        raise ValueError(f"field {path!r} has an empty part")
    if parts[0] == "payload":
        if len(parts) < 2:
            raise ValueError("field 'payload' needs a name: payload.<name>")
        return parts
    if len(parts) == 1 and parts[0] in EVENT_FIELDS:
        return parts
    raise ValueError(f"unknown field {path!r}: use one of {sorted(EVENT_FIELDS)} or payload.<name>")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """``{field: payload.level, op: ">=", value: 80}``."""

    field: str
    op: str = "=="
    value: Any = None

    @field_validator("field")
    @classmethod
    def _field(cls, v: str) -> str:
        check_field_path(v)
        return v

    @field_validator("op")
    @classmethod
    def _op(cls, v: str) -> str:
        if v not in OPS:
            raise ValueError(f"unknown op {v!r}: use one of {sorted(set(OPS))}")
        return v

    @model_validator(mode="after")
    def _value(self) -> Condition:
        op = OPS[self.op]
        if op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"op {self.op!r} needs a non-empty list value")
            if not all(isinstance(x, str | int | float | bool) for x in self.value):
                raise ValueError(f"op {self.op!r} takes a list of strings or numbers")
        elif op in ("gt", "ge", "lt", "le"):
            if isinstance(self.value, bool) or not isinstance(self.value, int | float | str):
                raise ValueError(f"op {self.op!r} needs a number (or string) value")
        elif op == "prefix":
            if not isinstance(self.value, str) or not self.value:
                raise ValueError("op 'prefix' needs a non-empty string value")
        elif op in ("eq", "ne") and not (
            isinstance(self.value, str | int | float | bool) or self.value is None
        ):
            raise ValueError(f"op {self.op!r} needs a scalar value")
        return self


class Geofence(_Strict):
    """Inside (or outside) a WGS84 polygon ``[[lng, lat], ...]`` or a set of H3 cells."""

    inside: bool = True
    polygon: list[tuple[float, float]] | None = None
    cells: list[str] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Geofence:
        if (self.polygon is None) == (self.cells is None):
            raise ValueError("geofence needs exactly one of polygon or cells")
        if self.polygon is not None:
            if len(self.polygon) < 3:
                raise ValueError("geofence polygon needs at least 3 points [lng, lat]")
            for lng, lat in self.polygon:
                if not (-180 <= lng <= 180 and -90 <= lat <= 90):
                    raise ValueError(f"geofence point [{lng}, {lat}] is not a WGS84 [lng, lat]")
            from shapely.geometry import Polygon

            if not Polygon(self.polygon).is_valid:
                raise ValueError("geofence polygon is not a valid (simple) polygon")
        if self.cells is not None:
            if not self.cells:
                raise ValueError("geofence cells must not be empty")
            bad = [c for c in self.cells if not h3.is_valid_cell(c)]
            if bad:
                raise ValueError(f"not H3 cells: {bad[:3]}")
        return self


class TimeOfDay(_Strict):
    """Local-time window; ``start > end`` crosses midnight (22:00–06:00)."""

    start: time
    end: time
    tz: str = "Asia/Shanghai"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, v: Any) -> Any:
        if not isinstance(v, str | time):
            raise ValueError('time must be a quoted "HH:MM" string (YAML reads 22:00 as a number)')
        return v

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _span(self) -> TimeOfDay:
        if self.start == self.end:
            raise ValueError("time_of_day start and end must differ")
        return self


class Step(_Strict):
    """What one event must look like: type(s), conditions, optional place and time."""

    event: EventType | list[EventType]
    where: list[Condition] = Field(default_factory=list)
    geofence: Geofence | None = None
    time_of_day: TimeOfDay | None = None

    @field_validator("event")
    @classmethod
    def _event(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("event needs at least one type")
        return v

    def types(self) -> list[str]:
        return [self.event] if isinstance(self.event, str) else list(self.event)


class AlertTemplate(_Strict):
    """What the alert layer raises for a match."""

    title: str = Field(min_length=1, max_length=120, description="i18n key of the title")
    category: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")
    dedup: str = Field("{rule}:{key}", min_length=1, max_length=200)
    cooldown: float = Field(600.0, description="seconds a repeat match merges into one alert")

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("dedup")
    @classmethod
    def _dedup(cls, v: str) -> str:
        names = _PLACEHOLDER.findall(v)
        bad = [n for n in names if n not in TEMPLATE_FIELDS]
        if bad:
            raise ValueError(f"unknown placeholder {{{bad[0]}}}: use {sorted(TEMPLATE_FIELDS)}")
        stripped = _PLACEHOLDER.sub("", v)
        if "{" in stripped or "}" in stripped:
            raise ValueError("unbalanced braces in dedup template")
        return v


class _RuleBase(_Strict):
    id: RuleId
    name: str = ""
    description: str = ""
    enabled: bool = True
    key: list[str] = Field(default_factory=lambda: ["sensor_id"])
    severity: Severity = "medium"
    lateness: float = Field(300.0, description="allowed event-time lateness, seconds")
    alert: AlertTemplate

    @field_validator("lateness", mode="before")
    @classmethod
    def _lateness(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("key")
    @classmethod
    def _key(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("key needs at least one field (e.g. sensor_id)")
        for part in v:
            if part.startswith("h3@"):
                res = part[3:]
                if not res.isdigit() or not 0 <= int(res) <= 15:
                    raise ValueError(f"key {part!r}: h3@R needs a resolution 0..15")
            else:
                check_field_path(part)
        return v


class ThresholdRule(_RuleBase, Step):
    kind: Literal["threshold"]
    threshold: Condition


class CountRule(_RuleBase, Step):
    kind: Literal["count"]
    count: int = Field(ge=2, le=100_000)
    within: float

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        seconds = parse_duration(v)
        if seconds <= 0:
            raise ValueError("duration must be positive")
        return seconds


class SequenceRule(_RuleBase):
    kind: Literal["sequence"]
    first: Step
    then: Step
    within: float

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        seconds = parse_duration(v)
        if seconds <= 0:
            raise ValueError("duration must be positive")
        return seconds


class AbsenceRule(SequenceRule):
    kind: Literal["absence"]  # type: ignore[assignment]


class GeofenceRule(_RuleBase, Step):
    kind: Literal["geofence"]
    geofence: Geofence


class TimeOfDayRule(_RuleBase, Step):
    kind: Literal["time_of_day"]
    time_of_day: TimeOfDay


Rule = Annotated[
    ThresholdRule | CountRule | SequenceRule | AbsenceRule | GeofenceRule | TimeOfDayRule,
    Field(discriminator="kind"),
]
KINDS = ("threshold", "count", "sequence", "absence", "geofence", "time_of_day")


class RuleFile(_Strict):
    version: int
    revision: str = ""
    description: str = ""
    rules: list[Rule]

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != FORMAT_VERSION:
            raise ValueError(f"unsupported rule file version {v}; this release reads version 1")
        return v

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


def rule_digest(rule: BaseModel) -> str:
    """A stable hash of one rule's definition (reload keeps state when it is unchanged)."""
    canon = json.dumps(rule.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _describe(loc: tuple[int | str, ...], data: Any) -> str:
    """``('rules', 3, 'count', 'within')`` → ``rules[3] 'repeated-intrusion': within``."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        idx = loc[1]
        rid = None
        if isinstance(data, dict) and isinstance(data.get("rules"), list):
            rules = data["rules"]
            if idx < len(rules) and isinstance(rules[idx], dict):
                rid = rules[idx].get("id")
        rest = list(loc[2:])
        if rest and rest[0] in KINDS:  # the discriminated union's tag
            rest = rest[1:]
        field = ".".join(str(p) for p in rest) or "(rule)"
        name = f" {rid!r}" if isinstance(rid, str) else ""
        return f"rules[{idx}]{name}: {field}"
    return ".".join(str(p) for p in loc) or "(file)"


def _message(err: Any) -> str:
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def validate_rule_data(data: Any, *, source: str = "<rules>") -> RuleFile:
    """Validate parsed YAML/JSON; any problem → :class:`InvalidInput` naming rule and field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a rule file is a mapping with 'version' and 'rules'")
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        where = _describe(tuple(first.get("loc", ())), data)
        raise InvalidInput(f"{source}: {where}: {_message(first)}{more}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # never crash on odd input
        raise InvalidInput(f"{source}: invalid rule file: {exc}") from None


def parse_rule_text(text: str, *, source: str = "<rules>") -> RuleFile:
    """Parse and validate the YAML text of a rule file."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InvalidInput(f"{source}: YAML error{at}: {problem}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"{source}: YAML error: {exc}") from None
    return validate_rule_data(data, source=source)


def read_rule_file(path: str | Path) -> RuleFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{p}: no such rule file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{p}: cannot read: {exc}") from None
    return parse_rule_text(text, source=str(p))


def dump_rule_file(rule_file: RuleFile) -> str:
    """YAML text that :func:`parse_rule_text` reads back to an equal :class:`RuleFile`."""
    data = rule_file.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def rule_text_errors(text: str, *, source: str = "<rules>") -> list[str]:
    """Every problem of a rule file's YAML text, one clear line each (``[]`` when valid).

    Used where a whole file is published (:mod:`safecity.sensing.rulesets`), so the author
    sees all of them at once rather than the first."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        return [f"{source}: YAML error{at}: {problem}"]
    except (ValueError, TypeError, RecursionError) as exc:
        return [f"{source}: YAML error: {exc}"]
    if not isinstance(data, dict):
        return [f"{source}: a rule file is a mapping with 'version' and 'rules'"]
    try:
        RuleFile.model_validate(data)
    except ValidationError as exc:
        return [
            f"{source}: {_describe(tuple(e.get('loc', ())), data)}: {_message(e)}"
            for e in exc.errors()
        ]
    except (ValueError, TypeError, RecursionError) as exc:
        return [f"{source}: invalid rule file: {exc}"]
    return []
