"""Printable PDFs with fpdf2: font choice for Chinese text, QR images, two-column rows.

Fonts: Chinese needs a CJK font, and none ships with SafeCity (no font is downloaded).
:func:`find_cjk_font` looks at ``SAFECITY_CJK_FONT`` and the usual Debian/Ubuntu paths
(Noto CJK, WenQuanYi, Droid Sans Fallback, AR PL). With one, labels can be bilingual and
values print as they are. Without one, :meth:`FontChoice.clean` transliterates Chinese to
pinyin (pypinyin), any other character the font lacks becomes "?", and :func:`footnote`
says so on the page.
"""

from __future__ import annotations

import io
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import segno
from fontTools.ttLib import TTCollection, TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image
from pypinyin import Style, lazy_pinyin

from safecity.platform.errors import ConfigurationError, InvalidInput

CJK_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
LATIN_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)
FALLBACK_NOTE = "Chinese text shown in pinyin: no CJK font installed (set SAFECITY_CJK_FONT)."
_PUNCT = {"，": ", ", "。": ". ", "、": ", ", "：": ": ", "；": "; ", "（": " (", "）": ") "}
_PUNCT.update({"“": '"', "”": '"', "《": "<", "》": ">", "·": " ", "　": " "})


def find_cjk_font() -> Path | None:
    """A CJK-capable font file on this machine, or None (nothing is downloaded)."""
    env = os.environ.get("SAFECITY_CJK_FONT")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigurationError(f"SAFECITY_CJK_FONT={env} is not a file")
        return path
    return next((Path(p) for p in CJK_CANDIDATES if Path(p).is_file()), None)


@lru_cache(maxsize=8)
def _coverage(path: str) -> frozenset[int]:
    if path.lower().endswith(".ttc"):
        with TTCollection(path) as collection:
            return frozenset(collection.fonts[0].getBestCmap() or {})
    with TTFont(path) as font:
        return frozenset(font.getBestCmap() or {})


@dataclass(frozen=True)
class FontChoice:
    """The font a PDF uses and which characters it can draw."""

    path: Path | None  # None: the core Helvetica font (Latin-1 only)
    cjk: bool

    def covers(self, ch: str) -> bool:
        if self.path is None:
            return ord(ch) < 256
        return ord(ch) in _coverage(str(self.path))

    def clean(self, text: str) -> str:
        """``text`` drawable in this font (pinyin for Han characters when not CJK)."""
        if all(self.covers(ch) for ch in text):
            return text
        out: list[str] = []
        for ch in text:
            if self.covers(ch):
                out.append(ch)
            elif ch in _PUNCT:
                out.append(_PUNCT[ch])
            elif unicodedata.name(ch, "").startswith("CJK UNIFIED"):
                syl = lazy_pinyin(ch, style=Style.NORMAL)[0]
                sep = "" if not out or out[-1].endswith((" ", "(")) else " "
                out.append(sep + syl.capitalize())
            else:
                out.append("?")
        return "".join(out).strip()


def choose_font(font_path: Path | None = None) -> FontChoice:
    """A given font (CJK if it has 中), else a found CJK font, else DejaVu, else Helvetica."""
    path = font_path or find_cjk_font()
    if path is not None:
        return FontChoice(path=path, cjk=ord("中") in _coverage(str(path)))
    latin = next((Path(p) for p in LATIN_CANDIDATES if Path(p).is_file()), None)
    return FontChoice(path=latin, cjk=False)


def qr_image(text: str, *, scale: int = 4) -> Image.Image:
    """The QR of ``text`` as an 8-bit greyscale image (what the PDF embeds)."""
    if not text:
        raise InvalidInput("the QR text is empty")
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


def new_pdf(font: FontChoice, title: str, author: str) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creator("SafeCity")
    pdf.set_auto_page_break(auto=True, margin=15)
    if font.path is not None:
        kwargs: dict[str, Any] = {}
        if str(font.path).lower().endswith(".ttc"):
            kwargs["collection_font_number"] = 0
        pdf.add_font("body", fname=str(font.path), **kwargs)
        pdf.set_font("body", size=11)
    else:
        pdf.set_font("helvetica", size=11)
    pdf.add_page()
    return pdf


def rows(pdf: FPDF, lines: Sequence[tuple[str, str]], *, label_w: float = 60) -> None:
    """Two-column rows; a long label or value wraps and the next row starts below both."""
    for label, value in lines:
        if pdf.get_y() > pdf.h - 30:
            pdf.add_page()
        y0 = pdf.get_y()
        pdf.multi_cell(label_w, 7, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        y_label = pdf.get_y()
        pdf.set_xy(pdf.l_margin + label_w, y0)
        pdf.multi_cell(0, 7, value or "-", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_y(max(pdf.get_y(), y_label))


def footnote(pdf: FPDF, font: FontChoice, extra: str = "") -> None:
    pdf.ln(4)
    pdf.set_font_size(8)
    note = extra if font.cjk else f"{extra} {FALLBACK_NOTE}".strip()
    if note:
        pdf.multi_cell(0, 4, font.clean(note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
