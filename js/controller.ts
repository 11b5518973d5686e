/**
 * One controller per widget model (made in `initialize`): it owns the call, the event
 * batcher and the store views draw from. Living per model rather than per view is what lets
 * two views share one call and lets a closed output leave the call running.
 */

import type { AnyModel } from "@anywidget/types";

import {
  ANSWER,
  CONNECT,
  DISCONNECT,
  EventBatcher,
  ICE,
  OFFER,
  PLAY,
  PROBE,
  RECORDING,
  REQUEST,
  SEND,
  SHOWN,
  SIGNAL_ERROR,
  STATE,
  STOP_CLIP,
  newPageId,
  parseToBrowser,
  type ConnectMsg,
  type Direction,
  type EventsMsg,
  type IceMsg,
  type LocalEvent,
  type RealtimeEvent,
  type ToKernelMsg,
} from "./bridge";
import { ownBuffer, payload, toBase64 } from "./bytes";
import { isLastChunk } from "./clips";
import { watchKernel } from "./kernel";
import { probeReply } from "./probe";
import type { RecordingChunk } from "./recorder";
import { PeerCall, type CallDeps, type CallOptions } from "./connection";
import { Store } from "./store";

/** The synced traits the front end reads (Python owns them; the view may set `muted`). */
export interface Traits {
  status: string;
  error: string;
  mic: boolean;
  muted: boolean;
  /** The kernel's per-turn latency figure (Python computes it; the view only draws it). */
  live_latency: LiveLatency;
  /** The kernel's tool calls, newest last (js/transcript.ts `parseToolCalls` reads them). */
  tool_calls: unknown;
  /** ipywidgets' Layout model: used only as a stable identity for this widget (see widget.ts). */
  layout: unknown;
  /** Record both sides of the call (recorder.ts), from now until it turns false. */
  record: boolean;
  /** What Python learnt about this host, e.g. {buffers_to_kernel: false} (see probe.ts). */
  host_info: Record<string, unknown>;
}

export interface LiveLatency {
  last_ms: number | null;
  median_ms: number | null;
  count: number;
}

export type WidgetModel = AnyModel<Traits>;

/** An early call (started on a click) that the kernel's `connect` has not numbered by then
 * is given up: the kernel did not start the call, or started it some other way. */
export const EARLY_BIND_MS = 10_000;

/** ICE servers the kernel sent ahead of a click, fresh until `until` (page clock). */
interface Prepared {
  iceServers: RTCIceServer[];
  gatherTimeoutMs: number;
  until: number;
}

/** A call started on a Connect click, waiting for the kernel's `connect` to number it. */
interface Early {
  call: PeerCall;
  iceServers: RTCIceServer[];
  mic: boolean;
  gatherTimeoutMs: number;
  /** Sets the number the call's hooks report under. */
  number(id: number): void;
  cancel(): void;
}

export interface ControllerOptions {
  batchMs?: number;
  maxBatch?: number;
  /** Passed through to each PeerCall (tests shorten these). */
  callOptions?: {
    gatherIdleMs?: number;
    statsIntervalMs?: number;
    audiblePollMs?: number;
    audibleRms?: number;
    suspendGraceMs?: number;
  };
  /** Resumed on a Connect click (user gesture), closed on dispose. */
  audio?: { resume(): void; close(): void };
}

export class Controller {
  readonly store = new Store();
  private call: PeerCall | null = null;
  /** ICE servers from the kernel's `ice` message, for the next click (one call each). */
  private prepared: Prepared | null = null;
  /** A call a click started before the kernel numbered it. */
  private early: Early | null = null;
  private readonly batcher: EventBatcher;
  private disposed = false;
  /** This front end's id: Python addresses the call's messages to the page that holds it. */
  readonly page = newPageId();
  private readonly unwatchKernel: () => void;

