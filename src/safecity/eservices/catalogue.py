"""The 一网通办 service catalogue: what a citizen can apply for, and what it takes.

Loaded from :file:`catalogue.yaml` (or a folder of YAML files with the same top-level
keys, merged) and validated in full before anything uses it, so a bad edit fails at
start-up with one clear :class:`~safecity.platform.errors.InvalidInput` naming the item
and the field — unknown material source, duplicate code, non-positive deadline, a
single-window item naming fewer than two departments, a certificate claim the
credential core does not know.

Each :class:`ServiceItem` names its legal basis, type (approval / service), departments,
materials (``pulled`` from an existing e-licence or record, or ``uploaded`` with allowed
content types), working-day deadline (for :mod:`safecity.eservices.workdays`), the
events that pause the clock, its form definition and the e-certificate(s) it outputs
(:class:`CertificateSpec`, whose :meth:`~CertificateSpec.claims_for` builds the claims for
:func:`safecity.eservices.credentials.issue_certificate`). A *single-window* item
(一窗通办) fans out to several departments (:attr:`ServiceItem.parts`) and hands the
applicant every result together.

:func:`materials_cut` gives the issue's "materials cut" metric: the share of materials
pulled instead of uploaded, per item and overall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from safecity.eservices.credentials.profiles import CLAIMS
from safecity.platform.blobs import DEFAULT_TYPES
from safecity.platform.errors import InvalidInput, NotFound

ItemType = Literal["approval", "service"]
Source = Literal["pulled", "uploaded"]
DERIVED_CLAIMS = frozenset({"id_last4", "age_over_18"})  # added by issue_certificate


@dataclass(frozen=True)
class Text:
    """A bilingual label."""

    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True)
class PauseEvent:
    """An event that stops the clock, and why it may."""

    name: Text
    basis: str


@dataclass(frozen=True)
class LegalBasis:
    title: Text
    article: str = ""  # left empty unless we are sure of the article number


@dataclass(frozen=True)
class Deadline:
    workdays: int
    basis: Literal["statute", "commitment"]
    source: str


@dataclass(frozen=True)
class Material:
    code: str
    name: Text
    source: Source
    pulled_from: str | None  # a key of Catalogue.sources when source == "pulled"
    accept: tuple[str, ...]  # allowed content types when source == "uploaded"
    required: bool
    department: str | None  # the part that needs it (single-window items), else all


@dataclass(frozen=True)
class CertificateSpec:
    """An e-certificate type an item outputs, and the claims it carries."""

    type: str
    vct: str
    title: Text
    issued_by: str
    valid_days: int
    claims: tuple[str, ...]
    attributes: tuple[str, ...]

    def claims_for(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Claims for ``issue_certificate`` from a flat mapping of values.

        Top-level claims come from ``values[claim]``; each attribute from
        ``values[attribute]`` into ``claims["attributes"]``. Every listed claim and
        attribute is required (derived claims excepted: the credential core adds them).
        """
        out: dict[str, Any] = {}
        missing: list[str] = []
        for claim in self.claims:
            if claim in DERIVED_CLAIMS or claim == "attributes":
                continue
            if values.get(claim) in (None, ""):
                missing.append(claim)
            else:
                out[claim] = values[claim]
        if self.attributes:
            attrs = {a: values.get(a) for a in self.attributes}
            missing += [a for a, v in attrs.items() if v in (None, "")]
            out["attributes"] = attrs
        if missing:
            raise InvalidInput(f"certificate {self.type}: missing {', '.join(missing)}")
        return out


@dataclass(frozen=True)
class Part:
    """One department's share of a single-window item."""

    department: str
    task: Text
    deadline_workdays: int
    certificate: str


@dataclass(frozen=True)
class ServiceItem:
    code: str
    name: Text
    type: ItemType
    departments: tuple[str, ...]
    legal_basis: tuple[LegalBasis, ...]
    deadline: Deadline
    pauses: tuple[str, ...]
    form: str
    materials: tuple[Material, ...]
    certificates: tuple[CertificateSpec, ...]
    single_window: bool = False
    parts: tuple[Part, ...] = ()
    delivery: Literal["together", "separate"] = "separate"

    def certificate(self, type_: str) -> CertificateSpec:
        for cert in self.certificates:
            if cert.type == type_:
                return cert
        raise NotFound(f"item {self.code} outputs no certificate {type_!r}")


