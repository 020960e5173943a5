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

Extension point — object storage: an ``S3BlobStore`` would implement the same
:class:`BlobStore` protocol with key ``ab/cd/<sha256>``: stream the upload through the
same :func:`sniff` and size checks into a temporary object or multipart upload, then
``PutObject`` with ``ChecksumSHA256`` and ``If-None-Match: *`` (dedup without a race),
``GetObject`` re-hashing the body exactly as :meth:`DiskBlobStore.get` does. It needs
boto3 (or any S3 client), which SafeCity does not depend on today, so it is not here.
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
from typing import BinaryIO, ClassVar, Protocol, runtime_checkable

from safecity.platform.errors import InvalidInput, NotFound, PayloadTooLarge, SafeCityError

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
    """Where blobs live. Implementations: :class:`DiskBlobStore` (an S3 one: see above)."""

    def put(self, data: bytes | BinaryIO, *, content_type: str, max_bytes: int) -> BlobRef: ...

    def get(self, sha256: str) -> bytes: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> bool: ...


class _VerifyingReader(io.RawIOBase):
    """Reads a blob file, hashing as it goes; raises :class:`BlobCorrupted` at EOF."""

    def __init__(self, fh: io.BufferedReader, sha256: str) -> None:
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
        self.allowed_types = frozenset(allowed_types)
        unknown = self.allowed_types - DEFAULT_TYPES
        if unknown:
            raise InvalidInput(
                f"cannot verify content types {sorted(unknown)}; known: {sorted(DEFAULT_TYPES)}"
            )
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
        if content_type not in self.allowed_types:
            allowed = ", ".join(sorted(self.allowed_types))
            raise InvalidInput(f"content type {content_type!r} is not allowed (allowed: {allowed})")
        if max_bytes <= 0:
            raise InvalidInput("max_bytes must be positive")
        digest = hashlib.sha256()
        size = 0
        head = b""
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(data):
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"file is larger than {max_bytes} bytes")
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise InvalidInput("file is empty")
            found = sniff(head)
            if found != content_type:
                what = found or "an unrecognised format"
                raise InvalidInput(f"file declared as {content_type} but its content is {what}")
            sha = digest.hexdigest()
            target = self.path_of(sha)
            if not self._intact(target, sha):  # missing, or damaged: (re)write it
                self._mkdir(target.parent)
                os.chmod(tmp, 0o600)
                os.replace(tmp, target)  # atomic; a racer writing the same bytes is harmless
                _fsync_dir(target.parent)
            return BlobRef(sha256=sha, size=size, content_type=content_type)
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
        raw = _VerifyingReader(path.open("rb"), sha256)
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
