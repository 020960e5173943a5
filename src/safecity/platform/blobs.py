"""Content-addressed blob store: case evidence, e-service attachments, accident photos.

A blob is named by the SHA-256 of its bytes, so the same file uploaded twice is stored
once, a reference can never point at different content, and a flipped bit on disk is
caught on read (:class:`BlobCorrupted`). Tables keep a :class:`BlobRef` (hash, size,
content type); the bytes live here. Deleting a blob (retention, erasure) is the caller's
decision: a blob may be shared by several records, so the service layer deletes it only
when no record refers to it any more.

Uploads are checked before they are kept: a size limit (:class:`PayloadTooLarge`), an
allowed content type, and the declared type must match the file's magic bytes (a
``.pdf`` that is really an HTML page is refused with :class:`InvalidInput`).

:class:`DiskBlobStore` writes ``root/ab/cd/<sha256>`` atomically (temporary file in
``root/.tmp``, fsync, rename), files 0600, directories 0700.

Object storage: :class:`~safecity.platform.blobs_s3.S3BlobStore` implements the same
:class:`BlobStore` protocol in an S3-compatible bucket (key ``<prefix>ab/cd/<sha256>``),
with the same checks (:func:`check_upload`, :func:`receive`) and the same re-hash on read.
It needs boto3 (the ``s3`` extra), imported only when that backend is chosen.

Callers get their store from :func:`blob_store`, which picks the backend from the settings
(``SAFECITY_BLOB_BACKEND``: ``disk``, the default, or ``s3``), so no caller names one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, ClassVar, Protocol, runtime_checkable

from safecity.platform.errors import InvalidInput, NotFound, PayloadTooLarge, SafeCityError

if TYPE_CHECKING:
    from safecity.settings import Settings

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
DEFAULT_TYPES: frozenset[str] = frozenset({PDF, JPEG, PNG, WEBP})
CHUNK = 1 << 16
_SHA_RE = re.compile(r"[0-9a-f]{64}")


class BlobCorrupted(SafeCityError):
    """Stored bytes no longer hash to their name: disk corruption or tampering."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Stored file corrupted"
    slug: ClassVar[str] = "blob-corrupted"
    exit_code: ClassVar[int] = 3


@dataclass(frozen=True)
class BlobRef:
    """What a record keeps about a stored blob."""

    sha256: str
    size: int
    content_type: str


def sniff(head: bytes) -> str | None:
    """The content type named by ``head``'s magic bytes (PDF/JPEG/PNG/WebP), else None."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits (also keeps paths inside the root)."""
    if not isinstance(sha256, str) or not _SHA_RE.fullmatch(sha256):
        raise InvalidInput("a blob id is 64 lowercase hexadecimal digits (SHA-256)")
    return sha256


@runtime_checkable
class BlobStore(Protocol):
    """Where blobs live: :class:`DiskBlobStore` or :class:`.blobs_s3.S3BlobStore`."""

    def put(self, data: bytes | BinaryIO, *, content_type: str, max_bytes: int) -> BlobRef: ...

    def get(self, sha256: str) -> bytes: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> bool: ...


class Readable(Protocol):
    """What :class:`VerifyingReader` reads from: a file, or an S3 response body."""

    def readinto(self, buffer: memoryview | bytearray, /) -> int | None: ...

    def close(self) -> None: ...


class VerifyingReader(io.RawIOBase):
    """Reads a blob, hashing as it goes; raises :class:`BlobCorrupted` at EOF."""

    def __init__(self, fh: Readable, sha256: str) -> None:
        super().__init__()
        self._fh = fh
        self._sha = sha256
        self._hash = hashlib.sha256()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        n = self._fh.readinto(buffer)
        if n:
            self._hash.update(memoryview(buffer)[:n])
        elif not self._done:
            self._done = True
            if self._hash.hexdigest() != self._sha:
                raise BlobCorrupted(f"blob {self._sha} is corrupted (hash mismatch)")
        return int(n or 0)

    def close(self) -> None:
        self._fh.close()
        super().close()


def known_types(allowed_types: Iterable[str]) -> frozenset[str]:
    """``allowed_types`` if :func:`sniff` can recognise each of them (a store's constructor)."""
    types = frozenset(allowed_types)
    unknown = types - DEFAULT_TYPES
    if unknown:
        raise InvalidInput(
            f"cannot verify content types {sorted(unknown)}; known: {sorted(DEFAULT_TYPES)}"
        )
    return types


def check_upload(content_type: str, max_bytes: int, allowed_types: frozenset[str]) -> None:
    """The checks made before reading an upload: allowed type, a positive size limit."""
    if content_type not in allowed_types:
        allowed = ", ".join(sorted(allowed_types))
        raise InvalidInput(f"content type {content_type!r} is not allowed (allowed: {allowed})")
    if max_bytes <= 0:
        raise InvalidInput("max_bytes must be positive")


