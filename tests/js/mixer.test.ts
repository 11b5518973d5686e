/**
 * The call's outgoing mix (mic + clips), ducking, clip queueing, back-channel audio and a
 * suspended context, through PeerCall with the fake Web Audio graph of audiofakes.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { Direction, RealtimeEvent, Status } from "../../js/bridge";
import { toBase64 } from "../../js/bytes";
import type { ClipChunk } from "../../js/clips";
import { PeerCall, type CallOptions } from "../../js/connection";
import { SUSPENDED_WORDS } from "../../js/mixer";
import {
  FakeAudioContext,
  FakeBufferSource,
  fakeAudio,
  fakeClip,
  type FakeAudio,
} from "./audiofakes";
import { FakeStream, fakeWorld, settle, type FakeWorld } from "./fakes";

interface Rec {
  dir: Direction;
  event: RealtimeEvent;
  t?: number;
}

let world: FakeWorld;
let audio: FakeAudio;
let ctx: FakeAudioContext;

beforeEach(() => {
  vi.useFakeTimers();
  audio = fakeAudio();
  ctx = audio.ctx;
  world = fakeWorld({ audio: audio.deps });
});
afterEach(() => {
  vi.useRealTimers();
});

function startCall(over: Partial<CallOptions> = {}) {
  const recs: Rec[] = [];
  const states: [Status, string][] = [];
  const notices: string[] = [];
  const call = new PeerCall(
    {
      call: 1,
      iceServers: [],
      sessionUpdate: { type: "session.update", session: {} },
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
      offer: () => undefined,
      audioNotice: (text) => notices.push(text),
    },
  );
  const started = call.start();
  const local = (type: string) =>
    recs.filter((r) => r.dir === "local" && r.event.type === type);
  return { call, recs, states, notices, started, local };
}

async function connected(over: Partial<CallOptions> = {}) {
  const c = startCall(over);
  await settle();
  world.pc().completeGathering();
  await c.started;
  await c.call.answer("v=0 answer");
  world.pc().channel.open();
  return c;
}

/** A whole clip in one chunk. */
function clip(
  id: string,
  bytes: Uint8Array,
  over: Partial<ClipChunk> = {},
): ClipChunk {
  return {
    clipId: id,
    index: 0,
    last: true,
    mime: "audio/wav",
    duck: 1,
    source: "bytes",
    bytes,
    ...over,
  };
}

/** Wall and audio time pass together, in 10 ms steps, the audio clock a step behind (as the
 * main thread sees it). */
async function play(seconds: number) {
  for (let i = 0; i < Math.round(seconds * 100); i++) {
    await vi.advanceTimersByTimeAsync(10);
    ctx.advance(0.01);
  }
}

const micLevel = () => ctx.levels.set(world.mics[0], 0.2);
const sentAt = (t: number) => ctx.sent.sample(t);

describe("the outgoing track is the mix", () => {
  it("goes out before the mic answers; the mic joins it later without renegotiation", async () => {
    let grant: (s: FakeStream) => void = () => undefined;
    world.getUserMedia.mockImplementation(
      () => new Promise<FakeStream>((r) => (grant = r)),
    );
    const c = await connected();
    const pc = world.pc();
    // connected while the permission prompt is still open
    expect(c.states.at(-1)).toEqual(["connected", ""]);
    expect(pc.tracks).toEqual([ctx.sent.track]);
    expect(pc.transceivers).toEqual([]);
    expect(sentAt(1)).toBe(0);
    const mic = new FakeStream();
    ctx.levels.set(mic, 0.3);
    grant(mic);
    await settle();
    expect(sentAt(1)).toBeCloseTo(0.3);
    expect(pc.senders[0]!.track).toBe(ctx.sent.track); // still the mix: no new track, no offer
  });

  it("mic denied: the call still starts and sends the mix, says why in words, waits on nothing", async () => {
    world = fakeWorld({
      audio: audio.deps,
      micError: new DOMException("Permission denied", "NotAllowedError"),
    });
    const c = await connected();
    expect(world.pc().tracks).toEqual([ctx.sent.track]);
    expect(c.local("mic.error")).toHaveLength(1);
    const [status, words] = c.states.at(-1)!;
    expect(status).toBe("connected");
    expect(words).toMatch(
      /Microphone unavailable \(NotAllowedError\): access was denied/,
    );
    expect(words).toMatch(/say\(\) still work/);
    // and a clip still reaches the service
    c.call.playClip(clip("a", fakeClip(1, 0.5)));
    await settle();
    await play(0.5);
    expect(sentAt(0.5)).toBeCloseTo(0.5);
  });

  it("mic=False sends the mix track and never asks for the mic", async () => {
    await connected({ mic: false });
    expect(world.getUserMedia).not.toHaveBeenCalled();
    expect(world.pc().tracks).toEqual([ctx.sent.track]);
    expect(world.pc().transceivers).toEqual([]);
  });

  it("mixes the mic and a clip, ducks the mic while the clip plays, and mutes with a gain", async () => {
    const c = await connected();
    micLevel();
    c.call.playClip(clip("a", fakeClip(1, 0.5), { duck: 0.25 }));
    await settle();
    const src = ctx.sources[0]!;
    const start = src.startAt!;
    expect(start).toBeCloseTo(0.02); // the scheduling lead
    expect(sentAt(start - 0.01)).toBeCloseTo(0.2); // mic alone
    expect(sentAt(start + 0.5)).toBeCloseTo(0.2 * 0.25 + 0.5); // ducked mic + clip
    expect(sentAt(start + 1.01)).toBeCloseTo(0.2); // clip over, mic back
    c.call.setMuted(true);
    expect(sentAt(start + 2)).toBe(0);
    expect(world.mics[0]!.tracks[0]!.enabled).toBe(false);
    c.call.setMuted(false);
    expect(sentAt(start + 2)).toBeCloseTo(0.2);
  });

  it("clips wait until the call is connected, then play from the start", async () => {
    const c = startCall();
    await settle();
    c.call.playClip(clip("early", fakeClip(1, 0.5)));
    await settle();
    expect(ctx.sources).toHaveLength(0); // decoded, waiting
    world.pc().completeGathering();
    await c.started;
    await c.call.answer("v=0");
    ctx.currentTime = 3;
    world.pc().channel.open();
    expect(ctx.sources[0]!.startAt).toBeCloseTo(3.02);
  });
});

