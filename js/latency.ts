/**
 * Turn latency and "is a reply in flight", folded incrementally from event records (O(1)
 * per record, bounded memory). The turn definition mirrors the kernel's `_turns.py`:
 *
 *   - a turn is one server `response.created`, keyed by `response.id`;
 *   - it starts at the latest server `input_audio_buffer.speech_stopped` or client
 *     `response.create` since the previous response (a new `speech_started` or a user /
 *     function_call_output `conversation.item.create` clears it, as in Python);
 *   - its latency runs from that start to the browser's first audible moment of the reply
 *     (local `audio.audible`), falling back to its first transcript/text delta when nothing
 *     was heard (text-only replies, or an audio reply that ended before it was heard).
 *
 * A reply that asked for audio waits for `audio.audible` and only falls back to its first
 * delta at `response.done`, so the number shown does not flip from "text" to "heard" a
 * moment later; an `audio.audible` that still arrives after that replaces the fallback.
 */

import type { EventRecord } from "./bridge";

/** The median covers at most this many of the most recent measured turns. */
export const LATENCY_WINDOW = 200;
/** Responses remembered for late events (an audible after done); older ones are dropped. */
const OPEN_LIMIT = 32;

// GA names first; the beta aliases are still sent by some servers.
const DELTAS = new Set([
  "response.output_audio_transcript.delta",
  "response.output_text.delta",
  "response.audio_transcript.delta",
  "response.text.delta",
]);

export interface LatencySummary {
  /** The latest measured turn (ms), or null before any. */
  last: number | null;
  /** Median of the measured turns in the window (ms), or null before any. */
  median: number | null;
  /** How many measured turns the median covers (at most LATENCY_WINDOW). */
  count: number;
}

export interface TrackerChange {
  latency: boolean;
  responding: boolean;
}

interface Sample {
  value: number;
  /** False once pushed out of the window: later corrections no longer apply. */
  live: boolean;
}

interface OpenTurn {
  /** Creation order, so a late correction of an older turn never becomes "last". */
  order: number;
  start: number | null;
  /** The response asked for audio output: prefer what the browser heard. */
  audio: boolean;
  firstDelta: number | null;
  audible: number | null;
  done: boolean;
  sample: Sample | null;
}

function obj(x: unknown): Record<string, unknown> | undefined {
  return typeof x === "object" && x !== null && !Array.isArray(x)
    ? (x as Record<string, unknown>)
    : undefined;
}

function str(x: unknown): string | undefined {
  return typeof x === "string" && x !== "" ? x : undefined;
}

