"""Connector manifests: one YAML file per connector, in the spirit of Home Assistant's.

A manifest says what a connector is and promises (``manifests/<name>.yaml``)::

    name: mqtt                      # unique, lower-case
    title: MQTT (Mosquitto)
    protocol: mqtt                  # mqtt | nats | http
    status: available               # available | planned (not implemented yet)
    module: safecity.sensing.connectors.mqtt
    event_types: ["*"]              # catalogue names it may emit, or "*" for all
    config_schema: {...}            # JSON schema (draft-07) of its configuration
    quality:                        # checklist: what it does and what is proven
      - {id: validates_payloads, text: ..., done: true}

:func:`load_manifests` reads and validates the shipped files once; a bad file raises
:class:`ManifestError` naming the file and the field. :meth:`ConnectorManifest.validate_config`
checks a deployment's configuration against ``config_schema``.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from safecity.platform.errors import InvalidInput
from safecity.sensing.event_types import CATALOGUE

__all__ = ["ConnectorManifest", "ManifestError", "QualityItem", "load_manifest", "load_manifests"]


class ManifestError(InvalidInput):
    """A connector manifest is invalid (the message names the file and the field)."""


class QualityItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)
    done: bool


class ConnectorManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    title: str = Field(min_length=1)
    protocol: Literal["mqtt", "nats", "http"]
    status: Literal["available", "planned"]
    status_note: str = ""
    version: int = Field(default=1, ge=1)
    description: str = Field(min_length=1)
    module: str | None = None
    event_types: list[str] = Field(min_length=1)
    config_schema: dict[str, Any]
    quality: list[QualityItem] = Field(min_length=1)

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        if value == ["*"]:
            return value
        unknown = sorted(set(value) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"unknown event type(s): {', '.join(unknown)}")
        return value

    @field_validator("config_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft7Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        if value.get("type") != "object" or not isinstance(value.get("properties"), dict):
            raise ValueError("must describe an object with properties")
        return value

    @model_validator(mode="after")
    def _status_consistent(self) -> ConnectorManifest:
        if self.status == "available" and not self.module:
            raise ValueError("an available connector names its module")
        if self.status == "planned" and not self.status_note:
            raise ValueError("a planned connector says when/where it comes in status_note")
        return self

    def emitted_types(self) -> list[str]:
        """The catalogue names this connector may emit."""
        return sorted(CATALOGUE) if self.event_types == ["*"] else sorted(self.event_types)

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Raise :class:`InvalidInput` naming the first bad field; return ``config``."""
        validator = jsonschema.Draft7Validator(self.config_schema)
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            raise InvalidInput(f"{self.name} connector config invalid at {where}: {first.message}")
        return config


def load_manifest(text: str, *, origin: str = "<string>") -> ConnectorManifest:
    """Parse and validate one manifest; :class:`ManifestError` names ``origin`` and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{origin}: a manifest is a YAML mapping")
    try:
        return ConnectorManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ManifestError(f"{origin}: {where}: {first['msg']}") from None


@cache
def load_manifests() -> dict[str, ConnectorManifest]:
    """Every shipped manifest by name (read and validated once per process)."""
    found: dict[str, ConnectorManifest] = {}
    folder = importlib.resources.files("safecity.sensing.connectors") / "manifests"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        manifest = load_manifest(entry.read_text(encoding="utf-8"), origin=entry.name)
        if Path(entry.name).stem != manifest.name:
            raise ManifestError(f"{entry.name}: name {manifest.name!r} differs from the file name")
        found[manifest.name] = manifest
    return found
