"""Registered short aliases that keep the ``SC1:`` offline QR small.

A QR has room for about 260 bytes before base45, and a 60-character ``vct`` URI, a
15-character profile name and a 35-character status-list URI ate more than a third of
it. The compact QR form (:mod:`.cwt_qr`) therefore writes

* the certificate type as a small integer from :data:`VCT_ALIASES` (the map is also
  published in the issuer metadata, ``GET /.well-known/jwt-vc-issuer``, and in every
  offline trust bundle, so a verifier expands the alias with the issuer's own, signed,
  table);
* the purpose profile as a small integer from :data:`PROFILE_IDS`;
* the status-list reference as ``[n, idx]`` when the list URI is ``{iss}/status/{n}``;
* the names inside ``attributes`` as integers from :data:`ATTRIBUTE_IDS`.

Aliases are **registered**: a number, once given out, is never reused for another type
or profile (append new ones at the end). A vct without an alias is written out in full,
and verifiers keep accepting the long form (QRs minted before the aliases existed).
"""

from __future__ import annotations

from collections.abc import Mapping

VCT_BASE = "https://safecity.example/vct/"

#: alias → full vct URI (never renumber; append only).
VCT_ALIASES: dict[int, str] = {
    n: VCT_BASE + t
    for n, t in {
        1: "household-registration-proof",
        2: "no-criminal-record-certificate",
        3: "residence-permit",
        4: "residence-permit-endorsement",
        5: "ordinary-passport-issuance",
        6: "hk-macao-endorsement",
        7: "driving-licence",
        8: "vehicle-registration-certificate",
        9: "large-event-security-permit",
        10: "special-trade-permit-hotel",
        11: "foreign-work-permit",
        12: "foreign-residence-permit",
    }.items()
}

#: id → purpose profile name (never renumber; append only).
PROFILE_IDS: dict[int, str] = {
    1: "hotel",
    2: "roadside-police",
    3: "employer",
    4: "age-check",
    5: "permit-check",
}
PROFILE_NUMBERS: dict[str, int] = {v: k for k, v in PROFILE_IDS.items()}

#: id → ``attributes`` entry name, for claim-key compression inside the QR's
#: ``attributes`` map (never renumber; append only; names without an id stay text).
ATTRIBUTE_IDS: dict[int, str] = dict(
    enumerate(
        (
            "registration_status",
            "registered_since",
            "purpose",
            "result",
            "query_scope",
            "permit_city",
            "first_issued",
            "endorsed_until",
            "document_number",
            "valid_until",
            "region",
            "endorsement_type",
            "entries",
            "licence_class",
            "valid_from",
            "plate_number",
            "vin_last6",
            "organiser",
            "event_name",
            "venue",
            "event_start",
            "event_end",
            "max_attendance",
            "business_name",
            "premises_address",
            "legal_representative",
            "rooms",
            "nationality",
            "passport_number",
            "employer",
            "position",
            "residence_purpose",
        ),
        start=1,
    )
)
ATTRIBUTE_NUMBERS: dict[str, int] = {v: k for k, v in ATTRIBUTE_IDS.items()}


def vct_numbers(aliases: Mapping[int, str] | None = None) -> dict[str, int]:
    """vct URI → alias."""
    return {v: k for k, v in (VCT_ALIASES if aliases is None else aliases).items()}


def aliases_json(aliases: Mapping[int, str] | None = None) -> dict[str, str]:
    """The alias table for JSON publication (keys as strings)."""
    return {str(k): v for k, v in sorted((VCT_ALIASES if aliases is None else aliases).items())}


def aliases_from_json(doc: object) -> dict[int, str]:
    """Parse a published alias table; anything malformed is skipped (the built-in table
    is then used for it)."""
    out: dict[int, str] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(key, str) and key.isdigit() and isinstance(value, str):
                out[int(key)] = value
    return out
