"""The signed agreement as a PDF a driver can keep, print or send to an insurer.

It is drawn from the sealed document (:func:`safecity.accidents.signing.sealed_document`):
the facts both drivers signed, the liability decision with the rules that fired (and
their European Accident Statement boxes), the SHA-256 of every photo, how and when each
driver signed, and the platform's Ed25519 seal. The QR carries ``SCACC1:<ref>:<sha256 of
the sealed document>``, so a printout can be matched to the JSON seal, which is what
counts: the PDF is a copy for people, the signature is over the canonical JSON.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from fpdf.enums import XPos, YPos

from safecity.platform import pdf as pdfkit

QR_PREFIX = "SCACC1"


def qr_text(sealed: Mapping[str, Any]) -> str:
    """What the agreement's QR holds: the case and the digest of its sealed document."""
    return f"{QR_PREFIX}:{sealed['document']['summary']['case_ref']}:{sealed['document_sha256']}"


def _when(value: Any) -> str:
    return str(value or "-").replace("T", " ")[:19] + (" UTC" if value else "")


def agreement_lines(sealed: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The sections of the agreement as (heading, [(label, value)]) in drawing order."""
    doc = sealed["document"]
    s = doc["summary"]
    liability = s.get("liability") or {}
    facts = [
        ("Case", s["case_ref"]),
        ("City", s.get("city") or "-"),
        ("Place (WGS84)", f"{s['place']['lat']:.5f}, {s['place']['lng']:.5f}"),
        ("Started (t0)", _when(s.get("started_at"))),
        ("Road cleared (t1)", _when(s.get("road_cleared_at"))),
        ("Sealed (t2)", _when(doc.get("sealed_at"))),
    ]
    parties = []
    for p in s["parties"]:
        role = p["role"]
        verified = p.get("verified") or {}
        mark = dict.fromkeys(verified, " (verified from e-certificate)")
        parties += [
            (f"{role}: plate", (p.get("plate") or "-") + mark.get("plate", "")),
            (f"{role}: licence no.", (p.get("licence_no") or "-") + mark.get("licence_no", "")),
            (
                f"{role}: insurer / policy",
                f"{p.get('insurer') or '-'} / {p.get('policy_no') or '-'}",
            ),
            (f"{role}: own situation", ", ".join(p.get("own_situations") or []) or "-"),
            (f"{role}: other's situation", ", ".join(p.get("other_situations") or []) or "-"),
        ]
    decision = [
        ("Liability", f"A {liability.get('share_a', '-')}% / B {liability.get('share_b', '-')}%"),
        ("Rule table", f"{liability.get('city', '-')} v{liability.get('table_version', '-')}"),
    ]
    for fired in liability.get("fired") or []:
        boxes = ", ".join(str(b) for b in fired.get("eas") or [])
        label = f"{fired['party']}: rule {fired['rule_id']}"
        note = " (outweighed)" if fired.get("outweighed") else ""
        decision.append((label, f"{fired['title_en']} - EAS box {boxes or '-'}{note}"))
    evidence = [(e["position"], e["sha256"]) for e in s.get("evidence") or []]
    signatures = [
        (f"Driver {sig['role']}", f"{sig['method']} at {_when(sig['signed_at'])}")
        for sig in doc.get("signatures") or []
    ]
    seal = [
        ("Document SHA-256", sealed["document_sha256"]),
        ("Algorithm", sealed["alg"]),
        ("Signature", "\n".join(textwrap.wrap(sealed["signature"], 64))),
        ("Public key", sealed["public_key"]),
    ]
    return [
        ("The accident", facts),
        ("The drivers", parties),
        ("Liability decision", decision),
        ("Photos (SHA-256)", evidence),
        ("Signatures", signatures),
        ("Platform seal (Ed25519)", seal),
    ]


def render_agreement_pdf(sealed: Mapping[str, Any]) -> bytes:
    """The agreement as PDF bytes (A4; Chinese values in pinyin without a CJK font)."""
    font = pdfkit.choose_font()
    ref = sealed["document"]["summary"]["case_ref"]
    title = "快处快赔协议书 Quick accident agreement" if font.cjk else "Quick accident agreement"
    pdf = pdfkit.new_pdf(font, font.clean(title), "SafeCity")
    pdf.set_font_size(16)
    pdf.multi_cell(0, 9, font.clean(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font_size(10)
    for heading, lines in agreement_lines(sealed):
        pdf.ln(3)
        pdf.set_font_size(12)
        pdf.multi_cell(0, 7, heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font_size(9)
        cleaned = [(font.clean(label), font.clean(value)) for label, value in lines]
        pdfkit.rows(pdf, cleaned, label_w=50)
    side = 40.0
    if pdf.get_y() + side > pdf.h - 30:
        pdf.add_page()
    pdf.ln(2)
    y = pdf.get_y()
    pdf.image(pdfkit.qr_image(qr_text(sealed)), x=pdf.w - pdf.r_margin - side, y=y, w=side)
    pdf.set_y(y + side + 2)
    pdfkit.footnote(
        pdf,
        font,
        f"Case {ref}. This PDF is a copy for people; what counts is the sealed JSON "
        "document and its Ed25519 signature over its canonical form.",
    )
    return bytes(pdf.output())
