"""The emulator's OpenAI-compatible side: ``POST /v1/chat/completions`` and ``/v1/audio/speech``.

Chat answers come from a ``chat_responder`` (a callable ``(messages, request) -> str``, sync
or async, where ``request`` is the whole JSON body). The default, :func:`stand_in_responder`,
answers the product's own judge and caller requests deterministically, so judged and simulated
runs work end to end with no key:

- a judge request gets a score from the rubric's words found in the agent's words (and tool
  calls) of the judged part, with a reason naming the words found and missing;
- a caller request gets the next unsaid part of its goal, then says the goal is met.

It shows the machinery, not a judgement: it matches words, it understands nothing. Other
requests get a fixed placeholder answer (a JSON object of the schema's shape when one is asked
for). Speech is espeak-ng (the ``tts`` knob, as the realtime voice), 24 kHz mono 16-bit, as a
WAV file or raw PCM.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import re
import secrets
import time
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import numpy as np
from aiohttp import web

from ._audio import SAMPLE_RATE, Speech
from ._knobs import Knobs
from ._tts import engine, split_segments, voice_style, words_per_minute

ChatResponder = Callable[
    [list[dict[str, Any]], dict[str, Any]], str | Awaitable[str]
]  # (messages, request) -> the assistant's content

CHAT_PATH = "/v1/chat/completions"
SPEECH_PATH = "/v1/audio/speech"
SPEECH_RATE = 24_000  # OpenAI's rate for pcm; the WAV header says it too
SPEECH_FORMATS = ("wav", "pcm")
MAX_SPEECH_CHARS = 4096  # OpenAI's limit for one request
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# The first line of the product's own system prompts (experiments.judge / experiments.caller).
JUDGE_MARKER = "realtime-widget judge, format 1"
CALLER_MARKER = "realtime-widget caller, format 1"
CALLER_DONE = "That's everything I needed, thank you."

_STOPWORDS = frozenset(  # words of any rubric, not of its subject
    """
    about above after again agent agents also answer answers asks asked because been
    before being below between both could does doing done each every from have having into
    itself just least less mentions more most must need needs offers only other over said
    same says should some such than that their them then there these they this those
    through under until upon very what when where which while will with within without
    would your user users reply replies response responds gives give tells keeps makes
    """.split()  # noqa: SIM905
)


def _error(
    status: int, message: str, param: str | None = None, code: str = "invalid_request"
) -> web.Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"type": kind, "code": code, "message": message, "param": param}}
    return web.json_response(body, status=status)


def content_text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def content_words(text: str) -> list[str]:
    """The words of ``text`` worth matching: four letters or more, not a stop word, once each."""
    return list(dict.fromkeys(w for w in _words(text) if len(w) >= 4 and w not in _STOPWORDS))


def _found(word: str, said: set[str]) -> bool:
    stem = word[:5] if len(word) > 5 else word  # "confirmed" matches "confirm", "options"
    return any(w.startswith(stem) for w in said)


def _sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for block in re.split(r"(?m)^## ", text):
        title, _, body = block.partition("\n")
        if body or title:
            out[title.strip()] = body.strip()
    return out


def stand_in_judgement(prompt: str) -> dict[str, Any]:
    """The stand-in judge.

    The share of the rubric's content words found in what the agent said (and the tool calls) under
    ``## Judged``, mapped onto the scale.
    """
    parts = _sections(prompt)
    rubric = parts.get("Rubric", "")
    lo, hi = 1, 5
    scale = re.match(r"\s*(-?\d+)\s+to\s+(-?\d+)", parts.get("Scale", ""))
    if scale:
        lo, hi = int(scale.group(1)), int(scale.group(2))
    judged = next((body for title, body in parts.items() if title.startswith("Judged")), "")
    said_lines = [
        line.partition(":")[2]
        for line in judged.splitlines()
        if line.startswith(("agent:", "tool call:", "tool calls:"))
    ]
    said = set(_words(" ".join(said_lines)))
    wanted = content_words(rubric)
    found = [w for w in wanted if _found(w, said)]
    missing = [w for w in wanted if w not in found]
    # a rubric of stop words only: whether the agent said anything
    score = lo + round((hi - lo) * len(found) / len(wanted)) if wanted else (hi if said else lo)
    reason = (
        "Stand-in judge (word matching, not a judgement): found "
        + (", ".join(repr(w) for w in found) or "none of the rubric's words")
        + "; missing "
        + (", ".join(repr(w) for w in missing) or "none")
        + "."
    )
    return {"score": score, "reason": reason}


def goal_steps(goal: str) -> list[str]:
    """The goal cut into the parts a stand-in caller says one by one.

    At commas, semicolons, 'and', and before 'at' / 'for' / 'with' phrases ("Book a table for two at
    8 pm" -> "Book a table for two", "At 8 pm").
    """
    goal = goal.strip().rstrip(".!?")
    pieces = re.split(r"\s*[,;]\s*|\s+and\s+|\s+(?=(?:at|with|near|on)\s)", goal, flags=re.I)
    out = []
    for piece in pieces:
        piece = piece.strip()
        if piece:
            out.append(piece[0].upper() + piece[1:] + ".")
    return out or ["Hello."]


def stand_in_caller_turn(system: str, caller_lines: Sequence[str]) -> dict[str, Any]:
    """The stand-in caller.

    The first part of its goal whose words it has not said yet, then ``goal_met``.
    """
    goal = ""
    for line in system.splitlines():
        if line.startswith("Goal:"):
            goal = line.partition(":")[2].strip()
    said = set(_words(" ".join(caller_lines)))
    for step in goal_steps(goal):
        words = content_words(step) or _words(step)
        if not all(_found(w, said) for w in words):
            return {"say": step, "goal_met": False}
    return {"say": CALLER_DONE, "goal_met": True}


def _schema_shape(schema: Any) -> Any:
    """A value of a JSON schema's shape (placeholder answers to requests that are not ours)."""
    if not isinstance(schema, Mapping):
        return "emulated"
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: _schema_shape(v) for k, v in props.items() if isinstance(k, str)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if schema.get("enum"):
        return schema["enum"][0]
    return "emulated"


def stand_in_responder(messages: list[dict[str, Any]], request: dict[str, Any]) -> str:
    """The default chat responder.

    Deterministic answers to the product's judge and caller prompts (see the module's doc: word
    matching, not understanding), a placeholder otherwise.
    """
    system = "\n".join(
        content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    if system.startswith(JUDGE_MARKER):
        user = "\n".join(
            content_text(m.get("content")) for m in messages if m.get("role") == "user"
        )
        return json.dumps(stand_in_judgement(user))
    if system.startswith(CALLER_MARKER):
        lines = [content_text(m.get("content")) for m in messages if m.get("role") == "assistant"]
        return json.dumps(stand_in_caller_turn(system, lines))
    fmt = request.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return json.dumps(_schema_shape(schema))
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
        return json.dumps({"reply": "emulated"})
    last = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"Emulated reply to: {' '.join(last.split())[:200]}"


def chat_problem(body: Any) -> tuple[str, str] | None:
    """(message, param) saying what is wrong with a chat completions request, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object.", ""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model is required: a model name such as 'openai/gpt-4.1-mini'.", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content} objects.", "messages"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"messages[{i}].role must be one of {', '.join(ROLES)}.", f"messages[{i}].role"
        content = m.get("content")
        if not (isinstance(content, str | list) or (content is None and m["role"] == "assistant")):
            return (
                f"messages[{i}].content must be a string or a list of content parts.",
                f"messages[{i}].content",
            )
    if body.get("stream"):
        return "stream=true is not supported by the emulator: ask without streaming.", "stream"
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return (
                "response_format.type must be text, json_object or json_schema.",
                "response_format",
            )
        if kind == "json_schema" and not isinstance(
            (fmt.get("json_schema") or {}).get("schema")
            if isinstance(fmt.get("json_schema"), dict)
            else None,
            dict,
        ):
            return (
                "response_format.json_schema.schema must be a JSON schema object.",
                "response_format.json_schema",
            )
    n = body.get("n", 1)
    if n != 1:
        return "n must be 1 on the emulator.", "n"
    return None


def speak_pcm(text: str, voice: str, speed: float, knobs: Knobs) -> np.ndarray:
    """``text`` spoken (espeak-ng per the ``tts`` knob, else the formant voice) as int16 at 24 kHz.

    Blocking: call it in a thread.
    """
    found = engine() if knobs.tts != "formant" else None
    if found is None and knobs.tts == "espeak":
        raise RuntimeError(
            'tts="espeak": no espeak-ng library (pip install "realtime-widget[voice]", or the '
            "espeak-ng system package)"
        )
    if found is not None:
        style, wpm = voice_style(voice), words_per_minute(speed, knobs.speech_rate)
        pieces = [found.synthesize(piece, style, wpm)[0] for _, piece in split_segments(text)]
        pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        rate = found.sample_rate
    else:
        sound = Speech(text, knobs.speech_rate, speed, voice)
        pcm, rate = sound.render(0, len(sound)), SAMPLE_RATE
    if rate == SPEECH_RATE or not len(pcm):
        return pcm.astype(np.int16)
    n = round(len(pcm) * SPEECH_RATE / rate)
    x = np.interp(np.arange(n) * rate / SPEECH_RATE, np.arange(len(pcm)), pcm.astype(np.float64))
    return np.asarray(np.clip(np.round(x), -32768, 32767), dtype=np.int16)


def wav_bytes(pcm: np.ndarray, rate: int = SPEECH_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return out.getvalue()


class ChatRoutes:
    """The two routes, sharing the server's auth check and knobs."""

    def __init__(
        self,
        unauthorized: Callable[[web.Request], web.Response | None],
        knobs: Callable[[], Knobs],
        responder: ChatResponder | None = None,
    ) -> None:
        self._unauthorized = unauthorized
        self._knobs = knobs
        self._responder: ChatResponder = responder or stand_in_responder
        self.requests = 0  # chat completions answered (tests and benchmarks count them)

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(CHAT_PATH, self.chat)
        app.router.add_post(SPEECH_PATH, self.speech)

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError):
            return None

    async def chat(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        body = await self._json(request)
        problem = chat_problem(body)
        if problem:
            return _error(400, problem[0], problem[1] or None)
        self.requests += 1
        delay = self._knobs().chat_delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        messages = [dict(m) for m in body["messages"]]
        answer = self._responder(messages, body)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, str):
            return _error(
                500,
                f"the emulator's chat_responder returned {type(answer).__name__}, not str",
                code="chat_responder_error",
            )
        prompt_words = sum(len(content_text(m.get("content")).split()) for m in messages)
        answer_words = len(answer.split())
        return web.json_response(
            {
                "id": f"chatcmpl-{secrets.token_hex(12)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_words,
                    "completion_tokens": answer_words,
                    "total_tokens": prompt_words + answer_words,
                },
            }
        )

    async def speech(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        body = await self._json(request)
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        text, voice = body.get("input"), body.get("voice", "")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "input is required: the text to speak.", "input")
        if len(text) > MAX_SPEECH_CHARS:
            return _error(400, f"input is longer than {MAX_SPEECH_CHARS} characters.", "input")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _error(400, "model is required: a speech model name.", "model")
        if not isinstance(voice, str) or not voice:
            return _error(400, "voice is required: a voice name such as 'Dennis'.", "voice")
        fmt = body.get("response_format", "wav")
        if fmt not in SPEECH_FORMATS:
            return _error(
                400,
                f"response_format must be one of {', '.join(SPEECH_FORMATS)} on the emulator, "
                f"not {fmt!r}.",
                "response_format",
            )
        speed = body.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4:
            return _error(400, "speed must be a number from 0.25 to 4.", "speed")
        pcm = await asyncio.to_thread(speak_pcm, text, voice, float(speed), self._knobs())
        if fmt == "pcm":
            return web.Response(body=pcm.astype("<i2").tobytes(), content_type="audio/pcm")
        return web.Response(body=wav_bytes(pcm), content_type="audio/wav")
