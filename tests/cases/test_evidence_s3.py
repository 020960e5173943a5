"""Case evidence with ``SAFECITY_BLOB_BACKEND=s3``: the API stores the file in the bucket
(not on disk), serves it back, and a tampered object is refused on download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.platform.runtime import Runtime
from safecity.settings import Settings
from tests.cases.conftest import OpenFn
from tests.s3server import isolated_aws_env, moto_server, new_bucket, raw_client

pytestmark = pytest.mark.db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"evidence-in-a-bucket"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def s3_client(endpoint: str) -> Any:
    return raw_client(endpoint)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    return new_bucket(s3_client)


@pytest.fixture
def settings(
    settings: Settings,
    endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Settings]:
    """The usual test settings, with blobs in the bucket (credentials from the env)."""
    with isolated_aws_env(monkeypatch, tmp_path):
        yield settings.model_copy(
            update={
                "blob_backend": "s3",
                "s3_endpoint_url": endpoint,
                "s3_bucket": bucket,
                "s3_prefix": "cases",
                "s3_region": "us-east-1",
            }
        )


def test_evidence_goes_to_the_bucket_and_is_verified_on_download(
    client: TestClient, runtime: Runtime, open_case: OpenFn, s3_client: Any, bucket: str
) -> None:
    case = open_case(0)
    r = client.post(
        f"/api/cases/{case.id}/evidence",
        files={"file": ("scene.png", PNG, "application/octet-stream")},
        data={"description": "scene photo"},
        headers=case.headers,
    )
    assert r.status_code == 201, r.text
    item = r.json()
    sha = hashlib.sha256(PNG).hexdigest()
    assert item["sha256"] == sha
    key = f"cases/{sha[:2]}/{sha[2:4]}/{sha}"
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == PNG
    assert not (runtime.settings.var_dir / "blobs").exists()
    url = f"/api/cases/{case.id}/evidence/{item['id']}"
    got = client.get(url, headers=case.headers)
    assert got.status_code == 200
    assert got.content == PNG
    s3_client.put_object(Bucket=bucket, Key=key, Body=PNG.replace(b"bucket", b"BUCKET"))
    bad = client.get(url, headers=case.headers)
    assert bad.status_code == 500
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["type"].endswith("/blob-corrupted")
    assert PNG not in bad.content
