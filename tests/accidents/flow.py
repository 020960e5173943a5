"""Helpers for the accidents tests: synthetic photos and two drivers on the phone pages."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from safecity.accidents.models import POSITIONS
from safecity.accidents.schemas import ELIGIBILITY
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime

PLACE = {"lat": "31.205", "lng": "121.405"}  # inside station 0 of tests.alerts.conftest
ALL_YES = dict.fromkeys(ELIGIBILITY, "yes")


def jpeg(seed: int, size: int = 64) -> bytes:
    """A small random JPEG, different for every seed (no duplicate flags)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Driver:
    client: TestClient
    ref: str
    role: str

    @property
    def page(self) -> str:
        return f"/accidents/{self.ref}/{self.role}"

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(self.page + path, follow_redirects=False, **kwargs)


def open_case(client: TestClient, **answers: str) -> tuple[Driver, str]:
    r = client.post("/accidents", data={**ALL_YES, **PLACE, **answers}, follow_redirects=False)
    assert r.status_code == 303, r.text
    ref = r.headers["location"].split("/")[2]
    a = Driver(client, ref, "A")
    page = client.get(a.page)
    assert page.status_code == 200
    found = re.search(r"data-join-code>([A-Z0-9]+)<", page.text)
    return a, found.group(1) if found else ""


def join(client: TestClient, code: str) -> Driver:
    r = client.post("/accidents/join", data={"code": code}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return Driver(client, r.headers["location"].split("/")[2], "B")


def fill(driver: Driver, *, plate: str, own: list[str], other: list[str], phone: str) -> None:
    data = {
        "plate": plate,
        "licence_no": "310101199001011234",
        "insurer_code": "demo_pingan" if driver.role == "A" else "demo_cpic",
        "policy_no": f"PDAA2026{driver.role}0001",
        "phone": phone,
    }
    assert driver.post("/data", data=data).status_code == 303
    assert driver.post("/road-cleared").status_code == 303
    r = driver.post("/declaration", data={"own": own, "other": other})
    assert r.status_code == 303, r.text


def upload_all(driver: Driver, seed: int) -> None:
    for i, pos in enumerate(POSITIONS):
        files = {"photo": (f"{pos}.jpg", jpeg(seed + i), "image/jpeg")}
        r = driver.post(f"/photos/{pos}", files=files)
        assert r.status_code == 303, r.text


def last_code(runtime: Runtime) -> str:
    with runtime.sessions() as s:
        body = s.scalars(
            select(Notification.body)
            .where(Notification.template == "accidents.otp")
            .order_by(Notification.created_at.desc())
        ).first()
    assert body is not None
    found = re.search(r"code (\d{6})", body)
    assert found
    return found.group(1)


def sign(runtime: Runtime, driver: Driver) -> None:
    assert driver.post("/otp").status_code == 303
    r = driver.post("/sign", data={"code": last_code(runtime)})
    assert r.status_code == 303, r.text


def rear_end(client: TestClient, seed: int = 1) -> tuple[Driver, Driver, str]:
    """Driver B rear-ends driver A, both agree; up to the verdict (not signed)."""
    a, code = open_case(client)
    b = join(client, code)
    upload_all(a, seed * 100)
    fill(a, plate="沪A12345", own=["stationary"], other=["rear_ending"], phone="13900000001")
    fill(b, plate="沪B54321", own=["rear_ending"], other=["stationary"], phone="13900000002")
    return a, b, code
