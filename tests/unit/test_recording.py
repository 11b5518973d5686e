"""The recording store: chunks from the page laid out on the log clock (aligned tracks, gaps as
silence), WAV output, one turn's clip, memory, the file beside the log and its loader."""

from __future__ import annotations

import io
import tracemalloc
import wave

import pytest

from realtime_widget import RealtimeWidget
from realtime_widget._recording import Recording, read_recordings
from tests.conftest import SENTINEL_KEY, pretend_live
from tests.helpers.fake_page import T0, FakePage
from tests.helpers.page import Service, widget_on

np = pytest.importorskip("numpy")
RATE = 48_000
CHUNK = 12_000  # 250 ms


@pytest.fixture
def w():
    widget, _ = widget_on(Service())
    yield widget
    widget.close()


def frames(seq: int, n: int = CHUNK) -> np.ndarray:
    """Stereo int16 whose samples say where they are: user = sample index % 30000, agent =
    its negative (so alignment and track order are checked sample by sample)."""
    idx = (np.arange(n) + seq * n) % 30000
    return np.stack([idx, -idx], axis=1).astype("<i2")


def send_chunk(fake: FakePage, seq: int, t0_ms: float, pcm: np.ndarray, **over) -> None:
    content = {
        "kind": "recording",
        "call": 1,
        "page": "",
        "seq": seq,
        "t0_ms": t0_ms,
        "sample_rate": RATE,
        "frames": len(pcm),
        "b64": "",
        **over,
    }
    fake.deliver(content, [pcm.tobytes()])


def chunk_t0(seq: int) -> float:
    return T0 + seq * CHUNK * 1000 / RATE


