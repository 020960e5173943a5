"""Import organisations from CSV or YAML: validate the whole file, then write.

Nothing is written unless every row is valid; the writes happen in the caller's
transaction, so a failure half-way rolls everything back. Rows whose ``code`` already
exists are updated (names, area, service codes) when they differ, and left alone when
they do not, so importing the same file twice changes nothing.

CSV: a header row with ``code, kind, name_zh, name_en`` and optionally ``parent`` (the
parent's code), ``service_codes`` (separated by ``;``), ``area`` (a GeoJSON geometry as
JSON text) and ``area_synthetic`` (true/false). Unknown columns are refused.

YAML: a list of entries (or ``{"orgs": [...]}``) with the same keys; ``service_codes``
may be a list, ``area`` a mapping, and an entry may nest ``children`` instead of naming
``parent``. Anchors and aliases are refused.

Problems are reported with their place: ``orgs.csv line 7: unknown parent 'x'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service
from safecity.orgs.models import Org
from safecity.platform.errors import InvalidInput, PayloadTooLarge, SafeCityError
from safecity.security import audit
from safecity.security.rbac import Principal

MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
MAX_REPORTED = 20

REQUIRED = ("code", "kind", "name_zh", "name_en")
OPTIONAL = ("parent", "service_codes", "area", "area_synthetic")
COLUMNS = REQUIRED + OPTIONAL
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}

Progress = Callable[[int, int], None]


@dataclass
class Row:
    """One organisation as read from a file, with where it came from."""

    where: str
    code: str = ""
    kind: str = ""
    name_zh: str = ""
    name_en: str = ""
    parent: str | None = None
    service_codes: list[str] = field(default_factory=list)
    area: dict[str, Any] | None = None
    area_synthetic: bool = False


@dataclass
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ImportResult:
    filename: str
    dry_run: bool
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    codes: list[str] = field(default_factory=list)


class ImportFailed(InvalidInput):
    """The file has problems; ``problems`` lists them (the detail names the first few)."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        head = "; ".join(str(p) for p in shown[:3])
        tail = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"{filename}: {len(problems)} {noun}, nothing imported: {head}{tail}",
            errors=[{"where": p.where, "message": p.message} for p in shown],
            errors_not_shown=more,
        )
        self.problems = problems


# --------------------------------------------------------------------------- parsing


def _decode(content: bytes, filename: str) -> str:
    if len(content) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"{filename} is larger than {MAX_IMPORT_BYTES // 1048576} MiB")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{filename} is not UTF-8 text (byte {exc.start})") from None


def _format_of(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".yaml", ".yml", ".json"):
        return "yaml"
    raise InvalidInput(f"{filename}: unsupported file type; use .csv, .yaml, .yml or .json")


def _bool(value: Any, where: str, problems: list[Problem]) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    problems.append(Problem(where, f"area_synthetic must be true or false, not {value!r}"))
    return False


def _text(value: Any, key: str, where: str, problems: list[Problem]) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value).strip()
    problems.append(Problem(where, f"{key} must be text"))
    return ""


def _service_codes(value: Any, where: str, problems: list[Problem]) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(";") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    problems.append(Problem(where, "service_codes must be a list of text"))
    return []


def _area(value: Any, where: str, problems: list[Problem]) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"area is not valid JSON ({exc.msg})"))
            return None
    if not isinstance(value, dict):
        problems.append(Problem(where, "area must be a GeoJSON geometry object"))
        return None
    try:
        return service.check_area(value)
    except InvalidInput as exc:
        problems.append(Problem(where, exc.detail))
        return None


def _row(data: dict[str, Any], where: str, problems: list[Problem]) -> Row:
    unknown = sorted(set(data) - set(COLUMNS))
    if unknown:
        problems.append(Problem(where, f"unknown field(s) {', '.join(unknown)}"))
    row = Row(where=where)
    row.code = _text(data.get("code"), "code", where, problems)
    row.kind = _text(data.get("kind"), "kind", where, problems)
    row.name_zh = _text(data.get("name_zh"), "name_zh", where, problems)
    row.name_en = _text(data.get("name_en"), "name_en", where, problems)
    parent = _text(data.get("parent"), "parent", where, problems)
    row.parent = parent or None
    row.service_codes = _service_codes(data.get("service_codes"), where, problems)
    row.area = _area(data.get("area"), where, problems)
    row.area_synthetic = _bool(data.get("area_synthetic"), where, problems)
    return row


