"""Record normalisation and the Splink comparisons of the person index.

Every input record is first mapped to one canonical shape (`CANONICAL_FIELDS`, all strings
or null); the comparisons and blocking rules refer only to canonical columns. Comparisons
and blocking rules whose columns are empty in the training data are left out, and the
Chinese name levels are used when the names contain Han characters: the same code serves
every data set, with no per-dataset switch.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from pypinyin import lazy_pinyin

from safecity.linkage import idcard

CANONICAL_FIELDS = (
    "given_name",
    "surname",
    "dob",
    "sex",
    "address",
    "locality",
    "postcode",
    "region",
    "birth_place",
    "occupation",
    "phone",
    "id_number",
    "soc_sec_id",
)
DERIVED_FIELDS = ("given_py", "surname_py", "id_error")

# Surnames whose reading as a surname differs from the character's common reading.
SURNAME_READINGS = {
    "单": "shan",
    "曾": "zeng",
    "解": "xie",
    "区": "ou",
    "仇": "qiu",
    "朴": "piao",
    "查": "zha",
    "盖": "ge",
    "覃": "qin",
    "繁": "po",
    "员": "yun",
    "种": "chong",
    "尉": "yu",
    "乐": "yue",
    "华": "hua",
    "任": "ren",
    "沈": "shen",
    "缪": "miao",
    "秘": "bi",
    "翟": "zhai",
}
COMPOUND_SURNAMES = frozenset(
    (
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "令狐",
        "澹台",
        "端木",
        "西门",
        "南宫",
        "独孤",
        "呼延",
        "轩辕",
        "万俟",
        "闻人",
        "赫连",
        "申屠",
        "濮阳",
        "太史",
        "钟离",
    )
)
_HAN = re.compile(r"[\u3400-\u9fff]")
_NON_DIGIT = re.compile(r"\D")


def has_han(text: str | None) -> bool:
    return bool(text) and _HAN.search(text or "") is not None


def clean_text(value: Any) -> str | None:
    """NFKC, lower case, collapsed whitespace; empty → None."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip().lower()
    text = re.sub(r"\s+", " ", text)
    return text or None


def to_pinyin(text: str | None, *, surname: bool = False) -> str | None:
    """Toneless pinyin without spaces; Latin input (already romanised) passes through."""
    if not text:
        return None
    if not has_han(text):
        return re.sub(r"[^a-z]", "", text.lower()) or None
    if surname:
        parts = [SURNAME_READINGS.get(ch) or "".join(lazy_pinyin(ch)) for ch in text]
        return "".join(parts).lower()
    return "".join(lazy_pinyin(text)).lower()


def split_chinese_name(full: str) -> tuple[str, str]:
    """(surname, given name) of a Hanzi full name, compound surnames included."""
    full = full.replace(" ", "").replace("·", "")
    if full[:2] in COMPOUND_SURNAMES and len(full) > 2:
        return full[:2], full[2:]
    return full[:1], full[1:]


def normalise_phone(value: Any) -> str | None:
    """Digits only; +86/0086 country code and a leading trunk 0 removed."""
    if value is None:
        return None
    digits = _NON_DIGIT.sub("", str(value))
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 10:
            digits = digits[len(prefix) :]
            break
    digits = digits.lstrip("0") if len(digits) > 11 else digits
    return digits or None


