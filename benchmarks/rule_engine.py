"""Rule engine throughput: the shipped rule set over synthetic sensor events, one process.

    .venv/bin/python benchmarks/rule_engine.py [--events 300000] [--sensors 50000]
        [--rate 20000] [--repeat 3]

Measures :meth:`RuleEngine.process` alone (no decoding, validation, bus or database): the
events are generated first as plain dicts, the shape connectors hand to the engine, then
timed while the engine processes them, calling :meth:`RuleEngine.advance` once per
``--rate`` events (one second of event time) as a pipeline's clock tick would (absence
timeouts, state pruning). The mix covers every shipped event type; event time advances at
``--rate`` events/s with up to 2 s of out-of-order jitter and 1 % duplicate deliveries;
sensors send heartbeats, meters hourly/daily readings, some zones intrude repeatedly, some
cabinets see the battery-theft pattern at night.

Variants: ``time`` as a tz-aware ``datetime`` (the main figure), as an ISO 8601 string
(what arrives from JSON), and as epoch seconds. Best of ``--repeat`` runs, each on a fresh
engine. Besides wall-clock events/s it records events per CPU-second of the process, which
a shared, loaded machine disturbs less. Writes ``benchmarks/results/rule_engine.json``
(figures, command, machine, date, versions).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.sensing.rules import RuleEngine, RuleSet

RESULTS = Path(__file__).resolve().parent / "results" / "rule_engine.json"
START = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: night rules active

# Most sensor traffic is routine; the rare kinds are the ones rules alert on.
MIX: list[tuple[str, float]] = [
    ("sensor.heartbeat", 40),
    ("utility.power_reading", 18),
    ("utility.water_reading", 8),
    ("door.opened", 14),
    ("intrusion.detected", 2),
    ("vehicle.noise", 8),
    ("pedestrian.red_light", 1),
    ("parking.illegal", 4),
    ("smoke.detected", 0.5),
    ("ebike.charging_indoor", 0.5),
    ("throw.detected", 0.1),
    ("tunnel.no_lights", 0.5),
    ("report.submitted", 0.3),
    ("door.forced", 0.2),
    ("fire.alarm", 0.1),
]


def _payload(etype: str, n: int, rnd: random.Random) -> dict[str, Any]:
    match etype:
        case "sensor.heartbeat":
            return {"battery_pct": rnd.uniform(12, 100), "rssi_dbm": -rnd.uniform(40, 110)}
        case "utility.power_reading":
            cab = rnd.random() < 0.05
            return {
                "meter_id": f"cabinet-{n % 500}" if cab else f"m{n % 20000}",
                "power": rnd.choice([5.0, 400.0, 800.0, 1200.0, 2600.0]),
                "unit": "W",
                "interval_s": 3600,
            }
        case "utility.water_reading":
            return {
                "meter_id": f"w{n % 20000}",
                "volume": rnd.choice([250.0, 300.0, 450.0, 1300.0]),
                "unit": "L",
                "interval_s": 86400,
            }
        case "door.opened":
            cab = rnd.random() < 0.02
            return {"door_id": f"cabinet-{n % 500}" if cab else f"d{n % 30000}", "method": "card"}
        case "door.forced":
            return {"door_id": f"d{n % 30000}", "held_open_s": 40}
        case "intrusion.detected":
            return {"zone_id": f"z{n % 3000}", "detector": "pir", "armed": rnd.random() < 0.5}
        case "vehicle.noise":
            return {"location_id": f"n{n % 2000}", "level": rnd.uniform(60, 90), "unit": "dB(A)"}
        case "pedestrian.red_light":
            return {"intersection_id": f"x{n % 400}", "crossing_id": f"c{n % 4}", "count": 1}
        case "parking.illegal":
            return {"location_id": f"p{n % 5000}", "duration_s": rnd.choice([60, 120, 300, 900])}
        case "smoke.detected":
            return {"zone_id": f"z{n % 3000}", "obscuration": rnd.uniform(0, 12), "unit": "%/m"}
        case "fire.alarm":
            return {"zone_id": f"z{n % 3000}", "source": "panel"}
        case "ebike.charging_indoor":
            return {"building_id": f"b{n % 2000}", "floor": 3, "location": "flat"}
        case "throw.detected":
            return {"building_id": f"b{n % 2000}", "object": "bottle", "confidence": 0.7}
        case "tunnel.no_lights":
            return {"tunnel_id": f"t{n % 20}", "direction": "north"}
        case "report.submitted":
            return {"report_id": f"r{n}", "source": "watch_room", "category": "theft", "text": "x"}
    raise AssertionError(etype)


def make_events(count: int, sensors: int, rate: float, seed: int = 7) -> list[dict[str, Any]]:
    import h3

    rnd = random.Random(seed)
    types = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    places = []
    for _ in range(2000):  # sensor sites around central Shanghai
        lat, lng = 31.15 + rnd.random() * 0.2, 121.35 + rnd.random() * 0.25
        places.append((lat, lng, h3.latlng_to_cell(lat, lng, 9)))
    out: list[dict[str, Any]] = []
    for n in range(count):
        etype = rnd.choices(types, weights)[0]
        sensor = rnd.randrange(sensors)
        lat, lng, cell = places[sensor % len(places)]
        when = START + timedelta(seconds=n / rate - rnd.random() * 2.0)
        event = {
            "id": f"ev{n}",
            "type": etype,
            "sensor_id": f"s{sensor}",
            "time": when,
            "lat": lat,
            "lng": lng,
            "h3": cell,
            "org_id": f"station-{sensor % 40}",
            "payload": _payload(etype, rnd.randrange(1_000_000), rnd),
        }
        out.append(event)
        if rnd.random() < 0.01:
            out.append(dict(event))  # duplicate delivery
    return out


def run_once(ruleset: RuleSet, events: list[dict[str, Any]], tick: int) -> dict[str, Any]:
    engine = RuleEngine(ruleset)
    matches = 0
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i, event in enumerate(events, 1):
        matches += len(engine.process(event))
        if i % tick == 0:
            matches += len(engine.advance(engine.watermark))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    stats = engine.stats()
    return {
        "events": len(events),
        "seconds": round(elapsed, 4),
        "events_per_s": round(len(events) / elapsed),
        "us_per_event": round(elapsed / len(events) * 1e6, 3),
        "cpu_seconds": round(cpu, 4),
        "events_per_cpu_s": round(len(events) / cpu),
        "matches": matches,
        "duplicates": stats["duplicates"],
        "dropped_late": stats["dropped_late"],
        "state_keys": sum(r["keys"] for r in stats["rules"].values()),
        "matches_by_rule": {k: v["matches"] for k, v in stats["rules"].items() if v["matches"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--sensors", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=20_000, help="event-time events per second")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    ruleset = RuleSet.shipped()
    base = make_events(args.events, args.sensors, args.rate)
    tick = max(1, int(args.rate))
    variants = {
        "datetime": base,
        "iso_string": [{**e, "time": e["time"].isoformat()} for e in base],
        "epoch_seconds": [{**e, "time": e["time"].timestamp()} for e in base],
    }
    results: dict[str, Any] = {}
    for name, events in variants.items():
        runs = [run_once(ruleset, events, tick) for _ in range(args.repeat)]
        best = max(runs, key=lambda r: r["events_per_s"])
        best["runs_events_per_s"] = [r["events_per_s"] for r in runs]
        results[name] = best
        print(
            f"{name:>14}: {best['events_per_s']:>9,} events/s "
            f"({best['us_per_event']} µs/event; {best['events_per_cpu_s']:,}/CPU-s; "
            f"{best['matches']} matches, "
            f"{best['state_keys']} state keys)"
        )
    out = {
        "benchmark": "rule_engine",
        "command": "python benchmarks/rule_engine.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            "safecity": importlib.metadata.version("safecity"),
            "h3": importlib.metadata.version("h3"),
            "shapely": importlib.metadata.version("shapely"),
            "pydantic": importlib.metadata.version("pydantic"),
        },
        "setup": {
            "rules": len(ruleset),
            "rule_kinds": ruleset.kinds(),
            "events": len(base),
            "sensors": args.sensors,
            "event_time_rate_per_s": args.rate,
            "advance_every_events": tick,
            "repeat": args.repeat,
            "what": "RuleEngine.process alone on pre-built event dicts; best of repeat",
        },
        "results": results,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
