/// <reference types="node" />
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import type { EventRecord, RealtimeEvent } from "../../js/bridge";
import { LatencyTracker, MedianWindow } from "../../js/latency";
import { Store, type StoreChange } from "../../js/store";

/** Feeds records with explicit times, in order; `seq` follows arrival. */
function feed<R>(apply: (rec: EventRecord) => R) {
  let seq = 0;
  const push = (dir: EventRecord["dir"], t_ms: number, event: RealtimeEvent) =>
    apply({ seq: seq++, dir, t_ms, event });
  return {
    server: (t: number, event: RealtimeEvent) => push("server", t, event),
    client: (t: number, event: RealtimeEvent) => push("client", t, event),
    local: (t: number, event: RealtimeEvent) => push("local", t, event),
  };
}

const created = (id: string, modalities?: string[]): RealtimeEvent => ({
  type: "response.created",
  response: modalities ? { id, output_modalities: modalities } : { id },
});
const done = (id: string, status = "completed"): RealtimeEvent => ({
  type: "response.done",
  response: { id, status },
});
const audible = (id: string): RealtimeEvent => ({
  type: "audio.audible",
  response_id: id,
  rms: 0.2,
});
const delta = (
  id: string,
  type = "response.output_audio_transcript.delta",
): RealtimeEvent => ({ type, response_id: id, delta: "x" });
const typed = (text: string): RealtimeEvent => ({
  type: "conversation.item.create",
  item: {
    type: "message",
    role: "user",
    content: [{ type: "input_text", text }],
  },
});

/** A whole spoken turn answered with audio, heard `ms` after the user stopped. */
function speechTurn(
  f: ReturnType<typeof feed<unknown>>,
  id: string,
  t0: number,
  ms: number,
) {
  f.server(t0 - 500, { type: "input_audio_buffer.speech_started" });
  f.server(t0, { type: "input_audio_buffer.speech_stopped" });
  f.server(t0 + 5, { type: "input_audio_buffer.committed", item_id: "i" });
  f.server(t0 + 20, created(id, ["audio"]));
  f.server(t0 + 40, delta(id));
  f.local(t0 + ms, audible(id));
  f.server(t0 + ms + 900, done(id));
}

