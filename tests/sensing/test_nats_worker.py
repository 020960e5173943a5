"""The NATS connector in one process: partition keys, leases, bad input, shipped rules.

Bad input (malformed JSON, unknown sensors, wrong units, unknown types, invalid payloads)
goes to dead letters with its reason, counted in ``/metrics``, and the pipeline goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import h3
import pytest
from sqlalchemy.orm import Session

from safecity.platform import metrics
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime
from safecity.sensing import partitions as leases
from safecity.sensing.connectors.deadletter import MemoryDeadLetterSink
from safecity.sensing.connectors.manifest import load_manifests
from safecity.sensing.connectors.nats import NatsConfig, measure_raw_ceiling, publish_raw
from safecity.sensing.nats_worker import NatsWorker, PartitionRunner
from safecity.sensing.pipeline import SensorPlace
from safecity.sensing.rules import RuleSet, partition_of
from tests.conftest import City
from tests.sensing.nats_helpers import (
    alert_counts,
    burst_rules,
    checkpointed_events,
    expected_alerts,
    make_traffic,
    nats_config,
    register_sensors,
    sensor_places,
    stream_state,
    streams_deleted,
)

pytestmark = [pytest.mark.db, pytest.mark.bus]


def run_inprocess(
    runtime: Runtime,
    config: NatsConfig,
    ruleset: RuleSet,
    bodies: list[bytes],
    until: Callable[[], bool],
    *,
    sink: MemoryDeadLetterSink | None = None,
    timeout: float = 40.0,
) -> NatsWorker:
    """Start a worker in this process, publish ``bodies``, wait for ``until``, stop it."""

    async def main() -> NatsWorker:
        worker = NatsWorker(
            config,
            sessions=runtime.sessions,
            worker_id="w-inproc",
            ruleset_provider=lambda: ruleset,
            dead_letters=sink,
        )
        await worker.start()
        task = asyncio.create_task(worker.run())
        await publish_raw(worker.js, config, bodies)
        deadline = time.monotonic() + timeout
        try:
            while not await asyncio.to_thread(until):
                if time.monotonic() > deadline:
                    raise AssertionError(f"worker did not finish: {worker.status()}")
                await asyncio.sleep(0.1)
        finally:
            worker.stop()
            await task
        return worker

    return asyncio.run(main())


# --------------------------------------------------------------------------- pure parts


def test_partition_key_is_the_compound_else_an_h3_res7_parent() -> None:
    cell = h3.latlng_to_cell(31.23, 121.47, 12)
    assert leases.partition_key(SensorPlace(31.23, 121.47, cell, None, "Lane 5")) == "c:Lane 5"
    key = leases.partition_key(SensorPlace(31.23, 121.47, cell, None))
    assert key == f"h:{h3.cell_to_parent(cell, 7)}"
    near = h3.latlng_to_cell(31.2301, 121.4701, 12)  # same res-7 cell → same partition
    assert leases.partition_key(SensorPlace(31.2301, 121.4701, near, None)) == key
    assert partition_of(key, 8) == partition_of(key, 8) < 8
    assert leases.fair_share(8, 3) == 3
    assert leases.fair_share(8, 1) == 8


def test_manifest_and_config_schema_agree() -> None:
    manifest = load_manifests()["nats"]
    assert manifest.status == "available"
    assert manifest.module == "safecity.sensing.connectors.nats"
    assert set(manifest.config_schema["properties"]) == set(NatsConfig.model_fields)
    defaults = NatsConfig().model_dump()
    for name, prop in manifest.config_schema["properties"].items():
        assert prop.get("default") == defaults[name], name
    manifest.validate_config(defaults)
    with pytest.raises(InvalidInput, match="partitions"):
        manifest.validate_config({"partitions": 0})


@pytest.mark.db
def test_leases_fence_a_stale_owner(runtime: Runtime) -> None:
    group = "g-fence"
    with runtime.sessions.begin() as s:
        leases.ensure_partitions(s, group=group, partitions=2)
        epoch_a = leases.acquire(s, group=group, owner="a", partition=0, ttl=60)
        assert epoch_a == 1
        assert leases.acquire(s, group=group, owner="b", partition=0, ttl=60) is None
    with runtime.sessions.begin() as s:  # a's lease runs out; b takes over
        lease = s.get(leases.PartitionLease, (group, 0))
        assert lease is not None
        lease.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with runtime.sessions.begin() as s:
        assert leases.acquire(s, group=group, owner="b", partition=0, ttl=60) == 2

    def stale_write(s: Session) -> None:
        leases.fence(s, group=group, owner="a", partition=0, epoch=1, ttl=60)

    with pytest.raises(leases.LeaseLost), runtime.sessions.begin() as s:
        stale_write(s)
    with runtime.sessions.begin() as s:
        leases.fence(s, group=group, owner="b", partition=0, epoch=2, ttl=60)
        assert leases.owned(s, group=group, owner="b", ttl=60) == {0: 2}
    # a restart under the same worker id takes its unexpired lease back at once (new epoch)
    with runtime.sessions.begin() as s:
        assert leases.takeable(s, group=group, owner="b", partitions=2) == [0, 1]
        assert leases.takeable(s, group=group, owner="c", partitions=2) == [1]
        assert leases.acquire(s, group=group, owner="b", partition=0, ttl=60) == 3
    with pytest.raises(leases.LeaseLost), runtime.sessions.begin() as s:
        leases.fence(s, group=group, owner="b", partition=0, epoch=2, ttl=60)


# --------------------------------------------------------------------------- through NATS


def _deadletters(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "safecity_deadletter_total", {"connector": "nats", "reason": reason}
    )
    return value or 0.0


def test_bad_input_goes_to_dead_letters_and_the_pipeline_goes_on(
    runtime: Runtime, city: City
) -> None:
    sensor_ids = register_sensors(runtime, 40)
    traffic = make_traffic(sensor_ids, noise=300, incidents=5)
    now = datetime.now(UTC).isoformat()
    bad = [
        b"{not json",
        b"\xff\xfe",
        json.dumps([1, 2]).encode(),
        json.dumps(
            {"sensor_id": "ghost-1", "type": "sensor.heartbeat", "time": now, "payload": {}}
        ).encode(),
        json.dumps(
            {
                "sensor_id": "ir-1",
                "type": "utility.power_reading",
                "time": now,
                "payload": {"meter_id": "m", "power": 2.0, "unit": "kW"},
            }
        ).encode(),
        json.dumps({"sensor_id": "ir-1", "type": "door.exploded", "time": now}).encode(),
        json.dumps(
            {
                "sensor_id": "ir-2",
                "type": "intrusion.detected",
                "time": now,
                "payload": {"armed": True},
            }
        ).encode(),
    ]
    expected_reasons = Counter(
        {
            "malformed": 2,
            "envelope": 1,
            "unknown_sensor": 1,
            "wrong_unit": 1,
            "unknown_type": 1,
            "invalid_payload": 1,
        }
    )
    bodies: list[bytes] = []
    for i, body in enumerate(traffic.bodies):  # bad messages spread through the stream
        bodies.append(body)
        if i % 40 == 0 and bad:
            bodies.append(bad.pop(0))
    bodies += bad
    before = {r: _deadletters(r) for r in expected_reasons}
    sink = MemoryDeadLetterSink()
    config = nats_config(partitions=3)
    with streams_deleted(config):
        worker = run_inprocess(
            runtime,
            config,
            burst_rules(),
            bodies,
            lambda: checkpointed_events(runtime, config) >= len(traffic.valid),
            sink=sink,
        )
        state = stream_state(config)
    assert Counter(letter.reason for letter in sink.recent()) == expected_reasons
    assert {r: _deadletters(r) - before[r] for r in expected_reasons} == {
        r: float(n) for r, n in expected_reasons.items()
    }
    assert checkpointed_events(runtime, config) == len(traffic.valid)
    assert state["parts_events"] == state["parts_unique_events"] == len(traffic.valid)
    assert state["parts_messages"] < state["parts_events"]  # bundles: one per partition/batch
    assert state["ingest_ack_pending"] == 0
    assert alert_counts(runtime) == Counter({f"test-intrusion-burst:zone-{k}": 1 for k in range(5)})
    assert worker.status()["partitions"] == []  # released at shutdown


def test_shipped_rules_through_nats_match_the_in_memory_oracle(
    runtime: Runtime, city: City
) -> None:
    sensor_ids = register_sensors(runtime, 64)
    traffic = make_traffic(sensor_ids, noise=2000, incidents=8)
    shipped = RuleSet.shipped()
    expected = expected_alerts(traffic, shipped, sensor_places(runtime))
    assert len(expected) == 8  # repeated-intrusion once per planted zone
    config = nats_config(partitions=4)
    with streams_deleted(config):
        run_inprocess(
            runtime,
            config,
            shipped,
            traffic.bodies,
            lambda: checkpointed_events(runtime, config) >= len(traffic.valid),
        )
    assert checkpointed_events(runtime, config) == len(traffic.valid)
    assert alert_counts(runtime) == expected


def test_raw_ceiling_helper_measures_a_plain_pull_consumer() -> None:
    config = nats_config()
    result = asyncio.run(measure_raw_ceiling(config.url, count=2000, batch=500))
    assert result["messages"] == 2000
    assert result["per_second"] > 0
    assert result["publish_per_second"] > 0


def _intrusion(n: int, zone: str, at: datetime) -> dict[str, object]:
    return {
        "id": f"ir-1:{zone}:{n}",
        "type": "intrusion.detected",
        "sensor_id": "ir-1",
        "time": at.isoformat(),
        "lat": 31.205,
        "lng": 121.405,
        "h3": None,
        "org_id": None,
        "payload": {"zone_id": zone, "armed": True},
    }


def test_partition_runner_commits_checkpoint_with_alerts_restores_and_reloads(
    runtime: Runtime, city: City
) -> None:
    """Stage B without a broker: a batch with an alert is checkpointed in its transaction;
    a new owner restores the state (replayed events are duplicates, no second alert); a new
    rule set from the provider is swapped in before the next batch."""
    config = NatsConfig(prefix="unit.runner", partitions=1)
    current = [burst_rules()]
    worker = NatsWorker(
        config, sessions=runtime.sessions, worker_id="w", ruleset_provider=lambda: current[0]
    )
    with runtime.sessions.begin() as s:
        leases.ensure_partitions(s, group=config.group, partitions=1)
        epoch = leases.acquire(s, group=config.group, owner="w", partition=0, ttl=60)
    assert epoch == 1
    t0 = datetime.now(UTC) - timedelta(minutes=2)
    burst = [_intrusion(i, "z-1", t0 + timedelta(seconds=5 * i)) for i in range(3)]
    runner = PartitionRunner(worker, 0, epoch)
    runner._restore()
    assert runner._process(burst[:2], 2, False) is False  # no alert, not due: no write
    assert runner._process(burst[2:], 3, False) is True  # an alert forces the checkpoint
    with runtime.sessions() as s:
        snapshot, seq = leases.load_checkpoint(s, group=config.group, partition=0)
    assert seq == 3
    assert snapshot is not None
    assert snapshot["processed"] == 3
    assert alert_counts(runtime) == Counter({"test-intrusion-burst:z-1": 1})

    with runtime.sessions.begin() as s:  # takeover by a new owner (epoch 2)
        epoch2 = leases.acquire(s, group=config.group, owner="w", partition=0, ttl=60)
    assert epoch2 == 2
    successor = PartitionRunner(worker, 0, 2)
    successor._restore()
    assert successor._processed_seq == 3
    successor._process(burst, 4, True)  # the same events again: duplicates
    assert alert_counts(runtime) == Counter({"test-intrusion-burst:z-1": 1})
    with pytest.raises(leases.LeaseLost):  # the old owner is fenced off
        runner._process([_intrusion(9, "z-2", t0)], 5, True)

    current[0] = RuleSet.shipped()  # hot reload: the provider's new rules are used
    successor._process([_intrusion(3, "z-3", t0 + timedelta(seconds=1))], 6, True)
    assert successor._engine is not None
    assert successor._engine.ruleset is current[0]


SILENT_RULES = """
version: 1
rules:
  - id: test-no-disarm
    name: Intrusion not followed by a disarm
    kind: absence
    first: {event: intrusion.detected}
    then: {event: door.opened}
    within: 1m
    lateness: 10s
    key: [sensor_id]
    severity: high
    alert: {title: alerts.repeated_intrusion, category: intrusion, cooldown: 30m}
