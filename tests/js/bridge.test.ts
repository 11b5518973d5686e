import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import * as bridge from "../../js/bridge";
import { EventBatcher, parseToBrowser, type EventsMsg } from "../../js/bridge";

describe("parseToBrowser", () => {
  it("fills connect defaults and rejects foreign messages", () => {
    const m = parseToBrowser({
      kind: "connect",
      call: 3,
      session_update: { type: "session.update" },
    });
    expect(m).toEqual({
      kind: "connect",
      call: 3,
      page: "", // no page named: for whichever front end takes the call
      ice_servers: [],
      session_update: { type: "session.update" },
      queued: [],
      mic: true,
      gather_timeout_ms: 800,
    });
    expect(parseToBrowser({ kind: "offer", call: 1, sdp: "x" })).toBeNull(); // wrong direction
    expect(parseToBrowser({ type: "something-else" })).toBeNull();
    expect(parseToBrowser("connect")).toBeNull();
    expect(parseToBrowser({ kind: "answer", call: 1 })).toBeNull(); // no sdp
  });

  it("keeps send events in order and drops non-objects", () => {
    const m = parseToBrowser({
      kind: "send",
      call: 1,
      events: [{ type: "a" }, 5, { type: "b" }],
    });
    expect(m).toEqual({
      kind: "send",
      call: 1,
      page: "",
      events: [{ type: "a" }, { type: "b" }],
    });
    expect(parseToBrowser({ kind: "disconnect", call: 2, page: "p7" })).toEqual(
      {
        kind: "disconnect",
        call: 2,
        page: "p7",
      },
    );
  });
});

