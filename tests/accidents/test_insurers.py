"""Insurer hand-off: signed webhooks, retries, and nothing doubled when an insurer fails
once or answers twice."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.accidents import insurers
from safecity.accidents.models import AccidentCase, InsurerNotice
from safecity.platform.db import utcnow
from safecity.platform.errors import PermissionDenied
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.accidents.flow import rear_end, sign
from tests.conftest import City

pytestmark = pytest.mark.db


class FlakyInsurer:
    """Fails the first ``failures`` posts, then acknowledges; records what it received."""

    def __init__(self, runtime: Runtime, failures: int = 1) -> None:
        self.key_dir = runtime.settings.effective_key_dir
        self.failures = failures
        self.received: list[tuple[str, str]] = []

    def __call__(
        self, insurer: insurers.Insurer, body: bytes, headers: Mapping[str, str]
    ) -> insurers.Reply:
        insurers.verify(
            insurers.secret_for(self.key_dir, insurer.code),
            body,
            headers[insurers.SIGNATURE_HEADER],
        )
        self.received.append((insurer.code, headers["Idempotency-Key"]))
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("insurer endpoint down")
        return insurers.demo_receive(self.key_dir, body, headers)


def _sealed_without_delivery(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Both drivers sign, but the immediate push after the response is switched off."""
    from safecity.accidents import pages

    monkeypatch.setattr(pages, "_deliver", lambda runtime, ids: None)
    a, b, _ = rear_end(client, seed=7)
    sign(runtime, a)
    sign(runtime, b)
    return a.ref


def _notices(runtime: Runtime) -> list[InsurerNotice]:
    with runtime.sessions() as s:
        rows = list(s.scalars(select(InsurerNotice).order_by(InsurerNotice.party_role)))
        s.expunge_all()
        return rows


def _case(runtime: Runtime, ref: str) -> AccidentCase:
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).one()
        s.expunge(case)
        return case


def _reported_events(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return len(
            s.scalars(
                select(OutboxEvent).where(OutboxEvent.type == "accidents.insurer.reported")
            ).all()
        )


def test_an_insurer_failing_once_then_acking_gives_exactly_one_acknowledgement(
    runtime: Runtime, client: TestClient, areas: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _sealed_without_delivery(runtime, client, monkeypatch)
    assert _case(runtime, ref).state == "agreed"
    flaky = FlakyInsurer(runtime, failures=1)
    key_dir = runtime.settings.effective_key_dir
    first = insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=flaky)
    assert (first.acked, first.retrying) == (1, 1)
    pending = [n for n in _notices(runtime) if n.status == "pending"]
    assert len(pending) == 1
    assert pending[0].last_error
    assert pending[0].attempts == 1
    assert _case(runtime, ref).state == "agreed"  # one insurer still to acknowledge
    # Not due yet: nothing is sent before the backoff ran out.
    assert insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=flaky).acked == 0
    later = utcnow() + timedelta(minutes=1)
    second = insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=flaky, now=later)
    assert second.acked == 1
    notices = _notices(runtime)
    assert [(n.status, n.acks) for n in notices] == [("acked", 1), ("acked", 1)]
    assert sorted(n.attempts for n in notices) == [1, 2]
    assert len(flaky.received) == 3  # two attempts for one notice, one for the other
    assert _reported_events(runtime) == 2
    case = _case(runtime, ref)
    assert case.state == "notified"
    assert case.t3_insurer_ack_at is not None
    # Nothing left to send.
    assert (
        insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=flaky, now=later).acked == 0
    )


def test_an_insurer_answering_twice_doubles_nothing(
    runtime: Runtime, client: TestClient, areas: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _sealed_without_delivery(runtime, client, monkeypatch)
    key_dir = runtime.settings.effective_key_dir
    answers: list[str] = []

    def lost_reply(
        insurer: insurers.Insurer, body: bytes, headers: Mapping[str, str]
    ) -> insurers.Reply:
        """The insurer acknowledges, but the answer never reaches us."""
        answers.append(str(insurers.demo_receive(key_dir, body, headers).body["claim_id"]))
        raise TimeoutError("read timed out")

    lost = insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=lost_reply)
    assert (lost.acked, lost.retrying) == (0, 2)
    later = utcnow() + timedelta(minutes=1)
    transport = insurers.http_transport(key_dir)
    done = insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=transport, now=later)
    assert done.acked == 2
    t3 = _case(runtime, ref).t3_insurer_ack_at
    claims = [n.external_claim_id for n in _notices(runtime)]
    assert sorted(c or "" for c in claims) == sorted(
        answers
    )  # the insurer answered the same, twice
    assert [(n.acks, n.attempts) for n in _notices(runtime)] == [(1, 2), (1, 2)]
    # A late duplicate acknowledgement (another claim id even) changes nothing but a count.
    with runtime.sessions.begin() as s:
        row = s.scalars(select(InsurerNotice).where(InsurerNotice.party_role == "A")).one()
        insurers.record_ack(s, notice_id=row.id, claim_id="DEMO-something-else")
    notices = _notices(runtime)
    assert [n.acks for n in notices] == [2, 1]
    assert [n.external_claim_id for n in notices] == claims  # the first answer stands
    assert _reported_events(runtime) == 2
    case = _case(runtime, ref)
    assert case.state == "notified"
    assert case.t3_insurer_ack_at == t3
    # The same report twice: recorded once.
    n = notices[0]
    for _ in range(2):
        r = client.post(f"/demo-insurer/claims/{n.insurer_code}/{n.external_claim_id}/assessed")
        assert r.status_code == 200
    assert _reported_events(runtime) == 3


