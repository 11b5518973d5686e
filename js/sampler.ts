/**
 * The call's `stats` sampler: one getStats() each interval while connected, summarized into
 * a local `stats` event. A tick is skipped while the previous sample is still pending, so a
 * slow machine never piles up getStats calls.
 */

import { summarizeStats, type StatsSummary } from "./stats";
import type { Cancel, Timers } from "./timers";

export type StatsSample = StatsSummary & { type: "stats"; mic_level: number };

export interface SamplerSource {
  /** The peer connection's report, or null when there is nothing to sample. */
  getStats(): Promise<RTCStatsReport> | null;
  /** Sample only while this holds (checked before and after the await). */
  active(): boolean;
  micLevel(): number;
}

export class StatsSampler {
  private stopTimer: Cancel | null = null;
  private inFlight = false;

  constructor(
    private readonly source: SamplerSource,
    private readonly timers: Timers,
    private readonly intervalMs: number,
    private readonly emit: (sample: StatsSample) => void,
  ) {}

  /** Start sampling (once; later calls do nothing). */
  start(): void {
    this.stopTimer ??= this.timers.interval(
      () => void this.sample(),
      this.intervalMs,
    );
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  /** One sample now; resolves when it was emitted or skipped. */
  async sample(): Promise<void> {
    if (this.inFlight || !this.source.active()) return;
    const pending = this.source.getStats();
    if (!pending) return;
    this.inFlight = true;
    try {
      const report = await pending;
      if (!this.source.active()) return;
      this.emit({
        type: "stats",
        ...summarizeStats(report),
        mic_level: this.source.micLevel(),
      });
    } catch {
      // Stats are best-effort; a failed sample is not worth an event.
    } finally {
      this.inFlight = false;
    }
  }
}
