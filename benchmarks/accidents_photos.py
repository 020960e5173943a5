"""Accident photo checks (issue 11 item 5): exact and near-duplicate detection across cases.

    .venv/bin/python benchmarks/accidents_photos.py [--originals 500] [--calibration 200]
        [--seed 11] [--max-fpr 0.01] [--scale 100000]

No real accident photos can be shared, so the set is generated, seeded and photo-like:
procedurally drawn street scenes (sky gradient, buildings with windows, a road with lane
markings in perspective, trees, 1-3 cars with wheels, windows and a number plate with
text, vignetting, sensor noise, a slight blur), saved as JPEG (quality 88-95) at
512-832 px wide (4:3). For every original:

* **exact duplicates**: the same bytes again, and the decoded pixels saved as PNG
  (different bytes, same pixels): goal 100 % detected;
* **near duplicates** (goal: recall ≥ 95 % at a false-positive rate ≤ 1 %), one of each:
  JPEG re-compression at quality 50-90; a crop removing up to 10 % of the width and of the
  height (off-centre); a resize to 50-150 %; a brightness change of ±5-15 %; each saved as
  JPEG at quality 70-90 (the crop, resize and brightness copies are re-compressed too);
* **hard negatives** ("same place, another accident"): the same background drawn from
  the same seed (buildings, road, sky, trees), other cars and plates, the camera moved by
  up to 4 %; and **other scenes**: every pair of different originals (same generator,
  other seed).

The originals are split by index into a **calibration** set (the first ``--calibration``)
and a **test** set (the rest). For each distance (pHash, dHash, wHash alone, and sums) the
threshold is the largest whose false-positive rate on the calibration negatives (hard
negatives and other-scene pairs, each) is ≤ ``--max-fpr``; recall and FPR are then
reported on the test set. The shipped rule (:data:`NEAR_THRESHOLD` on the sum of the
three) is also run through :class:`PhotoIndex` on the test set, as the case service
will: originals added under one case each, every copy and negative queried as another
case. Last, the query time of a :class:`PhotoIndex` holding ``--scale`` stored photos
(random hash blobs; it measures the scan, not the quality). Writes
``benchmarks/results/accidents_photos.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import random
import string
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from rich.console import Console
from rich.progress import track
from rich.table import Table

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.accidents.photos import NEAR_THRESHOLD, PhotoIndex, PhotoInfo, load_photo

RESULTS = Path(__file__).resolve().parent / "results" / "accidents_photos.json"
NEAR_KINDS = ("recompress", "crop", "resize", "brightness")


# ---- the scene generator ------------------------------------------------------------
def _colour(rnd: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return (rnd.randint(lo, hi), rnd.randint(lo, hi), rnd.randint(lo, hi))


def _background(canvas: Image.Image, rnd: random.Random) -> float:
    """Sky, buildings, road, markings, trees; returns the horizon as a fraction of height."""
    w, h = canvas.size
    horizon = rnd.uniform(0.3, 0.5)
    hy = int(h * horizon)
    top, bottom = np.array(_colour(rnd, 90, 220)), np.array(_colour(rnd, 150, 255))
    t = np.linspace(0, 1, hy)[:, None]
    sky = (top * (1 - t) + bottom * t).astype(np.uint8)
    canvas.paste(Image.fromarray(np.repeat(sky[:, None, :], w, axis=1)), (0, 0))
    d = ImageDraw.Draw(canvas)
    x = -rnd.randint(0, 60)
    while x < w:
        bw, bh = rnd.randint(60, 220), rnd.randint(int(h * 0.1), int(h * 0.4))
        colour = _colour(rnd, 60, 200)
        d.rectangle((x, hy - bh, x + bw, hy), fill=colour)
        win = _colour(rnd, 20, 120) if rnd.random() < 0.5 else _colour(rnd, 180, 250)
        for wy in range(hy - bh + 10, hy - 20, rnd.randint(18, 30)):
            for wx in range(x + 8, x + bw - 12, rnd.randint(16, 28)):
                d.rectangle((wx, wy, wx + 8, wy + 10), fill=win)
        x += bw + rnd.randint(0, 30)
    ground = _colour(rnd, 70, 130)
    d.rectangle((0, hy, w, h), fill=ground)
    vx = w * rnd.uniform(0.35, 0.65)
    left, right = -w * rnd.uniform(0.2, 0.6), w * (1 + rnd.uniform(0.2, 0.6))
    grey = rnd.randint(60, 110)
    d.polygon([(vx - 8, hy), (vx + 8, hy), (right, h), (left, h)], fill=(grey, grey, grey + 5))
    lanes = rnd.randint(2, 4)
    for k in range(1, lanes):
        f = k / lanes
        xb = left + (right - left) * f
        yellow = k == lanes // 2 and rnd.random() < 0.5
        colour = (230, 200, 40) if yellow else (235, 235, 235)
        dashes = 14
        for s in range(dashes):
            if s % 2 and not yellow:
                continue
            a, b = s / dashes, (s + 0.6) / dashes
            pts = [(vx + (xb - vx) * q, hy + (h - hy) * q) for q in (a * a, b * b)]
            d.line(pts, fill=colour, width=max(1, int(6 * b)))
    for _ in range(rnd.randint(0, 5)):
        tx = rnd.randint(0, w)
        th = rnd.randint(int(h * 0.1), int(h * 0.3))
        d.rectangle((tx - 4, hy - th // 3, tx + 4, hy + 10), fill=(90, 60, 30))
        d.ellipse((tx - th // 4, hy - th, tx + th // 4, hy - th // 3), fill=_colour(rnd, 20, 120))
    return horizon


def _car(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int, hy: int, main: bool) -> None:
    """A car; the ``main`` one (the photographed vehicle) fills 35-65 % of the width."""
    y = rnd.randint(h - (h - hy) // 4, h - 10) if main else rnd.randint(hy + (h - hy) // 3, h)
    scale = rnd.uniform(0.35, 0.65) if main else 0.1 + 0.3 * (y - hy) / (h - hy)
    cw, ch = int(w * scale), int(w * scale * 0.55)
    x = rnd.randint(-cw // 4, w - 3 * cw // 4)
    body = _colour(rnd)
    d.rounded_rectangle((x, y - ch, x + cw, y - ch // 5), radius=max(2, ch // 6), fill=body)
    d.rectangle((x + cw // 6, y - ch - ch // 2, x + 5 * cw // 6, y - ch), fill=body)
    d.rectangle((x + cw // 5, y - ch - ch // 3, x + 4 * cw // 5, y - ch), fill=(150, 190, 220))
    for wx in (x + cw // 6, x + 5 * cw // 6):
        r = max(3, ch // 4)
        d.ellipse((wx - r, y - r - ch // 5, wx + r, y + r - ch // 5), fill=(20, 20, 20))
    pw, ph = max(12, cw // 4), max(5, ch // 6)
    px, py = x + cw // 2 - pw // 2, y - ch // 2
    blue = rnd.random() < 0.7
    d.rectangle((px, py, px + pw, py + ph), fill=(30, 60, 170) if blue else (240, 200, 30))
    plate = "A" + "".join(rnd.choices(string.ascii_uppercase + string.digits, k=5))
    font = ImageFont.load_default(size=max(6, ph - 1))
    d.text((px + 2, py), plate, fill=(255, 255, 255) if blue else (0, 0, 0), font=font)


def scene(seed_bg: int, seed_fg: int, *, shift: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    """A street scene; the background depends on ``seed_bg`` only, the rest on ``seed_fg``."""
    rnd_bg = random.Random(seed_bg)
    w = rnd_bg.randrange(512, 833, 32)
    h = w * 3 // 4
    cw, chh = int(w * 1.1), int(h * 1.1)  # the camera's view is a window of a wider canvas
    canvas = Image.new("RGB", (cw, chh))
    horizon = _background(canvas, rnd_bg)
    rnd = random.Random(seed_fg * 7919 + 17)
    d = ImageDraw.Draw(canvas)
    for k in range(rnd.randint(1, 3), -1, -1):  # far cars first, the main one last (in front)
        _car(d, rnd, cw, chh, int(chh * horizon), main=k == 0)
    ox = int((cw - w) / 2 + shift[0] * w)
    oy = int((chh - h) / 2 + shift[1] * h)
    img = canvas.crop((ox, oy, ox + w, oy + h)).filter(ImageFilter.BoxBlur(1))
    arr = np.asarray(img, dtype=np.float32)
    xs = ((np.arange(w, dtype=np.float32) - w / 2) / w) ** 2
    ys = ((np.arange(h, dtype=np.float32) - h / 2) / h) ** 2
    arr *= (1 - rnd.uniform(0.2, 0.6) * (ys[:, None] + xs[None, :]))[:, :, None]
    nrng = np.random.default_rng(seed_fg)
    arr += nrng.standard_normal(arr.shape, dtype=np.float32) * rnd.uniform(2, 7)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def near_copy(kind: str, img: Image.Image, rnd: random.Random) -> tuple[bytes, str]:
    """A near duplicate of the decoded original ``img``, and a note of what was done."""
    w, h = img.size
    if kind == "recompress":
        q = rnd.randint(50, 90)
        return jpeg(img, q), f"q{q}"
    if kind == "crop":
        fx, fy = rnd.uniform(0, 0.10), rnd.uniform(0, 0.10)
        lx, ty = rnd.uniform(0, fx), rnd.uniform(0, fy)
        box = (int(w * lx), int(h * ty), int(w * (1 - fx + lx)), int(h * (1 - fy + ty)))
        return jpeg(img.crop(box), rnd.randint(70, 90)), f"crop {fx:.1%}x{fy:.1%}"
    if kind == "resize":
        s = rnd.uniform(0.5, 1.5)
        size = (max(1, int(w * s)), max(1, int(h * s)))
        return jpeg(img.resize(size, Image.Resampling.LANCZOS), rnd.randint(70, 90)), f"x{s:.2f}"
    f = rnd.choice((-1, 1)) * rnd.uniform(0.05, 0.15) + 1
    return jpeg(ImageEnhance.Brightness(img).enhance(f), rnd.randint(70, 90)), f"light {f:.2f}"


# ---- the data set -------------------------------------------------------------------
@dataclass
class Item:
    index: int
    original: PhotoInfo
    original_bytes: bytes
    exact: dict[str, PhotoInfo] = field(default_factory=dict)
    near: dict[str, PhotoInfo] = field(default_factory=dict)
    sibling: PhotoInfo | None = None


def build(
    n: int, seed: int, console: Console
) -> tuple[list[Item], dict[tuple[int, str], int], dict[str, float]]:
    seconds = {"generate": 0.0, "load_photo": 0.0}
    items = []
    wh: dict[tuple[int, str], int] = {}
    for i in track(range(n), description="photos", console=console):
        rnd = random.Random(seed * 1_000_003 + i)
        t = time.perf_counter()
        original = jpeg(scene(seed * 100_000 + i, seed * 100_000 + i), rnd.randint(88, 95))
        decoded = Image.open(io.BytesIO(original)).convert("RGB")
        png = io.BytesIO()
        decoded.save(png, "PNG", compress_level=1)
        shift = (rnd.uniform(-0.04, 0.04), rnd.uniform(-0.04, 0.04))
        sib = scene(seed * 100_000 + i, seed * 100_000 + i + 50_000_000, shift=shift)
        sib_bytes = jpeg(sib, rnd.randint(88, 95))
        copies = {k: near_copy(k, decoded, rnd)[0] for k in NEAR_KINDS}
        t2 = time.perf_counter()
        item = Item(i, load_photo(original), original)
        # load_photo is deterministic (tested), so the re-upload of the same bytes reuses it
        item.exact = {"same_bytes": item.original, "png": load_photo(png.getvalue())}
        item.near = {k: load_photo(v) for k, v in copies.items()}
        item.sibling = load_photo(sib_bytes)
        t3 = time.perf_counter()
        seconds["generate"] += t2 - t
        seconds["load_photo"] += t3 - t2
        wh[(i, "original")] = _whash(original)
        wh[(i, "sibling")] = _whash(sib_bytes)
        for k, v in copies.items():
            wh[(i, k)] = _whash(v)
        items.append(item)
    return items, wh, seconds


# ---- evaluation ---------------------------------------------------------------------
def _whash(data: bytes) -> int:
    """wHash of the same grey base as the shipped hashes, for the comparison only."""
    from safecity.accidents.photos import _bits

    img = Image.open(io.BytesIO(data))
    img.draft("L", (512, 512))  # JPEG DCT scaling: much faster, same for every photo
    grey = img.convert("L").resize((256, 256), Image.Resampling.BOX)
    return _bits(imagehash.whash(grey, image_scale=64))


def _pairwise(a: np.ndarray, b: np.ndarray, aligned: bool) -> np.ndarray:
    """Distances of rows of ``a`` (n, 16, 3) to rows of ``b`` (m, 16, 3) under a candidate
    given as the hash columns to use (already selected) and whether crops are aligned."""
    whole: np.ndarray = np.bitwise_count(a[:, None, 0, :] ^ b[None, :, 0, :]).sum(axis=-1)
    if not aligned:
        return whole
    ab = np.bitwise_count(a[:, None, None, 0, :] ^ b[None, :, 1:, :]).sum(axis=-1).min(axis=-1)
    ba = np.bitwise_count(a[:, None, 1:, :] ^ b[None, :, None, 0, :]).sum(axis=-1).min(axis=-1)
    best: np.ndarray = np.minimum(whole, np.minimum(ab, ba))
    return best


CANDIDATES: dict[str, tuple[tuple[int, ...], bool]] = {
    "pHash": ((0,), False),
    "dHash": ((1,), False),
    "wHash": ((2,), False),
    "pHash+dHash": ((0, 1), False),
    "pHash+dHash+wHash": ((0, 1, 2), False),
    "pHash+dHash+crops (shipped)": ((0, 1), True),
}


def _stack(infos: list[PhotoInfo], wh: list[int]) -> np.ndarray:
    """(n, 16, 3) uint64: [whole, 15 crops] x [pHash, dHash, wHash (whole only, else 0)]."""
    out = np.zeros((len(infos), 16, 3), dtype=np.uint64)
    for i, (info, w) in enumerate(zip(infos, wh, strict=True)):
        for j, h in enumerate([info.hashes, *info.crop_hashes]):
            out[i, j, 0], out[i, j, 1] = h.phash, h.dhash
        out[i, 0, 2] = w
    return out


def distances(items: list[Item], wh: dict[tuple[int, str], int]) -> dict[str, dict[str, Any]]:
    """Per candidate: positive distances per kind, sibling and other-scene negatives."""
    origs = _stack([it.original for it in items], [wh[(it.index, "original")] for it in items])
    sibs = _stack(
        [it.sibling for it in items if it.sibling], [wh[(it.index, "sibling")] for it in items]
    )
    near = {
        k: _stack([it.near[k] for it in items], [wh[(it.index, k)] for it in items])
        for k in NEAR_KINDS
    }
    iu = np.triu_indices(len(items), k=1)
    out: dict[str, dict[str, Any]] = {}
    for name, (cols, aligned) in CANDIDATES.items():
        sel = list(cols)

        def diag(
            a: np.ndarray, b: np.ndarray, sel: list[int] = sel, al: bool = aligned
        ) -> np.ndarray:
            return np.array(
                [
                    _pairwise(a[i : i + 1][..., sel], b[i : i + 1][..., sel], al)[0, 0]
                    for i in range(len(a))
                ]
            )

        out[name] = {
            "positives": {k: diag(origs, v) for k, v in near.items()},
            "siblings": diag(origs, sibs),
            "others": _pairwise(origs[..., sel], origs[..., sel], aligned)[iu],
        }
    return out


def calibrate(d: dict[str, Any], max_fpr: float) -> int:
    """Largest threshold whose FPR on siblings and on other scenes are both ≤ max_fpr."""
    best = -1
    for t in range(0, 193):
        if (d["siblings"] <= t).mean() <= max_fpr and (d["others"] <= t).mean() <= max_fpr:
            best = t
        else:
            break
    return best


def evaluate(d: dict[str, Any], t: int) -> dict[str, Any]:
    recall = {k: float((v <= t).mean()) for k, v in d["positives"].items()}
    hits = sum(int((v <= t).sum()) for v in d["positives"].values())
    total = sum(len(v) for v in d["positives"].values())
    return {
        "threshold": t,
        "recall": round(hits / total, 4),
        "recall_by_kind": {k: round(v, 4) for k, v in recall.items()},
        "fpr_siblings": round(float((d["siblings"] <= t).mean()), 4),
        "fpr_other_scenes": round(float((d["others"] <= t).mean()), 5),
        "sibling_pairs": len(d["siblings"]),
        "other_scene_pairs": len(d["others"]),
    }


def run_index(items: list[Item], threshold: int) -> dict[str, Any]:
    """The shipped path: originals in a PhotoIndex, every copy and sibling queried."""
    index = PhotoIndex(threshold=threshold)
    for it in items:
        index.add(f"o{it.index}", "p", it.original)
    exact_hits = near_hits = near_total = sib_fp = other_fp = queries = 0
    exact_total = 0
    t0 = time.perf_counter()
    for it in items:
        own = f"o{it.index}"
        for kind, info in it.exact.items():
            found = index.matches(f"x{it.index}{kind}", info)
            exact_total += 1
            exact_hits += any(m.case_id == own and m.kind != "near" for m in found)
            other_fp += sum(m.case_id != own for m in found)
            queries += 1
        for info in it.near.values():
            found = index.matches(f"n{it.index}", info)
            near_total += 1
            near_hits += any(m.case_id == own for m in found)
            other_fp += sum(m.case_id != own for m in found)
            queries += 1
        assert it.sibling is not None
        found = index.matches(f"s{it.index}", it.sibling)
        sib_fp += any(m.case_id == own for m in found)
        other_fp += sum(m.case_id != own for m in found)
        queries += 1
    seconds = time.perf_counter() - t0
    n = len(items)
    return {
        "indexed": len(index),
        "queries": queries,
        "ms_per_query": round(1000 * seconds / queries, 3),
        "exact_detected": exact_hits,
        "exact_total": exact_total,
        "exact_rate": round(exact_hits / exact_total, 4),
        "near_recall": round(near_hits / near_total, 4),
        "sibling_fpr": round(sib_fp / n, 4),
        "other_scene_false_matches": other_fp,
        "other_scene_pairs": queries * (n - 1),
    }


def index_scale(n: int, queries: int, seed: int) -> dict[str, Any]:
    """Query time of a PhotoIndex holding ``n`` stored photos (random 256-byte hash blobs)."""
    rng = np.random.default_rng(seed)
    index = PhotoIndex()
    t0 = time.perf_counter()
    for i in range(n):
        index.insert_packed(
            f"c{i}", "p", sha256=f"b{i}", pixel_sha256=f"x{i}", packed=rng.bytes(256)
        )
    fill = time.perf_counter() - t0
    probe = load_photo(jpeg(scene(seed, seed), 90))
    times = []
    for _ in range(queries):
        t = time.perf_counter()
        index.matches("query", probe)
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "indexed": n,
        "fill_s": round(fill, 2),
        "query_ms_mean": round(1000 * sum(times) / len(times), 2),
        "query_ms_p99": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=500)
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-fpr", type=float, default=0.01)
    parser.add_argument("--scale", type=int, default=100_000, help="index size for query time")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    console = Console(width=max(120, Console().width))
    t0 = time.perf_counter()
    items, wh, seconds = build(args.originals, args.seed, console)
    calib, test = items[: args.calibration], items[args.calibration :]
    d_cal, d_test = distances(calib, wh), distances(test, wh)
    candidates = {}
    for name in CANDIDATES:
        t = calibrate(d_cal[name], args.max_fpr)
        candidates[name] = {
            "calibration": evaluate(d_cal[name], t),
            "test": evaluate(d_test[name], t),
        }
    shipped = "pHash+dHash+crops (shipped)"
    calibrated = candidates[shipped]["calibration"]["threshold"]
    index = run_index(test, NEAR_THRESHOLD)
    scale = index_scale(args.scale, 50, args.seed) if args.scale else None
    photos = len(items) * 7  # photos decoded by load_photo: original, PNG, 4 near, sibling
    out_table = Table(width=110, title=f"near duplicates on the test set ({len(test)} originals)")
    for col in ("distance", "threshold", "recall", "crop", "resize", "FPR siblings", "FPR other"):
        out_table.add_column(col, justify="right" if col != "distance" else "left")
    for name, res in candidates.items():
        r = res["test"]
        out_table.add_row(
            name,
            str(r["threshold"]),
            f"{r['recall']:.2%}",
            f"{r['recall_by_kind']['crop']:.2%}",
            f"{r['recall_by_kind']['resize']:.2%}",
            f"{r['fpr_siblings']:.2%}",
            f"{r['fpr_other_scenes']:.3%}",
        )
    console.print(out_table)
    console.print(
        f"PhotoIndex (NEAR_THRESHOLD={NEAR_THRESHOLD}, calibrated {calibrated}): exact "
        f"{index['exact_detected']}/{index['exact_total']}, "
        f"near recall {index['near_recall']:.2%}, "
        f"sibling FPR {index['sibling_fpr']:.2%}, other-scene false matches "
        f"{index['other_scene_false_matches']}/{index['other_scene_pairs']}, "
        f"{index['ms_per_query']} ms/query over {index['indexed']} photos; "
        f"load_photo {1000 * seconds['load_photo'] / (len(items) * 8):.1f} ms/photo"
    )
    if scale:
        console.print(
            f"PhotoIndex with {scale['indexed']:,} photos: {scale['query_ms_mean']} ms/query "
            f"(p99 {scale['query_ms_p99']} ms)"
        )
    if calibrated != NEAR_THRESHOLD:
        console.print(f"[yellow]NEAR_THRESHOLD is {NEAR_THRESHOLD}, calibration says {calibrated}")
    out = {
        "benchmark": "accidents_photos",
        "command": "python benchmarks/accidents_photos.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("safecity", "pillow", "imagehash", "numpy", "scipy", "PyWavelets")
        },
        "setup": {
            "originals": len(items),
            "calibration_originals": len(calib),
            "test_originals": len(test),
            "seed": args.seed,
            "max_fpr": args.max_fpr,
            "per_original": "2 exact (same bytes, PNG of the pixels), 4 near "
            "(recompress q50-90, crop <=10%/axis, resize 50-150%, brightness ±5-15%), 1 sibling",
            "photos_loaded": photos,
            "note": "the same-bytes re-upload reuses the original's PhotoInfo (deterministic)",
        },
        "seconds": {
            "total": round(time.perf_counter() - t0, 1),
            "generate": round(seconds["generate"], 1),
            "load_photo": round(seconds["load_photo"], 1),
            "load_photo_ms_each": round(1000 * seconds["load_photo"] / photos, 2),
        },
        "near_threshold_shipped": NEAR_THRESHOLD,
        "near_threshold_calibrated": calibrated,
        "candidates": candidates,
        "index_test": index,
        "index_scale": scale,
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
