"""Two simulated drivers settle a rear-end collision (for ``safecity demo``).

:func:`simulate_rear_end` drives the same service functions the phone pages call: driver
A opens (all checklist answers "yes"), B joins with A's code, A uploads five synthetic
photos, both clear the road, enter their data and accounts (B ran into the back of A, who
was waiting at a light), ask for a code and sign; the notices then go to the demo insurers,
which acknowledge. The one-time codes are read back from the notification outbox, where
the log sender leaves them (the demo sends no SMS).
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image
from sqlalchemy import select

from safecity.accidents import evidence, insurers, service, signing
from safecity.accidents.models import POSITIONS, AccidentCase, AccidentParty
from safecity.accidents.schemas import ELIGIBILITY, DeclarationIn, OpenIn, PartyDataIn
from safecity.platform.db import transaction
from safecity.platform.errors import InvalidInput
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime

DRIVERS = {
    "A": ("沪A·D1234", "demo_pingan", ["stationary"], ["rear_ending"], "13800000001"),
    "B": ("沪B·E5678", "demo_cpic", ["rear_ending"], ["stationary"], "13800000002"),
}


def synthetic_photo(seed: int) -> bytes:
    """A 320x240 JPEG of smooth random shapes (unique per seed, never a real scene)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320]
    channels = [
        127
        + 120 * np.sin(x / rng.uniform(8, 40) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(8, 40))
        for _ in range(3)
    ]
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _otp(runtime: Runtime, party_id: str, sent: int) -> str:
    with runtime.sessions() as s:
        body = s.scalar(
            select(Notification.body).where(
                Notification.idempotency_key == f"accidents:{party_id}:otp:{sent}"
            )
        )
    found = re.search(r"code (\d{6})", body or "")
    if found is None:
        raise InvalidInput("the signing code was not enqueued")
    return found.group(1)


def simulate_rear_end(runtime: Runtime, *, lat: float = 31.2304, lng: float = 121.4737) -> str:
    """Settle one rear-end collision end to end; returns the case's reference.

    Once per database: a rerun of ``safecity demo`` returns the case it settled before
    (another one with the same drivers would rightly be flagged as a repeat)."""
    with runtime.sessions() as s:
        done = s.scalar(
            select(AccidentCase.ref)
            .join(AccidentParty, AccidentParty.case_id == AccidentCase.id)
            .where(AccidentParty.role == "A", AccidentParty.plate == DRIVERS["A"][0])
            .where(AccidentCase.t2_signed_at.is_not(None))
            .limit(1)
        )
    if done is not None:
        return done
    with transaction(runtime.sessions) as s:
        opened = service.open_case(
            session=s,
            data=OpenIn(lat=lat, lng=lng, eligibility=dict.fromkeys(ELIGIBILITY, True)),
        )
        case_id, ids = opened.case.id, {"A": opened.party.id}
        code = service.join_code_for(s, case_id)
        ids["B"] = service.join_case(session=s, join_code=code).party.id
    seed = int.from_bytes(case_id.encode()[:4], "big")
    for i, position in enumerate(POSITIONS):
        with transaction(runtime.sessions) as s:
            case = s.get_one(AccidentCase, case_id)
            party = service.parties(s, case)["A"]
            data = synthetic_photo(seed + i)
            evidence.add_photo(session=s, case=case, party=party, position=position, data=data)
    for role, (plate, insurer, own, other, phone) in DRIVERS.items():
        with transaction(runtime.sessions) as s:
            case = s.get_one(AccidentCase, case_id)
            party = service.parties(s, case)[role]
            service.confirm_road_cleared(session=s, case=case, party=party)
            entered = PartyDataIn(
                plate=plate,
                licence_no=f"31010119800101{1 if role == 'A' else 2}234",
                insurer_code=insurer,
                policy_no=f"PDAA2026{role}0001",
                phone=phone,
            )
            service.set_party_data(session=s, case=case, party=party, data=entered)
            account = DeclarationIn(own=own, other=other)
            service.declare(session=s, case=case, party=party, data=account)
    for role in ("A", "B"):
        with transaction(runtime.sessions) as s:
            case = s.get_one(AccidentCase, case_id)
            party = service.parties(s, case)[role]
            signing.request_otp(session=s, case=case, party=party)
            sent = party.otp_sent
        with transaction(runtime.sessions) as s:
            case = s.get_one(AccidentCase, case_id)
            party = service.parties(s, case)[role]
            signing.sign(session=s, case=case, party=party, code=_otp(runtime, ids[role], sent))
    insurers.deliver(runtime)
    with runtime.sessions() as s:
        return s.get_one(AccidentCase, case_id).ref
