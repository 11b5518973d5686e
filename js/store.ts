/**
 * The small observable state a view draws from. The controller writes it; views subscribe
 * and patch their DOM. Views never see raw comm traffic, so two views of one widget always
 * agree and a view opened late starts from the same snapshot.
 */

import type { EventRecord, Status } from "./bridge";
import { LatencyTracker, type LatencySummary } from "./latency";
import { Transcript, type Turn } from "./transcript";

export type StoreChange =
  | { type: "status" }
  | { type: "speaking" }
  /** The latency summary changed (a turn was measured or corrected). */
  | { type: "latency" }
  /** A reply started or the last one in flight ended (`Store.responding`). */
  | { type: "responding" }
  | { type: "turns"; changed: Turn[]; removed: Turn[] }
  | { type: "records"; records: EventRecord[] };

export type StoreListener = (change: StoreChange) => void;

/** Fixed-capacity ring of the most recent records (the full log lives in Python). */
export class RecordRing {
  private buf: (EventRecord | undefined)[];
  private start = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.buf = new Array<EventRecord | undefined>(capacity);
  }

  push(r: EventRecord): void {
    if (this.size < this.capacity) {
      this.buf[(this.start + this.size) % this.capacity] = r;
      this.size++;
    } else {
      this.buf[this.start] = r;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  get length(): number {
    return this.size;
  }

  /** Newest first, stopping after `limit` matches. */
  newest(
    limit: number,
    keep: (r: EventRecord) => boolean = () => true,
  ): EventRecord[] {
    const out: EventRecord[] = [];
    for (let i = this.size - 1; i >= 0 && out.length < limit; i--) {
      const r = this.buf[(this.start + i) % this.capacity]!;
      if (keep(r)) out.push(r);
    }
    return out;
  }
}

export class Store {
  /** The browser's own view of the connection; the view merges it with the Python trait. */
  status: Status = "disconnected";
  /** Words for a person: the failure reason, or a standing notice such as "mic unavailable". */
  detail = "";
  call: number | null = null;
  /** Bumped on every local status change so a view can tell which source spoke last. */
  statusVersion = 0;
  userSpeaking = false;
  readonly transcript = new Transcript();
  readonly records: RecordRing;
  private readonly tracker = new LatencyTracker();
  private listeners = new Set<StoreListener>();

  constructor(recordCapacity = 5000) {
    this.records = new RecordRing(recordCapacity);
  }

  /** True between a reply's response.created and its response.done. */
  get responding(): boolean {
    return this.tracker.responding;
  }

  /** Last and median turn latency (see latency.ts for the definition). */
  latency(): LatencySummary {
    return this.tracker.summary();
  }

  subscribe(fn: StoreListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(change: StoreChange): void {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (e) {
        // One broken view must not stop the others (or the call) from updating.
        console.error("[realtime-widget] view listener failed", e);
      }
    }
  }

  setStatus(call: number, status: Status, detail: string): void {
    this.call = call;
    this.status = status;
    this.detail = detail;
    this.statusVersion++;
    const ended = status !== "connected" && status !== "connecting";
    if (ended) this.setUserSpeaking(false);
    // No response.done will come for a reply cut off by the end of the call.
    const stopped = ended && this.tracker.endCall();
    this.emit({ type: "status" });
    if (stopped) this.emit({ type: "responding" });
  }

  setUserSpeaking(speaking: boolean): void {
    if (speaking === this.userSpeaking) return;
    this.userSpeaking = speaking;
    this.emit({ type: "speaking" });
  }

  addRecord(record: EventRecord): void {
    this.records.push(record);
    const type = record.dir === "server" ? record.event.type : undefined;
    if (type === "input_audio_buffer.speech_started")
      this.setUserSpeaking(true);
    else if (type === "input_audio_buffer.speech_stopped")
      this.setUserSpeaking(false);
    const { changed, removed } = this.transcript.apply(record);
    const tracked = this.tracker.apply(record);
    this.emit({ type: "records", records: [record] });
    if (changed.length > 0 || removed.length > 0)
      this.emit({ type: "turns", changed, removed });
    if (tracked.latency) this.emit({ type: "latency" });
    if (tracked.responding) this.emit({ type: "responding" });
  }
}