  constructor(
    private readonly model: WidgetModel,
    private readonly deps: CallDeps,
    private readonly opts: ControllerOptions = {},
  ) {
    this.batcher = new EventBatcher({
      page: this.page,
      // Not post(): a send that throws must reach the batcher, which splits the batch and
      // reports what cannot go. Serialising first makes a bad record throw here on every
      // host, not later inside the host's socket where nobody could tell.
      send: (msg: EventsMsg) => {
        JSON.stringify(msg);
        this.model.send(msg);
      },
      batchMs: opts.batchMs,
      maxBatch: opts.maxBatch,
      now: deps.now,
      setTimeout: deps.setTimeout,
      clearTimeout: deps.clearTimeout,
    });
    model.on("msg:custom", this.onCustom);
    model.on("change:muted", this.onMuted);
    model.on("change:record", this.onRecord);
    model.on("change:status", this.onStatus);
    // A call must not outlive its kernel (shutdown, restart, crash): hang up as disconnect()
    // would.
    this.unwatchKernel = watchKernel(model, this.onKernelGone);
    // The ICE servers ahead of a click (the kernel's `ice` message): one sent when the widget
    // was shown can come before this page listened.
    this.post({ kind: REQUEST, page: this.page, action: "prepare" });
  }

  /** The live call, if any (tests and the view's meters). */
  get current(): PeerCall | null {
    return this.call;
  }

  levels(): { mic: number; assistant: number } {
    return this.call?.levels() ?? { mic: 0, assistant: 0 };
  }

  // ---- requests from views: Python performs them so views and code share one path -----

  requestConnect(): void {
    // We are inside the click: the one moment a browser lets audio start unprompted.
    this.opts.audio?.resume();
    this.post({ kind: REQUEST, page: this.page, action: "connect" });
    // With ICE servers in hand, the call starts now (mic, peer connection, gathering) while
    // the request travels: the kernel's `connect` numbers it, and its offer goes then.
    this.startEarly();
  }

  requestDisconnect(): void {
    this.post({ kind: REQUEST, page: this.page, action: "disconnect" });
  }

  /** Stop the reply in flight (Python sends response.cancel + output_audio_buffer.clear). */
  requestCancel(): void {
    this.post({ kind: REQUEST, page: this.page, action: "cancel_response" });
  }

  sendText(text: string): void {
    this.post({ kind: REQUEST, page: this.page, action: "send_text", text });
  }

  /** Let a tool call held for approval run (the kernel runs it, as `w.approve` would). */
  requestApprove(callId: string): void {
    this.post({
      kind: REQUEST,
      page: this.page,
      action: "approve",
      call_id: callId,
    });
  }

  /** Refuse a held tool call; the kernel answers the model with `reason`. */
  requestReject(callId: string, reason: string): void {
    this.post({
      kind: REQUEST,
      page: this.page,
      action: "reject",
      call_id: callId,
      reason,
    });
  }

  /** A user gesture in a view: the one moment a suspended AudioContext may start. */
  resumeAudio(): void {
    this.opts.audio?.resume();
  }

  /** Hang up, ship every pending record, stop listening. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.call?.close();
    this.call = null;
    this.dropEarly();
    this.batcher.flush();
    this.model.off("msg:custom", this.onCustom);
    this.model.off("change:muted", this.onMuted);
    this.model.off("change:record", this.onRecord);
    this.model.off("change:status", this.onStatus);
    this.unwatchKernel();
    this.opts.audio?.close();
  }

  // ---- internals ---------------------------------------------------------------------

  private post(msg: ToKernelMsg, buffers?: ArrayBuffer[]): void {
    try {
      if (buffers) this.model.send(msg, undefined, buffers);
      else this.model.send(msg);
    } catch (e) {
      // The comm can already be gone during teardown; nothing useful to do but say so.
      console.warn("[realtime-widget] could not send to the kernel", e);
    }
  }

  private record(
    call: number,
    dir: Direction,
    event: RealtimeEvent,
    tMs?: number,
  ): void {
    const rec = this.batcher.add(call, dir, event, tMs);
    this.store.addRecord(call, rec);
  }

  /** A record for the view alone: the kernel sent and logged it (on the sideband). Numbered
   * below zero, apart from the log's records. */
  private show(
    call: number,
    dir: Direction,
    event: RealtimeEvent,
    tMs: number,
  ): void {
    this.store.addRecord(call, { seq: this.shownSeq--, dir, t_ms: tMs, event });
  }
  private shownSeq = -1;

