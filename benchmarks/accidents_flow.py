"""Quick accident flow (issue 11): server time per step, and second signature → insurers.

    .venv/bin/python benchmarks/accidents_flow.py [--cases 20] [--background-photos 0,2000,10000]

Drives the real app in-process (FastAPI TestClient, SQLite in a temporary directory, the
demo insurers acknowledging in-process): for each case, driver A opens it, B joins with
A's code, A uploads five 640x480 JPEGs, both clear the road, enter their data and
accounts, ask for a code and sign. Every request is timed (``perf_counter`` around the
call, so it is the server's work plus the in-process transport; no think time, no
network). Goals: every step ≤ 200 ms; both insurers notified ≤ 60 s after the second
signature (t3 − t2, measured from the case's own timestamps).

``--background-photos`` repeats the run with that many photos of other cases already
stored (random fingerprints), because duplicate matching rebuilds its index from the
table on every upload: the photo step grows linearly with the stored photos.

Writes ``benchmarks/results/accidents_flow.json`` (figures, command, machine, date,
versions). No Playwright here: the think-time simulation of the issue is not measured.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import insert, select

import safecity.models  # noqa: F401  (registers every table)
from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.accidents.models import POSITIONS, AccidentCase, AccidentParty, AccidentPhoto
from safecity.accidents.schemas import ELIGIBILITY
from safecity.app import create_app
from safecity.orgs import service as orgs
from safecity.platform.db import Base, make_engine, make_session_factory
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.settings import Settings

GOAL_STEP_MS = 200.0
GOAL_NOTIFY_S = 60.0


def _jpeg(rng: np.random.Generator) -> bytes:
    y, x = np.mgrid[0:480, 0:640]
    chans = [127 + 120 * np.sin(x / rng.uniform(8, 60) + rng.uniform(0, 6)) for _ in range(3)]
    noise = rng.integers(0, 30, (480, 640, 3))
    pixels = np.clip(np.stack(chans, axis=-1) + noise + 0 * y[..., None], 0, 255)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _runtime(root: Path) -> Runtime:
    settings = Settings(
        var_dir=root / "var",
        database_url=f"sqlite:///{root / 'bench.db'}",
        key_dir=root / "keys",
        log_json=False,
    )
    engine = make_engine(settings.database_url)
    Base.metadata.create_all(engine)
    rt = Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))
    with rt.sessions.begin() as s:
        city = orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
        district = orgs.create(
            session=s,
            code="hp",
            kind="district",
            name_zh="黄浦区",
            name_en="Huangpu",
            parent_id=city.id,
        )
        station = orgs.create(
            session=s,
            code="hp-s1",
            kind="station",
            name_zh="派出所",
            name_en="Station",
            parent_id=district.id,
        )
        square = {
            "type": "Polygon",
            "coordinates": [
                [[121.4, 31.2], [121.5, 31.2], [121.5, 31.3], [121.4, 31.3], [121.4, 31.2]]
            ],
        }
        orgs.update(session=s, org_id=station.id, area=square)
    return rt


def _background(rt: Runtime, n: int, rng: np.random.Generator) -> None:
    """``n`` stored photos of closed fake cases (five each), with random fingerprints."""
    if n == 0:
        return
    owners = [(secrets.token_hex(16), secrets.token_hex(16)) for _ in range((n + 4) // 5)]
    with rt.sessions.begin() as s:
        org_id = s.scalars(select(AccidentCase.org_id)).first() or "x"
        s.execute(
            insert(AccidentCase),
            [
                {
                    "id": c,
                    "ref": "BG" + c[:8].upper(),
                    "join_code_hash": secrets.token_hex(32),
                    "org_id": org_id,
                    "state": "closed",
                    "lat": 31.25,
                    "lng": 121.45,
                }
                for c, _ in owners
            ],
        )
        s.execute(
            insert(AccidentParty),
            [
                {"id": p, "case_id": c, "role": "A", "token_hash": secrets.token_hex(32)}
                for c, p in owners
            ],
        )
        s.execute(
            insert(AccidentPhoto),
            [
                {
                    "id": secrets.token_hex(16),
                    "case_id": owners[k // 5][0],
                    "party_id": owners[k // 5][1],
                    "position": POSITIONS[k % 5],
                    "sha256": secrets.token_hex(32),
                    "pixel_sha256": secrets.token_hex(32),
                    "content_type": "image/jpeg",
                    "size_bytes": 1,
                    "width": 1,
                    "height": 1,
                    "packed_hashes": rng.bytes(256),
                }
                for k in range(n)
            ],
        )


def _code(rt: Runtime) -> str:
    with rt.sessions() as s:
        body = s.scalars(
            select(Notification.body)
            .where(Notification.template == "accidents.otp")
            .order_by(Notification.created_at.desc())
        ).first()
    found = re.search(r"code (\d{6})", body or "")
    assert found, "no signing code enqueued"
    return found.group(1)


def _run(cases: int, background: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = defaultdict(list)
    notify_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        rt = _runtime(Path(tmp))
        _background(rt, background, rng)
        photos = [_jpeg(rng) for _ in range((cases + 1) * len(POSITIONS))]
        app = create_app(runtime=rt)
        cold: dict[str, float] = {}
        for i in track(range(cases + 1), description=f"{background:>6} stored photos"):
            if i == 1:  # case 0 warms up (imports, key files, caches): reported apart
                cold = {k: round(max(v), 1) for k, v in times.items()}
                times.clear()
                notify_s.clear()
            # one phone per case (the rate limits are per client, as in the field)
            with TestClient(app, client=(f"10.1.{i // 250}.{i % 250}", 50000)) as client:

                def call(step: str, path: str, **kw: Any) -> Any:
                    t = time.perf_counter()
                    r = client.post(path, follow_redirects=False, **kw)
                    times[step].append((time.perf_counter() - t) * 1000)
                    assert r.status_code in (200, 303), (step, r.status_code, r.text[:300])
                    return r

                r = call(
                    "open",
                    "/accidents",
                    data={**dict.fromkeys(ELIGIBILITY, "yes"), "lat": "31.25", "lng": "121.45"},
                )
                ref = r.headers["location"].split("/")[2]
                t = time.perf_counter()
                page = client.get(f"/accidents/{ref}/A")
                times["page_with_qr"].append((time.perf_counter() - t) * 1000)
                found = re.search(r"data-join-code>([A-Z0-9]+)<", page.text)
                assert found
                call("join", "/accidents/join", data={"code": found.group(1)})
                a, b = f"/accidents/{ref}/A", f"/accidents/{ref}/B"
                for j, pos in enumerate(POSITIONS):
                    data = photos[i * len(POSITIONS) + j]
                    call(
                        "photo", f"{a}/photos/{pos}", files={"photo": ("p.jpg", data, "image/jpeg")}
                    )
                for page_url, role, own, other in (
                    (a, "A", ["stationary"], ["rear_ending"]),
                    (b, "B", ["rear_ending"], ["stationary"]),
                ):
                    call("road_cleared", f"{page_url}/road-cleared")
                    party = {
                        "plate": f"沪{role}{10000 + i}",
                        "licence_no": f"3101011980010{i:05d}",
                        "insurer_code": "demo_pingan" if role == "A" else "demo_cpic",
                        "policy_no": f"PDAA{role}{i:06d}",
                        "phone": f"1390000{i:04d}",
                    }
                    call("data", f"{page_url}/data", data=party)
                    call(
                        "declaration", f"{page_url}/declaration", data={"own": own, "other": other}
                    )
                for page_url, step in ((a, "sign_first"), (b, "sign_second_and_notify")):
                    call("otp", f"{page_url}/otp")
                    call(step, f"{page_url}/sign", data={"code": _code(rt)})
                with rt.sessions() as s:
                    case = s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).one()
                    assert case.state == "notified", case.state
                    assert case.t2_signed_at
                    assert case.t3_insurer_ack_at
                    notify_s.append((case.t3_insurer_ack_at - case.t2_signed_at).total_seconds())
        rt.engine.dispose()
    steps = {
        k: {
            "n": len(v),
            "median_ms": round(statistics.median(v), 1),
            "p95_ms": round(sorted(v)[max(0, int(0.95 * len(v)) - 1)], 1),
            "max_ms": round(max(v), 1),
        }
        for k, v in times.items()
    }
    return {
        "cases": cases,
        "background_photos": background,
        "steps": steps,
        "worst_step_max_ms": max(s["max_ms"] for s in steps.values()),
        "cold_first_case_max_ms": cold,
        "notify_after_second_signature_s": {
            "median": round(statistics.median(notify_s), 3),
            "max": round(max(notify_s), 3),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--background-photos", default="0,2000,10000")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    os.environ.setdefault("SAFECITY_LOG_JSON", "false")
    import logging

    logging.disable(logging.INFO)
    console = Console()
    runs = [_run(args.cases, int(n), args.seed) for n in args.background_photos.split(",")]
    table = Table(title="accident flow: server ms per step (median / p95 / max)")
    table.add_column("step")
    for run in runs:
        table.add_column(f"{run['background_photos']} stored photos", justify="right")
    for step in runs[0]["steps"]:
        cells = ["{median_ms} / {p95_ms} / {max_ms}".format(**run["steps"][step]) for run in runs]
        table.add_row(step, *cells)
    table.add_row(
        "t3 − t2 (s, median / max)",
        *["{median} / {max}".format(**r["notify_after_second_signature_s"]) for r in runs],
    )
    console.print(table)
    out = {
        "benchmark": "accidents_flow",
        "command": "python benchmarks/accidents_flow.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            p: importlib.metadata.version(p)
            for p in ("fastapi", "sqlalchemy", "pillow", "imagehash")
        },
        "goals": {"step_ms": GOAL_STEP_MS, "notify_s": GOAL_NOTIFY_S},
        "runs": runs,
    }
    path = Path(__file__).parent / "results" / "accidents_flow.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
