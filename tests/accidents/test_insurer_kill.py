"""Exactly once under a crash: the insurer dispatcher is killed (SIGKILL) while an insurer is
answering, and a second dispatcher finishes the job.

A slow local webhook (a real HTTP server on 127.0.0.1) records every delivery it gets and
acknowledges each one with the claim id the demo insurer would give (stable per idempotency
key). The dispatcher runs in a child process (``dispatch_child.py``) against the tests'
database (SQLite file, or PostgreSQL when the suite reruns there) and is killed as soon as
the first delivery arrives: the insurer has acknowledged, the platform never heard it. A
dispatcher claims one notice at a time, so the other notice is free: a second dispatch, in
this process, sends it at once, and redelivers the crashed one after its claim lease
(``insurers.LEASE``). Expected: each notice acknowledged exactly once in the database
(``acks`` 1, one claim id), the insurer got the crashed notice at most twice and always with
the same idempotency key, the same body and the same signature, so it can tell the repeat
apart and its claim id is the same; no notice is sent a third time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.accidents import insurers
from safecity.accidents.models import AccidentCase, InsurerNotice
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from tests.accidents.flow import rear_end, sign
from tests.conftest import City

pytestmark = pytest.mark.db

CHILD = Path(__file__).with_name("dispatch_child.py")


@dataclasses.dataclass(frozen=True)
class Delivery:
    insurer: str
    key: str
    body_key: str
    body_sha256: str
    signature: str
    claim_id: str


class SlowInsurer:
    """A webhook on a free port: verifies, records, waits ``delay`` s, acknowledges."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self.delay = 5.0
        self.deliveries: list[Delivery] = []
        self.first = threading.Event()
        self.lock = threading.Lock()
        insurer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = self.headers["X-SafeCity-Insurer"]
                secret = insurers.secret_for(insurer.key_dir, code)
                insurers.verify(secret, body, self.headers[insurers.SIGNATURE_HEADER])
                key = self.headers["Idempotency-Key"]
                claim_id = insurers.demo_claim_id(secret, key)
                with insurer.lock:
                    insurer.deliveries.append(
                        Delivery(
                            insurer=code,
                            key=key,
                            body_key=json.loads(body)["idempotency_key"],
                            body_sha256=hashlib.sha256(body).hexdigest(),
                            signature=self.headers[insurers.SIGNATURE_HEADER],
                            claim_id=claim_id,
                        )
                    )
                insurer.first.set()
                time.sleep(insurer.delay)  # the dispatcher is killed while it waits
                answer = json.dumps({"claim_id": claim_id, "status": "acknowledged"}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the caller is dead

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notices"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(d.key for d in self.deliveries)


@pytest.fixture
def insurer(runtime: Runtime) -> Iterator[SlowInsurer]:
    key_dir = runtime.settings.effective_key_dir
    for code in insurers.INSURERS:  # the secrets exist before two processes read them
        insurers.secret_for(key_dir, code)
    server = SlowInsurer(key_dir)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _sealed(runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both drivers sign; the immediate push after the response is switched off."""
    from safecity.accidents import pages

    monkeypatch.setattr(pages, "_deliver", lambda runtime, ids: None)
    a, b, _ = rear_end(client, seed=23)
    sign(runtime, a)
    sign(runtime, b)
    return a.ref


def _notices(runtime: Runtime) -> list[InsurerNotice]:
    with runtime.sessions() as s:
        rows = list(s.scalars(select(InsurerNotice).order_by(InsurerNotice.party_role)))
        s.expunge_all()
        return rows


def _kill_mid_delivery(runtime: Runtime, insurer: SlowInsurer) -> str:
    """Run the child dispatcher, SIGKILL it once the first delivery reached the insurer."""
    settings = runtime.settings
    args = [settings.effective_database_url, str(settings.effective_key_dir), insurer.url]
    child = subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SAFECITY_LOG_JSON": "false"},
    )
    try:
        if not insurer.first.wait(timeout=60):
            child.kill()
            pytest.fail(f"the child never delivered: {child.communicate()[0][-2000:]}")
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, (child.returncode, output)
    assert "acked=" not in output  # it never got to report
    return output


def test_a_dispatcher_killed_mid_delivery_acknowledges_each_notice_once(
    runtime: Runtime,
    client: TestClient,
    areas: City,
    insurer: SlowInsurer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = _sealed(runtime, client, monkeypatch)
    before = _notices(runtime)
    assert [(n.status, n.attempts, n.acks) for n in before] == [("pending", 0, 0)] * 2

    _kill_mid_delivery(runtime, insurer)
    first = insurer.deliveries[0]
    assert insurer.keys() == Counter({first.key: 1})  # killed while the insurer answered
    crashed = {n.idempotency_key: n for n in _notices(runtime)}
    # Only the notice in flight was claimed (one claim per notice); it holds the lease.
    other = next(k for k in crashed if k != first.key)
    assert (crashed[first.key].status, crashed[first.key].attempts) == ("sending", 1)
    assert (crashed[other].status, crashed[other].attempts) == ("pending", 0)
    assert all(n.acked_at is None and n.external_claim_id is None for n in crashed.values())

    # Within the lease the crashed notice is nobody's to send; the other one goes at once.
    insurer.delay = 0.0
    urls = dict.fromkeys(insurers.INSURERS, insurer.url)  # as SAFECITY_ACCIDENTS_INSURER_URLS
    monkeypatch.setattr(runtime.settings, "accidents_insurer_urls", urls)
    early = insurers.deliver(runtime)
    assert (early.acked, early.retrying, early.failed) == (1, 0, 0), early.errors
    assert insurer.keys() == Counter({first.key: 1, other: 1})
    later = utcnow() + insurers.LEASE + timedelta(seconds=1)
    sessions, key_dir = runtime.sessions, runtime.settings.effective_key_dir
    report = insurers.dispatch(sessions, key_dir=key_dir, now=later, urls=urls)
    assert (report.acked, report.retrying, report.failed) == (1, 0, 0), report.errors
    again = insurers.dispatch(sessions, key_dir=key_dir, now=later + timedelta(hours=1), urls=urls)
    assert (again.acked, again.retrying, again.failed) == (0, 0, 0)

    # The database: each notice acknowledged exactly once, with the insurer's claim id.
    done = _notices(runtime)
    attempts = {n.idempotency_key: (n.status, n.attempts, n.acks) for n in done}
    assert attempts == {first.key: ("acked", 2, 1), other: ("acked", 1, 1)}
    claim_by_key = {d.key: d.claim_id for d in insurer.deliveries}
    assert {n.idempotency_key: n.external_claim_id for n in done} == claim_by_key
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).one()
        assert case.state == "notified"
        assert case.t3_insurer_ack_at is not None

    # The insurer: the crashed notice twice, the other once; a repeat is the same request.
    assert insurer.keys() == Counter({n.idempotency_key: 1 for n in done} | {first.key: 2})
    for key in insurer.keys():  # noqa: SIM118  (a method of ours, not a dict)
        sent = [d for d in insurer.deliveries if d.key == key]
        assert all(d.body_key == key for d in sent)  # the key is in the body too
        assert len({(d.body_sha256, d.signature, d.claim_id) for d in sent}) == 1
