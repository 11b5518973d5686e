/**
 * A Connect click with the kernel's ICE servers in hand starts the call at once (mic, peer
 * connection, gathering) and the kernel's `connect` numbers it; what the call would have told
 * the kernel meanwhile goes then, in order.
 */
import { describe, expect, it, vi } from "vitest";

import { EARLY_BIND_MS } from "../../js/controller";
import { controllerRig, settle } from "./fakes";

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

const rig = controllerRig();

/** Everything the page sent but requests: what the kernel hears about calls. */
const callTraffic = () => rig.model.sent.filter((m) => m.kind !== "request");

describe("a click with ICE servers in hand", () => {
  it("asks the kernel for ICE servers when it starts", () => {
    expect(rig.model.ofKind("request")).toEqual([
      { kind: "request", page: expect.any(String), action: "prepare" },
    ]);
  });

  it("builds the peer connection at once; the kernel's connect numbers the call and what it held goes in order", async () => {
    rig.model.msg(iceMsg());
    rig.ctrl.requestConnect();
    expect(rig.model.requests()).toMatchObject([{ action: "connect" }]);
    await settle();
    expect(rig.world.pcs).toHaveLength(1); // before any connect
    expect(rig.world.pc().config.iceServers).toEqual(ICE);
    expect(rig.world.getUserMedia).toHaveBeenCalledOnce();
    rig.world.pc().completeGathering();
    await settle();
    expect(callTraffic()).toEqual([]); // no number yet: nothing about the call goes

    rig.model.msg(connectMsg(7));
    await settle();
    expect(rig.world.pcs).toHaveLength(1); // the same connection, no second start
    expect(rig.model.ofKind("offer")).toEqual([
      { kind: "offer", call: 7, page: expect.any(String), sdp: "v=0 offer" },
    ]);
    expect(rig.model.ofKind("state")).toMatchObject([
      { call: 7, state: "connecting" },
    ]);
    await vi.advanceTimersByTimeAsync(5);
    const recs = rig.model.records();
    expect(recs.map((r) => r.event.type)).toEqual(["call.start", "offer.sent"]);
    expect(recs[0]!.event.call).toBe(7);
    // URLs only in the log: TURN credentials never reach a record
    expect(JSON.stringify(recs)).not.toContain(TURN.credential);
    expect(rig.model.ofKind("events").every((m) => m.call === 7)).toBe(true);

    rig.model.msg({ kind: "answer", call: 7, sdp: "v=0 answer" });
    await settle();
    rig.world.pc().channel.open();
    expect(rig.world.pc().channel.sent.map((s) => JSON.parse(s).type)).toEqual([
      "session.update",
      "response.create",
    ]);
    expect(rig.model.ofKind("state").at(-1)).toMatchObject({
      call: 7,
      state: "connected",
    });
  });

  it("a connect with another list starts afresh with it; the early call goes quietly", async () => {
    rig.model.msg(iceMsg());
    rig.ctrl.requestConnect();
    await settle();
    const early = rig.world.pc();
    rig.model.msg(
      connectMsg(2, { ice_servers: [{ urls: ["stun:127.0.0.1:9"] }] }),
    );
    await settle();
    expect(early.closed).toBe(true);
    expect(rig.world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(rig.world.pcs).toHaveLength(2);
    expect(rig.world.pc().config.iceServers).toEqual([
      { urls: ["stun:127.0.0.1:9"] },
    ]);
    await vi.advanceTimersByTimeAsync(5);
    expect(rig.model.records().map((r) => r.event.type)).toEqual([
      "call.start",
    ]);
    expect(rig.model.records()[0]!.event.call).toBe(2);
  });

  it("each list serves one click, and only while fresh", async () => {
    rig.ctrl.requestConnect(); // no list: the connect starts the call, as always
    await settle();
    expect(rig.world.pcs).toHaveLength(0);

    rig.model.msg(iceMsg({ ttl_ms: 1000 }));
    await vi.advanceTimersByTimeAsync(1500);
    rig.ctrl.requestConnect(); // stale
    await settle();
    expect(rig.world.pcs).toHaveLength(0);

    rig.model.msg(iceMsg());
    rig.ctrl.requestConnect();
    await settle();
    expect(rig.world.pcs).toHaveLength(1);
    rig.model.msg(connectMsg(1));
    await settle();
    rig.ctrl.current?.close();
    rig.ctrl.requestConnect(); // the list went with call 1
    await settle();
    expect(rig.world.pcs).toHaveLength(1);
  });

  it("a call the kernel never numbers is given up, silently", async () => {
    rig.model.msg(iceMsg());
    rig.ctrl.requestConnect();
    await settle();
    await vi.advanceTimersByTimeAsync(EARLY_BIND_MS);
    expect(rig.world.pc().closed).toBe(true);
    expect(rig.world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(callTraffic()).toEqual([]);
    rig.model.msg(connectMsg(3)); // late: a normal start
    await settle();
    expect(rig.world.pcs).toHaveLength(2);
  });

  it("the kernel failing the call (no key, ...) releases the early call", async () => {
    rig.model.msg(iceMsg());
    rig.ctrl.requestConnect();
    await settle();
    rig.model.set("status", "failed");
    expect(rig.world.pc().closed).toBe(true);
    expect(callTraffic()).toEqual([]);
  });
});
