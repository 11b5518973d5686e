"""Session configuration: typed traits <-> ``session.update`` payloads and their partial diffs.

One table (``FIELDS``) says where each trait lives in the session object the service takes,
so the full payload, the partial update for one changed trait, and the reverse mapping (a
saved session dict back to traits) all come from the same source.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import traitlets as t

from ._spec import (
    DEFAULT_TTS_MODEL,
    DEFAULT_VOICE,
    EAGERNESS,
    IDLE_TIMEOUT_RANGE_MS,
    NOISE_REDUCTION,
    SEMANTIC_VAD_DEFAULTS,
    SERVER_VAD_DEFAULTS,
    SPEED_RANGE,
    TEMPERATURE_RANGE,
    TOOL_CHOICES,
    TURN_DETECTION_OPTIONAL,
    TURN_DETECTION_TYPES,
)
from ._spec import KNOWN_VOICES as KNOWN_VOICES  # re-exported for the controls panel

DEFAULT_MODEL = "openai/gpt-4o-mini"
DEFAULT_TRANSCRIPTION_MODEL = "inworld/inworld-stt-1"

# Known values from the provider's docs; free text stays allowed where the service accepts
# any value (model, voice, TTS and STT models), so these are suggestions for UIs, not limits.
KNOWN_MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4.1-mini")
KNOWN_TTS_MODELS = ("inworld-tts-1.5-mini", "inworld-tts-1.5-max", "inworld-tts-2")
KNOWN_TRANSCRIPTION_MODELS = (
    "inworld/inworld-stt-1",
    "assemblyai/u3-rt-pro",
    "assemblyai/universal-streaming-multilingual",
    "assemblyai/universal-streaming-english",
    "soniox/stt-rt-v4",
)
MODALITY_CHOICES = (("audio", "text"), ("audio",), ("text",))

_SEMANTIC_DEFAULTS: dict[str, Any] = dict(SEMANTIC_VAD_DEFAULTS)
_SERVER_VAD_DEFAULTS: dict[str, Any] = dict(SERVER_VAD_DEFAULTS)


def default_turn_detection() -> dict[str, Any]:
    return dict(_SEMANTIC_DEFAULTS)


def _fail(field: str, allowed: str, value: Any) -> t.TraitError:
    return t.TraitError(f"{field} must be {allowed}; got {value!r}")


def normalize_turn_detection(value: Any, field: str = "turn_detection") -> dict[str, Any] | None:
    """Validate a turn-detection dict and fill in the defaults of its type."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(
            field, "a dict like {'type': 'semantic_vad', 'eagerness': 'high'} or None", value
        )
    kind = value.get("type", "semantic_vad")
    if kind not in TURN_DETECTION_TYPES:
        raise _fail(f"{field}['type']", f"one of {', '.join(TURN_DETECTION_TYPES)}", kind)
    defaults = _SEMANTIC_DEFAULTS if kind == "semantic_vad" else _SERVER_VAD_DEFAULTS
    optional = TURN_DETECTION_OPTIONAL[kind]
    unknown = set(value) - set(defaults) - set(optional)
    if unknown:
        raise t.TraitError(
            f"{field} has unknown key(s) {sorted(unknown)} for type {kind!r}; "
            f"allowed keys: {sorted({*defaults, *optional})}"
        )
    out = {**defaults, **value, "type": kind}
    for key in ("create_response", "interrupt_response"):
        if not isinstance(out[key], bool):
            raise _fail(f"{field}[{key!r}]", "True or False", out[key])
    if kind == "semantic_vad":
        if out["eagerness"] not in EAGERNESS:
            raise _fail(f"{field}['eagerness']", f"one of {', '.join(EAGERNESS)}", out["eagerness"])
    else:
        thr = out["threshold"]
        if isinstance(thr, bool) or not isinstance(thr, int | float) or not 0.0 <= thr <= 1.0:
            raise _fail(f"{field}['threshold']", "a number from 0.0 to 1.0", thr)
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            ms = out[key]
            if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
                raise _fail(f"{field}[{key!r}]", "a whole number of milliseconds >= 0", ms)
        idle = out.get("idle_timeout_ms")
        lo, hi = IDLE_TIMEOUT_RANGE_MS
        if idle is not None and (
            isinstance(idle, bool) or not isinstance(idle, int) or not lo <= idle <= hi
        ):
            raise _fail(
                f"{field}['idle_timeout_ms']",
                f"a whole number of ms from {lo} to {hi}, or None",
                idle,
            )
    return out


