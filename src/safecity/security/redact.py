"""Redaction as a function of the schema: fields marked personal never reach the public.

Mark personal fields where the schema is declared (Pydantic models)::

    from typing import Annotated
    from pydantic import BaseModel, Field
    from safecity.security.redact import FreeText, Personal, personal_field

    class CaseRead(BaseModel):
        id: str
        category: str
        reporter_name: Annotated[str, Personal]               # the marker...
        reporter_phone: str = personal_field(default="")      # ...or a Field
        id_number: str = Field("", json_schema_extra={"personal": True})  # ...or by hand
        description: Annotated[str, FreeText]                 # public, but scrubbed

Then, for anything a public route returns:

- :func:`public_view` (``= redact(model)``) → a JSON-ready ``dict`` without the personal
  fields, at every depth (nested models, lists, tuples, sets, dict values); free-text
  fields have phone numbers and ID numbers masked by :func:`scrub_text`.
- ``redact(model, mask=True)`` keeps the keys and replaces personal values with ``"***"``.
- :func:`public_model` → a derived model class without the personal fields (and with
  free text scrubbed on validation), for ``response_model=``: the OpenAPI spec of a public
  route then shows no personal field, and FastAPI drops them again on the way out.
- :func:`personal_fields` lists a model's marked fields; the OpenAPI schema shows them with
  ``"x-personal": true``.

Mark the field itself (not a type nested inside it). Names cannot be found in free text by
a pattern: text that may hold names does not belong on a public page at all.
``tests/publicguard.py`` checks every public response for seeded canary values.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, Field, GetJsonSchemaHandler, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

MASK = "***"
PERSONAL_KEYS = ("x-personal", "personal")


class _Marker:
    """An ``Annotated`` marker that also shows up in the JSON schema."""

    def __init__(self, name: str, schema_key: str) -> None:
        self.name = name
        self.schema_key = schema_key

    def __repr__(self) -> str:
        return self.name

    def __get_pydantic_json_schema__(
        self, core_schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema[self.schema_key] = True
        return schema


Personal = _Marker("Personal", "x-personal")
"""``Annotated[str, Personal]``: a personal value (name, phone, ID number, address...)."""

FreeText = _Marker("FreeText", "x-free-text")
"""``Annotated[str, FreeText]``: public text in which phone and ID numbers are masked."""


def personal_field(default: Any = ..., **kwargs: Any) -> Any:
    """``Field(...)`` marked personal (``json_schema_extra={"x-personal": True}``)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["x-personal"] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def _extra_flag(info: FieldInfo, keys: tuple[str, ...]) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, Mapping) and any(extra.get(k) is True for k in keys)


def is_personal(info: FieldInfo) -> bool:
    return Personal in info.metadata or _extra_flag(info, PERSONAL_KEYS)


def is_free_text(info: FieldInfo) -> bool:
    return FreeText in info.metadata or _extra_flag(info, ("x-free-text", "free_text"))


def personal_fields(model: type[BaseModel] | BaseModel) -> frozenset[str]:
    """Names of the fields marked personal on ``model`` (this level only)."""
    cls = model if isinstance(model, type) else type(model)
    return frozenset(name for name, info in cls.model_fields.items() if is_personal(info))


# --------------------------------------------------------------------------- free text

# Not part of a longer run of digits: +86 / 0086 prefixes, mobile numbers, landlines with
# an area code, 15/18-digit resident ID numbers (the last may be X), with or without
# spaces and dashes inside.
_SEP = r"[ \-]?"
_PATTERNS = [
    re.compile(
        r"(?<![0-9])(?:(?:\+|00)86"
        + _SEP
        + r")?1[3-9]\d"
        + _SEP
        + r"\d{4}"
        + _SEP
        + r"\d{4}(?![0-9])"
    ),
    re.compile(r"(?<![0-9])0\d{2,3}" + _SEP + r"\d{7,8}(?![0-9])"),
    re.compile(r"(?<![0-9])\d{6}" + _SEP + r"\d{8}" + _SEP + r"\d{3}[0-9Xx](?![0-9A-Za-z])"),
    re.compile(r"(?<![0-9])\d{15}(?![0-9])"),
]


