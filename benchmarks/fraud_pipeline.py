"""Anti-fraud pipeline benchmark (issue 9): the race and the end-to-end latency.

Two sections:

``race``  the replay simulator (:mod:`safecity.fraud.sim`, synthetic and labelled so)
          through intake and the engine in event time, for several seeds: the share of
          scam episodes warned before the first transfer (goal ≥ 90 %), time to warning
          p50/p99 from the first scam contact, warnings per true victim (goal ≤ 3), the
          burden on everyone else, and the engine's cost per event (goal ≤ 0.1 ms).
``e2e``   the platform path at a paced rate (default 2,000 events/s): batches of feed
          records through ``pipeline.ingest`` (validate, pseudonymise, outbox) → relay →
          in-process bus → the ``fraud.engine`` consumer (engine + actions, one
          transaction per batch). Latency per event = consumer commit − intake commit;
          goal p99 ≤ 1 s at 2,000 events/s. SQLite, and PostgreSQL when reachable.

    .venv/bin/python benchmarks/fraud_pipeline.py [--sections race,e2e] [--seeds 7,11,23]
        [--with-model]   (race again with a number model trained on seed 101's city)

Figures go to ``benchmarks/results/fraud_pipeline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
_VAR = tempfile.mkdtemp(prefix="fraud-bench-var-")
os.environ["SAFECITY_VAR_DIR"] = _VAR  # its own keys and audit checkpoints
os.environ.pop("SAFECITY_KEY_DIR", None)

import safecity.models  # noqa: E402, F401  (every table)
from _common import machine  # noqa: E402
from safecity.fraud import evaluate, pipeline  # noqa: E402
from safecity.fraud.models import Action  # noqa: E402
from safecity.fraud.sim import CitySim, SimConfig  # noqa: E402
from safecity.orgs import service as orgs  # noqa: E402
from safecity.platform.bus_memory import MemoryBus  # noqa: E402
from safecity.platform.bus_nats import NatsBus  # noqa: E402
from safecity.platform.consumers import Consumer, registered_consumers  # noqa: E402
from safecity.platform.db import Base, make_engine, make_session_factory  # noqa: E402
from safecity.platform.relay import Relay  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fraud_pipeline.json"
PG_URL = os.environ.get("SAFECITY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
out = Console()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------ race


def train_number_model(citizens: int, episodes: int, seed: int, folder: Path) -> Path:
    """Export callers' features from a city of another seed and train the number model."""
    from safecity.fraud.ml.datasets import read_table
    from safecity.fraud.ml.number_model import train_number_model as train
    from safecity.fraud.ml.store import save_model

    rows = folder / "numbers.csv"
    evaluate.run(SimConfig.for_city(citizens, seed=seed, episodes=episodes), export_numbers=rows)
    x, y, names, _ = read_table(rows)
    assert y is not None
    save_model(train(x, y, names, seed=0), folder / "model", training_data=f"sim seed {seed}")
    return folder / "model"


