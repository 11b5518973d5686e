/**
 * The kernel <-> browser message protocol (browser half; `src/realtime_widget/_bridge.py` is
 * the other). Kind strings and fields must match the Python module exactly: a contract test
 * compares the two.
 */

// Python -> browser
export const CONNECT = "connect";
export const ANSWER = "answer";
export const SIGNAL_ERROR = "signal_error";
export const SEND = "send";
export const DISCONNECT = "disconnect";

// browser -> Python
export const OFFER = "offer";
export const EVENTS = "events";
export const STATE = "state";
export const REQUEST = "request";

export const TO_BROWSER = [
  CONNECT,
  ANSWER,
  SIGNAL_ERROR,
  SEND,
  DISCONNECT,
] as const;
export const TO_KERNEL = [OFFER, EVENTS, STATE, REQUEST] as const;

export const DIRECTIONS = ["client", "server", "local"] as const;
export const STATUSES = [
  "disconnected",
  "connecting",
  "connected",
  "failed",
] as const;

/** Same default as Python's DEFAULT_GATHER_TIMEOUT_MS, used when a connect message omits it. */
export const DEFAULT_GATHER_TIMEOUT_MS = 800;

export type Direction = (typeof DIRECTIONS)[number];
export type Status = (typeof STATUSES)[number];

/** A realtime event as it travels on the data channel: JSON object, `type` usually present. */
export type RealtimeEvent = { type?: string; [key: string]: unknown };

// ---- Python -> browser -------------------------------------------------------------------
// Every message names a `page`: the one front end it is for, or "" for whichever has the call.
// Several pages can show one widget (two tabs, a shared notebook); only one may hold its call.

export interface ConnectMsg {
  kind: typeof CONNECT;
  call: number;
  page: string;
  ice_servers: RTCIceServer[];
  session_update: RealtimeEvent;
  queued: RealtimeEvent[];
  mic: boolean;
  gather_timeout_ms: number;
}
export interface AnswerMsg {
  kind: typeof ANSWER;
  call: number;
  page: string;
  sdp: string;
}
export interface SignalErrorMsg {
  kind: typeof SIGNAL_ERROR;
  call: number;
  page: string;
  message: string;
}
export interface SendMsg {
  kind: typeof SEND;
  call: number;
  page: string;
  events: RealtimeEvent[];
}
export interface DisconnectMsg {
  kind: typeof DISCONNECT;
  call: number;
  page: string;
}
export type ToBrowserMsg =
  ConnectMsg | AnswerMsg | SignalErrorMsg | SendMsg | DisconnectMsg;

// ---- browser -> Python -------------------------------------------------------------------

export interface OfferMsg {
  kind: typeof OFFER;
  call: number;
  page: string;
  sdp: string;
}
export interface EventRecord {
  seq: number;
  dir: Direction;
  t_ms: number;
  event: RealtimeEvent;
}
export interface EventsMsg {
  kind: typeof EVENTS;
  call: number;
  /** Which page numbered these records (`seq` counts per page; a page is one front end). */
  page: string;
  records: EventRecord[];
}
export interface StateMsg {
  kind: typeof STATE;
  call: number;
  page: string;
  state: Status;
  detail: string;
}
export type RequestMsg =
  | {
      kind: typeof REQUEST;
      page: string;
      action: "connect" | "disconnect" | "cancel_response";
    }
  | { kind: typeof REQUEST; page: string; action: "send_text"; text: string };
export type ToKernelMsg = OfferMsg | EventsMsg | StateMsg | RequestMsg;

// ---- parsing -----------------------------------------------------------------------------

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function eventList(x: unknown): RealtimeEvent[] {
  return Array.isArray(x) ? x.filter(isObject) : [];
}

/**
 * Validate a custom message from Python. Returns null for anything that is not one of our
 * kinds (other widgets' traffic, or a malformed message) so the caller can ignore it.
 * Optional fields get the same defaults Python would have sent.
 */
