"""The demo's scam, played in real time against a running platform over HTTP.

Each round (fresh made-up numbers every time) is a refund scam as operators and banks
would report it: a case has confirmed the scammer's number; a resident near a station
answers its call and stays on the line; an SMS with a "refund" link follows; the
operator flags a remote-control app install; the call ends after four minutes; six
minutes in, the resident tries a large transfer to a new payee. Around it, ordinary
calls keep the feeds (and event time) moving.

What the console then shows, before the transfer: a call-back task while the call is
still going, a station visit (an alert in that station's queue) when it ends; and at
the transfer, a stop-pay request to the bank.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from safecity.platform.errors import ServiceUnavailable

# (seconds into the round, feed, record builder)
Step = tuple[float, str, Callable[["Round"], dict[str, Any]]]


@dataclass
class Round:
    index: int
    scammer: str
    victim: str
    account: str
    mule: str
    domain: str
    lat: float
    lng: float
    started: datetime
    call_id: str

    def at(self, seconds: float) -> str:
        return (self.started + timedelta(seconds=seconds)).isoformat()


def _call(r: Round, end: float | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": r.call_id,
        "caller": r.scammer,
        "callee": r.victim,
        "started_at": r.at(20),
        "caller_id_type": "spoofed_suspect",
        "cell_lat": r.lat,
        "cell_lng": r.lng,
        "callee_age_band": "60_plus",
    }
    if end is not None:
        data["ended_at"] = r.at(end)
    return data


SCRIPT: tuple[Step, ...] = (
    (
        0,
        "confirmed",
        lambda r: {
            "id": f"demo-{r.index}-case",
            "kind": "phone",
            "value": r.scammer,
            "case_id": f"DEMO-{r.index}",
            "confirmed_at": r.at(0),
        },
    ),
    (20, "call", lambda r: _call(r, None)),
    (
        50,
        "sms",
        lambda r: {
            "id": f"demo-{r.index}-sms",
            "sender": r.scammer,
            "recipient": r.victim,
            "sent_at": r.at(50),
            "urls": [f"https://{r.domain}/refund"],
        },
    ),
    (
        200,
        "web",
        lambda r: {
            "id": f"demo-{r.index}-app",
            "subject": r.victim,
            "url": f"https://{r.domain}/app",
            "kind": "app_install",
            "flagged_by": "operator",
            "seen_at": r.at(200),
        },
    ),
    (260, "call", lambda r: _call(r, 260)),
    (
        330,
        "transfer",
        lambda r: {
            "id": f"demo-{r.index}-tx",
            "payer_account": r.account,
            "payer_phone": r.victim,
            "payee_account": r.mule,
            "amount": "48000.00",
            "channel": "mobile_app",
            "new_payee": True,
            "attempted_at": r.at(330),
        },
    ),
)
ROUND_SECONDS = 600.0


def _mobile(rng: random.Random, prefix: str) -> str:
    return prefix + f"{rng.randrange(10**8):08d}"


def new_round(index: int, rng: random.Random, point: tuple[float, float]) -> Round:
    return Round(
        index=index,
        scammer=_mobile(rng, "170"),
        victim=_mobile(rng, "139"),
        account="6222" + f"{rng.randrange(10**15):015d}",
        mule="6217" + f"{rng.randrange(10**15):015d}",
        domain=f"refund-{rng.randrange(10**6):06d}.example.top",
        lat=point[0],
        lng=point[1],
        started=datetime.now(UTC),
        call_id=f"demo-{index}-call",
    )


def post(client: httpx.Client, token: str, feed: str, records: list[dict[str, Any]]) -> None:
    r = client.post(
        f"/api/fraud/feeds/{feed}",
        json={"records": records},
        headers={"Authorization": f"Bearer {token}"},
    )
    if r.status_code >= 500:
        raise ServiceUnavailable(f"fraud feed {feed}: HTTP {r.status_code}")
    r.raise_for_status()


def play(
    client: httpx.Client,
    *,
    token: str,
    point: tuple[float, float],
    minutes: float,
    seed: int = 1,
    log: Callable[[str], None] = print,
) -> int:
    """Play rounds until ``minutes`` are up; how many rounds were played."""
    rng = random.Random(seed)
    citizens = [_mobile(rng, "138") for _ in range(50)]
    end = time.monotonic() + minutes * 60
    index = 0
    while time.monotonic() < end:
        index += 1
        r = new_round(index, rng, point)
        log(f"round {index}: scam call to a resident at {r.lat:.4f},{r.lng:.4f}")
        steps = list(SCRIPT)
        background = 0
        began = time.monotonic()
        while time.monotonic() - began < ROUND_SECONDS and time.monotonic() < end:
            elapsed = time.monotonic() - began
            while steps and steps[0][0] <= elapsed:
                _, feed, build = steps.pop(0)
                post(client, token, feed, [build(r)])
            background += 1
            a, b = rng.sample(citizens, 2)
            now = datetime.now(UTC)
            post(
                client,
                token,
                "call",
                [
                    {
                        "id": f"bg-{index}-{background}",
                        "caller": a,
                        "callee": b,
                        "started_at": (now - timedelta(seconds=30)).isoformat(),
                        "ended_at": now.isoformat(),
                    }
                ],
            )
            time.sleep(3.0)
    return index
