"""Purpose profiles: which claims a verifier of a given kind may see.

A hotel registering a guest needs the name and the last four digits of the ID number,
not the birth date or the address; a roadside police check needs the full ID number.
The holder's wallet presents only a profile's Disclosures (SD-JWT) or asks for a QR
minted for that profile (CWT), and the verifier drops anything beyond the profile and
refuses a presentation that lacks a required claim.

Claim vocabulary of SafeCity e-certificates (all selectively disclosable):
``family_name``, ``given_name``, ``birthdate`` (ISO date), ``id_number`` (resident ID),
``id_last4`` (derived), ``age_over_18`` (derived at issuance), ``address``,
``certificate_number``, ``attributes`` (a certificate type's own fields, e.g. a business
licence's scope). ``vct`` (the certificate type), ``iss``, ``iat``, ``exp`` are always
visible. ``valid_until`` (:data:`PRESENTATION_CLAIMS`) is not issued as a claim: it is the
certificate's expiry, put into a profile's QR (and a presentation's verdict) when the
profile lists it.

Organisation permits (a large-event security permit, a hotel's special-trade permit)
carry no personal claims, only ``certificate_number`` and ``attributes``; their profile
is ``permit-check`` (the organisation, the permit number, its validity and the
permitted activity). A profile may name the ``attributes`` it shows
(:attr:`Profile.attributes`, in order of importance: a QR too large drops the last ones
first); the permit-check profile leaves out the legal representative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from safecity.platform.errors import InvalidInput, NotFound

CLAIMS = (
    "family_name",
    "given_name",
    "birthdate",
    "id_number",
    "id_last4",
    "age_over_18",
    "address",
    "certificate_number",
    "attributes",
)
PRESENTATION_CLAIMS = ("valid_until",)


@dataclass(frozen=True)
class Profile:
    """A verifier purpose: the claims it may see (``required`` ⊆ ``claims``)."""

    name: str
    title_en: str
    title_zh: str
    claims: frozenset[str]
    required: frozenset[str]
    attributes: tuple[str, ...] | None = None
    """The ``attributes`` entries this profile may see, most important first (None: all)."""
    needs_attribute: tuple[str, ...] = ()
    """At least one of these attributes must be present (e.g. the organisation's name)."""

    def filter(self, claims: Mapping[str, Any]) -> dict[str, Any]:
        """Only the claims (and attributes) this profile may see."""
        out = {k: v for k, v in claims.items() if k in self.claims}
        attrs = out.get("attributes")
        if self.attributes is not None and isinstance(attrs, Mapping):
            out["attributes"] = {a: attrs[a] for a in self.attributes if a in attrs}
        return out

    def missing(self, claims: Mapping[str, Any]) -> list[str]:
        lacking = sorted(self.required - set(claims))
        if self.needs_attribute:
            attrs = claims.get("attributes")
            if not isinstance(attrs, Mapping) or not any(
                attrs.get(a) not in (None, "") for a in self.needs_attribute
            ):
                lacking.append(f"attributes.{'|'.join(self.needs_attribute)}")
        return lacking

    def satisfied_by(self, claims: Mapping[str, Any]) -> bool:
        return not self.missing(claims)


def _p(
    name: str,
    en: str,
    zh: str,
    claims: set[str],
    required: set[str] | None = None,
    **extra: Any,
) -> Profile:
    return Profile(
        name,
        en,
        zh,
        frozenset(claims),
        frozenset(claims if required is None else required),
        **extra,
    )


#: Organisation names, then what is permitted, where, when and how much (no personal
#: data); a QR too large leaves out the last ones first.
PERMIT_ATTRIBUTES = (
    "organiser",
    "business_name",
    "event_name",
    "venue",
    "premises_address",
    "event_start",
    "event_end",
    "max_attendance",
    "rooms",
)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _p("hotel", "Hotel check-in", "旅馆住宿登记", {"family_name", "given_name", "id_last4"}),
        _p(
            "roadside-police",
            "Roadside police check",
            "路面警务核查",
            {"family_name", "given_name", "id_number", "birthdate", "certificate_number"},
            {"family_name", "given_name", "id_number"},
        ),
        _p(
            "employer",
            "Employer onboarding",
            "用人单位入职核验",
            {"family_name", "given_name", "certificate_number", "attributes"},
            {"family_name", "given_name"},
        ),
        _p("age-check", "Age check (18+)", "年龄核验（18岁以上）", {"age_over_18"}),
        _p(
            "permit-check",
            "Organisation permit check",
            "单位许可核验",
            {"certificate_number", "attributes", "valid_until"},
            {"certificate_number", "attributes"},
            attributes=PERMIT_ATTRIBUTES,
            needs_attribute=("organiser", "business_name"),
        ),
    )
}

#: Which profile a holder's QR / PDF uses when none is named: the first one the
#: certificate satisfies (a person's certificate: hotel; a permit: permit-check).
DEFAULT_ORDER = ("hotel", "permit-check", "employer", "roadside-police", "age-check")


def default_profile(claims: Mapping[str, Any]) -> Profile:
    """The first profile of :data:`DEFAULT_ORDER` that ``claims`` satisfy."""
    for name in DEFAULT_ORDER:
        if PROFILES[name].satisfied_by(claims):
            return PROFILES[name]
    raise InvalidInput("no purpose profile fits this certificate's claims")


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise NotFound(f"unknown purpose profile {name!r}; known: {known}") from None


def derived_claims(claims: Mapping[str, Any], *, on: date) -> dict[str, Any]:
    """``claims`` plus the derived ``id_last4`` and ``age_over_18`` (age on ``on``)."""
    unknown = sorted(set(claims) - set(CLAIMS))
    if unknown:
        raise InvalidInput(f"unknown certificate claims: {', '.join(unknown)}")
    out = dict(claims)
    id_number = claims.get("id_number")
    if isinstance(id_number, str) and len(id_number) >= 4:
        out["id_last4"] = id_number[-4:]
    birth = claims.get("birthdate")
    if isinstance(birth, str):
        try:
            born = date.fromisoformat(birth)
        except ValueError as exc:
            raise InvalidInput(f"birthdate {birth!r} is not an ISO date") from exc
        age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        out["age_over_18"] = age >= 18
    return out
