"""Sensor registry bulk import: 900,000 synthetic sensors into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/sensor_import.py [--sensors 900000] [--crs gcj02]
        [--format csv|geojson] [--reimport] [--no-pg] [--no-sqlite]

1. ``safecity sensors generate``'s generator writes ``--sensors`` synthetic sensors
   (compounds at random points in the demo city's 16 districts, the realistic type mix)
   in ``--crs`` to a temporary file (deleted afterwards; never committed).
2. For each database, a **fresh child process** creates the schema in a new database
   (a temporary SQLite file; a randomly named PostgreSQL database at 127.0.0.1:5432,
   dropped afterwards), seeds the demo city's organisations (16 districts, their station
   areas), then runs exactly what ``safecity sensors import FILE --crs ...`` runs:
   validate the whole file (pass 1), then convert to WGS84, H3 cell, station by
   point-in-polygon (one STR-tree) and upsert in batches (pass 2), in one transaction,
   with the audit record and the outbox event. With ``--reimport`` the same file is
   imported a second time (every row an update).
3. Reported per database: total seconds, rows/s, when the first batch was written (i.e.
   roughly how long the validation pass took), peak RSS of the child process (``VmHWM``;
   the peak after seeding, before the import, is given beside it) and the number of
   sensors in the table afterwards.

Writes ``benchmarks/results/sensor_import.json`` (figures, command, machine, date,
versions) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import machine  # benchmarks/_common.py (run as a script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "sensor_import.json"
PG_ADMIN_URL = os.environ.get(
    "SAFECITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def rss_mib() -> float:
    """Peak RSS of this process in MiB: ``VmHWM`` (per address space, so not inherited from
    the parent across fork/exec as ``ru_maxrss`` is on Linux), else ``ru_maxrss``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(url: str, file: Path, crs: str, fmt: str, reimport: bool) -> dict[str, Any]:
    """Run in a fresh process: schema, demo orgs, then the import(s)."""
    from sqlalchemy import func, select

    import safecity.models  # noqa: F401
    from safecity.demo_city import seed_demo_orgs
    from safecity.platform.db import Base, make_engine, make_session_factory, transaction
    from safecity.sensing import registry_import
    from safecity.sensing.models import Sensor

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        seeded = seed_demo_orgs(session)
    out: dict[str, Any] = {
        "stations": len(seeded["stations"]),
        "rss_before_import_mib": rss_mib(),
        "runs": [],
    }
    for label in ("import", "reimport") if reimport else ("import",):
        started = time.perf_counter()
        validated_at: list[float] = []

        def progress(done: int, total: int, _marks: list[float] = validated_at) -> None:
            if not _marks:
                _marks.append(time.perf_counter())

        with file.open("rb") as source, transaction(sessions) as session:
            result = registry_import.import_sensors(
                session=session,
                source=source,
                filename=file.name,
                crs=crs,
                fmt=fmt,
                progress=progress,
            )
        seconds = time.perf_counter() - started
        out["runs"].append(
            {
                "run": label,
                "rows": result.total,
                "created": result.created,
                "updated": result.updated,
                "unassigned": result.unassigned,
                "seconds": round(seconds, 1),
                "rows_per_s": round(result.total / seconds),
                "first_batch_written_after_s": (
                    round(validated_at[0] - started, 1) if validated_at else None
                ),
                "peak_rss_mib": rss_mib(),
            }
        )
    with sessions() as session:
        out["sensors_in_table"] = session.scalar(select(func.count()).select_from(Sensor))
    engine.dispose()
    return out


def run_child(url: str, file: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child-url",
        url,
        "--child-file",
        str(file),
        "--crs",
        args.crs,
        "--format",
        args.format,
    ]
    if args.reimport:
        cmd.append("--reimport")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def versions() -> dict[str, str]:
    found = {}
    for dist in ("safecity", "sqlalchemy", "psycopg", "shapely", "h3", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    import sqlite3

    found["sqlite"] = sqlite3.sqlite_version
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=900_000)
    parser.add_argument("--crs", default="gcj02", choices=["wgs84", "gcj02", "bd09"])
    parser.add_argument("--format", default="csv", choices=["csv", "geojson"])
    parser.add_argument("--reimport", action="store_true", help="Import the file twice.")
    parser.add_argument("--no-pg", dest="pg", action="store_false")
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_url:
        result = child(args.child_url, args.child_file, args.crs, args.format, args.reimport)
        print(json.dumps(result))
        return

    from sqlalchemy import create_engine, text

    from safecity.sensing import registry_import

    started = time.perf_counter()
    figures: dict[str, Any] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sensor-bench-") as tmp:
        suffix = ".csv" if args.format == "csv" else ".geojson"
        file = Path(tmp) / f"sensors{suffix}"
        t0 = time.perf_counter()
        registry_import.generate(args.sensors, file, fmt=args.format, crs=args.crs, seed=1)
        figures["generate"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "file_mib": round(file.stat().st_size / 1024**2, 1),
        }
        print(f"generated {args.sensors} sensors ({figures['generate']})", flush=True)
        if args.sqlite:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            figures["sqlite"] = run_child(url, file, args)
            print(f"sqlite: {figures['sqlite']}", flush=True)
        if args.pg:
            name = f"safecity_bench_{secrets.token_hex(4)}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:
                notes.append(f"PostgreSQL not measured: {str(exc).splitlines()[0]}")
            else:
                try:
                    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
                    figures["postgresql"] = run_child(url, file, args)
                    with admin.connect() as conn:
                        figures["postgresql"]["server_version"] = conn.execute(
                            text("SHOW server_version")
                        ).scalar()
                    print(f"postgresql: {figures['postgresql']}", flush=True)
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
    report = {
        "benchmark": "sensor_import",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "config": {
            "sensors": args.sensors,
            "crs": args.crs,
            "format": args.format,
            "batch_rows": registry_import.BATCH_ROWS,
            "reimport": args.reimport,
            "data": "synthetic (safecity sensors generate, seed 1)",
        },
        "figures": figures,
        "notes": notes,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{'database':<12}{'run':<10}{'rows':>9}{'seconds':>9}{'rows/s':>9}{'peak RSS MiB':>14}")
    for db in ("sqlite", "postgresql"):
        for run in figures.get(db, {}).get("runs", []):
            print(
                f"{db:<12}{run['run']:<10}{run['rows']:>9}{run['seconds']:>9}"
                f"{run['rows_per_s']:>9}{run['peak_rss_mib']:>14}"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
