import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import {
  IceGatherer,
  hasTurnServer,
  isRelayCandidate,
  type GatherOptions,
  type GatherResult,
} from "../../js/gather";
import { Timers } from "../../js/timers";
import { FakePC, fakeWorld } from "./fakes";

let owner: AbortController;
let pc: FakePC;

beforeEach(() => {
  vi.useFakeTimers();
  owner = new AbortController();
  pc = new FakePC({});
  pc.iceGatheringState = "gathering";
});
afterEach(() => vi.useRealTimers());

function gatherer(over: Partial<GatherOptions> = {}): IceGatherer {
  return new IceGatherer(
    pc as unknown as RTCPeerConnection,
    { deadlineMs: 800, idleMs: 300, expectRelay: false, ...over },
    new Timers(fakeWorld().deps, owner.signal),
    owner.signal,
    () => Date.now(),
  );
}

/** Start waiting and note when (fake ms after the start) it settled, and with what. */
function waitFor(g: IceGatherer) {
  const t0 = Date.now();
  const out: { result?: GatherResult | null; at?: number } = {};
  void g.wait().then((r) => {
    out.result = r;
    out.at = Date.now() - t0;
  });
  return out;
}

describe("IceGatherer: when the offer goes", () => {
  it("complete: as soon as gathering completes", async () => {
    const w = waitFor(gatherer());
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(50);
    pc.completeGathering();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.result).toEqual({
      sentBy: "complete",
      candidates: 1,
      relayCandidates: 0,
    });
    expect(w.at).toBe(50);
    expect(vi.getTimerCount()).toBe(0); // deadline and idle timers are gone
  });

  it("complete: at once when gathering finished before the wait began", async () => {
    const g = gatherer();
    pc.gatherCandidate();
    pc.endOfCandidates();
    await expect(g.wait()).resolves.toEqual({
      sentBy: "complete",
      candidates: 1,
      relayCandidates: 0,
    });
  });

  it("idle: a silent STUN server costs one idle window after the last candidate, not the deadline", async () => {
    const w = waitFor(gatherer());
    await vi.advanceTimersByTimeAsync(20);
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(30);
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(299);
    expect(w.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(w.result).toEqual({
      sentBy: "idle",
      candidates: 2,
      relayCandidates: 0,
    });
    expect(w.at).toBe(350);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("idle: candidates that came before the wait count from the last one", async () => {
    const g = gatherer();
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(100);
    const w = waitFor(g);
    await vi.advanceTimersByTimeAsync(199);
    expect(w.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(w.result?.sentBy).toBe("idle");
  });

  it("deadline: with no candidate at all there is nothing to send early", async () => {
    const w = waitFor(gatherer());
    await vi.advanceTimersByTimeAsync(799);
    expect(w.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(w.result).toEqual({
      sentBy: "deadline",
      candidates: 0,
      relayCandidates: 0,
    });
  });

  it("deadline: with TURN configured, host candidates alone do not end the wait", async () => {
    const w = waitFor(gatherer({ expectRelay: true }));
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(400);
    pc.gatherCandidate(); // a late srflx, still no relay
    await vi.advanceTimersByTimeAsync(399);
    expect(w.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(w.result).toEqual({
      sentBy: "deadline",
      candidates: 2,
      relayCandidates: 0,
    });
    expect(w.at).toBe(800);
  });

  it("idle: with TURN configured, the window runs once a relay candidate is in", async () => {
    const w = waitFor(gatherer({ expectRelay: true }));
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(350); // idle passed, but no relay: keep waiting
    expect(w.result).toBeUndefined();
    pc.gatherRelay();
    await vi.advanceTimersByTimeAsync(300);
    expect(w.result).toEqual({
      sentBy: "idle",
      candidates: 2,
      relayCandidates: 1,
    });
    expect(w.at).toBe(650);
  });

  it("a candidate after the relay restarts the window (more may be coming)", async () => {
    const w = waitFor(gatherer({ expectRelay: true }));
    pc.gatherRelay();
    await vi.advanceTimersByTimeAsync(200);
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(299);
    expect(w.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(w.result?.sentBy).toBe("idle");
    expect(w.at).toBe(500);
  });

  it("the call ending resolves the wait with null and leaves no timer", async () => {
    const w = waitFor(gatherer());
    pc.gatherCandidate();
    owner.abort();
    await vi.advanceTimersByTimeAsync(1000);
    expect(w.result).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    pc.completeGathering(); // its listeners went with the call
    await vi.advanceTimersByTimeAsync(0);
    expect(w.result).toBeNull();
  });
});

describe("ICE helpers", () => {
  it("hasTurnServer sees turn: and turns: URLs, in strings or lists", () => {
    expect(hasTurnServer([])).toBe(false);
    expect(hasTurnServer([{ urls: "stun:s:3478" }])).toBe(false);
    expect(hasTurnServer([{ urls: ["stun:s", "turn:t:3478"] }])).toBe(true);
    expect(hasTurnServer([{ urls: "TURNS:t:443?transport=tcp" }])).toBe(true);
  });

  it("isRelayCandidate prefers the parsed type and falls back to the SDP line", () => {
    expect(isRelayCandidate({ type: "relay", candidate: "" })).toBe(true);
    expect(isRelayCandidate({ type: "host", candidate: "x typ relay" })).toBe(
      false,
    );
    expect(
      isRelayCandidate({
        candidate: "candidate:1 1 udp 1 1.2.3.4 9 typ relay",
      }),
    ).toBe(true);
    expect(
      isRelayCandidate({
        candidate: "candidate:1 1 udp 1 1.2.3.4 9 typ srflx raddr 0.0.0.0",
      }),
    ).toBe(false);
  });
});
