"""Hardening (issue 9): bounded memory, a browser-facing HTTP surface, and a VAD that does not
mistake Chromium's stock fake-microphone beep for speech."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import tracemalloc
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from test_emu_http import HOLLOW_OFFER, assert_error, post_offer

from realtime_widget.emulator import Emulator, Knobs, ResponseContext, _server, default_transcriber
from realtime_widget.emulator._audio import SAMPLE_RATE, Speech, synthesize
from realtime_widget.emulator._call import EmulatedCall
from realtime_widget.emulator._loopback import install_loopback_candidates
from realtime_widget.emulator._mic import MicMonitor, Segment
from realtime_widget.emulator._vad import EnergyVad, VadEvent, VadParams, vad_params
from tests.helpers.emu_checks import FAST
from tests.helpers.protocol_checks import check_stream

FRAME = 960  # 20 ms at 48 kHz

# --- the stock fake microphone ----------------------------------------------------------------

# Frame levels (RMS) the emulator measured from headless Chromium's stock fake device (no file:
# a 20 ms 400 Hz beep every 500 ms) through the widget's getUserMedia constraints (echo
# cancellation, noise suppression, AGC) and Opus: three frames above -30 dBFS, then a tail.
BEEP_FRAMES_RMS = (0.186, 0.402, 0.052, 0.024, 0.012, 0.009, 0.006, 0.003)
BEEP_PERIOD_FRAMES = 25  # 500 ms


def beep_pattern(seconds: float, offset_frames: int = 0) -> Iterator[np.ndarray]:
    """Mono float frames: Chromium's beep as the emulator receives it, repeated."""
    tone = np.sin(2 * np.pi * 400 * np.arange(FRAME) / SAMPLE_RATE) * np.sqrt(2)
    for i in range(round(seconds / 0.02)):
        k = (i + offset_frames) % BEEP_PERIOD_FRAMES
        yield tone * BEEP_FRAMES_RMS[k] if k < len(BEEP_FRAMES_RMS) else np.zeros(FRAME)


def vad_events(
    frames: Iterator[np.ndarray], turn_detection: dict[str, Any], vad: str = "energy"
) -> list[VadEvent]:
    events: list[VadEvent] = []
    mic = MicMonitor(lambda e, s: events.append(e), vad_params(turn_detection), vad=vad)
    assert mic.detector == vad
    for frame in frames:
        mic.feed(frame, SAMPLE_RATE)
    return events


@pytest.mark.parametrize("vad", ["energy", "silero"])
@pytest.mark.parametrize("offset", [0, 7, 19])
@pytest.mark.parametrize(
    "turn_detection",
    [{"type": "semantic_vad", "eagerness": "high"}, {"type": "server_vad", "threshold": 0.5}],
)
def test_the_stock_fake_mic_beep_never_starts_a_turn(
    offset: int, turn_detection: dict[str, Any], vad: str
) -> None:
    assert vad_events(beep_pattern(10.0, offset), turn_detection, vad) == []


def test_the_beep_is_what_fooled_the_old_60_ms_onset() -> None:
    # The same pattern with the previous minimum speech duration starts a turn on every beep:
    # the defect this guards against (a typed reply cut by turn_detected in most runs).
    params = vad_params({"type": "semantic_vad", "eagerness": "high"})
    assert params is not None
    old = EnergyVad(
        VadParams(params.threshold_rms, params.silence_ms, params.prefix_padding_ms, 60.0)
    )
    started, t = 0, 0.0
    for frame in beep_pattern(5.0):
        event = old.feed(float(np.sqrt(np.mean(frame * frame))), t, t + 20)
        started += event is not None and event.kind == "speech_started"
        t += 20
    assert started >= 9


def speech_frames(pcm: np.ndarray, rate: int) -> Iterator[np.ndarray]:
    """int16 ``pcm`` at ``rate`` as 48 kHz float frames, with silence before and after."""
    x = pcm.astype(np.float64) / 32768
    if rate != SAMPLE_RATE:
        x = np.interp(np.arange(0, len(x), rate / SAMPLE_RATE), np.arange(len(x)), x)
    x = np.concatenate([np.zeros(FRAME * 10), x, np.zeros(FRAME * 50)])
    for i in range(0, len(x) - FRAME + 1, FRAME):
        yield x[i : i + FRAME]


def test_fast_synthetic_speech_still_starts_a_turn() -> None:
    text = "hello there, how are you doing today"  # 36 characters in one second
    pcm = synthesize(text, chars_per_s=len(text), voice="mic")
    events = vad_events(speech_frames(pcm, SAMPLE_RATE), {"type": "server_vad"})
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.parametrize("vad", ["energy", "silero"])
@pytest.mark.parametrize("words", ["Yes.", "OK", "Hello, can you hear me?"])
def test_espeak_speech_starts_a_turn(words: str, vad: str, tmp_path: Path) -> None:
    path = tmp_path / "words.wav"
    subprocess.run(["espeak-ng", "-w", str(path), words], check=True)
    with wave.open(str(path)) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
    events = vad_events(
        speech_frames(pcm, rate), {"type": "semantic_vad", "eagerness": "high"}, vad
    )
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]


