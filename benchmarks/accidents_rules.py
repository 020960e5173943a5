"""Liability rules ("快处易赔", issue 11 item 2): time per case and the expected-verdict fixture.

    .venv/bin/python benchmarks/accidents_rules.py [--cases 100000] [--seed 11] [--city shanghai]

Two figures:

* **Latency**: :func:`safecity.accidents.liability.decide` on ``--cases`` generated pairs of
  declarations (goal: ≤ 50 ms per case). The mix: 70 % agreeing accounts (each driver 1-3
  situation codes drawn from the table), 20 % where one driver confirms a different account
  of the other, 10 % with an empty or unknown code. Each call is timed on its own
  (``perf_counter_ns``); mean, p50, p99 and max are reported, plus the outcome mix.
* **Fixture**: the hand-written expected verdicts in
  ``tests/accidents/liability_cases.yaml`` (the test suite runs the same table; goal 100 %
  expected verdicts: outcome, shares, the rules fired against each party, the escalation
  reason).

Writes ``benchmarks/results/accidents_rules.json`` (figures, command, machine, date, versions).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import track
from rich.table import Table

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.accidents.liability import Declaration, RuleTable, decide

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "accidents_rules.json"
FIXTURE = ROOT.parent / "tests" / "accidents" / "liability_cases.yaml"
SHARES = {"a_liable": (100, 0), "b_liable": (0, 100), "equal": (50, 50), "escalate": (None, None)}


def generate(table: RuleTable, n: int, seed: int) -> list[tuple[Declaration, Declaration]]:
    rnd = random.Random(seed)
    codes = sorted(table.situations)

    def pick() -> frozenset[str]:
        return frozenset(rnd.sample(codes, rnd.choice((1, 1, 2, 2, 3))))

    pairs = []
    for _ in range(n):
        a_own, b_own = pick(), pick()
        kind = rnd.random()
        if kind < 0.7:
            a, b = Declaration(a_own, b_own), Declaration(b_own, a_own)
        elif kind < 0.9:
            a, b = Declaration(a_own, pick()), Declaration(b_own, a_own)
        else:
            odd = rnd.choice((frozenset(), frozenset({"drifting"})))
            a, b = Declaration(odd, b_own), Declaration(b_own, odd)
        pairs.append((a, b) if rnd.random() < 0.5 else (b, a))
    return pairs


def run_fixture(table: RuleTable) -> dict[str, Any]:
    cases = yaml.safe_load(FIXTURE.read_text("utf-8"))["cases"]
    wrong = []
    for case in cases:
        a = Declaration.of(own=case["a"], other=case.get("a_confirms_b", case["b"]))
        b = Declaration.of(own=case["b"], other=case.get("b_confirms_a", case["a"]))
        v = decide(table, a, b)
        exp = case["expect"]
        ok = v.outcome.value == exp["outcome"] and (v.share_a, v.share_b) == SHARES[exp["outcome"]]
        if exp["outcome"] == "escalate":
            ok = ok and v.escalation is not None and v.escalation.reason.value == exp["reason"]
        else:
            for party in ("A", "B"):
                got = sorted(f.rule_id for f in v.fired if f.party == party)
                ok = ok and got == sorted(exp.get(party, []))
        if not ok:
            wrong.append({"id": case["id"], "got": v.explain("en")})
    escalations = sum(c["expect"]["outcome"] == "escalate" for c in cases)
    return {
        "cases": len(cases),
        "escalation_cases": escalations,
        "expected": len(cases) - len(wrong),
        "accuracy": round((len(cases) - len(wrong)) / len(cases), 4),
        "wrong": wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--city", default="shanghai")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    console = Console()

    t0 = time.perf_counter()
    RuleTable.shipped.cache_clear()
    table = RuleTable.shipped(args.city)
    load_ms = (time.perf_counter() - t0) * 1000
    pairs = generate(table, args.cases, args.seed)

    times_ns: list[int] = []
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    clock = time.perf_counter_ns
    for a, b in track(pairs, description="decide", console=console):
        t = clock()
        v = decide(table, a, b)
        times_ns.append(clock() - t)
        outcomes[v.outcome.value] += 1
        if v.escalation is not None:
            reasons[v.escalation.reason.value] += 1
    times_ns.sort()
    us = [t / 1000 for t in times_ns]
    latency = {
        "cases": len(us),
        "mean_us": round(statistics.fmean(us), 2),
        "p50_us": round(us[len(us) // 2], 2),
        "p99_us": round(us[min(len(us) - 1, int(len(us) * 0.99))], 2),
        "max_us": round(us[-1], 2),
        "goal_ms_per_case": 50,
        "outcomes": dict(outcomes.most_common()),
        "escalation_reasons": dict(reasons.most_common()),
    }
    fixture = run_fixture(table)

    out_table = Table(title=f"liability rules, {args.city} table v{table.version}")
    out_table.add_column("figure")
    out_table.add_column("measured", justify="right")
    out_table.add_column("goal", justify="right")
    out_table.add_row("decide() mean", f"{latency['mean_us']} µs", "≤ 50 ms")
    out_table.add_row("decide() p99", f"{latency['p99_us']} µs", "≤ 50 ms")
    out_table.add_row("decide() max", f"{latency['max_us']} µs", "")
    out_table.add_row(
        "fixture verdicts",
        f"{fixture['expected']}/{fixture['cases']} ({fixture['escalation_cases']} escalations)",
        "100 %",
    )
    out_table.add_row("table load + validate", f"{load_ms:.1f} ms", "")
    console.print(out_table)
    for w in fixture["wrong"]:
        console.print(f"[red]unexpected[/red] {w['id']}: {w['got']}")

    out = {
        "benchmark": "accidents_rules",
        "command": "python benchmarks/accidents_rules.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            "safecity": importlib.metadata.version("safecity"),
            "pyyaml": importlib.metadata.version("pyyaml"),
        },
        "setup": {
            "city": args.city,
            "table_version": table.version,
            "situations": len(table.situations),
            "rules": len(table.rules),
            "seed": args.seed,
            "mix": "70% agreeing accounts, 20% one confirmation differs, 10% empty/unknown code",
        },
        "table_load_ms": round(load_ms, 2),
        "latency": latency,
        "fixture": fixture,
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
