/**
 * One WebRTC call: peer connection, `oai-events` data channel, mic, remote audio and the
 * queue of client events. No DOM: everything that touches the page or WebAudio is injected,
 * so vitest drives this with fakes and the browser build wires in the real thing.
 *
 * Local events (records with dir "local"; Python logs them beside client/server events):
 *   call.start      call, mic, ice_urls (URLs only, never credentials), gather_timeout_ms
 *   mic.error       name, message (getUserMedia refused: the call goes on receive-only)
 *   offer.sent      gather_ms, candidates, gathering_complete (false = deadline hit)
 *   answer.applied  -
 *   peer.state      state (connectionState), ice (iceConnectionState)
 *   remote.track    kind, id
 *   channel.open    label
 *   channel.close   by: "local" | "remote"
 *   channel.error   name, message
 *   audio.audible   response_id, rms: the reply first heard (remote RMS over threshold)
 *   audio.play_error name, message (autoplay refused)
 *   stats           rtt_ms, jitter_ms, packets_lost, packets_received, audio_level,
 *                   total_audio_energy, mic_level (numbers or null), every second
 *   parse_error     error, raw: a channel message that was not a JSON object
 *   send.error      name, message, event: the channel refused a client event
 *   send.unsent     reason, events: client events that never went out
 *   call.failed     detail (same words as the failed state message)
 * The controller adds `stale.message` {kind} for an answer/signal_error of an old call.
 */

import type { Direction, RealtimeEvent, Status } from "./bridge";
import { summarizeStats } from "./stats";

/** RMS level of a stream (0..1), read on demand so nothing runs when nobody asks. */
export interface LevelMeter {
  rms(): number;
  close(): void;
}

/** Whatever plays the remote audio (an <audio> element in the browser). */
export interface AudioSink {
  stop(): void;
}

type TimerHandle = unknown;

export interface CallDeps {
  createPeerConnection(config: RTCConfiguration): RTCPeerConnection;
  getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream>;
  /** Wraps a remote track whose `track` event carried no stream. */
  createStream(tracks: MediaStreamTrack[]): MediaStream;
  /** Start playback; `onError` reports a refused play() (autoplay policy) for the log. */
  playRemote(stream: MediaStream, onError: (e: unknown) => void): AudioSink;
  createMeter(stream: MediaStream): LevelMeter | null;
  /** Epoch ms, the same clock as the event records. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

export interface CallOptions {
  call: number;
  iceServers: RTCIceServer[];
  sessionUpdate: RealtimeEvent;
  queued: RealtimeEvent[];
  mic: boolean;
  muted: boolean;
  gatherTimeoutMs: number;
  statsIntervalMs?: number;
  /** How often the remote level is sampled while a response waits to become audible. */
  audiblePollMs?: number;
  /** RMS above which the assistant counts as audible (0.01 is about -40 dBFS). */
  audibleRms?: number;
  /** A peer connection "disconnected" this long is treated as lost. */
  disconnectGraceMs?: number;
  /** After the offer, the channel must open within this long or the call fails. */
  openTimeoutMs?: number;
}

export interface CallHooks {
  record(dir: Direction, event: RealtimeEvent, tMs?: number): void;
  state(state: Status, detail: string): void;
  offer(sdp: string): void;
}

export const MIC_CONSTRAINTS: MediaStreamConstraints = {
  audio: {
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
  },
  video: false,
};

export const CHANNEL_LABEL = "oai-events";

type Phase = "new" | "connecting" | "connected" | "closed";

interface PendingAudible {
  responseId: string;
  /** The remote was silent at some point since response.created, so what we hear next is new. */
  sawSilence: boolean;
}

