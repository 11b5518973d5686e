/**
 * The small observable state a view draws from. The controller writes it; views subscribe
 * and patch their DOM. Views never see raw comm traffic, so two views of one widget always
 * agree and a view opened late starts from the same snapshot.
 */

import type { EventRecord, Status } from "./bridge";
import { Transcript, type Turn } from "./transcript";

export type StoreChange =
  | { type: "status" }
  | { type: "speaking" }
  /** The words about the page's audio changed (`Store.audioNotice`). */
  | { type: "audio" }
  /** A reply started, or the last one in flight or playing ended (`Store.responding`). */
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

/** Replies remembered at once; a lost response.done must not grow the sets forever. */
const RESPONDING_LIMIT = 32;

function str(x: unknown): string {
  return typeof x === "string" ? x : "";
}

function addBounded(set: Set<string>, id: string): void {
  set.add(id);
  if (set.size > RESPONDING_LIMIT) set.delete(set.values().next().value!);
}

/**
 * Whether the agent is responding: a reply in flight (response.created .. response.done) or
 * its audio still playing (output_audio_buffer.started .. .stopped/.cleared; over WebRTC that
 * outlasts response.done, and Stop must still cut it). UI state for the Stop button, per call.
 */
export class RespondingTracker {
  private readonly inFlight = new Set<string>();
  private readonly playing = new Set<string>();

  get responding(): boolean {
    return this.inFlight.size > 0 || this.playing.size > 0;
  }

  /** Fold one record of the current call; returns whether `responding` changed. */
  apply(record: EventRecord): boolean {
    const was = this.responding;
    const ev = record.event;
    if (record.dir === "local" && ev.type === "call.start") {
      this.clear();
    } else if (record.dir === "server") {
      switch (ev.type) {
        case "response.created": {
          const id = str((ev.response as { id?: unknown } | null)?.id);
          if (id) addBounded(this.inFlight, id); // without an id no done could end it
          break;
        }
        case "response.done":
          this.inFlight.delete(
            str((ev.response as { id?: unknown } | null)?.id),
          );
          break;
        case "output_audio_buffer.started":
          addBounded(this.playing, str(ev.response_id));
          break;
        case "output_audio_buffer.stopped":
          // One buffer per session: a stop that names no reply ends whatever played.
          if (ev.response_id === undefined) this.playing.clear();
          else this.playing.delete(str(ev.response_id));
          break;
        case "output_audio_buffer.cleared":
          this.playing.clear();
          break;
      }
    }
    return was !== this.responding;
  }

  /** Nothing in flight or playing (a new call, or the end of one); returns whether it changed. */
  reset(): boolean {
    const was = this.responding;
    this.clear();
    return was;
  }

  private clear(): void {
    this.inFlight.clear();
    this.playing.clear();
  }
}

export class Store {
  /** The browser's own view of the connection; the view merges it with the Python trait. */
  status: Status = "disconnected";
  /** Words for a person: the failure reason, or a standing notice such as "mic unavailable". */
  detail = "";
  /** The call this page holds (or last held); per-call state belongs to it alone. */
  call: number | null = null;
  /** Bumped on every local status change so a view can tell which source spoke last. */
  statusVersion = 0;
  userSpeaking = false;
  /** Words about the page's audio (e.g. the browser paused it until a click); "" for none. */
  audioNotice = "";
  readonly transcript = new Transcript();
  readonly records: RecordRing;
  private readonly tracker = new RespondingTracker();
  private listeners = new Set<StoreListener>();

  constructor(recordCapacity = 5000) {
    this.records = new RecordRing(recordCapacity);
  }

  /** True while a reply is in flight or its audio still plays (Stop is live). */
  get responding(): boolean {
    return this.tracker.responding;
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

  /** A new call starts: every per-call flag starts over, and older calls no longer speak. */
  beginCall(call: number): void {
    this.call = call;
    this.setUserSpeaking(false);
    if (this.tracker.reset()) this.emit({ type: "responding" });
  }

  setStatus(call: number, status: Status, detail: string): void {
    if (this.call !== null && call !== this.call) return; // a late word from an older call
    this.call = call;
    this.status = status;
    this.detail = detail;
    this.statusVersion++;
    const ended = status !== "connected" && status !== "connecting";
    if (ended) this.setUserSpeaking(false);
    // No response.done will come for a reply cut off by the end of the call.
    const stopped = ended && this.tracker.reset();
    this.emit({ type: "status" });
    if (stopped) this.emit({ type: "responding" });
  }

  setAudioNotice(text: string): void {
    if (text === this.audioNotice) return;
    this.audioNotice = text;
    this.emit({ type: "audio" });
  }

  setUserSpeaking(speaking: boolean): void {
    if (speaking === this.userSpeaking) return;
    this.userSpeaking = speaking;
    this.emit({ type: "speaking" });
  }

  /** Keep a record of `call`; only the current call's records move its flags. */
  addRecord(call: number, record: EventRecord): void {
    this.records.push(record);
    const current = call === this.call;
    const type = record.dir === "server" ? record.event.type : undefined;
    if (current && type === "input_audio_buffer.speech_started")
      this.setUserSpeaking(true);
    else if (current && type === "input_audio_buffer.speech_stopped")
      this.setUserSpeaking(false);
    const { changed, removed } = this.transcript.apply(record);
    const responding = current && this.tracker.apply(record);
    this.emit({ type: "records", records: [record] });
    if (changed.length > 0 || removed.length > 0)
      this.emit({ type: "turns", changed, removed });
    if (responding) this.emit({ type: "responding" });
  }
}
