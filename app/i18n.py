"""The participant's language: chosen among a design's languages, and the platform's own strings in it.

The platform's strings (templates and the messages in ``app.flow.views``) are gettext messages; their catalogs are
``app/locale/<lang>/LC_MESSAGES/messages.po`` (Babel). A catalog is compiled in memory the first time its language
is used, so the ``.po`` files are the only committed form and a fresh checkout needs no build step.

The language comes, in this order, from ``?lang=`` (the switcher on every page), the ``scoft_lang`` cookie it sets,
and ``Accept-Language``; the first of these that the design offers wins, else the design's first language.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
COOKIE = "scoft_lang"
QUERY = "lang"


def N_(message: str) -> str:  # noqa: N802  (the gettext convention for "translate later")
    """Marks a platform string for the catalogs; it is translated where it is shown."""
    return message


class Message(str):
    """A platform message with its values: reads as the English text, and is translated where it is shown.

    ``Message(N_("Rank every image for “%(question)s”"), question=...)`` lets a pure view build a message that
    quotes (already translated) design text, while the catalog holds the whole sentence for translators."""

    msgid: str
    values: dict[str, Any]

    def __new__(cls, msgid: str, **values: Any) -> Message:
        self = super().__new__(cls, msgid % values if values else msgid)
        self.msgid, self.values = msgid, values
        return self


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an ``Accept-Language`` header, most wanted first (q=0 and ``*`` left out)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and tag != "*" and 0 < q <= 1 and len(tag) <= 35:
            ranked.append((-q, i, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose(available: Sequence[str], wanted: Sequence[str]) -> str:
    """The first of ``wanted`` the design offers: exact tag first, then by language (``es-MX`` -> ``es``, ``zh-CN``
    -> ``zh-Hans``); otherwise the design's own first language."""
    lower = {a.lower(): a for a in available}
    for tag in wanted:
        tag = tag.strip().replace("_", "-").lower()
        if tag in lower:
            return lower[tag]
        base = tag.split("-")[0]
        for a in available:
            if a.lower().split("-")[0] == base:
                return a
    return available[0]


def preferences(query: Mapping[str, str], cookies: Mapping[str, str], accept_language: str | None) -> list[str]:
    """What the participant asked for, most wanted first: the switcher, its cookie, then the browser."""
    out = [v for v in (query.get(QUERY), cookies.get(COOKIE)) if v]
    return out + parse_accept_language(accept_language)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The platform catalog of ``lang`` (or of its base language); the untranslated strings when there is none."""
    for tag in (lang, lang.split("-")[0]):
        po = LOCALE_DIR / tag.replace("-", "_") / "LC_MESSAGES" / "messages.po"
        if po.is_file():
            with po.open("rb") as f:
                catalog = read_po(f, locale=tag.replace("-", "_"))
            buf = io.BytesIO()
            write_mo(buf, catalog)
            buf.seek(0)
            return gettext.GNUTranslations(buf)
    return gettext.NullTranslations()


def _locale(lang: str) -> Locale | None:
    try:
        return Locale.parse(lang, sep="-")
    except (UnknownLocaleError, ValueError):
        return None


@cache
def script_strings(lang: str) -> Markup:
    """The page script's strings (``app.flow.script``) in ``lang``, as JSON escaped for an HTML attribute; built once
    per language."""
    from app.flow.script import STRINGS  # (app.flow imports this module)

    t = translations(lang)
    return escape(str(htmlsafe_json_dumps({key: t.gettext(msg) for key, msg in STRINGS.items()})))  # forceescape


@cache
def direction(lang: str) -> str:
    loc = _locale(lang)
    return "rtl" if loc is not None and loc.text_direction == "rtl" else "ltr"


@cache
def display_name(lang: str) -> str:
    """The language's name in itself (the switcher shows each language as its speakers know it)."""
    loc = _locale(lang)
    name = loc.get_display_name(loc) if loc is not None else None
    return (name[:1].upper() + name[1:]) if name else lang


@dataclass(frozen=True, slots=True)
class Switch:
    lang: str
    name: str
    href: str
    current: bool


def template_context(lang: str, available: Sequence[str], path: str) -> dict[str, Any]:
    """``_``/``ngettext`` in ``lang``, ``lang``/``dir`` for ``<html>``, and the switcher's links."""
    t = translations(lang)

    def _(message: str, **values: Any) -> str:
        if isinstance(message, Message):
            message, values = message.msgid, message.values | values
        text = t.gettext(message)
        return text % values if values else text

    def ngettext(singular: str, plural: str, n: int, **values: Any) -> str:
        return t.ngettext(singular, plural, n) % ({"num": n} | values)

    switcher = [Switch(a, display_name(a), f"{path}?{QUERY}={a}", a == lang) for a in available]
    return {
        "_": _,
        "gettext": _,
        "ngettext": ngettext,
        "lang": lang,
        "dir": direction(lang),
        "script_strings": script_strings,
        "switcher": switcher if len(available) > 1 else [],
    }


def english() -> dict[str, Callable[..., str] | str | list[Switch]]:
    """Defaults for templates rendered without a participant's language (error pages, the console)."""
    return template_context("en", ["en"], "/")
