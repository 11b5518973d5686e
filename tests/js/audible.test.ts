import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { AudibleDetector } from "../../js/audible";
import { Timers } from "../../js/timers";
import { FakeMeter, fakeWorld } from "./fakes";

let owner: AbortController;
let timers: Timers;
let meter: FakeMeter | null;
let heard: [string, number][];
let detector: AudibleDetector;

beforeEach(() => {
  vi.useFakeTimers();
  owner = new AbortController();
  timers = new Timers(fakeWorld().deps, owner.signal);
  meter = new FakeMeter();
  heard = [];
  detector = new AudibleDetector(
    () => meter,
    timers,
    { pollMs: 10, threshold: 0.01 },
    (id, rms) => heard.push([id, rms]),
  );
});
afterEach(() => vi.useRealTimers());

describe("AudibleDetector", () => {
  it("reports the first audible sample of a response once, then stops polling", () => {
    detector.responseCreated("r1");
    vi.advanceTimersByTime(50);
    expect(heard).toEqual([]);
    meter!.value = 0.123456;
    vi.advanceTimersByTime(10);
    expect(heard).toEqual([["r1", 0.12346]]);
    expect(timers.size).toBe(0);
    detector.responseCreated("r1"); // a repeated id was already heard
    vi.advanceTimersByTime(50);
    expect(heard).toHaveLength(1);
    expect(timers.size).toBe(0);
  });

  it("does not credit the tail of the previous reply: waits for a gap first", () => {
    meter!.value = 0.3; // still playing the last reply
    detector.responseCreated("r2");
    vi.advanceTimersByTime(100);
    expect(heard).toEqual([]);
    meter!.value = 0;
    vi.advanceTimersByTime(10);
    meter!.value = 0.2;
    vi.advanceTimersByTime(10);
    expect(heard.map(([id]) => id)).toEqual(["r2"]);
  });

  it("waits for the remote track's meter before it can hear anything", () => {
    meter = null;
    detector.responseCreated("r1");
    vi.advanceTimersByTime(100);
    meter = new FakeMeter();
    meter.value = 0.5;
    vi.advanceTimersByTime(10);
    expect(heard.map(([id]) => id)).toEqual(["r1"]);
  });

  it("a newer response replaces the one still waiting", () => {
    detector.responseCreated("r1");
    detector.responseCreated("r2");
    meter!.value = 0.5;
    vi.advanceTimersByTime(10);
    expect(heard.map(([id]) => id)).toEqual(["r2"]);
  });

  it("dies with its call: no poll and no report after the owner aborts", () => {
    detector.responseCreated("r1");
    owner.abort();
    meter!.value = 0.5;
    vi.advanceTimersByTime(100);
    expect(heard).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
