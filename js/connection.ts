/**
 * One WebRTC call (`PeerCall`): its lifecycle (start, offer, answer, open, close, fail), the
 * peer connection, the `oai-events` data channel, mic, remote audio and the outbox of client
 * events. No DOM: everything that touches the page or WebAudio is injected, so vitest drives
 * this with fakes and the browser build wires in the real thing. Helpers with their own
 * concern live beside it: gather.ts (when the offer goes), audible.ts (when a reply is first
 * heard), sampler.ts (the per-second stats), timers.ts (timers that die with the call).
 *
 * Every `local` event recorded here is documented, with its fields, in
 * src/realtime_widget/protocol.json ("local_events"); the LocalEvent type holds us to it.
 */

import type { Direction, LocalEvent, RealtimeEvent, Status } from "./bridge";
import { AudibleDetector, type LevelMeter } from "./audible";
import { isLastChunk, type ClipChunk } from "./clips";
import { CallAudio } from "./mixer";
import type { RecordingChunk } from "./recorder";
import type { AudioDeps } from "./webaudio";
import { DEFAULT_GATHER_IDLE_MS, IceGatherer, hasTurnServer } from "./gather";
import { StatsSampler } from "./sampler";
import { Timers, type Cancel, type TimerDeps } from "./timers";

export type { LevelMeter } from "./audible";

/** Whatever plays the remote audio (an <audio> element in the browser). */
export interface AudioSink {
  stop(): void;
}

export interface CallDeps extends TimerDeps {
  createPeerConnection(config: RTCConfiguration): RTCPeerConnection;
  getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream>;
  /** Wraps a remote track whose `track` event carried no stream. */
  createStream(tracks: MediaStreamTrack[]): MediaStream;
  /** Start playback; `onError` reports a refused play() (autoplay policy) for the log. */
  playRemote(stream: MediaStream, onError: (e: unknown) => void): AudioSink;
  createMeter(stream: MediaStream): LevelMeter | null;
  /** Epoch ms, the same clock as the event records. */
  now(): number;
  /** Web Audio for the outgoing mix, clips, back-channel and recording; without it (or where
   * the page has none) the call sends the microphone track itself. */
  audio?: AudioDeps;
}

export interface CallOptions {
  /** The kernel's number for the call; null for a call started on a Connect click before
   * the kernel's `connect` numbered it: it builds its connection at once, and what it
   * would tell the page (records, state, its offer) waits for `bind`. */
  call: number | null;
  iceServers: RTCIceServer[];
  sessionUpdate: RealtimeEvent;
  queued: RealtimeEvent[];
  mic: boolean;
  muted: boolean;
  /** The offer goes by then, gathered or not. */
  gatherTimeoutMs: number;
  /** Quiet time after the last ICE candidate that sends the offer early (see gather.ts). */
  gatherIdleMs?: number;
  statsIntervalMs?: number;
  /** How often the remote level is sampled while a response waits to become audible. */
  audiblePollMs?: number;
  /** RMS above which the assistant counts as audible (0.01 is about -40 dBFS). */
  audibleRms?: number;
  /** A peer connection "disconnected" this long is treated as lost. */
  disconnectGraceMs?: number;
  /** After the offer, the channel must open within this long or the call fails. */
  openTimeoutMs?: number;
  /** Record both sides from the start (the `record` trait). */
  record?: boolean;
  /** A suspended audio context gets this long to resume on its own before we say so. */
  suspendGraceMs?: number;
}

