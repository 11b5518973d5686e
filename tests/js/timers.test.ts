import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Timers, type TimerDeps } from "../../js/timers";

const deps: TimerDeps = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as number),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as number),
};

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("Timers", () => {
  it("runs a timeout once and forgets it", () => {
    const timers = new Timers(deps, new AbortController().signal);
    const fn = vi.fn();
    timers.timeout(fn, 100);
    expect(timers.size).toBe(1);
    vi.advanceTimersByTime(100);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(timers.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("cancel stops a timeout or an interval, and a second cancel is harmless", () => {
    const timers = new Timers(deps, new AbortController().signal);
    const once = vi.fn();
    const every = vi.fn();
    const cancelOnce = timers.timeout(once, 100);
    const cancelEvery = timers.interval(every, 10);
    vi.advanceTimersByTime(30);
    expect(every).toHaveBeenCalledTimes(3);
    cancelOnce();
    cancelEvery();
    cancelEvery();
    vi.advanceTimersByTime(200);
    expect(once).not.toHaveBeenCalled();
    expect(every).toHaveBeenCalledTimes(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("the owner's abort clears every pending timer, and later ones never start", () => {
    const owner = new AbortController();
    const timers = new Timers(deps, owner.signal);
    const fn = vi.fn();
    timers.timeout(fn, 100);
    timers.interval(fn, 10);
    owner.abort();
    expect(timers.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    timers.timeout(fn, 1);
    timers.interval(fn, 1);
    vi.advanceTimersByTime(500);
    expect(fn).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
