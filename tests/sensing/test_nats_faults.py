"""Faults of the NATS worker group, with real worker processes and a real NATS server.

* kill -9 of a worker while more than 10,000 events are in flight; a new process takes
  its partitions over (after the lease expires): every event processed, no alert doubled;
* two worker processes in one group: the partitions are shared, no alert missed or doubled;
* the broker connection cut and restored through a TCP proxy the test owns: the worker
  reconnects and nothing is lost.

"Doubled" is checked twice: the number of alerts equals the number of planted incidents,
and every alert's count is 1 (a match raised twice would be folded into its alert as a
repeat, count 2). "Every event processed": the checkpoints account for exactly the valid
events published, and the partitioned stream holds each of them once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safecity.platform.runtime import Runtime
from safecity.sensing.connectors.nats import connect, ensure_streams, publish_raw
from safecity.sensing.nats_worker import NatsWorker
from safecity.sensing.partition_models import PartitionLease, RuleCheckpoint
from tests.conftest import City
from tests.sensing.conftest import TcpProxy
from tests.sensing.nats_helpers import (
    WorkerProcess,
    alert_counts,
    burst_rules,
    checkpointed_events,
    make_traffic,
    nats_config,
    nats_port,
    publish,
    register_sensors,
    start_worker,
    stream_state,
    streams_deleted,
    wait_until,
)

pytestmark = [pytest.mark.db, pytest.mark.bus]


def now_text() -> str:
    return datetime.now(UTC).isoformat()


def planted(n: int) -> Counter[str]:
    return Counter({f"test-intrusion-burst:zone-{k}": 1 for k in range(n)})


def keys(runtime: Runtime) -> Path:
    return runtime.settings.effective_key_dir


def lease_owners(runtime: Runtime, group: str) -> Counter[str]:
    from sqlalchemy import select

    with runtime.sessions() as s:
        rows = s.scalars(select(PartitionLease.owner).where(PartitionLease.group_name == group))
        return Counter(o for o in rows if o)


def dead_letter_reasons(runtime: Runtime) -> Counter[str]:
    """Rows the workers' durable dead-letter sink wrote (``safecity sensors dead-letters``)."""
    from sqlalchemy import select

    from safecity.sensing.ops_models import DeadLetterRow

    with runtime.sessions() as s:
        return Counter(
            s.scalars(select(DeadLetterRow.reason).where(DeadLetterRow.connector == "nats"))
        )


def checkpoint_owners(runtime: Runtime, group: str) -> set[str]:
    from sqlalchemy import select

    with runtime.sessions() as s:
        rows = s.scalars(select(RuleCheckpoint.owner).where(RuleCheckpoint.group_name == group))
        return {o for o in rows if o}


def test_kill9_with_10000_events_in_flight_then_takeover(
    runtime: Runtime, city: City, database_url: str, tmp_path: Path
) -> None:
    sensor_ids = register_sensors(runtime, 200)
    traffic = make_traffic(sensor_ids, noise=14_000, incidents=20)
    total = len(traffic.valid)
    config = nats_config(partitions=4, batch_size=200)
    with streams_deleted(config):
        publish(config, traffic.bodies)  # all of it waits in JetStream: in flight
        first = start_worker(
            config, database_url=database_url, tmp=tmp_path, key_dir=keys(runtime), worker_id="w-a"
        )
        try:
            wait_until(
                lambda: checkpointed_events(runtime, config) >= 200, 40, "the first checkpoints"
            )
            first.kill9()
        finally:
            if first.process.poll() is None:
                first.kill9()
        done_at_kill = checkpointed_events(runtime, config)
        assert total - done_at_kill >= 10_000, f"only {total - done_at_kill} in flight"
        second = start_worker(
            config, database_url=database_url, tmp=tmp_path, key_dir=keys(runtime), worker_id="w-b"
        )
        try:
            wait_until(
                lambda: checkpointed_events(runtime, config) >= total,
                50,
                f"all {total} events checkpointed",
            )
        finally:
            code = second.terminate()
        state = stream_state(config)
        assert code == 0, second.output()[-3000:]
    # every event reached a partition once at least (a redelivered raw message may ride
    # in a bundle of another make-up; the engine drops the copy by its id)
    assert state["parts_unique_events"] == total
    assert checkpointed_events(runtime, config) >= total
    assert state["ingest_pending"] == 0
    assert state["ingest_ack_pending"] == 0
    assert alert_counts(runtime) == planted(20)
    assert checkpoint_owners(runtime, config.group) >= {"w-b"}


