import { describe, expect, it } from "vitest";

import type { Direction, EventRecord, RealtimeEvent } from "../../js/bridge";
import {
  Transcript,
  mergeTranscriptionDelta,
  typedText,
} from "../../js/transcript";

function feeder(t: Transcript) {
  let seq = 0;
  return (dir: Direction, event: RealtimeEvent) => {
    const rec: EventRecord = { seq: seq++, dir, t_ms: 0, event };
    return t.apply(rec);
  };
}

const typed = (text: string, id?: string) => ({
  type: "conversation.item.create",
  item: {
    id,
    type: "message",
    role: "user",
    content: [{ type: "input_text", text }],
  },
});

const view = (t: Transcript) =>
  t.turns.map((x) => [x.role, x.source, x.text, x.status]);

describe("Transcript", () => {
  it("shows typed user messages from client conversation.item.create", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("client", typed("Hello!", "item_1"));
    feed("client", { type: "response.create" });
    feed("client", {
      type: "conversation.item.create",
      item: { type: "function_call_output", call_id: "c", output: "{}" },
    });
    expect(view(t)).toEqual([["user", "typed", "Hello!", "done"]]);
    expect(t.turns[0]!.id).toBe("item:item_1");
  });

  it("ignores server echoes of typed text and local records", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", typed("not mine"));
    feed("local", typed("not mine either"));
    expect(t.turns).toHaveLength(0);
  });

  it("accumulates assistant deltas per response, GA and beta names alike", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", { type: "response.created", response: { id: "r1" } });
    const ch = feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      item_id: "i1",
      content_index: 0,
      delta: "Hel",
    });
    expect(ch.changed.map((x) => x.id)).toEqual(["response:r1"]);
    feed("server", {
      type: "response.audio_transcript.delta",
      response_id: "r1",
      item_id: "i1",
      content_index: 0,
      delta: "lo",
    });
    feed("server", { type: "response.created", response: { id: "r2" } });
    feed("server", {
      type: "response.output_text.delta",
      response_id: "r2",
      delta: "A",
    });
    feed("server", {
      type: "response.text.delta",
      response_id: "r2",
      delta: "B",
    });
    // an interleaved delta for the first response still lands on the first turn
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      item_id: "i1",
      content_index: 0,
      delta: "!",
    });
    expect(view(t)).toEqual([
      ["assistant", "reply", "Hello!", "streaming"],
      ["assistant", "reply", "AB", "streaming"],
    ]);
  });

  it("does not double the words when both text and audio transcript stream", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "response.output_text.delta",
      response_id: "r",
      item_id: "i",
      delta: "Hi there",
    });
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r",
      item_id: "i",
      delta: "Hi ",
    });
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r",
      item_id: "i",
      delta: "there",
    });
    expect(t.turns[0]!.text).toBe("Hi there");
  });

  it("takes .done text as authoritative for its part", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r",
      item_id: "i",
      content_index: 0,
      delta: "Hel",
    });
    feed("server", {
      type: "response.output_audio_transcript.done",
      response_id: "r",
      item_id: "i",
      content_index: 0,
      transcript: "Hello.",
    });
    expect(t.turns[0]!.text).toBe("Hello.");
  });

  it("marks cancelled (interrupted) replies and completes others", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      delta: "Let me tell you about",
    });
    feed("server", {
      type: "response.done",
      response: {
        id: "r1",
        status: "cancelled",
        status_details: { type: "cancelled", reason: "turn_detected" },
      },
    });
    feed("server", {
      type: "response.output_text.delta",
      response_id: "r2",
      delta: "Sure.",
    });
    feed("server", {
      type: "response.done",
      response: { id: "r2", status: "completed" },
    });
    // a response.done alone (no words, no function call seen) makes no empty bubble
    feed("server", {
      type: "response.done",
      response: { id: "r3", status: "completed" },
    });
    expect(view(t)).toEqual([
      ["assistant", "reply", "Let me tell you about", "cancelled"],
      ["assistant", "reply", "Sure.", "done"],
    ]);
    expect(t.turns[0]!.reason).toBe("turn_detected");
  });

  it("places a spoken turn where its audio was committed, filled when transcribed", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "input_audio_buffer.speech_started",
      item_id: "u1",
    });
    feed("server", { type: "input_audio_buffer.committed", item_id: "u1" });
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      delta: "Hi!",
    });
    // the transcription often lands after the reply has started
    feed("server", {
      type: "conversation.item.input_audio_transcription.delta",
      item_id: "u1",
      delta: "hel",
    });
    feed("server", {
      type: "conversation.item.input_audio_transcription.completed",
      item_id: "u1",
      content_index: 0,
      transcript: "hello there",
    });
    expect(view(t)).toEqual([
      ["user", "speech", "hello there", "done"],
      ["assistant", "reply", "Hi!", "streaming"],
    ]);
  });

  it("adds a spoken turn even without a committed event, and marks failures", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "conversation.item.input_audio_transcription.completed",
      item_id: "u9",
      transcript: "yo",
    });
    feed("server", {
      type: "conversation.item.input_audio_transcription.failed",
      item_id: "u10",
      error: { message: "stt down" },
    });
    expect(view(t)).toEqual([
      ["user", "speech", "yo", "done"],
      ["user", "speech", "", "failed"],
    ]);
    expect(t.turns[1]!.reason).toBe("stt down");
  });

  it("shows server errors as system lines", () => {
    const t = new Transcript();
    feeder(t)("server", {
      type: "error",
      error: { type: "invalid_request_error", message: "bad voice" },
    });
    expect(view(t)).toEqual([["system", "error", "bad voice", "failed"]]);
  });

  it("stays bounded, reporting what fell off", () => {
    const t = new Transcript(3);
    const feed = feeder(t);
    for (let i = 0; i < 3; i++) feed("client", typed(`m${i}`));
    const ch = feed("client", typed("m3"));
    expect(ch.removed.map((x) => x.text)).toEqual(["m0"]);
    expect(t.turns.map((x) => x.text)).toEqual(["m1", "m2", "m3"]);
  });

  it("typedText reads input_text parts only", () => {
    expect(
      typedText({
        role: "user",
        content: [{ type: "input_text", text: "a" }, { type: "input_audio" }],
      }),
    ).toBe("a");
    expect(
      typedText({
        role: "assistant",
        content: [{ type: "input_text", text: "a" }],
      }),
    ).toBeUndefined();
    expect(typedText(null)).toBeUndefined();
  });

  it("reads transcription deltas of both shapes: increments and the text so far", () => {
    const spoken = (deltas: string[], itemId: string) => {
      const t = new Transcript();
      const feed = feeder(t);
      feed("server", { type: "input_audio_buffer.committed", item_id: itemId });
      for (const delta of deltas)
        feed("server", {
          type: "conversation.item.input_audio_transcription.delta",
          item_id: itemId,
          content_index: 0,
          delta,
        });
      return t.get(`item:${itemId}`)!.text;
    };
    // incremental, as most models send them
    expect(spoken(["I want", " a", " table"], "a")).toBe("I want a table");
    // cumulative: each delta holds everything so far (was "I wantI want aI want a table")
    expect(spoken(["I want", "I want a", "I want a table"], "b")).toBe(
      "I want a table",
    );
    expect(mergeTranscriptionDelta("", "I")).toBe("I");
    expect(mergeTranscriptionDelta("I want", " more")).toBe("I want more");
  });

  it("marks a reply cut by a truncate, found by its item", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      item_id: "i1",
      content_index: 0,
      delta: "Hello there",
    });
    const ch = feed("client", {
      type: "conversation.item.truncate",
      item_id: "i1",
      content_index: 0,
      audio_end_ms: 1234,
    });
    expect(ch.changed.map((x) => x.id)).toEqual(["response:r1"]);
    expect(t.get("response:r1")!.truncatedMs).toBe(1234);
    // an unknown item, or no number, touches nothing
    expect(
      feed("client", {
        type: "conversation.item.truncate",
        item_id: "zz",
        audio_end_ms: 5,
      }).changed,
    ).toEqual([]);
  });
});
