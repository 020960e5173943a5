"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW): ``SAFECITY_BLOB_BACKEND=s3``.

The same :class:`~safecity.platform.blobs.BlobStore` contract as the disk store, with
the same checks (its :func:`~safecity.platform.blobs.check_upload` and
:func:`~safecity.platform.blobs.receive`: allowed type, size limit, magic bytes), under
the key ``<prefix>ab/cd/<sha256>``.

Upload: the body is checked and hashed while it is spooled to a local temporary file
(memory up to 8 MiB), so nothing is sent before it passed, and then sent by one
``PutObject`` (evidence is MiB, far below the 5 GiB single-request limit) carrying
``ChecksumSHA256``: the server recomputes the SHA-256 and refuses the object if a byte
changed on the way (AWS S3 and MinIO do; test doubles may not).

Dedup, and why both a HEAD and ``If-None-Match: *``: a ``HEAD`` first tells whether the
blob is already there, so a repeated upload sends no bytes at all, on every server (a 412
from a conditional put comes only after the body was sent, and servers that ignore the
header would silently write it again). The ``PutObject`` that follows a miss carries
``If-None-Match: *`` so two racing uploads of the same file cannot both write; the loser's
412 means "already there". A server that answers the header with 501 Not Implemented is
remembered and written to without it (harmless: the key names its content).

The HEAD also checks that what is there is intact, as the disk store re-hashes an existing
file: the stored ``ChecksumSHA256`` must be ours; where the server keeps none (objects
written without it, some S3 clones) the object is streamed and hashed. A damaged or
replaced object is overwritten (unconditionally) by the good upload.

Read: ``get`` re-hashes the body and raises
:class:`~safecity.platform.blobs.BlobCorrupted` on a mismatch; ``open`` streams through
the same :class:`~safecity.platform.blobs.VerifyingReader` as the disk store.

Credentials are never SafeCity settings: boto3 finds them (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance or pod role). boto3 is imported
only here, when the s3 backend is chosen (the ``s3`` extra); without it the store refuses
to start with a :class:`~safecity.platform.errors.ConfigurationError`. Missing bucket or
refused credentials are configuration errors (500); an unreachable or failing server is
:class:`~safecity.platform.errors.ServiceUnavailable` (503).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import io
import tempfile
from collections.abc import Iterable
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal

from safecity.platform.blobs import (
    CHUNK,
    DEFAULT_TYPES,
    BlobCorrupted,
    BlobRef,
    VerifyingReader,
    check_sha256,
    check_upload,
    known_types,
    receive,
    sniff,
)
from safecity.platform.errors import (
    ConfigurationError,
    NotFound,
    SafeCityError,
    ServiceUnavailable,
)

if TYPE_CHECKING:
    from safecity.settings import Settings

SPOOL_BYTES = 8 << 20
"""Uploads up to this size are spooled in memory, larger ones in a temporary file."""

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_REFUSED = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "InvalidBucketName",
    }
)
_PUT_ATTEMPTS = 3
_UNCONDITIONAL: set[tuple[str, str]] = set()
"""(endpoint, bucket) pairs whose server answered ``If-None-Match`` with 501, for this
process: stores are built per request, the answer is kept here."""

State = Literal["intact", "absent", "damaged"]


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(
            "SAFECITY_BLOB_BACKEND=s3 needs boto3: install SafeCity with the s3 extra "
            "(pip install 'safecity[s3]')"
        ) from exc


@functools.lru_cache(maxsize=8)
def s3_client(endpoint_url: str = "", region: str = "") -> Any:
    """One boto3 S3 client per endpoint and region, shared (clients are thread-safe and
    slow to build). Credentials come from boto3's own chain."""
    boto3 = _import("boto3")
    config = _import("botocore.config").Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 3},
        # MinIO, Ceph and test servers are reached by host name or address, not by a
        # per-bucket DNS name: path-style addressing for any endpoint that is not AWS.
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    session = boto3.session.Session()  # not the default session: it is not thread-safe
    return session.client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )


