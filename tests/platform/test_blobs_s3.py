"""S3 blob store against a real S3-compatible HTTP server (:mod:`tests.s3server`: moto's).

boto3 sends real S3 requests over HTTP; the server is moto's S3 implementation. The
behaviours every store shares run on both stores (disk and S3); the rest is S3's own:
key layout, the checksum sent, dedup without a second upload, tamper detection and
repair, racing uploads, servers without ``If-None-Match``, errors, the settings factory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safecity.platform.blobs import (
    BlobCorrupted,
    BlobRef,
    BlobStore,
    DiskBlobStore,
    blob_store,
)
from safecity.platform.blobs_s3 import S3BlobStore
from safecity.platform.errors import (
    ConfigurationError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from safecity.settings import Settings
from tests.s3server import (
    REGION,
    ClientError,
    FlexibleChecksumError,
    isolated_aws_env,
    moto_server,
    new_bucket,
    raw_client,
)

PDF_BYTES = b"%PDF-1.7\n" + b"x" * 200 + b"\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"\x10" * 64
MB = 1 << 20


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def client(endpoint: str) -> Any:
    """A plain boto3 client: makes buckets, and reaches past the store to tamper."""
    return raw_client(endpoint)


@pytest.fixture
def bucket(client: Any) -> str:
    return new_bucket(client)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with isolated_aws_env(monkeypatch, tmp_path):
        yield


@pytest.fixture
def s3(client: Any, bucket: str) -> S3BlobStore:
    return S3BlobStore(bucket, prefix="evidence", client=client)


@pytest.fixture(params=["disk", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "disk":
        return DiskBlobStore(tmp_path / "blobs")
    store: S3BlobStore = request.getfixturevalue("s3")
    return store


@pytest.fixture
def calls(client: Any) -> Iterator[list[tuple[str, dict[str, str]]]]:
    """(operation, request headers) of every request the shared client sends."""
    seen: list[tuple[str, dict[str, str]]] = []

    def record(request: Any, event_name: str, **_: Any) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        seen.append((event_name.rsplit(".", 1)[-1], headers))

    client.meta.events.register("before-send.s3", record)
    yield seen
    client.meta.events.unregister("before-send.s3", record)


def _ops(calls: list[tuple[str, dict[str, str]]]) -> list[str]:
    return [op for op, _ in calls]


# -- what every store does ----------------------------------------------------------------


def test_round_trip_and_stream(any_store: BlobStore) -> None:
    assert isinstance(any_store, BlobStore)
    ref = any_store.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB)
    sha = hashlib.sha256(PDF_BYTES).hexdigest()
    assert ref == BlobRef(sha256=sha, size=len(PDF_BYTES), content_type="application/pdf")
    assert any_store.get(sha) == PDF_BYTES
    with any_store.open(sha) as fh:
        assert fh.read() == PDF_BYTES
    assert any_store.exists(sha)
    big = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1000  # several chunks
    ref = any_store.put(io.BytesIO(big), content_type="image/png", max_bytes=MB)
    assert any_store.get(ref.sha256) == big


def test_checks_before_storing(any_store: BlobStore) -> None:
    with pytest.raises(PayloadTooLarge, match="larger than 100 bytes"):
        any_store.put(io.BytesIO(PDF_BYTES), content_type="application/pdf", max_bytes=100)
    with pytest.raises(InvalidInput, match="empty"):
        any_store.put(b"", content_type="application/pdf", max_bytes=100)
    with pytest.raises(InvalidInput, match="declared as application/pdf but its content is image"):
        any_store.put(PNG_BYTES, content_type="application/pdf", max_bytes=MB)
    with pytest.raises(InvalidInput, match="unrecognised"):
        any_store.put(b"<html>not a pdf</html>", content_type="application/pdf", max_bytes=MB)
    with pytest.raises(InvalidInput, match="not allowed"):
        any_store.put(b"hello", content_type="text/plain", max_bytes=MB)
    for refused in (PDF_BYTES, PNG_BYTES):
        assert not any_store.exists(hashlib.sha256(refused).hexdigest())


def test_delete_and_missing(any_store: BlobStore) -> None:
    ref = any_store.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    assert any_store.delete(ref.sha256) is True
    assert not any_store.exists(ref.sha256)
    assert any_store.delete(ref.sha256) is False
    with pytest.raises(NotFound):
        any_store.get(ref.sha256)
    with pytest.raises(NotFound):
        any_store.open(ref.sha256)
    with pytest.raises(InvalidInput):
        any_store.exists("../../etc/passwd")


# -- S3's own -----------------------------------------------------------------------------


def test_key_layout_checksum_and_type(
    s3: S3BlobStore, client: Any, bucket: str, calls: list[tuple[str, dict[str, str]]]
) -> None:
    ref = s3.put(JPEG_BYTES, content_type="image/jpeg", max_bytes=MB)
    sha = ref.sha256
    key = f"evidence/{sha[:2]}/{sha[2:4]}/{sha}"
    assert s3.key_of(sha) == key
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    assert client.head_object(Bucket=bucket, Key=key)["ContentType"] == "image/jpeg"
    put_headers = [headers for op, headers in calls if op == "PutObject"]
    assert len(put_headers) == 1
    expected = base64.b64encode(hashlib.sha256(JPEG_BYTES).digest()).decode()
    assert put_headers[0]["x-amz-checksum-sha256"] == expected  # the server checks it
    assert put_headers[0]["If-None-Match"] == "*"
    assert s3.ref(sha) == ref


def test_dedup_sends_no_second_upload(
    s3: S3BlobStore, client: Any, bucket: str, calls: list[tuple[str, dict[str, str]]]
) -> None:
    a = s3.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB)
    etag = client.head_object(Bucket=bucket, Key=s3.key_of(a.sha256))["ETag"]
    calls.clear()
    b = s3.put(io.BytesIO(PDF_BYTES), content_type="application/pdf", max_bytes=MB)
    assert a == b
    assert "PutObject" not in _ops(calls)
    assert _ops(calls)[0] == "HeadObject"
    assert client.head_object(Bucket=bucket, Key=s3.key_of(a.sha256))["ETag"] == etag
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_corrupted_object_detected_and_repaired(s3: S3BlobStore, client: Any, bucket: str) -> None:
    ref = s3.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB)
    damaged = bytearray(PDF_BYTES)
    damaged[20] ^= 0x01  # same length: only the bytes tell
    client.put_object(Bucket=bucket, Key=s3.key_of(ref.sha256), Body=bytes(damaged))
    with pytest.raises(BlobCorrupted, match="corrupted"):
        s3.get(ref.sha256)
    with s3.open(ref.sha256) as fh, pytest.raises(BlobCorrupted):
        fh.read()
    # uploading the same bytes again overwrites the damaged copy
    assert s3.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB) == ref
    assert s3.get(ref.sha256) == PDF_BYTES
    # a replaced object of another size is caught by the HEAD alone
    client.put_object(Bucket=bucket, Key=s3.key_of(ref.sha256), Body=PDF_BYTES + b"!")
    with pytest.raises(BlobCorrupted):
        s3.get(ref.sha256)
    assert s3.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB) == ref
    assert s3.get(ref.sha256) == PDF_BYTES


class _Proxy:
    """The real client, with ``put_object`` replaced by ``put``."""

    def __init__(self, real: Any, put: Callable[..., Any]) -> None:
        self._real = real
        self.put_object = put

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_racing_upload_of_same_file_is_fine(client: Any, bucket: str) -> None:
    """Another writer stores the blob between our HEAD and PUT: its 412 means done."""
    answers: list[str] = []

    def put(**kwargs: Any) -> Any:
        client.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=PNG_BYTES)
        try:
            return client.put_object(**kwargs)
        except ClientError as exc:
            answers.append(exc.response["Error"]["Code"])
            raise

    store = S3BlobStore(bucket, client=_Proxy(client, put))
    ref = store.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    assert answers == ["PreconditionFailed"]  # the server enforced If-None-Match
    assert store.get(ref.sha256) == PNG_BYTES


def test_server_without_conditional_put(client: Any, bucket: str) -> None:
    """A server answering ``If-None-Match`` with 501 is written to without it."""
    sent: list[bool] = []

    def put(**kwargs: Any) -> Any:
        sent.append("IfNoneMatch" in kwargs)
        if "IfNoneMatch" in kwargs:
            error = {"Error": {"Code": "NotImplemented"}, "ResponseMetadata": {}}
            error["ResponseMetadata"] = {"HTTPStatusCode": 501}
            raise ClientError(error, "PutObject")  # type: ignore[arg-type]
        return client.put_object(**kwargs)

    store = S3BlobStore(bucket, client=_Proxy(client, put))
    ref = store.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    again = S3BlobStore(bucket, client=_Proxy(client, put))  # stores are made per request
    again.put(JPEG_BYTES, content_type="image/jpeg", max_bytes=MB)
    assert sent == [True, False, False]  # asked once, then remembered for that server
    assert store.get(ref.sha256) == PNG_BYTES


def test_botocore_checksum_failure_is_corruption(s3: S3BlobStore) -> None:
    """botocore checks the server's stored checksum while reading: a mismatch is ours."""
    error = FlexibleChecksumError(error_msg="Expected checksum x did not match")
    assert isinstance(s3.failure(error, "reading blob"), BlobCorrupted)


