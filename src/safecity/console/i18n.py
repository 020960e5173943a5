"""Console translations: every user-facing string has a message key.

Catalogues live in ``messages/<lang>.json`` (flat ``{"key": "text"}``). Chinese (``zh``)
and English (``en``) are supported; the choice comes from the ``safecity_lang`` cookie,
then the browser's ``Accept-Language``, then ``Settings.default_language``. A key missing
from a catalogue falls back to the other catalogue, then to the key itself, so a missing
translation shows up on the page instead of breaking it (a test keeps the catalogues
complete).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Protocol

from starlette.requests import Request

LANGUAGES: tuple[str, ...] = ("zh", "en")
LANG_COOKIE = "safecity_lang"
MESSAGES_DIR = Path(__file__).parent / "messages"


class Translator(Protocol):
    lang: str

    def __call__(self, key: str, **params: object) -> str: ...


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The message catalogue for ``lang`` (read once per process)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}")
    data = json.loads((MESSAGES_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"messages/{lang}.json must map string keys to string texts")
    return data


class _Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **params: object) -> str:
        text = catalogue(self.lang).get(key)
        if text is None:
            other = next(lang for lang in LANGUAGES if lang != self.lang)
            text = catalogue(other).get(key, key)
        return text.format(**params) if params else text


def translator(lang: str) -> Translator:
    return _Translator(lang if lang in LANGUAGES else LANGUAGES[0])


def _from_accept_language(header: str) -> str | None:
    """The first supported language in an ``Accept-Language`` header, by quality."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else None


def negotiate(request: Request, default: str) -> str:
    """The language for ``request``: cookie, then Accept-Language, then ``default``."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    from_header = _from_accept_language(request.headers.get("accept-language", ""))
    if from_header is not None:
        return from_header
    return default if default in LANGUAGES else LANGUAGES[0]
