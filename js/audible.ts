/**
 * When a reply is first heard in this browser: after a `response.created`, the remote
 * track's level is polled until it rises over a threshold, and that moment is reported once
 * per response (the local `audio.audible` event). One detector per call, so nothing of an
 * older call's replies carries into the next.
 */

import type { Timers, Cancel } from "./timers";

/** RMS level of a stream (0..1), read on demand so nothing runs when nobody asks. */
export interface LevelMeter {
  rms(): number;
  close(): void;
}

export interface AudibleOptions {
  /** How often the remote level is sampled while a response waits to become audible. */
  pollMs: number;
  /** RMS above which the assistant counts as audible (0.01 is about -40 dBFS). */
  threshold: number;
}

/** Responses remembered as already heard; a long call must not grow this forever. */
const HEARD_LIMIT = 64;

interface Pending {
  responseId: string;
  /** The remote was silent at some point since response.created, so what we hear next is new. */
  sawSilence: boolean;
}

export class AudibleDetector {
  private pending: Pending | null = null;
  private stopPoll: Cancel | null = null;
  private readonly heard = new Set<string>();

  constructor(
    /** The remote track's meter, once there is one. */
    private readonly meter: () => LevelMeter | null,
    private readonly timers: Timers,
    private readonly opts: AudibleOptions,
    private readonly onAudible: (responseId: string, rms: number) => void,
  ) {}

  /** Watch for this response's first audible sample (a newer response replaces the wait). */
  responseCreated(responseId: string): void {
    if (this.heard.has(responseId)) return;
    // If the previous reply is still playing, wait for a gap so its tail is not credited here.
    const level = this.meter()?.rms() ?? 0;
    this.pending = { responseId, sawSilence: level < this.opts.threshold };
    this.stopPoll ??= this.timers.interval(() => this.poll(), this.opts.pollMs);
  }

  private poll(): void {
    const pending = this.pending;
    if (!pending) return this.stop();
    const meter = this.meter();
    if (!meter) return; // no remote track yet
    const rms = meter.rms();
    if (rms < this.opts.threshold) {
      pending.sawSilence = true;
    } else if (pending.sawSilence) {
      this.pending = null;
      this.stop();
      this.remember(pending.responseId);
      this.onAudible(pending.responseId, Math.round(rms * 1e5) / 1e5);
    }
  }

  private remember(id: string): void {
    this.heard.add(id);
    if (this.heard.size > HEARD_LIMIT)
      this.heard.delete(this.heard.values().next().value!);
  }

  private stop(): void {
    this.stopPoll?.();
    this.stopPoll = null;
  }
}
