"""Every feature on a call the kernel holds: spoken turns through the virtual microphone,
tools and approval, recordings on one clock, barge-in, and grids of variants with their rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime_widget import Runs, Script
from tests.helpers.headless import MakeEmulator, Open, types, until

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng speaks say(text=...) (scripts/setup)"
)


@needs_espeak
async def test_a_spoken_question_is_heard_transcribed_and_answered(
    session: Open, emu_with: MakeEmulator
) -> None:
    pytest.importorskip("faster_whisper", reason="the emulator's recognizer (voice extra)")
    emu = emu_with(vad="silero", stt_model="auto", tts="espeak", preload_voice=True)
    assert emu.wait_voice_ready(timeout=60)
    s = session(emu)  # mic=True: silence streams between clips, as a phone line
    await s.connect()
    reply = await s.ask("What is the weather in Paris?", spoken=True, timeout=60)
    assert reply.status == "completed"
    heard = s.events.of_type("conversation.item.input_audio_transcription.completed")
    assert "weather" in heard[-1]["event"]["transcript"].lower()
    assert "weather" in reply.text.lower()
    started = s.events.of_type("say.started")[0]["t_ms"]
    speech = s.events.of_type("input_audio_buffer.speech_started")[0]["t_ms"]
    assert started <= speech  # the service heard the clip after it began, not before


async def test_tools_run_in_the_kernel_and_wait_for_approval(session: Open) -> None:
    s = session(mic=False)
    calls: list[str] = []

    @s.tool
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        return {"city": city, "sky": "clear"}

    @s.tool(approve=True)
    def book_table(place: str) -> str:
        """Book a table."""
        return f"booked at {place}"

    await s.connect()
    reply = await s.ask("Use get weather for Paris.", timeout=30)
    assert calls == ["Paris"]
    done = s.events.of_type("tool.finished")[0]["event"]
    assert done["status"] == "ok" and '"sky": "clear"' in done["output_preview"]
    await until(lambda: len(s.events.of_type("response.done")) >= 2)
    assert (
        "clear"
        in s.events.of_type("response.output_audio_transcript.done")[-1]["event"]["transcript"]
        or reply.status == "completed"
    )

    s.send_text("Please book table at Chez Nous.")
    held = await until(lambda: [c for c in s.tool_calls if c["name"] == "book_table"])
    assert held[0]["status"] == "pending_approval"
    assert not [r for r in s.events.of_type("tool.finished") if r["event"]["name"] == "book_table"]
    s.approve_tool_call(held[0]["call_id"])
    ran = await until(
        lambda: [r for r in s.events.of_type("tool.finished") if r["event"]["name"] == "book_table"]
    )
    assert ran[0]["event"]["status"] == "ok"
    hop = s.events.turns()  # the tool's own hop is measured as on a page
    assert "tool_hop_ms" in hop.columns or len(hop) >= 2


async def test_the_recording_holds_both_sides_on_one_clock(session: Open) -> None:
    s = session(record=True)
    await s.connect()
    rate = 24000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32)
    clip = s.say((tone, rate))  # loud from its first sample
    await clip
    await until(lambda: s.events.of_type("say.ended"))
    reply = await s.ask("Say something back.")
    await until(lambda: s.events.of_type("speaker.stopped"), timeout=20)
    await until(lambda: s.recording is not None and s.recording.duration_s > 2.0)
    rec = s.recording
    assert rec is not None and rec.sample_rate == rate and not rec.gaps
    # the clip's first sound in the user's track: where say.started says it began
    started = s.events.of_type("say.started")[0]["t_ms"]
    onset_ms = rec.time_of(int(np.flatnonzero(np.abs(rec.user) > 0.01)[0]))
    assert abs(onset_ms - started) <= 5.0, (onset_ms, started)
    # the reply in the agent's track: where audio.audible says it was first heard (10 ms RMS)
    heard = next(
        r["t_ms"]
        for r in s.events.of_type("audio.audible")
        if r["event"]["response_id"] == reply.response_id
    )
    frame = rate // 100
    agent = rec.agent[: len(rec.agent) // frame * frame].reshape(-1, frame)
    first = int(np.flatnonzero(np.sqrt((agent**2).mean(axis=1)) > 0.01)[0])
    assert abs(rec.time_of(first * frame) - heard) <= 10.0, (rec.time_of(first * frame), heard)


@needs_espeak
async def test_speech_over_the_reply_cuts_it_to_what_was_heard(
    session: Open, emu_with: MakeEmulator
) -> None:
    emu = emu_with(speech_rate=15.0)  # a reply that speaks for seconds; the energy VAD
    s = session(emu)
    await s.connect()
    s.send_text("Tell me everything about the harbour and its ships.")
    await until(lambda: s.events.of_type("speaker.started"))
    await until(lambda: s.events.of_type("response.output_audio.delta")[3:])
    s.say(text="Wait, stop there please.")
    cut = await until(
        lambda: [
            r for r in s.events.of_type("speaker.stopped") if r["event"]["reason"] == "interrupted"
        ],
        timeout=20,
    )
    truncate = s.events.of_type("conversation.item.truncate")
    assert truncate and truncate[0]["event"]["item_id"] == cut[0]["event"]["item_id"]
    assert 0 < truncate[0]["event"]["audio_end_ms"] == cut[0]["event"]["played_ms"]
    assert "input_audio_buffer.speech_started" in types(s, "server")


async def test_a_grid_of_variants_gives_rows_parquet_and_a_summary(
    session: Open, tmp_path: Path
) -> None:
    s = session(mic=False)
    await s.connect()
    runs = await s.run_script(
        Script(["Hello there!", "What's on the menu?"]),
        variants={"slow": {"speed": 0.9}, "fast": {"speed": 1.3, "voice": "Ashley"}},
        repeat=2,
        progress=False,
    )
    assert runs.error is None and runs.done
    turns = runs.turns()
    assert len(turns) == 8 and set(turns.status) == {"completed"}
    assert turns.groupby("variant").size().to_dict() == {"fast": 4, "slow": 4}
    assert turns.to_first_output_ms.notna().all() and turns.to_first_audio_ms.notna().all()
    confirmed = [run.confirmed["audio"]["output"]["speed"] for run in runs.runs]
    assert sorted(set(confirmed)) == [0.9, 1.3]
    back = Runs.read_parquet(runs.to_parquet(tmp_path / "runs"))
    assert back.turns()[["variant", "turn", "text"]].equals(turns[["variant", "turn", "text"]])
    summary = runs.summary()
    assert list(summary.index) == ["slow", "fast"] or set(summary.index) == {"slow", "fast"}
    assert s.speed == 1.0  # the session is left as it was