@dataclass(frozen=True)
class SessionField:
    """Where one piece of session state lives in the ``session`` object, and how it is built."""

    path: tuple[str, ...]
    traits: tuple[str, ...]
    build: Callable[[Any], Any]
    # reverse: the wire value -> {trait: value}, used by apply_session
    parse: Callable[[Any], dict[str, Any]]


def _one(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda v: {name: v}


_TRANSCRIPTION_KEYS = ("model", "language", "prompt")


def _parse_transcription(v: Any) -> dict[str, Any]:
    if v is None:
        return {"transcription_model": None}
    if not isinstance(v, Mapping):
        raise _fail(
            "audio.input.transcription", "a dict with 'model' ('language', 'prompt') or None", v
        )
    unknown = sorted(set(v) - set(_TRANSCRIPTION_KEYS))
    if unknown:
        raise t.TraitError(
            f"session.audio.input.transcription has unknown key(s) {unknown}; "
            f"allowed keys: {list(_TRANSCRIPTION_KEYS)}"
        )
    return {
        "transcription_model": v.get("model"),
        "transcription_language": v.get("language"),
        "transcription_prompt": v.get("prompt"),
    }


def _parse_noise(v: Any) -> dict[str, Any]:
    if v is None:
        return {"noise_reduction": None}
    if not isinstance(v, Mapping):
        raise _fail("audio.input.noise_reduction", "{'type': 'near_field'|'far_field'} or None", v)
    return {"noise_reduction": v.get("type")}


def _build_transcription(w: Any) -> dict[str, Any] | None:
    if w.transcription_model is None:
        return None
    out = {"model": w.transcription_model}
    if w.transcription_language:
        out["language"] = w.transcription_language
    if w.transcription_prompt:
        out["prompt"] = w.transcription_prompt
    return out


FIELDS: tuple[SessionField, ...] = (
    SessionField(("model",), ("model",), lambda w: w.model, _one("model")),
    SessionField(
        ("instructions",), ("instructions",), lambda w: w.instructions, _one("instructions")
    ),
    SessionField(
        ("output_modalities",),
        ("output_modalities",),
        lambda w: list(w.output_modalities),
        _one("output_modalities"),
    ),
    SessionField(("temperature",), ("temperature",), lambda w: w.temperature, _one("temperature")),
    SessionField(
        ("max_output_tokens",),
        ("max_output_tokens",),
        lambda w: w.max_output_tokens,
        _one("max_output_tokens"),
    ),
    SessionField(("tools",), ("tools",), lambda w: copy.deepcopy(w.tools), _one("tools")),
    SessionField(
        ("tool_choice",),
        ("tool_choice",),
        lambda w: copy.deepcopy(w.tool_choice),
        _one("tool_choice"),
    ),
    SessionField(
        ("audio", "input", "transcription"),
        ("transcription_model", "transcription_language", "transcription_prompt"),
        _build_transcription,
        _parse_transcription,
    ),
    SessionField(
        ("audio", "input", "noise_reduction"),
        ("noise_reduction",),
        lambda w: None if w.noise_reduction is None else {"type": w.noise_reduction},
        _parse_noise,
    ),
    SessionField(
        ("audio", "input", "turn_detection"),
        ("turn_detection",),
        lambda w: copy.deepcopy(w.turn_detection),
        _one("turn_detection"),
    ),
    SessionField(("audio", "output", "voice"), ("voice",), lambda w: w.voice, _one("voice")),
    SessionField(
        ("audio", "output", "model"), ("tts_model",), lambda w: w.tts_model, _one("tts_model")
    ),
    SessionField(("audio", "output", "speed"), ("speed",), lambda w: w.speed, _one("speed")),
    # camelCase on purpose: the service ignores a ``provider_data`` key.
    SessionField(
        ("providerData",),
        ("provider_data",),
        lambda w: copy.deepcopy(w.provider_data),
        _one("provider_data"),
    ),
)

FIELD_BY_TRAIT: dict[str, SessionField] = {name: f for f in FIELDS for name in f.traits}
SESSION_TRAITS: tuple[str, ...] = tuple(FIELD_BY_TRAIT)


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def session_payload(owner: Any, fields: Iterable[SessionField] = FIELDS) -> dict[str, Any]:
    """The ``session`` object for ``fields`` (all by default), nested as the service takes it."""
    session: dict[str, Any] = {"type": "realtime"}
    for f in fields:
        _put(session, f.path, f.build(owner))
    return session


def partial_session(owner: Any, trait_names: Iterable[str]) -> dict[str, Any]:
    """The smallest ``session`` object carrying the subtrees that hold ``trait_names``."""
    seen: list[SessionField] = []
    for name in trait_names:
        f = FIELD_BY_TRAIT[name]
        if f not in seen:
            seen.append(f)
    return session_payload(owner, seen)


def traits_from_session(session: Mapping[str, Any]) -> dict[str, Any]:
    """Map a (possibly partial) ``session`` object back to trait values.

    Keys this project does not model (``type`` aside) raise, so a preset with a typo is caught
    instead of silently dropped.
    """
    if not isinstance(session, Mapping):
        raise t.TraitError(f"session must be a dict; got {type(session).__name__}")
    values: dict[str, Any] = {}
    known: dict[tuple[str, ...], SessionField] = {f.path: f for f in FIELDS}
    prefixes = {f.path[:i] for f in FIELDS for i in range(1, len(f.path))}

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, key)
            if path == ("type",):
                if value != "realtime":
                    raise _fail("session.type", "'realtime'", value)
            elif path in known:
                values.update(known[path].parse(value))
            elif path in prefixes and isinstance(value, Mapping):
                walk(value, path)
            else:
                allowed = sorted(".".join(f.path) for f in FIELDS)
                raise t.TraitError(
                    f"session.{'.'.join(path)} is not a session field this widget knows; "
                    f"known fields: {', '.join(allowed)}"
                )

    walk(session, ())
    return values