describe("EventBatcher", () => {
  let sent: EventsMsg[];
  let clock: number;
  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    clock = 1_700_000_000_000;
  });
  afterEach(() => vi.useRealTimers());

  const make = (opts: { batchMs?: number; maxBatch?: number } = {}) =>
    new EventBatcher({
      send: (m) => sent.push(m),
      now: () => clock++,
      ...opts,
    });

  const endOfTask = () => Promise.resolve();

  it("sends an isolated event at the end of its task, with that task's other records", async () => {
    const b = make();
    b.add(1, "client", { type: "session.update" });
    b.add(1, "server", { type: "session.created" });
    b.add(1, "local", { type: "channel.open" });
    expect(sent).toHaveLength(0); // not inside the task that produced them
    await endOfTask();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.kind).toBe("events");
    expect(sent[0]!.call).toBe(1);
    expect(sent[0]!.records.map((r) => [r.seq, r.dir, r.event.type])).toEqual([
      [0, "client", "session.update"],
      [1, "server", "session.created"],
      [2, "local", "channel.open"],
    ]);
    // t_ms comes from the injected clock, increasing
    const ts = sent[0]!.records.map((r) => r.t_ms);
    expect(ts).toEqual([
      1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002,
    ]);
  });

  it("batches deltas that arrive within batchMs of the last message into one message", async () => {
    const b = make();
    const d = "response.output_text.delta";
    b.add(1, "server", { type: d, i: 0 });
    await endOfTask();
    expect(sent).toHaveLength(1);
    for (let i = 1; i <= 3; i++) {
      vi.advanceTimersByTime(1); // one delta per ms, each in its own task
      b.add(1, "server", { type: d, i });
      await endOfTask();
    }
    expect(sent).toHaveLength(1); // waiting for the window to close
    vi.advanceTimersByTime(1); // 4 ms after the first message
    expect(sent.map((m) => m.records.map((r) => r.event.i))).toEqual([
      [0],
      [1, 2, 3],
    ]);
    vi.advanceTimersByTime(50); // a quiet spell: the next delta goes at once again
    b.add(1, "server", { type: d, i: 4 });
    await endOfTask();
    expect(sent).toHaveLength(3);
  });

  it("sends a server event the kernel acts on at the end of its task, inside a window too", async () => {
    const b = make();
    b.add(1, "server", { type: "response.output_text.delta", i: 0 });
    await endOfTask();
    vi.advanceTimersByTime(1);
    b.add(1, "server", { type: "response.output_text.delta", i: 1 });
    b.add(1, "server", { type: "response.function_call_arguments.done", i: 2 });
    await endOfTask(); // no wait for the window: the kernel runs the tool
    expect(sent.map((m) => m.records.map((r) => r.event.i))).toEqual([
      [0],
      [1, 2],
    ]);
    vi.advanceTimersByTime(100);
    expect(sent).toHaveLength(2); // no empty message from the cancelled window
  });

  it("lets client echoes and diagnostics ride with the next message, or go within lazyMs", async () => {
    const b = make();
    b.add(1, "client", { type: "session.update" });
    b.add(1, "local", { type: "peer.state" });
    await endOfTask();
    vi.advanceTimersByTime(10);
    expect(sent).toHaveLength(0); // nothing waits on them
    b.add(1, "server", { type: "session.updated" });
    await endOfTask(); // one message, in order
    expect(
      sent.map((m) => m.records.map((r) => [r.seq, r.event.type])),
    ).toEqual([
      [
        [0, "session.update"],
        [1, "peer.state"],
        [2, "session.updated"],
      ],
    ]);
    b.add(1, "local", { type: "stats" }); // alone: it goes within lazyMs
    vi.advanceTimersByTime(49);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toHaveLength(2);
    expect(sent[1]!.records[0]!.event.type).toBe("stats");
  });

  it("sends a local record the kernel acts on at the end of its task", async () => {
    const b = make();
    b.add(1, "local", { type: "say.started", clip_id: "c1" });
    await endOfTask();
    expect(sent).toHaveLength(1);
  });

  it("classifies records by how soon the kernel needs them", () => {
    const u = bridge.urgency;
    expect(
      u("server", { type: "response.output_audio_transcript.delta" }),
    ).toBe("window");
    expect(u("server", { type: "response.done" })).toBe("now");
    expect(u("server", { type: "session.updated" })).toBe("now");
    expect(u("server", { type: "response.created" })).toBe("window");
    expect(u("server", {})).toBe("window");
    expect(u("client", { type: "response.create" })).toBe("lazy");
    expect(u("local", { type: "stats" })).toBe("lazy");
    expect(u("local", { type: "call.start" })).toBe("now");
  });

  it("flushes at maxBatch immediately and loses nothing in a flood", async () => {
    const b = make({ maxBatch: 500 });
    for (let i = 0; i < 1234; i++)
      b.add(7, "server", { type: "response.output_text.delta", i });
    expect(sent.map((m) => m.records.length)).toEqual([500, 500]); // full batches went at once
    await endOfTask();
    vi.advanceTimersByTime(4);
    expect(sent.map((m) => m.records.length)).toEqual([500, 500, 234]);
    const all = sent.flatMap((m) => m.records);
    expect(all.map((r) => r.seq)).toEqual([...Array(1234).keys()]);
    expect(all.map((r) => r.event.i)).toEqual([...Array(1234).keys()]);
  });

  it("keeps seq increasing across batches and calls, and splits batches by call", async () => {
    const b = make();
    b.add(1, "local", { type: "a" });
    b.add(2, "local", { type: "b" }); // another call: the first batch is closed
    expect(sent).toHaveLength(1);
    expect(sent[0]!.call).toBe(1);
    await endOfTask();
    vi.advanceTimersByTime(4);
    expect(sent[1]!.call).toBe(2);
    expect(sent[1]!.records[0]!.seq).toBe(1);
    b.add(2, "local", { type: "c" });
    await endOfTask();
    vi.advanceTimersByTime(4);
    expect(sent[2]!.records[0]!.seq).toBe(2);
  });

  it("flush() sends what is pending at once (cleanup) and cancels the timer", async () => {
    const b = make();
    b.add(1, "client", { type: "x" });
    b.flush();
    expect(sent).toHaveLength(1);
    await endOfTask();
    vi.advanceTimersByTime(10);
    expect(sent).toHaveLength(1); // the timer did not fire an empty message
    b.flush();
    expect(sent).toHaveLength(1);
  });

  it("uses an explicit timestamp when given (stamped at send/receive time)", () => {
    const b = make();
    const r = b.add(1, "client", { type: "x" }, 42.5);
    expect(r.t_ms).toBe(42.5);
  });

  it("never ships a t_ms Python must refuse: non-finite or out of range falls back to the clock", () => {
    const b = make();
    for (const bad of [NaN, Infinity, -1, 1e300]) {
      const r = b.add(1, "server", { type: "x" }, bad);
      expect(r.t_ms, String(bad)).toBeGreaterThanOrEqual(1_700_000_000_000);
      expect(r.t_ms).toBeLessThanOrEqual(bridge.LIMITS.t_ms_max);
    }
    // a broken injected clock too: epochMs() stands in
    const broken = new EventBatcher({ send: () => undefined, now: () => NaN });
    const r = broken.add(1, "local", { type: "call.start" });
    expect(Math.abs(r.t_ms - Date.now())).toBeLessThan(1000);
  });

  it("keeps every record a JSON object {seq, dir, t_ms, event}", () => {
    const b = make();
    const r = b.add(1, "server", 7 as unknown as bridge.RealtimeEvent);
    expect(Object.keys(r)).toEqual(["seq", "dir", "t_ms", "event"]);
    expect(r.event).toEqual({ type: "local.invalid", value: 7 });
    b.flush();
    const wire = JSON.parse(JSON.stringify(sent[0]!));
    expect(wire.records[0]).toEqual(r);
  });

  it("flushes full batches at the protocol's max_batch by default", () => {
    const b = make();
    for (let i = 0; i < bridge.LIMITS.max_batch; i++)
      b.add(1, "server", { type: "d" });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.records).toHaveLength(bridge.LIMITS.max_batch);
  });
});

