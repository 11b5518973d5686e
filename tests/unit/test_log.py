"""EventLog: records, typed frame, JSONL round trip, durability."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from realtime_widget import EventLog
from realtime_widget._log import COLUMNS

T0 = 1_764_000_000_000.0

EVENTS = [
    ("client", {"type": "session.update", "session": {"type": "realtime", "instructions": "é ☃"}}),
    ("server", {"type": "session.updated", "event_id": "e1", "session": {}}),
    ("server", {"type": "response.created", "event_id": "e2", "response": {"id": "r1"}}),
    (
        "server",
        {
            "type": "response.output_audio_transcript.delta",
            "event_id": "e3",
            "response_id": "r1",
            "item_id": "i1",
            "delta": "Hel",
        },
    ),
    (
        "server",
        {
            "type": "response.function_call_arguments.done",
            "event_id": "e4",
            "call_id": "c1",
            "arguments": "{}",
        },
    ),
    (
        "server",
        {
            "type": "conversation.item.added",
            "event_id": "e5",
            "item": {"id": "i2", "content": [{"type": "input_text", "text": "hi"}]},
        },
    ),
    (
        "server",
        {
            "type": "error",
            "event_id": "e6",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "bad speed",
            },
        },
    ),
    ("server", {"type": "response.backchannel.skipped", "reason": "x"}),  # Inworld-only
    ("server", {"errorType": "SESSION_RESOURCES_EXHAUSTED", "message": "busy"}),  # no type at all
    ("local", {"type": "stats", "rtt_ms": 0.4}),
]


def make(path=None) -> EventLog:
    log = EventLog(path)
    log._extend((d, ev, T0 + i * 1.25, T0 + i * 1.25 + 3.5, 1) for i, (d, ev) in enumerate(EVENTS))
    return log


def test_records() -> None:
    log = make()
    assert len(log) == len(EVENTS)
    first = log[0]
    assert first == {
        "seq": 0,
        "call_number": 1,
        "direction": "client",
        "type": "session.update",
        "t_ms": T0,
        "t_kernel_ms": T0 + 3.5,
        "event": EVENTS[0][1],
    }
    assert [r["event"] for r in log] == [ev for _, ev in EVENTS]
    assert log[-1]["type"] == "stats"
    assert log[8]["type"] == "<untyped>"
    with pytest.raises(IndexError):
        log[99]
    assert "10 events (1 client, 8 server, 1 local)" in repr(log)
    assert [r["seq"] for r in log.of_type("error", "stats")] == [6, 9]
    assert log.of_type("stats", direction="server") == []


def test_frame_columns_and_dtypes() -> None:
    df = make().to_pandas()
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == len(EVENTS)
    assert df["seq"].dtype == "int64"
    assert isinstance(df["direction"].dtype, pd.CategoricalDtype)
    assert isinstance(df["type"].dtype, pd.CategoricalDtype)
    assert str(df["time"].dtype).startswith("datetime64") and df["time"].dt.tz is not None
    assert df["time"][1] - df["time"][0] == pd.Timedelta(milliseconds=1.25)
    assert df["kernel_time"][0] - df["time"][0] == pd.Timedelta(milliseconds=3.5)
    assert (
        df.loc[3, "response_id"] == "r1"
        and df.loc[3, "item_id"] == "i1"
        and df.loc[3, "text"] == "Hel"
    )
    assert df.loc[2, "response_id"] == "r1"  # from the nested response object
    assert df.loc[4, "call_id"] == "c1" and df.loc[4, "text"] == "{}"
    assert df.loc[5, "item_id"] == "i2" and df.loc[5, "text"] == "hi"
    assert df.loc[6, "error_code"] == "invalid_value" and df.loc[6, "error_message"] == "bad speed"
    assert df.loc[8, "error_code"] == "SESSION_RESOURCES_EXHAUSTED"
    assert df.loc[9, "event"] == {"type": "stats", "rtt_ms": 0.4}
    assert pd.isna(df.loc[0, "event_id"])


def test_empty_frame_has_the_same_columns() -> None:
    df = EventLog().to_pandas()
    assert list(df.columns) == list(COLUMNS) and len(df) == 0


def test_jsonl_round_trip_is_exact(tmp_path) -> None:
    log = make()
    path = log.to_jsonl(tmp_path / "s.jsonl")
    back = EventLog.read_jsonl(path)
    assert list(back) == list(log)
    assert path.read_text(encoding="utf-8") == back.to_jsonl(tmp_path / "again.jsonl").read_text(
        encoding="utf-8"
    )
    pd.testing.assert_frame_equal(back.to_pandas(), log.to_pandas())


def test_durable_file_survives_a_torn_last_line(tmp_path) -> None:
    path = tmp_path / "live.jsonl"
    log = make(path)  # appended as it arrives
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 10, "direction": "ser')  # a crash mid-write
    back = EventLog.read_jsonl(path)
    assert list(back) == list(log)
    log.close()


def test_a_corrupt_middle_line_is_an_error(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    make().to_jsonl(path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "garbage\n"
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match="line 3"):
        EventLog.read_jsonl(path)


def test_bad_direction() -> None:
    with pytest.raises(ValueError, match="direction must be one of"):
        EventLog()._append("sideways", {"type": "x"}, t_ms=0, t_kernel_ms=0)


# Every event type in the protocol catalogue (client, server, beta and Inworld-only names).
CATALOGUE_CLIENT = [
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate",
    "conversation.item.delete", "response.create", "response.cancel", "output_audio_buffer.clear",
]  # fmt: skip
CATALOGUE_SERVER = [
    "error", "session.created", "session.updated", "conversation.item.added", "conversation.item.done",
    "conversation.item.retrieved", "conversation.item.truncated", "conversation.item.deleted",
    "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed", "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered", "output_audio_buffer.started", "output_audio_buffer.stopped",
    "output_audio_buffer.cleared", "response.created", "response.done", "response.output_item.added",
    "response.output_item.done", "response.content_part.added", "response.content_part.done",
    "response.output_text.delta", "response.output_text.done", "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done", "response.output_audio.delta", "response.output_audio.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done", "rate_limits.updated",
    "response.text.delta", "response.audio_transcript.delta", "conversation.item.created",
    "response.backchannel.audio.delta", "response.backchannel.audio.done", "response.backchannel.skipped",
]  # fmt: skip


def catalogue_log() -> EventLog:
    log = EventLog()
    rows = [("client", {"type": t, "event_id": f"c{i}"}) for i, t in enumerate(CATALOGUE_CLIENT)]
    rows += [
        (
            "server",
            {"type": t, "event_id": f"s{i}", "response_id": "r", "item_id": "i", "delta": "d"},
        )
        for i, t in enumerate(CATALOGUE_SERVER)
    ]
    log._extend((d, ev, T0 + i, T0 + i + 1, 1) for i, (d, ev) in enumerate(rows))
    return log


def test_frame_covers_the_whole_catalogue() -> None:
    df = catalogue_log().to_pandas()
    assert len(df) == len(CATALOGUE_CLIENT) + len(CATALOGUE_SERVER)
    assert set(df["type"]) == set(CATALOGUE_CLIENT) | set(CATALOGUE_SERVER)
    assert list(df.columns) == list(COLUMNS)
    server = df[df["direction"] == "server"]
    assert (server["response_id"] == "r").all() and (server["text"] == "d").all()
    assert df["event_id"].notna().all()


def test_polars_and_parquet(tmp_path) -> None:
    log = make()
    pl_df = log.to_polars()
    assert pl_df.columns == list(COLUMNS) and pl_df.height == len(log)
    assert str(pl_df.schema["time"]).startswith("Datetime")
    out = log.to_parquet(tmp_path / "s.parquet")
    back = pd.read_parquet(out)
    assert list(back.columns) == list(COLUMNS) and len(back) == len(log)
    assert back.loc[3, "text"] == "Hel"


def test_missing_optional_dependency_says_what_to_install(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_polars(name, *args, **kwargs):
        if name == "polars":
            raise ImportError("no polars here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_polars)
    with pytest.raises(ImportError, match=r'pip install "realtime-widget\[polars\]"'):
        make().to_polars()


def test_a_record_two_paths_delivered_is_amended_and_read_back(tmp_path) -> None:
    path = tmp_path / "two.jsonl"
    log = EventLog(path)
    ev = {"type": "response.done", "event_id": "e1"}
    seq = log._append(
        "server", ev, t_ms=T0, t_kernel_ms=T0, call_number=1, via="sideband", t_sideband_ms=T0
    )
    log._append("local", {"type": "stats"}, t_ms=T0 + 1, t_kernel_ms=T0 + 1, call_number=1)
    log._amend(seq, t_ms=T0 - 3, via="both")
    rec = log[seq]
    assert rec["via"] == "both" and rec["t_ms"] == T0 - 3 and rec["t_sideband_ms"] == T0
    assert "via" not in log[1] and "t_sideband_ms" not in log[1]  # one path: no such keys
    back = EventLog.read_jsonl(path)
    assert list(back) == list(log)
    df = back.to_pandas()
    assert list(df["via"].astype(object).where(df["via"].notna(), None)) == ["both", None]
    assert df["t_sideband_ms"][0] == T0 and math.isnan(df["t_sideband_ms"][1])
    exported = EventLog.read_jsonl(log.to_jsonl(tmp_path / "out.jsonl"))
    assert list(exported) == list(log)
    with pytest.raises(ValueError, match="via must be one of"):
        log._amend(seq, via="carrier pigeon")
    with pytest.raises(IndexError):
        log._amend(99, via="both")