def test_webhooks_are_signed_and_the_demo_insurer_checks_the_signature(
    runtime: Runtime, client: TestClient
) -> None:
    key_dir = runtime.settings.effective_key_dir
    body = json.dumps({"idempotency_key": "accident:x:A:demo_picc"}).encode()
    secret = insurers.secret_for(key_dir, "demo_picc")
    headers = {
        "X-SafeCity-Insurer": "demo_picc",
        insurers.SIGNATURE_HEADER: insurers.sign(secret, body),
    }
    ok = client.post("/demo-insurer/notices", content=body, headers=headers)
    assert ok.status_code == 200
    assert ok.json()["claim_id"].startswith("DEMO-")
    again = client.post("/demo-insurer/notices", content=body, headers=headers)
    assert again.json()["claim_id"] == ok.json()["claim_id"]  # idempotent by key
    forged = {**headers, insurers.SIGNATURE_HEADER: "sha256=" + "0" * 64}
    assert client.post("/demo-insurer/notices", content=body, headers=forged).status_code == 403
    with pytest.raises(PermissionDenied):
        insurers.verify(secret, body + b" ", headers[insurers.SIGNATURE_HEADER])
    report = client.post(
        "/api/accidents/insurers/demo_picc/reports",
        content=b'{"claim_id":"DEMO-0000","event":"paid"}',
        headers={insurers.SIGNATURE_HEADER: "sha256=00"},
    )
    assert report.status_code == 403


def test_a_notice_failing_for_good_goes_to_an_officer(
    runtime: Runtime, client: TestClient, areas: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _sealed_without_delivery(runtime, client, monkeypatch)
    key_dir = runtime.settings.effective_key_dir
    down = FlakyInsurer(runtime, failures=1000)
    when = utcnow()
    for _ in range(8):
        insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=down, now=when)
        when += timedelta(hours=1)
    notices = _notices(runtime)
    assert [(n.status, n.attempts, n.acks) for n in notices] == [("failed", 8, 0)] * 2
    case = _case(runtime, ref)
    assert case.state == "agreed"  # nothing acknowledged: not notified
    assert "insurer_unreachable" in {f["code"] for f in case.flags}
    assert case.review_alert_id is not None
    assert len(down.received) == 16  # 8 attempts each, then no more
    insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=down, now=when)
    assert len(down.received) == 16


def test_insurer_webhooks_come_from_the_settings(
    runtime: Runtime, client: TestClient, areas: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safecity.settings import Settings

    monkeypatch.setenv(
        "SAFECITY_ACCIDENTS_INSURER_URLS", json.dumps({"demo_cpic": "https://cpic.example/n"})
    )
    urls = Settings().accidents_insurer_urls
    assert urls == {"demo_cpic": "https://cpic.example/n"}
    _sealed_without_delivery(runtime, client, monkeypatch)
    seen: list[tuple[str, str]] = []

    def transport(
        insurer: insurers.Insurer, body: bytes, headers: Mapping[str, str]
    ) -> insurers.Reply:
        seen.append((insurer.code, insurer.url))
        return insurers.demo_receive(runtime.settings.effective_key_dir, body, headers)

    key_dir = runtime.settings.effective_key_dir
    report = insurers.dispatch(runtime.sessions, key_dir=key_dir, transport=transport, urls=urls)
    assert report.acked == 2
    # the configured insurer goes to its webhook; the other stays with the demo insurer
    assert sorted(seen) == [("demo_cpic", "https://cpic.example/n"), ("demo_pingan", "inproc:demo")]


def test_a_notice_to_an_unknown_insurer_fails_alone(
    runtime: Runtime, client: TestClient, areas: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sealed_without_delivery(runtime, client, monkeypatch)
    with runtime.sessions.begin() as s:
        broken = s.scalars(select(InsurerNotice).order_by(InsurerNotice.party_role)).first()
        assert broken is not None
        broken.insurer_code, broken_id = "no_such_insurer", broken.id
    report = insurers.dispatch(runtime.sessions, key_dir=runtime.settings.effective_key_dir)
    assert (report.acked, report.retrying, report.failed) == (1, 1, 0)
    assert report.errors[0][0] == broken_id
    assert "no_such_insurer" in report.errors[0][1]
    by_id = {n.id: n for n in _notices(runtime)}
    assert by_id[broken_id].status == "pending"  # retried later, not stuck in "sending"
    assert [n.status for i, n in by_id.items() if i != broken_id] == ["acked"]