"""


def test_an_idle_partition_fires_absence_rules_with_a_checkpoint(
    runtime: Runtime, city: City
) -> None:
    """No traffic after the first event: the partition's clock still moves (wall time), the
    absence alert and the checkpoint commit together, and a new owner does not fire it again."""
    from safecity.sensing.rules_schema import parse_rule_text

    rules = RuleSet([parse_rule_text(SILENT_RULES, source="silent.yaml")], source="silent.yaml")
    config = NatsConfig(prefix="unit.timer", partitions=1)
    worker = NatsWorker(
        config, sessions=runtime.sessions, worker_id="w", ruleset_provider=lambda: rules
    )
    with runtime.sessions.begin() as s:
        leases.ensure_partitions(s, group=config.group, partitions=1)
        epoch = leases.acquire(s, group=config.group, owner="w", partition=0, ttl=60)
    runner = PartitionRunner(worker, 0, epoch)
    runner._restore()
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    assert runner._process([_intrusion(1, "z-9", t0)], 1, False) is False
    runner._processed_seq = 1  # as the fetch loop records after a batch
    assert runner._tick(t0.timestamp() + 30) is False  # not due yet: nothing written
    assert alert_counts(runtime) == Counter()
    assert runner._tick(time.time()) is True  # due: the alert and a checkpoint
    assert alert_counts(runtime) == Counter({"test-no-disarm:ir-1": 1})
    with runtime.sessions() as s:
        snapshot, seq = leases.load_checkpoint(s, group=config.group, partition=0)
    assert seq == 1
    assert snapshot is not None

    with runtime.sessions.begin() as s:  # a new owner restores the checkpoint
        epoch2 = leases.acquire(s, group=config.group, owner="w", partition=0, ttl=60)
    successor = PartitionRunner(worker, 0, epoch2)
    successor._restore()
    assert successor._tick(time.time()) is False
    assert alert_counts(runtime) == Counter({"test-no-disarm:ir-1": 1})
