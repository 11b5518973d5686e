"""Latency and fault knobs: one frozen dataclass, shared by the constructor and the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

VAD_ENGINES = ("auto", "silero", "energy")
TTS_ENGINES = ("auto", "espeak", "formant")
TRANSCRIPTION_DELTAS = ("incremental", "cumulative")
SIDEBAND_MODES = ("accept", "refuse", "absent")
AUTH_SCHEMES = {"bearer": "Bearer", "basic": "Basic"}


def _knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Knobs:
    """Per-emulator settings that shape timing and inject faults. All are optional.

    Knobs make the local service slow, flaky or strict on purpose, so a notebook or a test can see
    how a session copes: a late first token, a dropped data channel, a refused call, lost mic
    frames. Pass them to :class:`Emulator` as keyword arguments (``Emulator(close_after=40)``),
    change them on a running one with ``emu.configure(...)`` (calls pick them up at their next
    use), or give them to the ``realtime-emulator`` command line as ``--first-delta-delay-ms
    300``. Knobs are frozen: ``emu.knobs`` shows the current ones.

    Args:
        first_delta_delay_ms: Delay between response.created and the first delta (time to first
            token).
        delta_interval_ms: Interval between text/function-argument deltas; audio transcript deltas
            follow the synthetic speech instead.
        speech_rate: Synthetic speech rate in characters per second at session speed 1.0.
        reject_calls_status: Answer every POST /v1/realtime/calls, and every WebSocket session's
            handshake, with this HTTP status (400-599).
        answer_delay_ms: Wait this long before sending the SDP answer (or accepting a WebSocket
            session).
        drop_channel_after: Close the data channel after this many server events (per call); a
            WebSocket session's socket closes instead (code 1011), which ends the session.
        close_after: Close the peer connection after this many server events (per call); a WebSocket
            session's socket closes (code 1011).
        malformed_after: Send one malformed (non-JSON) message after this many server events (per
            call; a text frame on a WebSocket session).
        ice_servers: What GET /v1/realtime/ice-servers returns (a JSON list on the CLI); none by
            default, since host candidates always reach a loopback service. Tests list STUN/TURN
            entries here to exercise credentials and a server that never answers.
        exhaust_after: After this many server events, send Inworld's {errorType:
            SESSION_RESOURCES_EXHAUSTED} message; the call goes on unless exhaust_ends_call.
        exhaust_ends_call: After the exhaust_after message, send nothing more and end the call
            (Inworld's own page ignores the message and goes on, the default).
        transcription_deltas: Input transcription deltas: incremental (each delta is new words) or
            cumulative (each delta is the whole text so far, as some Inworld speech-to-text models
            send it).
        preload_voice: Load the speech VAD and the recognizer in a background thread when the
            emulator starts, so neither a connect nor the first spoken turn waits for them.
        events_kept: How many of its newest client and server events each call keeps for emu.calls
            (events_in/events_out); events_in_count, events_out_count and events_out_by_type count
            all of them.
        connect_timeout_s: A call whose peer connection has not connected this long after its offer
            is closed (state failed) and stops counting against max_calls (WebRTC only).
        max_calls: Live calls and WebSocket sessions together at most; one more offer, or one more
            WebSocket handshake, is answered 429 too_many_calls (none: no cap).
        vad: Turn detector: auto (Silero's speech model when realtime-widget[voice] is installed,
            else by loudness), silero, or energy.
        tts: The voice: auto (espeak-ng when realtime-widget[voice] or the espeak-ng system package
            is installed, else the synthetic formant voice), espeak, or formant.
        stt_model: Input transcription: auto (faster-whisper with the bundled tiny.en model of
            realtime-widget[voice]; else a '[speech, 1.2 s]' placeholder), none (the placeholder),
            or a faster-whisper model name or directory (a name is downloaded by faster-whisper).
        transcription_delay_ms: Extra delay before each input transcription's events, on top of the
            recognizer's own time.
        omit_function_call_name: Leave name out of response.function_call_arguments.done, as Inworld
            may (clients must take it from response.output_item.added).
        uplink_loss: Fraction (0-1) of the caller's 20 ms mic frames lost before the VAD and
            recognizer hear them (replaced by silence; seeded per call, so runs repeat; a WebSocket
            session's appended audio is cut into 20 ms frames too).
        uplink_jitter_ms: Hold each caller mic frame a random 0..N ms before the VAD and recognizer
            hear it (frames that overtake each other are heard out of order; seeded per call).
        ping_interval_ms: Send Inworld's ping event ({type: ping, timestamp}) this often (none:
            never).
        sideband: The sideband WebSocket (GET /v1/realtime?call_id=...): accept, refuse (answers
            403) or absent (answers 404, as a service without call control).
        sideband_drop_after: Close each sideband (code 1011) after sending it this many server
            events.
        auth_schemes: The Authorization schemes the key is accepted with: Bearer, Basic or both (on
            the CLI, comma-separated).
        chat_delay_ms: Wait this long before answering each POST /v1/chat/completions (a model's
            time).

    Raises:
        ValueError: A knob out of its range or not one of its choices (each message names the
            knob and what it takes).

    Example:
        >>> from realtime_widget.emulator import Emulator, Knobs
        >>> slow = Knobs(first_delta_delay_ms=800, uplink_loss=0.05)
        >>> slow.first_delta_delay_ms
        800
        >>> with Emulator(**slow.as_dict()) as emu:
        ...     emu.configure(drop_channel_after=50)  # the next calls drop their data channel
        ...     emu.knobs.drop_channel_after
        50
    """

    first_delta_delay_ms: float = _knob(
        120.0, "delay between response.created and the first delta (time to first token)"
    )
    delta_interval_ms: float = _knob(
        25.0,
        "interval between text/function-argument deltas; audio transcript deltas follow the "
        "synthetic speech instead",
    )
    speech_rate: float = _knob(
        15.0, "synthetic speech rate in characters per second at session speed 1.0"
    )
    reject_calls_status: int | None = _knob(
        None,
        "answer every POST /v1/realtime/calls, and every WebSocket session's handshake, with "
        "this HTTP status (400-599)",
    )
    answer_delay_ms: float = _knob(
        0.0, "wait this long before sending the SDP answer (or accepting a WebSocket session)"
    )
    drop_channel_after: int | None = _knob(
        None,
        "close the data channel after this many server events (per call); a WebSocket "
        "session's socket closes instead (code 1011), which ends the session",
    )
    close_after: int | None = _knob(
        None,
        "close the peer connection after this many server events (per call); a WebSocket "
        "session's socket closes (code 1011)",
    )
    malformed_after: int | None = _knob(
        None,
        "send one malformed (non-JSON) message after this many server events (per call; a "
        "text frame on a WebSocket session)",
    )
    ice_servers: tuple[dict[str, Any], ...] = _knob(
        (),
        "what GET /v1/realtime/ice-servers returns (a JSON list on the CLI); none by default, "
        "since host candidates always reach a loopback service. Tests list STUN/TURN entries "
        "here to exercise credentials and a server that never answers",
    )
    exhaust_after: int | None = _knob(
        None,
        "after this many server events, send Inworld's {errorType: SESSION_RESOURCES_EXHAUSTED} "
        "message; the call goes on unless exhaust_ends_call",
    )
    exhaust_ends_call: bool = _knob(
        False,
        "after the exhaust_after message, send nothing more and end the call (Inworld's own "
        "page ignores the message and goes on, the default)",
    )
    transcription_deltas: str = _knob(
        "incremental",
        "input transcription deltas: incremental (each delta is new words) or cumulative (each "
        "delta is the whole text so far, as some Inworld speech-to-text models send it)",
    )
    preload_voice: bool = _knob(
        True,
        "load the speech VAD and the recognizer in a background thread when the emulator "
        "starts, so neither a connect nor the first spoken turn waits for them",
    )
    events_kept: int = _knob(
        1000,
        "how many of its newest client and server events each call keeps for emu.calls "
        "(events_in/events_out); events_in_count, events_out_count and events_out_by_type "
        "count all of them",
    )
    connect_timeout_s: float = _knob(
        30.0,
        "a call whose peer connection has not connected this long after its offer is closed "
        "(state failed) and stops counting against max_calls (WebRTC only)",
    )
    max_calls: int | None = _knob(
        32,
        "live calls and WebSocket sessions together at most; one more offer, or one more "
        "WebSocket handshake, is answered 429 too_many_calls (none: no cap)",
    )
    vad: str = _knob(
        "auto",
        "turn detector: auto (Silero's speech model when realtime-widget[voice] is installed, "
        "else by loudness), silero, or energy",
    )
    tts: str = _knob(
        "auto",
        "the voice: auto (espeak-ng when realtime-widget[voice] or the espeak-ng system "
        "package is installed, else the synthetic formant voice), espeak, or formant",
    )
    stt_model: str = _knob(
        "auto",
        "input transcription: auto (faster-whisper with the bundled tiny.en model of "
        "realtime-widget[voice]; else a '[speech, 1.2 s]' placeholder), none (the placeholder), "
        "or a faster-whisper model name or directory (a name is downloaded by faster-whisper)",
    )
    transcription_delay_ms: float = _knob(
        0.0,
        "extra delay before each input transcription's events, on top of the recognizer's own time",
    )
    omit_function_call_name: bool = _knob(
        False,
        "leave name out of response.function_call_arguments.done, as Inworld may (clients "
        "must take it from response.output_item.added)",
    )
    uplink_loss: float = _knob(
        0.0,
        "fraction (0-1) of the caller's 20 ms mic frames lost before the VAD and recognizer "
        "hear them (replaced by silence; seeded per call, so runs repeat; a WebSocket "
        "session's appended audio is cut into 20 ms frames too)",
    )
    uplink_jitter_ms: float = _knob(
        0.0,
        "hold each caller mic frame a random 0..N ms before the VAD and recognizer hear it "
        "(frames that overtake each other are heard out of order; seeded per call)",
    )
    ping_interval_ms: float | None = _knob(
        None, "send Inworld's ping event ({type: ping, timestamp}) this often (none: never)"
    )
    sideband: str = _knob(
        "accept",
        "the sideband WebSocket (GET /v1/realtime?call_id=...): accept, refuse (answers 403) or "
        "absent (answers 404, as a service without call control)",
    )
    sideband_drop_after: int | None = _knob(
        None, "close each sideband (code 1011) after sending it this many server events"
    )
    auth_schemes: tuple[str, ...] = _knob(
        ("Bearer", "Basic"),
        "the Authorization schemes the key is accepted with: Bearer, Basic or both (on the CLI, "
        "comma-separated)",
    )

    chat_delay_ms: float = _knob(
        0.0, "wait this long before answering each POST /v1/chat/completions (a model's time)"
    )

    def __post_init__(self) -> None:
        if not self.chat_delay_ms >= 0:
            raise ValueError(f"chat_delay_ms must be >= 0, not {self.chat_delay_ms!r}")
        object.__setattr__(self, "ice_servers", tuple(dict(s) for s in self.ice_servers))
        schemes = self.auth_schemes
        if isinstance(schemes, str):
            schemes = tuple(s for s in schemes.replace(",", " ").split() if s)
        schemes = tuple(AUTH_SCHEMES.get(str(s).lower(), str(s)) for s in schemes)
        if not schemes or any(s not in AUTH_SCHEMES.values() for s in schemes):
            raise ValueError(
                f"auth_schemes must be Bearer, Basic or both, not {self.auth_schemes!r}"
            )
        object.__setattr__(self, "auth_schemes", schemes)
        if self.sideband not in SIDEBAND_MODES:
            raise ValueError(f"sideband must be one of {', '.join(SIDEBAND_MODES)}")
        choices = {"vad": VAD_ENGINES, "tts": TTS_ENGINES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if self.transcription_deltas not in TRANSCRIPTION_DELTAS:
            modes = ", ".join(TRANSCRIPTION_DELTAS)
            raise ValueError(f"transcription_deltas must be one of {modes}")
        if not isinstance(self.stt_model, str) or not self.stt_model:
            raise ValueError("stt_model must be auto, none, or a model name or directory")
        if self.ping_interval_ms is not None and not self.ping_interval_ms >= 10:
            raise ValueError("ping_interval_ms must be >= 10 (or None for no pings)")
        names = ("first_delta_delay_ms", "delta_interval_ms", "answer_delay_ms")
        for name in (*names, "transcription_delay_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not isinstance(self.events_kept, int) or self.events_kept < 0:
            raise ValueError(f"events_kept must be an integer >= 0, not {self.events_kept!r}")
        if not 0.0 <= self.uplink_loss <= 1.0:
            raise ValueError(f"uplink_loss must be a fraction 0..1, not {self.uplink_loss!r}")
        if not 0.0 <= self.uplink_jitter_ms <= 2000.0:
            raise ValueError(
                f"uplink_jitter_ms must be from 0 to 2000 ms, not {self.uplink_jitter_ms!r}"
            )
        if not self.connect_timeout_s > 0:
            raise ValueError("connect_timeout_s must be > 0")
        if self.max_calls is not None and self.max_calls < 1:
            raise ValueError("max_calls must be >= 1 (or None for no cap)")
        if self.speech_rate <= 0:
            raise ValueError("speech_rate must be > 0")
        if self.reject_calls_status is not None and not 400 <= self.reject_calls_status <= 599:
            raise ValueError("reject_calls_status must be an HTTP error status (400-599)")
        for name in (
            "drop_channel_after",
            "close_after",
            "malformed_after",
            "exhaust_after",
            "sideband_drop_after",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")

    @classmethod
    def from_kwargs(cls, base: Knobs | None = None, **kwargs: Any) -> Knobs:
        """Build knobs from keyword arguments, on top of ``base``.

        Args:
            base: The knobs to start from (default: every knob at its default).
            **kwargs: Knobs to change, by name.

        Returns:
            New knobs: ``base`` with ``kwargs`` applied (and checked).

        Raises:
            TypeError: A name in ``kwargs`` is not a knob.
            ValueError: A knob out of its range or not one of its choices.

        Example:
            >>> k = Knobs.from_kwargs(close_after=40)
            >>> Knobs.from_kwargs(k, vad="energy").close_after
            40
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown emulator knob(s): {', '.join(unknown)}")
        return dataclasses.replace(base or cls(), **kwargs)

    def as_dict(self) -> dict[str, Any]:
        """The knobs as a dict of name -> value, as ``Emulator(**knobs)`` takes them.

        Returns:
            Every knob by name (nested values copied).

        Example:
            >>> Knobs().as_dict()["max_calls"]
            32
        """
        return dataclasses.asdict(self)
