/**
 * Clips sent from Python (`w.say(...)`): chunks joined into one encoded file, decoded by the
 * browser (which also resamples to the context's rate), and played one after another into
 * the outgoing mix at real time, with the microphone ducked while each plays.
 *
 * Local events: `say.started` when a clip's first sample enters the mix, `say.ended` when it
 * finished or was cut (`stopped`), `say.error` when it could not be assembled, decoded or
 * played. Their `t_ms` is the clip's scheduled time on the audio clock, mapped to the log
 * clock, so the records line up with the recording sample for sample.
 */

import { LIMITS, type LocalEvent } from "./bridge";
import type { Cancel, Timers } from "./timers";
import {
  round1,
  type AudioClock,
  type AudioContextLike,
  type BufferLike,
  type BufferSourceLike,
  type NodeLike,
  type ParamLike,
} from "./webaudio";

/** One `play` chunk as the call sees it (bytes already taken from the buffer or `b64`). */
export interface ClipChunk {
  clipId: string;
  index: number;
  /** true: this chunk is the last; a number: the index of the last chunk; false: not known. */
  last: boolean | number;
  mime: string;
  duck: number;
  source: string;
  bytes: Uint8Array | null;
}

/** Whether this is the clip's last chunk (one refusal per clip is said there). */
export function isLastChunk(c: {
  index: number;
  last: boolean | number;
}): boolean {
  return c.last === true || c.last === c.index;
}

export interface Clip {
  id: string;
  mime: string;
  duck: number;
  source: string;
  bytes: Uint8Array;
}

/** A clip bigger than this is refused rather than held in memory (about 10 min of WAV). */
export const MAX_CLIP_BYTES = 128 * 1024 * 1024;

interface PartialClip {
  chunks: Map<number, Uint8Array>;
  lastIndex: number | null;
  size: number;
  first: ClipChunk;
}

/** Joins a clip's chunks (in any order, duplicates ignored) once 0..last are all there. */
export class ClipAssembler {
  private readonly partial = new Map<string, PartialClip>();

  /** A finished clip, an error (the clip is dropped), or null while chunks are missing. */
  add(chunk: ClipChunk): { clip: Clip } | { error: string } | null {
    const id = chunk.clipId;
    if (!chunk.bytes)
      return this.drop(id, `chunk ${chunk.index} arrived without its bytes`);
    if (chunk.bytes.length > LIMITS.max_chunk_bytes)
      return this.drop(
        id,
        `chunk ${chunk.index} has ${chunk.bytes.length} bytes; at most ${LIMITS.max_chunk_bytes} are allowed`,
      );
    let p = this.partial.get(id);
    if (!p) {
      p = { chunks: new Map(), lastIndex: null, size: 0, first: chunk };
      this.partial.set(id, p);
    }
    if (chunk.last === true) p.lastIndex = chunk.index;
    else if (typeof chunk.last === "number") p.lastIndex = chunk.last;
    if (!p.chunks.has(chunk.index)) {
      // A copy: a host may reuse the buffer behind a DataView once the handler returns.
      p.chunks.set(chunk.index, chunk.bytes.slice());
      p.size += chunk.bytes.length;
    }
    if (p.size > MAX_CLIP_BYTES)
      return this.drop(id, `the clip is larger than ${MAX_CLIP_BYTES} bytes`);
    if (p.lastIndex === null || p.chunks.size < p.lastIndex + 1) return null;
    const bytes = new Uint8Array(p.size);
    let at = 0;
    for (let i = 0; i <= p.lastIndex; i++) {
      const part = p.chunks.get(i);
      if (!part) return null; // an index beyond `last` took its place: still waiting
      bytes.set(part, at);
      at += part.length;
    }
    this.partial.delete(id);
    const { mime, duck, source } = p.first;
    return { clip: { id, mime, duck, source, bytes: bytes.subarray(0, at) } };
  }

  /** Forget a clip's chunks (stop_clip before it was complete); true if there were any. */
  forget(id: string): boolean {
    return this.partial.delete(id);
  }

