"""A stored file as a download: never rendered inline, any filename (RFC 6266)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from urllib.parse import quote

from fastapi import Response


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` fallback and the UTF-8 ``filename*``.

    A header value must be Latin-1, so a Chinese filename placed in ``filename="..."``
    alone fails when the response is sent; ``filename*`` carries it percent-encoded.
    """
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = "".join(c for c in ascii_name if c.isprintable() and c not in '"\\;') or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def file_download(
    data: bytes, media_type: str, filename: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``data`` as an attachment: not cached, not sniffed into something renderable."""
    return Response(
        data,
        media_type=media_type,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": content_disposition(filename),
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        },
    )