function errorWords(e: unknown): { name: string; message: string } {
  if (
    e instanceof Error ||
    (typeof e === "object" && e !== null && "message" in e)
  ) {
    const err = e as { name?: unknown; message?: unknown };
    return {
      name: String(err.name ?? "Error"),
      message: String(err.message ?? ""),
    };
  }
  return { name: "Error", message: String(e) };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

export class Call {
  readonly id: number;
  private phase: Phase = "new";
  private pc: RTCPeerConnection | null = null;
  private dc: RTCDataChannel | null = null;
  private micStream: MediaStream | null = null;
  private remoteStream: MediaStream | null = null;
  private sink: AudioSink | null = null;
  private micMeter: LevelMeter | null = null;
  private remoteMeter: LevelMeter | null = null;
  /** Client events waiting for the channel to open, in send order. */
  private outbox: RealtimeEvent[];
  /** A standing note for the user (e.g. mic unavailable) carried on every state message. */
  private notice = "";
  private muted: boolean;
  private candidates = 0;
  private listeners = new AbortController();
  private timers = new Set<TimerHandle>();
  private intervals = new Set<TimerHandle>();
  private endGathering: ((complete: boolean) => void) | null = null;
  private statsTimer: TimerHandle = null;
  private statsInFlight = false;
  private audibleTimer: TimerHandle = null;
  private pendingAudible: PendingAudible | null = null;
  private audibleLogged = new Set<string>();
  private graceTimer: TimerHandle = null;
  private openTimer: TimerHandle = null;
  private readonly opts: Required<CallOptions>;

  constructor(
    opts: CallOptions,
    private readonly deps: CallDeps,
    private readonly hooks: CallHooks,
  ) {
    this.opts = {
      statsIntervalMs: 1000,
      audiblePollMs: 10,
      audibleRms: 0.01,
      disconnectGraceMs: 5000,
      openTimeoutMs: 20000,
      ...opts,
    };
    this.id = opts.call;
    this.muted = opts.muted;
    // session.update goes first so the agent is configured before anything else reaches it.
    this.outbox = [opts.sessionUpdate, ...opts.queued];
  }

  /** True until the call is closed or failed. */
  get isLive(): boolean {
    return !this.closed;
  }

  /** A getter, not a field test, so TS does not narrow it away across awaits. */
  private get closed(): boolean {
    return this.phase === "closed";
  }

  /** Current levels for the meters (0 when there is nothing to measure). */
  levels(): { mic: number; assistant: number } {
    return {
      mic: this.micMeter && !this.muted ? this.micMeter.rms() : 0,
      assistant: this.remoteMeter ? this.remoteMeter.rms() : 0,
    };
  }

  /** Build the connection and send the offer; resolves once the offer is out (or we failed). */
  async start(): Promise<void> {
    if (this.phase !== "new") return;
    this.phase = "connecting";
    this.local({
      type: "call.start",
      call: this.id,
      mic: this.opts.mic,
      // URLs only: TURN usernames and credentials must never reach the event log.
      ice_urls: this.opts.iceServers.flatMap((s) =>
        Array.isArray(s.urls) ? s.urls : [s.urls],
      ),
      gather_timeout_ms: this.opts.gatherTimeoutMs,
    });
    this.hooks.state("connecting", "");

    let pc: RTCPeerConnection;
    try {
      pc = this.deps.createPeerConnection({ iceServers: this.opts.iceServers });
    } catch (e) {
      this.fail(
        `Could not create the peer connection: ${errorWords(e).message}`,
      );
      return;
    }
    this.pc = pc;
    this.wirePeer(pc);

    const stream = this.opts.mic ? await this.openMic() : null;
    if (this.closed) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    try {
      if (stream) {
        this.micStream = stream;
        for (const track of stream.getAudioTracks()) {
          track.enabled = !this.muted;
          pc.addTrack(track, stream);
        }
        this.micMeter = this.deps.createMeter(stream);
      } else {
        // Still ask for the assistant's audio when we have nothing to send.
        pc.addTransceiver("audio", { direction: "recvonly" });
      }
      const dc = pc.createDataChannel(CHANNEL_LABEL, { ordered: true });
      this.dc = dc;
      this.wireChannel(dc);

      const offer = await pc.createOffer();
      if (this.closed) return;
      await pc.setLocalDescription(offer);
      if (this.closed) return;

      const t0 = this.deps.now();
      const complete = await this.gathered(pc);
      if (this.closed) return;
      const sdp = pc.localDescription?.sdp ?? offer.sdp ?? "";
      this.local({
        type: "offer.sent",
        gather_ms: round1(this.deps.now() - t0),
        candidates: this.candidates,
        gathering_complete: complete,
      });
      // Without this a call whose ICE never connects would say "connecting" forever.
      this.openTimer = this.timeout(() => {
        this.openTimer = null;
        if (this.phase !== "connecting") return;
        const hint =
          this.candidates === 0 ? " (no ICE candidates were gathered)" : "";
        const secs = Math.round(this.opts.openTimeoutMs / 1000);
        this.fail(`Timed out: no connection ${secs} s after the offer${hint}`);
      }, this.opts.openTimeoutMs);
      this.hooks.offer(sdp);
    } catch (e) {
      this.fail(`Could not create the WebRTC offer: ${errorWords(e).message}`);
    }
  }

  /** Apply the provider's SDP answer relayed by Python. */
  async answer(sdp: string): Promise<void> {
    const pc = this.pc;
    if (!pc || this.closed) return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
      if (!this.closed) this.local({ type: "answer.applied" });
    } catch (e) {
      this.fail(`The SDP answer was rejected: ${errorWords(e).message}`);
    }
  }

  /** Signalling failed on the Python side (HTTP error, bad key, ...). */
  signalError(message: string): void {
    this.fail(message || "Signalling failed");
  }

  /** Queue client events; they go out in order once the channel is open. */
  send(events: RealtimeEvent[]): void {
    if (this.closed) {
      // Keep them in the log so nothing Python sent silently vanishes.
      this.local({ type: "send.unsent", reason: "call closed", events });
      return;
    }
    if (this.phase === "connected") {
      // After "open" we send at once; a channel that is closing refuses, and that is logged.
      for (const ev of events) this.transmit(ev);
    } else {
      this.outbox.push(...events);
    }
  }

  setMuted(muted: boolean): void {
    this.muted = muted;
    this.micStream?.getAudioTracks().forEach((t) => (t.enabled = !muted));
  }

  /** Hang up on purpose: release everything, report `disconnected`. */
  close(): void {
    if (this.closed) return;
    this.phase = "closed";
    if (this.dc && this.dc.readyState === "open")
      this.local({ type: "channel.close", by: "local" });
    this.release();
    this.hooks.state("disconnected", "");
  }

  // ---- internals ---------------------------------------------------------------------

  private local(event: RealtimeEvent): void {
    this.hooks.record("local", event);
  }

  private fail(detail: string): void {
    if (this.closed) return;
    this.phase = "closed";
    this.local({ type: "call.failed", detail });
    this.release();
    this.hooks.state("failed", detail);
  }

  private async openMic(): Promise<MediaStream | null> {
    try {
      return await this.deps.getUserMedia(MIC_CONSTRAINTS);
    } catch (e) {
      const { name, message } = errorWords(e);
      this.local({ type: "mic.error", name, message });
      this.notice = `Microphone unavailable (${name}): continuing without mic; text turns still work`;
      if (!this.closed) this.hooks.state("connecting", this.notice);
      return null;
    }
  }

  private on<T extends EventTarget>(
    target: T,
    type: string,
    fn: (ev: Event) => void,
  ): void {
    target.addEventListener(type, fn, { signal: this.listeners.signal });
  }

  private wirePeer(pc: RTCPeerConnection): void {
    this.on(pc, "icecandidate", (ev) => {
      const cand = (ev as RTCPeerConnectionIceEvent).candidate;
      if (cand) this.candidates++;
      // A null candidate is the end-of-gathering marker in browsers that skip the state event.
      else this.endGathering?.(true);
    });
    this.on(pc, "icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") this.endGathering?.(true);
    });
    this.on(pc, "connectionstatechange", () => {
      const state = pc.connectionState;
      this.local({ type: "peer.state", state, ice: pc.iceConnectionState });
      if (state === "failed") {
        this.fail("ICE connection failed");
      } else if (state === "disconnected") {
        // Often transient (a network blip); give ICE a moment to recover before giving up.
        if (this.graceTimer === null) {
          this.graceTimer = this.timeout(() => {
            this.graceTimer = null;
            if (pc.connectionState === "disconnected")
              this.fail("The connection was lost");
          }, this.opts.disconnectGraceMs);
        }
      } else if (this.graceTimer !== null) {
        this.clearTimeout(this.graceTimer);
        this.graceTimer = null;
      }
    });
    this.on(pc, "track", (ev) => {
      const { track, streams } = ev as RTCTrackEvent;
      if (track.kind !== "audio" || this.remoteStream) return;
      const stream = streams[0] ?? this.deps.createStream([track]);
      this.remoteStream = stream;
      this.sink = this.deps.playRemote(stream, (e) => {
        if (!this.closed)
          this.local({ type: "audio.play_error", ...errorWords(e) });
      });
      this.remoteMeter = this.deps.createMeter(stream);
      this.local({ type: "remote.track", kind: track.kind, id: track.id });
    });
  }

  private wireChannel(dc: RTCDataChannel): void {
    this.on(dc, "open", () => {
      if (this.closed) return;
      this.phase = "connected";
      if (this.openTimer !== null) this.clearTimeout(this.openTimer);
      this.openTimer = null;
      this.local({ type: "channel.open", label: dc.label });
      const queued = this.outbox;
      this.outbox = [];
      for (const ev of queued) this.transmit(ev);
      this.startStats();
      this.hooks.state("connected", this.notice);
    });
    this.on(dc, "message", (ev) => this.receive((ev as MessageEvent).data));
    this.on(dc, "error", (ev) => {
      const err = (ev as RTCErrorEvent).error as unknown;
      this.local({
        type: "channel.error",
        ...errorWords(err ?? "data channel error"),
      });
    });
    this.on(dc, "close", () => {
      if (this.closed) return;
      this.local({ type: "channel.close", by: "remote" });
      this.fail("The data channel closed unexpectedly");
    });
  }

  /** Resolve true when gathering completes, false at the deadline (or if the call closes). */
  private gathered(pc: RTCPeerConnection): Promise<boolean> {
    if (pc.iceGatheringState === "complete") return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = this.timeout(
        () => finish(false),
        this.opts.gatherTimeoutMs,
      );
      const finish = (complete: boolean) => {
        this.endGathering = null;
        this.clearTimeout(timer);
        resolve(complete);
      };
      this.endGathering = finish;
    });
  }

  private transmit(event: RealtimeEvent): void {
    const dc = this.dc;
    const t = this.deps.now();
    try {
      if (!dc) throw new Error("no data channel");
      dc.send(JSON.stringify(event));
    } catch (e) {
      this.local({ type: "send.error", ...errorWords(e), event });
      return;
    }
    this.hooks.record("client", event, t);
  }

  private receive(data: unknown): void {
    const t = this.deps.now();
    let text: string;
    if (typeof data === "string") text = data;
    else if (data instanceof ArrayBuffer) text = new TextDecoder().decode(data);
    else if (ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
    else text = String(data);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      this.hooks.record(
        "local",
        { type: "parse_error", error: errorWords(e).message, raw: text },
        t,
      );
      return;
    }
    if (
      typeof parsed !== "object" ||
      parsed === null ||
      Array.isArray(parsed)
    ) {
      this.hooks.record(
        "local",
        { type: "parse_error", error: "not a JSON object", raw: text },
        t,
      );
      return;
    }
    const event = parsed as RealtimeEvent;
    this.hooks.record("server", event, t);
    if (event.type === "response.created") this.awaitAudible(event);
  }

  // ---- browser-side truth: when the reply is actually heard --------------------------

  private awaitAudible(event: RealtimeEvent): void {
    const response = event.response as { id?: unknown } | undefined;
    const id = typeof response?.id === "string" ? response.id : null;
    if (!id || this.audibleLogged.has(id)) return;
    // If the previous reply is still playing, wait for a gap so its tail is not credited here.
    const now = this.remoteMeter ? this.remoteMeter.rms() : 0;
    this.pendingAudible = {
      responseId: id,
      sawSilence: now < this.opts.audibleRms,
    };
    if (this.audibleTimer === null) {
      this.audibleTimer = this.interval(
        () => this.pollAudible(),
        this.opts.audiblePollMs,
      );
    }
  }

  private pollAudible(): void {
    const pending = this.pendingAudible;
    if (!pending || this.closed) {
      this.stopAudiblePoll();
      return;
    }
    if (!this.remoteMeter) return; // no remote track yet
    const rms = this.remoteMeter.rms();
    if (rms < this.opts.audibleRms) {
      pending.sawSilence = true;
    } else if (pending.sawSilence) {
      this.local({
        type: "audio.audible",
        response_id: pending.responseId,
        rms: round1(rms * 1e4) / 1e4,
      });
      this.audibleLogged.add(pending.responseId);
      this.pendingAudible = null;
      this.stopAudiblePoll();
    }
  }

  private stopAudiblePoll(): void {
    if (this.audibleTimer !== null) {
      this.clearInterval(this.audibleTimer);
      this.audibleTimer = null;
    }
  }

  // ---- stats -------------------------------------------------------------------------

  private startStats(): void {
    if (this.statsTimer !== null) return;
    this.statsTimer = this.interval(
      () => void this.sampleStats(),
      this.opts.statsIntervalMs,
    );
  }

  private async sampleStats(): Promise<void> {
    const pc = this.pc;
    // Skip a tick rather than pile up getStats calls on a slow machine.
    if (!pc || this.statsInFlight || this.phase !== "connected") return;
    this.statsInFlight = true;
    try {
      const report = await pc.getStats();
      if (this.phase !== "connected") return;
      this.local({
        type: "stats",
        ...summarizeStats(report),
        mic_level: this.levels().mic,
      });
    } catch {
      // Stats are best-effort; a failed sample is not worth an event.
    } finally {
      this.statsInFlight = false;
    }
  }

  // ---- resources ---------------------------------------------------------------------

  private timeout(fn: () => void, ms: number): TimerHandle {
    const h = this.deps.setTimeout(() => {
      this.timers.delete(h);
      fn();
    }, ms);
    this.timers.add(h);
    return h;
  }

  private clearTimeout(h: TimerHandle): void {
    this.timers.delete(h);
    this.deps.clearTimeout(h);
  }

  private interval(fn: () => void, ms: number): TimerHandle {
    const h = this.deps.setInterval(fn, ms);
    this.intervals.add(h);
    return h;
  }

  private clearInterval(h: TimerHandle): void {
    this.intervals.delete(h);
    this.deps.clearInterval(h);
  }

  private release(): void {
    this.listeners.abort();
    this.endGathering?.(false);
    for (const h of this.timers) this.deps.clearTimeout(h);
    for (const h of this.intervals) this.deps.clearInterval(h);
    this.timers.clear();
    this.intervals.clear();
    this.statsTimer =
      this.audibleTimer =
      this.graceTimer =
      this.openTimer =
        null;
    this.pendingAudible = null;
    if (this.outbox.length > 0) {
      // Never opened: say which events did not go, rather than dropping them silently.
      this.local({
        type: "send.unsent",
        reason: "channel never opened",
        events: this.outbox,
      });
      this.outbox = [];
    }
    try {
      this.dc?.close();
    } catch {
      /* already closed */
    }
    try {
      this.pc?.close();
    } catch {
      /* already closed */
    }
    this.micStream?.getTracks().forEach((t) => t.stop());
    this.remoteStream?.getTracks().forEach((t) => t.stop());
    this.sink?.stop();
    this.micMeter?.close();
    this.remoteMeter?.close();
    this.dc = null;
    this.pc = null;
    this.micStream = this.remoteStream = null;
    this.sink = null;
    this.micMeter = this.remoteMeter = null;
  }
}
