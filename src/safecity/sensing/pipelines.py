"""The pipeline a running process uses, built one way for every entry point.

The HTTP ingest API, ``safecity sensors mqtt-worker`` and the NATS worker's partitions all
need the same wiring: the active published rule set with hot reload
(:class:`~safecity.sensing.rulesets.RuleWatcher`), durable dead letters
(:class:`~safecity.sensing.deadletters.DbDeadLetterSink`, listed by
``safecity sensors dead-letters``) and the roadside-display commander for on-the-spot
warnings (:func:`~safecity.sensing.display.commander_for`).
"""

from __future__ import annotations

from safecity.platform.runtime import Runtime
from safecity.sensing.deadletters import DbDeadLetterSink
from safecity.sensing.display import commander_for
from safecity.sensing.pipeline import Pipeline
from safecity.sensing.rulesets import RuleWatcher

__all__ = ["build_pipeline"]


def build_pipeline(runtime: Runtime, *, connector: str) -> Pipeline:
    """A pipeline on the active rule set, hot reloaded, with durable dead letters."""
    watcher = RuleWatcher(runtime.sessions)
    version, ruleset = watcher.load()
    pipeline = Pipeline(
        sessions=runtime.sessions,
        connector=connector,
        ruleset=ruleset,
        watcher=watcher,
        dead_letters=DbDeadLetterSink(runtime.sessions),
    )
    watcher.mark(pipeline.engine, version)
    pipeline.on_info.append(commander_for(runtime.settings))
    return pipeline
