"""Printable PDFs: an e-certificate with its ``SC1:`` QR, and an application copy.

The PDF is a convenience for people who want paper; what a verifier trusts is the QR
(a signed, short-lived ``SC1:`` CWT, :mod:`safecity.eservices.credentials.cwt_qr`) or an
SD-JWT presentation — never the printed text.

Fonts: Chinese needs a CJK font, and none ships with SafeCity (no font is downloaded).
:func:`find_cjk_font` looks at ``SAFECITY_CJK_FONT`` and the usual Debian/Ubuntu paths
(Noto CJK, WenQuanYi, Droid Sans Fallback, AR PL). With one, labels are bilingual
("姓名 Name") and values print as they are. Without one, labels are English, Chinese
values are transliterated to pinyin (pypinyin), any other character the font lacks
becomes "?", and the page says so in a footnote.
"""

from __future__ import annotations

import io
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import segno
from fontTools.ttLib import TTCollection, TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image
from pypinyin import Style, lazy_pinyin

from safecity.eservices.catalogue import Text
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
CLAIM_LABELS: dict[str, Text] = {
    "family_name": Text("姓", "Family name"),
    "given_name": Text("名", "Given name"),
    "birthdate": Text("出生日期", "Date of birth"),
    "id_number": Text("公民身份号码", "ID number"),
    "address": Text("住址", "Address"),
    "certificate_number": Text("证书编号", "Certificate number"),
}
_PUNCT = {"，": ", ", "。": ". ", "、": ", ", "：": ": ", "；": "; ", "（": " (", "）": ") "}
_PUNCT.update({"“": '"', "”": '"', "《": "<", "》": ">", "·": " ", "　": " "})


@dataclass(frozen=True)
class CertificateView:
    """What the printed certificate shows."""

    title: Text
    holder_name: str
    certificate_number: str
    issuer: str
    issued_on: date
    valid_until: date | None
    qr_text: str
    rows: Sequence[tuple[Text, str]] = field(default_factory=tuple)
    holder_name_latin: str | None = None  # e.g. from the passport; else romanised


def romanize_name(name: str) -> str:
    """ "王小明" → "WANG Xiaoming" (first character as the family name; pinyin, no tones).

    Compound family names (欧阳…) are not detected: pass ``holder_name_latin`` instead.
    """
    syllables = lazy_pinyin(name, style=Style.NORMAL)
    if len(syllables) < 2 or not all(s.isascii() for s in syllables):
        return name
    return f"{syllables[0].upper()} {''.join(syllables[1:]).capitalize()}"


def claim_rows(claims: Mapping[str, Any], skip: Sequence[str] = ()) -> list[tuple[Text, str]]:
    """Rows for a certificate's claims (``attributes`` flattened; derived ones dropped)."""
    rows: list[tuple[Text, str]] = []
    for key, value in claims.items():
        if key in skip or key in ("id_last4", "age_over_18"):
            continue
        if key == "attributes" and isinstance(value, Mapping):
            for akey, aval in value.items():
                label = str(akey).replace("_", " ").capitalize()
                rows.append((Text(label, label), str(aval)))
            continue
        rows.append(
            (CLAIM_LABELS.get(key, Text(key, key.replace("_", " ").capitalize())), str(value))
        )
    return rows


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


def _label(font: FontChoice, text: Text) -> str:
    return f"{text.zh} {text.en}" if font.cjk else text.en


def certificate_lines(view: CertificateView, font: FontChoice) -> list[tuple[str, str]]:
    """The (label, value) lines of the certificate as they will be drawn."""
    holder = view.holder_name
    if not all(font.covers(ch) for ch in holder):
        holder = view.holder_name_latin or romanize_name(holder)
    base = [
        (Text("持证人", "Holder"), holder),
        (Text("证书编号", "Certificate number"), view.certificate_number),
        *[r for r in view.rows if r[0].en != "Certificate number"],
        (Text("签发机关", "Issuer"), view.issuer),
        (Text("签发日期", "Issued on"), view.issued_on.isoformat()),
    ]
    if view.valid_until is not None:
        base.append((Text("有效期至", "Valid until"), view.valid_until.isoformat()))
    return [(font.clean(_label(font, label)), font.clean(value)) for label, value in base]


def _new_pdf(font: FontChoice, title: str, author: str) -> FPDF:
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


def _rows(pdf: FPDF, lines: Sequence[tuple[str, str]], *, label_w: float = 60) -> None:
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


def _footnote(pdf: FPDF, font: FontChoice, extra: str = "") -> None:
    pdf.ln(4)
    pdf.set_font_size(8)
    note = extra if font.cjk else f"{extra} {FALLBACK_NOTE}".strip()
    if note:
        pdf.multi_cell(0, 4, font.clean(note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_certificate_pdf(view: CertificateView, *, font_path: Path | None = None) -> bytes:
    """The certificate as PDF bytes: title, holder, claims, issuer, dates, number, QR."""
    font = choose_font(font_path)
    title = font.clean(_label(font, view.title))
    pdf = _new_pdf(font, title, font.clean(view.issuer))
    pdf.set_font_size(18)
    pdf.multi_cell(0, 10, title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font_size(11)
    _rows(pdf, certificate_lines(view, font))
    pdf.ln(4)
    side = 50.0
    if pdf.get_y() + side > pdf.h - 30:
        pdf.add_page()
    pdf.image(qr_image(view.qr_text), x=(pdf.w - side) / 2, y=pdf.get_y(), w=side, h=side)
    pdf.set_y(pdf.get_y() + side + 2)
    _footnote(
        pdf,
        font,
        "Scan the QR with the SafeCity verifier; the printed text alone proves nothing."
        if not font.cjk
        else "请使用核验程序扫描二维码核验；打印文字本身不具证明效力。",
    )
    return bytes(pdf.output())


def render_document_pdf(
    title: Text,
    reference: str,
    rows: Sequence[tuple[Text, Text]],
    *,
    font_path: Path | None = None,
) -> bytes:
    """A plain PDF copy of an application: title, reference, (label, answer) rows.

    Answers are given in both languages: the Chinese text with a CJK font, else the
    English text (option labels, Yes/No), transliterated where it is free Chinese text.
    """
    font = choose_font(font_path)
    pdf = _new_pdf(font, font.clean(_label(font, title)), "SafeCity")
    pdf.set_font_size(16)
    pdf.multi_cell(0, 9, font.clean(_label(font, title)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font_size(11)
    ref_label = _label(font, Text("申请编号", "Reference"))
    _rows(pdf, [(font.clean(ref_label), reference)])
    pdf.ln(2)
    lines = [
        (font.clean(_label(font, lab)), font.clean(val.zh if font.cjk else val.en))
        for lab, val in rows
    ]
    _rows(pdf, lines, label_w=80)
    _footnote(pdf, font)
    return bytes(pdf.output())
