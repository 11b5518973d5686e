import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { RealtimeEvent } from "../../js/bridge";
import {
  FakeModel,
  ManualFrames,
  connectCall,
  type FakeWorld,
  mountWorld,
  type Mounted,
} from "./fakes";

// `shown`: client events the kernel sent on the call's sideband. The page shows them and cuts a
// stopped reply to what was heard, but neither sends them on its channel nor logs them.
let m: Mounted;
let world: FakeWorld;
let model: FakeModel;
let frames: ManualFrames;
let el: HTMLElement;
let serverSend: Mounted["serverSend"];

beforeEach(() => {
  m = mountWorld(1_700_000_000_000);
  ({ world, model, frames, el, serverSend } = m);
});
afterEach(() => m.destroy());

const sentOnChannel = () => world.pc().channel.sentEvents();
const typed = (text: string): RealtimeEvent => ({
  type: "conversation.item.create",
  item: {
    type: "message",
    role: "user",
    content: [{ type: "input_text", text }],
  },
});

describe("client events the kernel sent on the sideband", () => {
  it("shows a typed turn without sending or logging it", async () => {
    await connectCall(model, world);
    const before = sentOnChannel().length;
    model.msg({
      kind: "shown",
      call: 1,
      events: [typed("Which dishes are vegetarian?"), typed("And vegan?")],
    });
    await Promise.resolve();
    frames.frame();
    const text = el.textContent ?? "";
    expect(text).toContain("Which dishes are vegetarian?");
    expect(text).toContain("And vegan?"); // two turns, not one replaced by the other
    expect(sentOnChannel()).toHaveLength(before);
    expect(
      model
        .records()
        .filter(
          (r) =>
            r.dir === "client" && r.event.type === "conversation.item.create",
        ),
    ).toHaveLength(0);
  });

  it("cuts the playing reply on a stop, on the data channel", async () => {
    await connectCall(model, world);
    serverSend({ type: "response.created", response: { id: "r1" } });
    serverSend({
      type: "response.output_item.added",
      response_id: "r1",
      output_index: 0,
      item: { id: "item_a", type: "message", role: "assistant", content: [] },
    });
    serverSend({
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      item_id: "item_a",
      content_index: 0,
      delta: "Tonight we have",
    });
    serverSend({ type: "output_audio_buffer.started", response_id: "r1" });
    vi.advanceTimersByTime(1200);
    model.msg({
      kind: "shown",
      call: 1,
      events: [
        { type: "response.cancel" },
        { type: "output_audio_buffer.clear" },
      ],
    });
    const sent = sentOnChannel();
    // Only the truncate: the cancel itself went on the sideband.
    expect(sent.map((e) => e.type)).not.toContain("response.cancel");
    expect(sent.filter((e) => e.type === "conversation.item.truncate")).toEqual(
      [
        {
          type: "conversation.item.truncate",
          item_id: "item_a",
          content_index: 0,
          audio_end_ms: 1200,
        },
      ],
    );
  });

  it("ignores events for a call this page does not hold", async () => {
    await connectCall(model, world);
    model.msg({ kind: "shown", call: 7, events: [typed("not mine")] });
    frames.frame();
    expect(el.textContent ?? "").not.toContain("not mine");
  });
});
