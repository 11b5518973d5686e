import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { StatsSampler, type StatsSample } from "../../js/sampler";
import { Timers } from "../../js/timers";
import { fakeWorld } from "./fakes";

const REPORT = new Map([
  [
    "IA",
    {
      id: "IA",
      type: "inbound-rtp",
      kind: "audio",
      jitter: 0.004,
      packetsLost: 1,
      packetsReceived: 50,
      audioLevel: 0.5,
      totalAudioEnergy: 2,
    },
  ],
]) as unknown as RTCStatsReport;

let owner: AbortController;
let timers: Timers;
let samples: StatsSample[];
let active: boolean;
let getStats: ReturnType<typeof vi.fn<() => Promise<RTCStatsReport>>>;
let sampler: StatsSampler;

beforeEach(() => {
  vi.useFakeTimers();
  owner = new AbortController();
  timers = new Timers(fakeWorld().deps, owner.signal);
  samples = [];
  active = true;
  getStats = vi.fn(async () => REPORT);
  sampler = new StatsSampler(
    {
      getStats: () => getStats(),
      active: () => active,
      micLevel: () => 0.25,
    },
    timers,
    1000,
    (s) => samples.push(s),
  );
});
afterEach(() => vi.useRealTimers());

describe("StatsSampler", () => {
  it("emits one stats event per interval once started, with the mic level", async () => {
    sampler.start();
    sampler.start(); // idempotent: still one interval
    await vi.advanceTimersByTimeAsync(999);
    expect(samples).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(samples).toEqual([
      {
        type: "stats",
        rtt_ms: null,
        jitter_ms: 4,
        packets_lost: 1,
        packets_received: 50,
        audio_level: 0.5,
        total_audio_energy: 2,
        mic_level: 0.25,
      },
    ]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(samples).toHaveLength(3);
  });

  it("skips a tick while the previous getStats is still pending", async () => {
    let release: (r: RTCStatsReport) => void = () => undefined;
    getStats.mockImplementationOnce(() => new Promise((r) => (release = r)));
    sampler.start();
    await vi.advanceTimersByTimeAsync(3000);
    expect(getStats).toHaveBeenCalledTimes(1);
    release(REPORT);
    await vi.advanceTimersByTimeAsync(1000);
    expect(getStats).toHaveBeenCalledTimes(2);
    expect(samples).toHaveLength(2);
  });

  it("drops a sample whose call stopped being connected while it was awaited", async () => {
    let release: (r: RTCStatsReport) => void = () => undefined;
    getStats.mockImplementationOnce(() => new Promise((r) => (release = r)));
    const pending = sampler.sample();
    active = false;
    release(REPORT);
    await pending;
    expect(samples).toEqual([]);
  });

  it("a failed getStats is skipped quietly and the next tick still samples", async () => {
    getStats.mockImplementationOnce(async () => {
      throw new Error("closed");
    });
    sampler.start();
    await vi.advanceTimersByTimeAsync(2000);
    expect(samples).toHaveLength(1);
  });

  it("stops with its call", async () => {
    sampler.start();
    owner.abort();
    await vi.advanceTimersByTimeAsync(5000);
    expect(getStats).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
