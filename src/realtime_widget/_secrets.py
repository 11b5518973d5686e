"""The one home of secrets.

The key's wrapper, and the scrubber every shown or kept text goes through (the ``error`` trait, the
event log and its exports, messages to the browser, printed tracebacks). Scrubbing happens at those
boundaries, never at each call site.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
_MIN_SECRET = 4  # shorter strings would scrub ordinary words


def check_key(key: str) -> str:
    """The key, stripped; refuses one an HTTP header cannot carry, without quoting it."""
    key = key.strip()
    if key and not (key.isascii() and key.isprintable()):
        raise ValueError(
            "The API key (api_key, or INWORLD_API_KEY) contains characters an HTTP header "
            "cannot carry (a control character such as a stray newline, or non-ASCII text); "
            "check how the key was pasted or stored"
        )
    return key


class Secret:
    """A string that never shows itself in a repr, str or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('[redacted]')" if self._value else "Secret('')"

    __str__ = __repr__


@lru_cache(maxsize=64)
def _forms(secret: str) -> tuple[str, ...]:
    r"""How a secret can appear in text.

    As itself, in a repr or traceback, inside JSON text (also with ``\/`` escapes), and with every
    character ``\u``-escaped. Longest first, so no form is left half-replaced by a shorter one.
    """
    as_json = json.dumps(secret)[1:-1]
    forms = {
        secret,
        repr(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        as_json,
        as_json.replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" for c in secret),
    }
    return tuple(sorted(forms, key=len, reverse=True))


@lru_cache(maxsize=64)
def _escaped(secret: str) -> re.Pattern[str]:
    r"""The secret with any mix of characters written as JSON/Python escapes.

    Such as ``\u0061``, ``\x61``, ``\/``, as a service or a browser may echo it.
    """

    def char(c: str) -> str:
        code = ord(c)
        alts = [re.escape(c), f"\\\\u{code:04x}", f"\\\\u{code:04X}", f"\\\\x{code:02x}"]
        if c == "/":
            alts.append(r"\\/")
        return "(?:" + "|".join(alts) + ")"

    return re.compile("".join(char(c) for c in secret))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret in ``text``.

    Also in the escaped forms a repr, a traceback or JSON would show.
    """
    for s in secrets:
        if s and len(s) >= _MIN_SECRET:
            for form in _forms(s):
                if form in text:
                    text = text.replace(form, REDACTED)
            if "\\" in text:
                text = _escaped(s).sub(REDACTED, text)
    return text


class Scrubber:
    """Scrubs the secrets known right now from text, JSON text and nested values.

    The secrets are the key and the TURN credentials last handed out. ``secrets`` is asked each
    time, so credentials learned later are covered too.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        self._secrets = secrets

    def secrets(self) -> list[str]:
        return [s for s in self._secrets() if s and len(s) >= _MIN_SECRET]

    def text(self, text: str) -> str:
        return redact(text, self.secrets())

    def json_text(self, text: str) -> str:
        r"""Scrub serialized JSON and keep it valid.

        Text with escapes is scrubbed as decoded values, where an escaped secret (``\u002d`` for
        ``-``) is visible as one.
        """
        secrets = self.secrets()
        if not secrets:
            return text
        if "\\" not in text:
            scrubbed = redact(text, secrets)
            if scrubbed == text:
                return text
            try:
                json.loads(scrubbed)
                return scrubbed
            except ValueError:  # a secret spanning a string's edge: scrub the values instead
                pass
        value = json.loads(text)
        clean = _scrub_value(value, secrets)
        if clean == value:
            return text
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=False)

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like) with every string scrubbed, keys included."""
        secrets = self.secrets()
        if not secrets:
            return value
        return _scrub_value(value, secrets)


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {_scrub_value(k, secrets): _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v, secrets) for v in value]
    return value