def race(
    seeds: list[int], citizens: int, episodes: int, model: Path | None = None
) -> dict[str, Any]:
    from safecity.fraud.engine import FraudEngine
    from safecity.fraud.ml.store import number_scorer

    runs = []
    with Progress(console=out) as bar:
        for seed in seeds:
            task = bar.add_task(f"race seed {seed}", total=None)
            config = SimConfig.for_city(citizens, seed=seed, episodes=episodes)
            engine = FraudEngine(model=number_scorer(model) if model is not None else None)
            result = evaluate.run(
                config, engine=engine, progress=lambda n, t=task: bar.update(t, completed=n)
            )
            runs.append(dataclasses.asdict(result))
    keys = (
        "warned_before_transfer",
        "warned_at_all",
        "time_to_warning_p50_s",
        "time_to_warning_p99_s",
        "warnings_per_victim",
        "false_warnings_per_10k_citizens_day",
        "stop_pay_on_first_transfer",
        "engine_us_per_event",
        "intake_us_per_event",
    )
    summary = {}
    for key in keys:
        values = [float(r[key]) for r in runs if r[key] is not None]
        summary[key] = {
            "mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        }
    return {
        "citizens": citizens,
        "episodes_per_seed": episodes,
        "seeds": seeds,
        "summary": summary,
        "runs": runs,
    }


# ------------------------------------------------------------------ end to end


def _records(citizens: int, needed: int) -> list[tuple[str, dict[str, Any]]]:
    sim = CitySim(SimConfig.for_city(citizens, seed=5, episodes=max(1, citizens // 100)))
    records = []
    for _, feed, raw in sim.records():
        records.append((feed, raw))
        if len(records) >= needed:
            break
    return records


async def e2e(
    url: str, label: str, rate: float, seconds: float, batch: int, nats_url: str | None = None
) -> dict[str, Any]:
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
    pipeline.HOST.reset()
    total = int(rate * seconds)
    records = _records(20_000, total)
    total = len(records)
    latencies: list[float] = []

    def committed(envelopes: Any, result: Any) -> None:
        now = datetime.now(UTC)
        latencies.extend((now - e.time).total_seconds() for e in envelopes)

    [spec] = [s for s in registered_consumers() if s.name == pipeline.CONSUMER]
    consumer = Consumer(
        name=spec.name,
        sessions=sessions,
        apply=spec.apply,
        types=spec.types,
        batch_size=spec.batch_size,
        on_committed=committed,
    )
    prefix = f"FRAUDBENCH{secrets.token_hex(3).upper()}"
    bus: Any = (
        MemoryBus(sessions, poll_interval=0.02)
        if nats_url is None
        else NatsBus(nats_url, prefix=prefix)
    )
    stop = asyncio.Event()
    await consumer.start(bus)
    relay = asyncio.create_task(Relay(sessions=sessions, bus=bus, batch_size=1000).run(stop))

    def produce() -> float:
        began = time.perf_counter()
        for i in range(0, total, batch):
            due = began + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            chunk = records[i : i + batch]
            by_feed: dict[str, list[dict[str, Any]]] = {}
            for feed, raw in chunk:
                by_feed.setdefault(feed, []).append(raw)
            with sessions.begin() as s:
                for feed, raws in by_feed.items():
                    pipeline.ingest(session=s, feed=feed, records=raws)
        return time.perf_counter() - began

    began = time.perf_counter()
    produce_s = await asyncio.to_thread(produce)
    async with asyncio.timeout(seconds * 10 + 120):
        while consumer.applied < total:
            await asyncio.sleep(0.02)
    total_s = time.perf_counter() - began
    stop.set()
    await relay
    if nats_url is not None:
        await bus.delete_stream()
    await bus.close()
    with sessions() as s:
        actions = s.query(Action).count()
    engine.dispose()
    return {
        "database": label,
        "bus": "NATS JetStream" if nats_url is not None else "in-process (log in the database)",
        "target_rate_per_s": rate,
        "events": total,
        "achieved_intake_rate_per_s": round(total / produce_s, 1),
        "end_to_end_rate_per_s": round(total / total_s, 1),
        "latency_p50_ms": round(pct(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(pct(latencies, 99) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1),
        "actions_opened": actions,
        "batch_records": batch,
    }


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default="race,e2e")
    ap.add_argument("--seeds", default="7,11,23")
    ap.add_argument("--citizens", type=int, default=20_000)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=200, help="records per intake transaction")
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument(
        "--with-model",
        action="store_true",
        help="race again with a number model trained on another seed's city (seed 101)",
    )
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(
        {
            "command": "python " + " ".join(sys.argv),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
        }
    )
    if "race" in sections:
        results["race"] = race(
            [int(s) for s in args.seeds.split(",")], args.citizens, args.episodes
        )
        s = results["race"]["summary"]
        table = Table(title=f"race over seeds {args.seeds} ({args.citizens:,} citizens)")
        table.add_column("figure")
        table.add_column("mean ± sd", justify="right")
        for key, value in s.items():
            table.add_row(key, f"{value['mean']} ± {value['sd']}")
        out.print(table)
    if args.with_model:
        with tempfile.TemporaryDirectory() as tmp:
            model = train_number_model(args.citizens, args.episodes, 101, Path(tmp))
            seeds = [int(s) for s in args.seeds.split(",")]
            results["race_with_model"] = race(seeds, args.citizens, args.episodes, model)
            results["race_with_model"]["model_trained_on_seed"] = 101
        table = Table(title="race with the number model (trained on seed 101)")
        table.add_column("figure")
        table.add_column("mean ± sd", justify="right")
        for key, value in results["race_with_model"]["summary"].items():
            table.add_row(key, f"{value['mean']} ± {value['sd']}")
        out.print(table)
    if "e2e" in sections:
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(
                asyncio.run(
                    e2e(f"sqlite:///{tmp}/bench.db", "SQLite", args.rate, args.seconds, args.batch)
                )
            )
        if not args.no_pg and reachable("127.0.0.1", 5432):
            from bus_throughput import postgres_database

            buses: list[str | None] = [None]
            if reachable("127.0.0.1", 4222):
                buses.append("nats://127.0.0.1:4222")
            for nats_url in buses:
                db = postgres_database(PG_URL)
                try:
                    runs.append(
                        asyncio.run(
                            e2e(db.url, "PostgreSQL", args.rate, args.seconds, args.batch, nats_url)
                        )
                    )
                finally:
                    db.close()
        results["e2e"] = runs
        table = Table(title=f"end to end at {args.rate:,.0f} events/s")
        for col in (
            "database",
            "bus",
            "events",
            "intake/s",
            "end-to-end/s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ):
            table.add_column(col)
        for r in runs:
            table.add_row(
                r["database"],
                r.get("bus", ""),
                f"{r['events']:,}",
                f"{r['achieved_intake_rate_per_s']:,}",
                f"{r['end_to_end_rate_per_s']:,}",
                str(r["latency_p50_ms"]),
                str(r["latency_p99_ms"]),
                str(r["latency_max_ms"]),
            )
        out.print(table)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    out.print(f"figures → {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
