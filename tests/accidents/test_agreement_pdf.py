"""The sealed agreement as a PDF: drawn from the seal, its QR names the sealed document."""

from __future__ import annotations

import pytest
import zxingcpp
from fastapi.testclient import TestClient

from safecity.accidents import agreement_pdf
from safecity.platform.runtime import Runtime
from tests.accidents.flow import rear_end, sign
from tests.conftest import City
from tests.pdf_images import embedded_images

pytestmark = pytest.mark.db


def test_both_drivers_download_the_agreement_pdf_of_the_seal(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    a, b, _ = rear_end(client, seed=31)
    assert client.get(a.page + "/agreement.pdf").status_code == 404  # nothing sealed yet
    sign(runtime, a)
    sign(runtime, b)
    sealed = client.get(a.page + "/sealed.json").json()

    for driver in (a, b):
        r = client.get(driver.page + "/agreement.pdf")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        assert f'filename="{a.ref}-agreement.pdf"' in r.headers["content-disposition"]
        assert r.content.startswith(b"%PDF-")
        [qr] = embedded_images(r.content)
        [decoded] = zxingcpp.read_barcodes(qr)
        assert decoded.text == f"SCACC1:{a.ref}:{sealed['document_sha256']}"
        assert decoded.text == agreement_pdf.qr_text(sealed)

    sections = dict(agreement_pdf.agreement_lines(sealed))
    decision = dict(sections["Liability decision"])
    assert decision["Liability"] == "A 0% / B 100%"
    assert any(label.startswith("B: rule rear_end") for label in decision)
    photos = sections["Photos (SHA-256)"]
    assert len(photos) == 5
    assert {sha for _, sha in photos} == {
        e["sha256"] for e in sealed["document"]["summary"]["evidence"]
    }
    assert (
        dict(sections["Platform seal (Ed25519)"])["Document SHA-256"] == sealed["document_sha256"]
    )
    signed = dict(sections["Signatures"])
    assert set(signed) == {"Driver A", "Driver B"}


def test_only_the_drivers_of_the_case_reach_its_agreement(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    a, b, _ = rear_end(client, seed=32)
    sign(runtime, a)
    sign(runtime, b)
    assert client.get(a.page + "/agreement.pdf").status_code == 200
    with TestClient(client.app) as stranger:  # no driver cookie
        r = stranger.get(a.page + "/agreement.pdf")
        assert r.status_code == 404
        assert b"%PDF" not in r.content
    assert client.get("/accidents/SHZZZZZZZZ/A/agreement.pdf").status_code == 404
