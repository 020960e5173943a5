"""Accident photos: safe decoding, exact and near-duplicate matching across cases, blurring.

Issue 11 (item 5): a photo reused in another claim is a fraud signal. Pure functions, no
database; the case service stores :class:`PhotoInfo` fields (the perceptual hashes as one
256-byte blob, :func:`packed_hashes`) and keeps one :class:`PhotoIndex`, rebuilt at start
from the stored rows with :meth:`PhotoIndex.insert_packed`::

    info = load_photo(data)                       # raises on non-images and oversized ones
    matches = index.add("case-7", "photo-3", info)  # matches in OTHER cases, nearest first
    flags = check_exif(info.exif, claimed_time=t, claimed_place=(lat, lon))

* **Refused** (raises): not JPEG/PNG/WebP, more than ``max_bytes`` (``PayloadTooLarge``),
  more than ``max_pixels`` or a side over ``max_side`` before decoding (the
  decompression-bomb guard: the header is read first, pixels only if the size is
  acceptable), truncated or corrupt data (``InvalidInput``).
* **Exact duplicates**: SHA-256 of the bytes (the same file uploaded again), and SHA-256
  of the decoded pixels after EXIF orientation (the same picture re-saved losslessly,
  with other metadata or as PNG).
* **Near duplicates**: 64-bit pHash and dHash (imagehash) of a normalised 256x256 grey
  version of the photo and of 15 crops of it (each side trimmed by 0 or 5 %,
  :data:`CROP_MARGINS`). The distance of two photos is the sum of the two Hamming
  distances at the best alignment: whole against whole, or the whole of one against a
  crop of the other (either way), so a copy cropped by up to 10 % per side still lines
  up. At most :data:`NEAR_THRESHOLD` is a near duplicate. The choice (pHash+dHash with
  crops, over pHash, dHash or wHash alone and their sums on the whole photo) and the
  threshold were made on the calibration split of ``benchmarks/accidents_photos.py``
  (recall on re-compressed, cropped, resized and re-lit copies at a false-positive rate
  ≤ 1 % against similar scenes); see ``docs/benchmarks.d/accidents.md``.
* Matches are flags for a reviewer, never a block.
* :func:`blur_regions` blurs boxes a user or officer drew (plates, faces, papers) on a
  copy to share; there is no face detection (no biometric identification, by design).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import imagehash
import numpy as np
from PIL import Image, ImageFilter, ImageOps

from safecity.accidents.exif import ExifData, read_exif
from safecity.platform.errors import InvalidInput, PayloadTooLarge

#: pHash + dHash Hamming distance (0..128, best alignment) up to which two photos are near
#: duplicates: the largest threshold with FPR <= 1 % on the calibration split of
#: benchmarks/accidents_photos.py.
NEAR_THRESHOLD = 22
_THUMB = 256  # side of the grey square the perceptual hashes are computed from
_M = 0.05
#: Margins (left, top, right, bottom) of the crops hashed besides the whole photo, so that
#: a copy cropped by up to 10 % per side matches one of them to within 2.5 % per side.
CROP_MARGINS: tuple[tuple[float, float, float, float], ...] = tuple(
    (lx, ty, rx, by)
    for lx in (0, _M)
    for rx in (0, _M)
    for ty in (0, _M)
    for by in (0, _M)
    if (lx, ty, rx, by) != (0, 0, 0, 0)
)


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 16_384
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP"})


DEFAULT_LIMITS = PhotoLimits()


@dataclass(frozen=True, slots=True)
class PerceptualHashes:
    phash: int  # 64-bit imagehash.phash
    dhash: int  # 64-bit imagehash.dhash

    def distance(self, other: PerceptualHashes) -> int:
        """Sum of the two Hamming distances, 0..128."""
        return (self.phash ^ other.phash).bit_count() + (self.dhash ^ other.dhash).bit_count()


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    sha256: str  # of the bytes
    pixel_sha256: str  # of the decoded, orientation-corrected pixels
    format: str
    width: int  # after EXIF orientation
    height: int
    size_bytes: int
    hashes: PerceptualHashes  # of the whole photo
    crop_hashes: tuple[PerceptualHashes, ...]  # of its CROP_MARGINS crops, in that order
    exif: ExifData


class MatchKind(StrEnum):
    EXACT_BYTES = "exact_bytes"
    EXACT_PIXELS = "exact_pixels"
    NEAR = "near"


@dataclass(frozen=True, slots=True)
class PhotoMatch:
    case_id: str
    photo_id: str
    kind: MatchKind
    distance: int  # pHash + dHash Hamming distance at the best alignment (0 if exact)
    cropped: bool  # the best alignment was one photo against a crop of the other


def _open(data: bytes, limits: PhotoLimits) -> Image.Image:
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"photo is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # corrupt EXIF tags are skipped
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=sorted(limits.formats))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInput("photo refused: its declared pixel size is far too large") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(
            f"not a photo: only {', '.join(sorted(limits.formats))} images are accepted"
        ) from exc
    w, h = img.size
    if w < 1 or h < 1 or w > limits.max_side or h > limits.max_side or w * h > limits.max_pixels:
        img.close()
        raise InvalidInput(
            f"photo refused: {w}x{h} pixels exceeds the limit of {limits.max_pixels:,} pixels"
            f" or {limits.max_side} per side"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # corrupt EXIF tags are skipped
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput("photo is truncated or corrupt") from exc
    except Image.DecompressionBombWarning as exc:
        raise InvalidInput("photo refused: its declared pixel size is far too large") from exc
    return img


def _bits(h: imagehash.ImageHash) -> int:
    return int.from_bytes(np.packbits(np.asarray(h.hash, dtype=bool).ravel()).tobytes(), "big")


def _hashes(grey: Image.Image) -> PerceptualHashes:
    return PerceptualHashes(phash=_bits(imagehash.phash(grey)), dhash=_bits(imagehash.dhash(grey)))


def perceptual_hashes(image: Image.Image) -> tuple[PerceptualHashes, tuple[PerceptualHashes, ...]]:
    """The hashes of ``image`` and of its :data:`CROP_MARGINS` crops (a 256x256 grey base)."""
    grey = image.convert("L").resize((_THUMB, _THUMB), Image.Resampling.BOX)
    crops = []
    for left, top, right, bottom in CROP_MARGINS:
        box = (
            round(_THUMB * left),
            round(_THUMB * top),
            round(_THUMB * (1 - right)),
            round(_THUMB * (1 - bottom)),
        )
        crops.append(_hashes(grey.crop(box)))
    return _hashes(grey), tuple(crops)


def load_photo(data: bytes, *, limits: PhotoLimits = DEFAULT_LIMITS) -> PhotoInfo:
    """Decode ``data`` safely and compute its fingerprints and EXIF; raise if refused."""
    img = _open(data, limits)
    fmt = img.format or "?"
    exif = read_exif(img)
    with warnings.catch_warnings():  # corrupt EXIF tags: Pillow warns and skips them
        warnings.simplefilter("ignore", UserWarning)
        upright = ImageOps.exif_transpose(img)
    canonical = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
    pixels = hashlib.sha256(f"{canonical.mode}:{canonical.width}x{canonical.height}:".encode())
    pixels.update(canonical.tobytes())
    full, crops = perceptual_hashes(canonical)
    return PhotoInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        pixel_sha256=pixels.hexdigest(),
        format=fmt,
        width=canonical.width,
        height=canonical.height,
        size_bytes=len(data),
        hashes=full,
        crop_hashes=crops,
        exif=exif,
    )


def _packed(info: PhotoInfo) -> np.ndarray:
    """(1 + len(CROP_MARGINS), 2) uint64: the whole photo's hashes first, then the crops'."""
    rows = [info.hashes, *info.crop_hashes]
    return np.array([(h.phash, h.dhash) for h in rows], dtype=np.uint64)


def packed_hashes(info: PhotoInfo) -> bytes:
    """The 16 x (pHash, dHash) of a photo as 256 big-endian bytes, for storage."""
    return _packed(info).astype(">u8").tobytes()


def near_distance(a: PhotoInfo, b: PhotoInfo) -> tuple[int, bool]:
    """pHash + dHash distance of ``a`` and ``b`` at the best alignment, and whether that
    alignment is a crop: whole vs whole, whole vs each crop of the other, either way."""
    pa, pb = _packed(a), _packed(b)
    one = np.bitwise_count(pa[0] ^ pb).sum(axis=1)  # a whole vs b whole and crops
    two = np.bitwise_count(pb[0] ^ pa).sum(axis=1)  # b whole vs a whole and crops
    best = int(min(one.min(), two.min()))
    return best, best < int(one[0])


class PhotoIndex:
    """Fingerprints of every photo seen; finds those of other cases that match a new one.

    Exact matches come from two dictionaries; near matches from a vectorised scan of the
    packed hashes (XOR + popcount over numpy arrays of 16 x 2 words per photo, both ways;
    linear: see ``docs/benchmarks.d/accidents.md`` for the time per query at 100,000
    photos). A case never matches itself.
    """

    def __init__(self, *, threshold: int = NEAR_THRESHOLD) -> None:
        self.threshold = threshold
        self._keys: list[tuple[str, str]] = []
        self._by_bytes: dict[str, list[int]] = {}
        self._by_pixels: dict[str, list[int]] = {}
        self._hashes = np.zeros((0, 1 + len(CROP_MARGINS), 2), dtype=np.uint64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, case_id: str, photo_id: str, photo: bytes | PhotoInfo) -> list[PhotoMatch]:
        """Match ``photo`` against the index, then add it; returns the matches."""
        info = load_photo(photo) if isinstance(photo, bytes) else photo
        found = self.matches(case_id, info)
        self.insert(case_id, photo_id, info)
        return found

    def distances(self, info: PhotoInfo) -> tuple[np.ndarray, np.ndarray]:
        """Best-alignment distance to every indexed photo, and whether it was a crop."""
        q = _packed(info)
        stored = self._hashes[: self._n].reshape(self._n, -1)  # (n, 32): p, d, p, d, ...
        bits = np.bitwise_count(stored ^ np.tile(q[0], len(q)))  # q whole vs stored + crops
        whole = bits[:, 0::2] + bits[:, 1::2]  # (n, 16) uint8; adding slices beats .sum()
        bits = np.bitwise_count(stored[:, None, 0:2] ^ q[None, 1:, :])  # q crops vs stored
        crops = bits[..., 0] + bits[..., 1]  # (n, 15)
        best = np.minimum(whole.min(axis=1), crops.min(axis=1))
        return best, best < whole[:, 0]

    def matches(self, case_id: str, info: PhotoInfo) -> list[PhotoMatch]:
        """Photos of other cases that are exact or near duplicates of ``info``, nearest first."""
        if self._n == 0:
            return []
        best, cropped = self.distances(info)
        exact_bytes = set(self._by_bytes.get(info.sha256, ()))
        exact_pixels = set(self._by_pixels.get(info.pixel_sha256, ()))
        near = set(np.flatnonzero(best <= self.threshold).tolist())
        out = []
        for i in sorted(near | exact_bytes | exact_pixels):
            owner, photo_id = self._keys[i]
            if owner == case_id:
                continue
            if i in exact_bytes:
                out.append(PhotoMatch(owner, photo_id, MatchKind.EXACT_BYTES, 0, False))
            elif i in exact_pixels:
                out.append(PhotoMatch(owner, photo_id, MatchKind.EXACT_PIXELS, 0, False))
            else:
                out.append(
                    PhotoMatch(owner, photo_id, MatchKind.NEAR, int(best[i]), bool(cropped[i]))
                )
        out.sort(key=lambda m: (m.distance, m.case_id, m.photo_id))
        return out

    def insert(self, case_id: str, photo_id: str, info: PhotoInfo) -> None:
        """Add a photo without matching it."""
        self._append(case_id, photo_id, info.sha256, info.pixel_sha256, _packed(info))

    def insert_packed(
        self, case_id: str, photo_id: str, *, sha256: str, pixel_sha256: str, packed: bytes
    ) -> None:
        """Add a stored photo: its two SHA-256 and its :func:`packed_hashes` blob."""
        rows = 1 + len(CROP_MARGINS)
        if len(packed) != rows * 16:
            raise InvalidInput(f"packed hashes must be {rows * 16} bytes, not {len(packed)}")
        hashes = np.frombuffer(packed, dtype=">u8").astype(np.uint64).reshape(rows, 2)
        self._append(case_id, photo_id, sha256, pixel_sha256, hashes)

    def _append(
        self, case_id: str, photo_id: str, sha256: str, pixel_sha256: str, hashes: np.ndarray
    ) -> None:
        if self._n == len(self._hashes):
            grown = np.zeros((max(1024, 2 * self._n), *self._hashes.shape[1:]), dtype=np.uint64)
            grown[: self._n] = self._hashes[: self._n]
            self._hashes = grown
        self._hashes[self._n] = hashes
        self._keys.append((case_id, photo_id))
        self._by_bytes.setdefault(sha256, []).append(self._n)
        self._by_pixels.setdefault(pixel_sha256, []).append(self._n)
        self._n += 1


Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels


def blur_regions(
    image: Image.Image, boxes: Sequence[Box], *, radius: float | None = None
) -> Image.Image:
    """A copy of ``image`` with each box Gaussian-blurred beyond recognition.

    Boxes are clipped to the image; an empty or inverted box is refused. The default
    radius grows with the box (a quarter of its shorter side, at least 8 px), so a
    plate or a face is unreadable whatever the photo's resolution.
    """
    out = image.copy()
    for box in boxes:
        left, top, right, bottom = (int(v) for v in box)
        if right <= left or bottom <= top:
            raise InvalidInput(f"blur box {box} is empty: expected (left, top, right, bottom)")
        left, top = max(0, left), max(0, top)
        right, bottom = min(out.width, right), min(out.height, bottom)
        if right <= left or bottom <= top:
            continue  # wholly outside the image
        r = radius if radius is not None else max(8.0, min(right - left, bottom - top) / 4)
        # Blur with a margin of context, so pixels at the box's edge mix with real neighbours.
        pad = int(2 * r)
        region = (
            max(0, left - pad),
            max(0, top - pad),
            min(out.width, right + pad),
            min(out.height, bottom + pad),
        )
        blurred = out.crop(region).filter(ImageFilter.GaussianBlur(r))
        inner = blurred.crop(
            (left - region[0], top - region[1], right - region[0], bottom - region[1])
        )
        out.paste(inner, (left, top))
    return out


def shareable_jpeg(data: bytes, boxes: Sequence[Box], *, quality: int = 85) -> bytes:
    """A JPEG of the photo for sharing: orientation applied, boxes blurred, no EXIF/GPS."""
    img = _open(data, DEFAULT_LIMITS)
    upright = ImageOps.exif_transpose(img).convert("RGB")
    buf = io.BytesIO()
    blur_regions(upright, boxes).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
