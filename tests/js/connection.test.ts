import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { Direction, RealtimeEvent, Status } from "../../js/bridge";
import { CHANNEL_LABEL, PeerCall, type CallOptions } from "../../js/connection";
import { summarizeStats } from "../../js/stats";
import {
  FakePC,
  FakeStream,
  FakeTrack,
  fakeWorld,
  settle,
  type FakeWorld,
} from "./fakes";

interface Rec {
  dir: Direction;
  event: RealtimeEvent;
  t?: number;
}

function startCall(world: FakeWorld, over: Partial<CallOptions> = {}) {
  const recs: Rec[] = [];
  const states: [Status, string][] = [];
  const offers: string[] = [];
  const call = new PeerCall(
    {
      call: 1,
      iceServers: [{ urls: "stun:stun.example:3478" }],
      sessionUpdate: {
        type: "session.update",
        session: { instructions: "hi" },
      },
      queued: [],
      mic: true,
      muted: false,
      gatherTimeoutMs: 800,
      ...over,
    },
    world.deps,
    {
      record: (dir, event, t) => recs.push({ dir, event, t }),
      state: (s, d) => states.push([s, d]),
      offer: (sdp) => offers.push(sdp),
    },
  );
  const started = call.start();
  const local = (type: string) =>
    recs
      .filter((r) => r.dir === "local" && r.event.type === type)
      .map((r) => r.event);
  return { call, recs, states, offers, started, local };
}

/** Start a call and take it to "connected" (offer out, answer in, channel open). */
async function connected(world: FakeWorld, over: Partial<CallOptions> = {}) {
  const c = startCall(world, over);
  await settle();
  world.pc().completeGathering();
  await c.started;
  await c.call.answer("v=0 answer");
  world.pc().channel.open();
  return c;
}

