"""The pipeline's wall clock: absence rules fire without new events.

An absence rule ("door forced, no disarm within 5 min") fires when the engine's event-time
watermark passes its deadline; with no traffic the watermark never moves. The
:class:`PipelineTimer` thread, started in the app's lifespan next to the ingest pipeline,
every ``interval_s`` seconds:

* advances the pipeline's engine to ``now - lag_s`` (``lag_s`` = the delay a device's
  event may still take to arrive; each rule adds its own ``lateness`` on top) — due absence
  rules raise their alerts through :meth:`Pipeline.advance` (which also checks for a newly
  published rule set);
* flushes the pipeline's pending ``last_seen_at`` marks and buffered dead letters, so they
  reach the database when traffic stops.

It runs in every process that holds a pipeline (the state is per process, so this is not a
once-per-cluster scheduled job). It touches the pipeline only if one was built.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from fastapi import FastAPI

from safecity.sensing.pipeline import Pipeline

__all__ = ["PipelineTimer", "absence_timer"]

log = logging.getLogger(__name__)

INTERVAL_S: Final = 5.0
LAG_S: Final = 5.0


class PipelineTimer:
    def __init__(
        self,
        pipeline: Callable[[], Pipeline | None],
        *,
        interval_s: float = INTERVAL_S,
        lag_s: float = LAG_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline = pipeline
        self.interval_s = interval_s
        self.lag_s = lag_s
        self.clock = clock
        self.ticks = 0
        self.alerts = 0
        self.errors = 0

    def tick(self) -> int:
        """Advance once; returns the alerts written."""
        pipeline = self._pipeline()
        if pipeline is None:
            return 0
        self.ticks += 1
        written = 0
        try:
            written = len(pipeline.advance(self.clock() - self.lag_s).alerts)
        except Exception:  # the database may be away; the next tick retries
            self.errors += 1
            log.warning("pipeline timer: advance failed", exc_info=True)
        self.alerts += written
        pipeline.last_seen.maybe_flush()
        flush: Any = getattr(pipeline.dead_letters, "flush", None)
        if callable(flush):
            flush()
        return written

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self.tick()


@contextmanager
def absence_timer(app: FastAPI, *, interval_s: float = INTERVAL_S) -> Iterator[PipelineTimer]:
    """Run a :class:`PipelineTimer` for the app's ingest pipeline during the block."""
    timer = PipelineTimer(
        lambda: getattr(app.state, "ingest_pipeline", None), interval_s=interval_s
    )
    stop = threading.Event()
    thread = threading.Thread(target=timer.run, args=(stop,), name="pipeline-timer", daemon=True)
    thread.start()
    try:
        yield timer
    finally:
        stop.set()
        thread.join(timeout=10)
        pipeline: Pipeline | None = getattr(app.state, "ingest_pipeline", None)
        if pipeline is not None:  # what is left in memory, on the way out
            pipeline.last_seen.flush()
            flush: Any = getattr(pipeline.dead_letters, "flush", None)
            if callable(flush):
                flush()
