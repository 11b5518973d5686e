"""Small composable validators for client payloads.

Each raises ``ClientError`` on the first bad field, naming it by its full path (e.g.
``session.audio.output.speed``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from .._spec import TOOL_CHOICES
from ._errors import ClientError

MODALITY_SETS = ({"audio"}, {"text"}, {"audio", "text"})

# --------------------------------------------------------------------------------
# A validator takes (value, param path) and returns the cleaned value or raises ClientError.
Validator = Callable[[Any, str], Any]


def type_error(param: str, expected: str, value: Any) -> ClientError:
    return ClientError(
        "invalid_type",
        param,
        f"Invalid type for '{param}': expected {expected}, but got {type(value).__name__}.",
    )


def value_error(param: str, value: Any, detail: str) -> ClientError:
    return ClientError("invalid_value", param, f"Invalid value for '{param}': {value!r}. {detail}")


def string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise type_error(param, "a string", value)
    return value


def boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise type_error(param, "a boolean", value)
    return value


def number(lo: float, hi: float) -> Validator:
    def check(value: Any, param: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise type_error(param, "a number", value)
        if not math.isfinite(value) or not lo <= value <= hi:
            raise value_error(param, value, f"Expected a number between {lo} and {hi}.")
        return value

    return check


def integer(lo: int, hi: int | None = None) -> Validator:
    def check(value: Any, param: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error(param, "an integer", value)
        if value < lo or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise value_error(param, value, f"Expected an integer {bounds}.")
        return value

    return check


def enum(*choices: str) -> Validator:
    def check(value: Any, param: str) -> str:
        if not isinstance(value, str):
            raise type_error(param, "a string", value)
        if value not in choices:
            raise value_error(param, value, f"Supported values are: {', '.join(choices)}.")
        return value

    return check


def nullable(inner: Validator) -> Validator:
    def check(value: Any, param: str) -> Any:
        return None if value is None else inner(value, param)

    return check


def any_object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise type_error(param, "an object", value)
    return copy.deepcopy(value)


def obj(fields: Mapping[str, Validator], required: tuple[str, ...] = ()) -> Validator:
    """An object with known fields; unknown keys are dropped, like the provider ignores them."""

    def check(value: Any, param: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise type_error(param, "an object", value)
        for key in required:
            if key not in value:
                raise ClientError(
                    "missing_required_parameter",
                    f"{param}.{key}",
                    f"Missing required parameter: '{param}.{key}'.",
                )
        return {k: fields[k](v, f"{param}.{k}") for k, v in value.items() if k in fields}

    return check


def list_of(inner: Validator) -> Validator:
    def check(value: Any, param: str) -> list[Any]:
        if not isinstance(value, list):
            raise type_error(param, "an array", value)
        return [inner(v, f"{param}[{i}]") for i, v in enumerate(value)]

    return check


def modalities(value: Any, param: str) -> list[str]:
    items = list_of(enum("audio", "text"))(value, param)
    if set(items) not in MODALITY_SETS or len(items) != len(set(items)):
        raise value_error(param, value, 'Use ["audio"], ["text"] or ["audio", "text"].')
    return items


def max_tokens(value: Any, param: str) -> int | str:
    if value == "inf":
        return "inf"
    if isinstance(value, str):
        raise value_error(param, value, "Expected an integer between 1 and 4096 or 'inf'.")
    return integer(1, 4096)(value, param)


def voice(value: Any, param: str) -> str | dict[str, Any]:
    if isinstance(value, dict):
        return obj({"id": string}, required=("id",))(value, param)
    return string(value, param)


function_tool = obj(
    {
        "type": enum("function"),
        "name": string,
        "description": string,
        "parameters": any_object,
    },
    required=("name",),
)

# Inworld's built-in search tool: {"type": "web_search", "providerData": {engine, max_results,
# max_steps}} (camelCase, like the session's providerData); the service runs it itself.
WEB_SEARCH = "web_search"
web_search_tool = obj(
    {
        "type": enum(WEB_SEARCH),
        "providerData": obj(
            {"engine": string, "max_results": integer(1, 100), "max_steps": integer(1, 100)}
        ),
    }
)


def tool(value: Any, param: str) -> dict[str, Any]:
    """A function tool (``type`` may be left out) or Inworld's built-in ``web_search``."""
    if isinstance(value, dict) and value.get("type") == WEB_SEARCH:
        checked: dict[str, Any] = web_search_tool(value, param)
        return checked
    if isinstance(value, dict) and value.get("type", "function") != "function":
        raise value_error(
            f"{param}.type", value.get("type"), f"Supported values are: function, {WEB_SEARCH}."
        )
    checked = function_tool(value, param)
    return checked


def tool_choice(value: Any, param: str) -> str | dict[str, Any]:
    if isinstance(value, dict):
        return obj({"type": enum("function"), "name": string}, required=("type", "name"))(
            value, param
        )
    return enum(*TOOL_CHOICES)(value, param)


# Beta-style string formats (and the GA type names as bare strings), each stored as the GA
# object it names, so the session the emulator echoes stays in the GA schema.
AUDIO_FORMAT_NAMES: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
    "audio/pcm": {"type": "audio/pcm", "rate": 24000},
    "audio/pcmu": {"type": "audio/pcmu"},
    "audio/pcma": {"type": "audio/pcma"},
}


def audio_format(rates: tuple[int, int] = (24000, 24000)) -> Validator:
    """A format object, or one of ``AUDIO_FORMAT_NAMES``.

    ``audio/pcm`` takes a rate in ``rates`` (Inworld takes 8-48 kHz input PCM; output is 24 kHz).
    """

    def check(value: Any, param: str) -> dict[str, Any]:
        if isinstance(value, str):
            if value not in AUDIO_FORMAT_NAMES:
                names = ", ".join(AUDIO_FORMAT_NAMES)
                raise value_error(param, value, f"Supported values are: {names}, or an object.")
            return dict(AUDIO_FORMAT_NAMES[value])
        checked: dict[str, Any] = obj(
            {"type": enum("audio/pcm", "audio/pcmu", "audio/pcma"), "rate": integer(8000, 48000)},
            required=("type",),
        )(value, param)
        lo, hi = rates
        if checked["type"] == "audio/pcm" and not lo <= checked.get("rate", 24000) <= hi:
            allowed = f"{lo}" if lo == hi else f"from {lo} to {hi}"
            raise value_error(f"{param}.rate", checked["rate"], f"Supported rates: {allowed}.")
        return checked

    return check


def metadata(value: Any, param: str) -> dict[str, str] | None:
    """Up to 16 string pairs, keys up to 64 and values up to 512 characters."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise type_error(param, "an object", value)
    if len(value) > 16:
        raise value_error(param, value, "At most 16 key-value pairs are allowed.")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 64 or len(item) > 512:
            raise value_error(f"{param}.{key}", item, "Expected a string of at most 512 chars.")
    return dict(value)