export interface CallHooks {
  record(dir: Direction, event: RealtimeEvent, tMs?: number): void;
  /** A record for the view only (the kernel sent it on the sideband and logged it). */
  show?(dir: Direction, event: RealtimeEvent, tMs: number): void;
  state(state: Status, detail: string): void;
  offer(sdp: string): void;
  /** Words about the page's audio for the view ("" clears them). */
  audioNotice?(text: string): void;
  /** A chunk of the call's recording, ready for the kernel. */
  recording?(chunk: RecordingChunk): void;
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

/** Why there is no microphone, in words a person can act on. */
export function micNotice(name: string, message: string): string {
  const why =
    name === "NotAllowedError" || name === "SecurityError"
      ? "access was denied by you, the browser or the host (VS Code's notebook view always denies it)"
      : name === "NotFoundError" || name === "OverconstrainedError"
        ? "no microphone was found"
        : name === "NotReadableError" || name === "AbortError"
          ? "the microphone could not be opened (another app may be using it)"
          : name === "NotSupportedError"
            ? "this page cannot use a microphone (it needs https or localhost)"
            : message || "the browser gave no reason";
  return `Microphone unavailable (${name}): ${why}. The call goes on without it; text turns and say() still work.`;
}

/** Client events that stop the agent's reply (the Stop button, Python's cancel_response). */
const STOPS = new Set(["response.cancel", "output_audio_buffer.clear"]);
const AUDIO_TRANSCRIPT_DELTAS = new Set([
  "response.output_audio_transcript.delta",
  "response.audio_transcript.delta",
]);

interface PlayingItem {
  responseId: string;
  itemId: string;
  /** When its audio began to play here (output_audio_buffer.started, or first heard). */
  startMs: number | null;
  /** Its first spoken words, the stand-in when nothing says when the audio began. */
  wordsMs: number | null;
  ended: boolean;
  cut: boolean;
}

function nonEmpty(x: unknown): string | undefined {
  return typeof x === "string" && x !== "" ? x : undefined;
}

/**
 * The assistant audio item now playing and since when, so a stop can tell the service how
 * much of it the user heard: `conversation.item.truncate` with `audio_end_ms` = from when its
 * audio started playing to now, as the OpenAI Agents SDK does. The model's context then
 * holds only what was heard.
 */
export class HeardAudio {
  private item: PlayingItem | null = null;

  server(ev: RealtimeEvent, t: number): void {
    const type = ev.type ?? "";
    const responseId = nonEmpty(ev.response_id);
    if (type === "response.output_item.added") {
      const item = ev.item as Record<string, unknown> | undefined;
      const id = nonEmpty(item?.id);
      if (id && responseId && item?.type === "message" && item.role !== "user")
        this.begin(responseId, id);
    } else if (
      type === "response.content_part.added" ||
      AUDIO_TRANSCRIPT_DELTAS.has(type)
    ) {
      const id = nonEmpty(ev.item_id);
      if (id && responseId && this.item?.itemId !== id)
        this.begin(responseId, id);
      if (this.item && AUDIO_TRANSCRIPT_DELTAS.has(type))
        this.item.wordsMs ??= t;
    } else if (type === "output_audio_buffer.started") {
      if (this.item && (!responseId || responseId === this.item.responseId))
        this.item.startMs ??= t;
    } else if (type === "output_audio_buffer.stopped") {
      // Played to its end: nothing to cut.
      if (this.item && (!responseId || responseId === this.item.responseId))
        this.item.ended = true;
    }
  }

  /** The reply was first heard at `t` (the audible detector). */
  audible(responseId: string, t: number): void {
    const it = this.item;
    if (it && it.responseId === responseId)
      it.startMs = it.startMs === null ? t : Math.min(it.startMs, t);
  }

  /** The truncate for a stop at `now`, once per item; null when nothing is playing. */
  cut(now: number): RealtimeEvent | null {
    const it = this.item;
    if (!it || it.ended || it.cut) return null;
    it.cut = true;
    const start = it.startMs ?? it.wordsMs;
    return {
      type: "conversation.item.truncate",
      item_id: it.itemId,
      content_index: 0,
      // Nothing started playing: the user heard none of it.
      audio_end_ms: start === null ? 0 : Math.max(0, Math.round(now - start)),
    };
  }