describe("clips", () => {
  it("play one after another, gaplessly, with say.started / say.ended on the log clock", async () => {
    const c = await connected();
    const t0 = Date.now(); // the clock's offset: context time 0 is this epoch ms
    c.call.playClip(clip("a", fakeClip(1, 0.5), { source: "path" }));
    c.call.playClip(clip("b", fakeClip(0.5, 0.4), { source: "text" }));
    await settle();
    const [a, b] = ctx.sources as [FakeBufferSource, FakeBufferSource];
    expect(b.startAt).toBeCloseTo(a.startAt! + 1);
    expect(sentAt(a.startAt! + 1.2)).toBeCloseTo(0.4);
    await play(2);
    const events = c.recs
      .filter((r) => String(r.event.type).startsWith("say."))
      .map((r) => ({ ...r.event, t: r.t! - t0 }));
    expect(events).toEqual([
      {
        type: "say.started",
        clip_id: "a",
        duration_ms: 1000,
        source: "path",
        t: 20,
      },
      {
        type: "say.ended",
        clip_id: "a",
        duration_ms: 1000,
        stopped: false,
        t: 1020,
      },
      {
        type: "say.started",
        clip_id: "b",
        duration_ms: 500,
        source: "text",
        t: 1020,
      },
      {
        type: "say.ended",
        clip_id: "b",
        duration_ms: 500,
        stopped: false,
        t: 1520,
      },
    ]);
    expect(ctx.sources.every((s) => s.disconnected)).toBe(true);
  });

  it("stop_clip cuts the clip playing and the next one moves up to now", async () => {
    const c = await connected();
    micLevel();
    c.call.playClip(clip("a", fakeClip(2, 0.5), { duck: 0 }));
    c.call.playClip(clip("b", fakeClip(1, 0.4), { duck: 0.5 }));
    await settle();
    await play(0.52); // half a second into "a"
    c.call.stopClip("a");
    const ended = c.local("say.ended").map((r) => r.event);
    expect(ended).toEqual([
      { type: "say.ended", clip_id: "a", duration_ms: 500, stopped: true },
    ]);
    const b = ctx.sources.at(-1)!;
    expect(b.startAt).toBeCloseTo(0.54); // rescheduled from now, not after a's old end
    expect(ctx.sources[0]!.stopAt).toBeCloseTo(0.52);
    expect(sentAt(0.6)).toBeCloseTo(0.4 + 0.2 * 0.5); // b plays, the mic ducked by b's duck
    expect(sentAt(1.6)).toBeCloseTo(0.2);
  });

  it("joins chunks in any order and refuses what it cannot decode", async () => {
    const c = await connected();
    const bytes = fakeClip(1, 0.5);
    c.call.playClip(clip("a", bytes.slice(6), { index: 1, last: true }));
    await settle();
    expect(ctx.sources).toHaveLength(0); // chunk 0 is missing
    c.call.playClip(clip("a", bytes.slice(0, 6), { index: 0, last: false }));
    c.call.playClip(clip("a", bytes.slice(0, 6), { index: 0, last: false })); // a repeat
    await settle();
    expect(ctx.sources).toHaveLength(1); // the joined bytes decoded: the fake file was whole
    expect(sentAt(0.5)).toBeCloseTo(0.5);
    c.call.playClip(clip("bad", new TextEncoder().encode("RIFF????"), {}));
    await settle();
    expect(c.local("say.error").map((r) => r.event)).toEqual([
      {
        type: "say.error",
        clip_id: "bad",
        message: expect.stringMatching(
          /Could not decode the clip \(audio\/wav, 8 bytes\): EncodingError/,
        ),
      },
    ]);
  });

  it("a clip split in three chunks plays once all have arrived", async () => {
    const c = await connected();
    const bytes = fakeClip(1, 0.5);
    c.call.playClip(clip("a", bytes.slice(8), { index: 2, last: true }));
    c.call.playClip(clip("a", bytes.slice(0, 4), { index: 0, last: false }));
    await settle();
    expect(ctx.sources).toHaveLength(0); // chunk 1 is missing
    c.call.playClip(clip("a", bytes.slice(4, 8), { index: 1, last: false }));
    await settle();
    expect(ctx.sources).toHaveLength(1);
    expect(sentAt(0.5)).toBeCloseTo(0.5);
  });

  it("a hang-up ends every clip as stopped and releases the graph", async () => {
    const c = await connected();
    c.call.playClip(clip("a", fakeClip(2, 0.5)));
    c.call.playClip(clip("b", fakeClip(2, 0.5)));
    await settle();
    await play(1.02);
    c.call.close();
    expect(c.local("say.ended").map((r) => r.event)).toEqual([
      { type: "say.ended", clip_id: "a", duration_ms: 1000, stopped: true },
      { type: "say.ended", clip_id: "b", duration_ms: 0, stopped: true },
    ]);
    expect(ctx.sent.track.readyState).toBe("ended");
    expect(ctx.gains.every((g) => g.disconnected)).toBe(true);
    expect(ctx.listenerCount).toBe(0);
  });
});