describe("LatencyTracker", () => {
  it("starts empty: nothing measured, nothing in flight", () => {
    const tr = new LatencyTracker();
    expect(tr.summary()).toEqual({ last: null, median: null, count: 0 });
    expect(tr.responding).toBe(false);
  });

  it("speech turn: speech_stopped to the browser's first audible moment", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(1000, { type: "input_audio_buffer.speech_started" });
    f.server(2000, { type: "input_audio_buffer.speech_stopped" });
    expect(f.server(2100, created("r1", ["audio", "text"]))).toEqual({
      latency: false,
      responding: true,
    });
    // an audio reply waits for what the browser hears, not the transcript delta
    expect(f.server(2150, delta("r1")).latency).toBe(false);
    expect(tr.summary().last).toBeNull();
    expect(f.local(2412, audible("r1"))).toEqual({
      latency: true,
      responding: false,
    });
    expect(tr.summary()).toEqual({ last: 412, median: 412, count: 1 });
    expect(f.server(3000, done("r1"))).toEqual({
      latency: false,
      responding: true,
    });
    expect(tr.responding).toBe(false);
    // a second audible for the same reply is not a new first moment
    expect(f.local(3100, audible("r1")).latency).toBe(false);
    expect(tr.summary().count).toBe(1);
  });

  it("text turn: response.create to the first text delta (GA and beta names)", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.client(1000, typed("hi"));
    f.client(1001, { type: "response.create" });
    f.server(1100, created("r1", ["text"]));
    expect(f.server(1250, delta("r1", "response.output_text.delta"))).toEqual({
      latency: true,
      responding: false,
    });
    expect(tr.summary()).toEqual({ last: 249, median: 249, count: 1 });
    f.server(1400, done("r1"));

    f.client(2000, typed("again"));
    f.client(2000, { type: "response.create" });
    f.server(2050, created("r2")); // no modalities: take the first delta at once
    f.server(2300, delta("r2", "response.text.delta"));
    expect(tr.summary().last).toBe(300);
    f.server(2400, delta("r2", "response.text.delta")); // only the first counts
    expect(tr.summary()).toEqual({ last: 300, median: 274.5, count: 2 });
  });

  it("an unheard audio reply falls back to its first delta at done, then corrects", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(0, { type: "input_audio_buffer.speech_stopped" });
    f.server(50, created("r1", ["audio"]));
    f.server(200, delta("r1", "response.audio_transcript.delta"));
    expect(tr.summary().last).toBeNull();
    expect(f.server(300, done("r1")).latency).toBe(true);
    expect(tr.summary()).toEqual({ last: 200, median: 200, count: 1 });
    // heard after all (the audio outlives response.done): the browser's ear wins
    expect(f.local(450, audible("r1")).latency).toBe(true);
    expect(tr.summary()).toEqual({ last: 450, median: 450, count: 1 });
  });

  it("a turn cancelled before any output is not measured and ends the flight", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    speechTurn(f, "r1", 1000, 400);
    f.server(5000, { type: "input_audio_buffer.speech_stopped" });
    f.server(5050, created("r2", ["audio"]));
    expect(tr.responding).toBe(true);
    expect(f.server(5100, done("r2", "cancelled"))).toEqual({
      latency: false,
      responding: true,
    });
    expect(tr.responding).toBe(false);
    expect(tr.summary()).toEqual({ last: 400, median: 400, count: 1 });
  });

  it("a turn heard and then interrupted still counts", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(0, { type: "input_audio_buffer.speech_stopped" });
    f.server(30, created("r1", ["audio"]));
    f.local(380, audible("r1"));
    f.server(900, { type: "input_audio_buffer.speech_started" });
    f.server(950, done("r1", "cancelled"));
    expect(tr.summary()).toEqual({ last: 380, median: 380, count: 1 });
  });

  it("median over several turns; `last` is the newest measured turn", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    const ms = [500, 300, 420, 380, 900];
    ms.forEach((v, i) => speechTurn(f, `r${i}`, 10_000 * (i + 1), v));
    expect(tr.summary()).toEqual({ last: 900, median: 420, count: 5 });
    speechTurn(f, "r5", 100_000, 100);
    expect(tr.summary()).toEqual({ last: 100, median: 400, count: 6 });
  });

  it("mirrors _turns.py: the latest of speech_stopped / response.create starts the turn", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(1000, { type: "input_audio_buffer.speech_stopped" });
    f.client(1200, { type: "response.create" }); // manual turn-taking
    f.server(1250, created("r1", ["text"]));
    f.server(1500, delta("r1", "response.output_text.delta"));
    expect(tr.summary().last).toBe(300);
  });

  it("a response with no turn start (nothing since the last one) is not measured", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.client(0, { type: "response.create" });
    f.server(10, created("r1", ["text"]));
    f.server(20, delta("r1", "response.output_text.delta"));
    f.server(30, done("r1"));
    f.server(40, created("r2", ["text"])); // server-initiated follow-up
    f.server(90, delta("r2", "response.output_text.delta"));
    // a typed item resets the start; the response.create after it sets it again
    f.client(100, { type: "response.create" });
    f.client(150, typed("x"));
    f.server(160, created("r3", ["text"]));
    f.server(170, delta("r3", "response.output_text.delta"));
    expect(tr.summary()).toEqual({ last: 20, median: 20, count: 1 });
  });

  it("a correction to an older turn does not replace `last`", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(0, { type: "input_audio_buffer.speech_stopped" });
    f.server(10, created("r1", ["audio"]));
    f.server(100, delta("r1"));
    f.server(200, done("r1")); // fallback: 100
    f.client(1000, { type: "response.create" });
    f.server(1010, created("r2", ["text"]));
    f.server(1300, delta("r2", "response.output_text.delta")); // 300
    f.local(1400, audible("r1")); // late: r1 becomes 1400
    expect(tr.summary()).toEqual({ last: 300, median: 850, count: 2 });
  });

  it("a new call clears what is in flight and the pending turn start", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(0, { type: "input_audio_buffer.speech_stopped" });
    f.server(10, created("r1", ["audio"]));
    expect(f.local(20, { type: "call.start", call: 2 }).responding).toBe(true);
    expect(tr.responding).toBe(false);
    f.local(30, audible("r1")); // the old call's reply: forgotten
    f.server(40, created("r2", ["text"]));
    f.server(50, delta("r2", "response.output_text.delta"));
    expect(tr.summary().count).toBe(0);
  });

  it("stays bounded: the median covers only the last window of turns", () => {
    const tr = new LatencyTracker(3);
    const f = feed((r) => tr.apply(r));
    [1000, 1000, 1000, 10, 20, 30].forEach((v, i) =>
      speechTurn(f, `r${i}`, 10_000 * (i + 1), v),
    );
    expect(tr.summary()).toEqual({ last: 30, median: 20, count: 3 });
  });
});