  private begin(responseId: string, itemId: string): void {
    this.item = {
      responseId,
      itemId,
      startMs: null,
      wordsMs: null,
      ended: false,
      cut: false,
    };
  }
}

/**
 * Make the offer and set it as the local description, which starts ICE gathering; returns
 * its SDP. One call where the browser can (setLocalDescription() with no argument): the offer
 * is made and applied on the browser's signalling thread, with no trip through the page's
 * busy main thread between them (about 10 ms earlier to gather, right after a click). Older
 * browsers refuse the bare call: they get createOffer, then setLocalDescription.
 */
export async function makeOffer(pc: RTCPeerConnection): Promise<string> {
  let implicit = true;
  try {
    await pc.setLocalDescription();
  } catch (e) {
    if (pc.localDescription) throw e; // it was applied: a real failure
    implicit = false;
  }
  if (implicit && pc.localDescription?.type === "offer")
    return pc.localDescription.sdp;
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  return offer.sdp ?? "";
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** The browser's end of one call (named apart from the emulator's call and the call number). */
export class PeerCall {
  private callId: number | null;
  /** What the call tells the page while it has no number (null once it has one). */
  private held: (() => void)[] | null;
  /** A call given up before it had a number tells nobody anything. */
  private dropped = false;
  private phase: Phase = "new";
  private pc: RTCPeerConnection | null = null;
  private dc: RTCDataChannel | null = null;
  private micStream: MediaStream | null = null;
  private remoteStream: MediaStream | null = null;
  private sink: AudioSink | null = null;
  private micMeter: LevelMeter | null = null;
  private remoteMeter: LevelMeter | null = null;
  /** The outgoing mix (null where the page has no Web Audio: the mic track goes out then). */
  private audio: CallAudio | null = null;
  private sender: RTCRtpSender | null = null;
  /** Client events waiting for the channel to open, in send order. */
  private outbox: RealtimeEvent[];
  /** A standing note for the user (e.g. mic unavailable) carried on every state message. */
  private notice = "";
  private muted: boolean;
  private candidates = 0;
  /** Aborted when the call ends: every listener and timer of the call goes with it. */
  private readonly lifetime = new AbortController();
  private readonly timers: Timers;
  private readonly audible: AudibleDetector;
  private readonly sampler: StatsSampler;
  private readonly heard = new HeardAudio();
  private cancelGrace: Cancel | null = null;
  private cancelOpen: Cancel | null = null;
  private readonly opts: Required<CallOptions>;

  constructor(
    opts: CallOptions,
    private readonly deps: CallDeps,
    private readonly hooks: CallHooks,
  ) {
    this.opts = {
      gatherIdleMs: DEFAULT_GATHER_IDLE_MS,
      statsIntervalMs: 1000,
      audiblePollMs: 10,
      audibleRms: 0.01,
      disconnectGraceMs: 5000,
      openTimeoutMs: 20000,
      record: false,
      suspendGraceMs: 300,
      ...opts,
    };
    this.callId = opts.call;
    this.held = opts.call === null ? [] : null;
    this.muted = opts.muted;
    // session.update goes first so the agent is configured before anything else reaches it.
    this.outbox =
      opts.call === null ? [] : [opts.sessionUpdate, ...opts.queued];
    this.timers = new Timers(deps, this.lifetime.signal);
    this.audible = new AudibleDetector(
      () => this.remoteMeter,
      this.timers,
      { pollMs: this.opts.audiblePollMs, threshold: this.opts.audibleRms },
      (responseId, rms) => {
        if (this.closed) return;
        this.heard.audible(responseId, this.deps.now());
        this.local({ type: "audio.audible", response_id: responseId, rms });
      },
    );
    this.sampler = new StatsSampler(
      {
        getStats: () => this.pc?.getStats() ?? null,
        active: () => this.phase === "connected",
        micLevel: () => this.levels().mic,
      },
      this.timers,
      this.opts.statsIntervalMs,
      (sample) => this.local(sample),
    );
  }

  /** The kernel's number for the call (0 until an early call is bound). */
  get id(): number {
    return this.callId ?? 0;
  }

  /** Does the call wait for its number (started on a click, ahead of `connect`)? */
  get unbound(): boolean {
    return this.held !== null;
  }

