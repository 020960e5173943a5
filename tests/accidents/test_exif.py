"""EXIF time and place against the claim: flags for review, never a refusal."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import ExifTags, Image

from safecity.accidents.exif import (
    ExifData,
    Severity,
    check_exif,
    distance_m,
    read_exif,
)
from safecity.accidents.photos import load_photo

PEOPLE_SQUARE = (31.2304, 121.4737)  # 人民广场, WGS84
CLAIM_TIME = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai


def photo(
    *,
    taken: str | None = "2026:11:26 09:30:00",
    offset: str | None = None,
    gps: tuple[float, float] | None = PEOPLE_SQUARE,
    model: str | None = "TestCam",
) -> bytes:
    exif = Image.Exif()
    if model:
        exif[ExifTags.Base.Model] = model
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken:
        sub[ExifTags.Base.DateTimeOriginal] = taken
    if offset:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if gps:
        lat, lon = gps

        def dms(x: float) -> tuple[float, float, float]:
            x = abs(x)
            d, m = int(x), int((x - int(x)) * 60)
            return (float(d), float(m), round((x - d - m / 60) * 3600, 4))

        info = exif.get_ifd(ExifTags.IFD.GPSInfo)
        info.update(
            {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
        )
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def codes(data: bytes, **claim: object) -> dict[str, Severity]:
    exif = load_photo(data).exif
    kwargs = {"claimed_time": CLAIM_TIME, "claimed_place": PEOPLE_SQUARE, **claim}
    return {f.code: f.severity for f in check_exif(exif, **kwargs)}  # type: ignore[arg-type]


def test_read_exif_time_place_camera() -> None:
    exif = load_photo(photo(offset="+08:00")).exif
    assert exif.present
    assert exif.model == "TestCam"
    assert exif.taken_at == CLAIM_TIME
    assert exif.lat == pytest.approx(PEOPLE_SQUARE[0], abs=1e-6)
    assert exif.lon == pytest.approx(PEOPLE_SQUARE[1], abs=1e-6)


def test_time_without_offset_is_city_local() -> None:
    exif = read_exif(Image.open(io.BytesIO(photo())))
    assert exif.taken_at == datetime(2026, 11, 26, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    utc = read_exif(Image.open(io.BytesIO(photo())), default_tz=UTC)
    assert utc.taken_at == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def test_southern_western_hemispheres() -> None:
    exif = load_photo(photo(gps=(-33.8568, -70.6483))).exif
    assert exif.lat == pytest.approx(-33.8568, abs=1e-6)
    assert exif.lon == pytest.approx(-70.6483, abs=1e-6)


def test_consistent_photo_has_no_flags() -> None:
    assert codes(photo()) == {}
    # 1 h 59 min off and 900 m away: still within the limits
    assert codes(photo(taken="2026:11:26 11:29:00")) == {}
    assert codes(photo(gps=(PEOPLE_SQUARE[0] + 0.0081, PEOPLE_SQUARE[1]))) == {}


def test_time_far_from_claim() -> None:
    assert codes(photo(taken="2026:11:26 11:31:00")) == {"time_far_from_claim": Severity.REVIEW}
    assert codes(photo(taken="2026:11:25 09:30:00")) == {"time_far_from_claim": Severity.REVIEW}
    # the offset is honoured: 09:30 at UTC+0 is 8 h after 09:30 in Shanghai
    assert "time_far_from_claim" in codes(photo(offset="+00:00"))


def test_place_far_from_claim() -> None:
    far = photo(gps=(PEOPLE_SQUARE[0] + 0.0095, PEOPLE_SQUARE[1]))  # about 1.06 km north
    flags = check_exif(load_photo(far).exif, claimed_time=CLAIM_TIME, claimed_place=PEOPLE_SQUARE)
    assert [(f.code, f.severity) for f in flags] == [("place_far_from_claim", Severity.REVIEW)]
    assert flags[0].detail.startswith("1.06 km apart")
    assert flags[0].message_zh == "拍摄地点与报案地点相距较远"


def test_missing_exif_parts_are_info_only() -> None:
    bare = io.BytesIO()
    Image.new("RGB", (32, 32)).save(bare, "JPEG")
    assert codes(bare.getvalue()) == {"no_exif": Severity.INFO}
    assert codes(photo(taken=None)) == {"no_exif_time": Severity.INFO}
    assert codes(photo(gps=None)) == {"no_exif_gps": Severity.INFO}
    assert codes(photo(taken="garbage", gps=(0.0, 0.0))) == {
        "no_exif_time": Severity.INFO,
        "no_exif_gps": Severity.INFO,
    }


def test_no_claim_means_no_mismatch_flags() -> None:
    exif = load_photo(photo(taken="2020:01:01 00:00:00")).exif
    assert check_exif(exif, claimed_time=None, claimed_place=None) == []


def test_custom_limits_and_distance() -> None:
    exif = ExifData(present=True, taken_at=CLAIM_TIME + timedelta(minutes=40), lat=31.0, lon=121.0)
    flags = check_exif(
        exif,
        claimed_time=CLAIM_TIME,
        claimed_place=(31.0, 121.0),
        max_time_gap=timedelta(minutes=30),
    )
    assert [f.code for f in flags] == ["time_far_from_claim"]
    # one degree of latitude is about 111.2 km
    assert distance_m(31.0, 121.0, 32.0, 121.0) == pytest.approx(111_195, rel=1e-3)