class _Body:
    """A GetObject body for :class:`VerifyingReader`: botocore errors become ours."""

    def __init__(self, body: Any, store: S3BlobStore, sha256: str) -> None:
        self._body = body
        self._store = store
        self._sha = sha256

    def readinto(self, buffer: memoryview | bytearray, /) -> int | None:
        try:
            return int(self._body.readinto(buffer))
        except self._store.errors.BotoCoreError as exc:
            raise self._store.failure(exc, f"reading blob {self._sha}") from exc

    def close(self) -> None:
        self._body.close()


class S3BlobStore:
    """Blobs as objects ``<prefix>ab/cd/<sha256>`` in one S3-compatible bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str = "",
        region: str = "",
        allowed_types: Iterable[str] = DEFAULT_TYPES,
        client: Any = None,
        spool_bytes: int = SPOOL_BYTES,
    ) -> None:
        if not bucket:
            raise ConfigurationError("the s3 blob backend needs a bucket (SAFECITY_S3_BUCKET)")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.allowed_types = known_types(allowed_types)
        self.errors = _import("botocore.exceptions")
        self.client = client if client is not None else s3_client(endpoint_url, region)
        self._spool_bytes = spool_bytes
        self._server = (str(getattr(self.client.meta, "endpoint_url", "")), bucket)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, allowed_types: Iterable[str] = DEFAULT_TYPES
    ) -> S3BlobStore:
        return cls(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            allowed_types=allowed_types,
        )

    def key_of(self, sha256: str) -> str:
        """The object key of the blob named ``sha256`` (whether or not it exists)."""
        sha = check_sha256(sha256)
        return f"{self.prefix}{sha[:2]}/{sha[2:4]}/{sha}"

    def put(self, data: bytes | BinaryIO, *, content_type: str, max_bytes: int) -> BlobRef:
        """Store ``data`` if it passes the checks; an intact copy already there is kept."""
        check_upload(content_type, max_bytes, self.allowed_types)
        with tempfile.SpooledTemporaryFile(max_size=self._spool_bytes) as spool:
            ref = receive(data, spool, content_type=content_type, max_bytes=max_bytes)
            for _ in range(_PUT_ATTEMPTS):
                state = self._state(ref)
                if state == "intact":
                    return ref
                spool.seek(0)
                if self._upload(spool, ref, overwrite=state == "damaged"):
                    return ref
        raise ServiceUnavailable(f"blob {ref.sha256}: concurrent uploads kept conflicting")

    def get(self, sha256: str) -> bytes:
        """The blob's bytes, verified against its hash."""
        body = self._get(sha256)
        try:
            data = bytes(body.read())
        except self.errors.BotoCoreError as exc:
            raise self.failure(exc, f"reading blob {sha256}") from exc
        finally:
            body.close()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupted(f"blob {sha256} is corrupted (hash mismatch)")
        return data

    def open(self, sha256: str) -> BinaryIO:
        """A stream of the blob; the hash is checked when the stream reaches its end."""
        raw = VerifyingReader(_Body(self._get(sha256), self, sha256), sha256)
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def ref(self, sha256: str) -> BlobRef:
        """A :class:`BlobRef` for a stored blob (type re-sniffed from its first bytes)."""
        head = self._head(sha256)
        if head is None:
            raise NotFound(f"no blob {sha256}")
        body = self._get(sha256, range_="bytes=0-15")
        try:
            found = sniff(bytes(body.read()))
        finally:
            body.close()
        if found is None:
            raise BlobCorrupted(f"blob {sha256} has no recognisable content type")
        return BlobRef(sha256=sha256, size=int(head["ContentLength"]), content_type=found)

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def delete(self, sha256: str) -> bool:
        """Remove the blob (retention / erasure); False if it was not there."""
        if not self.exists(sha256):  # S3 deletes succeed whether or not the key existed
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key_of(sha256))
        except (self.errors.ClientError, self.errors.BotoCoreError) as exc:
            raise self.failure(exc, f"deleting blob {sha256}") from exc
        return True

    def failure(self, exc: Exception, what: str) -> SafeCityError:
        """Our error for a boto3 one: corrupted, refused (configuration), unavailable (503)."""
        if isinstance(exc, self.errors.FlexibleChecksumError):  # the server's own checksum
            return BlobCorrupted(f"{what}: the bytes do not match the stored checksum")
        if isinstance(exc, self.errors.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _REFUSED or status in (401, 403):
                return ConfigurationError(
                    f"blob storage refused {what}: {code or status} "
                    "(check SAFECITY_S3_BUCKET and the AWS credentials)"
                )
            return ServiceUnavailable(f"blob storage failed {what}: {code or status}")
        if isinstance(exc, self.errors.NoCredentialsError | self.errors.PartialCredentialsError):
            return ConfigurationError(
                "no AWS credentials for the s3 blob backend (AWS_ACCESS_KEY_ID, a profile "
                "or a role)"
            )
        return ServiceUnavailable(f"blob storage unreachable while {what} ({type(exc).__name__})")

    def _missing(self, exc: Exception) -> bool:
        if not isinstance(exc, self.errors.ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in _MISSING

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self.key_of(sha256), ChecksumMode="ENABLED"
            )
        except (self.errors.ClientError, self.errors.BotoCoreError) as exc:
            if self._missing(exc):
                return None
            raise self.failure(exc, f"looking up blob {sha256}") from exc
        return head

    def _get(self, sha256: str, *, range_: str = "") -> Any:
        extra = {"Range": range_} if range_ else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key_of(sha256), **extra)
        except (self.errors.ClientError, self.errors.BotoCoreError) as exc:
            if self._missing(exc):
                raise NotFound(f"no blob {sha256}") from exc
            raise self.failure(exc, f"reading blob {sha256}") from exc
        return response["Body"]

    def _state(self, ref: BlobRef) -> State:
        """Is the blob already stored, and intact? (HEAD; a full read only if needed.)"""
        head = self._head(ref.sha256)
        if head is None:
            return "absent"
        if int(head.get("ContentLength", -1)) != ref.size:
            return "damaged"
        stored = head.get("ChecksumSHA256")
        if stored:
            return "intact" if stored == _b64(ref.sha256) else "damaged"
        try:  # the server keeps no SHA-256 for it: hash the object, as the disk store does
            with self.open(ref.sha256) as fh:
                while fh.read(CHUNK):
                    pass
        except BlobCorrupted:
            return "damaged"
        except NotFound:
            return "absent"
        return "intact"

    def _upload(self, body: IO[bytes], ref: BlobRef, *, overwrite: bool) -> bool:
        """One PutObject; False if a concurrent writer got in first (412/409: look again)."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key_of(ref.sha256),
            "Body": body,
            "ContentLength": ref.size,
            "ContentType": ref.content_type,
            "ChecksumSHA256": _b64(ref.sha256),  # the server verifies what it received
        }
        conditional = not overwrite and self._server not in _UNCONDITIONAL
        if conditional:
            args["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**args)
        except (self.errors.ClientError, self.errors.BotoCoreError) as exc:
            if isinstance(exc, self.errors.ClientError):
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                if conditional and (status == 412 or code == "PreconditionFailed"):
                    return False  # written meanwhile by someone else: _state checks it
                if code == "ConditionalRequestConflict":  # 409: a racing conditional write
                    return False
                if conditional and (status == 501 or code == "NotImplemented"):
                    _UNCONDITIONAL.add(self._server)  # the server does not do If-None-Match
                    body.seek(0)
                    return self._upload(body, ref, overwrite=overwrite)
            raise self.failure(exc, f"storing blob {ref.sha256}") from exc
        return True


def _b64(sha256: str) -> str:
    """The ``x-amz-checksum-sha256`` form of a hex SHA-256: base64 of the 32 bytes."""
    return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