def test_missing_bucket_and_unreachable_server(client: Any) -> None:
    store = S3BlobStore("no-such-bucket-here", client=client)
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        store.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    dead = raw_client(  # the discard port: nothing listens
        "http://127.0.0.1:9", retries={"max_attempts": 1}, connect_timeout=2
    )
    with pytest.raises(ServiceUnavailable, match="unreachable"):
        S3BlobStore("blobs", client=dead).exists("0" * 64)
    with pytest.raises(ConfigurationError, match="bucket"):
        S3BlobStore("", client=client)


@pytest.mark.usefixtures("aws_env")
def test_factory_picks_store_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str, client: Any, bucket: str
) -> None:
    assert isinstance(blob_store(Settings(var_dir=tmp_path / "disk")), DiskBlobStore)
    monkeypatch.setenv("SAFECITY_BLOB_BACKEND", "s3")
    monkeypatch.setenv("SAFECITY_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("SAFECITY_S3_BUCKET", bucket)
    monkeypatch.setenv("SAFECITY_S3_PREFIX", "city/")
    monkeypatch.setenv("SAFECITY_S3_REGION", REGION)
    settings = Settings(var_dir=tmp_path)
    store = blob_store(settings, allowed_types={"application/pdf"})
    assert isinstance(store, S3BlobStore)
    ref = store.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB)
    key = f"city/{ref.sha256[:2]}/{ref.sha256[2:4]}/{ref.sha256}"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == PDF_BYTES
    with pytest.raises(InvalidInput, match="not allowed"):
        store.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    assert blob_store(settings).client is store.client  # one client per endpoint
    assert not (tmp_path / "blobs").exists()  # nothing went to disk
    with pytest.raises(ConfigurationError, match="SAFECITY_S3_BUCKET"):
        blob_store(Settings(var_dir=tmp_path, s3_bucket=""))


@pytest.mark.usefixtures("aws_env")
def test_without_boto3_a_clear_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("boto3", "botocore.config", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigurationError, match=r"needs boto3.*safecity\[s3\]"):
        blob_store(Settings(blob_backend="s3", s3_bucket="blobs"))