  get pending(): string[] {
    return [...this.partial.keys()];
  }

  private drop(id: string, error: string): { error: string } {
    this.partial.delete(id);
    return { error };
  }
}

interface Entry {
  clip: Clip;
  buffer: BufferLike | null;
  node: BufferSourceLike | null;
  /** Audio-context seconds, once scheduled. */
  start: number;
  end: number;
  started: boolean;
  cancelStart: Cancel | null;
}

export interface ClipPlayerOptions {
  /** Scheduling lead: a clip starts this far ahead of `currentTime`, so its onset is exact. */
  leadS?: number;
  /** Time constant of the duck's gain changes (a click-free ~3τ ramp). */
  duckTauS?: number;
}

/**
 * Plays clips in arrival order, each starting where the previous one ends. Scheduling waits
 * for `live` (the call is connected, so the service hears the clip from its first sample) and
 * a running context (a suspended one would swallow it).
 */
export class ClipPlayer {
  private readonly queue: Entry[] = [];
  private live = false;
  private closed = false;
  private readonly leadS: number;
  private readonly tau: number;

  constructor(
    private readonly ctx: AudioContextLike,
    private readonly bus: NodeLike,
    private readonly duck: ParamLike,
    private readonly clock: AudioClock,
    private readonly timers: Timers,
    private readonly record: (event: LocalEvent, tMs?: number) => void,
    opts: ClipPlayerOptions = {},
  ) {
    this.leadS = opts.leadS ?? 0.02;
    this.tau = opts.duckTauS ?? 0.01;
  }

  /** Clips waiting, playing or decoding (ids, in play order). */
  get queued(): string[] {
    return this.queue.map((e) => e.clip.id);
  }

  setLive(live: boolean): void {
    this.live = live;
    this.pump();
  }

  /** Queue a complete clip; it decodes now and plays when its turn comes. */
  enqueue(clip: Clip): void {
    if (this.closed) return;
    const entry: Entry = {
      clip,
      buffer: null,
      node: null,
      start: 0,
      end: 0,
      started: false,
      cancelStart: null,
    };
    this.queue.push(entry);
    // decodeAudioData detaches the buffer it is given: hand it a copy of its own.
    const data = clip.bytes.slice().buffer as ArrayBuffer;
    let decoding: Promise<BufferLike>;
    try {
      decoding = this.ctx.decodeAudioData(data);
    } catch (e) {
      decoding = Promise.reject(e);
    }
    decoding.then(
      (buffer) => {
        if (!this.queue.includes(entry)) return; // stopped or closed meanwhile
        entry.buffer = buffer;
        this.pump();
      },
      (e: unknown) => {
        if (!this.remove(entry)) return;
        this.record({
          type: "say.error",
          clip_id: clip.id,
          message: `Could not decode the clip (${clip.mime || "unknown type"}, ${clip.bytes.length} bytes): ${errorText(e)}`,
        });
        this.pump();
      },
    );
  }

  /** Cut a clip (playing, waiting or decoding); true if it was there. */
  stop(id: string): boolean {
    const entry = this.queue.find((e) => e.clip.id === id);
    if (!entry) return false;
    this.remove(entry);
    this.finish(entry, true);
    // Clips scheduled after it would now leave a gap: schedule them again from now.
    for (const e of this.queue) if (!e.started) this.unschedule(e);
    this.pump();
    return true;
  }

