"""Seeding for ``portal_lookup.py``: stations and a sample of cases through the services,
then ~1.4 million cases in bulk (PostgreSQL COPY, or executemany on SQLite).

The bulk rows copy what :func:`safecity.cases.service.open_case`, ``transition`` and
``add_note`` write to ``cases``, ``case_persons`` and ``timeline_entries`` (same columns,
same kinds and flags, code MACs from :func:`safecity.cases.codes.code_mac`). Not written
in bulk: the audit records and notifications those service calls also make (the portal
lookup reads neither). :func:`check_bulk_like_service` compares the two: the shape of a
random set of bulk cases must be one the service produced, and the portal must answer
lookups of bulk cases.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from safecity.cases import codes, portal
from safecity.cases import service as cases
from safecity.cases.models import Case, CasePerson
from safecity.cases.schemas import PersonIn
from safecity.orgs import service as orgs
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.platform.timeline import TimelineEntry
from safecity.security import audit

SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TYPES = ("theft", "fraud", "robbery", "assault", "traffic", "damage", "other")
TYPE_WEIGHTS = (40, 25, 3, 7, 15, 5, 5)
# State paths after "received" (each a list of (transition, reason)), with weights.
PATHS: tuple[tuple[tuple[tuple[str, str | None], ...], int], ...] = (
    ((("register", None),), 25),
    ((("register", None), ("investigate", None)), 35),
    ((("register", None), ("investigate", None), ("solve", None)), 25),
    ((("register", None), ("investigate", None), ("close", "调解结案")), 15),
)
TARGET = {
    "register": ("received", "registered"),
    "investigate": ("registered", "investigating"),
    "solve": ("investigating", "solved"),
    "close": ("investigating", "closed"),
}
PUBLIC_NOTES = ("已调取周边监控", "已联系报案人核实情况", "正在比对线索", "已移送相关部门")
CODE_RE = re.compile(r"查询码 ([0-9A-Z]{8})")
DISTRICTS = 16
STATIONS_PER_DISTRICT = 20


def random_chars(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(SYMBOLS, k=n))


def seed_orgs(runtime: Runtime) -> list[str]:
    """A city, 16 districts and 320 stations (about Shanghai's count) through the service."""
    stations: list[str] = []
    with runtime.sessions.begin() as s:
        city = orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
        for d in range(DISTRICTS):
            district = orgs.create(
                session=s,
                code=f"d{d:02d}",
                kind="district",
                name_zh=f"第{d + 1}区",
                name_en=f"District {d + 1}",
                parent_id=city.id,
            )
            for k in range(STATIONS_PER_DISTRICT):
                station = orgs.create(
                    session=s,
                    code=f"d{d:02d}-s{k:02d}",
                    kind="station",
                    name_zh=f"第{d + 1}区第{k + 1}派出所",
                    name_en=f"District {d + 1} station {k + 1}",
                    parent_id=district.id,
                )
                stations.append(station.id)
    return stations


def _victim(rng: random.Random) -> dict[str, str]:
    return {
        "role": "victim",
        "name": "张" + rng.choice("伟芳娜敏静丽强磊军洋"),
        "phone": "13" + "".join(rng.choices("0123456789", k=9)),
        "email": "",
        "id_number": "310101" + "".join(rng.choices("0123456789", k=12)),
        "address": f"某路{rng.randrange(1, 999)}号",
    }


@dataclass
class Pair:
    number: str
    code: str


def seed_sample(runtime: Runtime, stations: list[str], rng: random.Random) -> list[Pair]:
    """Two cases per state path (with and without a public note) through the service."""
    pairs: list[Pair] = []
    for path, _w in PATHS:
        for with_note in (False, True):
            with runtime.sessions.begin() as s:
                case = cases.open_case(
                    s,
                    principal=audit.SYSTEM,
                    source=rng.choice(("report", "call")),
                    case_type=rng.choices(TYPES, TYPE_WEIGHTS)[0],
                    org_id=rng.choice(stations),
                    summary="电动车被盗",
                    address="某路1号",
                    persons=[PersonIn(**_victim(rng))],
                )
                for i, (name, reason) in enumerate(path):
                    if with_note and i == 1:
                        cases.add_note(
                            session=s,
                            principal=audit.SYSTEM,
                            case_id=case.id,
                            text=rng.choice(PUBLIC_NOTES),
                            public=True,
                        )
                    cases.transition(
                        session=s, principal=audit.SYSTEM, case_id=case.id, name=name, reason=reason
                    )
                case_id, number = case.id, case.number
            with runtime.sessions.begin() as s:
                body = s.scalar(
                    select(Notification.body).where(
                        Notification.idempotency_key == f"cases:{case_id}:code"
                    )
                )
            found = CODE_RE.search(body or "")
            if found is None:
                raise RuntimeError("the service sent no portal code for a sample case")
            pairs.append(Pair(number, found.group(1)))
    return pairs


# --------------------------------------------------------------------------- bulk rows

CASE_COLS = [
    "id",
    "number",
    "code_mac",
    "org_id",
    "case_type",
    "state",
    "source",
    "alert_id",
    "summary",
    "address",
    "victim_opt_out",
    "disclosure_override",
    "not_registered_reason",
    "assigned_officer_id",
    "created_by",
    "created_at",
    "updated_at",
]
PERSON_COLS = [
    "id",
    "case_id",
    "role",
    "name",
    "phone",
    "email",
    "id_number",
    "address",
    "created_at",
]
TL_COLS = [
    "id",
    "record_type",
    "record_id",
    "org_id",
    "at",
    "actor_id",
    "kind",
    "from_state",
    "to_state",
    "note",
    "public",
]


@dataclass
class Chunk:
    cases: list[tuple[Any, ...]]
    persons: list[tuple[Any, ...]]
    timeline: list[tuple[Any, ...]]
    pairs: list[Pair]


def _enc(x: int, n: int) -> str:
    """``n`` Crockford base-32 characters of the integer ``x``."""
    return "".join(SYMBOLS[(x >> (5 * i)) & 31] for i in range(n))


def bulk_chunks(
    *,
    total: int,
    chunk: int,
    stations: list[str],
    mac: Callable[[str, str], str],
    keep_every: int,
    rng: random.Random,
    taken: set[str],
) -> Iterator[Chunk]:
    """Rows for ``total`` registered, disclosed cases, ``chunk`` cases at a time; every
    ``keep_every``-th case's (number, code) is kept for the load test. Ids are 32 random
    hex characters like :func:`safecity.platform.db.new_id`."""
    path_list = [p for p, _ in PATHS]
    path_weights = [w for _, w in PATHS]
    now = datetime.now(UTC)
    done = 0
    while done < total:
        n = min(chunk, total - done)
        out = Chunk([], [], [], [])
        types = rng.choices(TYPES, TYPE_WEIGHTS, k=n)
        paths = rng.choices(path_list, path_weights, k=n)
        hexes = os.urandom(16 * 8 * n).hex()
        h = 0
        for i in range(n):
            number = "AJ" + _enc(rng.getrandbits(50), 10)
            while number in taken:
                number = "AJ" + _enc(rng.getrandbits(50), 10)
            taken.add(number)
            code = _enc(rng.getrandbits(40), 8)
            case_id = hexes[h : h + 32]
            h += 32
            org = stations[rng.randrange(len(stations))]
            at = now - timedelta(seconds=rng.uniform(86_400, 365 * 86_400))
            created = at
            tl = out.timeline
            tl.append((hexes[h : h + 32], "case", case_id, org, at, "system", "created", None,
                       "received", None, True))  # fmt: skip
            h += 32
            note_at = 1 if rng.random() < 0.5 else -1
            state = "received"
            for k, (name, reason) in enumerate(paths[i]):
                at += timedelta(seconds=rng.uniform(3_600, 864_000))
                if k == note_at:
                    tl.append((hexes[h : h + 32], "case", case_id, org, at, "system",
                               "public_note", None, None,
                               PUBLIC_NOTES[rng.randrange(len(PUBLIC_NOTES))], True))  # fmt: skip
                    h += 32
                    at += timedelta(seconds=rng.uniform(1, 3600))
                src, state = TARGET[name]
                tl.append((hexes[h : h + 32], "case", case_id, org, at, "system", "transition",
                           src, state, reason, True))  # fmt: skip
                h += 32
            out.cases.append(
                (case_id, number, mac(number, code), org, types[i], state,
                 "report" if rng.random() < 0.6 else "call", None, "电动车被盗", "某路1号",
                 False, None, None, None, "system", created, at)
            )  # fmt: skip
            out.persons.append(
                (hexes[h : h + 32], case_id, "victim", "张" + rng.choice("伟芳娜敏静丽强磊军洋"),
                 f"13{rng.randrange(10**9):09d}", "", f"310101{rng.randrange(10**12):012d}",
                 f"某路{rng.randrange(1, 999)}号", created)
            )  # fmt: skip
            h += 32
            if (done + i) % keep_every == 0:
                out.pairs.append(Pair(number, code))
        done += n
        yield out


def _text(v: Any) -> str:
    if type(v) is str:
        return v
    if v is None:
        return "\\N"
    if v is True:
        return "t"
    if v is False:
        return "f"
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def copy_chunk_pg(conn: Any, chunk: Chunk) -> None:
    """One transaction: COPY (text format) the cases, then their victims and timelines."""
    with conn.cursor() as cur:
        for table, cols, rows in (
            ("cases", CASE_COLS, chunk.cases),
            ("case_persons", PERSON_COLS, chunk.persons),
            ("timeline_entries", TL_COLS, chunk.timeline),
        ):
            data = "".join("\t".join([_text(v) for v in r]) + "\n" for r in rows)
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                cp.write(data.encode())
    conn.commit()


BULK_TABLES = ("cases", "case_persons", "timeline_entries")


def drop_indexes_pg(conn: Any) -> list[str]:
    """Drop the bulk tables' constraints (keys, unique, foreign keys, also those pointing
    at them) and indexes; the DDL that recreates them exactly, in order."""
    tables = list(BULK_TABLES)
    cons = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
        "FROM pg_constraint WHERE contype IN ('p', 'u', 'f') "
        "AND (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s))",
        (tables, tables),
    ).fetchall()
    names = [c[1] for c in cons]
    idx = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
        "AND NOT indexname = ANY(%s)",
        (tables, names),
    ).fetchall()
    fks = [c for c in cons if c[3] == "f"]
    keys = [c for c in cons if c[3] != "f"]
    for table, name, _d, _t in fks + keys:
        conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for name, _d in idx:
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    return (
        [f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in keys]
        + [d for _n, d in idx]
        + [f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in fks]
    )