  private recordLocal(call: number, event: LocalEvent): void {
    this.record(call, "local", event);
  }

  private readonly onKernelGone = (): void => {
    this.dropEarly();
    this.prepared = null;
    if (!this.call) return;
    this.recordLocal(this.call.id, { type: "kernel.gone" });
    this.call.close();
    this.call = null;
  };

  /** The kernel gave up on the call a click asked for (no key, ...): so does the page. */
  private readonly onStatus = (): void => {
    if (this.model.get("status") === "failed") this.dropEarly();
  };

  private readonly onMuted = (): void => {
    this.call?.setMuted(Boolean(this.model.get("muted")));
  };

  private readonly onRecord = (): void => {
    this.call?.setRecording(Boolean(this.model.get("record")));
  };

  /** A recording chunk goes as one buffer, or as base64 where Python found buffers dropped. */
  private sendRecording(call: number, c: RecordingChunk): void {
    // Its recording.started (or any record before it) reaches Python first.
    this.batcher.flush();
    const bytes = new Uint8Array(
      c.pcm.buffer,
      c.pcm.byteOffset,
      c.pcm.byteLength,
    );
    const info = this.model.get("host_info") as Record<string, unknown> | null;
    const inB64 = info?.buffers_to_kernel === false;
    this.post(
      {
        kind: RECORDING,
        call,
        page: this.page,
        seq: c.seq,
        t0_ms: c.t0_ms,
        sample_rate: c.sample_rate,
        frames: c.frames,
        b64: inB64 ? toBase64(bytes) : "",
      },
      inB64 ? undefined : [ownBuffer(bytes)],
    );
  }

  private readonly onCustom = (raw: unknown, buffers?: unknown[]): void => {
    if (this.disposed) return;
    const msg = parseToBrowser(raw);
    if (!msg) return;
    if (msg.page !== "" && msg.page !== this.page) return; // for another page showing the widget
    if (msg.kind === PROBE) {
      const { reply, buffers: echo } = probeReply(msg, buffers, this.page);
      this.post(reply, echo);
      return;
    }
    if (msg.kind === ICE) {
      this.prepare(msg);
      return;
    }
    const call = this.call && this.call.id === msg.call ? this.call : null;
    switch (msg.kind) {
      case CONNECT:
        this.connect(msg);
        break;
      case ANSWER:
      case SIGNAL_ERROR:
        if (!call)
          this.recordLocal(msg.call, {
            type: "stale.message",
            kind: msg.kind,
          });
        else if (msg.kind === ANSWER) void call.answer(msg.sdp);
        else call.signalError(msg.message);
        break;
      case SEND:
        if (call) call.send(msg.events);
        else
          this.recordLocal(msg.call, {
            type: "send.unsent",
            reason: "no such call",
            events: msg.events,
          });
        break;
      case SHOWN:
        call?.shown(msg.events);
        break;
      case DISCONNECT:
        if (call) call.close();
        // Confirm anyway, so Python never waits on a call this page does not have.
        else
          this.post({
            kind: STATE,
            call: msg.call,
            page: this.page,
            state: "disconnected",
            detail: "",
          });
        break;
      case PLAY:
        if (call)
          call.playClip({
            clipId: msg.clip_id,
            index: msg.index,
            last: msg.last,
            mime: msg.mime,
            duck: msg.duck,
            source: msg.source,
            bytes: payload(buffers, msg.b64),
          });
        // Refused once per clip, at its last chunk, so Python's handle ends with a reason.
        else if (isLastChunk(msg))
          this.recordLocal(msg.call, {
            type: "say.error",
            clip_id: msg.clip_id,
            message: `The clip was sent for call ${msg.call}, which is not this page's live call`,
          });
        break;
      case STOP_CLIP:
        call?.stopClip(msg.clip_id);
        break;
    }
  };