export function parseToBrowser(msg: unknown): ToBrowserMsg | null {
  if (!isObject(msg) || typeof msg.kind !== "string") return null;
  const call = msg.call;
  if (typeof call !== "number") return null;
  const page = typeof msg.page === "string" ? msg.page : "";
  switch (msg.kind) {
    case CONNECT:
      if (!isObject(msg.session_update)) return null;
      return {
        kind: CONNECT,
        call,
        page,
        ice_servers: Array.isArray(msg.ice_servers)
          ? (msg.ice_servers as RTCIceServer[])
          : [],
        session_update: msg.session_update,
        queued: eventList(msg.queued),
        mic: msg.mic !== false,
        gather_timeout_ms:
          typeof msg.gather_timeout_ms === "number" &&
          msg.gather_timeout_ms >= 0
            ? msg.gather_timeout_ms
            : DEFAULT_GATHER_TIMEOUT_MS,
      };
    case ANSWER:
      return typeof msg.sdp === "string"
        ? { kind: ANSWER, call, page, sdp: msg.sdp }
        : null;
    case SIGNAL_ERROR:
      return {
        kind: SIGNAL_ERROR,
        call,
        page,
        message: String(msg.message ?? "Signalling failed"),
      };
    case SEND:
      return { kind: SEND, call, page, events: eventList(msg.events) };
    case DISCONNECT:
      return { kind: DISCONNECT, call, page };
    default:
      return null;
  }
}

/** An id for one front end (a page showing the widget), unique enough among a few tabs. */
export function newPageId(): string {
  return Math.random().toString(36).slice(2, 10);
}

// ---- clock -------------------------------------------------------------------------------

/** Epoch milliseconds with sub-ms resolution (Date.now() is whole ms and can step). */
export function epochMs(): number {
  if (typeof performance !== "undefined" && performance.timeOrigin > 0) {
    return performance.timeOrigin + performance.now();
  }
  return Date.now();
}

// ---- batching ----------------------------------------------------------------------------

export interface BatcherOptions {
  /** Receives one `events` message per batch. */
  send: (msg: EventsMsg) => void;
  /** Delay between a batch's first record and its flush. */
  batchMs?: number;
  /** A batch this large flushes at once, so a flood never builds one huge message. */
  maxBatch?: number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** This front end's id, sent with every batch (default: a random one). */
  page?: string;
}

/**
 * Collects event records and ships them as one `events` message per batch. A comm message
 * costs far more than a record, so a burst of deltas rides in a handful of messages; the
 * short timer bounds the latency added to a lone event. Nothing is ever dropped: a batch is
 * flushed when full, when its timer fires, when the call changes, and on `flush()`.
 */
export class EventBatcher {
  private seq = 0;
  private batch: EventRecord[] = [];
  private batchCall = 0;
  private timer: unknown = null;
  private lastFlush = -Infinity;
  private readonly opts: Required<BatcherOptions>;

  constructor(opts: BatcherOptions) {
    this.opts = {
      batchMs: 4,
      maxBatch: 500,
      now: epochMs,
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (h) =>
        globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
      page: newPageId(),
      ...opts,
    };
  }

  /** Stamp an event with the next seq and the browser clock, queue it, return the record.
   *
   * A leading-edge throttle: after a quiet spell the batch goes at the end of the current task
   * (so an isolated event reaches Python with no added wait, and events of one task share a
   * message); within `batchMs` of the last message, records wait for the window to close, so
   * a flood of deltas costs one message per window. */
  add(
    call: number,
    dir: Direction,
    event: RealtimeEvent,
    tMs?: number,
  ): EventRecord {
    // Every message names one call, so a record of another call closes the current batch.
    if (this.batch.length > 0 && call !== this.batchCall) this.flush();
    const record: EventRecord = {
      seq: this.seq++,
      dir,
      t_ms: tMs ?? this.opts.now(),
      event,
    };
    this.batchCall = call;
    this.batch.push(record);
    if (this.batch.length >= this.opts.maxBatch) {
      this.flush();
    } else if (this.timer === null) {
      const wait = this.lastFlush + this.opts.batchMs - Date.now();
      if (wait <= 0) {
        const token = {};
        this.timer = token;
        queueMicrotask(() => {
          if (this.timer !== token) return; // flushed (or rescheduled) meanwhile
          this.timer = null;
          this.flush();
        });
      } else {
        this.timer = this.opts.setTimeout(() => {
          this.timer = null;
          this.flush();
        }, wait);
      }
    }
    return record;
  }

  /** Send whatever is pending now (also the cleanup path). */
  flush(): void {
    if (this.timer !== null) {
      this.opts.clearTimeout(this.timer); // a microtask token is simply forgotten
      this.timer = null;
    }
    if (this.batch.length === 0) return;
    const records = this.batch;
    this.batch = [];
    this.lastFlush = Date.now();
    this.opts.send({
      kind: EVENTS,
      call: this.batchCall,
      page: this.opts.page,
      records,
    });
  }

  get pending(): number {
    return this.batch.length;
  }
}
