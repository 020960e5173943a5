"""Application forms: JSON definitions, prefill, per-field validation, drafts, summaries.

A form definition (``forms/<id>.json``) is a list of pages — one thing per page where
sensible, as GOV.UK Forms does — each with questions. A question is one JSON-Schema
(Draft 2020-12) property plus zh/en label and hint, optional ``options`` labels for enum
values, an optional ``prefill_from`` key of the citizen record (name, ID number,
household address...), an optional ``show_if`` condition on an earlier answer, and
optional per-keyword error messages. Definitions are themselves checked against
:data:`DEFINITION_SCHEMA` and every question schema with ``check_schema``.

:func:`validate_answers` returns per-field :class:`FieldError` objects carrying a zh and
an en message written for people (never a raw jsonschema message). A :class:`Draft` is
plain data (``to_dict`` / ``from_dict``) so the service layer can store it and the
citizen can resume. :func:`check_answers` gives the check-your-answers rows and
:func:`new_reference` the reference number (``YW-2026-11-26-7KQ3ZP``, Crockford base32).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaViolation

from safecity.eservices.catalogue import ServiceItem, Text
from safecity.eservices.workdays import local_date
from safecity.platform.errors import InvalidInput, NotFound

PREFILL_KEYS = (
    "name",
    "family_name",
    "given_name",
    "id_number",
    "birthdate",
    "sex",
    "household_address",
    "residence_address",
    "phone",
    "email",
    "nationality",
    "passport_number",
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_RE = re.compile(r"YW-(\d{4})-(\d{2})-(\d{2})-([0-9A-HJKMNP-TV-Z]{6})")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# The schema of a form definition (Draft 2020-12), kept beside the definitions.
DEFINITION_SCHEMA: dict[str, Any] = json.loads(
    resources.files("safecity.eservices")
    .joinpath("forms", "_definition.schema.json")
    .read_text("utf-8")
)

FORMATS = FormatChecker()


@FORMATS.checks("cn-resident-id", raises=ValueError)
def is_resident_id(value: object) -> bool:
    """An 18-character resident ID number: valid birth date and ISO 7064 check digit."""
    if not isinstance(value, str):
        return True  # other types are the "type" keyword's business
    text = value.upper()
    if not re.fullmatch(r"\d{17}[\dX]", text):
        return False
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == text[17]


@FORMATS.checks("cn-mobile")
def is_cn_mobile(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"1[3-9]\d{9}", value) is not None


@FORMATS.checks("date", raises=ValueError)
def is_date(value: object) -> bool:
    return not isinstance(value, str) or (
        re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None and bool(date.fromisoformat(value))
    )


@dataclass(frozen=True)
class Condition:
    question: str
    values: tuple[Any, ...]

    def holds(self, answers: Mapping[str, Any]) -> bool:
        return self.question in answers and answers[self.question] in self.values


@dataclass(frozen=True)
class Question:
    name: str
    label: Text
    schema: dict[str, Any]
    required: bool = True
    hint: Text | None = None
    prefill_from: str | None = None
    options: dict[str, Text] = field(default_factory=dict)
    show_if: Condition | None = None
    errors: dict[str, Text] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    id: str
    title: Text
    questions: tuple[Question, ...]
    show_if: Condition | None = None


@dataclass(frozen=True)
class FormDefinition:
    id: str
    version: int
    title: Text
    pages: tuple[Page, ...]
    items: tuple[str, ...] = ()

    def questions(self) -> dict[str, Question]:
        return {q.name: q for p in self.pages for q in p.questions}

    def page(self, page_id: str) -> Page:
        for page in self.pages:
            if page.id == page_id:
                return page
        raise NotFound(f"form {self.id} has no page {page_id!r}")

    def visible(self, answers: Mapping[str, Any]) -> list[Question]:
        """Questions shown given ``answers``.

        Conditions refer to earlier questions and only see answers to questions that
        are themselves shown, so a stale answer to a hidden question changes nothing.
        """
        shown: dict[str, Any] = {}
        out: list[Question] = []
        for page in self.pages:
            if page.show_if and not page.show_if.holds(shown):
                continue
            for q in page.questions:
                if q.show_if and not q.show_if.holds(shown):
                    continue
                out.append(q)
                if q.name in answers:
                    shown[q.name] = answers[q.name]
        return out


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str  # the JSON-Schema keyword, or "required" / "unknown"
    zh: str
    en: str


def _text(doc: Mapping[str, Any] | None) -> Text | None:
    return None if doc is None else Text(zh=doc["zh"], en=doc["en"])


def _condition(doc: Mapping[str, Any] | None) -> Condition | None:
    if doc is None:
        return None
    values = tuple(doc["in"]) if "in" in doc else (doc["equals"],)
    return Condition(question=doc["question"], values=values)


def parse_definition(doc: Any) -> FormDefinition:
    """Validate a form definition document and build the :class:`FormDefinition`."""
    errors = sorted(Draft202012Validator(DEFINITION_SCHEMA).iter_errors(doc), key=str)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise InvalidInput(f"form definition: {where}: {errors[0].message}")
    seen: set[str] = set()
    pages: list[Page] = []
    form_id = doc["id"]
    for pdoc in doc["pages"]:
        cond = _condition(pdoc.get("show_if"))
        if cond and cond.question not in seen:
            raise InvalidInput(f"form {form_id}: page {pdoc['id']} depends on a later question")
        questions: list[Question] = []
        for qdoc in pdoc["questions"]:
            name = qdoc["name"]
            if name in seen:
                raise InvalidInput(f"form {form_id}: question {name!r} defined twice")
            try:
                Draft202012Validator.check_schema(qdoc["schema"])
            except SchemaError as exc:
                msg = f"form {form_id}: question {name}: bad schema: {exc.message}"
                raise InvalidInput(msg) from exc
            qcond = _condition(qdoc.get("show_if"))
            if qcond and qcond.question not in seen:
                raise InvalidInput(f"form {form_id}: question {name} depends on a later question")
            options = {k: Text(zh=v["zh"], en=v["en"]) for k, v in qdoc.get("options", {}).items()}
            enum = qdoc["schema"].get("enum") or qdoc["schema"].get("items", {}).get("enum")
            if options and enum is not None and set(options) != {str(e) for e in enum}:
                raise InvalidInput(f"form {form_id}: question {name}: options do not match enum")
            seen.add(name)
            questions.append(
                Question(
                    name=name,
                    label=Text(zh=qdoc["label"]["zh"], en=qdoc["label"]["en"]),
                    schema=qdoc["schema"],
                    required=qdoc.get("required", True),
                    hint=_text(qdoc.get("hint")),
                    prefill_from=qdoc.get("prefill_from"),
                    options=options,
                    show_if=qcond,
                    errors={
                        k: Text(zh=v["zh"], en=v["en"]) for k, v in qdoc.get("errors", {}).items()
                    },
                )
            )
        pages.append(
            Page(
                id=pdoc["id"], title=Text(**pdoc["title"]), questions=tuple(questions), show_if=cond
            )
        )
    ids = [p.id for p in pages]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"form {form_id}: duplicate page ids")
    return FormDefinition(
        id=form_id,
        version=doc["version"],
        title=Text(**doc["title"]),
        pages=tuple(pages),
        items=tuple(doc.get("items", ())),
    )


def load_definition(form_id: str, *, folder: Path | None = None) -> FormDefinition:
    """Load ``forms/<form_id>.json`` (packaged, or from ``folder``)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", form_id):
        raise InvalidInput(f"bad form id {form_id!r}")
    if folder is None:
        res = resources.files("safecity.eservices").joinpath("forms", f"{form_id}.json")
        if not res.is_file():
            raise NotFound(f"no form definition {form_id!r}")
        text = res.read_text("utf-8")
    else:
        path = folder / f"{form_id}.json"
        if not path.is_file():
            raise NotFound(f"no form definition {form_id!r}")
        text = path.read_text("utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"form {form_id}: not valid JSON: {exc}") from exc
    definition = parse_definition(doc)
    if definition.id != form_id:
        raise InvalidInput(f"form file {form_id}.json declares id {definition.id!r}")
    return definition


@lru_cache(maxsize=32)
def _packaged(form_id: str) -> FormDefinition:
    return load_definition(form_id)


def form_for_item(item: ServiceItem) -> FormDefinition:
    """The packaged form definition a catalogue item names (loaded once)."""
    return _packaged(item.form)


# ---------------------------------------------------------------- answers


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _lc(text: str) -> str:
    """Lower-case the first letter for mid-sentence use, keeping "ID", "CNY"..."""
    words = text.split(" ")
    first = words[0]
    if len(first) > 1 and first[1:2].isupper():
        return text
    return " ".join([first[:1].lower() + first[1:], *words[1:]])


def _type_message(zh: str, en: str, expected: Any) -> Text:
    if expected == "integer":
        return Text(f"{zh}须为整数", f"{en} must be a whole number")
    if expected == "number":
        return Text(f"{zh}须为数字", f"{en} must be a number")
    if expected == "boolean":
        return Text(f"请选择“是”或“否”：{zh}", f"Select yes or no: {_lc(en)}")
    return Text(f"{zh}的格式不正确", f"{en} is not in the right form")


def _message(q: Question, err: SchemaViolation) -> tuple[str, Text]:
    code = str(err.validator)
    if code in q.errors:
        return code, q.errors[code]
    zh, en = q.label.zh, q.label.en
    if code == "format" and err.validator_value in q.errors:
        return code, q.errors[str(err.validator_value)]
    if code == "format" and err.validator_value == "cn-resident-id":
        return code, Text(f"请输入有效的18位{zh}", f"Enter a valid 18-character {_lc(en)}")
    if code == "format" and err.validator_value == "cn-mobile":
        return code, Text("请输入有效的11位手机号码", "Enter a valid 11-digit mobile number")
    if code == "format" and err.validator_value == "date":
        return code, Text(
            f"{zh}须为有效日期，如2026-11-26", f"{en} must be a real date, like 2026-11-26"
        )
    limit = err.validator_value
    simple: dict[str, Text] = {
        "enum": Text(f"请选择{zh}", f"Select {_lc(en)}"),
        "const": Text(f"请确认{zh}", f"Confirm {_lc(en)}"),
        "minLength": Text(f"{zh}至少{limit}个字", f"{en} must be {limit} characters or more"),
        "maxLength": Text(f"{zh}不能超过{limit}个字", f"{en} must be {limit} characters or fewer"),
        "minimum": Text(f"{zh}不能小于{limit}", f"{en} must be {limit} or more"),
        "maximum": Text(f"{zh}不能大于{limit}", f"{en} must be {limit} or less"),
        "minItems": Text(f"{zh}至少选择{limit}项", f"Select at least {limit} for {_lc(en)}"),
        "type": _type_message(zh, en, limit),
    }
    default = Text(f"{zh}格式不正确", f"{en} is not in the right format")
    return code, simple.get(code, default)


def _check(q: Question, value: Any) -> FieldError | None:
    if _empty(value):
        if not q.required:
            return None
        msg = q.errors.get("required") or Text(f"请填写{q.label.zh}", f"Enter {_lc(q.label.en)}")
        return FieldError(q.name, "required", msg.zh, msg.en)
    validator = Draft202012Validator(q.schema, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.path), str(e.validator)))
    if not errors:
        return None
    code, msg = _message(q, errors[0])
    return FieldError(q.name, code, msg.zh, msg.en)