  /** The call ended: every clip still here ends as stopped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const entries = this.queue.splice(0);
    for (const e of entries) this.finish(e, true);
    this.applyDuck();
  }

  /** Schedule what can be scheduled: in order, each after the previous one's end. */
  pump(): void {
    if (this.closed || !this.live || this.ctx.state !== "running") return;
    this.clock.sync();
    const now = this.ctx.currentTime;
    let prevEnd = 0;
    let changed = false;
    for (const e of this.queue) {
      if (e.node) {
        prevEnd = Math.max(prevEnd, e.end);
        continue;
      }
      if (!e.buffer) break; // still decoding: later clips keep their place behind it
      const node = this.ctx.createBufferSource();
      node.buffer = e.buffer;
      node.connect(this.bus);
      node.onended = () => {
        node.disconnect(); // here, not earlier: its last samples are played by now
        this.ended(e, node);
      };
      const start = Math.max(now + this.leadS, prevEnd);
      node.start(start);
      e.node = node;
      e.start = start;
      e.end = start + e.buffer.duration;
      prevEnd = e.end;
      e.cancelStart = this.timers.timeout(
        () => this.started(e),
        Math.max(0, (start - now) * 1000),
      );
      changed = true;
    }
    if (changed) this.applyDuck();
  }

  // ---- internals ---------------------------------------------------------------------

  private started(e: Entry): void {
    if (e.started) return;
    // A clip that ended where this one starts may not have had its `ended` event yet (the
    // audio thread reports it late): end it first, so the log reads a.ended, b.started.
    for (const before of this.queue.slice(0, this.queue.indexOf(e)))
      if (before.node && before.end <= e.start + 1e-6)
        this.ended(before, before.node);
    e.started = true;
    e.cancelStart?.();
    e.cancelStart = null;
    this.record(
      {
        type: "say.started",
        clip_id: e.clip.id,
        duration_ms: round1((e.buffer?.duration ?? 0) * 1000),
        source: e.clip.source,
      },
      this.clock.toEpochMs(e.start),
    );
  }

  /** The source's `ended` event: the clip played to its end. */
  private ended(e: Entry, node: BufferSourceLike): void {
    if (e.node !== node || !this.remove(e)) return;
    this.started(e); // the start timer may lag the audio thread: keep the order
    this.record(
      {
        type: "say.ended",
        clip_id: e.clip.id,
        duration_ms: round1((e.end - e.start) * 1000),
        stopped: false,
      },
      this.clock.toEpochMs(e.end),
    );
    this.applyDuck();
    this.pump();
  }

  /** Record how a clip that did not play to its end ended; release its node. */
  private finish(e: Entry, stopped: boolean): void {
    const now = this.ctx.currentTime;
    const playing = e.node !== null && e.start <= now;
    if (playing) this.started(e);
    const played = playing ? Math.min(now, e.end) - e.start : 0;
    this.unschedule(e);
    this.record({
      type: "say.ended",
      clip_id: e.clip.id,
      duration_ms: round1(Math.max(0, played) * 1000),
      stopped,
    });
    this.applyDuck();
  }

  private unschedule(e: Entry): void {
    e.cancelStart?.();
    e.cancelStart = null;
    const node = e.node;
    if (!node) return;
    e.node = null;
    node.onended = null;
    try {
      node.stop();
    } catch {
      /* never started */
    }
    node.disconnect();
  }

  private remove(e: Entry): boolean {
    const i = this.queue.indexOf(e);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  /**
   * Re-plan the mic's duck gain from the scheduled clips: `duck` while one plays, 1 between.
   * Planned on the audio clock, so the duck starts with the clip's first sample.
   */
  private applyDuck(): void {
    const now = this.ctx.currentTime;
    const spans = this.queue
      .filter((e) => e.node)
      .map((e) => ({ start: e.start, end: e.end, level: e.clip.duck }));
    const levelAt = (t: number) =>
      spans.find((s) => s.start <= t && t < s.end)?.level ?? 1;
    const p = this.duck;
    p.cancelScheduledValues(now);
    p.setTargetAtTime(levelAt(now), now, this.tau);
    const times = [...new Set(spans.flatMap((s) => [s.start, s.end]))]
      .filter((t) => t > now)
      .sort((a, b) => a - b);
    for (const t of times) p.setTargetAtTime(levelAt(t), t, this.tau);
  }
}

function errorText(e: unknown): string {
  if (typeof e === "object" && e !== null && "message" in e) {
    const err = e as { name?: unknown; message?: unknown };
    const name = err.name ? `${String(err.name)}: ` : "";
    return `${name}${String(err.message)}`;
  }
  return String(e);
}
