"""A spoken turn through Chromium's fake microphone, answered by the emulator's voice.

One browser session proves three things: the emulator hears real WebRTC audio and answers it
with a schema-valid automatic spoken reply; ``turns()`` measures an injected latency within a
stated tolerance; and the durable log file survives the kernel being killed mid-session.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from realtime_widget import EventLog
from tests.e2e.harness import NO_KEY_ENV, Notebook, chromium, code_notebook, jupyter_lab
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

FIRST_DELTA_DELAY_MS = 400  # injected: emulator waits this long between created and the reply
TOLERANCE_MS = 40  # what turns() must achieve against the injected delay

SETUP = f"""
from realtime_widget import Emulator, RealtimeWidget
# the duration transcriber answers at once: this test measures the service's reply latency
emu = Emulator(first_delta_delay_ms={FIRST_DELTA_DELAY_MS}, stt_model="none").start()
# interrupt_response off: the looping fake-mic file must not cut the reply under test
w = RealtimeWidget(
    base_url=emu.base_url, api_key=emu.api_key, log_path="voice.jsonl",
    turn_detection={{"type": "semantic_vad", "eagerness": "high", "interrupt_response": False}},
)
w
"""


def speech_wav(tmp: Path) -> Path:
    raw, wav = tmp / "speech-raw.wav", tmp / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(raw), "Hello there. What is the weather like today?"], check=True
    )
    # 48 kHz mono, half a second of lead-in, then 40 s of silence before Chromium loops it
    subprocess.run(
        ["sox", str(raw), "-r", "48000", "-c", "1", str(wav), "pad", "0.5", "40"], check=True
    )
    return wav


def test_spoken_turn_gets_a_spoken_reply(tmp_path: Path) -> None:
    nb_path = code_notebook(tmp_path / "voice.ipynb", SETUP)
    mic = speech_wav(tmp_path)
    with (
        jupyter_lab(tmp_path / "lab", [nb_path], env=NO_KEY_ENV) as lab,
        chromium(tmp_path, [f"--use-file-for-fake-audio-capture={mic}"]) as browser,
    ):
        page = browser.new_page()
        nb = Notebook.open(page, lab, "voice.ipynb", widget_cell=0)
        nb.kernel_eval("w.connect()")
        nb.poll(
            "any(r['event']['response']['status'] == 'completed' for r in w.events.of_type('response.done'))",
            timeout=40,
        )
        nb.poll("len(w.events.of_type('audio.audible')) >= 1", timeout=10)
        records = nb.kernel_json("list(w.events)")
        turns = nb.kernel_json(
            "w.events.turns().drop(columns=[c for c in w.events.turns().columns if str(w.events.turns()[c].dtype).startswith('datetime')]).to_dict('records')"
        )
        check_voice_turn(records)
        check_latency(turns)

        # The durable log: kill the kernel mid-session; the file still has everything.
        before = [(r["seq"], r["type"], r["t_ms"]) for r in records]
        page.evaluate(
            """() => { jupyterapp.shell.currentWidget.sessionContext.session.kernel
                 .requestExecute({code: 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'}); }"""
        )
        page.wait_for_timeout(1500)
        saved = EventLog.read_jsonl(lab.root / "voice.jsonl")
        assert len(saved) >= len(before)
        assert [(r["seq"], r["type"], r["t_ms"]) for r in saved][: len(before)] == before


def check_voice_turn(records: list[dict]) -> None:
    # every event the service sent is schema-valid, with consistent ids across each response
    check_stream([r["event"] for r in records if r["direction"] == "server"])
    types = [r["type"] for r in records]

    def first(t: str) -> int:
        assert t in types, (t, types)
        return types.index(t)

    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "output_audio_buffer.started",
        "response.output_audio_transcript.delta",
        "response.done",
    ]
    positions = [first(t) for t in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    transcript = records[first("conversation.item.input_audio_transcription.completed")]["event"]
    assert transcript["transcript"].startswith("[speech"), transcript
    done = records[first("response.done")]["event"]["response"]
    assert done["status"] == "completed" and done["usage"]["total_tokens"] > 0
    audible = [r["event"] for r in records if r["type"] == "audio.audible"]
    assert audible[0]["response_id"] == done["id"]  # the browser heard this very reply
    # the user's item is an audio message the service committed from our microphone
    user_items = [
        r["event"]["item"]
        for r in records
        if r["type"] == "conversation.item.added" and r["event"]["item"].get("role") == "user"
    ]
    assert user_items and user_items[0]["content"][0]["type"] == "input_audio"


def check_latency(turns: list[dict]) -> None:
    turn = next(t for t in turns if t["trigger"] == "speech")
    assert turn["status"] == "completed"
    # speech end -> response created: the emulator answers as its silence timer fires
    assert 0 <= turn["to_created_ms"] < 100, turn
    injected = turn["to_first_delta_ms"] - turn["to_created_ms"]
    print(
        f"injected {FIRST_DELTA_DELAY_MS} ms before the first delta; turns() measured {injected:.1f} ms"
    )
    assert abs(injected - FIRST_DELTA_DELAY_MS) <= TOLERANCE_MS, turn
    # the browser's ear hears the reply after the service starts it, within a playout delay
    assert (
        turn["to_first_delta_ms"] - 50
        <= turn["to_first_audio_ms"]
        <= turn["to_first_delta_ms"] + 400
    ), turn
