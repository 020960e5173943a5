"""Evidence files on a case: upload (type sniffed, size limited, stored by SHA-256 in the
blob store), list and download scoped like case reads and audited, chain of custody on
the internal timeline, never on the public portal."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.cases import evidence
from safecity.cases.work_models import CaseEvidence
from safecity.platform.blobs import DiskBlobStore
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.cases.conftest import OpenFn
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in

pytestmark = pytest.mark.db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"evidence-photo"
PDF = b"%PDF-1.4\n% a statement\n%%EOF\n"


def _upload(
    client: TestClient, case_id: str, headers: dict[str, str], data: bytes, name: str = "a.png"
) -> Any:
    return client.post(
        f"/api/cases/{case_id}/evidence",
        files={"file": (name, data, "application/octet-stream")},
        data={"description": "scene photo"},
        headers=headers,
    )


def _audits(runtime: Runtime, case_id: str) -> list[str]:
    with runtime.sessions.begin() as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.target_id == case_id, AuditEntry.action.like("cases.evidence.%"))
                .order_by(AuditEntry.at)
            )
        )


def test_upload_list_download_with_chain_of_custody(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    r = _upload(client, case.id, case.headers, PNG, name="../../etc/scene 1.png")
    assert r.status_code == 201, r.text
    item = r.json()
    sha = hashlib.sha256(PNG).hexdigest()
    assert item["sha256"] == sha
    assert item["media_type"] == "image/png"  # sniffed, not the declared octet-stream
    assert item["size"] == len(PNG)
    assert item["filename"] == "scene 1.png"
    assert DiskBlobStore(runtime.settings.var_dir / "blobs").get(sha) == PNG
    listed = client.get(f"/api/cases/{case.id}/evidence", headers=case.headers)
    assert [e["id"] for e in listed.json()] == [item["id"]]
    got = client.get(f"/api/cases/{case.id}/evidence/{item['id']}", headers=case.headers)
    assert got.status_code == 200
    assert got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["cache-control"] == "no-store"
    detail = client.get(f"/api/cases/{case.id}", headers=case.headers).json()
    custody = [e for e in detail["timeline"] if e["kind"] == "evidence"]
    assert len(custody) == 1
    assert sha in custody[0]["note"]
    assert custody[0]["actor_id"]
    assert _audits(runtime, case.id) == [
        "cases.evidence.add",
        "cases.evidence.list",
        "cases.evidence.read",
    ]
    # Never on the portal: the public timeline has no evidence entry nor the hash.
    portal = client.post("/portal", data={"number": case.number, "code": case.code})
    assert portal.status_code == 200
    assert sha not in portal.text
    assert "scene 1.png" not in portal.text


def test_other_stations_get_404_and_unknown_ids_404(
    client: TestClient, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    item = _upload(client, case.id, case.headers, PDF, name="s.pdf").json()
    assert item["media_type"] == "application/pdf"
    stranger = make_actor("officer", city.stations[1])
    base = f"/api/cases/{case.id}/evidence"
    assert client.get(base, headers=stranger.headers).status_code == 404
    assert client.get(f"{base}/{item['id']}", headers=stranger.headers).status_code == 404
    assert _upload(client, case.id, stranger.headers, PNG).status_code == 404
    other = open_case(0)
    r = client.get(f"/api/cases/{other.id}/evidence/{item['id']}", headers=other.headers)
    assert r.status_code == 404
    analyst = make_actor("analyst", city.stations[0])
    assert _upload(client, case.id, analyst.headers, PNG).status_code == 403


def test_types_that_are_not_allowed_and_empty_files_are_422(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    for data, name in (
        (b"<html><script>alert(1)</script></html>", "x.pdf"),
        (b"MZ\x90\x00 executable", "x.png"),
        (b"", "empty.png"),
    ):
        r = _upload(client, case.id, case.headers, data, name=name)
        assert r.status_code == 422, name
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/api/cases/{case.id}/evidence", headers=case.headers).json() == []
    assert _audits(runtime, case.id) == ["cases.evidence.list"]


def test_oversized_files_are_413(
    client: TestClient, open_case: OpenFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = open_case(0)
    # Over the route's body limit: refused by the middleware before the handler.
    big = PNG + b"\x00" * (evidence.MAX_EVIDENCE_BYTES + 128 * 1024)
    r = _upload(client, case.id, case.headers, big)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    # Over the evidence limit (a smaller one here), inside the body limit.
    monkeypatch.setattr(evidence, "MAX_EVIDENCE_BYTES", 50)
    r = _upload(client, case.id, case.headers, PNG)
    assert r.status_code == 413
    assert client.get(f"/api/cases/{case.id}/evidence", headers=case.headers).json() == []


def test_console_upload_list_and_download(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_staff: Any, city: City
) -> None:
    case = open_case(0)
    log_in(client, make_staff("officer", city.stations[0]))
    url = f"/console/cases/{case.id}"
    page = client.get(url)
    assert 'data-form="add-evidence"' in page.text
    token = csrf_from(page.text)
    r = client.post(
        f"{url}/evidence",
        data={"csrf_token": token, "description": "receipt"},
        files={"file": ("receipt.pdf", PDF, "application/pdf")},
    )
    assert r.status_code == 200, r.text
    sha = hashlib.sha256(PDF).hexdigest()
    assert f'data-sha256="{sha}"' in r.text
    bad = client.post(
        f"{url}/evidence",
        data={"csrf_token": token},
        files={"file": ("x.pdf", b"<html></html>", "application/pdf")},
    )
    assert bad.status_code == 422
    assert 'data-error="422"' in bad.text
    with runtime.sessions.begin() as s:
        item_id = s.scalars(select(CaseEvidence.id).where(CaseEvidence.case_id == case.id)).one()
    got = client.get(f"{url}/evidence/{item_id}")
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert "cases.evidence.read" in _audits(runtime, case.id)


def test_a_chinese_filename_downloads_under_its_own_name(
    client: TestClient, open_case: OpenFn
) -> None:
    case = open_case(0)
    item = _upload(client, case.id, case.headers, PNG, name="现场照片.png").json()
    got = client.get(f"/api/cases/{case.id}/evidence/{item['id']}", headers=case.headers)
    assert got.status_code == 200
    assert got.content == PNG
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment; ")
    assert "filename*=UTF-8''%E7%8E%B0%E5%9C%BA%E7%85%A7%E7%89%87.png" in disposition