def schema_pg(conn: Any) -> list[tuple[str, ...]]:
    """The bulk tables' constraints and index definitions (to compare before and after)."""
    tables = list(BULK_TABLES)
    cons = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s)",
        (tables, tables),
    ).fetchall()
    idx = conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)",
        (tables,),
    ).fetchall()
    return sorted(tuple(r) for r in cons + idx)


def recreate_indexes_pg(conn: Any, ddl: list[str]) -> None:
    conn.execute("SET maintenance_work_mem = '256MB'")
    for statement in ddl:
        conn.execute(statement)
    conn.commit()


def insert_chunk_sqlite(session: Session, chunk: Chunk) -> None:
    """Executemany through SQLAlchemy Core (the SQLite fallback)."""
    for model, cols, rows in (
        (Case, CASE_COLS, chunk.cases),
        (CasePerson, PERSON_COLS, chunk.persons),
        (TimelineEntry, TL_COLS, chunk.timeline),
    ):
        session.execute(insert(model), [dict(zip(cols, r, strict=True)) for r in rows])
    session.commit()


# --------------------------------------------------------------------------- checks


def _shape(s: Session, case: Case) -> tuple[Any, ...]:
    """What must be the same between a service-made and a bulk case (not the values)."""
    entries = s.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.record_type == "case", TimelineEntry.record_id == case.id)
        .order_by(TimelineEntry.seq)
    ).all()
    persons = s.scalars(select(CasePerson).where(CasePerson.case_id == case.id)).all()
    times = [e.at for e in entries]
    return (
        tuple(c for c in CASE_COLS if getattr(case, c) is None),
        bool(codes.NUMBER_RE.match(case.number)),
        len(case.code_mac or ""),
        case.source in ("report", "call"),
        abs(case.created_at - times[0]) < timedelta(seconds=5),
        abs(case.updated_at - times[-1]) < timedelta(seconds=5),
        times == sorted(times),
        tuple(
            (e.kind, e.from_state, e.to_state, e.public, e.note is None, e.actor_id,
             e.org_id == case.org_id)
            for e in entries
        ),
        tuple((p.role, bool(p.name), bool(p.phone), bool(p.id_number)) for p in persons),
    )  # fmt: skip