def receive(
    data: bytes | BinaryIO, out: IO[bytes], *, content_type: str, max_bytes: int
) -> BlobRef:
    """Copy ``data`` into ``out`` (a temporary file), hashing it and checking as it goes:
    the size limit while copying, then not empty and magic bytes matching ``content_type``.
    The caller keeps ``out`` only if this returns."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    for chunk in _chunks(data):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"file is larger than {max_bytes} bytes")
        if len(head) < 16:
            head += chunk[: 16 - len(head)]
        digest.update(chunk)
        out.write(chunk)
    if size == 0:
        raise InvalidInput("file is empty")
    found = sniff(head)
    if found != content_type:
        what = found or "an unrecognised format"
        raise InvalidInput(f"file declared as {content_type} but its content is {what}")
    return BlobRef(sha256=digest.hexdigest(), size=size, content_type=content_type)


def blob_store(settings: Settings, *, allowed_types: Iterable[str] = DEFAULT_TYPES) -> BlobStore:
    """The store the settings name (``blob_backend``): files under ``var_dir/blobs`` (disk,
    the default) or an S3-compatible bucket (s3; needs boto3). Every caller goes through
    here, so switching backends is configuration only."""
    if settings.blob_backend == "s3":
        from safecity.platform.blobs_s3 import S3BlobStore  # boto3 only when chosen

        return S3BlobStore.from_settings(settings, allowed_types=allowed_types)
    return DiskBlobStore(settings.var_dir / "blobs", allowed_types=allowed_types)


def _chunks(data: bytes | BinaryIO) -> Iterable[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    while True:
        chunk = data.read(CHUNK)
        if not chunk:
            return
        if not isinstance(chunk, bytes):
            raise InvalidInput("blob data must be bytes or a binary stream")
        yield chunk


class DiskBlobStore:
    """Blobs as files under ``root/ab/cd/<sha256>`` (0600 files, 0700 directories)."""

    def __init__(self, root: Path, *, allowed_types: Iterable[str] = DEFAULT_TYPES) -> None:
        self.root = Path(root)
        self.allowed_types = known_types(allowed_types)
        self._tmp = self.root / ".tmp"
        self._mkdir(self._tmp)

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        here = path
        while True:  # mkdir's mode is filtered by the umask: set it on every level
            os.chmod(here, 0o700)
            if here == self.root or here == here.parent:
                return
            here = here.parent

    def path_of(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` lives (whether or not it exists)."""
        sha = check_sha256(sha256)
        return self.root / sha[:2] / sha[2:4] / sha

    def put(self, data: bytes | BinaryIO, *, content_type: str, max_bytes: int) -> BlobRef:
        """Store ``data`` (bytes or a binary stream) if it passes the checks; dedup by hash."""
        check_upload(content_type, max_bytes, self.allowed_types)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                ref = receive(data, out, content_type=content_type, max_bytes=max_bytes)
                out.flush()
                os.fsync(out.fileno())
            sha = ref.sha256
            target = self.path_of(sha)
            if not self._intact(target, sha):  # missing, or damaged: (re)write it
                self._mkdir(target.parent)
                os.chmod(tmp, 0o600)
                os.replace(tmp, target)  # atomic; a racer writing the same bytes is harmless
                _fsync_dir(target.parent)
            return ref
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, sha256: str) -> bytes:
        """The blob's bytes, verified against its hash."""
        path = self._existing(sha256)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupted(f"blob {sha256} is corrupted (hash mismatch)")
        return data

    def open(self, sha256: str) -> BinaryIO:
        """A stream of the blob; the hash is checked when the stream reaches its end."""
        path = self._existing(sha256)
        raw = VerifyingReader(path.open("rb"), sha256)
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def ref(self, sha256: str) -> BlobRef:
        """A :class:`BlobRef` for a stored blob (type re-sniffed from its bytes)."""
        path = self._existing(sha256)
        with path.open("rb") as fh:
            head = fh.read(16)
        found = sniff(head)
        if found is None:
            raise BlobCorrupted(f"blob {sha256} has no recognisable content type")
        return BlobRef(sha256=sha256, size=path.stat().st_size, content_type=found)

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove the blob (retention / erasure); False if it was not there."""
        path = self.path_of(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def clean_tmp(self, *, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by interrupted uploads; returns how many."""
        limit = time.time() - older_than_s
        removed = 0
        for tmp in self._tmp.glob("put-*"):
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < limit:
                    tmp.unlink()
                    removed += 1
        return removed

    @staticmethod
    def _intact(path: Path, sha256: str) -> bool:
        try:
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256")
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha256

    def _existing(self, sha256: str) -> Path:
        path = self.path_of(sha256)
        if not path.is_file():
            raise NotFound(f"no blob {sha256}")
        return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
