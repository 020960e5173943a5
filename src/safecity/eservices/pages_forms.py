"""Shared pieces of the e-service pages: question widgets from the JSON form definitions,
parsing a posted page, field errors, the working-day countdown and answer/material rows.

:func:`widget_for` turns a question of :mod:`safecity.eservices.forms` into an input by
its JSON Schema: an ``enum`` is radios (a select past six options), an array of an enum is
checkboxes, a ``const: true`` boolean is one checkbox (a declaration), another boolean is
yes/no radios, ``format: date`` a date input, ``cn-mobile`` a phone keypad, long text a
textarea. :func:`parse_page` reads a posted page back into typed answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fastapi.responses import Response

from safecity.console.pages import templates
from safecity.eservices import forms, service
from safecity.eservices.catalogue import ServiceItem, default_catalogue
from safecity.eservices.workdays import CHINA_TZ, local_date, workdays_between
from safecity.platform.db import utcnow
from safecity.platform.downloads import file_download
from safecity.platform.errors import ConfigurationError, InvalidInput, SafeCityError


def item_of(code: str) -> ServiceItem:
    return default_catalogue().get(code)


def days_left(due: date | None, today: date) -> int | None:
    """Working days from ``today`` to ``due`` (negative: overdue); None without a due date
    or outside the holiday table (then the plain date is shown)."""
    if due is None:
        return None
    try:
        if due >= today:
            return workdays_between(today, due)
        return -workdays_between(due, today)
    except (ConfigurationError, InvalidInput):
        return None


def local_today() -> date:
    return local_date(utcnow())


# --------------------------------------------------------------------------- question widgets


@dataclass
class Widget:
    """How one question of a form definition is shown on its page."""

    name: str
    label: str
    hint: str | None
    kind: str  # text, textarea, number, date, radios, select, checkboxes, checkbox, yesno
    value: Any
    required: bool
    input_type: str = "text"
    inputmode: str | None = None
    autocomplete: str | None = None
    maxlength: int | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    show_if: tuple[str, str] | None = None  # (question, "v1|v2") for the reveal script

    @property
    def id(self) -> str:
        return f"q-{self.name}"

    @property
    def anchor(self) -> str:
        """Where the error summary links: the first input of the question."""
        if self.kind in ("radios", "checkboxes", "yesno"):
            return f"{self.id}-0"
        return self.id

    def is_selected(self, option: str) -> bool:
        if isinstance(self.value, list):
            return option in [self._str(v) for v in self.value]
        return self.value is not None and self._str(self.value) == option

    @staticmethod
    def _str(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    @property
    def text(self) -> str:
        return "" if self.value is None or isinstance(self.value, list) else self._str(self.value)


_AUTOCOMPLETE = {
    "name": "name",
    "family_name": "family-name",
    "given_name": "given-name",
    "phone": "tel-national",
    "email": "email",
    "birthdate": "bday",
    "household_address": "street-address",
    "residence_address": "street-address",
}


def _cond_value(value: Any) -> str:
    return Widget._str(value)


def widget_for(q: forms.Question, lang: str, value: Any, error: str | None = None) -> Widget:
    """The widget for question ``q`` (its JSON Schema decides the input)."""
    schema = q.schema
    kind, input_type = "text", "text"
    inputmode = autocomplete = None
    maxlength = schema.get("maxLength")
    options: list[tuple[str, str]] = []
    fmt = schema.get("format")
    enum = schema.get("enum")
    if schema.get("type") == "array":
        kind = "checkboxes"
        values = schema.get("items", {}).get("enum", [])
        options = [
            (str(v), q.options[str(v)].get(lang) if str(v) in q.options else str(v)) for v in values
        ]
    elif enum is not None:
        options = [
            (str(v), q.options[str(v)].get(lang) if str(v) in q.options else str(v)) for v in enum
        ]
        kind = "radios" if len(options) <= 6 else "select"
    elif schema.get("type") == "boolean":
        kind = "checkbox" if schema.get("const") is True else "yesno"
        options = [("true", "yes"), ("false", "no")]
    elif schema.get("type") in ("integer", "number"):
        kind, inputmode = "number", "numeric" if schema.get("type") == "integer" else "decimal"
    elif fmt == "date":
        kind, input_type = "date", "date"
    elif fmt == "cn-mobile":
        input_type, inputmode, maxlength = "tel", "numeric", 11
    elif fmt == "email":
        input_type = "email"
    elif fmt == "cn-resident-id":
        maxlength, autocomplete = 18, "off"
    elif maxlength is not None and maxlength > 120:
        kind = "textarea"
    if autocomplete is None:
        autocomplete = _AUTOCOMPLETE.get(q.prefill_from or q.name)
    show_if = None
    if q.show_if is not None:
        show_if = (q.show_if.question, "|".join(_cond_value(v) for v in q.show_if.values))
    return Widget(
        name=q.name,
        label=q.label.get(lang),
        hint=q.hint.get(lang) if q.hint else None,
        kind=kind,
        value=value,
        required=q.required,
        input_type=input_type,
        inputmode=inputmode,
        autocomplete=autocomplete,
        maxlength=maxlength,
        options=options,
        error=error,
        show_if=show_if,
    )


def parse_page(
    page: forms.Page, form: Mapping[str, Any], getlist: Callable[[str], list[Any]]
) -> dict[str, Any]:
    """The answers a posted page gives, typed by each question's schema.

    Text is stripped; an empty field is ``None`` (so clearing an optional answer clears
    it); a number that does not parse stays text (the form's validation says why).
    """
    out: dict[str, Any] = {}
    for q in page.questions:
        schema = q.schema
        kind = schema.get("type")
        if kind == "array":
            out[q.name] = [str(v) for v in getlist(q.name)] or None
            continue
        raw = form.get(q.name)
        text = raw.strip() if isinstance(raw, str) else ""
        if kind == "boolean":
            out[q.name] = {"true": True, "false": False}.get(text)
            if schema.get("const") is True and text == "":
                out[q.name] = None
        elif text == "":
            out[q.name] = None
        elif kind == "integer" and re.fullmatch(r"-?\d{1,15}", text):
            out[q.name] = int(text)
        elif kind == "number" and re.fullmatch(r"-?\d{1,15}(\.\d{1,6})?", text):
            out[q.name] = float(text)
        elif fmt_upper(schema):
            out[q.name] = text.upper()
        else:
            out[q.name] = text
    return out


def fmt_upper(schema: Mapping[str, Any]) -> bool:
    """ID numbers and codes are matched upper-case (a typed ``x`` check digit is fine)."""
    return schema.get("format") == "cn-resident-id"


def error_text(err: Any, lang: str) -> tuple[str, str]:
    """(field, message) of a :class:`forms.FieldError` or its dict form."""
    if isinstance(err, forms.FieldError):
        return err.field, err.zh if lang == "zh" else err.en
    if isinstance(err, Mapping):
        return str(err.get("field", "")), str(err.get(lang) or err.get("en") or err.get("zh") or "")
    return "", str(err)


def field_errors(exc: SafeCityError) -> list[Any]:
    """The per-field errors an exception carries (:class:`service.FormInvalid`)."""
    if isinstance(exc, service.FormInvalid):
        return list(exc.field_errors)
    found = exc.extra.get("errors") or []
    return list(found) if isinstance(found, Sequence) else []


# --------------------------------------------------------------------------- flow helpers


def definition_of(item_code: str) -> forms.FormDefinition:
    return forms.form_for_item(item_of(item_code))


def visible_pages(definition: forms.FormDefinition, answers: Mapping[str, Any]) -> list[forms.Page]:
    """The pages the citizen goes through given ``answers`` (conditional pages included
    only while their condition holds)."""
    shown = {q.name for q in definition.visible(answers)}
    return [
        p
        for p in definition.pages
        if p.show_if is None or (p.show_if.question in shown and p.show_if.holds(answers))
    ]


def uploads(item: ServiceItem) -> list[Any]:
    return [m for m in item.materials if m.source == "uploaded"]


def types_text(accept: Sequence[str]) -> str:
    names = {
        "application/pdf": "PDF",
        "image/jpeg": "JPEG",
        "image/png": "PNG",
        "image/webp": "WebP",
    }
    return ", ".join(names.get(t, t) for t in accept)


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


ATTACHMENT_MAX_BYTES: int = service.MAX_ATTACHMENT_BYTES


def answer_rows(
    definition: forms.FormDefinition, answers: Mapping[str, Any], lang: str
) -> list[tuple[str, str, str, str]]:
    """(page id, question name, label, answer text) for each visible question."""
    page_of = {q.name: p.id for p in definition.pages for q in p.questions}
    return [
        (
            page_of[q.name],
            q.name,
            q.label.get(lang),
            forms.answer_text(q, answers.get(q.name), lang),
        )
        for q in definition.visible(answers)
    ]


def material_rows(detail: Any) -> list[dict[str, Any]]:
    rows = []
    for m in detail.materials:
        rows.append(
            {
                "m": m,
                "files": [
                    a
                    for a in detail.attachments
                    if a.material_code == m.code and a.source == "uploaded"
                ],
                "types": types_text(m.accept),
            }
        )
    return rows


def local_time(value: datetime | None) -> str:
    """A stored (UTC) timestamp as Beijing local time, ``YYYY-MM-DD HH:MM``."""
    if value is None:
        return "–"
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


templates.env.filters["svc_time"] = local_time


def attachment_response(data: bytes, content_type: str, filename: str) -> Response:
    """An uploaded file as a download (never rendered inline: it came from a citizen)."""
    return file_download(data, content_type, filename)
