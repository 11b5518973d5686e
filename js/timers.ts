/**
 * Timers that belong to one owner (a call): every timeout and interval made here is cleared
 * when the owner's AbortSignal fires, so nothing a call started can run after it ended.
 */

export type TimerHandle = unknown;

/** The clock functions a call is given (the browser's, or fakes in tests). */
export interface TimerDeps {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

/** A cancel function: clears its timer; calling it again (or after it fired) is harmless. */
export type Cancel = () => void;

export class Timers {
  private readonly live = new Set<Cancel>();

  constructor(
    private readonly deps: TimerDeps,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener("abort", () => this.clearAll(), { once: true });
  }

  /** How many timers are pending (tests and leak checks). */
  get size(): number {
    return this.live.size;
  }

  /** Run `fn` once after `ms`, unless cancelled or the owner ended first. */
  timeout(fn: () => void, ms: number): Cancel {
    if (this.signal.aborted) return () => undefined;
    const cancel: Cancel = () => {
      if (this.live.delete(cancel)) this.deps.clearTimeout(h);
    };
    const h = this.deps.setTimeout(() => {
      if (!this.live.delete(cancel)) return; // cleared in the meantime
      fn();
    }, ms);
    this.live.add(cancel);
    return cancel;
  }

  /** Run `fn` every `ms` until cancelled or the owner ends. */
  interval(fn: () => void, ms: number): Cancel {
    if (this.signal.aborted) return () => undefined;
    const cancel: Cancel = () => {
      if (this.live.delete(cancel)) this.deps.clearInterval(h);
    };
    const h = this.deps.setInterval(() => {
      if (this.live.has(cancel)) fn();
    }, ms);
    this.live.add(cancel);
    return cancel;
  }

  private clearAll(): void {
    for (const cancel of [...this.live]) cancel();
  }
}
