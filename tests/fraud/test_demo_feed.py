"""The demo's scripted scam through the HTTP API: warned and visited before the transfer."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.fraud import demo_feed
from safecity.fraud.models import Action
from safecity.platform.runtime import Runtime
from tests.conftest import City
from tests.fraud.conftest import Deliver, point_in_station

pytestmark = pytest.mark.db


def test_the_scripted_scam_is_warned_and_visited_before_the_transfer(
    client: TestClient, runtime: Runtime, areas: City, deliver: Deliver, make_actor: Any
) -> None:
    device = make_actor("device", areas.city, kind="device")
    r = demo_feed.new_round(1, random.Random(3), point_in_station(2))
    r.started -= timedelta(minutes=10)  # the whole round lies in the past: play it at once
    background = 0
    for offset, feed, build in demo_feed.SCRIPT:
        # ordinary calls in between move event time on, as the feeder's would
        while background * 30 < offset:
            background += 1
            at = r.at(background * 30)
            demo_feed.post(
                client,
                device.token,
                "call",
                [
                    {
                        "id": f"bg-{background}",
                        "caller": "13800000001",
                        "callee": "13800000002",
                        "started_at": at,
                        "ended_at": at,
                    }
                ],
            )
            deliver()
        demo_feed.post(client, device.token, feed, [build(r)])
        deliver()
    with runtime.sessions() as s:
        actions = s.scalars(select(Action).order_by(Action.decided_at)).all()
        sequence = [a.action for a in actions]
        assert sequence[:3] == ["callback", "visit", "stop_pay"], sequence
        transfer_at = next(a.decided_at for a in actions if a.action == "stop_pay")
        visit = next(a for a in actions if a.action == "visit")
        assert visit.decided_at < transfer_at
        alert = s.get(Alert, visit.alert_id)
        assert alert is not None
        assert alert.org_id == areas.stations[2].id
