import { describe, expect, it } from "vitest";

import type { EventRecord } from "../../js/bridge";
import {
  RecordRing,
  RespondingTracker,
  Store,
  type StoreChange,
} from "../../js/store";

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
    store.beginCall(1);
    const changes: StoreChange["type"][] = [];
    store.subscribe((c) => changes.push(c.type));
    store.addRecord(1, rec(0, "input_audio_buffer.speech_started"));
    expect(store.userSpeaking).toBe(true);
    store.addRecord(1, rec(1, "input_audio_buffer.speech_started"));
    store.addRecord(1, rec(2, "input_audio_buffer.speech_stopped"));
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

const server = (seq: number, event: Record<string, unknown>): EventRecord => ({
  seq,
  dir: "server",
  t_ms: seq,
  event,
});

describe("RespondingTracker", () => {
  it("is in flight from response.created to its response.done, overlapping replies too", () => {
    const t = new RespondingTracker();
    expect(t.responding).toBe(false);
    expect(
      t.apply(server(0, { type: "response.created", response: { id: "a" } })),
    ).toBe(true);
    expect(
      t.apply(server(1, { type: "response.created", response: { id: "b" } })),
    ).toBe(false);
    expect(
      t.apply(server(2, { type: "response.done", response: { id: "a" } })),
    ).toBe(false);
    expect(t.responding).toBe(true);
    expect(
      t.apply(server(3, { type: "response.done", response: { id: "b" } })),
    ).toBe(true);
    expect(t.responding).toBe(false);
  });

  it("stays responding while the reply's audio plays past response.done", () => {
    const t = new RespondingTracker();
    t.apply(server(0, { type: "response.created", response: { id: "a" } }));
    t.apply(
      server(1, { type: "output_audio_buffer.started", response_id: "a" }),
    );
    t.apply(server(2, { type: "response.done", response: { id: "a" } }));
    expect(t.responding).toBe(true);
    t.apply(
      server(3, { type: "output_audio_buffer.stopped", response_id: "a" }),
    );
    expect(t.responding).toBe(false);
    t.apply(
      server(4, { type: "output_audio_buffer.started", response_id: "b" }),
    );
    // a clear ends whatever plays, named or not
    t.apply(server(5, { type: "output_audio_buffer.cleared" }));
    expect(t.responding).toBe(false);
  });

  it("treats malformed events as absent and a new call as a clean slate", () => {
    const t = new RespondingTracker();
    t.apply(server(0, { type: "response.created", response: "oops" }));
    t.apply(server(1, { type: "response.done", response: null }));
    expect(t.responding).toBe(false);
    t.apply(server(2, { type: "response.created", response: { id: "a" } }));
    const start: EventRecord = {
      seq: 3,
      dir: "local",
      t_ms: 3,
      event: { type: "call.start" },
    };
    expect(t.apply(start)).toBe(true);
    expect(t.responding).toBe(false);
  });

  it("stays bounded when response.done never comes", () => {
    const t = new RespondingTracker();
    for (let i = 0; i < 1000; i++)
      t.apply(
        server(i, { type: "response.created", response: { id: `${i}` } }),
      );
    for (let i = 968; i < 1000; i++)
      t.apply(server(i, { type: "response.done", response: { id: `${i}` } }));
    expect(t.responding).toBe(false); // only the newest 32 were kept
  });
});

describe("Store: per-call state", () => {
  it("a new call starts with nothing in flight and nobody speaking", () => {
    const store = new Store();
    store.beginCall(1);
    store.setStatus(1, "connected", "");
    store.addRecord(1, rec(0, "input_audio_buffer.speech_started"));
    store.addRecord(
      1,
      server(1, { type: "response.created", response: { id: "a" } }),
    );
    expect(store.responding).toBe(true);
    const changes: StoreChange["type"][] = [];
    store.subscribe((c) => changes.push(c.type));
    store.beginCall(2);
    expect(store.responding).toBe(false);
    expect(store.userSpeaking).toBe(false);
    expect(changes).toEqual(["speaking", "responding"]);
  });

  it("late records and states of an older call do not touch the new call", () => {
    const store = new Store();
    store.beginCall(1);
    store.beginCall(2);
    store.setStatus(2, "connected", "");
    store.addRecord(
      1,
      server(0, { type: "response.created", response: { id: "old" } }),
    );
    store.addRecord(1, rec(1, "input_audio_buffer.speech_started"));
    store.setStatus(1, "failed", "old call");
    expect(store.responding).toBe(false);
    expect(store.userSpeaking).toBe(false);
    expect(store.status).toBe("connected");
    expect(store.call).toBe(2);
    expect(store.records.length).toBe(2); // still shown in the inspector
  });

  it("the end of the call ends a reply cut off mid-flight", () => {
    const store = new Store();
    store.beginCall(1);
    store.addRecord(
      1,
      server(0, { type: "response.created", response: { id: "a" } }),
    );
    store.setStatus(1, "disconnected", "");
    expect(store.responding).toBe(false);
  });
});