def scrub_text(text: str) -> str:
    """Mask phone numbers and resident ID numbers in free text."""
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def _scrub_any(value: Any) -> Any:
    return scrub_text(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------- instances


def redact(model: BaseModel, *, mask: bool = False) -> dict[str, Any]:
    """``model`` as JSON-ready data without its personal fields (``mask=True``: with them
    replaced by ``"***"``), at every depth."""
    dumped = model.model_dump(mode="json")
    result = _redact_value(model, dumped, mask)
    if not isinstance(result, dict):
        raise TypeError(f"{type(model).__name__} does not serialise to an object")
    return result


def public_view(model: BaseModel) -> dict[str, Any]:
    """What a public response may show of ``model``: personal fields removed."""
    return redact(model)


def _redact_value(value: Any, dumped: Any, mask: bool) -> Any:
    if isinstance(value, BaseModel):
        return _redact_model(value, dumped, mask)
    if isinstance(value, list | tuple | set | frozenset) and isinstance(dumped, list):
        return [_redact_value(v, d, mask) for v, d in zip(value, dumped, strict=False)]
    if isinstance(value, Mapping) and isinstance(dumped, dict):
        return {
            key: _redact_value(v, d, mask)
            for v, (key, d) in zip(value.values(), dumped.items(), strict=False)
        }
    return dumped


def _redact_model(model: BaseModel, dumped: Any, mask: bool) -> Any:
    cls = type(model)
    if not isinstance(dumped, dict):
        if personal_fields(cls):
            raise TypeError(f"cannot redact {cls.__name__}: it does not serialise to an object")
        return dumped
    out = dict(dumped)
    for name, info in cls.model_fields.items():
        key = name if name in out else (info.serialization_alias or info.alias)
        if key is None or key not in out:
            continue
        if is_personal(info):
            if mask and out[key] is not None:
                out[key] = MASK
            elif not mask:
                del out[key]
            continue
        if is_free_text(info) and isinstance(out[key], str):
            out[key] = scrub_text(out[key])
            continue
        out[key] = _redact_value(getattr(model, name), out[key], mask)
    return out


# --------------------------------------------------------------------------- classes

_public_models: dict[type[BaseModel], type[BaseModel]] = {}


def _has_personal(annotation: Any, seen: set[type[BaseModel]]) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        seen.add(annotation)
        return bool(personal_fields(annotation)) or any(
            _has_personal(info.annotation, seen) for info in annotation.model_fields.values()
        )
    return any(_has_personal(arg, seen) for arg in get_args(annotation))


def _public_annotation(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return public_model(annotation)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is None or not args:
        return annotation
    new_args = tuple(_public_annotation(a) for a in args)
    if new_args == args:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[new_args]  # noqa: UP007 (built dynamically)
    if origin is typing.Annotated:
        return typing.Annotated[new_args[0], *args[1:]]
    return origin[new_args]


def public_model(cls: type[BaseModel]) -> type[BaseModel]:
    """A model like ``cls`` without its personal fields (nested models too), for
    ``response_model=`` on public routes. Models without personal data come back as is."""
    if not _has_personal(cls, set()):
        return cls
    cached = _public_models.get(cls)
    if cached is not None:
        return cached
    fields: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if is_personal(info):
            continue
        copied = FieldInfo.merge_field_infos(info)
        if is_free_text(info):
            copied.metadata.append(AfterValidator(_scrub_any))
        fields[name] = (_public_annotation(info.annotation), copied)
    public: type[BaseModel] = create_model(
        f"{cls.__name__}Public",
        __config__=cls.model_config,
        __doc__=cls.__doc__,
        __module__=cls.__module__,
        **fields,
    )
    _public_models[cls] = public
    return public
