"""Content-addressed blob store: round trip, dedup, tamper detection, limits, sniffing."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.platform.blobs import (
    BlobCorrupted,
    BlobRef,
    BlobStore,
    DiskBlobStore,
    check_sha256,
    sniff,
)
from safecity.platform.errors import InvalidInput, NotFound, PayloadTooLarge

PDF_BYTES = b"%PDF-1.7\n" + b"x" * 200 + b"\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"\x10" * 64
WEBP_BYTES = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
MB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> DiskBlobStore:
    return DiskBlobStore(tmp_path / "blobs")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


def test_round_trip_layout_and_modes(store: DiskBlobStore) -> None:
    assert isinstance(store, BlobStore)
    ref = store.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB)
    sha = hashlib.sha256(PDF_BYTES).hexdigest()
    assert ref == BlobRef(sha256=sha, size=len(PDF_BYTES), content_type="application/pdf")
    assert store.get(sha) == PDF_BYTES
    with store.open(sha) as fh:
        assert fh.read() == PDF_BYTES
    path = store.root / sha[:2] / sha[2:4] / sha
    assert _files(store.root) == [path]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for d in (path.parent, path.parent.parent, store.root):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert store.exists(sha)
    assert store.ref(sha) == ref
    assert list((store.root / ".tmp").iterdir()) == []


def test_stream_input(store: DiskBlobStore) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1000  # several chunks
    ref = store.put(io.BytesIO(big), content_type="image/png", max_bytes=MB)
    assert ref.size == len(big)
    assert store.get(ref.sha256) == big


def test_dedup_stores_once(store: DiskBlobStore) -> None:
    a = store.put(JPEG_BYTES, content_type="image/jpeg", max_bytes=MB)
    path = store.path_of(a.sha256)
    inode = path.stat().st_ino
    b = store.put(io.BytesIO(JPEG_BYTES), content_type="image/jpeg", max_bytes=MB)
    assert a == b
    assert path.stat().st_ino == inode  # not rewritten
    assert len(_files(store.root)) == 1


def test_tamper_detected_by_get_and_open(store: DiskBlobStore) -> None:
    ref = store.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB)
    path = store.path_of(ref.sha256)
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BlobCorrupted, match="corrupted"):
        store.get(ref.sha256)
    with store.open(ref.sha256) as fh, pytest.raises(BlobCorrupted):
        fh.read()
    # uploading the same bytes again repairs the damaged copy
    assert store.put(PDF_BYTES, content_type="application/pdf", max_bytes=MB) == ref
    assert store.get(ref.sha256) == PDF_BYTES


def test_limits(store: DiskBlobStore) -> None:
    with pytest.raises(PayloadTooLarge, match="larger than 100 bytes"):
        store.put(PDF_BYTES, content_type="application/pdf", max_bytes=100)
    with pytest.raises(PayloadTooLarge):
        store.put(io.BytesIO(PDF_BYTES), content_type="application/pdf", max_bytes=100)
    with pytest.raises(InvalidInput, match="empty"):
        store.put(b"", content_type="application/pdf", max_bytes=100)
    with pytest.raises(InvalidInput, match="binary stream"):
        store.put(io.StringIO("%PDF-1.4"), content_type="application/pdf", max_bytes=100)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_bytes"):
        store.put(PDF_BYTES, content_type="application/pdf", max_bytes=0)
    assert _files(store.root) == []
    assert list((store.root / ".tmp").iterdir()) == []


def test_type_sniffing(store: DiskBlobStore) -> None:
    for data, ctype in (
        (PDF_BYTES, "application/pdf"),
        (PNG_BYTES, "image/png"),
        (JPEG_BYTES, "image/jpeg"),
        (WEBP_BYTES, "image/webp"),
    ):
        assert sniff(data) == ctype
        assert store.put(data, content_type=ctype, max_bytes=MB).content_type == ctype
    with pytest.raises(InvalidInput, match="declared as application/pdf but its content is image"):
        store.put(PNG_BYTES, content_type="application/pdf", max_bytes=MB)
    with pytest.raises(InvalidInput, match="unrecognised"):
        store.put(b"<html>not a pdf</html>", content_type="application/pdf", max_bytes=MB)
    with pytest.raises(InvalidInput, match="not allowed"):
        store.put(b"hello", content_type="text/plain", max_bytes=MB)
    only_pdf = DiskBlobStore(store.root, allowed_types={"application/pdf"})
    with pytest.raises(InvalidInput, match="not allowed"):
        only_pdf.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    with pytest.raises(InvalidInput, match="cannot verify"):
        DiskBlobStore(store.root, allowed_types={"image/gif"})


def test_ids_are_checked(store: DiskBlobStore) -> None:
    for bad in ("../../etc/passwd", "A" * 64, "ab" * 31, ""):
        with pytest.raises(InvalidInput):
            store.exists(bad)
    with pytest.raises(InvalidInput):
        check_sha256("0" * 63 + "g")
    with pytest.raises(NotFound):
        store.get("0" * 64)


def test_delete(store: DiskBlobStore) -> None:
    ref = store.put(PNG_BYTES, content_type="image/png", max_bytes=MB)
    assert store.delete(ref.sha256) is True
    assert not store.exists(ref.sha256)
    assert store.delete(ref.sha256) is False
    with pytest.raises(NotFound):
        store.open(ref.sha256)


def test_clean_tmp_removes_only_old_leftovers(store: DiskBlobStore) -> None:
    old = store.root / ".tmp" / "put-old"
    new = store.root / ".tmp" / "put-new"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (0, 0))
    assert store.clean_tmp(older_than_s=60) == 1
    assert not old.exists()
    assert new.exists()


def test_concurrent_puts_of_same_content(store: DiskBlobStore) -> None:
    data = b"%PDF-1.4\n" + bytes(range(256)) * 4000  # ~1 MB, several chunks
    refs: list[BlobRef] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            ref = store.put(io.BytesIO(data), content_type="application/pdf", max_bytes=2 * MB)
            refs.append(ref)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(refs) == 8
    assert len(set(refs)) == 1
    assert len(_files(store.root)) == 1
    assert store.get(refs[0].sha256) == data
    assert list((store.root / ".tmp").iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=2000))
def test_any_png_bytes_round_trip(tmp_path_factory: pytest.TempPathFactory, body: bytes) -> None:
    store = DiskBlobStore(tmp_path_factory.mktemp("b"))
    data = b"\x89PNG\r\n\x1a\n" + body
    ref = store.put(data, content_type="image/png", max_bytes=MB)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get(ref.sha256) == data