class SessionTraits(t.HasTraits):
    """The session's configuration as validated traits, one per field of ``session.update``.

    Mixed into :class:`~realtime_widget.RealtimeWidget` and
    :class:`~realtime_widget.RealtimeSession`: each trait is a constructor keyword argument
    and an attribute. Setting one on a live call sends a partial ``session.update`` with just
    the part of the session that holds it (``update_session()`` and ``batch_update()`` group
    several); before a call, the whole session goes out when the call starts. An invalid
    value raises ``traitlets.TraitError`` naming the field and what is allowed, and changes
    nothing.

    Example:
        >>> from realtime_widget import RealtimeWidget
        >>> w = RealtimeWidget(voice="Ashley", speed=1.1, instructions="Be brief.")
        >>> w.temperature = 0.6
        >>> w.turn_detection = {"type": "semantic_vad", "eagerness": "high"}
    """

    model = t.Unicode(
        DEFAULT_MODEL,
        help="The LLM that writes the agent's replies: 'provider/model' (such as "
        "'openai/gpt-4o-mini', the default, or 'openai/gpt-4.1-mini') or an Inworld router id "
        "('inworld/<routerId>'); any non-empty string. A change mid-call applies from the "
        "next response",
    )
    instructions = t.Unicode(
        "",
        help="The system instructions for the agent: who it is, what it does, how it speaks. "
        "Empty for none",
    )
    output_modalities = t.List(
        t.Unicode(),
        default_value=["audio", "text"],
        help="What the agent answers with: ['audio', 'text'] (speech and its text, the "
        "default), ['audio'] or ['text'] (text only: nothing is spoken)",
    )
    temperature = t.Float(
        0.8,
        help="The LLM's sampling temperature, from 0.0 to 2.0 (default 0.8): lower is more "
        "predictable, higher more varied",
    )
    max_output_tokens = t.Union(
        [t.Int(), t.Unicode()],
        default_value=4096,
        help="The most tokens one response may have: a whole number >= 1 (default 4096) or "
        "'inf'. A response cut short ends with status 'incomplete', reason "
        "'max_output_tokens'",
    )
    tools = t.List(
        t.Dict(),
        default_value=[],
        help="The tools the agent may call, as the session's 'tools' list of JSON schemas "
        "(a function tool needs a 'name'). tool() adds a Python function here, run in the "
        "kernel when called, and remove_tool() takes it out. Once a Python tool is "
        "registered, a call to a function the session has no Python for is answered "
        "'unknown tool'; without one, calls are yours to answer (on(), send_event())",
    )
    tool_choice = t.Union(
        [t.Unicode(), t.Dict()],
        default_value="auto",
        help="Whether the agent calls tools: 'auto' (it decides, the default), 'none' "
        "(never), 'required' (each response calls one), or a dict naming one tool "
        "({'type': 'function', 'name': '...'})",
    )
    transcription_model = t.Unicode(
        DEFAULT_TRANSCRIPTION_MODEL,
        allow_none=True,
        help="The speech-to-text model that transcribes the user's audio: "
        "'inworld/inworld-stt-1' (default), 'assemblyai/u3-rt-pro', "
        "'assemblyai/universal-streaming-multilingual', "
        "'assemblyai/universal-streaming-english', 'soniox/stt-rt-v4', or another id the "
        "service takes. None sends no transcription settings: no user transcripts",
    )
    transcription_language = t.Unicode(
        "en",
        allow_none=True,
        help="The language of the user's speech for speech-to-text, a code such as 'en' "
        "(default) or 'es'; None or empty leaves it to the model",
    )
    transcription_prompt = t.Unicode(
        None, allow_none=True, help="Words or context that guide speech-to-text (None: none)"
    )
    noise_reduction = t.Unicode(
        "near_field",
        allow_none=True,
        help="The service's noise reduction of the user's audio before it hears it: "
        "'near_field' (a headset or laptop microphone, the default), 'far_field' (a "
        "microphone across the room), or None (off)",
    )
    turn_detection = t.Dict(
        default_value=None,
        allow_none=True,
        help="How the service decides the user finished a turn. {'type': 'semantic_vad', "
        "'eagerness': 'low'|'medium'|'high'|'auto'} (the default, eagerness 'medium') judges "
        "from the words; {'type': 'server_vad', 'threshold': 0.0-1.0, 'prefix_padding_ms', "
        "'silence_duration_ms', 'idle_timeout_ms'} from the sound. Both take "
        "'create_response' (answer at a turn's end) and 'interrupt_response' (the user's "
        "speech stops the agent), True by default; missing keys get their defaults. None "
        "turns it off: nothing ends a turn by itself (ask() commits a spoken question and "
        "asks for its reply)",
    )
    voice = t.Unicode(
        DEFAULT_VOICE,
        help="The agent's voice: 'Clive' (default), 'Ashley', 'Dennis', 'Sarah', 'Hades' or "
        "any other voice name the service has",
    )
    tts_model = t.Unicode(
        DEFAULT_TTS_MODEL,
        help="The text-to-speech model that speaks the agent's replies: "
        "'inworld-tts-1.5-mini' (lower latency, the default), 'inworld-tts-1.5-max' "
        "(higher quality), 'inworld-tts-2', or another id the service takes",
    )
    speed = t.Float(
        1.0,
        help="How fast the agent speaks, from 0.5 to 1.5 (1.0, the default, is the voice's "
        "own pace)",
    )
    provider_data = t.Dict(
        default_value={},
        help="Inworld's extension object, sent as the session's 'providerData' (camelCase: "
        "the service ignores a 'provider_data' key). Its branches include 'stt', 'tts', "
        "'memory', 'backchannel' and 'responsiveness'; sent as given",
    )

    @t.default("turn_detection")
    def _default_turn_detection(self) -> dict[str, Any]:
        return default_turn_detection()

    @t.validate("model", "voice", "tts_model")
    def _non_empty(self, proposal: t.Bunch) -> str:
        value = proposal.value
        if not value.strip():
            raise _fail(proposal.trait.name, "a non-empty string", value)
        return str(value)

    @t.validate("transcription_model")
    def _valid_stt(self, proposal: t.Bunch) -> str | None:
        value = proposal.value
        if value is not None and not value.strip():
            raise _fail(
                "transcription_model", "a model id such as 'inworld/inworld-stt-1', or None", value
            )
        return value

    @t.validate("output_modalities")
    def _valid_modalities(self, proposal: t.Bunch) -> list[str]:
        value = list(proposal.value)
        if tuple(value) not in MODALITY_CHOICES:
            allowed = " or ".join(repr(list(c)) for c in MODALITY_CHOICES)
            raise _fail("output_modalities", allowed, value)
        return value

    @t.validate("speed")
    def _valid_speed(self, proposal: t.Bunch) -> float:
        lo, hi = SPEED_RANGE
        value = float(proposal.value)
        if not lo <= value <= hi:
            raise _fail("speed", f"a number from {lo} to {hi}", proposal.value)
        return value

    @t.validate("temperature")
    def _valid_temperature(self, proposal: t.Bunch) -> float:
        lo, hi = TEMPERATURE_RANGE
        value = float(proposal.value)
        if math.isnan(value) or not lo <= value <= hi:
            raise _fail("temperature", f"a number from {lo} to {hi}", proposal.value)
        return value

    @t.validate("max_output_tokens")
    def _valid_max_tokens(self, proposal: t.Bunch) -> int | str:
        value = proposal.value
        if value == "inf":
            return "inf"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail("max_output_tokens", "a whole number >= 1 or 'inf'", value)
        return value

    @t.validate("tool_choice")
    def _valid_tool_choice(self, proposal: t.Bunch) -> str | dict[str, Any]:
        value = proposal.value
        if isinstance(value, str) and value not in TOOL_CHOICES:
            raise _fail("tool_choice", f"one of {', '.join(TOOL_CHOICES)} or a tool dict", value)
        return value

    @t.validate("tools")
    def _valid_tools(self, proposal: t.Bunch) -> list[dict[str, Any]]:
        for i, tool in enumerate(proposal.value):
            if tool.get("type", "function") == "function" and not tool.get("name"):
                raise _fail(f"tools[{i}]", "a function tool with a 'name'", tool)
        return list(proposal.value)

    @t.validate("noise_reduction")
    def _valid_noise(self, proposal: t.Bunch) -> str | None:
        value = proposal.value
        if value is not None and value not in NOISE_REDUCTION:
            raise _fail("noise_reduction", f"one of {', '.join(NOISE_REDUCTION)} or None", value)
        return value

    @t.validate("turn_detection")
    def _valid_turn_detection(self, proposal: t.Bunch) -> dict[str, Any] | None:
        return normalize_turn_detection(proposal.value)

    def session_config(self) -> dict[str, Any]:
        """The whole session as the ``session`` object of a ``session.update`` (JSON-ready).

        Nested as the service takes it (``audio.input``, ``audio.output``, ``providerData``); save
        it and give it back to ``apply_session()``, or to a variant.

        Returns:
            A new dict, ``{"type": "realtime", "model": ..., "audio": {...}, ...}``.

        Example:
            >>> config = w.session_config()
            >>> config["audio"]["output"]["voice"]
            'Clive'
        """
        return session_payload(self)
