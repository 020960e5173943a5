"""Certificate PDF: a real PDF, the embedded QR decodes, the no-CJK-font fallback."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import zxingcpp

from safecity.eservices import certificate_pdf as cp
from safecity.eservices.catalogue import Text
from safecity.eservices.certificate_pdf import (
    CertificateView,
    FontChoice,
    certificate_lines,
    choose_font,
    claim_rows,
    qr_image,
    render_certificate_pdf,
    render_document_pdf,
    romanize_name,
)
from safecity.eservices.credentials import cwt_qr
from safecity.eservices.credentials.keys import KeySet, SigningKey
from safecity.eservices.forms import copy_pdf, load_definition, start_draft
from safecity.platform import pdf as pdfkit
from safecity.platform.errors import ConfigurationError, InvalidInput
from tests.pdf_images import embedded_images

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
KEY = SigningKey.generate("Ed25519")
QR = cwt_qr.issue_qr(
    key=KEY,
    issuer="https://safecity.example",
    vct="https://safecity.example/vct/no-criminal-record-certificate",
    profile="hotel",
    claims={"family_name": "王", "given_name": "小明", "id_last4": "123X"},
    now=NOW,
    status=("https://safecity.example/status/1", 42),
)
CLAIMS = {
    "family_name": "王",
    "given_name": "小明",
    "id_number": "11010519900501123X",
    "certificate_number": "WFZ-2026-000123",
    "id_last4": "123X",
    "attributes": {"result": "no_record", "purpose": "就业"},
}
VIEW = CertificateView(
    title=Text("无犯罪记录证明", "No-criminal-record certificate"),
    holder_name="王小明",
    certificate_number="WFZ-2026-000123",
    issuer="北京市公安局西城分局",
    issued_on=date(2026, 11, 26),
    valid_until=date(2027, 2, 24),
    qr_text=QR,
    rows=claim_rows(CLAIMS),
)
HELVETICA = FontChoice(path=None, cjk=False)


def test_pdf_bytes_and_embedded_qr_decodes() -> None:
    pdf = render_certificate_pdf(VIEW)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    images = embedded_images(pdf)
    assert len(images) == 1
    decoded = zxingcpp.read_barcodes(images[0])
    assert [d.text for d in decoded] == [QR]
    verified = cwt_qr.verify_qr(decoded[0].text, KeySet([KEY.public]))
    assert verified.claims["family_name"] == "王"


def test_same_qr_rendered_as_image_decodes() -> None:
    decoded = zxingcpp.read_barcodes(qr_image(QR))
    assert decoded[0].text == QR
    assert decoded[0].format == zxingcpp.BarcodeFormat.QRCode
    with pytest.raises(InvalidInput):
        qr_image("")


def test_lines_without_cjk_font_are_english_and_pinyin() -> None:
    lines = dict(certificate_lines(VIEW, HELVETICA))
    assert lines["Holder"] == "WANG Xiaoming"
    assert lines["Family name"] == "Wang"
    assert lines["Purpose"] == "Jiu Ye"
    assert lines["Issuer"] == "Bei Jing Shi Gong An Ju Xi Cheng Fen Ju"
    assert lines["Valid until"] == "2027-02-24"
    assert "Id last4" not in lines  # derived claims are not printed
    for label, value in lines.items():
        assert all(ord(c) < 256 for c in label + value)
    assert HELVETICA.clean("证明（复印件）— x") == "Zheng Ming (Fu Yin Jian) ? x"


def test_holder_latin_name_wins() -> None:
    view = CertificateView(**{**VIEW.__dict__, "holder_name_latin": "OUYANG Xiaoming"})
    assert dict(certificate_lines(view, HELVETICA))["Holder"] == "OUYANG Xiaoming"
    assert romanize_name("王小明") == "WANG Xiaoming"
    assert romanize_name("Claire") == "Claire"


def test_core_font_fallback_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdfkit, "LATIN_CANDIDATES", ())
    monkeypatch.setattr(pdfkit, "CJK_CANDIDATES", ())
    monkeypatch.delenv("SAFECITY_CJK_FONT", raising=False)
    assert choose_font() == HELVETICA
    pdf = render_certificate_pdf(VIEW)
    assert pdf.startswith(b"%PDF-")
    assert b"WANG Xiaoming" in zlib.decompress(_first_content_stream(pdf))
    assert len(embedded_images(pdf)) == 1


def _first_content_stream(pdf: bytes) -> bytes:
    m = re.search(rb"/Filter /FlateDecode\n/Length (\d+)\n>>\nstream\n", pdf)
    assert m is not None
    return pdf[m.end() : m.end() + int(m[1])]


def test_font_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAFECITY_CJK_FONT", str(tmp_path / "missing.ttf"))
    with pytest.raises(ConfigurationError, match="SAFECITY_CJK_FONT"):
        choose_font()
    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if dejavu.is_file():
        monkeypatch.delenv("SAFECITY_CJK_FONT")
        font = choose_font(dejavu)
        assert font == FontChoice(path=dejavu, cjk=False)
        assert font.clean("Ǎ é 王") == "Ǎ é Wang"


def test_bilingual_labels_when_the_font_has_chinese() -> None:
    # DejaVu stands in for a CJK font: labels are bilingual; glyphs it lacks are romanised
    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    font = FontChoice(path=dejavu if dejavu.is_file() else None, cjk=True)
    labels = [label for label, _ in certificate_lines(VIEW, font)]
    assert labels[0] == "Chi Zheng Ren Holder"
    assert "Qian Fa Ji Guan Issuer" in labels


@pytest.mark.skipif(cp.find_cjk_font() is None, reason="no CJK font installed on this machine")
def test_with_a_cjk_font() -> None:  # pragma: no cover - depends on the machine
    font = choose_font()
    assert font.cjk
    lines = dict(certificate_lines(VIEW, font))
    assert lines["持证人 Holder"] == "王小明"
    assert render_certificate_pdf(VIEW).startswith(b"%PDF-")


def test_application_copy_pdf() -> None:
    form = load_definition("no-criminal-record")
    draft = start_draft(form, now=NOW, citizen_record={"name": "王小明", "phone": "13800138000"})
    draft.answers.update({"purpose": "visa", "declaration": True})
    pdf = copy_pdf(form, draft)
    assert pdf.startswith(b"%PDF-")
    rows = [(Text("用途", "Purpose"), Text("签证", "Visa"))]
    assert render_document_pdf(form.title, draft.reference, rows).startswith(b"%PDF-")
