"""Feeds through the outbox to the engine consumer; actions, alerts, outcomes, dashboard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.fraud import actions, dashboard, indicators, pipeline
from safecity.fraud.models import Action
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.conftest import City
from tests.fraud.conftest import Deliver, point_in_station
from tests.fraud.test_indicators import add, person, reviewer

pytestmark = pytest.mark.db

SCAMMER = "17012345678"
VICTIM = "13800138000"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def call(record_id: str, start: float, end: float | None = None) -> dict[str, Any]:
    lat, lng = point_in_station(1)
    data: dict[str, Any] = {
        "id": record_id,
        "caller": SCAMMER,
        "callee": VICTIM,
        "started_at": at(start),
        "cell_lat": lat,
        "cell_lng": lng,
    }
    if end is not None:
        data["ended_at"] = at(end)
    return data


def transfer(record_id: str, amount: str, minute: float) -> dict[str, Any]:
    return {
        "id": record_id,
        "payer_account": "6222020012345678",
        "payer_phone": VICTIM,
        "payee_account": "6222020099998888",
        "amount": amount,
        "channel": "mobile_app",
        "new_payee": True,
        "attempted_at": at(minute),
    }


def list_scammer(runtime: Runtime, city: City) -> None:
    """The scammer's number, confirmed by a case: on the block list."""
    with runtime.sessions.begin() as s:
        add(
            s,
            city,
            kind="phone",
            value=SCAMMER,
            source="case",
            evidence="case C-7",
            active=True,
        )


def ingest(runtime: Runtime, feed: str, records: list[dict[str, Any]]) -> int:
    with runtime.sessions.begin() as s:
        return pipeline.ingest(session=s, feed=feed, records=records)


def test_a_bad_record_refuses_the_whole_batch(runtime: Runtime, city: City) -> None:
    with pytest.raises(InvalidInput, match=r"record 1: .*not a phone number"):
        ingest(runtime, "call", [call("c1", 0, 5), {**call("c2", 1), "caller": "nope"}])
    with pytest.raises(PayloadTooLarge):
        ingest(runtime, "call", [call(f"c{i}", 0) for i in range(pipeline.MAX_BATCH + 1)])
    with runtime.sessions() as s:
        fraud_events = select(func.count()).where(OutboxEvent.type.like("fraud.%"))
        assert s.scalar(fraud_events) == 0
    assert ingest(runtime, "call", [call("c1", 0, 5)]) == 1


def test_a_scam_call_becomes_a_station_visit_and_a_frozen_transfer(
    runtime: Runtime, areas: City, deliver: Deliver
) -> None:
    list_scammer(runtime, areas)
    ingest(runtime, "call", [call("c1", 0), call("c1", 0, 20)])
    ingest(
        runtime,
        "web",
        [
            {
                "id": "w1",
                "subject": VICTIM,
                "url": "https://remote.example.top/app",
                "kind": "app_install",
                "flagged_by": "operator",
                "seen_at": at(22),
            }
        ],
    )
    ingest(runtime, "transfer", [transfer("t1", "80000", 30)])
    assert deliver() >= 4
    assert deliver() == 0
    with runtime.sessions() as s:
        rows = s.scalars(select(Action).order_by(Action.decided_at)).all()
        kinds = [r.action for r in rows]
        assert "visit" in kinds
        assert kinds[-1] == "stop_pay"
        visit = next(r for r in rows if r.action == "visit")
        assert visit.org_id == areas.stations[1].id  # the station where the phone is
        alert = s.get(Alert, visit.alert_id)
        assert alert is not None
        assert alert.category == actions.VISIT_ALERT
        assert alert.org_id == areas.stations[1].id
        assert VICTIM not in json.dumps(alert.detail)
        stop = rows[-1]
        assert stop.amount_cents == 8_000_000
        assert "LIKELY_VICTIM" in stop.reasons


def test_a_redelivered_batch_opens_nothing_twice(
    runtime: Runtime, areas: City, deliver: Deliver
) -> None:
    list_scammer(runtime, areas)
    ingest(runtime, "call", [call("c1", 0), call("c1", 0, 25)])
    deliver()
    with runtime.sessions() as s:
        before = s.scalar(select(func.count()).select_from(Action))
        types = deliver.consumer.types
        rows = s.scalars(select(OutboxEvent).where(OutboxEvent.type.in_(types))).all()
        envelopes = [r.envelope() for r in rows]
    deliver.consumer.process(envelopes)  # the bus delivers everything again
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Action)) == before
    # after a restart the engine is new, but recorded actions are not opened again
    pipeline.HOST.reset()
    fresh = Deliver(runtime)
    fresh.consumer.process(envelopes)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Action)) == before


