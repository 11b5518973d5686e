/**
 * The kernel <-> browser message protocol (browser half; `src/realtime_widget/_bridge.py` is
 * the other). Kinds, fields, statuses, directions, request actions, limits and local event
 * types are described once in `src/realtime_widget/protocol.json`, which both sides load;
 * tests/js/protocol.test.ts checks the interfaces below against it.
 */

// Named imports let esbuild leave out what only the types below use (the local event docs).
import {
  directions,
  gather_timeout_ms,
  limits,
  request_actions,
  statuses,
  to_browser,
  to_kernel,
} from "../src/realtime_widget/protocol.json";

type Protocol = typeof import("../src/realtime_widget/protocol.json");

export type ToBrowserKind = keyof typeof to_browser;
export type ToKernelKind = keyof typeof to_kernel;

/** A kind named in the protocol file: a typo or a renamed kind fails `tsc`, not a call. */
function kind<T extends object, K extends keyof T & string>(
  table: T,
  name: K,
): K {
  if (!(name in table)) throw new Error(`protocol.json has no kind ${name}`);
  return name;
}

// Python -> browser
export const CONNECT = kind(to_browser, "connect");
export const ANSWER = kind(to_browser, "answer");
export const SIGNAL_ERROR = kind(to_browser, "signal_error");
export const SEND = kind(to_browser, "send");
export const SHOWN = kind(to_browser, "shown");
export const DISCONNECT = kind(to_browser, "disconnect");
export const PLAY = kind(to_browser, "play");
export const STOP_CLIP = kind(to_browser, "stop_clip");
export const PROBE = kind(to_browser, "probe");
export const ICE = kind(to_browser, "ice");

// browser -> Python
export const OFFER = kind(to_kernel, "offer");
export const EVENTS = kind(to_kernel, "events");
export const STATE = kind(to_kernel, "state");
export const REQUEST = kind(to_kernel, "request");
export const RECORDING = kind(to_kernel, "recording");
export const PROBE_REPLY = kind(to_kernel, "probe_reply");

export const TO_BROWSER = Object.keys(to_browser) as readonly ToBrowserKind[];
export const TO_KERNEL = Object.keys(to_kernel) as readonly ToKernelKind[];

// JSON arrays type as string[]: these unions name the same values for the compiler, and
// protocol.test.ts checks that they match the file exactly.
export type Direction = "client" | "server" | "local";
export type Status = "disconnected" | "connecting" | "connected" | "failed";
export type RequestAction =
  | "connect"
  | "disconnect"
  | "send_text"
  | "cancel_response"
  | "approve"
  | "reject"
  | "prepare";

export const DIRECTIONS = directions as readonly Direction[];
export const STATUSES = statuses as readonly Status[];
export const REQUEST_ACTIONS = request_actions as readonly RequestAction[];

/** Used when a connect message omits it (Python sends the same default). */
export const DEFAULT_GATHER_TIMEOUT_MS: number = gather_timeout_ms;
export const LIMITS = limits;

/** Every `local` event type either side may record (protocol.json's "local_events"). */
export type LocalEventType = keyof Protocol["local_events"];
/** A `local` record's event: its type must be one the protocol file documents. */
export type LocalEvent = { type: LocalEventType; [key: string]: unknown };

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
/** Client events the kernel sent on the call's sideband: the view shows them (a typed turn),
 * and a stop among them cuts the reply to what was heard; they are not sent or logged again. */
export interface ShownMsg {
  kind: typeof SHOWN;
  call: number;
  page: string;
  events: RealtimeEvent[];
}
export interface DisconnectMsg {
  kind: typeof DISCONNECT;
  call: number;
  page: string;
}
/** One chunk of an encoded audio clip for the call's outgoing mix (the bytes ride as one
 * buffer, or base64 in `b64` where the host drops buffers). */
export interface PlayMsg {
  kind: typeof PLAY;
  call: number;
  page: string;
  clip_id: string;
  index: number;
  /** true on the clip's last chunk (a number is read as the last chunk's index). */
  last: boolean | number;
  mime: string;
  /** The microphone's gain while the clip plays (1 leaves it as is). */
  duck: number;
  /** What Python made the clip from (path, bytes, array or text), for the log. */
  source: string;
  b64: string;
}
export interface StopClipMsg {
  kind: typeof STOP_CLIP;
  call: number;
  page: string;
  clip_id: string;
}
/** Known bytes (a buffer and/or `b64`) the page echoes: do buffers survive on this host? */
export interface ProbeMsg {
  kind: typeof PROBE;
  page: string;
  probe_id: string;
  b64: string;
}
/**
 * ICE servers the kernel fetched ahead of a click (the widget was shown): a Connect click
 * builds the peer connection with them at once, while its request goes to the kernel, whose
 * `connect` then numbers the call (with the same list; another list means start afresh).
 * TURN credentials ride here, in a message, and never in synced state. Fresh for `ttl_ms`.
 */
