"""Reading back the images of a PDF that fpdf2 wrote (for QR checks in tests)."""

from __future__ import annotations

import io
import re
import struct
import zlib

from PIL import Image


def _int(head: bytes, key: bytes) -> int:
    m = re.search(rb"/" + key + rb" (\d+)", head)
    assert m is not None
    return int(m[1])


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + body))
    return struct.pack(">I", len(body)) + kind + body + crc


def embedded_images(pdf: bytes) -> list[Image.Image]:
    """Image XObjects of a PDF written by fpdf2 (8-bit grey, Flate, PNG predictors)."""
    images = []
    for hit in re.finditer(rb"/Subtype /Image", pdf):
        start = pdf.rfind(b"obj\n<<", 0, hit.start())
        end = pdf.find(b">>\nstream\n", hit.start())
        head = pdf[start:end]
        assert b"/ColorSpace /DeviceGray" in head
        assert b"/Predictor 15" in head
        assert b"/Filter /FlateDecode" in head
        num = {k: _int(head, k) for k in (b"Width", b"Height", b"Length")}
        data = pdf[end + len(b">>\nstream\n") : end + len(b">>\nstream\n") + num[b"Length"]]

        # PDF PNG-predicted Flate data is exactly a PNG's IDAT payload: wrap it as a PNG.
        ihdr = struct.pack(">IIBBBBB", num[b"Width"], num[b"Height"], 8, 0, 0, 0, 0)
        png = (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", data)
            + _chunk(b"IEND", b"")
        )
        images.append(Image.open(io.BytesIO(png)).convert("L"))
    return images