def test_tracks_are_aligned_on_the_log_clock(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    assert w.recording is None
    for seq in range(4):
        send_chunk(page, seq, chunk_t0(seq) + (0.004 if seq % 2 else -0.004), frames(seq))
    rec = w.recording
    assert rec is w.recordings[1] and rec.t0_ms == pytest.approx(T0 - 0.004)
    assert rec.frames == 4 * CHUNK and rec.gaps == [] and rec.sample_rate == RATE
    user, agent = rec.user, rec.agent
    assert user.dtype == np.float32 and len(user) == len(agent) == 4 * CHUNK
    expected = (np.arange(4 * CHUNK) % 30000) / 32768
    assert np.array_equal(user, expected.astype(np.float32))
    assert np.array_equal(agent, -user)
    # an event's time is a sample index in both tracks
    assert rec.sample_at(T0 + 500) == 24_000 and rec.time_of(24_000) == pytest.approx(T0 + 500)


def test_gaps_are_silence_and_order_follows_the_pages_numbering(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    for seq in (0, 1, 3):  # chunk 2 never arrives
        send_chunk(page, seq, chunk_t0(seq), frames(seq))
    send_chunk(page, 5, chunk_t0(5), frames(5))  # recording paused a while, then on again
    send_chunk(page, 4, chunk_t0(4), frames(4))  # late, out of order
    rec = w.recording
    assert rec.frames == 6 * CHUNK
    assert [(round(t - T0), round(ms)) for t, ms in rec.gaps] == [(500, 250)]
    pcm = rec.pcm()
    assert not pcm[2 * CHUNK : 3 * CHUNK].any()
    assert np.array_equal(pcm[3 * CHUNK : 4 * CHUNK], frames(3))
    assert np.array_equal(pcm[4 * CHUNK :], np.concatenate([frames(4), frames(5)]))
    # a chunk sent twice is kept once, and the log says so
    send_chunk(page, 4, chunk_t0(4), frames(4))
    assert rec.chunks == 5
    refused = w.events.of_type("message.refused")[-1]["event"]
    assert refused["kind"] == "recording" and "twice" in refused["reason"]


def test_chunks_from_elsewhere_are_refused(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    send_chunk(page, 0, T0, frames(0), call=7)  # a call that never started
    send_chunk(page, 0, T0, frames(0))
    send_chunk(page, 1, chunk_t0(1), frames(1), sample_rate=16000)
    send_chunk(page, 2, chunk_t0(2), frames(2), page="other-tab")
    send_chunk(page, 3, chunk_t0(3), frames(3)[:10], frames=11)  # frames do not match bytes
    reasons = [r["event"]["reason"] for r in w.events.of_type("message.refused")]
    assert "never started" in reasons[0] and "16000 Hz" in reasons[1]
    assert "another page" in reasons[2] and "frames * 4 bytes" in reasons[3]
    assert w.recording.chunks == 1


def test_wav_round_trip(w, tmp_path) -> None:
    page = FakePage(w)
    pretend_live(w)
    for seq in range(3):
        send_chunk(page, seq, chunk_t0(seq), frames(seq))
    rec = w.recording
    both = rec.to_wav(tmp_path / "both.wav")
    with wave.open(str(both)) as f:
        assert (f.getnchannels(), f.getframerate(), f.getnframes()) == (2, RATE, 3 * CHUNK)
        stereo = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2)
    assert np.array_equal(stereo, rec.pcm())
    for track, col in (("user", 0), ("agent", 1)):
        with wave.open(io.BytesIO(rec.wav(track))) as f:
            assert f.getnchannels() == 1
            mono = np.frombuffer(f.readframes(f.getnframes()), "<i2")
        assert np.array_equal(mono, rec.pcm()[:, col])
    with pytest.raises(ValueError, match="track"):
        rec.to_wav(tmp_path / "x.wav", track="left")


def test_memory_stays_at_the_raw_pcm(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    payload = frames(0).tobytes()
    seconds = 60
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for seq in range(seconds * 4):
        page.deliver(
            {
                "kind": "recording",
                "call": 1,
                "page": "",
                "seq": seq,
                "t0_ms": chunk_t0(seq),
                "sample_rate": RATE,
                "frames": CHUNK,
                "b64": "",
            },
            [bytearray(payload)],  # a fresh buffer each time, as the kernel hands them over
        )
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    raw = seconds * RATE * 2 * 2
    assert w.recording.nbytes == raw
    ratio = grown / raw
    print(f"kernel memory for {seconds} s of stereo 48 kHz: {ratio:.3f}x the raw PCM")
    assert ratio <= 1.2


def test_a_turn_clip_is_cut_from_the_logs_times(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    for seq in range(16):  # 4 s
        send_chunk(page, seq, chunk_t0(seq), frames(seq))
    page.clock = T0 + 500  # the first record lands at T0 + 1000
    page.records(
        1,
        ("server", {"type": "input_audio_buffer.speech_started"}),  # T0 + 1000
        ("server", {"type": "input_audio_buffer.speech_stopped"}),
        ("server", {"type": "response.created", "response": {"id": "r1"}}),
        ("server", {"type": "output_audio_buffer.started", "response_id": "r1"}),
        ("server", {"type": "output_audio_buffer.stopped", "response_id": "r1"}),  # T0 + 3000
        step_ms=500,
    )
    part = w.recording.clip("r1", pad_ms=100)
    assert part.t0_ms == pytest.approx(T0 + 900, abs=0.1)
    assert part.frames == round(2.2 * RATE)
    start = round(0.9 * RATE)
    assert np.array_equal(part.pcm(), w.recording.pcm()[start : start + part.frames])
    with pytest.raises(KeyError, match="nope"):
        w.recording.clip("nope")


def test_chunks_are_kept_beside_the_log_and_survive_a_crash(tmp_path) -> None:
    w = RealtimeWidget(api_key=SENTINEL_KEY, log_path=tmp_path / "session.jsonl", record=True)
    try:
        assert w.record is True
        page = FakePage(w)
        pretend_live(w)
        for seq in range(3):
            send_chunk(page, seq, chunk_t0(seq), frames(seq))
        path = tmp_path / "session.audio"
        with open(path, "ab") as fh:  # a kernel killed in the middle of writing a chunk
            fh.write(b'{"call":1,"seq":3,"t0_ms":1,"sample_rate":48000,"frames":9,"bytes":36}\n')
            fh.write(b"\0" * 5)
        loaded = read_recordings(tmp_path / "session.jsonl")
        assert list(loaded) == [1]
        assert np.array_equal(loaded[1].pcm(), w.recording.pcm())
        assert loaded[1].t0_ms == w.recording.t0_ms
    finally:
        w.close()


def test_a_cell_shows_a_bounded_player_per_track() -> None:
    long = np.zeros((RATE * 90, 2), np.int16)  # 90 s
    rec = Recording._from_pcm(1, RATE, T0, long)
    html = rec._repr_html_()
    assert html.count("<audio") == 2 and "the first 60 s" in html
    assert len(html) < 2 * 60 * 16_000 * 2 * 1.4 + 4000  # 16 kHz, base64
    assert "90.00 s" in repr(rec)


def test_plot_timeline_draws_the_waveforms_above_the_lanes(w) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    page = FakePage(w)
    pretend_live(w)
    page.records(1, ("server", {"type": "session.updated", "session": {}}))
    fig = w.events.plot_timeline()
    assert len(fig.axes) == 2  # no recording: lanes and latency
    for seq in range(4):
        send_chunk(page, seq, chunk_t0(seq), frames(seq))
    fig = w.events.plot_timeline()
    assert len(fig.axes) == 4
    assert "service heard" in fig.axes[0].get_ylabel() and fig.axes[0].collections


def test_each_widgets_log_holds_its_own_recordings(w) -> None:
    from realtime_widget._recording import recordings_of

    other, _ = widget_on(Service())
    try:
        page = FakePage(w)
        pretend_live(w)
        send_chunk(page, 0, chunk_t0(0), frames(0))
        assert list(w.events.recordings) == [1] and w.events.recordings[1] is w.recording
        assert dict(other.events.recordings) == {}  # another widget's log has none of them
        assert recordings_of(w.events) == {1: w.recording}
        assert recordings_of([{"type": "x"}]) == {}  # plain records: nothing to draw
    finally:
        other.close()