export interface IceMsg {
  kind: typeof ICE;
  page: string;
  ice_servers: RTCIceServer[];
  gather_timeout_ms: number;
  ttl_ms: number;
}
export type ToBrowserMsg =
  | IceMsg
  | ConnectMsg
  | AnswerMsg
  | SignalErrorMsg
  | SendMsg
  | ShownMsg
  | DisconnectMsg
  | PlayMsg
  | StopClipMsg
  | ProbeMsg;

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
      action: Exclude<RequestAction, "send_text" | "approve" | "reject">;
    }
  | { kind: typeof REQUEST; page: string; action: "send_text"; text: string }
  /** A tool call held for approval (the `tool_calls` trait names it): let it run. */
  | { kind: typeof REQUEST; page: string; action: "approve"; call_id: string }
  /** ...or answer the model with a refusal instead; `reason` may be "". */
  | {
      kind: typeof REQUEST;
      page: string;
      action: "reject";
      call_id: string;
      reason: string;
    };
/** ~250 ms of the call's recording: int16 LE stereo (0 = service heard, 1 = user heard),
 * `frames` per channel from `t0_ms` on the log clock; one buffer, or base64 in `b64`. */
export interface RecordingMsg {
  kind: typeof RECORDING;
  call: number;
  page: string;
  seq: number;
  t0_ms: number;
  sample_rate: number;
  frames: number;
  b64: string;
}
export interface ProbeReplyMsg {
  kind: typeof PROBE_REPLY;
  page: string;
  probe_id: string;
  /** How many buffers arrived with the probe. */
  buffers: number;
  /** How many bytes arrived (from the buffer, else from `b64`). */
  bytes: number;
  b64: string;
}
export type ToKernelMsg =
  OfferMsg | EventsMsg | StateMsg | RequestMsg | RecordingMsg | ProbeReplyMsg;

// ---- parsing -----------------------------------------------------------------------------

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function eventList(x: unknown): RealtimeEvent[] {
  return Array.isArray(x) ? x.filter(isObject) : [];
}

function gatherTimeout(x: unknown): number {
  return typeof x === "number" && x >= 0 ? x : DEFAULT_GATHER_TIMEOUT_MS;
}

/**
 * Validate a custom message from Python. Returns null for anything that is not one of our
 * kinds (other widgets' traffic, or a malformed message) so the caller can ignore it.
 * Optional fields get the same defaults Python would have sent.
 */
export function parseToBrowser(msg: unknown): ToBrowserMsg | null {
  if (!isObject(msg) || typeof msg.kind !== "string") return null;
  // The probe belongs to no call: it asks the page about its host.
  if (msg.kind === PROBE)
    return typeof msg.probe_id === "string"
      ? {
          kind: PROBE,
          page: typeof msg.page === "string" ? msg.page : "",
          probe_id: msg.probe_id,
          b64: typeof msg.b64 === "string" ? msg.b64 : "",
        }
      : null;
  // So are ICE servers fetched ahead of a call.
  if (msg.kind === ICE)
    return Array.isArray(msg.ice_servers) &&
      typeof msg.ttl_ms === "number" &&
      msg.ttl_ms > 0
      ? {
          kind: ICE,
          page: typeof msg.page === "string" ? msg.page : "",
          ice_servers: msg.ice_servers as RTCIceServer[],
          gather_timeout_ms: gatherTimeout(msg.gather_timeout_ms),
          ttl_ms: msg.ttl_ms,
        }
      : null;
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
        gather_timeout_ms: gatherTimeout(msg.gather_timeout_ms),
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
    case SHOWN:
      return { kind: SHOWN, call, page, events: eventList(msg.events) };
    case DISCONNECT:
      return { kind: DISCONNECT, call, page };
    case PLAY: {
      const { clip_id, index, last, duck } = msg;
      if (typeof clip_id !== "string" || clip_id === "") return null;
      if (typeof index !== "number" || !Number.isInteger(index) || index < 0)
        return null;
      return {
        kind: PLAY,
        call,
        page,
        clip_id,
        index,
        last:
          typeof last === "number" && Number.isInteger(last) && last >= 0
            ? last
            : last === true,
        mime: typeof msg.mime === "string" ? msg.mime : "",
        duck:
          typeof duck === "number" && Number.isFinite(duck)
            ? Math.min(1, Math.max(0, duck))
            : 1,
        source: typeof msg.source === "string" ? msg.source : "",
        b64: typeof msg.b64 === "string" ? msg.b64 : "",
      };
    }
    case STOP_CLIP:
      return typeof msg.clip_id === "string"
        ? { kind: STOP_CLIP, call, page, clip_id: msg.clip_id }
        : null;
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

/** A t_ms Python accepts (finite, inside the protocol's range), or null. */
function validTime(t: number | undefined): number | null {
  return typeof t === "number" &&
    Number.isFinite(t) &&
    t >= LIMITS.t_ms_min &&
    t <= LIMITS.t_ms_max
    ? t
    : null;
}

// ---- batching ----------------------------------------------------------------------------

export interface BatcherOptions {
  /** Receives one `events` message per batch. */
  send: (msg: EventsMsg) => void;
  /** After a message, how long streamed deltas wait so the next ones share a message. */
  batchMs?: number;
  /** How long a record nothing waits on (see `urgency`) may wait for one that is waited on. */
  lazyMs?: number;
  /** A batch this large flushes at once, so a flood never builds one huge message. */
  maxBatch?: number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** This front end's id, sent with every batch (default: a random one). */
  page?: string;
}

/** Records held while the kernel cannot be reached, at most (the oldest go first). */
export const MAX_HELD_RECORDS = 20 * LIMITS.max_batch;

function errorMessage(e: unknown): string {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } catch {
    return "unknown error";
  }
}