def normalise_date(value: Any) -> str | None:
    """ISO 'YYYY-MM-DD' from a date, 'YYYYMMDD', 'YYYY-MM-DD' or 'YYYY/MM/DD'.

    An impossible date (e.g. 1985-13-40) keeps its digits as 'YYYY-MM-DD' text so that
    typo and day/month-swap levels can still compare it; empty → None.
    """
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    digits = _NON_DIGIT.sub("", str(value))
    if len(digits) != 8:
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def prepare_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One input record → the canonical record (unique_id kept as a string)."""
    if raw.get("unique_id") in (None, ""):
        raise ValueError("every record needs a unique_id")
    rec: dict[str, Any] = {"unique_id": str(raw["unique_id"])}
    for name in CANONICAL_FIELDS:
        rec[name] = clean_text(raw.get(name))
    full = clean_text(raw.get("full_name"))
    if full and not (rec["given_name"] or rec["surname"]):
        if has_han(full):
            rec["surname"], rec["given_name"] = split_chinese_name(full)
        else:
            parts = full.split(" ")
            rec["given_name"], rec["surname"] = " ".join(parts[:-1]) or None, parts[-1]
    if rec["given_name"] and has_han(rec["given_name"]):
        rec["given_name"] = rec["given_name"].replace(" ", "")
    if rec["surname"] and has_han(rec["surname"]):
        rec["surname"] = rec["surname"].replace(" ", "")
    rec["dob"] = normalise_date(raw.get("dob"))
    rec["phone"] = normalise_phone(raw.get("phone"))
    rec["id_error"] = None
    if rec["id_number"] is not None:
        checked = idcard.check(rec["id_number"])
        rec["id_number"] = checked.number
        rec["id_error"] = checked.error
        if checked.valid:
            if rec["dob"] is None and checked.birth_date is not None:
                rec["dob"] = checked.birth_date.isoformat()
            if rec["sex"] is None:
                rec["sex"] = checked.sex.lower() if checked.sex else None
    rec["surname_py"] = to_pinyin(rec["surname"], surname=True)
    rec["given_py"] = to_pinyin(rec["given_name"])
    return rec


# ---------------------------------------------------------------------------- comparisons


def _null(col: str) -> dict[str, Any]:
    return {
        "sql_condition": f'"{col}_l" IS NULL OR "{col}_r" IS NULL',
        "label_for_charts": "null",
        "is_null_level": True,
    }


def _level(sql: str, label: str, tf: str | None = None) -> dict[str, Any]:
    level: dict[str, Any] = {"sql_condition": sql, "label_for_charts": label}
    if tf:
        level["tf_adjustment_column"] = tf
        level["tf_adjustment_weight"] = 1.0
    return level


_ELSE = {"sql_condition": "ELSE", "label_for_charts": "else"}


def _jw(col: str, threshold: float) -> str:
    return f'jaro_winkler_similarity("{col}_l", "{col}_r") >= {threshold}'


def name_part(col: str, other: str, *, chinese: bool) -> dict[str, Any]:
    """Surname or given name: exact, pinyin (homophones), swapped order, similarity."""
    py = "surname_py" if col == "surname" else "given_py"
    levels = [_null(col), _level(f'"{col}_l" = "{col}_r"', "exact", tf=col)]
    if chinese:
        levels.append(_level(f'"{py}_l" = "{py}_r"', "same pinyin"))
    levels.append(_level(f'"{col}_l" = "{other}_r"', "swapped with " + other))
    if chinese:
        levels.append(_level(_jw(py, 0.9), "pinyin jaro-winkler >= 0.9"))
    levels += [
        _level(_jw(col, 0.92), "jaro-winkler >= 0.92", tf=col),
        _level(_jw(col, 0.8), "jaro-winkler >= 0.8"),
        _level(f'"{col}_l" = "{other}_r" OR "{other}_l" = "{col}_r"', "found in the other name"),
        _level(_jw(col, 0.7), "jaro-winkler >= 0.7"),
        _ELSE,
    ]
    return {"output_column_name": col, "comparison_levels": levels}


def dob_comparison() -> dict[str, Any]:
    year_l, year_r = (
        'TRY_CAST(substr("dob_l", 1, 4) AS INTEGER)',
        'TRY_CAST(substr("dob_r", 1, 4) AS INTEGER)',
    )
    return {
        "output_column_name": "dob",
        "comparison_levels": [
            _null("dob"),
            _level('"dob_l" = "dob_r"', "exact", tf="dob"),
            _level(
                'substr("dob_l", 1, 4) = substr("dob_r", 1, 4) '
                'AND substr("dob_l", 6, 2) = substr("dob_r", 9, 2) '
                'AND substr("dob_l", 9, 2) = substr("dob_r", 6, 2)',
                "day/month swapped",
            ),
            _level('damerau_levenshtein("dob_l", "dob_r") <= 1', "one digit off"),
            _level('substr("dob_l", 1, 7) = substr("dob_r", 1, 7)', "same year and month"),
            _level('substr("dob_l", 1, 4) = substr("dob_r", 1, 4)', "same year"),
            _level(f"abs({year_l} - {year_r}) <= 5", "within 5 years"),
            _ELSE,
        ],
    }


def text_comparison(col: str, *, tf: bool = True, fuzzy: bool = True) -> dict[str, Any]:
    levels = [_null(col), _level(f'"{col}_l" = "{col}_r"', "exact", tf=col if tf else None)]
    if fuzzy:
        levels += [
            _level(_jw(col, 0.9), "jaro-winkler >= 0.9"),
            _level(_jw(col, 0.7), "jaro-winkler >= 0.7"),
        ]
    levels.append(_ELSE)
    return {"output_column_name": col, "comparison_levels": levels}


def code_comparison(col: str, *, max_edits: int = 2) -> dict[str, Any]:
    """Identifiers and codes: exact, then one or two digit errors."""
    levels = [_null(col), _level(f'"{col}_l" = "{col}_r"', "exact")]
    for edits in range(1, max_edits + 1):
        levels.append(
            _level(f'damerau_levenshtein("{col}_l", "{col}_r") <= {edits}', f"<= {edits} edits")
        )
    levels.append(_ELSE)
    return {"output_column_name": col, "comparison_levels": levels}


def postcode_comparison() -> dict[str, Any]:
    """Exact, one edit, then the same outward code (the part before a space, UK style)."""
    return {
        "output_column_name": "postcode",
        "comparison_levels": [
            _null("postcode"),
            _level('"postcode_l" = "postcode_r"', "exact", tf="postcode"),
            _level('damerau_levenshtein("postcode_l", "postcode_r") <= 1', "<= 1 edit"),
            _level(
                "split_part(\"postcode_l\", ' ', 1) = split_part(\"postcode_r\", ' ', 1)",
                "same outward code",
            ),
            _ELSE,
        ],
    }


def id_number_comparison() -> dict[str, Any]:
    """Only validated numbers reach this comparison (invalid ones are null + id_error)."""
    return {
        "output_column_name": "id_number",
        "comparison_levels": [
            _null("id_number"),
            _level('"id_number_l" = "id_number_r"', "exact"),
            _level(
                'substr("id_number_l", 1, 14) = substr("id_number_r", 1, 14)',
                "same region and birth date",
            ),
            _ELSE,
        ],
    }


def phone_comparison() -> dict[str, Any]:
    return {
        "output_column_name": "phone",
        "comparison_levels": [
            _null("phone"),
            _level('"phone_l" = "phone_r"', "exact"),
            _level('right("phone_l", 8) = right("phone_r", 8)', "same last 8 digits"),
            _level('damerau_levenshtein("phone_l", "phone_r") <= 1', "one digit off"),
            _ELSE,
        ],
    }


def build_comparisons(present: Iterable[str], *, chinese: bool) -> list[dict[str, Any]]:
    """The comparisons for the canonical columns that hold data."""
    have = set(present)
    out: list[dict[str, Any]] = []
    if "given_name" in have:
        out.append(name_part("given_name", "surname", chinese=chinese))
    if "surname" in have:
        out.append(name_part("surname", "given_name", chinese=chinese))
    if "dob" in have:
        out.append(dob_comparison())
    for col in ("sex", "region"):
        if col in have:
            out.append(text_comparison(col, tf=False, fuzzy=False))
    for col in ("address", "locality", "birth_place"):
        if col in have:
            out.append(text_comparison(col))
    if "occupation" in have:
        out.append(text_comparison("occupation", fuzzy=False))
    if "postcode" in have:
        out.append(postcode_comparison())
    if "soc_sec_id" in have:
        out.append(code_comparison("soc_sec_id"))
    if "id_number" in have:
        out.append(id_number_comparison())
    if "phone" in have:
        out.append(phone_comparison())
    return out


# Blocking rules in priority order; a rule is used when all its columns hold data.
BLOCKING_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("id_number",), 'l."id_number" = r."id_number"'),
    (("phone",), 'l."phone" = r."phone"'),
    (("soc_sec_id",), 'l."soc_sec_id" = r."soc_sec_id"'),
    (("given_name", "surname"), 'l."given_name" = r."given_name" AND l."surname" = r."surname"'),
    (("surname_py", "given_py"), 'l."surname_py" = r."surname_py" AND l."given_py" = r."given_py"'),
    (("surname", "dob"), 'l."surname" = r."surname" AND l."dob" = r."dob"'),
    (("given_name", "dob"), 'l."given_name" = r."given_name" AND l."dob" = r."dob"'),
    (("given_name", "surname"), 'l."given_name" = r."surname" AND l."surname" = r."given_name"'),
    (
        ("dob", "postcode"),
        'l."dob" = r."dob" AND l."postcode" = r."postcode"',
    ),
    (
        ("surname", "postcode"),
        'l."surname" = r."surname" AND l."postcode" = r."postcode"',
    ),
    (
        ("given_name", "postcode"),
        'l."given_name" = r."given_name" AND l."postcode" = r."postcode"',
    ),
    (
        ("surname", "dob"),
        'l."surname" = r."surname" AND substr(l."dob", 1, 4) = substr(r."dob", 1, 4) '
        'AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("given_name", "dob"),
        'l."given_name" = r."given_name" AND substr(l."dob", 1, 4) = substr(r."dob", 1, 4)',
    ),
    (("address",), 'l."address" = r."address"'),
    (("dob", "locality"), 'l."dob" = r."dob" AND l."locality" = r."locality"'),
    (("given_name", "locality"), 'l."given_name" = r."given_name" AND l."locality" = r."locality"'),
    (("surname", "birth_place"), 'l."surname" = r."surname" AND l."birth_place" = r."birth_place"'),
    (
        ("given_name", "birth_place"),
        'l."given_name" = r."given_name" AND l."birth_place" = r."birth_place"',
    ),
    (
        ("dob", "birth_place"),
        'substr(l."dob", 1, 4) = substr(r."dob", 1, 4) AND l."birth_place" = r."birth_place"',
    ),
    # Broader rules for messy data (name variants, gaps), chosen on an unscored split of
    # historical_50k (benchmarks/linkage_blocking.py reports the recall of each rule).
    (
        ("given_name", "surname"),
        'substr(l."given_name", 1, 3) = substr(r."given_name", 1, 3) '
        'AND substr(l."surname", 1, 4) = substr(r."surname", 1, 4)',
    ),
    (
        ("given_name", "surname", "dob"),
        'substr(l."given_name", 1, 2) = substr(r."given_name", 1, 2) '
        'AND substr(l."surname", 1, 2) = substr(r."surname", 1, 2) '
        'AND substr(l."dob", 1, 4) = substr(r."dob", 1, 4)',
    ),
    (
        ("surname", "postcode"),
        "split_part(l.\"postcode\", ' ', 1) = split_part(r.\"postcode\", ' ', 1) "
        'AND l."surname" = r."surname"',
    ),
    (
        ("given_name", "postcode"),
        "split_part(l.\"postcode\", ' ', 1) = split_part(r.\"postcode\", ' ', 1) "
        'AND l."given_name" = r."given_name"',
    ),
    (
        ("given_name", "dob"),
        'l."dob" = r."dob" AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("surname", "birth_place"),
        'l."birth_place" = r."birth_place" AND substr(l."given_name", 1, 2) = '
        'substr(r."given_name", 1, 2) AND substr(l."surname", 1, 2) = substr(r."surname", 1, 2)',
    ),
    (
        ("surname", "dob"),
        'substr(l."dob", 1, 4) = substr(r."dob", 1, 4) AND l."surname" = r."surname"',
    ),
    (
        ("postcode", "dob"),
        'l."postcode" = r."postcode" AND substr(l."dob", 1, 4) = substr(r."dob", 1, 4)',
    ),
    (
        ("birth_place", "occupation"),
        'l."birth_place" = r."birth_place" AND l."occupation" = r."occupation" '
        'AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("postcode", "given_name"),
        'l."postcode" = r."postcode" '
        'AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (("given_name", "surname"), 'l."given_name" = r."surname"'),
    (("given_name", "surname"), 'l."surname" = r."given_name"'),
    (("postcode",), 'l."postcode" = r."postcode"'),
    (
        ("postcode", "given_name"),
        "split_part(l.\"postcode\", ' ', 1) = split_part(r.\"postcode\", ' ', 1) "
        'AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("birth_place", "given_name"),
        'l."birth_place" = r."birth_place" '
        'AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("birth_place", "surname"),
        'l."birth_place" = r."birth_place" '
        'AND substr(l."surname", 1, 2) = substr(r."surname", 1, 2)',
    ),
    (
        ("surname", "dob"),
        'substr(l."dob", 1, 4) = substr(r."dob", 1, 4) '
        'AND substr(l."surname", 1, 3) = substr(r."surname", 1, 3)',
    ),
    (
        ("surname", "given_name"),
        'l."surname" = r."surname" AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("surname", "given_name"),
        'right(l."surname", 4) = right(r."surname", 4) '
        'AND substr(l."given_name", 1, 1) = substr(r."given_name", 1, 1)',
    ),
    (
        ("surname", "given_name"),
        'right(l."given_name", 3) = right(r."given_name", 3) '
        'AND right(l."surname", 3) = right(r."surname", 3)',
    ),
    (
        ("birth_place", "sex", "occupation"),
        'l."birth_place" = r."birth_place" AND l."sex" = r."sex" '
        'AND l."occupation" = r."occupation"',
    ),
)


def build_blocking_rules(present: Iterable[str]) -> list[str]:
    have = set(present)
    rules: list[str] = []
    for cols, sql in BLOCKING_RULES:
        if set(cols) <= have and sql not in rules:
            rules.append(sql)
    return rules