/** First index in ascending `xs` whose value is >= `v`. */
function lowerBound(xs: number[], v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The last `capacity` samples in arrival order, plus the same values kept sorted. */
export class MedianWindow {
  private readonly ring: Sample[] = [];
  private head = 0;
  private readonly sorted: number[] = [];

  constructor(readonly capacity = LATENCY_WINDOW) {}

  get count(): number {
    return this.ring.length;
  }

  add(value: number): Sample {
    const sample: Sample = { value, live: true };
    if (this.ring.length < this.capacity) {
      this.ring.push(sample);
    } else {
      const old = this.ring[this.head]!;
      old.live = false;
      this.remove(old.value);
      this.ring[this.head] = sample;
      this.head = (this.head + 1) % this.capacity;
    }
    this.sorted.splice(lowerBound(this.sorted, value), 0, value);
    return sample;
  }

  /** Correct a sample still in the window. */
  update(sample: Sample, value: number): void {
    if (!sample.live) return;
    this.remove(sample.value);
    sample.value = value;
    this.sorted.splice(lowerBound(this.sorted, value), 0, value);
  }

  median(): number | null {
    const n = this.sorted.length;
    if (n === 0) return null;
    const mid = n >>> 1;
    return n % 2 === 1
      ? this.sorted[mid]!
      : (this.sorted[mid - 1]! + this.sorted[mid]!) / 2;
  }

  private remove(value: number): void {
    const i = lowerBound(this.sorted, value);
    if (this.sorted[i] === value) this.sorted.splice(i, 1);
  }
}

export class LatencyTracker {
  /** Start of the turn the next response.created will answer (null: none yet). */
  private pendingStart: number | null = null;
  private readonly open = new Map<string, OpenTurn>();
  /** Responses between response.created and response.done, oldest first. */
  private readonly inFlight = new Set<string>();
  private readonly window: MedianWindow;
  private order = 0;
  private lastOrder = -1;
  private last: number | null = null;

  constructor(windowSize = LATENCY_WINDOW) {
    this.window = new MedianWindow(windowSize);
  }

  /** Responses whose audio the service is still playing out (output_audio_buffer.*): over
   * WebRTC that outlasts response.done, and Stop must still be able to cut it. */
  private readonly playing = new Set<string>();

  /** True while a reply is in flight or its audio still plays (the Stop button's state). */
  get responding(): boolean {
    return this.inFlight.size > 0 || this.playing.size > 0;
  }

  summary(): LatencySummary {
    return {
      last: this.last,
      median: this.window.median(),
      count: this.window.count,
    };
  }

  /** Fold one record; says which of the derived values changed. */
  apply(record: EventRecord): TrackerChange {
    const ev = record.event;
    const type = ev.type ?? "";
    const t = record.t_ms;
    const change: TrackerChange = { latency: false, responding: false };
    const wasResponding = this.responding;
    if (record.dir === "local") {
      if (type === "call.start") {
        change.responding = this.endCall();
        this.open.clear();
      } else if (type === "audio.audible") {
        const turn = this.open.get(str(ev.response_id) ?? "");
        if (turn && turn.audible === null) {
          turn.audible = t;
          change.latency = this.measure(turn);
        }
      }
    } else if (record.dir === "client") {
      if (type === "response.create") {
        this.pendingStart = t;
      } else if (type === "conversation.item.create") {
        const item = obj(ev.item);
        if (item?.role === "user" || item?.type === "function_call_output")
          this.pendingStart = null;
      }
    } else if (record.dir === "server") {
      if (type === "input_audio_buffer.speech_started") {
        this.pendingStart = null;
      } else if (type === "input_audio_buffer.speech_stopped") {
        this.pendingStart = t;
      } else if (type === "response.created") {
        change.responding = this.created(obj(ev.response));
      } else if (type === "response.done") {
        const id = str(obj(ev.response)?.id) ?? "";
        change.responding =
          this.inFlight.delete(id) && this.inFlight.size === 0;
        const turn = this.open.get(id);
        if (turn && !turn.done) {
          turn.done = true;
          change.latency = this.measure(turn);
        }
      } else if (type === "output_audio_buffer.started") {
        this.playing.add(str(ev.response_id) ?? "");
      } else if (
        type === "output_audio_buffer.stopped" ||
        type === "output_audio_buffer.cleared"
      ) {
        this.playing.delete(str(ev.response_id) ?? "");
      } else if (DELTAS.has(type)) {
        const turn = this.open.get(str(ev.response_id) ?? "");
        if (turn && turn.firstDelta === null) {
          turn.firstDelta = t;
          change.latency = this.measure(turn);
        }
      }
    }
    change.responding = wasResponding !== this.responding;
    return change;
  }

  /** The call ended: nothing is in flight any more. Returns whether that changed. */
  endCall(): boolean {
    this.pendingStart = null;
    const was = this.responding;
    this.inFlight.clear();
    this.playing.clear();
    return was;
  }

  private created(response: Record<string, unknown> | undefined): boolean {
    const start = this.pendingStart;
    this.pendingStart = null;
    const id = str(response?.id);
    if (!id) return false; // nothing later could name it
    const modalities = response?.output_modalities ?? response?.modalities;
    this.open.delete(id); // a re-used id starts over, at the end of the order
    this.open.set(id, {
      order: this.order++,
      start,
      audio: Array.isArray(modalities) && modalities.includes("audio"),
      firstDelta: null,
      audible: null,
      done: false,
      sample: null,
    });
    if (this.open.size > OPEN_LIMIT)
      this.open.delete(this.open.keys().next().value!);
    const had = this.inFlight.size;
    this.inFlight.add(id);
    if (this.inFlight.size > OPEN_LIMIT)
      this.inFlight.delete(this.inFlight.values().next().value!);
    return had === 0;
  }

  /** (Re)measure a turn after one of its moments arrived; true if the summary changed. */
  private measure(turn: OpenTurn): boolean {
    if (turn.start === null) return false;
    let at: number;
    if (turn.audible !== null) at = turn.audible;
    else if (turn.firstDelta !== null && (!turn.audio || turn.done))
      at = turn.firstDelta;
    else return false;
    const value = at - turn.start;
    if (turn.sample === null) {
      turn.sample = this.window.add(value);
    } else {
      if (turn.sample.value === value || !turn.sample.live) return false;
      this.window.update(turn.sample, value);
    }
    if (turn.order >= this.lastOrder) {
      this.lastOrder = turn.order;
      this.last = value;
    }
    return true;
  }
}