def validate_answers(
    definition: FormDefinition, answers: Mapping[str, Any], *, page_id: str | None = None
) -> list[FieldError]:
    """Per-field errors for the visible questions (of one page when ``page_id`` is given).

    Answers to hidden questions are ignored; answers to questions the form does not
    have are errors (``code="unknown"``).
    """
    known = definition.questions()
    errors = [
        FieldError(k, "unknown", f"未知字段{k}", f"Unknown field {k}")
        for k in answers
        if k not in known
    ]
    visible = definition.visible(answers)
    if page_id is not None:
        names = {q.name for q in definition.page(page_id).questions}
        visible = [q for q in visible if q.name in names]
    for q in visible:
        err = _check(q, answers.get(q.name))
        if err is not None:
            errors.append(err)
    return errors


def answers_schema(definition: FormDefinition) -> dict[str, Any]:
    """One JSON Schema (2020-12) for a whole submission, for API docs and clients.

    Conditional questions are optional here (their condition is checked by
    :func:`validate_answers`); custom formats are named but only enforced there.
    """
    props = {q.name: {**q.schema, "title": q.label.en} for q in definition.questions().values()}
    required = [
        q.name
        for p in definition.pages
        if p.show_if is None
        for q in p.questions
        if q.required and q.show_if is None
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://safecity.example/forms/{definition.id}/v{definition.version}",
        "title": definition.title.en,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def clean_answers(definition: FormDefinition, answers: Mapping[str, Any]) -> dict[str, Any]:
    """Only the answers to visible questions (what is submitted and summarised)."""
    return {q.name: answers[q.name] for q in definition.visible(answers) if q.name in answers}


def prefill(
    definition: FormDefinition,
    citizen_record: Mapping[str, Any],
    answers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Answers filled from the citizen's record; existing answers are kept.

    ``name`` falls back to family + given name. A record value that would not pass the
    question's schema is not prefilled (the citizen types it instead).
    """
    record = dict(citizen_record)
    if "name" not in record and record.get("family_name") and record.get("given_name"):
        record["name"] = f"{record['family_name']}{record['given_name']}"
    out = dict(answers or {})
    for q in definition.questions().values():
        if q.prefill_from is None or q.name in out or _empty(record.get(q.prefill_from)):
            continue
        value = record[q.prefill_from]
        if _check(q, value) is None:
            out[q.name] = value
    return out


def next_page(definition: FormDefinition, answers: Mapping[str, Any]) -> str | None:
    """The first visible page with a missing or invalid answer; None: check answers."""
    bad = {e.field for e in validate_answers(definition, answers)}
    for page in definition.pages:
        if page.show_if and not page.show_if.holds(answers):
            continue
        if any(q.name in bad for q in page.questions):
            return page.id
    return None


def answer_text(q: Question, value: Any, lang: str = "zh") -> str:
    """How an answer reads on a summary: option labels, 是/否, lists joined."""
    if _empty(value):
        return "未填写" if lang == "zh" else "Not provided"
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("Yes" if value else "No")
    if isinstance(value, list):
        sep = "、" if lang == "zh" else ", "
        return sep.join(answer_text(q, v, lang) for v in value)
    if str(value) in q.options:
        return q.options[str(value)].get(lang)
    return str(value)


def check_answers(
    definition: FormDefinition, answers: Mapping[str, Any], lang: str = "zh"
) -> list[tuple[str, str]]:
    """Check-your-answers rows: (question label, answer text) for visible questions."""
    return [
        (q.label.get(lang), answer_text(q, answers.get(q.name), lang))
        for q in definition.visible(answers)
    ]


def new_reference(today: date, *, token: str | None = None) -> str:
    """A reference number ``YW-YYYY-MM-DD-XXXXXX`` (6 random Crockford base32 symbols)."""
    rand = token if token is not None else "".join(secrets.choice(CROCKFORD) for _ in range(6))
    ref = f"YW-{today:%Y-%m-%d}-{rand}"
    return parse_reference(ref)


def parse_reference(text: str) -> str:
    """Normalise a typed reference (case, I/L→1, O→0, spaces) or raise InvalidInput."""
    t = text.strip().upper().replace(" ", "")
    head, _, tail = t.rpartition("-")
    t = f"{head}-{tail.replace('I', '1').replace('L', '1').replace('O', '0')}"
    m = REFERENCE_RE.fullmatch(t)
    if not m:
        raise InvalidInput(f"{text!r} is not a reference number like YW-2026-11-26-7KQ3ZP")
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as exc:
        raise InvalidInput(f"{text!r} has an impossible date") from exc
    return t


# ---------------------------------------------------------------- drafts


@dataclass
class Draft:
    """A saved, resumable application in progress (plain data)."""

    form_id: str
    form_version: int
    reference: str
    answers: dict[str, Any]
    current_page: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "form_id": self.form_id,
            "form_version": self.form_version,
            "reference": self.reference,
            "answers": dict(self.answers),
            "current_page": self.current_page,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Draft:
        try:
            sub = doc.get("submitted_at")
            draft = cls(
                form_id=str(doc["form_id"]),
                form_version=int(doc["form_version"]),
                reference=parse_reference(str(doc["reference"])),
                answers=dict(doc["answers"]),
                current_page=doc.get("current_page"),
                created_at=datetime.fromisoformat(doc["created_at"]),
                updated_at=datetime.fromisoformat(doc["updated_at"]),
                submitted_at=datetime.fromisoformat(sub) if sub else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a saved draft: {exc}") from exc
        return draft


def start_draft(
    definition: FormDefinition, *, now: datetime, citizen_record: Mapping[str, Any] | None = None
) -> Draft:
    """A new draft, prefilled from the citizen's record, positioned at its first gap."""
    answers = prefill(definition, citizen_record or {})
    return Draft(
        form_id=definition.id,
        form_version=definition.version,
        reference=new_reference(local_date(now)),
        answers=answers,
        current_page=next_page(definition, answers),
        created_at=now,
        updated_at=now,
    )


def save_page(
    definition: FormDefinition,
    draft: Draft,
    page_id: str,
    values: Mapping[str, Any],
    *,
    now: datetime,
) -> list[FieldError]:
    """Save one page's answers if they are valid; otherwise return the errors, unchanged."""
    if draft.form_id != definition.id:
        raise InvalidInput(f"draft is for form {draft.form_id}, not {definition.id}")
    if draft.submitted_at is not None:
        raise InvalidInput("this application was already submitted")
    names = {q.name for q in definition.page(page_id).questions}
    stray = sorted(set(values) - names)
    if stray:
        raise InvalidInput(f"page {page_id} has no questions {stray}")
    merged = {**draft.answers, **values}
    errors = validate_answers(definition, merged, page_id=page_id)
    if errors:
        return errors
    draft.answers = merged
    draft.updated_at = now
    draft.current_page = next_page(definition, merged)
    return []


def submit(definition: FormDefinition, draft: Draft, *, now: datetime) -> dict[str, Any]:
    """Final check of every visible answer; returns the cleaned answers to store."""
    errors = validate_answers(definition, draft.answers)
    if errors:
        fields = ", ".join(e.field for e in errors)
        raise InvalidInput(f"application {draft.reference} is incomplete: {fields}", errors=errors)
    draft.submitted_at = now
    draft.updated_at = now
    draft.current_page = None
    return clean_answers(definition, draft.answers)


def copy_text(definition: FormDefinition, draft: Draft, lang: str = "zh") -> str:
    """A plain-text copy of the application for the citizen to download."""
    head = "申请编号" if lang == "zh" else "Reference"
    lines = [definition.title.get(lang), f"{head}: {draft.reference}", ""]
    lines += [f"{label}: {text}" for label, text in check_answers(definition, draft.answers, lang)]
    return "\n".join(lines) + "\n"


def copy_pdf(definition: FormDefinition, draft: Draft, *, font_path: Path | None = None) -> bytes:
    """A PDF copy (fpdf2; English labels and pinyin when no CJK font is installed)."""
    from safecity.eservices.certificate_pdf import render_document_pdf

    rows = [
        (
            q.label,
            Text(
                answer_text(q, draft.answers.get(q.name), "zh"),
                answer_text(q, draft.answers.get(q.name), "en"),
            ),
        )
        for q in definition.visible(draft.answers)
    ]
    return render_document_pdf(definition.title, draft.reference, rows, font_path=font_path)


def copy_json(definition: FormDefinition, draft: Draft) -> dict[str, Any]:
    """A JSON copy: reference, form, answers and both language summaries."""
    return {
        "reference": draft.reference,
        "form": {"id": definition.id, "version": definition.version},
        "submitted_at": draft.submitted_at.isoformat() if draft.submitted_at else None,
        "answers": clean_answers(definition, draft.answers),
        "summary": {lang: check_answers(definition, draft.answers, lang) for lang in ("zh", "en")},
    }
