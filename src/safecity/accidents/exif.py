"""EXIF capture time and place of an accident photo, checked against the claim.

:func:`read_exif` takes what a phone writes (Pillow's ``getexif``: DateTimeOriginal with
OffsetTimeOriginal, the GPS IFD) and :func:`check_exif` compares it with the time and
place the driver claimed. The result is a list of :class:`PhotoFlag` for a reviewer:
flags never block a claim, because EXIF is easy to strip (messaging apps do) and easy to
forge, so its absence is only ``info`` and a mismatch is ``review``.

Notes on the comparison:

* DateTimeOriginal has no time zone. ``OffsetTimeOriginal`` is used when present, else
  the city's zone (``default_tz``, Asia/Shanghai by default).
* EXIF GPS is WGS84 as the receiver reports it. Maps in mainland China use GCJ-02, which
  is offset from WGS84 by a few hundred metres; claimed places must be WGS84 (the platform
  stores WGS84), otherwise the 1 km threshold absorbs part of that shift but not all.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from PIL import ExifTags, Image

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_TIME_GAP = timedelta(hours=2)
MAX_DISTANCE_M = 1000.0

_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011
_MAKE, _MODEL, _SOFTWARE = 0x010F, 0x0110, 0x0131


class Severity(StrEnum):
    INFO = "info"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class PhotoFlag:
    """Something a reviewer should know about a photo; never a reason to refuse it."""

    code: str
    severity: Severity
    message_zh: str
    message_en: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ExifData:
    present: bool  # the file carried any EXIF at all
    taken_at: datetime | None = None  # timezone-aware
    lat: float | None = None
    lon: float | None = None
    make: str | None = None
    model: str | None = None
    software: str | None = None


def _rational(value: Any) -> float:
    return float(value)


def _dms(value: Any, ref: Any, negative: str) -> float | None:
    try:
        deg, minutes, seconds = (_rational(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = deg + minutes / 60 + seconds / 3600
    if not math.isfinite(result):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -result if str(ref).strip().upper() == negative else result


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").strip()
    return value or None


def _parse_time(raw: Any, offset: Any, default_tz: tzinfo) -> datetime | None:
    text = _text(raw)
    if text is None:
        return None
    try:
        naive = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    off = _text(offset)
    if off:
        try:
            return datetime.strptime(f"{naive:%Y-%m-%d %H:%M:%S}{off}", "%Y-%m-%d %H:%M:%S%z")
        except ValueError:
            pass
    return naive.replace(tzinfo=default_tz)


def read_exif(image: Image.Image, *, default_tz: tzinfo = SHANGHAI) -> ExifData:
    """The capture time, GPS position and camera of ``image``; missing or broken tags → None."""
    with warnings.catch_warnings():  # Pillow warns on each corrupt tag; a broken tag is None
        warnings.simplefilter("ignore", UserWarning)
        return _read(image, default_tz)


def _read(image: Image.Image, default_tz: tzinfo) -> ExifData:
    try:
        exif = image.getexif()
    except (OSError, SyntaxError, ValueError):  # corrupt EXIF block: treat as absent
        return ExifData(present=False)
    if not exif:
        return ExifData(present=False)
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        sub, gps = {}, {}
    taken = _parse_time(
        sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED),
        sub.get(_OFFSET_TIME_ORIGINAL),
        default_tz,
    )
    lat = lon = None
    if 2 in gps and 4 in gps:
        lat = _dms(gps[2], gps.get(1, "N"), "S")
        lon = _dms(gps[4], gps.get(3, "E"), "W")
        valid = lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180
        if not valid or (lat == 0 and lon == 0):  # (0, 0) is what broken receivers write
            lat = lon = None
    return ExifData(
        present=True,
        taken_at=taken,
        lat=lat,
        lon=lon,
        make=_text(exif.get(_MAKE)),
        model=_text(exif.get(_MODEL)),
        software=_text(exif.get(_SOFTWARE)),
    )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def check_exif(
    exif: ExifData,
    *,
    claimed_time: datetime | None,
    claimed_place: tuple[float, float] | None,
    max_time_gap: timedelta = MAX_TIME_GAP,
    max_distance_m: float = MAX_DISTANCE_M,
) -> list[PhotoFlag]:
    """Flags for a reviewer: EXIF time/place vs the claimed (aware) time and (lat, lon)."""
    if not exif.present:
        return [PhotoFlag("no_exif", Severity.INFO, "照片没有EXIF信息", "photo has no EXIF")]
    flags: list[PhotoFlag] = []
    if exif.taken_at is None:
        flags.append(
            PhotoFlag(
                "no_exif_time", Severity.INFO, "EXIF中没有拍摄时间", "no capture time in EXIF"
            )
        )
    elif claimed_time is not None:
        gap = abs(exif.taken_at - claimed_time)
        if gap > max_time_gap:
            flags.append(
                PhotoFlag(
                    "time_far_from_claim",
                    Severity.REVIEW,
                    "拍摄时间与报案时间相差较大",
                    "capture time far from the claimed time",
                    f"{gap.total_seconds() / 3600:.1f} h apart (limit {max_time_gap})",
                )
            )
    if exif.lat is None or exif.lon is None:
        flags.append(
            PhotoFlag("no_exif_gps", Severity.INFO, "EXIF中没有位置信息", "no GPS position in EXIF")
        )
    elif claimed_place is not None:
        dist = distance_m(exif.lat, exif.lon, claimed_place[0], claimed_place[1])
        if dist > max_distance_m:
            flags.append(
                PhotoFlag(
                    "place_far_from_claim",
                    Severity.REVIEW,
                    "拍摄地点与报案地点相距较远",
                    "capture place far from the claimed place",
                    f"{dist / 1000:.2f} km apart (limit {max_distance_m / 1000:g} km)",
                )
            )
    return flags