@dataclass(frozen=True)
class Catalogue:
    items: dict[str, ServiceItem]
    departments: dict[str, Text]
    sources: dict[str, Text]
    pause_events: dict[str, PauseEvent]

    def get(self, code: str) -> ServiceItem:
        try:
            return self.items[code]
        except KeyError:
            raise NotFound(f"no catalogue item {code!r}") from None


@dataclass(frozen=True)
class MaterialsShare:
    pulled: int
    uploaded: int

    @property
    def total(self) -> int:
        return self.pulled + self.uploaded

    @property
    def share_pulled(self) -> float:
        return self.pulled / self.total if self.total else 0.0


@dataclass(frozen=True)
class MaterialsCut:
    items: dict[str, MaterialsShare]
    overall: MaterialsShare


def materials_cut(catalogue: Catalogue, *, required_only: bool = False) -> MaterialsCut:
    """Materials pulled vs uploaded, per item and overall (the "materials cut" metric)."""
    per: dict[str, MaterialsShare] = {}
    for code, item in catalogue.items.items():
        mats = [m for m in item.materials if m.required or not required_only]
        pulled = sum(m.source == "pulled" for m in mats)
        per[code] = MaterialsShare(pulled=pulled, uploaded=len(mats) - pulled)
    overall = MaterialsShare(
        pulled=sum(s.pulled for s in per.values()),
        uploaded=sum(s.uploaded for s in per.values()),
    )
    return MaterialsCut(items=per, overall=overall)


# ---------------------------------------------------------------- parsing & validation


