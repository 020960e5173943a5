"""Durable dead letters: batched inserts, bounded rate, API, CLI, metrics, pruning."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from safecity import cli
from safecity.platform.runtime import Runtime
from safecity.sensing import cli as sensors_cli
from safecity.sensing.connectors.deadletter import DEADLETTER_TOTAL, DeadLetter
from safecity.sensing.deadletters import DbDeadLetterSink, prune
from safecity.sensing.ingest_api import get_pipeline
from safecity.sensing.ops_models import DeadLetterRow
from tests.conftest import City
from tests.sensing.test_pipeline import raw, registered  # noqa: F401  (fixture)

pytestmark = pytest.mark.db


def letter(i: int, reason: str = "malformed", connector: str = "t") -> DeadLetter:
    return DeadLetter(
        connector=connector, reason=reason, detail=f"bad {i}", source="unit", raw=b"x" * 5000
    )


def count_rows(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(DeadLetterRow)) or 0)


def test_sink_writes_batches_with_a_bounded_rate(runtime: Runtime) -> None:
    mono = [0.0]
    sink = DbDeadLetterSink(
        runtime.sessions,
        flush_every_s=1,
        max_per_flush=50,
        max_buffer=120,
        monotonic=lambda: mono[0],
    )
    inserts: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SENSING_DEAD_LETTERS"):
            inserts.append(len(params) if many else 1)

    before = DEADLETTER_TOTAL.labels(connector="t", reason="malformed")._value.get()
    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        for i in range(150):
            sink.put([letter(i)])
        assert inserts == []  # within the interval: buffered only
        assert sink.dropped == 30  # over max_buffer: counted, not stored
        mono[0] = 1.5
        sink.put([letter(999)])
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert len(inserts) == 1  # one statement for the whole batch
    assert count_rows(runtime) == 50
    assert sink.flush() == 50
    assert sink.flush() == 20
    assert count_rows(runtime) == 120
    after = DEADLETTER_TOTAL.labels(connector="t", reason="malformed")._value.get()
    assert after - before == 151  # /metrics counts every letter, stored or not
    with runtime.sessions() as s:
        row = s.scalars(select(DeadLetterRow).limit(1)).one()
        assert len(row.raw) == 1024
        assert row.raw_truncated is True


def test_prune_deletes_old_rows_and_caps_the_table(runtime: Runtime) -> None:
    sink = DbDeadLetterSink(runtime.sessions, flush_every_s=0)
    now = datetime.now(UTC)
    old = [
        DeadLetter(
            connector="t",
            reason="malformed",
            detail="old",
            source="u",
            raw=b"",
            received_at=now - timedelta(days=30),
        )
        for _ in range(3)
    ]
    sink.put(old + [letter(i) for i in range(10)])
    sink.flush()
    with runtime.sessions.begin() as s:
        assert prune(s, now=now, max_rows=6) == 3 + 4
    assert count_rows(runtime) == 6


def test_ingest_rejections_are_stored_listed_and_filtered(
    client: TestClient,
    runtime: Runtime,
    make_actor: Any,
    registered: City,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = make_actor("device", registered.stations[0], kind="device")
    bad = [raw("ghost-1", "intrusion.detected", {"zone_id": "z"}), 42, "x"]
    r = client.post("/api/ingest/events", json=bad, headers=device.headers)
    assert r.status_code == 202, r.text
    pipeline = get_pipeline(client.app)  # type: ignore[arg-type]
    assert isinstance(pipeline.dead_letters, DbDeadLetterSink)
    pipeline.dead_letters.flush()
    analyst = make_actor("analyst", registered.city)
    url = "/api/sensing/dead-letters"
    page = client.get(url, headers=analyst.headers).json()
    assert page["total"] == 3
    assert {x["reason"] for x in page["items"]} == {"unknown_sensor", "envelope"}
    only = client.get(
        url, params={"reason": "unknown_sensor", "connector": "http"}, headers=analyst.headers
    ).json()
    assert [(x["sensor_id"], x["connector"]) for x in only["items"]] == [("ghost-1", "http")]
    paged = client.get(url, params={"limit": 2}, headers=analyst.headers).json()
    assert len(paged["items"]) == 2
    assert paged["next"] is not None
    assert client.get(url, headers=device.headers).status_code == 403

    monkeypatch.setattr(sensors_cli, "_runtime", lambda: runtime)
    out = CliRunner().invoke(cli.app, ["sensors", "dead-letters", "--reason", "envelope", "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [r["reason"] for r in rows] == ["envelope", "envelope"]
    metrics = client.get("/metrics").text
    assert 'safecity_deadletter_total{connector="http",reason="unknown_sensor"}' in metrics