/** The options given, without the ones left undefined (they must not hide a default). */
function given<T extends object>(opts: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(opts).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/** Local records that are diagnostics only: logged by the kernel, awaited by nothing. */
const DIAGNOSTIC_LOCAL = new Set([
  "peer.state",
  "remote.track",
  "answer.applied",
  "stats",
]);

/** Server events the kernel acts on when they arrive: tools, awaiting, the session. */
const ACTED_ON = new Set([
  "response.function_call_arguments.done",
  "response.output_item.done",
  "response.done",
  "session.created",
  "session.updated",
  "error",
]);

/**
 * How soon a record must reach the kernel:
 *   - "now": at the end of the current task: a server event the kernel acts on (a tool call,
 *     a finished response, the session's confirmation, an error) or a local record other
 *     than a diagnostic;
 *   - "window": any other server event, by a leading-edge throttle: at the end of the task
 *     after a quiet spell, else when the `batchMs` window after the last message closes, so
 *     a burst (a flood of deltas) costs one message per window;
 *   - "lazy": the echo of a client event, or a diagnostic: it rides with the next message, or
 *     goes within `lazyMs`. Every page message costs the kernel a dispatch and two status
 *     messages back, and one sent just before a server event delays that event's way in.
 */
export function urgency(
  dir: Direction,
  event: RealtimeEvent,
): "now" | "window" | "lazy" {
  const type = typeof event.type === "string" ? event.type : "";
  if (dir === "client") return "lazy";
  if (dir === "local") return DIAGNOSTIC_LOCAL.has(type) ? "lazy" : "now";
  return ACTED_ON.has(type) ? "now" : "window";
}

/**
 * Collects event records and ships them as one `events` message per batch. A comm message
 * costs far more than a record, so a burst of deltas rides in a handful of messages; the
 * short timer bounds the latency added to a lone event. Nothing is ever dropped: a batch is
 * flushed when full, when its timer fires, when the call changes, and on `flush()`; a batch
 * whose send throws is split so every record that can go does, and a record that cannot
 * (unserialisable) goes as a `send.refused` record under its own number, so the kernel's
 * numbering has no gap; when nothing can be sent (the comm is down) the records wait for
 * the next flush.
 */
export class EventBatcher {
  private seq = 0;
  private batch: EventRecord[] = [];
  private batchCall = 0;
  private timer: unknown = null;
  /** When the pending flush goes (Date.now() ms; -Infinity: at the end of this task). */
  private due = Infinity;
  /** The pending flush is a microtask (nothing to clear). */
  private inTask = false;
  private lastFlush = -Infinity;
  /** Batches that could not be sent at all, oldest first, tried again on the next flush. */
  private held: { call: number; records: EventRecord[] }[] = [];
  private readonly opts: Required<BatcherOptions>;

  constructor(opts: BatcherOptions) {
    this.opts = {
      batchMs: 4,
      lazyMs: 50,
      maxBatch: LIMITS.max_batch,
      now: epochMs,
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (h) =>
        globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
      page: newPageId(),
      // A caller passing `maxBatch: undefined` once turned off the size limit: batches over
      // the kernel's limit lost their tail there.
      ...given(opts),
      send: opts.send,
    };
    this.opts.maxBatch = Math.max(
      1,
      Math.min(this.opts.maxBatch, LIMITS.max_batch),
    );
  }

  /** Stamp an event with the next seq and the browser clock, queue it, return the record.
   *
   * When the batch goes depends on the most urgent record in it (see `urgency`): at the end
   * of the current task (so events of one task share a message), or by a leading-edge
   * throttle (at once after a quiet spell, else when the `batchMs` window after the last
   * message closes), or within `lazyMs`. Order is kept: a record never overtakes an earlier
   * one. */
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
      t_ms: validTime(tMs) ?? validTime(this.opts.now()) ?? epochMs(),
      // A non-object would reach Python as a record it must refuse: keep it, boxed.
      event: isObject(event)
        ? event
        : { type: "local.invalid", value: event ?? null },
    };
    this.batchCall = call;
    this.batch.push(record);
    if (this.batch.length >= this.opts.maxBatch) {
      this.flush();
    } else {
      const how = urgency(dir, record.event);
      this.flushBy(
        how === "now"
          ? -Infinity
          : how === "window"
            ? this.lastFlush + this.opts.batchMs
            : Date.now() + this.opts.lazyMs,
      );
    }
    return record;
  }

  /** Make sure the batch goes by `at` (Date.now() ms; now or earlier: end of this task). */
  private flushBy(at: number): void {
    if (this.timer !== null && this.due <= at) return; // an earlier flush is already due
    this.cancelTimer();
    const wait = at - Date.now();
    if (wait <= 0) {
      const token = {};
      this.timer = token;
      this.due = -Infinity;
      this.inTask = true;
      queueMicrotask(() => {
        if (this.timer !== token) return; // flushed (or rescheduled) meanwhile
        this.timer = null;
        this.flush();
      });
    } else {
      this.due = at;
      this.inTask = false;
      this.timer = this.opts.setTimeout(() => {
        this.timer = null;
        this.flush();
      }, wait);
    }
  }

  private cancelTimer(): void {
    if (this.timer !== null && !this.inTask) this.opts.clearTimeout(this.timer);
    this.timer = null; // a microtask token is simply forgotten
    this.due = Infinity;
  }

  /** Send whatever is pending now (also the cleanup path). */
  flush(): void {
    this.cancelTimer();
    if (this.batch.length === 0 && this.held.length === 0) return;
    const queue = this.held;
    this.held = [];
    if (this.batch.length > 0)
      queue.push({ call: this.batchCall, records: this.batch });
    this.batch = [];
    this.lastFlush = Date.now();
    for (let i = 0; i < queue.length; i++) {
      const { call, records } = queue[i]!;
      const left = this.deliver(call, records);
      if (left.length > 0) {
        // The kernel is out of reach: keep order, try again on the next flush.
        this.hold([{ call, records: left }, ...queue.slice(i + 1)]);
        return;
      }
    }
  }

  /** Records numbered but not yet delivered (in the batch, or held). */
  get pending(): number {
    return (
      this.batch.length + this.held.reduce((n, b) => n + b.records.length, 0)
    );
  }

  private trySend(call: number, records: EventRecord[]): unknown {
    try {
      this.opts.send({ kind: EVENTS, call, page: this.opts.page, records });
      return null;
    } catch (e) {
      return e ?? "send failed";
    }
  }

  /** Send `records` in order, halving on failure; returns those left when nothing goes. */
  private deliver(call: number, records: EventRecord[]): EventRecord[] {
    const err = this.trySend(call, records);
    if (err === null) return [];
    if (records.length > 1) {
      const mid = Math.ceil(records.length / 2);
      const left = this.deliver(call, records.slice(0, mid));
      if (left.length > 0) return [...left, ...records.slice(mid)];
      return this.deliver(call, records.slice(mid));
    }
    const rec = records[0]!;
    const refused: EventRecord = {
      seq: rec.seq, // the same number: the kernel's count has no hole, and says why
      dir: "local",
      t_ms: rec.t_ms,
      event: {
        type: "send.refused",
        seqs: [rec.seq],
        dir: rec.dir,
        types: [typeof rec.event.type === "string" ? rec.event.type : "?"],
        message: errorMessage(err),
      },
    };
    if (this.trySend(call, [refused]) === null) return [];
    return records; // even a plain record fails: the comm is down, not this record
  }

  private hold(batches: { call: number; records: EventRecord[] }[]): void {
    this.held = batches;
    let over =
      this.held.reduce((n, b) => n + b.records.length, 0) - MAX_HELD_RECORDS;
    if (over > 0)
      console.warn(
        `[realtime-widget] the kernel is out of reach: ${over} old records dropped`,
      );
    while (over > 0 && this.held.length > 0) {
      const first = this.held[0]!;
      const cut = Math.min(over, first.records.length);
      first.records.splice(0, cut);
      over -= cut;
      if (first.records.length === 0) this.held.shift();
    }
  }
}