# --- memory: speech rendered per frame, events kept in a window ------------------------------


def test_speech_renders_any_frame_without_the_whole_reply() -> None:
    text = "Hello there, a long reply. " * 2300  # ~60 KB: about an hour of speech
    tracemalloc.start()
    try:
        speech = Speech(text, chars_per_s=15.0)
        frames = [
            speech.render(lo, lo + FRAME) for lo in (0, len(speech) // 2, len(speech) - FRAME)
        ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(speech) / SAMPLE_RATE > 3600
    assert peak < 16e6  # the whole reply as float64 would be 1.4 GB
    assert all(f.dtype == np.int16 and len(f) == FRAME for f in frames)
    assert max(int(np.max(np.abs(f))) for f in frames) > 1000  # audible, not silence
    # Frame by frame is sample for sample the whole buffer.
    short = Speech("Hello there. How are you?", 15.0)
    whole = short.render(0, len(short))
    pieces = np.concatenate([short.render(i, i + FRAME) for i in range(0, len(short), FRAME)])
    assert np.array_equal(whole, pieces)


class Channel:
    label = "oai-events"
    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def close(self) -> None:
        self.readyState = "closed"


def long_reply(ctx: ResponseContext) -> str:
    return "Hello there, a long reply. " * 2300


@pytest.fixture
async def make_call() -> AsyncIterator[Any]:
    calls: list[EmulatedCall] = []

    def make(**knobs: Any) -> EmulatedCall:
        responder = knobs.pop("responder", long_reply)
        call = EmulatedCall(lambda: Knobs(**{**FAST, **knobs}), responder, default_transcriber)
        call.channel = Channel()  # type: ignore[assignment]
        call.state = "open"
        calls.append(call)
        return call

    yield make
    for call in calls:
        await call.close()


@pytest.mark.netns  # an EmulatedCall owns an (unconnected) RTCPeerConnection
async def test_a_60_kb_spoken_reply_costs_megabytes_not_gigabytes(make_call: Any) -> None:
    call = make_call(speech_rate=15.0)
    tracemalloc.start()
    try:
        await call.handle(json.dumps({"type": "response.create"}))
        for _ in range(500):
            if any(
                e["type"] == "response.output_audio_transcript.delta" for e in call.channel.sent
            ):
                break
            await asyncio.sleep(0.01)
        for t in (0.0, 1800.0):  # frames from the start and from half an hour in
            utterance = call.playback.playing
            assert utterance is not None
            call.playback.track._slice(utterance.start + t)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any(e["type"] == "output_audio_buffer.started" for e in call.channel.sent)
    assert peak < 32e6, f"peak {peak / 1e6:.0f} MB"
    await call.handle(json.dumps({"type": "response.cancel"}))
    check_stream(call.channel.sent)


@pytest.mark.netns
async def test_each_call_keeps_a_window_of_events_and_counts_them_all(make_call: Any) -> None:
    call = make_call(events_kept=10)
    for i in range(30):
        await call.handle(
            json.dumps({"type": "session.update", "session": {"instructions": str(i)}})
        )
    await call.handle("{not json")
    snap = call.snapshot()
    assert len(snap["events_in"]) == 10 and snap["events_in_count"] == 31
    assert snap["events_in"][-1] == {"malformed": "{not json"}
    assert len(snap["events_out"]) == 10 and snap["events_out_count"] == 31
    assert snap["events_out_by_type"] == {"session.updated": 30, "error": 1}
    assert [e["session"]["instructions"] for e in snap["events_out"][:-1]] == [
        str(i) for i in range(21, 30)
    ]  # the newest ones


def test_events_kept_knob_is_validated() -> None:
    assert Knobs().events_kept == 1000
    with pytest.raises(ValueError, match="events_kept"):
        Knobs(events_kept=-1)


# --- the HTTP surface ----------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.mark.parametrize(
    "path", ["/v1/realtime/calls", "/v1/realtime/ice-servers", "/v1/realtime/calls/x/hangup"]
)
def test_cors_preflight_is_answered(emu: Emulator, path: str) -> None:
    response = httpx.options(
        emu.base_url + path,
        headers={
            "Origin": "http://127.0.0.1:9999",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    h = response.headers
    assert h["Access-Control-Allow-Origin"] == "*"
    assert {"GET", "POST"} <= {m.strip() for m in h["Access-Control-Allow-Methods"].split(",")}
    allowed = {x.strip().lower() for x in h["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed


def test_real_responses_carry_the_cors_headers(emu: Emulator) -> None:
    origin = {"Origin": "http://127.0.0.1:9999"}
    ok = httpx.get(
        f"{emu.base_url}/v1/realtime/ice-servers",
        headers={**origin, "Authorization": f"Bearer {emu.api_key}"},
    )
    denied = post_offer(emu, HOLLOW_OFFER, Authorization="Bearer wrong", **origin)
    bad = post_offer(emu, "hello", **origin)
    for response in (ok, denied, bad):  # a page can read the error too, not just "failed"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Location" in bad.headers["Access-Control-Expose-Headers"]
    inspect = httpx.get(f"{emu.base_url}/emulator/calls", headers=origin)
    assert "Access-Control-Allow-Origin" not in inspect.headers  # not a browser-facing route


def test_a_huge_body_is_413_with_words(emu: Emulator) -> None:
    huge = HOLLOW_OFFER + "a=x-padding:" + "x" * 300_000 + "\r\n"
    response = post_offer(emu, huge)
    assert_error(response, 413, "request_too_large")
    assert "256 KB" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield HOLLOW_OFFER.encode()
        for _ in range(40):
            yield b"a=x-padding:" + b"x" * 10_000 + b"\r\n"

    chunked = httpx.post(
        f"{emu.base_url}/v1/realtime/calls",
        content=chunks(),
        headers={"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/sdp"},
    )
    assert_error(chunked, 413, "request_too_large")
    assert emu.calls == []


async def offer_only() -> tuple[RTCPeerConnection, str]:
    """A real offer from a peer that will never apply the answer: its call stays connecting."""
    install_loopback_candidates()
    pc = RTCPeerConnection()
    pc.createDataChannel("oai-events")
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def apost(emu: Emulator, sdp: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{emu.base_url}/v1/realtime/calls",
            content=sdp,
            headers={"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/sdp"},
        )


@pytest.mark.netns
async def test_live_calls_are_capped_with_429() -> None:
    peers: list[RTCPeerConnection] = []
    emu = Emulator(max_calls=2, **FAST).start()
    try:
        for _ in range(2):
            pc, sdp = await offer_only()
            peers.append(pc)
            assert (await apost(emu, sdp)).status_code == 201
        pc, sdp = await offer_only()
        peers.append(pc)
        refused = await apost(emu, sdp)
        assert_error(refused, 429, "too_many_calls")
        assert "max_calls" in refused.json()["error"]["message"]
        assert len(emu.calls) == 2
        first = emu.calls[0]["id"]
        async with httpx.AsyncClient() as http:
            hangup = await http.post(
                f"{emu.base_url}/v1/realtime/calls/{first}/hangup",
                headers={"Authorization": f"Bearer {emu.api_key}"},
            )
        assert hangup.status_code == 200
        assert (await apost(emu, sdp)).status_code == 201  # a finished call frees its place
    finally:
        emu.stop()
        for pc in peers:
            await pc.close()


@pytest.mark.netns
async def test_a_call_that_never_connects_is_pruned() -> None:
    emu = Emulator(connect_timeout_s=0.5, max_calls=1, **FAST).start()
    pc, sdp = await offer_only()
    try:
        assert (await apost(emu, sdp)).status_code == 201
        assert emu.calls[0]["state"] == "connecting"
        for _ in range(100):
            if emu.calls[0]["state"] != "connecting":
                break
            await asyncio.sleep(0.05)
        call = emu.calls[0]
        assert call["state"] == "failed"
        assert "not connected within 0.5 s" in call["faults"][0]
        pc2, sdp2 = await offer_only()
        try:
            assert (await apost(emu, sdp2)).status_code == 201  # its place is free again
        finally:
            await pc2.close()
    finally:
        emu.stop()
        await pc.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert _server.is_loopback(host) is loopback


def test_binding_beyond_loopback_warns_loudly(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Emulator():  # loopback: quiet
        pass
    assert "NOT a loopback" not in capsys.readouterr().err
    # Never bind anything but loopback in a test: pretend 127.0.0.1 is not loopback instead.
    monkeypatch.setattr(_server, "is_loopback", lambda host: False)
    with caplog.at_level(logging.WARNING), Emulator():
        pass
    assert "NOT a loopback address" in capsys.readouterr().err
    assert any("NOT a loopback address" in r.getMessage() for r in caplog.records)


def test_segment_type_is_unchanged() -> None:
    # Segment stays the unit a transcriber sees (a guard for the turn-taking split).
    seg = Segment(np.zeros(4800, np.int16), SAMPLE_RATE, 0, 100)
    assert seg.duration_s == 0.1