  private connect(msg: ConnectMsg): void {
    if (this.call?.id === msg.call && this.call.isLive) return; // a duplicate: keep the call
    // The kernel used the list it sent ahead (or another): it serves no further call.
    this.prepared = null;
    const early = this.takeEarly();
    // One call per widget: a new connect replaces (and hangs up) the old one first.
    this.call?.close();
    const id = msg.call;
    // Before the call's first record: flags of the previous call must not leak into this one.
    this.store.beginCall(id);
    this.store.setAudioNotice("");
    if (early && sameStart(early, msg)) {
      // The click's call, already gathering: it takes its number, and what it held goes.
      early.number(id);
      this.call = early.call;
      early.call.bind(id, msg.session_update, msg.queued);
      early.call.setMuted(Boolean(this.model.get("muted")));
      early.call.setRecording(Boolean(this.model.get("record")));
      return;
    }
    early?.call.discard(); // started with another list (or mic): start afresh with this one
    const { call } = this.makeCall({
      call: id,
      iceServers: msg.ice_servers,
      sessionUpdate: msg.session_update,
      queued: msg.queued,
      mic: msg.mic,
      gatherTimeoutMs: msg.gather_timeout_ms,
    });
    this.call = call;
    void call.start();
  }

  /** A call and its hooks; `number` sets the call number they report under (an early call
   * gets it from the kernel's `connect`). */
  private makeCall(
    o: Pick<
      CallOptions,
      | "call"
      | "iceServers"
      | "sessionUpdate"
      | "queued"
      | "mic"
      | "gatherTimeoutMs"
    >,
  ): { call: PeerCall; number(id: number): void } {
    let id = o.call ?? 0;
    const call: PeerCall = new PeerCall(
      {
        ...o,
        muted: Boolean(this.model.get("muted")),
        record: Boolean(this.model.get("record")),
        ...this.opts.callOptions,
      },
      this.deps,
      {
        record: (dir, event, tMs) => this.record(id, dir, event, tMs),
        show: (dir, event, tMs) => this.show(id, dir, event, tMs),
        state: (state, detail) => {
          // Records first: Python then sees e.g. the session.update before "connected".
          this.batcher.flush();
          this.store.setStatus(id, state, detail);
          this.post({ kind: STATE, call: id, page: this.page, state, detail });
        },
        offer: (sdp) => {
          this.batcher.flush();
          this.post({ kind: OFFER, call: id, page: this.page, sdp });
        },
        audioNotice: (text) => {
          if (this.call === call) this.store.setAudioNotice(text);
        },
        recording: (chunk) => this.sendRecording(id, chunk),
      },
    );
    return { call, number: (n) => (id = n) };
  }

  // ---- a call started on the click, ahead of the kernel's `connect` --------------------

  private prepare(msg: IceMsg): void {
    this.prepared = {
      iceServers: msg.ice_servers,
      gatherTimeoutMs: msg.gather_timeout_ms,
      until: this.deps.now() + msg.ttl_ms,
    };
  }

  private startEarly(): void {
    const p = this.prepared;
    if (!p || this.early || this.call?.isLive || this.deps.now() >= p.until)
      return;
    this.prepared = null; // one call per list, as in the kernel
    const mic = Boolean(this.model.get("mic"));
    const { call, number } = this.makeCall({
      call: null,
      iceServers: p.iceServers,
      sessionUpdate: {},
      queued: [],
      mic,
      gatherTimeoutMs: p.gatherTimeoutMs,
    });
    const h = this.deps.setTimeout(() => this.dropEarly(), EARLY_BIND_MS);
    this.early = {
      call,
      iceServers: p.iceServers,
      mic,
      gatherTimeoutMs: p.gatherTimeoutMs,
      number,
      cancel: () => this.deps.clearTimeout(h),
    };
    void call.start();
  }

  private takeEarly(): Early | null {
    const early = this.early;
    this.early = null;
    early?.cancel();
    return early;
  }

  private dropEarly(): void {
    this.takeEarly()?.call.discard();
  }
}

/** Did the kernel's `connect` ask for the call the click started (same ICE list, same mic,
 * same gathering deadline)? */
function sameStart(early: Early, msg: ConnectMsg): boolean {
  return (
    early.mic === msg.mic &&
    early.gatherTimeoutMs === msg.gather_timeout_ms &&
    JSON.stringify(early.iceServers) === JSON.stringify(msg.ice_servers)
  );
}