  /**
   * The kernel numbered the call: it takes its session and queued events, and everything it
   * held (records with their own times, its state, its offer) goes to the page in order.
   */
  bind(
    call: number,
    sessionUpdate: RealtimeEvent,
    queued: RealtimeEvent[],
  ): void {
    const held = this.held;
    if (held === null || this.dropped) return;
    this.callId = call;
    this.outbox = [sessionUpdate, ...queued, ...this.outbox];
    this.held = null;
    for (const f of held) f();
  }

  /** Give up a call that never got its number: release it and tell nobody. */
  discard(): void {
    if (this.held === null) return;
    this.held = [];
    this.dropped = true;
    if (!this.closed) {
      this.phase = "closed";
      this.release();
    }
  }

  /** The hooks, through the hold: while the call has no number, each call waits its turn. */
  private readonly out: CallHooks = {
    record: (dir, event, tMs) => {
      if (this.held === null) return this.hooks.record(dir, event, tMs);
      const t = tMs ?? this.deps.now();
      this.hold(() => this.hooks.record(dir, this.numbered(event), t));
    },
    show: (dir, event, tMs) =>
      this.hold(() => this.hooks.show?.(dir, event, tMs)),
    state: (state, detail) => this.hold(() => this.hooks.state(state, detail)),
    offer: (sdp) => this.hold(() => this.hooks.offer(sdp)),
    audioNotice: (text) => this.hold(() => this.hooks.audioNotice?.(text)),
    recording: (chunk) => this.hold(() => this.hooks.recording?.(chunk)),
  };

  private hold(f: () => void): void {
    if (this.dropped) return;
    if (this.held === null) f();
    else this.held.push(f);
  }