class _Ctx:
    """Field access with error messages that say where the problem is."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, msg: str) -> InvalidInput:
        return InvalidInput(f"catalogue {self.where}: {msg}")

    def mapping(self, doc: Any, key: str) -> dict[str, Any]:
        val = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(val, dict):
            raise self.fail(f"{key!r} must be a mapping")
        return val

    def seq(self, doc: dict[str, Any], key: str, *, default: list[Any] | None = None) -> list[Any]:
        val = doc.get(key, default)
        if not isinstance(val, list):
            raise self.fail(f"{key!r} must be a list")
        return val

    def string(self, doc: dict[str, Any], key: str, *, default: str | None = None) -> str:
        val = doc.get(key, default)
        if not isinstance(val, str) or not val.strip():
            raise self.fail(f"{key!r} must be a non-empty string")
        return val

    def text(self, doc: Any) -> Text:
        if not isinstance(doc, dict):
            raise self.fail("a label must be a mapping with zh and en")
        return Text(zh=self.string(doc, "zh"), en=self.string(doc, "en"))

    def choice(self, doc: dict[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
        val = doc.get(key, default)
        if val not in options:
            raise self.fail(f"{key!r} must be one of {', '.join(options)}, got {val!r}")
        return str(val)

    def positive(self, val: Any, what: str) -> int:
        if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise self.fail(f"{what} must be a positive whole number of working days, got {val!r}")
        return val


def _material(
    doc: Any, ctx: _Ctx, cat: dict[str, dict[str, Text]], depts: tuple[str, ...]
) -> Material:
    if not isinstance(doc, dict):
        raise ctx.fail("each material must be a mapping")
    code = ctx.string(doc, "code")
    mctx = _Ctx(f"{ctx.where} material {code}")
    source = mctx.choice(doc, "source", ("pulled", "uploaded"), "")
    pulled_from: str | None = None
    accept: tuple[str, ...] = ()
    if source == "pulled":
        pulled_from = mctx.string(doc, "from")
        if pulled_from not in cat["sources"]:
            raise mctx.fail(f"unknown material source {pulled_from!r} (not in sources)")
    else:
        accept = tuple(mctx.seq(doc, "accept"))
        bad = [t for t in accept if t not in DEFAULT_TYPES]
        if not accept or bad:
            raise mctx.fail(f"accept must list types from {sorted(DEFAULT_TYPES)}, got {accept}")
    dept = doc.get("department")
    if dept is not None and dept not in depts:
        raise mctx.fail(f"department {dept!r} is not one of the item's departments")
    return Material(
        code=code,
        name=Text(zh=mctx.string(doc, "zh"), en=mctx.string(doc, "en")),
        source=source,  # type: ignore[arg-type]
        pulled_from=pulled_from,
        accept=accept,
        required=bool(doc.get("required", True)),
        department=dept,
    )


def _certificate(doc: Any, ctx: _Ctx, vct_base: str, depts: tuple[str, ...]) -> CertificateSpec:
    if not isinstance(doc, dict):
        raise ctx.fail("each certificate must be a mapping")
    type_ = ctx.string(doc, "type")
    cctx = _Ctx(f"{ctx.where} certificate {type_}")
    claims = tuple(cctx.seq(doc, "claims"))
    unknown = [c for c in claims if c not in CLAIMS]
    if unknown or not claims:
        raise cctx.fail(f"unknown claims {unknown} (known: {', '.join(CLAIMS)})")
    attributes = tuple(str(a) for a in cctx.seq(doc, "attributes", default=[]))
    if attributes and "attributes" not in claims:
        raise cctx.fail("lists attributes but not the 'attributes' claim")
    issued_by = cctx.string(doc, "issued_by")
    if issued_by not in depts:
        raise cctx.fail(f"issued_by {issued_by!r} is not one of the item's departments")
    valid = doc.get("valid_days")
    if isinstance(valid, bool) or not isinstance(valid, int) or valid <= 0:
        raise cctx.fail(f"valid_days must be a positive number of days, got {valid!r}")
    return CertificateSpec(
        type=type_,
        vct=str(doc.get("vct") or vct_base + type_),
        title=Text(zh=cctx.string(doc, "zh"), en=cctx.string(doc, "en")),
        issued_by=issued_by,
        valid_days=valid,
        claims=claims,
        attributes=attributes,
    )


def _item(doc: Any, cat: dict[str, dict[str, Text]], vct_base: str) -> ServiceItem:
    if not isinstance(doc, dict):
        raise InvalidInput("catalogue: each item must be a mapping")
    code = _Ctx("item").string(doc, "code")
    ctx = _Ctx(f"item {code}")
    depts = tuple(ctx.seq(doc, "departments"))
    unknown = [d for d in depts if d not in cat["departments"]]
    if unknown or not depts:
        raise ctx.fail(f"unknown departments {unknown}")
    if len(set(depts)) != len(depts):
        raise ctx.fail("a department is listed twice")
    single = bool(doc.get("single_window", False))
    if single and len(depts) < 2:
        raise ctx.fail("a single-window item must name at least two departments")
    if not single and len(depts) != 1:
        raise ctx.fail("an item with several departments must be marked single_window")
    dl = ctx.mapping(doc, "deadline")
    deadline = Deadline(
        workdays=ctx.positive(dl.get("workdays"), "deadline.workdays"),
        basis=ctx.choice(dl, "basis", ("statute", "commitment"), ""),  # type: ignore[arg-type]
        source=ctx.string(dl, "source"),
    )
    pauses = tuple(ctx.seq(doc, "pauses", default=[]))
    bad_pauses = [p for p in pauses if p not in cat["pause_events"]]
    if bad_pauses:
        raise ctx.fail(f"unknown pause events {bad_pauses}")
    basis = tuple(
        LegalBasis(title=ctx.text(b), article=str(b.get("article", "")))
        for b in ctx.seq(doc, "legal_basis")
    )
    if not basis:
        raise ctx.fail("legal_basis must name at least one law or regulation")
    materials = tuple(_material(m, ctx, cat, depts) for m in ctx.seq(doc, "materials"))
    codes = [m.code for m in materials]
    if len(set(codes)) != len(codes):
        raise ctx.fail("duplicate material codes")
    certs = tuple(_certificate(c, ctx, vct_base, depts) for c in ctx.seq(doc, "certificates"))
    if not certs:
        raise ctx.fail("an item must output at least one certificate")
    parts: list[Part] = []
    for p in ctx.seq(doc, "parts", default=[]):
        parts.append(
            Part(
                department=ctx.string(p, "department"),
                task=ctx.text(p),
                deadline_workdays=ctx.positive(p.get("deadline_workdays"), "part deadline"),
                certificate=ctx.string(p, "certificate"),
            )
        )
    if single:
        if sorted(p.department for p in parts) != sorted(depts):
            raise ctx.fail("a single-window item needs exactly one part per department")
        for part in parts:
            cert = next((c for c in certs if c.type == part.certificate), None)
            if cert is None or cert.issued_by != part.department:
                raise ctx.fail(f"part {part.department} must name a certificate it issues")
            if part.deadline_workdays > deadline.workdays:
                raise ctx.fail(f"part {part.department}'s deadline exceeds the item's deadline")
    elif parts:
        raise ctx.fail("only single-window items have parts")
    return ServiceItem(
        code=code,
        name=ctx.text(ctx.mapping(doc, "name")),
        type=ctx.choice(doc, "type", ("approval", "service"), ""),  # type: ignore[arg-type]
        departments=depts,
        legal_basis=basis,
        deadline=deadline,
        pauses=pauses,
        form=ctx.string(doc, "form", default="generic"),
        materials=materials,
        certificates=certs,
        single_window=single,
        parts=tuple(parts),
        delivery=ctx.choice(doc, "delivery", ("together", "separate"), "separate"),  # type: ignore[arg-type]
    )


def parse_catalogue(doc: Any) -> Catalogue:
    """Validate a parsed catalogue document and build the :class:`Catalogue`."""
    ctx = _Ctx("document")
    if not isinstance(doc, dict):
        raise ctx.fail("the top level must be a mapping")
    cat = {
        key: {str(k): ctx.text(v) for k, v in ctx.mapping(doc, key).items()}
        for key in ("departments", "sources", "pause_events")
    }
    pause_events = {
        k: PauseEvent(name=cat["pause_events"][k], basis=str(v.get("basis", "")))
        for k, v in ctx.mapping(doc, "pause_events").items()
    }
    vct_base = ctx.string(doc, "vct_base", default="https://safecity.example/vct/")
    items: dict[str, ServiceItem] = {}
    for raw in ctx.seq(doc, "items"):
        item = _item(raw, cat, vct_base)
        if item.code in items:
            raise InvalidInput(f"catalogue: duplicate item code {item.code!r}")
        items[item.code] = item
    types = [c.type for it in items.values() for c in it.certificates]
    dupes = sorted({t for t in types if types.count(t) > 1})
    if dupes:
        raise InvalidInput(f"catalogue: certificate types output by several items: {dupes}")
    return Catalogue(
        items=items,
        departments=cat["departments"],
        sources=cat["sources"],
        pause_events=pause_events,
    )


def _merge(docs: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"departments": {}, "sources": {}, "pause_events": {}, "items": []}
    for doc in docs:
        if not isinstance(doc, dict):
            raise InvalidInput("catalogue: each YAML file must be a mapping")
        for key in ("departments", "sources", "pause_events"):
            part = doc.get(key) or {}
            if not isinstance(part, dict):
                raise InvalidInput(f"catalogue: {key!r} must be a mapping")
            clash = set(part) & set(merged[key])
            if clash:
                raise InvalidInput(f"catalogue: {key} defined twice: {sorted(clash)}")
            merged[key].update(part)
        merged["items"].extend(doc.get("items") or [])
        if "vct_base" in doc:
            merged["vct_base"] = doc["vct_base"]
    return merged


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load and validate a catalogue: the packaged YAML, a YAML file or a folder of them."""
    try:
        if path is None:
            text = resources.files("safecity.eservices").joinpath("catalogue.yaml")
            docs = [yaml.safe_load(text.read_text("utf-8"))]
        elif path.is_dir():
            docs = [yaml.safe_load(p.read_text("utf-8")) for p in sorted(path.glob("*.yaml"))]
        else:
            docs = [yaml.safe_load(path.read_text("utf-8"))]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"catalogue: not valid YAML: {exc}") from exc
    return parse_catalogue(_merge(docs))


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The packaged catalogue (loaded and validated once)."""
    return load_catalogue()
