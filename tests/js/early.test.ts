/**
 * A Connect click with the kernel's ICE servers in hand starts the call at once (mic, peer
 * connection, gathering) and the kernel's `connect` numbers it; what the call would have told
 * the kernel meanwhile goes then, in order.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Controller, EARLY_BIND_MS } from "../../js/controller";
import { FakeModel, fakeWorld, settle, type FakeWorld } from "./fakes";

const TURN = {
  urls: ["turn:127.0.0.1:3478"],
  username: "turn-user-77",
  credential: "turn-cred-88",
};
const ICE = [{ urls: ["stun:127.0.0.1:3478"] }, TURN];
const SESSION_UPDATE = { type: "session.update", session: { voice: "Clive" } };

function iceMsg(extra: Record<string, unknown> = {}) {
  return {
    kind: "ice",
    page: "",
    ice_servers: ICE,
    gather_timeout_ms: 800,
    ttl_ms: 30_000,
    ...extra,
  };
}

function connectMsg(call: number, extra: Record<string, unknown> = {}) {
  return {
    kind: "connect",
    call,
    page: "",
    ice_servers: ICE,
    session_update: SESSION_UPDATE,
    queued: [{ type: "response.create" }],
    mic: true,
    gather_timeout_ms: 800,
    ...extra,
  };
}

let world: FakeWorld;
let model: FakeModel;
let ctrl: Controller;

beforeEach(() => {
  vi.useFakeTimers();
  world = fakeWorld();
  model = new FakeModel();
  ctrl = new Controller(model.asModel(), world.deps);
});
afterEach(() => {
  ctrl.dispose();
  vi.useRealTimers();
});

/** Everything the page sent but requests: what the kernel hears about calls. */
const callTraffic = () => model.sent.filter((m) => m.kind !== "request");

describe("a click with ICE servers in hand", () => {
  it("asks the kernel for ICE servers when it starts", () => {
    expect(model.ofKind("request")).toEqual([
      { kind: "request", page: expect.any(String), action: "prepare" },
    ]);
  });

  it("builds the peer connection at once; the kernel's connect numbers the call and what it held goes in order", async () => {
    model.msg(iceMsg());
    ctrl.requestConnect();
    expect(model.requests()).toMatchObject([{ action: "connect" }]);
    await settle();
    expect(world.pcs).toHaveLength(1); // before any connect
    expect(world.pc().config.iceServers).toEqual(ICE);
    expect(world.getUserMedia).toHaveBeenCalledOnce();
    world.pc().completeGathering();
    await settle();
    expect(callTraffic()).toEqual([]); // no number yet: nothing about the call goes

    model.msg(connectMsg(7));
    await settle();
    expect(world.pcs).toHaveLength(1); // the same connection, no second start
    expect(model.ofKind("offer")).toEqual([
      { kind: "offer", call: 7, page: expect.any(String), sdp: "v=0 offer" },
    ]);
    expect(model.ofKind("state")).toMatchObject([
      { call: 7, state: "connecting" },
    ]);
    await vi.advanceTimersByTimeAsync(5);
    const recs = model.records();
    expect(recs.map((r) => r.event.type)).toEqual(["call.start", "offer.sent"]);
    expect(recs[0]!.event.call).toBe(7);
    // URLs only in the log: TURN credentials never reach a record
    expect(JSON.stringify(recs)).not.toContain(TURN.credential);
    expect(model.ofKind("events").every((m) => m.call === 7)).toBe(true);

    model.msg({ kind: "answer", call: 7, sdp: "v=0 answer" });
    await settle();
    world.pc().channel.open();
    expect(world.pc().channel.sent.map((s) => JSON.parse(s).type)).toEqual([
      "session.update",
      "response.create",
    ]);
    expect(model.ofKind("state").at(-1)).toMatchObject({
      call: 7,
      state: "connected",
    });
  });

  it("a connect with another list starts afresh with it; the early call goes quietly", async () => {
    model.msg(iceMsg());
    ctrl.requestConnect();
    await settle();
    const early = world.pc();
    model.msg(connectMsg(2, { ice_servers: [{ urls: ["stun:127.0.0.1:9"] }] }));
    await settle();
    expect(early.closed).toBe(true);
    expect(world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(world.pcs).toHaveLength(2);
    expect(world.pc().config.iceServers).toEqual([
      { urls: ["stun:127.0.0.1:9"] },
    ]);
    await vi.advanceTimersByTimeAsync(5);
    expect(model.records().map((r) => r.event.type)).toEqual(["call.start"]);
    expect(model.records()[0]!.event.call).toBe(2);
  });

  it("each list serves one click, and only while fresh", async () => {
    ctrl.requestConnect(); // no list: the connect starts the call, as always
    await settle();
    expect(world.pcs).toHaveLength(0);

    model.msg(iceMsg({ ttl_ms: 1000 }));
    await vi.advanceTimersByTimeAsync(1500);
    ctrl.requestConnect(); // stale
    await settle();
    expect(world.pcs).toHaveLength(0);

    model.msg(iceMsg());
    ctrl.requestConnect();
    await settle();
    expect(world.pcs).toHaveLength(1);
    model.msg(connectMsg(1));
    await settle();
    ctrl.current?.close();
    ctrl.requestConnect(); // the list went with call 1
    await settle();
    expect(world.pcs).toHaveLength(1);
  });

  it("a call the kernel never numbers is given up, silently", async () => {
    model.msg(iceMsg());
    ctrl.requestConnect();
    await settle();
    await vi.advanceTimersByTimeAsync(EARLY_BIND_MS);
    expect(world.pc().closed).toBe(true);
    expect(world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(callTraffic()).toEqual([]);
    model.msg(connectMsg(3)); // late: a normal start
    await settle();
    expect(world.pcs).toHaveLength(2);
  });

  it("the kernel failing the call (no key, ...) releases the early call", async () => {
    model.msg(iceMsg());
    ctrl.requestConnect();
    await settle();
    model.set("status", "failed");
    expect(world.pc().closed).toBe(true);
    expect(callTraffic()).toEqual([]);
  });
});