  /** call.start names its call: a held one gets the number it was bound to. */
  private numbered(event: RealtimeEvent): RealtimeEvent {
    return event.type === "call.start" ? { ...event, call: this.id } : event;
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
    this.out.state("connecting", "");

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
    const gatherer = new IceGatherer(
      pc,
      {
        deadlineMs: this.opts.gatherTimeoutMs,
        idleMs: this.opts.gatherIdleMs,
        expectRelay: hasTurnServer(this.opts.iceServers),
      },
      this.timers,
      this.lifetime.signal,
      this.deps.now,
    );

    this.audio = this.makeAudio();
    if (!this.audio && this.opts.record) this.noRecorder();
    let stream: MediaStream | null = null;
    if (this.audio) {
      // The mix track goes out from the start and the mic joins it when (if ever) it comes:
      // nothing waits on a permission prompt, and a denied mic still leaves say() working.
      if (this.opts.mic) void this.openMic().then((s) => this.useMic(s));
    } else {
      stream = this.opts.mic ? await this.openMic() : null;
      if (this.closed) {
        stream?.getTracks().forEach((t) => t.stop());
        return;
      }
    }
    try {
      if (this.audio) {
        this.sender = pc.addTrack(this.audio.track, this.audio.stream) ?? null;
        if (this.opts.record) this.audio.setRecording(true);
      } else if (stream) {
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

      const offerSdp = await makeOffer(pc);
      if (this.closed) return;

      const t0 = this.deps.now();
      const gathered = await gatherer.wait();
      if (!gathered || this.closed) return;
      this.candidates = gathered.candidates;
      const sdp = pc.localDescription?.sdp ?? offerSdp;
      this.local({
        type: "offer.sent",
        gather_ms: round1(this.deps.now() - t0),
        candidates: gathered.candidates,
        relay_candidates: gathered.relayCandidates,
        sent_by: gathered.sentBy,
        gathering_complete: gathered.sentBy === "complete",
      });
      // Without this a call whose ICE never connects would say "connecting" forever.
      this.cancelOpen = this.timers.timeout(() => {
        if (this.phase !== "connecting") return;
        const hint =
          this.candidates === 0 ? " (no ICE candidates were gathered)" : "";
        const secs = Math.round(this.opts.openTimeoutMs / 1000);
        this.fail(`Timed out: no connection ${secs} s after the offer${hint}`);
      }, this.opts.openTimeoutMs);
      this.out.offer(sdp);
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
      // A stop keeps in the model's context only the audio the user heard.
      if (events.some((ev) => STOPS.has(ev.type ?? ""))) {
        const cut = this.heard.cut(this.deps.now());
        if (cut) this.transmit(cut);
      }
    } else {
      this.outbox.push(...events);
    }
  }

  /** Client events the kernel sent on the sideband: the view shows them; a stop among them
   * still cuts the reply to what the user heard (the truncate goes on the data channel). */
  shown(events: RealtimeEvent[]): void {
    if (this.closed) return;
    const t = this.deps.now();
    for (const ev of events) this.out.show?.("client", ev, t);
    if (
      this.phase === "connected" &&
      events.some((ev) => STOPS.has(ev.type ?? ""))
    ) {
      const cut = this.heard.cut(this.deps.now());
      if (cut) this.transmit(cut);
    }
  }

  setMuted(muted: boolean): void {
    this.muted = muted;
    this.micStream?.getAudioTracks().forEach((t) => (t.enabled = !muted));
    this.audio?.setMuted(muted);
  }

  /** One chunk of a clip from Python, for the outgoing mix. */
  playClip(chunk: ClipChunk): void {
    if (this.audio && !this.closed) {
      this.audio.receiveClip(chunk);
      return;
    }
    // Refused once, at the clip's last chunk, so Python's handle ends with a reason.
    if (!isLastChunk({ index: chunk.index, last: chunk.last })) return;
    this.local({
      type: "say.error",
      clip_id: chunk.clipId,
      message: this.closed
        ? "The call has ended, so the clip cannot play"
        : "This page has no Web Audio, so clips cannot play",
    });
  }

  stopClip(clipId: string): void {
    this.audio?.stopClip(clipId);
  }

  /** Start or stop recording both sides (the `record` trait). */
  setRecording(on: boolean): void {
    this.opts.record = on;
    if (this.audio) this.audio.setRecording(on);
    else if (on && this.phase !== "new" && !this.closed) this.noRecorder();
  }

  /** Hang up on purpose: release everything, report `disconnected`. */
  close(): void {
    if (this.closed) return;
    this.phase = "closed";
    if (this.dc && this.dc.readyState === "open")
      this.local({ type: "channel.close", by: "local" });
    this.release();
    this.out.state("disconnected", "");
  }

  // ---- internals ---------------------------------------------------------------------

  private local(event: LocalEvent): void {
    this.out.record("local", event);
  }

  private fail(detail: string): void {
    if (this.closed) return;
    this.phase = "closed";
    this.local({ type: "call.failed", detail });
    this.release();
    this.out.state("failed", detail);
  }

  private async openMic(): Promise<MediaStream | null> {
    try {
      return await this.deps.getUserMedia(MIC_CONSTRAINTS);
    } catch (e) {
      const { name, message } = errorWords(e);
      if (this.closed) return null;
      this.local({ type: "mic.error", name, message });
      this.notice = micNotice(name, message);
      // The call no longer waits for the mic: it may already be connected by now.
      this.out.state(
        this.phase === "connected" ? "connected" : "connecting",
        this.notice,
      );
      return null;
    }
  }

  private noRecorder(): void {
    this.out.audioNotice?.(
      "Recording needs Web Audio, which this page does not have: nothing is recorded",
    );
  }

  private makeAudio(): CallAudio | null {
    if (!this.deps.audio) return null;
    return CallAudio.create(
      this.deps.audio,
      this.timers,
      // Not the call's timers: a recording's last chunk is awaited after the call ended.
      (fn, ms) => {
        const h = this.deps.setTimeout(fn, ms);
        return () => this.deps.clearTimeout(h);
      },
      this.deps.now,
      {
        record: (event, tMs) => this.out.record("local", event, tMs),
        notice: (text) => this.out.audioNotice?.(text),
        recording: (chunk) => this.out.recording?.(chunk),
        running: () => this.updateSender(),
      },
      { suspendGraceMs: this.opts.suspendGraceMs },
    );
  }

  /** The mic arrived (mix path): it joins the mix, or the call ended and it is released. */
  private useMic(stream: MediaStream | null): void {
    if (!stream) return;
    if (this.closed || !this.audio) {
      stream.getTracks().forEach((t) => t.stop());
      return;
    }
    this.micStream = stream;
    stream.getAudioTracks().forEach((t) => (t.enabled = !this.muted));
    this.audio.attachMic(stream);
    this.audio.setMuted(this.muted);
    this.micMeter = this.deps.createMeter(stream);
    this.updateSender();
  }

  /**
   * The sender carries the mix while the audio context runs; while it is suspended (no user
   * gesture yet) the mix is silent, so the mic track goes out itself rather than nothing.
   * replaceTrack needs no renegotiation.
   */
  private updateSender(): void {
    const sender = this.sender;
    const audio = this.audio;
    if (!sender || !audio || this.closed) return;
    const mic = this.micStream?.getAudioTracks()[0] ?? null;
    const want = audio.running || !mic ? audio.track : mic;
    if (sender.track === want) return;
    sender.replaceTrack(want).catch((e: unknown) => {
      console.warn("[realtime-widget] could not switch the sent track", e);
    });
  }

  private on<T extends EventTarget>(
    target: T,
    type: string,
    fn: (ev: Event) => void,
  ): void {
    target.addEventListener(type, fn, { signal: this.lifetime.signal });
  }

  private wirePeer(pc: RTCPeerConnection): void {
    this.on(pc, "connectionstatechange", () => {
      const state = pc.connectionState;
      this.local({ type: "peer.state", state, ice: pc.iceConnectionState });
      if (state === "failed") {
        this.fail("ICE connection failed");
      } else if (state === "disconnected") {
        // Often transient (a network blip); give ICE a moment to recover before giving up.
        this.cancelGrace ??= this.timers.timeout(() => {
          this.cancelGrace = null;
          if (pc.connectionState === "disconnected")
            this.fail("The connection was lost");
        }, this.opts.disconnectGraceMs);
      } else {
        this.cancelGrace?.();
        this.cancelGrace = null;
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
      this.audio?.attachRemote(stream);
      this.local({ type: "remote.track", kind: track.kind, id: track.id });
    });
  }

  private wireChannel(dc: RTCDataChannel): void {
    this.on(dc, "open", () => {
      if (this.closed) return;
      this.phase = "connected";
      this.cancelOpen?.();
      this.cancelOpen = null;
      this.local({ type: "channel.open", label: dc.label });
      const queued = this.outbox;
      this.outbox = [];
      for (const ev of queued) this.transmit(ev);
      this.sampler.start();
      this.audio?.setLive(true);
      this.out.state("connected", this.notice);
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
    this.out.record("client", event, t);
  }

  private receive(data: unknown): void {
    const t = this.deps.now();
    let text: string;
    if (typeof data === "string") text = data;
    else if (data instanceof ArrayBuffer) text = new TextDecoder().decode(data);
    else if (ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
    else text = String(data);
    const parseError = (error: string): LocalEvent => ({
      type: "parse_error",
      error,
      raw: text,
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      this.out.record("local", parseError(errorWords(e).message), t);
      return;
    }
    if (
      typeof parsed !== "object" ||
      parsed === null ||
      Array.isArray(parsed)
    ) {
      this.out.record("local", parseError("not a JSON object"), t);
      return;
    }
    const event = parsed as RealtimeEvent;
    this.heard.server(event, t);
    this.out.record("server", event, t);
    this.audio?.serverEvent(event);
    if (event.type === "response.created") {
      const response = event.response as { id?: unknown } | undefined;
      if (typeof response?.id === "string" && response.id !== "")
        this.audible.responseCreated(response.id);
    }
  }

  // ---- resources ---------------------------------------------------------------------

  private release(): void {
    // Listeners, timers, the gathering wait, the audible poll and the sampler all end here.
    this.lifetime.abort();
    // Clips end (say.ended, stopped) and the recording closes before the channel goes.
    this.audio?.close();
    this.audio = null;
    this.sender = null;
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
