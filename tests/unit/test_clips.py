"""say(): sources to encoded audio, chunked play messages (buffers, or base64 where the host
drops buffers), the clip handle, and the voice-to-voice turn a clip makes."""

from __future__ import annotations

import base64
import io
import shutil
import wave

import pytest

from realtime_widget import _audio
from realtime_widget import _bridge as B
from realtime_widget._turns import collect_turns
from tests.conftest import pretend_live
from tests.helpers import seam
from tests.helpers.fake_page import FakePage
from tests.helpers.page import Service, widget_on

np = pytest.importorskip("numpy")
LIMIT = B.LIMITS["max_chunk_bytes"]


@pytest.fixture
def w():
    widget, _ = widget_on(Service())
    yield widget
    widget.close()


def joined(page: FakePage, clip_id: str) -> bytes:
    out = b""
    for msg, buffers in page.binary:
        if msg["kind"] == "play" and msg["clip_id"] == clip_id:
            out += buffers[0] if buffers else base64.b64decode(msg["b64"])
    return out


def test_bytes_go_out_in_chunks_under_the_limit(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    data = _audio.wav_bytes(bytes(range(256)) * 2500, 24000)  # 640 KB: three chunks
    clip = w.say(data, duck=0.25)
    plays = page.plays()
    assert [m["index"] for m in plays] == [0, 1, 2] and {m["last"] for m in plays} == {2}
    assert all(len(b[0]) <= LIMIT and m["b64"] == "" for m, b in page.binary)
    assert joined(page, clip.clip_id) == data
    first = plays[0]
    assert first["mime"] == "audio/wav" and first["duck"] == 0.25 and first["source"] == "bytes"
    assert first["call"] == 1 and set(first) == {"kind", *B.FIELDS["play"]}
    assert clip.duration_ms == pytest.approx(640_000 / 2 / 24000 * 1000, abs=0.1)
    assert clip.sent and clip._data is None  # the bytes are not kept once sent


def test_base64_where_the_host_drops_buffers(w) -> None:
    page = FakePage(w, drop_buffers=True)
    w.connect()  # a probe goes out as the call starts; this host loses its buffer
    assert w.host_info["buffers_to_browser"] is False
    assert w.host_info["buffers_to_kernel"] is False
    pretend_live(w)
    data = _audio.wav_bytes(b"\x01\x02" * 300_000, 48000)
    clip = w.say(data)
    plays = [(m, b) for m, b in page.binary if m["kind"] == "play"]
    assert len(plays) == 4 and all(b == [] for _, b in plays)
    assert all(len(m["b64"]) <= LIMIT for m, _ in plays)  # the message stays under the limit
    assert joined(page, clip.clip_id) == data


def test_arrays_become_wav(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    clip = w.say((tone, 16000))
    with wave.open(io.BytesIO(joined(page, clip.clip_id))) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    assert np.abs(pcm / 32767 - tone).max() < 1e-4
    assert clip.source == "array" and clip.duration_ms == 1000.0
    stereo = w.say(np.zeros((2, 800), np.int16), sample_rate=8000)  # (channels, n) too
    assert stereo.duration_ms == 100.0
    with pytest.raises(ValueError, match="shape"):
        w.say((np.zeros((5, 5)), 16000))
    with pytest.raises(TypeError, match="sample_rate"):
        w.say(np.zeros(10))


def test_files_and_the_text_hint(w, tmp_path) -> None:
    page = FakePage(w)
    pretend_live(w)
    path = tmp_path / "q.wav"
    path.write_bytes(_audio.wav_bytes(b"\0\0" * 8000, 8000))
    clip = w.say(path)
    assert clip.source == str(path) and page.plays()[0]["mime"] == "audio/wav"
    with pytest.raises(FileNotFoundError, match=r"say\(text=...\)"):
        w.say("What's the weather?")
    assert _audio.sniff_mime(b"OggS....") == "audio/ogg"
    assert _audio.sniff_mime(b"ID3....") == "audio/mpeg"
    assert _audio.sniff_mime(b"????", "x.flac") == "audio/flac"


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not _audio.importlib.util.find_spec("espeakng_loader"),
    reason="espeak-ng is not installed (apt-get install espeak-ng, or the voice extra)",
)
def test_text_is_spoken_by_espeak_in_the_kernel(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    clip = w.say(text="What is the weather like?")
    data = joined(page, clip.clip_id)
    info = _audio.wav_info(data)
    assert info is not None and info[0] >= 16000 and info[3] > info[0] // 2  # over half a second
    assert clip.source == "text: What is the weather like?"
    assert 500 < (clip.duration_ms or 0) < 5000


def test_no_espeak_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(_audio.shutil, "which", lambda name: None)
    monkeypatch.setattr(_audio.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"realtime-widget\[voice\].*espeakng-loader"):
        _audio.synthesize("hello")


def test_clips_wait_for_the_calls_connect_message_and_need_a_call(w) -> None:
    page = FakePage(w)
    with pytest.raises(RuntimeError, match="connect"):
        w.say(b"RIFF")
    s = seam.signalling(w)
    s.call, s.status = 1, "connecting"  # the connect message has not gone out yet
    clip = w.say(_audio.wav_bytes(b"\0\0" * 100, 8000))
    assert page.plays() == [] and not clip.sent
    s._posted_call = 1  # it went out; the page's first record shows it knows the call
    page.records(1, ("local", {"type": "call.start", "call": 1}))
    assert [m["clip_id"] for m in page.plays()] == [clip.clip_id] and clip.sent


async def test_the_handle_fills_in_from_the_pages_records(w) -> None:
    page = FakePage(w, threaded=True)
    pretend_live(w)
    clip = w.say(_audio.wav_bytes(b"\0\0" * 8000, 8000))
    page.records(
        1,
        ("local", {"type": "say.started", "clip_id": clip.clip_id, "duration_ms": 1000.5}),
        ("local", {"type": "say.ended", "clip_id": clip.clip_id, "duration_ms": 1000.5}),
        step_ms=1000,
    )
    assert await clip is clip
    assert clip.ended_ms - clip.started_ms == 1000 and clip.duration_ms == 1000.5
    assert not clip.stopped and clip.error is None and "played" in repr(clip)


async def test_a_clip_the_page_cannot_play_raises_its_words(w) -> None:
    page = FakePage(w, threaded=True)
    pretend_live(w)
    clip = w.say(b"not audio at all")
    assert page.plays()[0]["mime"] == "application/octet-stream"
    page.records(1, ("local", {"type": "say.error", "clip_id": clip.clip_id, "message": "bad"}))
    with pytest.raises(RuntimeError, match=r"could not play clip .*: bad"):
        await clip
    assert clip.error and clip.done


async def test_a_suspended_page_is_named_when_a_clip_never_starts(w) -> None:
    page = FakePage(w, threaded=True)
    pretend_live(w)
    clip = w.say(_audio.wav_bytes(b"\0\0" * 80, 8000))
    page.records(1, ("local", {"type": "audio.suspended", "message": "no user gesture yet"}))
    with pytest.raises(TimeoutError, match=r"audio is suspended .*click anywhere"):
        await clip.wait(0.2)


def test_stop_cuts_a_sent_clip_and_drops_a_queued_one(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    sent = w.say(_audio.wav_bytes(b"\0\0" * 80, 8000))
    sent.stop()
    assert page.sent[-1] == {"kind": "stop_clip", "call": 1, "page": "", "clip_id": sent.clip_id}
    page.records(1, ("local", {"type": "say.ended", "clip_id": sent.clip_id, "stopped": True}))
    assert sent.done and sent.stopped
    seam.signalling(w)._posted_call = 0  # a new call whose connect has not gone out
    queued = w.say(_audio.wav_bytes(b"\0\0" * 80, 8000))
    queued.stop()
    assert queued.done and queued.stopped and not queued.sent


def test_a_call_that_ends_takes_its_queued_clips(w) -> None:
    FakePage(w)
    s = seam.signalling(w)
    s.call, s.status = 1, "connecting"
    w.status = "connecting"
    clip = w.say(_audio.wav_bytes(b"\0\0" * 80, 8000))
    w.disconnect()
    assert clip.done and "call ended" in (clip.error or "")


def test_a_clip_turn_is_measured_from_the_clips_last_sample() -> None:
    t = 1_700_000_000_000.0
    recs = [
        ("local", {"type": "say.started", "clip_id": "c"}, t),
        ("server", {"type": "input_audio_buffer.speech_started"}, t + 180),
        ("local", {"type": "say.ended", "clip_id": "c"}, t + 2000),
        ("server", {"type": "input_audio_buffer.speech_stopped"}, t + 2500),
        ("server", {"type": "response.created", "response": {"id": "r"}}, t + 2510),
        ("server", {"type": "response.output_text.delta", "response_id": "r"}, t + 2900),
        # a later turn from the microphone is measured as before
        ("server", {"type": "input_audio_buffer.speech_started"}, t + 9000),
        ("server", {"type": "input_audio_buffer.speech_stopped"}, t + 9500),
        ("server", {"type": "response.created", "response": {"id": "r2"}}, t + 9510),
        ("server", {"type": "response.output_text.delta", "response_id": "r2"}, t + 9600),
    ]
    records = [
        {"call_number": 1, "direction": d, "event": ev, "t_ms": tt, "type": ev["type"]}
        for d, ev, tt in recs
    ]
    clip_turn, mic_turn = (t_.row() for t_ in collect_turns(records))
    assert clip_turn["trigger"] == "clip" and clip_turn["turn_start"] == t + 2000
    assert clip_turn["to_first_delta_ms"] == 900  # from the clip's end, not the VAD's
    assert mic_turn["trigger"] == "speech" and mic_turn["to_first_delta_ms"] == 100


async def test_a_spoken_question_is_answered_and_measured_voice_to_voice(w) -> None:
    page = FakePage(w, threaded=True)
    pretend_live(w)
    r = w.ask(audio=_audio.wav_bytes(b"\0\0" * 16000, 8000))
    cid = r.clip.clip_id
    page.records(
        1,
        ("local", {"type": "say.started", "clip_id": cid}),
        ("server", {"type": "input_audio_buffer.speech_started"}),
        ("local", {"type": "say.ended", "clip_id": cid}),
        ("server", {"type": "input_audio_buffer.speech_stopped"}),
        ("server", {"type": "response.created", "response": {"id": "rv"}}),
        (
            "server",
            {"type": "response.output_audio_transcript.delta", "response_id": "rv", "delta": "Hi"},
        ),
        ("local", {"type": "audio.audible", "response_id": "rv"}),
        ("server", {"type": "response.done", "response": {"id": "rv", "status": "completed"}}),
        step_ms=100,
    )
    reply = await r
    assert reply.text == "Hi" and reply.response_id == "rv"
    assert reply.latency_ms == 400  # say.ended -> first audible: voice to voice