def parse_csv(text: str, filename: str, problems: list[Problem]) -> list[Row]:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_IMPORT_BYTES))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{filename} is empty") from None
    except csv.Error as exc:
        raise InvalidInput(f"{filename} line 1: {exc}") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or duplicated:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        if duplicated:
            parts.append(f"repeated column(s) {', '.join(duplicated)}")
        raise ImportFailed(
            filename,
            [Problem(f"{filename} line 1", "; ".join(parts) + f"; expected {', '.join(COLUMNS)}")],
        )
    rows: list[Row] = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(f"{filename} line {reader.line_num}", str(exc)))
            break
        where = f"{filename} line {reader.line_num}"
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(columns):
            problems.append(
                Problem(where, f"has {len(values)} fields, the header has {len(columns)}")
            )
            continue
        rows.append(_row(dict(zip(columns, values, strict=True)), where, problems))
        if len(rows) > MAX_ROWS:
            raise InvalidInput(f"{filename} has more than {MAX_ROWS} rows")
    return rows


def _check_no_aliases(text: str, filename: str) -> None:
    """Refuse anchors and aliases (they allow "billion laughs" expansion)."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            raise InvalidInput(f"{filename} line {line}: YAML anchors and aliases are not allowed")


def parse_yaml(text: str, filename: str, problems: list[Problem]) -> list[Row]:
    loader = yaml.SafeLoader(text)
    try:
        _check_no_aliases(text, filename)
        root = loader.get_single_node()
        if root is None:
            raise InvalidInput(f"{filename} is empty")
        if isinstance(root, yaml.MappingNode):
            keys = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
            if set(keys) != {"orgs"}:
                raise InvalidInput(f"{filename}: expected a list of orgs or a mapping 'orgs:'")
            root = keys["orgs"]
        if not isinstance(root, yaml.SequenceNode):
            raise InvalidInput(f"{filename}: expected a list of organisations")
        rows: list[Row] = []
        counter = [0]

        def walk(seq: yaml.SequenceNode, parent: str | None) -> None:
            for node in seq.value:
                counter[0] += 1
                line = node.start_mark.line + 1
                where = f"{filename} entry {counter[0]} (line {line})"
                if counter[0] > MAX_ROWS:
                    raise InvalidInput(f"{filename} has more than {MAX_ROWS} entries")
                if not isinstance(node, yaml.MappingNode):
                    problems.append(Problem(where, "entry must be a mapping"))
                    continue
                children = None
                pairs = []
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == "children":
                        children = value
                    else:
                        pairs.append((key, value))
                node.value = pairs
                data = loader.construct_object(node, deep=True)
                if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
                    problems.append(Problem(where, "entry keys must be text"))
                    continue
                if parent is not None:
                    if data.get("parent") not in (None, "", parent):
                        problems.append(Problem(where, "give either 'parent' or nest it"))
                    data["parent"] = parent
                row = _row(data, where, problems)
                rows.append(row)
                if children is not None:
                    if not isinstance(children, yaml.SequenceNode):
                        problems.append(Problem(where, "children must be a list"))
                    else:
                        walk(children, row.code or None)

        walk(root, None)
        return rows
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"{filename}{place}: not valid YAML ({reason})") from None
    finally:
        loader.dispose()


def parse(content: bytes, filename: str) -> tuple[list[Row], list[Problem]]:
    """Read a file into rows plus the problems found while reading."""
    name = PurePath(filename).name or "upload"
    fmt = _format_of(name)
    text = _decode(content, name)
    problems: list[Problem] = []
    rows = parse_csv(text, name, problems) if fmt == "csv" else parse_yaml(text, name, problems)
    if not rows and not problems:
        raise InvalidInput(f"{name} contains no organisations")
    return rows, problems


# --------------------------------------------------------------------------- validation


def _validate(session: Session, rows: list[Row], problems: list[Problem]) -> list[Row]:
    """Check every row against the file and the database; return rows in write order."""
    by_code: dict[str, Row] = {}
    for row in rows:
        for key in REQUIRED:
            if not getattr(row, key):
                problems.append(Problem(row.where, f"{key} is required"))
        if row.code:
            try:
                service.check_code(row.code)
            except InvalidInput as exc:
                problems.append(Problem(row.where, exc.detail))
            if row.code in by_code:
                problems.append(
                    Problem(
                        row.where,
                        f"duplicate code {row.code!r} (first at {by_code[row.code].where})",
                    )
                )
            else:
                by_code[row.code] = row
        if row.kind:
            try:
                service.check_kind(row.kind)
            except InvalidInput as exc:
                problems.append(Problem(row.where, exc.detail))
                row.kind = ""
        for key in ("name_zh", "name_en"):
            value = getattr(row, key)
            if value and len(value) > service.MAX_NAME:
                problems.append(Problem(row.where, f"{key} is longer than {service.MAX_NAME}"))
        if row.kind:
            try:
                service.check_service_codes(row.kind, row.service_codes)
            except InvalidInput as exc:
                problems.append(Problem(row.where, exc.detail))
        if row.area_synthetic and row.area is None:
            problems.append(Problem(row.where, "area_synthetic needs an area"))

    codes = set(by_code) | {r.parent for r in rows if r.parent}
    existing = (
        {o.code: o for o in session.scalars(select(Org).where(Org.code.in_(sorted(codes))))}
        if codes
        else {}
    )
    id_to_code = {o.id: o.code for o in existing.values()}
    missing_parent_ids = {o.parent_id for o in existing.values() if o.parent_id} - set(id_to_code)
    if missing_parent_ids:
        for o in session.scalars(select(Org).where(Org.id.in_(sorted(missing_parent_ids)))):
            id_to_code[o.id] = o.code

    def kind_of(code: str) -> str | None:
        if code in by_code:
            return by_code[code].kind or None
        return existing[code].kind if code in existing else None

    for row in by_code.values():
        if not row.kind:
            continue
        if row.parent is not None and row.parent not in by_code and row.parent not in existing:
            problems.append(Problem(row.where, f"unknown parent {row.parent!r}"))
            continue
        parent_kind = kind_of(row.parent) if row.parent else None
        if row.parent is None or parent_kind is not None:
            try:
                service.check_parent_kind(row.kind, parent_kind)
            except InvalidInput as exc:
                problems.append(Problem(row.where, exc.detail))
        current = existing.get(row.code)
        if current is not None:
            if current.kind != row.kind:
                problems.append(
                    Problem(row.where, f"{row.code!r} exists as a {current.kind}, not a {row.kind}")
                )
            current_parent = id_to_code.get(current.parent_id) if current.parent_id else None
            if current_parent != row.parent:
                problems.append(
                    Problem(
                        row.where,
                        f"{row.code!r} exists under {current_parent or 'nothing'}; "
                        "moving organisations by import is not supported (use PATCH)",
                    )
                )
        elif row.parent in existing and not existing[row.parent].active:
            problems.append(Problem(row.where, f"parent {row.parent!r} is inactive"))

    # Write order: parents first; a cycle inside the file is a problem.
    ordered: list[Row] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    for start in by_code:
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            code, leaving = stack.pop()
            if leaving:
                state[code] = 2
                ordered.append(by_code[code])
                continue
            if state.get(code) == 2:
                continue
            if state.get(code) == 1:
                problems.append(Problem(by_code[code].where, f"{code!r} is its own ancestor"))
                state[code] = 2
                continue
            state[code] = 1
            stack.append((code, True))
            parent = by_code[code].parent
            if parent in by_code and state.get(parent) != 2:
                stack.append((parent, False))
    return ordered


def _differs(org: Org, row: Row) -> bool:
    return (
        org.name_zh != row.name_zh
        or org.name_en != row.name_en
        or list(org.service_codes) != service.check_service_codes(row.kind, row.service_codes)
        or org.area != row.area
        or org.area_synthetic != (row.area_synthetic and row.area is not None)
    )


def import_orgs(
    *,
    session: Session,
    content: bytes,
    filename: str,
    actor: Principal | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Validate ``content`` completely, then create/update its orgs in ``session``.

    Raises :class:`ImportFailed` (422) listing the problems when any row is bad; in
    that case nothing has been written.
    """
    name = PurePath(filename).name or "upload"
    rows, problems = parse(content, name)
    ordered = _validate(session, rows, problems)
    if problems:
        raise ImportFailed(name, problems)
    result = ImportResult(filename=name, dry_run=dry_run, total=len(ordered))
    if dry_run:
        for row in ordered:
            try:
                org = service.get_by_code(session=session, code=row.code)
            except SafeCityError:
                result.created += 1
                continue
            if _differs(org, row):
                result.updated += 1
            else:
                result.unchanged += 1
        return result
    ids: dict[str, str] = {}
    purpose = "orgs import"
    for done, row in enumerate(ordered, start=1):
        existing = session.scalars(select(Org).where(Org.code == row.code)).one_or_none()
        parent_id = None
        if row.parent is not None:
            parent_id = (
                ids.get(row.parent) or service.get_by_code(session=session, code=row.parent).id
            )
        if existing is None:
            org = service.create(
                session=session,
                code=row.code,
                kind=row.kind,
                name_zh=row.name_zh,
                name_en=row.name_en,
                parent_id=parent_id,
                area=row.area,
                area_synthetic=row.area_synthetic,
                service_codes=row.service_codes,
                actor=actor,
                purpose=purpose,
            )
            result.created += 1
        else:
            org = existing
            if _differs(org, row):
                service.update(
                    session=session,
                    org_id=org.id,
                    actor=actor,
                    name_zh=row.name_zh,
                    name_en=row.name_en,
                    service_codes=row.service_codes,
                    area=row.area,
                    area_synthetic=row.area_synthetic and row.area is not None,
                    purpose=purpose,
                )
                result.updated += 1
            else:
                result.unchanged += 1
        ids[row.code] = org.id
        result.codes.append(row.code)
        if progress is not None:
            progress(done, len(ordered))
    audit.record(
        session,
        principal=actor if actor is not None else audit.SYSTEM,
        action="orgs.import",
        target_type="org_import",
        purpose=purpose,
        detail={
            "filename": name[:100],
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
        },
    )
    return result
