/**
 * When to send the offer while ICE gathers. Waiting for "complete" can take many seconds
 * when a STUN/TURN server never answers, and a fixed deadline wastes most of itself once the
 * candidates a server will ever give have arrived. So the offer goes:
 *
 *   - "complete": when gathering completes (or the null end-of-candidates event comes);
 *   - "idle":     once candidates are in hand and none has come for `idleMs` — unless a TURN
 *                 server is configured and no relay candidate has come yet (a relay is the
 *                 one candidate that works behind a strict NAT, and it is usually the last);
 *   - "deadline": at `deadlineMs` after the wait began, with whatever was gathered.
 */

import type { Timers } from "./timers";

export type SentBy = "complete" | "idle" | "deadline";

export interface GatherResult {
  sentBy: SentBy;
  candidates: number;
  relayCandidates: number;
}

export interface GatherOptions {
  /** Send by then whatever happens. */
  deadlineMs: number;
  /** Quiet time after the last candidate that counts as "no more are coming". */
  idleMs: number;
  /** A turn:/turns: URL is configured: wait for a relay candidate before going idle. */
  expectRelay: boolean;
}

/** Default idle window (Inworld's mobile examples use 500 ms; host candidates come in ms). */
export const DEFAULT_GATHER_IDLE_MS = 300;

/** True when the ICE servers name a TURN server (so a relay candidate is worth waiting for). */
export function hasTurnServer(servers: RTCIceServer[]): boolean {
  return servers.some((s) =>
    (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) =>
      /^turns?:/i.test(String(u)),
    ),
  );
}

/** A relay candidate, from the parsed `type` where the browser gives it, else the SDP line. */
export function isRelayCandidate(c: {
  type?: string | null;
  candidate?: string;
}): boolean {
  if (c.type) return c.type === "relay";
  return / typ relay(\s|$)/.test(c.candidate ?? "");
}

/**
 * Watches one peer connection's gathering from construction (candidates can come before the
 * wait starts); `wait()` resolves with the reason to send, or null if the call ended first.
 */
export class IceGatherer {
  private candidates = 0;
  private relay = 0;
  private lastAt: number | null = null;
  private complete = false;
  private settle: ((sentBy: SentBy) => void) | null = null;
  private cancelIdle: (() => void) | null = null;

  constructor(
    private readonly pc: RTCPeerConnection,
    private readonly opts: GatherOptions,
    private readonly timers: Timers,
    private readonly signal: AbortSignal,
    private readonly now: () => number,
  ) {
    const on = (type: string, fn: (ev: Event) => void) =>
      pc.addEventListener(type, fn, { signal });
    on("icecandidate", (ev) => {
      const cand = (ev as RTCPeerConnectionIceEvent).candidate;
      // A null candidate is the end-of-gathering marker in browsers that skip the state event.
      if (!cand) return this.onComplete();
      this.candidates++;
      if (isRelayCandidate(cand)) this.relay++;
      this.lastAt = this.now();
      if (this.settle) this.armIdle(this.opts.idleMs);
    });
    on("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") this.onComplete();
    });
  }

  get count(): number {
    return this.candidates;
  }

  wait(): Promise<GatherResult | null> {
    if (this.signal.aborted) return Promise.resolve(null);
    if (this.complete || this.pc.iceGatheringState === "complete")
      return Promise.resolve(this.result("complete"));
    return new Promise((resolve) => {
      const cancelDeadline = this.timers.timeout(
        () => finish("deadline"),
        this.opts.deadlineMs,
      );
      const onAbort = () => {
        this.settle = null;
        resolve(null);
      };
      this.signal.addEventListener("abort", onAbort, { once: true });
      const finish = (sentBy: SentBy) => {
        this.settle = null;
        cancelDeadline();
        this.cancelIdle?.();
        this.signal.removeEventListener("abort", onAbort);
        resolve(this.result(sentBy));
      };
      this.settle = finish;
      // Candidates that came before the wait count: the idle window runs from the last one.
      if (this.lastAt !== null)
        this.armIdle(this.opts.idleMs - (this.now() - this.lastAt));
    });
  }

  private armIdle(ms: number): void {
    this.cancelIdle?.();
    this.cancelIdle = this.timers.timeout(
      () => {
        this.cancelIdle = null;
        if (this.opts.expectRelay && this.relay === 0) return; // the deadline decides
        this.settle?.("idle");
      },
      Math.max(0, ms),
    );
  }

  private onComplete(): void {
    this.complete = true;
    this.settle?.("complete");
  }

  private result(sentBy: SentBy): GatherResult {
    return {
      sentBy,
      candidates: this.candidates,
      relayCandidates: this.relay,
    };
  }
}