let world: FakeWorld;
beforeEach(() => {
  vi.useFakeTimers();
  world = fakeWorld();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("offer and ICE gathering", () => {
  it("sends the offer as soon as gathering completes, with the gathered candidates", async () => {
    const c = startCall(world);
    await settle();
    const pc = world.pc();
    expect(pc.config.iceServers).toEqual([{ urls: "stun:stun.example:3478" }]);
    expect(c.states).toEqual([["connecting", ""]]);
    pc.gatherCandidate();
    pc.gatherCandidate();
    expect(c.offers).toHaveLength(0);
    vi.advanceTimersByTime(100);
    pc.completeGathering();
    await c.started;
    expect(c.offers).toHaveLength(1);
    expect(c.offers[0]).toContain("typ host");
    const sent = c.local("offer.sent")[0]!;
    expect(sent.candidates).toBe(2);
    expect(sent.sent_by).toBe("complete");
    expect(sent.gathering_complete).toBe(true);
    expect(sent.gather_ms).toBe(100);
  });

  it("makes and applies the offer in one call, with no trip through the page between", async () => {
    const c = startCall(world);
    await settle();
    expect(world.pc().offerMadeBy).toBe("implicit");
    world.pc().completeGathering();
    await c.started;
    expect(c.offers[0]).toContain("v=0 offer");
  });

  it("where the browser refuses setLocalDescription() bare, makes the offer first", async () => {
    const create = world.deps.createPeerConnection;
    world.deps.createPeerConnection = (config) => {
      const pc = create(config);
      (pc as unknown as FakePC).refuseImplicitOffer = true;
      return pc;
    };
    const c = startCall(world);
    await settle();
    expect(world.pc().offerMadeBy).toBe("explicit");
    world.pc().completeGathering();
    await c.started;
    expect(c.offers).toHaveLength(1);
    expect(c.local("call.failed")).toEqual([]);
  });

  it("with only STUN, sends once candidates went quiet for the idle window", async () => {
    const c = startCall(world, { gatherTimeoutMs: 800, gatherIdleMs: 300 });
    await settle();
    const pc = world.pc();
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(200);
    pc.gatherCandidate(); // the window starts again from the latest candidate
    await vi.advanceTimersByTimeAsync(299);
    expect(c.offers).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    await c.started;
    expect(c.offers).toHaveLength(1);
    expect(c.offers[0]).toContain("typ host"); // what was gathered by then goes along
    expect(c.local("offer.sent")[0]).toEqual({
      type: "offer.sent",
      gather_ms: 500,
      candidates: 2,
      relay_candidates: 0,
      sent_by: "idle",
      gathering_complete: false,
    });
  });

  it("with TURN configured and no relay yet, waits for the deadline", async () => {
    const c = startCall(world, {
      iceServers: [{ urls: ["stun:s:3478", "turn:t:3478"] }],
      gatherTimeoutMs: 800,
      gatherIdleMs: 300,
    });
    await settle();
    world.pc().gatherCandidate();
    await vi.advanceTimersByTimeAsync(799);
    expect(c.offers).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    await c.started;
    expect(c.offers).toHaveLength(1);
    expect(c.local("offer.sent")[0]).toMatchObject({
      gather_ms: 800,
      candidates: 1,
      relay_candidates: 0,
      sent_by: "deadline",
      gathering_complete: false,
    });
  });

  it("with TURN configured, a relay candidate lets the idle window send it early", async () => {
    const c = startCall(world, {
      iceServers: [{ urls: "turns:t:443", username: "u", credential: "p" }],
      gatherIdleMs: 300,
    });
    await settle();
    const pc = world.pc();
    pc.gatherCandidate();
    await vi.advanceTimersByTimeAsync(100);
    pc.gatherRelay();
    await vi.advanceTimersByTimeAsync(300);
    await c.started;
    expect(c.offers[0]).toContain("typ relay");
    expect(c.local("offer.sent")[0]).toMatchObject({
      gather_ms: 400,
      candidates: 2,
      relay_candidates: 1,
      sent_by: "idle",
    });
  });

  it("logs call.start without TURN credentials", async () => {
    const c = startCall(world, {
      iceServers: [
        { urls: ["stun:a", "stun:b"] },
        { urls: "turn:t", username: "user-secret", credential: "cred-secret" },
      ],
    });
    await settle();
    const start = c.local("call.start")[0]!;
    expect(start.ice_urls).toEqual(["stun:a", "stun:b", "turn:t"]);
    expect(JSON.stringify(c.recs)).not.toContain("secret");
  });

  it("creates an ordered oai-events channel and sends the mic track", async () => {
    await connected(world);
    const pc = world.pc();
    expect(pc.channel.label).toBe(CHANNEL_LABEL);
    expect(pc.channel.init).toEqual({ ordered: true });
    expect(world.getUserMedia).toHaveBeenCalledWith(
      expect.objectContaining({
        audio: expect.objectContaining({ echoCancellation: true }),
      }),
    );
    expect(pc.tracks).toHaveLength(1);
    expect(pc.transceivers).toHaveLength(0);
    expect(pc.remoteDescription).toEqual({ type: "answer", sdp: "v=0 answer" });
  });

  it("with mic:false asks only to receive audio and never touches the mic", async () => {
    await connected(world, { mic: false });
    expect(world.getUserMedia).not.toHaveBeenCalled();
    expect(world.pc().transceivers).toEqual([
      { kind: "audio", init: { direction: "recvonly" } },
    ]);
  });
});

describe("queue until open", () => {
  it("sends session.update first, then queued, then later sends, in order", async () => {
    const c = startCall(world, {
      queued: [
        { type: "conversation.item.create", n: 1 },
        { type: "response.create", n: 2 },
      ],
    });
    c.call.send([{ type: "conversation.item.create", n: 3 }]);
    await settle();
    world.pc().completeGathering();
    await c.started;
    c.call.send([{ type: "response.create", n: 4 }]);
    await c.call.answer("v=0 answer");
    const ch = world.pc().channel;
    expect(ch.sent).toHaveLength(0); // nothing before open
    expect(c.recs.filter((r) => r.dir === "client")).toHaveLength(0);
    vi.setSystemTime(5000);
    ch.open();
    expect(ch.sentEvents().map((e) => `${e.type}${e.n ?? ""}`)).toEqual([
      "session.update",
      "conversation.item.create1",
      "response.create2",
      "conversation.item.create3",
      "response.create4",
    ]);
    // each one is recorded as a client record when it actually went out, in the same order
    const client = c.recs.filter((r) => r.dir === "client");
    expect(client.map((r) => r.event)).toEqual(ch.sentEvents());
    expect(client.every((r) => r.t === 5000)).toBe(true);
    expect(c.states.at(-1)).toEqual(["connected", ""]);
    expect(c.local("channel.open")).toHaveLength(1);
  });

  it("sends straight away once open, recording each at its send time", async () => {
    const c = await connected(world);
    vi.setSystemTime(9000);
    c.call.send([{ type: "response.create" }]);
    expect(world.pc().channel.sentEvents().at(-1)).toEqual({
      type: "response.create",
    });
    expect(c.recs.at(-1)).toEqual({
      dir: "client",
      event: { type: "response.create" },
      t: 9000,
    });
  });

  it("keeps events sent after the call closed in the log as send.unsent", async () => {
    const c = await connected(world);
    c.call.close();
    c.call.send([{ type: "response.create" }]);
    expect(c.local("send.unsent")[0]!.events).toEqual([
      { type: "response.create" },
    ]);
  });

  it("logs a send that the channel refuses instead of losing it", async () => {
    const c = await connected(world);
    world.pc().channel.readyState = "closing";
    c.call.send([{ type: "response.create" }]);
    const err = c.local("send.error")[0]!;
    expect(err.event).toEqual({ type: "response.create" });
    expect(err.name).toBe("InvalidStateError");
  });
});

describe("receiving", () => {
  it("records every server event, unknown types as they came", async () => {
    const c = await connected(world);
    const ch = world.pc().channel;
    ch.receive(JSON.stringify({ type: "session.created", session: {} }));
    ch.receive(
      JSON.stringify({ type: "response.backchannel.skipped", reason: "x" }),
    );
    ch.receive(JSON.stringify({ errorType: "SESSION_RESOURCES_EXHAUSTED" }));
    const server = c.recs.filter((r) => r.dir === "server").map((r) => r.event);
    expect(server).toEqual([
      { type: "session.created", session: {} },
      { type: "response.backchannel.skipped", reason: "x" },
      { errorType: "SESSION_RESOURCES_EXHAUSTED" },
    ]);
  });

  it("keeps malformed JSON as a local parse_error with the raw text", async () => {
    const c = await connected(world);
    const ch = world.pc().channel;
    ch.receive("{not json");
    ch.receive("[1,2]");
    ch.receive(JSON.stringify({ type: "after" }));
    const errs = c.local("parse_error");
    expect(errs.map((e) => e.raw)).toEqual(["{not json", "[1,2]"]);
    expect(typeof errs[0]!.error).toBe("string");
    expect(c.recs.at(-1)!.event).toEqual({ type: "after" }); // and life goes on
  });
});

describe("mic denied", () => {
  it("without Web Audio, continues receive-only, logs mic.error and tells the user", async () => {
    const err = new DOMException("Permission denied", "NotAllowedError");
    world = fakeWorld({ micError: err });
    const c = await connected(world);
    const pc = world.pc();
    expect(pc.tracks).toHaveLength(0);
    expect(pc.transceivers).toEqual([
      { kind: "audio", init: { direction: "recvonly" } },
    ]);
    expect(c.local("mic.error")).toEqual([
      {
        type: "mic.error",
        name: "NotAllowedError",
        message: "Permission denied",
      },
    ]);
    const words =
      "Microphone unavailable (NotAllowedError): access was denied by you, the browser or the host (VS Code's notebook view always denies it). The call goes on without it; text turns and say() still work.";
    expect(c.states).toContainEqual(["connecting", words]);
    // the notice stays on the connected state too, so a late view still shows it
    expect(c.states.at(-1)).toEqual(["connected", words]);
    expect(c.offers).toHaveLength(1);
  });
});

describe("failure and release", () => {
  it("signal_error -> failed with that message, pc closed, mic released", async () => {
    const c = startCall(world);
    await settle();
    world.pc().completeGathering();
    await c.started;
    c.call.signalError("HTTP 401 from /v1/realtime/calls: invalid key");
    const pc = world.pc();
    expect(c.states.at(-1)).toEqual([
      "failed",
      "HTTP 401 from /v1/realtime/calls: invalid key",
    ]);
    expect(pc.closed).toBe(true);
    expect(pc.channel.closeCalls).toBe(1);
    expect(world.mics[0]!.tracks.every((t) => t.readyState === "ended")).toBe(
      true,
    );
    expect(c.call.isLive).toBe(false);
    // what never went out is named in the log, not silently dropped
    expect(c.local("send.unsent")).toEqual([
      {
        type: "send.unsent",
        reason: "channel never opened",
        events: [{ type: "session.update", session: { instructions: "hi" } }],
      },
    ]);
    // the answer that might still arrive is ignored
    await c.call.answer("late");
    expect(pc.remoteDescription).toBeNull();
  });

  it("an unexpected channel close -> failed with words, everything released", async () => {
    const c = await connected(world);
    const pc = world.pc();
    pc.emitTrack();
    pc.channel.remoteClose();
    expect(c.states.at(-1)).toEqual([
      "failed",
      "The data channel closed unexpectedly",
    ]);
    expect(pc.closed).toBe(true);
    expect(world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(world.sinks[0]!.stopped).toBe(true);
    expect([...world.meters.values()].every((m) => m.closed)).toBe(true);
    expect(c.local("channel.close")).toEqual([
      { type: "channel.close", by: "remote" },
    ]);
    expect(vi.getTimerCount()).toBe(0); // stats interval and friends are gone
  });

  it("peer connection failed -> ICE connection failed", async () => {
    const c = await connected(world);
    world.pc().setConnectionState("failed");
    expect(c.local("peer.state").at(-1)).toMatchObject({ state: "failed" });
    expect(c.states.at(-1)).toEqual(["failed", "ICE connection failed"]);
    expect(world.pc().closed).toBe(true);
  });

  it("a disconnected peer gets a grace period, then fails", async () => {
    const c = await connected(world, { disconnectGraceMs: 5000 });
    const pc = world.pc();
    pc.setConnectionState("disconnected");
    await vi.advanceTimersByTimeAsync(3000);
    pc.setConnectionState("connected"); // recovered
    await vi.advanceTimersByTimeAsync(5000);
    expect(c.states.at(-1)![0]).toBe("connected");
    pc.setConnectionState("disconnected");
    await vi.advanceTimersByTimeAsync(5000);
    expect(c.states.at(-1)).toEqual(["failed", "The connection was lost"]);
  });

  it("fails with words when the channel never opens after the offer", async () => {
    const c = startCall(world, { openTimeoutMs: 20_000 });
    await settle();
    world.pc().completeGathering();
    await c.started;
    await c.call.answer("v=0 answer");
    await vi.advanceTimersByTimeAsync(19_999);
    expect(c.states.at(-1)![0]).toBe("connecting");
    await vi.advanceTimersByTimeAsync(1);
    expect(c.states.at(-1)).toEqual([
      "failed",
      "Timed out: no connection 20 s after the offer (no ICE candidates were gathered)",
    ]);
    expect(world.pc().closed).toBe(true);
  });

  it("the open deadline is cleared once connected", async () => {
    const c = await connected(world, { openTimeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(c.states.at(-1)![0]).toBe("connected");
  });

  it("a rejected answer fails the call", async () => {
    const c = startCall(world);
    await settle();
    world.pc().completeGathering();
    await c.started;
    world.pc().rejectAnswer = new Error("bad sdp");
    await c.call.answer("garbage");
    expect(c.states.at(-1)).toEqual([
      "failed",
      "The SDP answer was rejected: bad sdp",
    ]);
  });

  it("close() releases mic, remote audio, channel and pc; reports disconnected once", async () => {
    const c = await connected(world);
    const pc = world.pc();
    const remote = new FakeTrack();
    pc.emitTrack(remote);
    c.call.close();
    c.call.close();
    expect(c.states.filter(([s]) => s === "disconnected")).toHaveLength(1);
    expect(pc.closed).toBe(true);
    expect(pc.channel.readyState).toBe("closed");
    expect(world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(remote.readyState).toBe("ended");
    expect(world.sinks[0]!.stopped).toBe(true);
    expect(c.local("channel.close")).toEqual([
      { type: "channel.close", by: "local" },
    ]);
    // the channel's own close event, arriving later, is not mistaken for a failure
    pc.channel.dispatchEvent(new Event("close"));
    expect(c.states.at(-1)).toEqual(["disconnected", ""]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("closing while the mic prompt is open releases the mic it later gets", async () => {
    let grant: (s: FakeStream) => void = () => undefined;
    world.getUserMedia.mockImplementation(
      () => new Promise((r) => (grant = r)),
    );
    const c = startCall(world);
    await settle();
    c.call.close();
    const late = new FakeStream();
    grant(late);
    await c.started;
    expect(late.tracks[0]!.readyState).toBe("ended");
    expect(c.offers).toHaveLength(0);
    expect(world.pc().closed).toBe(true);
  });

  it("every listener and timer dies with the call: later peer events record nothing", async () => {
    const c = await connected(world);
    const pc = world.pc();
    pc.emitTrack();
    pc.channel.receive(
      JSON.stringify({ type: "response.created", response: { id: "r1" } }),
    );
    c.call.close();
    const before = c.recs.length;
    pc.setConnectionState("failed");
    pc.gatherCandidate();
    pc.emitTrack();
    pc.channel.receive(JSON.stringify({ type: "late" }));
    pc.channel.dispatchEvent(new Event("error"));
    await vi.advanceTimersByTimeAsync(30_000);
    expect(c.recs.length).toBe(before);
    expect(c.states.at(-1)).toEqual(["disconnected", ""]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("closing during ICE gathering sends no offer and leaves no timer", async () => {
    const c = startCall(world);
    await settle();
    c.call.close();
    await c.started;
    expect(c.offers).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("mute", () => {
  it("starts muted when asked and toggles the mic track", async () => {
    const c = await connected(world, { muted: true });
    const track = world.mics[0]!.tracks[0]!;
    expect(track.enabled).toBe(false);
    c.call.setMuted(false);
    expect(track.enabled).toBe(true);
    c.call.setMuted(true);
    expect(track.enabled).toBe(false);
  });
});

describe("remote audio and audio.audible", () => {
  it("plays the remote track and logs audible once per response, from the level", async () => {
    const c = await connected(world, { audiblePollMs: 10, audibleRms: 0.01 });
    const pc = world.pc();
    const stream = new FakeStream();
    pc.emitTrack(stream.tracks[0], [stream]);
    expect(world.sinks[0]!.stream).toBe(stream);
    const meter = world.meters.get(stream)!;
    const ch = pc.channel;

    ch.receive(
      JSON.stringify({ type: "response.created", response: { id: "resp_1" } }),
    );
    await vi.advanceTimersByTimeAsync(50); // silence: nothing yet
    expect(c.local("audio.audible")).toHaveLength(0);
    vi.setSystemTime(20_000);
    meter.value = 0.2;
    await vi.advanceTimersByTimeAsync(10);
    const audible = c.local("audio.audible");
    expect(audible).toHaveLength(1);
    expect(audible[0]).toMatchObject({
      type: "audio.audible",
      response_id: "resp_1",
    });
    const at = c.recs.find((r) => r.event.type === "audio.audible");
    expect(at).toBeDefined();
    await vi.advanceTimersByTimeAsync(100);
    expect(c.local("audio.audible")).toHaveLength(1); // once per response

    // The next reply arrives while the first is still audible: wait for a gap.
    ch.receive(
      JSON.stringify({ type: "response.created", response: { id: "resp_2" } }),
    );
    await vi.advanceTimersByTimeAsync(50);
    expect(c.local("audio.audible")).toHaveLength(1);
    meter.value = 0;
    await vi.advanceTimersByTimeAsync(10);
    meter.value = 0.3;
    await vi.advanceTimersByTimeAsync(10);
    expect(c.local("audio.audible").map((e) => e.response_id)).toEqual([
      "resp_1",
      "resp_2",
    ]);
    // and polling stopped: only the 1 s stats interval remains
    expect(vi.getTimerCount()).toBe(1);
  });

  it("wraps a track without a stream and reports a refused play()", async () => {
    const c = await connected(world);
    const pc = world.pc();
    const track = new FakeTrack();
    pc.emitTrack(track, []);
    expect((world.sinks[0]!.stream as FakeStream).tracks).toEqual([track]);
    world.sinks[0]!.fail(new DOMException("autoplay", "NotAllowedError"));
    expect(c.local("audio.play_error")[0]).toMatchObject({
      name: "NotAllowedError",
    });
  });

  it("reports levels for the meters (mic reads 0 while muted)", async () => {
    const c = await connected(world);
    const pc = world.pc();
    const stream = new FakeStream();
    pc.emitTrack(stream.tracks[0], [stream]);
    world.meters.get(world.mics[0])!.value = 0.1;
    world.meters.get(stream)!.value = 0.2;
    expect(c.call.levels()).toEqual({ mic: 0.1, assistant: 0.2 });
    c.call.setMuted(true);
    expect(c.call.levels()).toEqual({ mic: 0, assistant: 0.2 });
  });
});

describe("stats", () => {
  it("samples getStats every second while connected", async () => {
    const c = await connected(world, { statsIntervalMs: 1000 });
    const pc = world.pc();
    pc.stats = new Map<string, Record<string, unknown>>([
      ["T1", { id: "T1", type: "transport", selectedCandidatePairId: "CP2" }],
      [
        "CP1",
        {
          id: "CP1",
          type: "candidate-pair",
          nominated: true,
          state: "succeeded",
          currentRoundTripTime: 0.5,
        },
      ],
      [
        "CP2",
        { id: "CP2", type: "candidate-pair", currentRoundTripTime: 0.0123 },
      ],
      ["IV", { id: "IV", type: "inbound-rtp", kind: "video", jitter: 9 }],
      [
        "IA",
        {
          id: "IA",
          type: "inbound-rtp",
          kind: "audio",
          jitter: 0.0021,
          packetsLost: 3,
          packetsReceived: 250,
          audioLevel: 0.25,
          totalAudioEnergy: 1.5,
        },
      ],
    ]);
    world.meters.get(world.mics[0])!.value = 0.05;
    await vi.advanceTimersByTimeAsync(999);
    expect(c.local("stats")).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(c.local("stats")).toEqual([
      {
        type: "stats",
        rtt_ms: 12.3,
        jitter_ms: 2.1,
        packets_lost: 3,
        packets_received: 250,
        audio_level: 0.25,
        total_audio_energy: 1.5,
        mic_level: 0.05,
      },
    ]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(c.local("stats")).toHaveLength(3);
    c.call.close();
    await vi.advanceTimersByTimeAsync(3000);
    expect(c.local("stats")).toHaveLength(3);
  });

  it("falls back to the nominated pair and nulls for what is missing", () => {
    const s = summarizeStats(
      new Map([
        [
          "CP",
          {
            id: "CP",
            type: "candidate-pair",
            nominated: true,
            state: "succeeded",
            currentRoundTripTime: 0.002,
          },
        ],
      ]) as unknown as RTCStatsReport,
    );
    expect(s).toEqual({
      rtt_ms: 2,
      jitter_ms: null,
      packets_lost: null,
      packets_received: null,
      audio_level: null,
      total_audio_energy: null,
    });
  });
});
