"""The service's vocabulary.

The event names the code reads, their beta aliases, the total readers of an event's fields, and the
one accumulator of a response's text.

The Realtime API's GA names are the ones spelled here; some servers still send the beta names
(``response.text.delta``, ``response.audio_transcript.delta``, ``conversation.item.created``),
and ``canonical()`` reads each as its GA twin, so no other module spells an alias.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# -- server events the code reads -----------------------------------------------------------------
SESSION_UPDATED = "session.updated"
ERROR = "error"
RESPONSE_CREATED = "response.created"
RESPONSE_DONE = "response.done"
OUTPUT_TEXT_DELTA = "response.output_text.delta"
OUTPUT_TEXT_DONE = "response.output_text.done"
OUTPUT_TRANSCRIPT_DELTA = "response.output_audio_transcript.delta"
OUTPUT_TRANSCRIPT_DONE = "response.output_audio_transcript.done"
OUTPUT_AUDIO_DELTA = "response.output_audio.delta"
OUTPUT_AUDIO_DONE = "response.output_audio.done"
OUTPUT_ITEM_ADDED = "response.output_item.added"
OUTPUT_ITEM_DONE = "response.output_item.done"
FUNCTION_ARGUMENTS_DONE = "response.function_call_arguments.done"
ITEM_ADDED = "conversation.item.added"
ITEM_DONE = "conversation.item.done"
INPUT_TRANSCRIPTION_DELTA = "conversation.item.input_audio_transcription.delta"
INPUT_TRANSCRIPTION_COMPLETED = "conversation.item.input_audio_transcription.completed"
SPEECH_STARTED = "input_audio_buffer.speech_started"
SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
AUDIO_STARTED = "output_audio_buffer.started"
AUDIO_STOPPED = "output_audio_buffer.stopped"
AUDIO_CLEARED = "output_audio_buffer.cleared"

# -- client events the code sends (and reads back from the log) ----------------------------------
SESSION_UPDATE = "session.update"
ITEM_CREATE = "conversation.item.create"
RESPONSE_CREATE = "response.create"
RESPONSE_CANCEL = "response.cancel"
AUDIO_BUFFER_COMMIT = "input_audio_buffer.commit"
AUDIO_BUFFER_CLEAR = "output_audio_buffer.clear"

# Beta name -> GA name, for servers that still speak the beta.
BETA_ALIASES: Mapping[str, str] = {
    "response.text.delta": OUTPUT_TEXT_DELTA,
    "response.text.done": OUTPUT_TEXT_DONE,
    "response.audio_transcript.delta": OUTPUT_TRANSCRIPT_DELTA,
    "response.audio_transcript.done": OUTPUT_TRANSCRIPT_DONE,
    "response.audio.delta": OUTPUT_AUDIO_DELTA,
    "response.audio.done": OUTPUT_AUDIO_DONE,
    "conversation.item.created": ITEM_ADDED,
}

# The first text (or transcript) of a reply: what a felt latency runs to when nothing was heard.
OUTPUT_DELTAS = frozenset({OUTPUT_TEXT_DELTA, OUTPUT_TRANSCRIPT_DELTA})
AUDIO_ENDED = frozenset({AUDIO_STOPPED, AUDIO_CLEARED})

# -- local records of a call the kernel holds (the WebSocket transport): its own speaker plays
# the agent's audio, so it says when a reply's sound starts and stops, where the service's
# output_audio_buffer.* events say so over WebRTC (they exist only there).
SPEAKER_STARTED = "speaker.started"
SPEAKER_STOPPED = "speaker.stopped"


def playback_started(direction: str, etype: str) -> bool:
    """A reply's sound started: the service's buffer (WebRTC) or the kernel's speaker."""
    return (direction == "server" and etype == AUDIO_STARTED) or (
        direction == "local" and etype == SPEAKER_STARTED
    )


def playback_ended(direction: str, etype: str) -> bool:
    """A reply's sound ended (played out or cut): the service's buffer or the kernel's speaker."""
    return (direction == "server" and etype in AUDIO_ENDED) or (
        direction == "local" and etype == SPEAKER_STOPPED
    )


def canonical(event_type: Any) -> str:
    """The GA name of ``event_type`` (a beta alias becomes its GA twin; "" for a non-string)."""
    if not isinstance(event_type, str):
        return ""
    return BETA_ALIASES.get(event_type, event_type)


def client_event(event: Any) -> dict[str, Any]:
    """A user's client event as it can travel.

    A JSON-serializable dict with a string ``type`` (copied, so a later change to the caller's dict
    does not reach the service).
    """
    if not isinstance(event, Mapping):
        raise TypeError(f"event must be a dict with a 'type'; got {type(event).__name__}")
    etype = event.get("type")
    if not isinstance(etype, str) or not etype:
        raise ValueError(f"event needs a string 'type' (e.g. 'response.create'); got {etype!r}")
    try:
        return dict(json.loads(json.dumps(event)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {etype!r} is not JSON-serializable: {exc}") from None


def obj(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: wrong shapes count as absent."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str | None:
    """``value`` when it is a string, else None."""
    return value if isinstance(value, str) else None


def merge_transcript(so_far: str, delta: str) -> str:
    """An input transcription's text after one more delta.

    Deltas come in two shapes: the next piece, or the whole text so far (Inworld's Android client
    sends that): a delta that starts with what came before replaces it.
    """
    if so_far and delta.startswith(so_far):
        return delta
    return so_far + delta


class ResponseText:
    """The text of one response, from its server events (either spelling of each name).

    ``output_text`` (text deltas, or the ``.done`` text), ``transcript`` (the audio transcript) and
    ``text`` (the output text, else the transcript).
    """

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._transcripts: list[str] = []
        self._text_done: str | None = None
        self._transcript_done: str | None = None

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Take one event of this response; True when it carried text."""
        etype = canonical(event.get("type"))
        if etype == OUTPUT_TEXT_DELTA:
            self._texts.append(text(event.get("delta")) or "")
        elif etype == OUTPUT_TRANSCRIPT_DELTA:
            self._transcripts.append(text(event.get("delta")) or "")
        elif etype == OUTPUT_TEXT_DONE:
            self._text_done = text(event.get("text"))
        elif etype == OUTPUT_TRANSCRIPT_DONE:
            self._transcript_done = text(event.get("transcript"))
        else:
            return False
        return True

    @property
    def output_text(self) -> str:
        return self._text_done if self._text_done is not None else "".join(self._texts)

    @property
    def transcript(self) -> str:
        if self._transcript_done is not None:
            return self._transcript_done
        return "".join(self._transcripts)

    @property
    def text(self) -> str:
        return self.output_text or self.transcript

    def __repr__(self) -> str:
        return f"<ResponseText {self.text[:60]!r}>"
