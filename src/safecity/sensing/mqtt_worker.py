"""``safecity sensors mqtt-worker``: the MQTT connector feeding the pipeline, until a signal.

One process: :class:`~safecity.sensing.connectors.mqtt.MqttConnector` (persistent session,
QoS 1, manual acks after the hand-off) → :func:`~safecity.sensing.pipelines.build_pipeline`
(the published rules, hot reloaded; durable dead letters; display commands) → alerts. A
:class:`~safecity.sensing.timer.PipelineTimer` advances the engine's clock so absence rules
fire in quiet periods and flushes last-seen marks and dead letters. Several processes split
the traffic with a shared subscription (``--share-group``); rule windows are then per
process, so keep rules that count across sensors on one process or use the NATS group.

SIGTERM / SIGINT: the connector hands off and acknowledges what it holds, then the timer
flushes and the process exits.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from rich.console import Console

from safecity.platform.runtime import Runtime, build_runtime
from safecity.sensing.connectors.mqtt import MqttConfig, MqttConnector
from safecity.sensing.event_types import Validator
from safecity.sensing.pipelines import build_pipeline
from safecity.sensing.timer import PipelineTimer

__all__ = ["run_mqtt_worker"]


def run_mqtt_worker(
    config: MqttConfig,
    *,
    status_every: float,
    console: Console,
    stop: threading.Event | None = None,
    runtime: Runtime | None = None,
    ready: threading.Event | None = None,
) -> dict[str, int]:
    """Run until ``stop`` is set (or a signal arrives); returns the final counters.
    ``ready`` is set once the connector is connected and subscribed."""
    owned = runtime is None
    runtime = runtime or build_runtime()
    stop = stop or threading.Event()
    pipeline = build_pipeline(runtime, connector="mqtt")
    connector = MqttConnector(
        config,
        handler=pipeline.handle,
        dead_letters=pipeline.dead_letters,
        validator=Validator(known_sensor=pipeline.cache.known),
    )
    timer = PipelineTimer(lambda: pipeline)
    ticker = threading.Thread(target=timer.run, args=(stop,), name="pipeline-timer", daemon=True)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    console.print(
        f"mqtt worker {config.client_id}: {config.host}:{config.port} "
        f"{config.subscription}, {len(pipeline.engine.rules)} rule(s)",
        highlight=False,
    )
    connector.start()
    ticker.start()
    try:
        shown = time.monotonic()
        while not stop.wait(0.2):
            if ready is not None and not ready.is_set() and connector.wait_ready(0):
                ready.set()
            if status_every > 0 and time.monotonic() - shown >= status_every:
                shown = time.monotonic()
                s = pipeline.stats()
                console.print(
                    f"connected={connector.connected} received={connector.received} "
                    f"accepted={s['accepted']} rejected={s['rejected']} matches={s['matches']} "
                    f"alerts={s['alerts']} acked={connector.acked}",
                    highlight=False,
                )
    finally:
        connector.stop()
        ticker.join(timeout=10)
        timer.tick()  # last advance + flush of last-seen marks and dead letters
        if owned:
            runtime.close()
    counters = {
        "received": connector.received,
        "acked": connector.acked,
        "accepted": pipeline.counters["accepted"],
        "rejected": pipeline.counters["rejected"],
        "alerts": pipeline.counters["alerts"],
    }
    console.print(f"mqtt worker {config.client_id} stopped: {counters}", highlight=False)
    return counters
