import { describe, expect, it } from "vitest";

import type { EventRecord } from "../../js/bridge";
import { RecordRing, Store, type StoreChange } from "../../js/store";

const rec = (
  seq: number,
  type: string,
  dir: EventRecord["dir"] = "server",
): EventRecord => ({
  seq,
  dir,
  t_ms: seq,
  event: { type },
});

describe("RecordRing", () => {
  it("keeps the newest `capacity` records and lists them newest first", () => {
    const ring = new RecordRing(3);
    for (let i = 0; i < 5; i++) ring.push(rec(i, i % 2 ? "odd" : "even"));
    expect(ring.length).toBe(3);
    expect(ring.newest(10).map((r) => r.seq)).toEqual([4, 3, 2]);
    expect(ring.newest(1).map((r) => r.seq)).toEqual([4]);
    expect(
      ring.newest(10, (r) => r.event.type === "even").map((r) => r.seq),
    ).toEqual([4, 2]);
  });
});

describe("Store", () => {
  it("tracks who speaks from VAD events and notifies once per change", () => {
    const store = new Store();
    const changes: StoreChange["type"][] = [];
    store.subscribe((c) => changes.push(c.type));
    store.addRecord(rec(0, "input_audio_buffer.speech_started"));
    expect(store.userSpeaking).toBe(true);
    store.addRecord(rec(1, "input_audio_buffer.speech_started"));
    store.addRecord(rec(2, "input_audio_buffer.speech_stopped"));
    expect(store.userSpeaking).toBe(false);
    expect(changes.filter((c) => c === "speaking")).toHaveLength(2);
    expect(changes.filter((c) => c === "records")).toHaveLength(3);
  });

  it("a failing listener does not stop the others", () => {
    const store = new Store();
    const seen: string[] = [];
    const spy = console.error;
    console.error = () => undefined;
    try {
      store.subscribe(() => {
        throw new Error("broken view");
      });
      store.subscribe((c) => seen.push(c.type));
      store.setStatus(1, "connecting", "");
    } finally {
      console.error = spy;
    }
    expect(seen).toEqual(["status"]);
    expect(store.status).toBe("connecting");
  });

  it("unsubscribe stops notifications", () => {
    const store = new Store();
    let n = 0;
    const off = store.subscribe(() => n++);
    store.setStatus(1, "connected", "");
    off();
    store.setStatus(1, "disconnected", "");
    expect(n).toBe(1);
  });
});