describe("MedianWindow", () => {
  it("keeps a sorted window with corrections and evictions", () => {
    const w = new MedianWindow(4);
    expect(w.median()).toBeNull();
    const a = w.add(5);
    w.add(1);
    w.add(3);
    expect(w.median()).toBe(3);
    w.add(3);
    expect(w.median()).toBe(3);
    w.update(a, 0); // [0,1,3,3]
    expect(w.median()).toBe(2);
    w.add(10); // evicts a (0): [1,3,3,10]
    expect(w.count).toBe(4);
    expect(w.median()).toBe(3);
    w.update(a, 100); // no longer in the window: ignored
    expect(w.median()).toBe(3);
  });
});

describe("Store latency and responding", () => {
  it("notifies latency and responding changes; the end of a call stops the flight", () => {
    const store = new Store();
    const seen: StoreChange["type"][] = [];
    store.subscribe((c) => seen.push(c.type));
    const f = feed((r) => store.addRecord(r));
    f.server(0, { type: "input_audio_buffer.speech_stopped" });
    f.server(10, created("r1", ["audio"]));
    expect(store.responding).toBe(true);
    f.server(20, delta("r1"));
    f.local(333, audible("r1"));
    expect(store.latency()).toEqual({ last: 333, median: 333, count: 1 });
    expect(seen.filter((t) => t === "responding")).toHaveLength(1);
    expect(seen.filter((t) => t === "latency")).toHaveLength(1);
    store.setStatus(1, "disconnected", "");
    expect(store.responding).toBe(false);
    expect(seen.slice(-2)).toEqual(["status", "responding"]);
    store.setStatus(1, "disconnected", "");
    expect(seen.filter((t) => t === "responding")).toHaveLength(2);
  });
});

describe("Stop stays available while the reply's audio plays out", () => {
  it("is responding from response.created until output_audio_buffer.stopped, past response.done", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    expect(f.server(0, created("r1", ["audio"])).responding).toBe(true);
    f.server(10, { type: "output_audio_buffer.started", response_id: "r1" });
    expect(f.server(20, done("r1")).responding).toBe(false); // no change: audio still plays
    expect(tr.responding).toBe(true);
    const stopped = f.server(900, {
      type: "output_audio_buffer.stopped",
      response_id: "r1",
    });
    expect(stopped.responding).toBe(true); // it changed
    expect(tr.responding).toBe(false);
  });

  it("ends with a cleared buffer or the end of the call", () => {
    const tr = new LatencyTracker();
    const f = feed((r) => tr.apply(r));
    f.server(0, { type: "output_audio_buffer.started", response_id: "r2" });
    f.server(5, { type: "output_audio_buffer.cleared", response_id: "r2" });
    expect(tr.responding).toBe(false);
    f.server(10, { type: "output_audio_buffer.started", response_id: "r3" });
    expect(f.local(20, { type: "call.start", call: 2 }).responding).toBe(true);
    expect(tr.responding).toBe(false);
  });
});

describe("the same figure as Python's EventLog.latency_summary()", () => {
  it("derives the shared fixture's expected summary", () => {
    const fixture = JSON.parse(
      readFileSync(join(process.cwd(), "tests/fixtures/latency.json"), "utf8"),
    ) as {
      records: Array<Pick<EventRecord, "dir" | "t_ms" | "event">>;
      expected: { last_ms: number; p50_ms: number; measured_turns: number };
    };
    const tr = new LatencyTracker();
    fixture.records.forEach((r, seq) => tr.apply({ seq, ...r }));
    expect(tr.summary()).toEqual({
      last: fixture.expected.last_ms,
      median: fixture.expected.p50_ms,
      count: fixture.expected.measured_turns,
    });
  });
});
