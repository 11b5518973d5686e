import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { HeardAudio } from "../../js/connection";
import type { Controller } from "../../js/controller";
import {
  FakeModel,
  ManualFrames,
  connectCall,
  type FakeWorld,
  mountWorld,
  type Mounted,
} from "./fakes";

let m: Mounted;
let world: FakeWorld;
let model: FakeModel;
let ctrl: Controller;
let frames: ManualFrames;
let el: HTMLElement;
let serverSend: Mounted["serverSend"];

beforeEach(() => {
  m = mountWorld(1_700_000_000_000);
  ({ world, model, ctrl, frames, el, serverSend } = m);
});
afterEach(() => m.destroy());

const sentOnChannel = () => world.pc().channel.sentEvents();
const truncates = () =>
  sentOnChannel().filter((e) => e.type === "conversation.item.truncate");

/** Python's cancel_response (or the Stop button, which asks Python for it). */
const pythonCancels = (call = 1) =>
  model.msg({
    kind: "send",
    call,
    events: [
      { type: "response.cancel" },
      { type: "output_audio_buffer.clear" },
    ],
  });

function replyStarts(responseId = "r1", itemId = "item_a") {
  serverSend({ type: "response.created", response: { id: responseId } });
  serverSend({
    type: "response.output_item.added",
    response_id: responseId,
    output_index: 0,
    item: { id: itemId, type: "message", role: "assistant", content: [] },
  });
  serverSend({
    type: "response.output_audio_transcript.delta",
    response_id: responseId,
    item_id: itemId,
    content_index: 0,
    delta: "Tonight we have a lovely",
  });
}

describe("truncate on interruption", () => {
  it("Stop cuts the playing item to what was heard, after the cancel", async () => {
    await connectCall(model, world);
    replyStarts();
    vi.advanceTimersByTime(200); // the audio starts a little after the words
    serverSend({ type: "output_audio_buffer.started", response_id: "r1" });
    vi.advanceTimersByTime(1500);
    // The Stop button asks Python; Python's cancel_response comes back as a send.
    frames.frame();
    el.querySelector<HTMLButtonElement>('[data-testid="rtw-stop"]')!.click();
    expect(model.requests().at(-1)).toMatchObject({
      action: "cancel_response",
    });
    pythonCancels();
    const types = sentOnChannel().map((e) => e.type);
    expect(types.slice(-3)).toEqual([
      "response.cancel",
      "output_audio_buffer.clear",
      "conversation.item.truncate",
    ]);
    expect(truncates()).toEqual([
      {
        type: "conversation.item.truncate",
        item_id: "item_a",
        content_index: 0,
        audio_end_ms: 1500,
      },
    ]);
    // The kernel logs it like any client event.
    await Promise.resolve();
    expect(
      model
        .records()
        .filter(
          (r) =>
            r.dir === "client" && r.event.type === "conversation.item.truncate",
        ),
    ).toHaveLength(1);
    // The transcript marks the cut.
    frames.frame();
    const turn = el.querySelector<HTMLElement>('[data-turn="response:r1"]')!;
    expect(turn.getAttribute("data-truncated-ms")).toBe("1500");
    expect(turn.querySelector(".rtw-badge")!.textContent).toContain(
      "cut at 1.5 s",
    );
    // A second stop of the same reply sends no second truncate.
    pythonCancels();
    expect(truncates()).toHaveLength(1);
  });

  it("counts from when the reply was first heard when the service sends no started event", async () => {
    await connectCall(model, world);
    replyStarts("r2", "item_b");
    const heard = new HeardAudio();
    // The same rule, driven directly: first heard at t=1000, stopped at t=3250.
    heard.server(
      {
        type: "response.output_item.added",
        response_id: "r2",
        item: { id: "item_b", type: "message", role: "assistant" },
      },
      900,
    );
    heard.audible("r2", 1000);
    expect(heard.cut(3250)).toMatchObject({
      item_id: "item_b",
      audio_end_ms: 2250,
    });
    // Through the page: only the words are known, so they stand in for the start.
    vi.advanceTimersByTime(800);
    pythonCancels();
    expect(truncates()).toEqual([
      expect.objectContaining({ item_id: "item_b", audio_end_ms: 800 }),
    ]);
  });

  it("sends nothing when no reply audio is playing", async () => {
    await connectCall(model, world);
    pythonCancels(); // nothing ever played
    expect(truncates()).toEqual([]);
    replyStarts("r3", "item_c");
    serverSend({ type: "output_audio_buffer.started", response_id: "r3" });
    serverSend({ type: "output_audio_buffer.stopped", response_id: "r3" });
    pythonCancels(); // it played to its end: the user heard all of it
    expect(truncates()).toEqual([]);
  });

  it("a reply that had not started playing is cut to nothing", () => {
    const heard = new HeardAudio();
    heard.server(
      {
        type: "response.output_item.added",
        response_id: "r4",
        item: { id: "item_d", type: "message", role: "assistant" },
      },
      100,
    );
    expect(heard.cut(5000)).toMatchObject({
      item_id: "item_d",
      audio_end_ms: 0,
    });
    expect(heard.cut(6000)).toBeNull();
  });

  it("the service's truncated event marks the turn too", async () => {
    await connectCall(model, world);
    replyStarts("r5", "item_e");
    serverSend({
      type: "conversation.item.truncated",
      item_id: "item_e",
      content_index: 0,
      audio_end_ms: 640,
    });
    expect(ctrl.store.transcript.get("response:r5")!.truncatedMs).toBe(640);
  });
});
