"""Accident photos: safe loading, exact and near duplicates across cases, blurring."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageDraw

from safecity.accidents.photos import (
    CROP_MARGINS,
    NEAR_THRESHOLD,
    MatchKind,
    PhotoIndex,
    PhotoLimits,
    blur_regions,
    load_photo,
    near_distance,
    packed_hashes,
    shareable_jpeg,
)
from safecity.platform.errors import InvalidInput, PayloadTooLarge


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A small photo-like picture: gradient, random shapes, noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    arr = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            d.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            d.ellipse((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "JPEG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# ---- loading and refusals -------------------------------------------------------------
def test_load_photo_fingerprints() -> None:
    data = encode(scene(1), quality=90)
    info = load_photo(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert (info.format, info.width, info.height, info.size_bytes) == ("JPEG", 320, 240, len(data))
    assert len(info.crop_hashes) == len(CROP_MARGINS) == 15
    assert info.exif.present is False
    assert load_photo(data) == info  # deterministic


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, not a photo", b"%PDF-1.7\n", encode(scene(2), "GIF"), encode(scene(2), "BMP")],
    ids=["empty", "text", "pdf", "gif", "bmp"],
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="not a photo: only JPEG, PNG, WEBP"):
        load_photo(data)


def test_truncated_photo_is_refused() -> None:
    data = encode(scene(3), quality=90)
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        load_photo(data[: len(data) // 2])


def test_byte_and_pixel_limits() -> None:
    data = encode(scene(4), quality=90)
    with pytest.raises(PayloadTooLarge, match=r"the limit is 1,000 bytes"):
        load_photo(data, limits=PhotoLimits(max_bytes=1000))
    with pytest.raises(InvalidInput, match="320x240 pixels exceeds"):
        load_photo(data, limits=PhotoLimits(max_pixels=320 * 240 - 1))
    with pytest.raises(InvalidInput, match="320x240 pixels exceeds"):
        load_photo(data, limits=PhotoLimits(max_side=300))
    assert load_photo(data, limits=PhotoLimits(max_pixels=320 * 240)).width == 320


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    real = encode(Image.new("L", (8, 8)), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return real[:8] + patched + real[8 + 25 :]


@pytest.mark.parametrize("size", [(12_000, 8_000), (100_000, 100_000), (16_000, 16_000)])
def test_decompression_bombs_are_refused_before_decoding(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidInput, match="photo refused"):
        load_photo(_png_claiming(*size))


PNG_HEAD = encode(scene(5), "PNG")[:64]
JPEG_HEAD = encode(scene(5), "JPEG")[:600]


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_clear_errors(data: bytes) -> None:
    for blob in (data, PNG_HEAD + data, JPEG_HEAD + data):
        message = ""
        try:
            load_photo(blob)
        except (InvalidInput, PayloadTooLarge) as exc:
            message = str(exc)
        assert "\n" not in message


def _with_exif(fmt: str) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = "Cam"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:11:26 09:30:00"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (31.0, 14.0, 2.4), 4: (121.0, 2.0, 3.0)})
    return encode(Image.new("RGB", (64, 48), (1, 2, 3)), fmt, exif=exif)


WITH_EXIF = [_with_exif(fmt) for fmt in ("JPEG", "PNG", "WEBP")]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(WITH_EXIF),
    st.lists(st.tuples(st.integers(2, 399), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_corrupt_headers_and_exif_never_escape_as_other_errors(
    base: bytes, edits: list[tuple[int, int]]
) -> None:
    blob = bytearray(base)
    for pos, value in edits:
        blob[pos % len(blob)] = value
    try:
        info = load_photo(bytes(blob))
    except (InvalidInput, PayloadTooLarge):
        return
    assert info.width > 0  # corrupt EXIF tags are skipped, the photo still loads


# ---- exact and near duplicates --------------------------------------------------------
def test_exact_duplicates_by_bytes_and_by_pixels() -> None:
    original = encode(scene(6), quality=92)
    index = PhotoIndex()
    assert index.add("case-1", "p1", original) == []
    again = index.add("case-2", "p1", original)
    assert [(m.case_id, m.kind, m.distance) for m in again] == [
        ("case-1", MatchKind.EXACT_BYTES, 0)
    ]
    png = encode(Image.open(io.BytesIO(original)), "PNG")
    as_png = index.matches("case-3", load_photo(png))
    assert {(m.case_id, m.kind) for m in as_png} == {
        ("case-1", MatchKind.EXACT_PIXELS),
        ("case-2", MatchKind.EXACT_PIXELS),
    }
    assert len(index) == 2


def test_same_case_never_matches_itself() -> None:
    data = encode(scene(7), quality=92)
    index = PhotoIndex()
    index.add("case-1", "p1", data)
    assert index.add("case-1", "p2", data) == []
    assert [m.photo_id for m in index.matches("case-9", load_photo(data))] == ["p1", "p2"]


def test_orientation_tag_and_rotated_pixels_are_the_same_picture() -> None:
    img = scene(8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90° clockwise
    tagged = load_photo(encode(img, "PNG", exif=exif))
    rotated = load_photo(encode(img.transpose(Image.Transpose.ROTATE_270), "PNG"))
    assert (tagged.width, tagged.height) == (240, 320)
    assert tagged.pixel_sha256 == rotated.pixel_sha256
    assert tagged.sha256 != rotated.sha256


def test_near_duplicates_found_and_different_scenes_not() -> None:
    original = scene(9, (480, 360))
    index = PhotoIndex()
    index.add("case-1", "p1", encode(original, quality=92))
    for seed in range(10, 20):
        index.add(f"other-{seed}", "p", encode(scene(seed, (480, 360)), quality=92))
    w, h = original.size
    copies = {
        "recompressed": encode(original, quality=55),
        "resized": encode(original.resize((w * 3 // 5, h * 3 // 5)), quality=80),
        "cropped": encode(original.crop((int(w * 0.08), 0, w, int(h * 0.93))), quality=85),
    }
    for name, data in copies.items():
        found = index.matches("case-2", load_photo(data))
        assert [m.case_id for m in found] == ["case-1"], name
        assert found[0].kind is MatchKind.NEAR
        assert 0 < found[0].distance <= NEAR_THRESHOLD
    cropped = index.matches("case-2", load_photo(copies["cropped"]))[0]
    assert cropped.cropped is True
    assert index.matches("case-3", load_photo(encode(scene(99, (480, 360))))) == []


def test_near_distance_is_symmetric_and_crop_aware() -> None:
    img = scene(21, (400, 300))
    a = load_photo(encode(img, quality=90))
    b = load_photo(encode(img.crop((0, 0, 360, 285)), quality=90))
    ab, ab_cropped = near_distance(a, b)
    ba, _ = near_distance(b, a)
    whole = a.hashes.distance(b.hashes)
    assert ab == ba
    assert ab <= whole
    assert ab_cropped == (ab < whole)


def test_index_matches_sorted_nearest_first() -> None:
    img = scene(22, (400, 300))
    index = PhotoIndex(threshold=128)  # everything is "near": checks ordering only
    index.add("far", "p", encode(scene(23, (400, 300))))
    index.add("near", "p", encode(img, quality=60))
    found = index.matches("q", load_photo(encode(img, quality=95)))
    assert [m.case_id for m in found][:1] == ["near"]
    assert [m.distance for m in found] == sorted(m.distance for m in found)


# ---- blurring for shared copies -------------------------------------------------------
def _detail(a: np.ndarray) -> float:
    return float(np.abs(np.diff(a, axis=1)).mean())


def test_blur_regions_blurs_inside_and_keeps_outside() -> None:
    img = scene(30, (300, 200))
    box = (40, 50, 160, 130)
    untouched = np.asarray(img).copy()
    out = blur_regions(img, [box])
    before, after = np.asarray(img, dtype=np.float32), np.asarray(out, dtype=np.float32)
    inside = (slice(box[1], box[3]), slice(box[0], box[2]))
    # high-frequency detail (noise, edges) is gone inside the box
    assert _detail(after[inside]) < _detail(before[inside]) / 4
    mask = np.ones(before.shape[:2], dtype=bool)
    mask[inside] = False
    assert np.array_equal(before[mask], after[mask])
    assert out is not img
    assert np.array_equal(np.asarray(img), untouched)  # the input is not modified


def test_blur_regions_clips_and_refuses_empty_boxes() -> None:
    img = scene(31, (100, 80))
    out = blur_regions(img, [(-20, -20, 30, 30), (500, 500, 600, 600)])
    assert out.size == img.size
    assert not np.array_equal(np.asarray(out)[:30, :30], np.asarray(img)[:30, :30])
    with pytest.raises(InvalidInput, match="is empty"):
        blur_regions(img, [(50, 10, 40, 20)])


def test_shareable_jpeg_drops_exif_and_gps() -> None:
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "N", 2: (31.0, 14.0, 2.4), 3: "E", 4: (121.0, 28.0, 30.0)})
    data = encode(scene(32), quality=90, exif=exif)
    assert load_photo(data).exif.lat is not None
    shared = shareable_jpeg(data, [(10, 10, 60, 40)])
    info = load_photo(shared)
    assert info.exif.present is False
    assert (info.width, info.height) == (320, 240)


def test_index_rebuilt_from_stored_rows_matches_the_same() -> None:
    img = scene(40, (400, 300))
    stored = load_photo(encode(img, quality=92))
    live = PhotoIndex()
    live.insert("case-1", "p1", stored)
    rebuilt = PhotoIndex()
    blob = packed_hashes(stored)
    assert len(blob) == 256
    rebuilt.insert_packed(
        "case-1", "p1", sha256=stored.sha256, pixel_sha256=stored.pixel_sha256, packed=blob
    )
    for query in (stored, load_photo(encode(img, quality=60))):
        assert rebuilt.matches("case-2", query) == live.matches("case-2", query) != []
    with pytest.raises(InvalidInput, match="must be 256 bytes"):
        rebuilt.insert_packed("c", "p", sha256="", pixel_sha256="", packed=blob[:-1])
