/**
 * The front end against src/realtime_widget/protocol.json, the one description of the
 * kernel <-> browser protocol (Python checks its half against the same file).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import protocol from "../../src/realtime_widget/protocol.json";
import * as bridge from "../../js/bridge";
import type {
  Direction,
  EventRecord,
  RequestAction,
  Status,
  ToBrowserKind,
  ToBrowserMsg,
  ToKernelKind,
  ToKernelMsg,
} from "../../js/bridge";
import { Controller } from "../../js/controller";
import { toBase64 } from "../../js/bytes";
import { fakeAudio, fakeClip } from "./audiofakes";
import { FakeModel, FakeStream, fakeWorld, settle } from "./fakes";

const sorted = (xs: readonly string[]) => [...xs].sort();
const fields = (msg: object) =>
  sorted(Object.keys(msg).filter((k) => k !== "kind"));

// One message per kind, typed by the TS interfaces: a missing field fails `tsc`, an extra one
// fails the excess-property check, and the tests below compare the rest with the file.
const TO_BROWSER: { [K in ToBrowserKind]: Extract<ToBrowserMsg, { kind: K }> } =
  {
    connect: {
      kind: "connect",
      call: 1,
      page: "",
      ice_servers: [],
      session_update: { type: "session.update" },
      queued: [],
      mic: true,
      gather_timeout_ms: 800,
    },
    answer: { kind: "answer", call: 1, page: "", sdp: "v=0" },
    ice: {
      kind: "ice",
      page: "",
      ice_servers: [],
      gather_timeout_ms: 800,
      ttl_ms: 30000,
    },
    signal_error: { kind: "signal_error", call: 1, page: "", message: "no" },
    send: { kind: "send", call: 1, page: "", events: [] },
    shown: { kind: "shown", call: 1, page: "", events: [] },
    disconnect: { kind: "disconnect", call: 1, page: "" },
    play: {
      kind: "play",
      call: 1,
      page: "",
      clip_id: "c1",
      index: 0,
      last: true,
      mime: "audio/wav",
      duck: 0.3,
      source: "path",
      b64: "",
    },
    stop_clip: { kind: "stop_clip", call: 1, page: "", clip_id: "c1" },
    probe: { kind: "probe", page: "", probe_id: "p1", b64: "AAE=" },
  };

const TO_KERNEL: { [K in ToKernelKind]: Extract<ToKernelMsg, { kind: K }> } = {
  offer: { kind: "offer", call: 1, page: "p", sdp: "v=0" },
  events: { kind: "events", call: 1, page: "p", records: [] },
  state: {
    kind: "state",
    call: 1,
    page: "p",
    state: "connected",
    detail: "",
  },
  recording: {
    kind: "recording",
    call: 1,
    page: "p",
    seq: 0,
    t0_ms: 1,
    sample_rate: 24000,
    frames: 0,
    b64: "",
  },
  probe_reply: {
    kind: "probe_reply",
    page: "p",
    probe_id: "p1",
    buffers: 1,
    bytes: 2,
    b64: "",
  },
  // the send_text variant: the one that carries every request field
  request: { kind: "request", page: "p", action: "send_text", text: "hi" },
};

const RECORD: EventRecord = { seq: 0, dir: "local", t_ms: 1, event: {} };

// Each union member once: the compiler insists on all of them and nothing else.
const STATUS_SET: Record<Status, true> = {
  disconnected: true,
  connecting: true,
  connected: true,
  failed: true,
};
const DIRECTION_SET: Record<Direction, true> = {
  client: true,
  server: true,
  local: true,
};
const ACTION_SET: Record<RequestAction, true> = {
  connect: true,
  disconnect: true,
  send_text: true,
  cancel_response: true,
  approve: true,
  reject: true,
  prepare: true,
};

// One request per action, typed by RequestMsg: together they carry every request field.
const REQUESTS: {
  [A in RequestAction]: Extract<ToKernelMsg, { kind: "request" }> & {
    action: A;
  };
} = {
  connect: { kind: "request", page: "p", action: "connect" },
  disconnect: { kind: "request", page: "p", action: "disconnect" },
  send_text: { kind: "request", page: "p", action: "send_text", text: "hi" },
  cancel_response: { kind: "request", page: "p", action: "cancel_response" },
  approve: { kind: "request", page: "p", action: "approve", call_id: "c1" },
  prepare: { kind: "request", page: "p", action: "prepare" },
  reject: {
    kind: "request",
    page: "p",
    action: "reject",
    call_id: "c1",
    reason: "",
  },
};

describe("message shapes match protocol.json", () => {
  it("every kind both ways, with the TS interface's fields", () => {
    expect(sorted(Object.keys(TO_BROWSER))).toEqual(
      sorted(Object.keys(protocol.to_browser)),
    );
    for (const [kind, msg] of Object.entries(TO_BROWSER))
      expect(fields(msg), kind).toEqual(
        sorted(protocol.to_browser[kind as ToBrowserKind]),
      );
    expect(sorted(Object.keys(TO_KERNEL))).toEqual(
      sorted(Object.keys(protocol.to_kernel)),
    );
    for (const [kind, msg] of Object.entries(TO_KERNEL))
      expect(
        kind === "request"
          ? sorted([...new Set(Object.values(REQUESTS).flatMap(fields))])
          : fields(msg),
        kind,
      ).toEqual(sorted(protocol.to_kernel[kind as ToKernelKind]));
  });

  it("parseToBrowser keeps exactly the file's fields of each kind", () => {
    for (const [kind, msg] of Object.entries(TO_BROWSER)) {
      const parsed = bridge.parseToBrowser({ ...msg, extra: "dropped" });
      expect(parsed && fields(parsed), kind).toEqual(
        sorted(protocol.to_browser[kind as ToBrowserKind]),
      );
    }
  });

  it("an event record has the file's record fields", () => {
    expect(Object.keys(RECORD)).toEqual(protocol.record_fields);
  });

  it("kinds, statuses, directions, actions and the gather default come from the file", () => {
    expect(bridge.TO_BROWSER).toEqual(Object.keys(protocol.to_browser));
    expect(bridge.TO_KERNEL).toEqual(Object.keys(protocol.to_kernel));
    expect([
      bridge.CONNECT,
      bridge.ANSWER,
      bridge.SIGNAL_ERROR,
      bridge.SEND,
      bridge.SHOWN,
      bridge.DISCONNECT,
      bridge.PLAY,
      bridge.STOP_CLIP,
      bridge.PROBE,
      bridge.ICE,
    ]).toEqual(Object.keys(protocol.to_browser));
    expect([
      bridge.OFFER,
      bridge.EVENTS,
      bridge.STATE,
      bridge.REQUEST,
      bridge.RECORDING,
      bridge.PROBE_REPLY,
    ]).toEqual(Object.keys(protocol.to_kernel));
    expect(bridge.STATUSES).toEqual(protocol.statuses);
    expect(bridge.DIRECTIONS).toEqual(protocol.directions);
    expect(bridge.REQUEST_ACTIONS).toEqual(protocol.request_actions);
    expect(bridge.DEFAULT_GATHER_TIMEOUT_MS).toBe(protocol.gather_timeout_ms);
  });

  it("the TS unions name exactly the file's values", () => {
    expect(sorted(Object.keys(STATUS_SET))).toEqual(sorted(protocol.statuses));
    expect(sorted(Object.keys(DIRECTION_SET))).toEqual(
      sorted(protocol.directions),
    );
    expect(sorted(Object.keys(ACTION_SET))).toEqual(
      sorted(protocol.request_actions),
    );
  });
});

describe("local events: every one the front end records is in protocol.json", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** Drive one page through every path that records a local event; return them all. */
  async function everyLocalEvent(): Promise<Record<string, unknown>[]> {
    const audio = fakeAudio();
    audio.ctx.state = "suspended"; // no user gesture yet
    audio.ctx.resumable = false;
    const world = fakeWorld({
      micError: new DOMException("denied", "NotAllowedError"),
      audio: audio.deps,
    });
    const model = new FakeModel({ record: true });
    const ctrl = new Controller(model.asModel(), world.deps, {
      callOptions: { audiblePollMs: 10, statsIntervalMs: 1000 },
    });
    const connectMsg = (call: number) => ({ ...TO_BROWSER.connect, call });
    model.msg(connectMsg(1));
    await settle();
    const pc = world.pc();
    pc.gatherCandidate();
    pc.completeGathering();
    await settle();
    model.msg({ kind: "answer", call: 1, sdp: "v=0 answer" });
    await settle();
    pc.channel.open();
    pc.setConnectionState("connected");
    const remote = new FakeStream();
    pc.emitTrack(remote.tracks[0], [remote]);
    world.sinks[0]!.fail(new DOMException("autoplay", "NotAllowedError"));
    pc.channel.receive(
      JSON.stringify({ type: "response.created", response: { id: "r1" } }),
    );
    world.meters.get(remote)!.value = 0.5;
    await vi.advanceTimersByTimeAsync(1000); // audible poll, a stats sample, audio.suspended
    audio.ctx.setState("running"); // a click in the widget
    const clip = (clip_id: string, bytes: Uint8Array) =>
      model.msg({ ...TO_BROWSER.play, clip_id, b64: toBase64(bytes) });
    clip("ok", fakeClip(1, 0.5));
    clip("bad", new Uint8Array(3));
    await vi.advanceTimersByTimeAsync(100); // decoded (or not), and "ok" started
    model.msg({ kind: "stop_clip", call: 1, clip_id: "ok" });
    const recorder = audio.nodes[0]!;
    recorder.port.deliver({ frame0: 0, frames: 1, pcm: new Int16Array(2) });
    pc.channel.receive("{not json");
    pc.channel.dispatchEvent(
      Object.assign(new Event("error"), { error: new Error("sctp") }),
    );
    pc.channel.readyState = "closing";
    model.msg({ kind: "send", call: 1, events: [{ type: "response.create" }] });
    pc.channel.readyState = "open";
    // An event the channel cannot serialise: its send.error record cannot go either.
    model.msg({ kind: "send", call: 1, events: [{ type: "x", n: BigInt(1) }] });
    await settle();
    model.msg({ kind: "answer", call: 9, sdp: "late" });
    model.msg({ kind: "send", call: 9, events: [{ type: "x" }] });
    model.msg({ kind: "disconnect", call: 1 });
    recorder.port.deliver({
      frame0: 2,
      frames: 0,
      pcm: new Int16Array(0),
      final: true,
    });
    model.msg(connectMsg(2));
    await settle();
    model.msg({ kind: "signal_error", call: 2, message: "HTTP 401" });
    audio.loadWorklet.mockRejectedValue(new Error("blocked")); // recording.error on call 3
    model.msg(connectMsg(3));
    await settle();
    model.trigger("comm:close");
    ctrl.dispose();
    return model
      .records()
      .filter((r) => r.dir === "local")
      .map((r) => r.event);
  }

  it("types are listed as the browser's (or both sides'), and their fields are described", async () => {
    const events = await everyLocalEvent();
    const docs: Record<string, { from: string; fields: string }> =
      protocol.local_events;
    const browserTypes = Object.keys(docs).filter(
      (t) => docs[t]!.from !== "kernel",
    );
    const seen = new Set(events.map((e) => String(e.type)));
    // The scenario reaches every browser-side type, so nothing listed is stale either.
    expect(sorted([...seen])).toEqual(sorted(browserTypes));
    for (const ev of events) {
      const type = String(ev.type);
      const doc = docs[type]!;
      for (const key of Object.keys(ev)) {
        if (key === "type") continue;
        expect(doc.fields, `${type}.${key}`).toMatch(
          new RegExp(`\\b${key}\\b`),
        );
      }
    }
  });
});
