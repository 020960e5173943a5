"""An S3-compatible HTTP server for tests: moto's, on a free local port.

boto3 sends real S3 requests over HTTP to it. A test module builds its fixtures from
these helpers::

    @pytest.fixture(scope="module")
    def endpoint() -> Iterator[str]:
        with moto_server() as url:
            yield url

A test module importing this is skipped when boto3 or moto[server] is missing (they are
in the dev extra); under ``CI=true`` the missing import fails instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError, FlexibleChecksumError
    from moto.server import ThreadedMotoServer
except ImportError as exc:  # the dev extra has both: CI always runs these tests
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip(
        f"boto3 and moto[server] (dev extra) are needed for the S3 tests: {exc}",
        allow_module_level=True,
    )

from safecity.platform import blobs_s3

__all__ = [
    "REGION",
    "ClientError",
    "FlexibleChecksumError",
    "isolated_aws_env",
    "moto_server",
    "new_bucket",
    "raw_client",
]

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's S3 server on a free localhost port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def raw_client(endpoint: str, **config: Any) -> Any:
    """A plain boto3 client for ``endpoint`` (path-style, test credentials)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, **config),
        **CREDENTIALS,
    )


def new_bucket(client: Any) -> str:
    """A new empty bucket (random name, so tests share one server safely)."""
    name = f"blobs-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=name)
    return name


@contextlib.contextmanager
def isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """boto3's credential chain sees only test variables; the store's client is rebuilt."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    blobs_s3.s3_client.cache_clear()
    try:
        yield
    finally:
        blobs_s3.s3_client.cache_clear()