describe("EventBatcher: a send that fails", () => {
  let sent: EventsMsg[];
  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
  });
  afterEach(() => vi.useRealTimers());

  /** A transport like the comm: it serialises, so one bad record fails the whole message. */
  const serialising = (down: () => boolean = () => false) =>
    new EventBatcher({
      send: (m) => {
        if (down()) throw new Error("comm closed");
        sent.push(JSON.parse(JSON.stringify(m)) as EventsMsg);
      },
    });

  it("splits the batch: every good record goes, the bad one is refused under its own number", () => {
    const b = serialising();
    const circular: Record<string, unknown> = { type: "stats" };
    circular.self = circular;
    for (let i = 0; i < 9; i++)
      b.add(1, "local", i === 5 ? { ...circular } : { type: "stats", i });
    b.add(1, "local", circular as bridge.RealtimeEvent);
    b.flush();
    const all = sent.flatMap((m) => m.records);
    // every number arrives once, in order: the kernel sees no gap
    expect(all.map((r) => r.seq)).toEqual([...Array(10).keys()]);
    const refused = all.filter((r) => r.event.type === "send.refused");
    expect(refused.map((r) => r.seq)).toEqual([5, 9]);
    expect(refused[0]!.event).toMatchObject({
      seqs: [5],
      dir: "local",
      types: ["stats"],
    });
    expect(String(refused[0]!.event.message)).toMatch(/circular/i);
    expect(all.filter((r) => r.event.type === "stats")).toHaveLength(8);
  });

  it("holds everything while the comm is down and sends it, in order, once it is back", () => {
    let down = true;
    const b = serialising(() => down);
    b.add(1, "client", { type: "a" });
    b.add(1, "client", { type: "b" });
    b.flush();
    expect(sent).toEqual([]);
    expect(b.pending).toBe(2);
    down = false;
    b.add(2, "local", { type: "c" });
    b.flush();
    expect(sent.map((m) => [m.call, m.records.map((r) => r.seq)])).toEqual([
      [1, [0, 1]],
      [2, [2]],
    ]);
    expect(b.pending).toBe(0);
  });

  it("an option passed as undefined keeps its default (the size limit stays on)", () => {
    const b = new EventBatcher({
      send: (m) => sent.push(m),
      maxBatch: undefined,
      batchMs: undefined,
    });
    for (let i = 0; i < bridge.LIMITS.max_batch + 10; i++)
      b.add(1, "server", { type: "d" });
    expect(sent.map((m) => m.records.length)).toEqual([
      bridge.LIMITS.max_batch,
    ]);
  });
});

describe("epochMs", () => {
  it("is close to Date.now with sub-ms resolution available", () => {
    expect(Math.abs(bridge.epochMs() - Date.now())).toBeLessThan(50);
  });
});
