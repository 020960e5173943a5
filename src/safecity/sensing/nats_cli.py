"""``safecity sensors nats-worker``: one process of a NATS worker group, until a signal.

Runs both stages (:mod:`safecity.sensing.nats_worker`) and prints one status line every
``status_every`` seconds (Rich). SIGTERM / SIGINT stop it cleanly: the partitions are
checkpointed and their leases released, so another process takes them at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from safecity.platform.runtime import build_runtime
from safecity.sensing.connectors.nats import NatsConfig
from safecity.sensing.deadletters import DbDeadLetterSink
from safecity.sensing.nats_worker import NatsWorker
from safecity.sensing.rules import RuleSet
from safecity.sensing.rulesets import RuleWatcher

__all__ = ["run_worker"]


def run_worker(
    config: NatsConfig,
    *,
    worker_id: str | None,
    rules: Path | None,
    ingest: bool,
    status_every: float,
    rules_stage: bool = True,
    console: Console,
) -> None:
    runtime = build_runtime()
    provider: Callable[[], RuleSet]
    if rules is not None:  # a fixed file (trying rules out); otherwise the published ones
        fixed = RuleSet.from_file(rules)
        provider = lambda: fixed  # noqa: E731
    else:  # the active published version, hot reloaded (safecity rules publish)
        provider = RuleWatcher(runtime.sessions).current
    ruleset = provider()
    sink = DbDeadLetterSink(runtime.sessions)  # `safecity sensors dead-letters` lists them
    worker = NatsWorker(
        config,
        sessions=runtime.sessions,
        worker_id=worker_id,
        ruleset_provider=provider,
        ingest=ingest,
        rules=rules_stage,
        dead_letters=sink,
    )
    shown = [0.0]

    def tick(w: NatsWorker) -> None:
        if sink.buffered:
            sink.flush()
        now = time.monotonic()
        if status_every <= 0 or now - shown[0] < status_every:
            return
        shown[0] = now
        s = w.status()
        ingest_part = s["ingest"] or {}
        console.print(
            f"[bold]{s['worker']}[/] workers={s['live_workers']} "
            f"partitions={','.join(map(str, s['partitions'])) or '-'} "
            f"ingested={ingest_part.get('accepted', 0)} rejected={ingest_part.get('rejected', 0)} "
            f"events={s['events']} alerts={s['alerts']} checkpoints={s['checkpoints']} "
            f"resets={s['resets']}",
            highlight=False,
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.start()
        console.print(
            f"nats worker {worker.worker_id}: group {config.group}, {config.partitions} "
            f"partition(s), {len(ruleset)} rule(s), ingest {'on' if ingest else 'off'}, "
            f"rules {'on' if rules_stage else 'off'}",
            highlight=False,
        )
        await worker.run(on_tick=tick)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(main())
    finally:
        sink.flush()
        runtime.close()
    console.print(f"nats worker {worker.worker_id} stopped", highlight=False)
