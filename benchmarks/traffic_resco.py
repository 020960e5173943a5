"""Adaptive signals on the RESCO networks (issue 7): the harness, scored against references.

    .venv/bin/python benchmarks/traffic_resco.py [--scenarios all|grid4x4,cologne1]
        [--controllers fixed,max-pressure,safecity] [--seeds 5] [--first-seed 1]
        [--scales 1.0] [--protocol resco|network] [--jobs 2]

Runs scenario x controller x seed (x demand scale) with ``safecity.traffic.bench`` (SUMO
1.28.0 via libsumo, teleporting off, one process per episode) and compares each cell with
``reference_results.json`` next to the RESCO data: ``v128_mp_tpoff`` / ``v128_fixed_tpoff``
(the same SUMO version and protocol, but seeds 1-10) and RESCO's published numbers (SUMO
1.9.x: not the same version, shown for context only). Goal checks per map: max pressure
within 5% of v128_mp_tpoff; SafeCity below max pressure (mean and median) without a
gridlocked episode where max pressure has none.

Writes ``benchmarks/results/traffic_resco.json`` (cells of the same protocol and scale are
replaced, others kept) and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.traffic.bench import Cell, markdown, resolve_controllers, run_bench
from safecity.traffic.scenarios import resco_dir, resolve
from safecity.traffic.sim import EpisodeResult

RESULTS = Path(__file__).resolve().parent / "results" / "traffic_resco.json"


def pct(value: float, ref: float | None) -> float | None:
    return None if not ref else round(100.0 * (value - ref) / ref, 1)


def compare(cells: list[Cell], refs: dict[str, Any]) -> dict[str, Any]:
    measured = refs.get("measured_here", {}).get("results", {})
    published = refs.get("resco_published", {}).get("avg_delay", {})
    by = {(c.scenario, c.controller, c.scale): c for c in cells}
    out: dict[str, Any] = {}
    for (scenario, controller, scale), cell in sorted(by.items()):
        key = f"{scenario}/{controller}/x{scale:g}"
        entry: dict[str, Any] = {"delay_mean": cell.delay_mean, "delay_median": cell.delay_median}
        tag = {"max-pressure": "v128_mp_tpoff", "fixed": "v128_fixed_tpoff"}.get(controller)
        if tag and scale == 1.0:
            ref = measured.get(tag, {}).get(scenario, {})
            entry[f"{tag}_mean"] = ref.get("delay_mean")
            entry[f"{tag}_median"] = ref.get("delay_median")
            entry["vs_ref_mean_pct"] = pct(cell.delay_mean, ref.get("delay_mean"))
            entry["vs_ref_median_pct"] = pct(cell.delay_median, ref.get("delay_median"))
        pub = published.get(scenario, {})
        best_learned = min(
            (v["value"] for k, v in pub.items() if k not in ("FIXED", "MAXWAVE", "MAXPRESSURE")
             and v.get("value") is not None),
            default=None,
        )  # fmt: skip
        entry["resco_published_sumo_1_9"] = {
            "FIXED": (pub.get("FIXED") or {}).get("value"),
            "MAXPRESSURE": (pub.get("MAXPRESSURE") or {}).get("value"),
            "best_learned_best_of_training": best_learned,
        }
        mp = by.get((scenario, "max-pressure", scale))
        if controller == "safecity" and mp is not None:
            entry["goal_below_max_pressure"] = (
                cell.delay_mean < mp.delay_mean and cell.delay_median < mp.delay_median
            )
            entry["goal_no_new_gridlock"] = mp.gridlocked > 0 or cell.gridlocked == 0
            entry["vs_max_pressure_mean_pct"] = pct(cell.delay_mean, mp.delay_mean)
        fixed = by.get((scenario, "fixed", scale))
        if fixed is not None and controller != "fixed":
            entry["congestion_index_vs_fixed_pct"] = pct(
                cell.congestion_index_mean, fixed.congestion_index_mean
            )
        if controller == "max-pressure" and "vs_ref_mean_pct" in entry:
            entry["goal_mp_within_5pct_of_ref"] = (
                entry["vs_ref_mean_pct"] is not None and abs(entry["vs_ref_mean_pct"]) <= 5.0
            )
        out[key] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--scenarios", default="all")
    parser.add_argument("--controllers", default="fixed,max-pressure,safecity")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--scales", default="1.0")
    parser.add_argument("--protocol", choices=("resco", "network"), default="resco")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    scenarios = resolve(args.scenarios)
    controllers = resolve_controllers(args.controllers)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    total = len(scenarios) * len(controllers) * len(seeds) * len(scales)
    done = 0

    def progress(r: EpisodeResult) -> None:
        nonlocal done
        done += 1
        m = r.metrics
        print(
            f"[{done}/{total}] {r.scenario} {r.controller} x{r.scale:g} seed {r.seed}: "
            f"delay {m.avg_delay:.2f} never-inserted {m.never_inserted} ({r.wall_s:.1f} s)",
            flush=True,
        )

    started = time.perf_counter()
    report = run_bench(
        scenarios, controllers, seeds, scales=scales, protocol=args.protocol, jobs=args.jobs,
        on_done=progress,
    )  # fmt: skip
    wall = round(time.perf_counter() - started, 1)
    refs_path = resco_dir() / "reference_results.json"
    refs = json.loads(refs_path.read_text(encoding="utf-8")) if refs_path.is_file() else {}
    run = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "wall_s": wall,
        **report.as_dict(),
        "comparison": compare(report.cells, refs),
        "markdown": markdown(report),
    }
    doc: dict[str, Any] = {}
    if args.output.is_file():
        doc = json.loads(args.output.read_text(encoding="utf-8"))
    runs = doc.setdefault("runs", {})
    runs[f"{args.protocol}/seeds{seeds[0]}-{seeds[-1]}/{args.scenarios}/x{args.scales}"] = run
    doc["benchmark"] = "traffic_resco"
    doc["notes"] = (
        "Delay = tripinfo timeLoss + departDelay incl. never-inserted vehicles (RESCO, see "
        "../shared/benchmarks/traffic/resco/README.md). References v128_* were measured with "
        "seeds 1-10, ours with the seeds listed; RESCO's published numbers are SUMO 1.9.x "
        "(and learned ones best-of-training), context only."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(markdown(report))
    print(json.dumps(run["comparison"], indent=1))
    print(f"wall {wall} s; wrote {args.output}")


if __name__ == "__main__":
    main()