def check_bulk_like_service(
    runtime: Runtime, service_pairs: list[Pair], bulk_pairs: list[Pair], rng: random.Random
) -> dict[str, Any]:
    """Every checked bulk case has a shape some service-made case has, and the portal finds
    bulk cases by number + code (and refuses a wrong code)."""
    with runtime.sessions() as s:  # never committed: the check leaves nothing behind
        service_shapes = {
            _shape(s, c)
            for c in s.scalars(
                select(Case).where(Case.number.in_([p.number for p in service_pairs]))
            )
        }
        checked = rng.sample(bulk_pairs, min(500, len(bulk_pairs)))
        bulk_cases = s.scalars(
            select(Case).where(Case.number.in_([p.number for p in checked]))
        ).all()
        odd = [c.number for c in bulk_cases if _shape(s, c) not in service_shapes]
        ok = 0
        for p in checked[:50]:
            client = f"seedcheck-{secrets.token_hex(4)}"
            found = portal.lookup(s, client=client, number=p.number, code=p.code)
            wrong = portal.lookup(s, client=client, number=p.number, code="ZZZZZZZZ")
            ok += found is not None and wrong is None and found.number == p.number
        s.rollback()
    if odd or len(bulk_cases) != len(checked) or ok != min(50, len(checked)):
        raise RuntimeError(
            f"bulk rows differ from the service's: {len(odd)} odd shapes "
            f"(e.g. {odd[:3]}), {ok} portal hits of {min(50, len(checked))}"
        )
    return {
        "service_shapes": len(service_shapes),
        "bulk_cases_checked": len(bulk_cases),
        "portal_lookups_checked": ok,
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start
