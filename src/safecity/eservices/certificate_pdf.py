"""Printable PDFs: an e-certificate with its ``SC1:`` QR, and an application copy.

The PDF is a convenience for people who want paper; what a verifier trusts is the QR
(a signed, short-lived ``SC1:`` CWT, :mod:`safecity.eservices.credentials.cwt_qr`) or an
SD-JWT presentation — never the printed text.

Fonts (:mod:`safecity.platform.pdf`): with a CJK font, labels are bilingual ("姓名 Name")
and values print as they are. Without one, labels are English, Chinese values are
transliterated to pinyin, and the page says so in a footnote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fpdf.enums import XPos, YPos
from pypinyin import Style, lazy_pinyin

from safecity.eservices.catalogue import Text
from safecity.platform import pdf as pdfkit
from safecity.platform.pdf import FontChoice, choose_font, find_cjk_font, qr_image

__all__ = [
    "CLAIM_LABELS",
    "CertificateView",
    "FontChoice",
    "certificate_lines",
    "choose_font",
    "claim_rows",
    "find_cjk_font",
    "qr_image",
    "render_certificate_pdf",
    "render_document_pdf",
    "romanize_name",
]

CLAIM_LABELS: dict[str, Text] = {
    "family_name": Text("姓", "Family name"),
    "given_name": Text("名", "Given name"),
    "birthdate": Text("出生日期", "Date of birth"),
    "id_number": Text("公民身份号码", "ID number"),
    "address": Text("住址", "Address"),
    "certificate_number": Text("证书编号", "Certificate number"),
}


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


def render_certificate_pdf(view: CertificateView, *, font_path: Path | None = None) -> bytes:
    """The certificate as PDF bytes: title, holder, claims, issuer, dates, number, QR."""
    font = choose_font(font_path)
    title = font.clean(_label(font, view.title))
    pdf = pdfkit.new_pdf(font, title, font.clean(view.issuer))
    pdf.set_font_size(18)
    pdf.multi_cell(0, 10, title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font_size(11)
    pdfkit.rows(pdf, certificate_lines(view, font))
    pdf.ln(4)
    side = 50.0
    if pdf.get_y() + side > pdf.h - 30:
        pdf.add_page()
    pdf.image(qr_image(view.qr_text), x=(pdf.w - side) / 2, y=pdf.get_y(), w=side, h=side)
    pdf.set_y(pdf.get_y() + side + 2)
    pdfkit.footnote(
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
    pdf = pdfkit.new_pdf(font, font.clean(_label(font, title)), "SafeCity")
    pdf.set_font_size(16)
    pdf.multi_cell(0, 9, font.clean(_label(font, title)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font_size(11)
    ref_label = _label(font, Text("申请编号", "Reference"))
    pdfkit.rows(pdf, [(font.clean(ref_label), reference)])
    pdf.ln(2)
    lines = [
        (font.clean(_label(font, lab)), font.clean(val.zh if font.cjk else val.en))
        for lab, val in rows
    ]
    pdfkit.rows(pdf, lines, label_w=80)
    pdfkit.footnote(pdf, font)
    return bytes(pdf.output())