def test_two_worker_processes_share_the_partitions_without_missing_or_doubling(
    runtime: Runtime, city: City, database_url: str, tmp_path: Path
) -> None:
    """The second process joins mid-stream: the first hands half of its partitions over
    (final checkpoint, lease released), the second resumes them from those checkpoints."""
    sensor_ids = register_sensors(runtime, 200)
    traffic = make_traffic(sensor_ids, noise=8_000, incidents=24)
    total = len(traffic.valid)
    config = nats_config(partitions=4, batch_size=200)
    half = len(traffic.bodies) // 2

    def start(worker_id: str) -> WorkerProcess:
        return start_worker(
            config,
            database_url=database_url,
            tmp=tmp_path,
            key_dir=keys(runtime),
            worker_id=worker_id,
        )

    with streams_deleted(config):
        publish(config, traffic.bodies[:half])
        workers = [start("w-1")]
        try:
            wait_until(lambda: checkpointed_events(runtime, config) > 0, 40, "w-1 at work")
            workers.append(start("w-2"))
            wait_until(
                lambda: lease_owners(runtime, config.group) == {"w-1": 2, "w-2": 2},
                40,
                "the leases to settle at 2 + 2",
            )
            ghost = {"sensor_id": "ghost-9", "type": "sensor.heartbeat", "time": now_text()}
            bad = [b"{garbage", json.dumps(ghost).encode()] * 3  # dead letters, and on
            publish(config, bad + traffic.bodies[half:])
            wait_until(
                lambda: checkpointed_events(runtime, config) >= total,
                40,
                f"all {total} events checkpointed",
            )
        finally:
            codes = [w.terminate() for w in workers]
        state = stream_state(config)
        assert codes == [0, 0], [w.output()[-2000:] for w in workers]
    # every event reached a partition once at least (a redelivered raw message may ride
    # in a bundle of another make-up; the engine drops the copy by its id)
    assert state["parts_unique_events"] == total
    assert checkpointed_events(runtime, config) >= total
    assert alert_counts(runtime) == planted(24)
    assert checkpoint_owners(runtime, config.group) == {"w-1", "w-2"}
    assert dead_letter_reasons(runtime) == Counter({"malformed": 3, "unknown_sensor": 3})


# nats-py leaves the socket of a refused reconnect attempt (the proxy accepts and closes it)
# to the garbage collector: a ResourceWarning of the client library, not of this code.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_connection_cut_through_a_proxy_reconnects_without_loss(
    runtime: Runtime, city: City, tcp_proxy: Callable[[int], TcpProxy]
) -> None:
    _host, port = nats_port()
    proxy = tcp_proxy(port)
    sensor_ids = register_sensors(runtime, 100)
    traffic = make_traffic(sensor_ids, noise=4_000, incidents=12)
    total = len(traffic.valid)
    direct = nats_config(partitions=3, batch_size=100)
    via_proxy = direct.model_copy(update={"url": f"nats://127.0.0.1:{proxy.port}"})
    third = len(traffic.bodies) // 3

    async def main() -> dict[str, object]:
        worker = NatsWorker(
            via_proxy,
            sessions=runtime.sessions,
            worker_id="w-proxy",
            ruleset_provider=burst_rules,
        )
        await worker.start()
        task = asyncio.create_task(worker.run())
        nc = await connect(direct.url)
        publish_js = nc.jetstream()
        await ensure_streams(publish_js, direct)
        try:
            await publish_raw(publish_js, direct, traffic.bodies[:third])
            await _until(lambda: checkpointed_events(runtime, direct) > 0, 20)
            proxy.cut()  # mid-stream: batches in flight are lost with the connection
            await publish_raw(publish_js, direct, traffic.bodies[third : 2 * third])
            await asyncio.sleep(1.5)  # the worker's reconnects are refused meanwhile
            proxy.restore()
            await publish_raw(publish_js, direct, traffic.bodies[2 * third :])
            await _until(lambda: checkpointed_events(runtime, direct) >= total, 45)
        finally:
            worker.stop()
            await task
            await nc.close()
        return worker.status()

    with streams_deleted(direct):
        status = asyncio.run(main())
        state = stream_state(direct)
    assert proxy.accepted >= 2  # connected again after the cut
    assert state["parts_unique_events"] == total
    assert checkpointed_events(runtime, direct) >= total
    assert alert_counts(runtime) == planted(12)
    assert status["partitions"] == []


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        await asyncio.sleep(0.1)
