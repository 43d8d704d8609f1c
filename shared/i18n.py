"""Every text a person reads, in Chinese (zh-CN, the default) and English (en), chosen per request.

The texts are data: `shared/locale/<lang>/{labels,problems,messages}.json`, loaded once. Codes travel on the
wire and are stored; a text is resolved only when a response is written, in the caller's language:
`lang=` (downloads, the live stream) wins, then `Accept-Language` (by quality), then zh-CN. Babel formats
numbers and dates in downloads (JSON keeps ISO 8601 and plain numbers).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from fastapi import Depends, Header, Query, Request

Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
DEFAULT: Lang = "zh-CN"
LOCALE_DIR = Path(__file__).with_name("locale")
_BABEL = {"zh-CN": "zh_Hans_CN", "en": "en"}
_QUALITY = re.compile(r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


@lru_cache(maxsize=len(LANGS))
def catalogue(lang: Lang) -> dict[str, dict[str, Any]]:
    """The message files of one language: {"labels": {group: {code: text}}, "problems": …, "messages": …}."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((LOCALE_DIR / lang).glob("*.json"))}


def negotiate(accept_language: str | None, lang: str | None = None) -> Lang:
    """The language to answer in: an explicit supported `lang`, else the best of `Accept-Language`, else zh-CN."""
    if lang in LANGS:
        return lang  # type: ignore[return-value]
    wanted: list[tuple[float, str]] = []
    for n, part in enumerate((accept_language or "").split(",")[:20]):
        match = _QUALITY.match(part)
        if not match or match.group(1) == "*":
            continue
        try:
            q = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        if q > 0:
            wanted.append((-q + n * 1e-6, match.group(1).replace("_", "-")))
    for _, tag in sorted(wanted):  # any Chinese (zh, zh-CN, zh-Hans, zh-TW…) reads zh-CN; any English en
        primary = tag.split("-", 1)[0].lower()
        if primary == "zh":
            return "zh-CN"
        if primary == "en":
            return "en"
    return DEFAULT


def request_language(request: Request) -> Lang:
    """The caller's language for a request (what the problem handlers and dependencies use)."""
    return negotiate(request.headers.get("accept-language"), request.query_params.get("lang"))


def _language(accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
              lang: Annotated[Lang | None, Query(description="language of the texts: zh-CN (default) or en; "
                                                             "overrides Accept-Language")] = None) -> Lang:
    return negotiate(accept_language, lang)


#: a route's parameter for the caller's language: `lang: LanguageDep`
LanguageDep = Annotated[Lang, Depends(_language)]


def label(group: str, code: str | None, lang: Lang) -> str | None:
    """The text for a code (mode, category, status…); the code itself where no text exists."""
    if code is None:
        return None
    return catalogue(lang)["labels"].get(group, {}).get(code, code)


def labels(lang: Lang) -> dict[str, dict[str, str]]:
    """Every label group with its codes and texts."""
    return catalogue(lang)["labels"]


def message(key: str, lang: Lang, /, **params: Any) -> str:
    """A parameterised message (e.g. a problem detail) in a language; English if the key lacks this language."""
    text = catalogue(lang)["messages"].get(key) or catalogue("en")["messages"].get(key) or key
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


def problem_text(kind: str, lang: Lang) -> tuple[str | None, str | None]:
    """(title, generic detail) of a problem kind; (None, None) for a kind without texts."""
    entry = catalogue(lang)["problems"].get(kind) or {}
    return entry.get("title"), entry.get("detail")


def pick(texts: dict[str, str] | str | None, lang: Lang) -> str | None:
    """One text out of a {lang: text} map, falling back to the default then any language."""
    if texts is None or isinstance(texts, str):
        return texts
    return texts.get(lang) or texts.get(DEFAULT) or texts.get("en") or next(iter(texts.values()), None)


# --- texts of task orders issued before the catalogue was bilingual ---------------------------------------

def slug(text: str) -> str:
    """The stable code of a milestone named only by its English text (orders from before codes existed)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "step"


@lru_cache(maxsize=1)
def _legacy() -> dict[str, str]:
    return json.loads((LOCALE_DIR / "legacy_task_texts.json").read_text(encoding="utf-8"))


def legacy_text(english: str) -> dict[str, str]:
    """Both languages of a text the shipped catalogue once held only in English (English alone if unknown)."""
    zh = _legacy().get(english)
    return {"zh-CN": zh, "en": english} if zh else {"en": english}


# --- downloads: numbers and dates for the reader's locale ------------------------------------------------

def format_value(value: Any, lang: Lang) -> Any:
    """A cell for a download: numbers and dates formatted for the locale (`en` keeps machine forms)."""
    if lang == "en" or value is None or isinstance(value, bool):
        return value
    locale = _BABEL[lang]
    if isinstance(value, dt.datetime):
        return format_datetime(value, "yyyy-MM-dd HH:mm", locale=locale)
    if isinstance(value, dt.date):
        return format_date(value, "long", locale=locale)
    if isinstance(value, float):
        return format_decimal(value, format="#,##0.####", locale=locale)
    return value


def scope_language(scope: dict[str, Any]) -> Lang:
    """The caller's language from a raw ASGI scope (the gateway's forwarding path has no Request)."""
    header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"accept-language"), None)
    query = scope.get("query_string", b"").decode("latin-1")
    lang = next((p[5:] for p in query.split("&") if p.startswith("lang=")), None)
    return negotiate(header, lang)
