"""Playback on one emulated call is strictly one utterance at a time, however many responses queue up."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from realtime_widget.emulator import Knobs, default_responder, default_transcriber
from realtime_widget.emulator._audio import SAMPLE_RATE
from realtime_widget.emulator._call import EmulatedCall
from tests.helpers.emu_checks import FAST

# An EmulatedCall owns an RTCPeerConnection (never connected here): keep it in the loopback namespace.
pytestmark = pytest.mark.netns

PCM = np.zeros(round(0.08 * SAMPLE_RATE), np.int16)  # 80 ms of audio
EPS = 1e-3  # timer slack, seconds


class Channel:
    """Stands in for the ``oai-events`` data channel; keeps the buffer events."""

    label = "oai-events"
    readyState = "open"

    def __init__(self) -> None:
        self.buffer_events: list[tuple[str, str]] = []  # (type, response_id)

    def send(self, text: str) -> None:
        event = json.loads(text)
        if event["type"].startswith("output_audio_buffer."):
            self.buffer_events.append((event["type"], event["response_id"]))


@pytest.fixture
async def call() -> AsyncIterator[EmulatedCall]:
    call = EmulatedCall(lambda: Knobs(**FAST), default_responder, default_transcriber)
    call.channel = Channel()  # type: ignore[assignment]
    call.state = "open"
    yield call
    await call.close()


def buffer_events(call: EmulatedCall) -> list[tuple[str, str]]:
    assert isinstance(call.channel, Channel)
    return call.channel.buffer_events


async def until_silent(call: EmulatedCall) -> None:
    for _ in range(200):
        if call.playback.playing is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("playback never ended")


async def test_two_waiters_woken_together_take_turns(call: EmulatedCall) -> None:
    first = await call.play("resp_a", "item_a", PCM)
    # Both wait for the same end of `first`: they must still play one after the other.
    second, third = await asyncio.gather(
        call.play("resp_b", "item_b", PCM), call.play("resp_c", "item_c", PCM)
    )
    assert second.start >= first.end - EPS
    assert third.start >= second.end - EPS
    await until_silent(call)
    started, stopped = "output_audio_buffer.started", "output_audio_buffer.stopped"
    assert buffer_events(call) == [
        (started, "resp_a"),
        (stopped, "resp_a"),
        (started, "resp_b"),
        (stopped, "resp_b"),
        (started, "resp_c"),
        (stopped, "resp_c"),
    ]


async def test_after_a_clear_only_the_next_waiter_starts(call: EmulatedCall) -> None:
    first = await call.play("resp_a", "item_a", PCM)
    waiting = [
        asyncio.ensure_future(call.play(f"resp_{n}", f"item_{n}", PCM)) for n in ("b", "c", "d")
    ]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in waiting)
    assert call.stop_playback()  # cuts `first` early: one waiter may start, not all three
    second, third, fourth = await asyncio.gather(*waiting)
    assert first.start <= second.start < first.end  # it did not wait for the natural end
    for earlier, later in itertools.pairwise([second, third, fourth]):
        assert later.start >= earlier.end - EPS
    await until_silent(call)
    kinds = [kind.rsplit(".", 1)[-1] for kind, _ in buffer_events(call)]
    assert kinds == ["started", "cleared"] + ["started", "stopped"] * 3
    assert [rid for _, rid in buffer_events(call)][::2] == ["resp_a", "resp_b", "resp_c", "resp_d"]