def test_outcomes_are_checked_and_feed_the_dashboard(
    runtime: Runtime, areas: City, deliver: Deliver
) -> None:
    list_scammer(runtime, areas)
    ingest(runtime, "call", [call("c1", 0), call("c1", 0, 20)])
    ingest(runtime, "transfer", [transfer("t1", "1234.50", 30)])
    deliver()
    supervisor = person(areas, "supervisor")
    with runtime.sessions.begin() as s:
        rows = s.scalars(select(Action)).all()
        warning = next(r for r in rows if r.action in ("callback", "visit"))
        stop = next(r for r in rows if r.action == "stop_pay")
        with pytest.raises(InvalidInput, match="outcome of a stop_pay"):
            actions.close(session=s, principal=supervisor, action_id=stop.id, outcome="dissuaded")
        actions.close(session=s, principal=supervisor, action_id=stop.id, outcome="money_frozen")
        actions.close(
            session=s,
            principal=supervisor,
            action_id=warning.id,
            outcome="dissuaded",
            notes="she had not paid yet; the bank confirmed the hold",
        )
    with runtime.sessions() as s:
        board = dashboard.build(session=s, principal=supervisor)
    assert board.totals["money_frozen_cny"] == 1234.5
    assert board.totals["people_dissuaded"] == 1
    assert board.totals["numbers_shut"] == 1
    assert board.totals["warnings_per_true_victim"] >= 1
    text = json.dumps(board.__dict__)
    assert "p_" not in text  # no pseudonym leaves the dashboard
    assert VICTIM not in text
    assert SCAMMER not in text
    with runtime.sessions() as s:
        assert actions.expire_overdue(session=s) == 0  # deadlines are minutes, not a day old


def test_identifiers_a_case_confirmed_go_on_the_block_list_at_once(
    runtime: Runtime, city: City, deliver: Deliver
) -> None:
    record = {
        "id": "k1",
        "kind": "phone",
        "value": SCAMMER,
        "case_id": "C-9",
        "confirmed_at": at(0),
    }
    ingest(runtime, "confirmed", [record])
    ingest(runtime, "confirmed", [{**record, "id": "k2", "case_id": "C-10"}])  # twice: one entry
    with runtime.sessions() as s:
        [(pseudonym, confidence)] = indicators.active_pseudonyms(session=s)
    assert confidence == 1.0
    assert pseudonym == indicators.pseudonymiser(runtime.sessions()).of("phone", SCAMMER)


def test_the_jobs_expire_entries_and_stale_actions(runtime: Runtime, city: City) -> None:
    from datetime import timedelta as td

    from safecity.fraud import jobs as fraud_jobs  # registers the jobs and retention
    from safecity.platform import jobs, retention
    from safecity.platform.db import utcnow

    jobs.load_job_modules()
    assert {"fraud.expire_indicators", "fraud.expire_actions"} <= {
        j.name for j in jobs.registry.all()
    }
    assert retention.policies.get("fraud_action").period == td(days=365)
    with runtime.sessions.begin() as s:
        add(
            s,
            city,
            kind="phone",
            value=SCAMMER,
            source="case",
            evidence="C-1",
            active=True,
            expires_at=utcnow() + td(minutes=1),
        )
    with runtime.sessions.begin() as s:
        assert indicators.expire_due(session=s, now=utcnow() + td(hours=1)) == 1
        assert indicators.active_pseudonyms(session=s) == []
    assert fraud_jobs.expire_indicators.__doc__


def test_an_engine_block_proposal_reaches_the_reviewer_with_the_number(
    runtime: Runtime, city: City, deliver: Deliver
) -> None:
    reports = [
        {"id": f"r{i}", "identifiers": [{"kind": "phone", "value": SCAMMER}], "reported_at": at(0)}
        for i in range(3)
    ]
    ingest(runtime, "report", reports)
    calls = []
    for i in range(45):
        record = {
            "id": f"bulk-{i}",
            "caller": SCAMMER,
            "callee": f"1380013{i:04d}",
            "started_at": at(1 + i),
            "caller_sim_activated_on": (T0 - timedelta(days=1)).date().isoformat(),
            "caller_id_type": "spoofed_suspect",
        }
        calls += [record, {**record, "ended_at": at(1 + i + 0.1)}]
    ingest(runtime, "call", calls)
    deliver()
    with runtime.sessions() as s:
        proposal = s.scalars(select(Action).where(Action.action == "block_number")).one()
        entries = indicators.list_indicators(session=s, principal=reviewer(city), state="proposed")
    assert [(e.kind, e.value, e.source) for e in entries] == [("phone", "+8617012345678", "model")]
    assert proposal.indicator_id == entries[0].id
    assert "REPORTED_MANY" in entries[0].reasons
