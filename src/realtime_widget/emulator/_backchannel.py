"""Inworld's back-channel: short "mm-hm"s sent while the user is still speaking.

Opt-in per session through ``providerData.backchannel.enabled``. Inworld's decider is a small
LLM; ours is a schedule on the mic stream's clock. Once the user has spoken for
``min_speech_ms`` (without the VAD's prefix padding), and then every ``eval_interval_ms`` while
they keep speaking, the emulator evaluates once:

- the assistant's audio is playing, or the last back-channel of this turn is less than
  ``min_gap_ms`` old -> no attempt, no event (not eligible);
- ``hard_deadline_ms`` is shorter than the emulator's notional attempt (``ATTEMPT_MS``: decider
  plus synthesis) -> ``response.backchannel.skipped`` with ``reason: "deadline_missed"``, the
  reason Inworld's official clients show (a miss does not count toward ``max_per_turn``);
- otherwise -> ``response.backchannel.audio.delta``* + ``response.backchannel.audio.done``.

Every event carries the attempt's ``backchannel_id``. After ``max_per_turn`` back-channels the
turn gets no more evaluations. These events are not in the OpenAI schema: they are Inworld's
documented additions.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._ids import new_id

PHRASE = "mm-hm"
RATE = 24_000  # the session's PCM16 format; what Inworld's audio deltas carry
CHUNK_S = 0.1  # seconds of audio per delta
ATTEMPT_MS = 300.0  # the emulator's notional decider + synthesis time, for hard_deadline_ms
DEADLINE_MISSED = "deadline_missed"


@dataclass(frozen=True)
class BackchannelConfig:
    # Inworld's documented fields (snake_case inside providerData.backchannel). Its default
    # min_speech_ms is 800; the emulator waits 1.5 s so ordinary short turns stay quiet.
    min_speech_ms: float = 1500.0
    eval_interval_ms: float = 800.0
    min_gap_ms: float = 4000.0
    max_per_turn: int = 3
    volume_gain: float = 0.6
    hard_deadline_ms: float = 1500.0


def backchannel_config(session: dict[str, Any]) -> BackchannelConfig | None:
    """The session's back-channel settings, or None when it is not enabled.

    Fields of the wrong type fall back to their defaults (the provider data is not validated).
    """
    provider = session.get("providerData")
    branch = provider.get("backchannel") if isinstance(provider, dict) else None
    if not isinstance(branch, dict) or branch.get("enabled") is not True:
        return None
    defaults = BackchannelConfig()
    values: dict[str, Any] = {}
    for name in (
        "min_speech_ms",
        "eval_interval_ms",
        "min_gap_ms",
        "volume_gain",
        "hard_deadline_ms",
    ):
        value = branch.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            values[name] = float(value)
    max_per_turn = branch.get("max_per_turn")
    if isinstance(max_per_turn, int) and not isinstance(max_per_turn, bool) and max_per_turn >= 0:
        values["max_per_turn"] = max_per_turn
    config = BackchannelConfig(**{**defaults.__dict__, **values})
    if config.eval_interval_ms <= 0:
        config = BackchannelConfig(**{**config.__dict__, "eval_interval_ms": 800.0})
    return config


def mm_hm(gain: float = 1.0) -> np.ndarray:
    """A hummed "mm-hm": two nasal syllables, the second higher, mono int16 at 24 kHz."""
    parts = []
    for seconds, f0, rise in ((0.16, 130.0, 0.0), (0.07, 0.0, 0.0), (0.22, 150.0, 0.25)):
        n = round(seconds * RATE)
        if f0 == 0.0:
            parts.append(np.zeros(n))
            continue
        t = np.arange(n) / RATE
        pitch = f0 * (1.0 + rise * t / seconds)
        phase = 2 * np.pi * np.cumsum(pitch) / RATE
        # A nasal murmur: a strong fundamental and a few weak harmonics, no open vowel.
        wave = sum(np.sin(k * phase) / k**2 for k in range(1, 6))
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.8
        parts.append(wave * envelope)
    out = np.concatenate(parts)
    out *= 0.3 * gain / float(np.max(np.abs(out)))
    return np.asarray(np.round(np.clip(out, -1.0, 1.0) * 32767), dtype=np.int16)


def audio_deltas(gain: float) -> list[str]:
    """The ``delta`` payloads (base64 PCM16 little-endian, 24 kHz mono) for one back-channel.

    None when ``volume_gain`` is 0 (Inworld: synthesis runs but no audio is delivered).
    """
    if gain <= 0:
        return []
    pcm = mm_hm(gain).astype("<i2")
    step = round(CHUNK_S * RATE)
    return [
        base64.b64encode(pcm[i : i + step].tobytes()).decode() for i in range(0, len(pcm), step)
    ]


class BackchannelTurn:
    """Decisions for one user turn, on the mic stream's clock (ms)."""

    def __init__(self, speech_start_ms: float) -> None:
        self.speech_start_ms = speech_start_ms
        self.evaluations = 0
        self.sent = 0
        self.last_sent_ms: float | None = None

    def decide(
        self, config: BackchannelConfig, now_ms: float, assistant_speaking: bool
    ) -> str | None:
        """What to do about a back-channel at ``now_ms``.

        ``"send"``, ``"deadline_missed"``, or None when there is nothing to send (no evaluation
        due, or the turn is not eligible).
        """
        if self.sent >= config.max_per_turn:
            return None
        due = (
            self.speech_start_ms + config.min_speech_ms + self.evaluations * config.eval_interval_ms
        )
        if now_ms < due:
            return None
        self.evaluations += 1
        if assistant_speaking:
            return None
        if self.last_sent_ms is not None and now_ms - self.last_sent_ms < config.min_gap_ms:
            return None
        if config.hard_deadline_ms < ATTEMPT_MS:
            return DEADLINE_MISSED
        self.sent += 1
        self.last_sent_ms = now_ms
        return "send"


def decision_events(decision: str, config: BackchannelConfig) -> list[tuple[str, dict[str, Any]]]:
    """The server events (type, fields) for one attempt, all with its ``backchannel_id``."""
    ident = {"backchannel_id": new_id("bc")}
    if decision != "send":
        return [("response.backchannel.skipped", {**ident, "reason": decision})]
    events = [
        ("response.backchannel.audio.delta", {**ident, "delta": delta})
        for delta in audio_deltas(config.volume_gain)
    ]
    events.append(("response.backchannel.audio.done", {**ident, "phrase": PHRASE}))
    return events