describe("a suspended audio context", () => {
  it("is said in words, clips wait, the mic goes out itself, and all resumes on a gesture", async () => {
    ctx.state = "suspended";
    ctx.resumable = false; // no user gesture yet
    const c = await connected();
    micLevel();
    expect(ctx.resumeCalls).toBe(1); // tried at once: a page with a past gesture may start
    c.call.playClip(clip("a", fakeClip(1, 0.5)));
    await vi.advanceTimersByTimeAsync(300);
    expect(c.local("audio.suspended").map((r) => r.event)).toEqual([
      { type: "audio.suspended", message: SUSPENDED_WORDS },
    ]);
    expect(c.notices).toEqual([SUSPENDED_WORDS]);
    expect(ctx.sources).toHaveLength(0); // nothing plays into a silent graph
    const sender = world.pc().senders[0]!;
    expect(sender.track).toBe(world.mics[0]!.tracks[0]); // the raw mic, not a silent mix
    ctx.currentTime = 0; // a suspended clock stood still
    ctx.setState("running"); // the user clicked
    expect(c.notices.at(-1)).toBe("");
    expect(sender.track).toBe(ctx.sent.track);
    expect(ctx.sources).toHaveLength(1);
    expect(c.local("audio.suspended")).toHaveLength(1);
  });
});

describe("back-channel audio", () => {
  function pcm16(samples: number[]): string {
    const b = new Uint8Array(samples.length * 2);
    const v = new DataView(b.buffer);
    samples.forEach((s, i) => v.setInt16(i * 2, s, true));
    return toBase64(b);
  }

  it("plays base64 PCM16 deltas back to back, to the speakers and the recorded user side", async () => {
    await connected();
    const ch = world.pc().channel;
    const delta = (samples: number[]) =>
      ch.receive(
        JSON.stringify({
          type: "response.backchannel.audio.delta",
          delta: pcm16(samples),
        }),
      );
    delta([16384, -16384, 0, 32767]);
    delta([8192, 8192]);
    const [a, b] = ctx.sources as [FakeBufferSource, FakeBufferSource];
    expect(a.buffer!.sampleRate).toBe(24000);
    expect([...a.buffer!.getChannelData(0)]).toEqual([
      0.5,
      -0.5,
      0,
      32767 / 32768,
    ]);
    expect(a.startAt).toBeCloseTo(0.03);
    expect(b.startAt).toBeCloseTo(a.startAt! + 4 / 24000);
    // heard by the user (speakers) and on the recording's channel 1, never sent
    expect(ctx.destination.fedBy(a)).toBe(true);
    const merger = ctx.mergers[0]!;
    expect(merger.inputs.find((x) => x.input === 1)!.node.fedBy(a)).toBe(true);
    expect(merger.inputs.find((x) => x.input === 0)!.node.fedBy(a)).toBe(false);
    expect(ctx.sent.fedBy(a)).toBe(false);
  });

  it("the remote track feeds the recorded user side too", async () => {
    await connected();
    const remote = new FakeStream();
    world.pc().emitTrack(remote.tracks[0], [remote]);
    const src = ctx.streamSources.find((s) => s.stream === (remote as never))!;
    const merger = ctx.mergers[0]!;
    expect(merger.inputs.find((x) => x.input === 1)!.node.fedBy(src)).toBe(
      true,
    );
    expect(ctx.sent.fedBy(src)).toBe(false);
  });
});
