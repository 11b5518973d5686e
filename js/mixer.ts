/**
 * One call's audio graph. The peer connection sends a single track, the output of this mix,
 * so clips can join or leave and the microphone can arrive late (or never) without
 * renegotiation:
 *
 *   mic ─ mute gain ─ duck gain ─┐
 *                                ├─ send bus ─┬─ MediaStreamDestination ─> the sent track
 *   clips (ClipPlayer) ─ clip bus┘            └─ recorder channel 0 ("service heard")
 *   remote track ───────────────┐
 *                               ├─ heard bus ─── recorder channel 1 ("user heard")
 *   back-channel ─ bc bus ──────┘  (and bc bus ─> speakers; the remote track plays in <audio>)
 *
 * A suspended AudioContext (no user gesture yet) is said in words (`audio.suspended` and a
 * notice in the view), never left as silent audio: clips wait, and the call sends the mic
 * track itself until the context runs (PeerCall swaps the sender's track).
 */

import type { LocalEvent } from "./bridge";
import { BackchannelPlayer } from "./backchannel";
import {
  ClipAssembler,
  ClipPlayer,
  type ClipChunk,
  type ClipPlayerOptions,
} from "./clips";
import { Recorder, type RecordingChunk } from "./recorder";
import type { Timers } from "./timers";
import {
  AudioClock,
  type AudioContextLike,
  type AudioDeps,
  type GainLike,
  type NodeLike,
  type StreamDestinationLike,
} from "./webaudio";

export const SUSPENDED_WORDS =
  "The browser has paused audio for this page until you click in it: click the widget " +
  "(or Enable audio) to start it. Until then clips wait and nothing is recorded; the " +
  "microphone still goes out.";

export interface CallAudioHooks {
  record(event: LocalEvent, tMs?: number): void;
  /** Words for the view about the audio ("" clears them). */
  notice(text: string): void;
  recording(chunk: RecordingChunk): void;
  /** The context started or stopped running. */
  running(running: boolean): void;
}

export interface CallAudioOptions {
  /** How long a suspended context may take to resume on its own before we say so. */
  suspendGraceMs?: number;
  clips?: ClipPlayerOptions;
  chunkMs?: number;
}

export class CallAudio {
  readonly ctx: AudioContextLike;
  readonly clock: AudioClock;
  readonly track: MediaStreamTrack;
  readonly stream: MediaStream;
  readonly clips: ClipPlayer;
  readonly backchannel: BackchannelPlayer;
  readonly recorder: Recorder;
  private readonly assembler = new ClipAssembler();
  private readonly dest: StreamDestinationLike;
  private readonly micMute: GainLike;
  private readonly micDuck: GainLike;
  private readonly clipBus: GainLike;
  private readonly sendBus: GainLike;
  private readonly heardBus: GainLike;
  private readonly bcBus: GainLike;
  private readonly merger: NodeLike;
  private micSource: NodeLike | null = null;
  private remoteSource: NodeLike | null = null;
  private readonly lifetime = new AbortController();
  private suspendedSaid = false;
  private closed = false;

  /** The call's audio, or null where the page has no Web Audio (the call then sends the mic). */
  static create(
    deps: AudioDeps,
    timers: Timers,
    timeout: (fn: () => void, ms: number) => () => void,
    now: () => number,
    hooks: CallAudioHooks,
    opts: CallAudioOptions = {},
  ): CallAudio | null {
    try {
      const ctx = deps.context();
      return ctx
        ? new CallAudio(ctx, deps, timers, timeout, now, hooks, opts)
        : null;
    } catch (e) {
      console.warn("[realtime-widget] no Web Audio graph for the call", e);
      return null;
    }
  }

  private constructor(
    ctx: AudioContextLike,
    deps: AudioDeps,
    timers: Timers,
    timeout: (fn: () => void, ms: number) => () => void,
    now: () => number,
    private readonly hooks: CallAudioHooks,
    opts: CallAudioOptions,
  ) {
    this.ctx = ctx;
    this.clock = new AudioClock(ctx, now);
    this.dest = ctx.createMediaStreamDestination();
    this.stream = this.dest.stream;
    const track = this.stream.getAudioTracks()[0];
    if (!track) throw new Error("the mix destination has no audio track");
    this.track = track;
    this.micMute = ctx.createGain();
    this.micDuck = ctx.createGain();
    this.clipBus = ctx.createGain();
    this.sendBus = ctx.createGain();
    this.heardBus = ctx.createGain();
    this.bcBus = ctx.createGain();
    this.merger = ctx.createChannelMerger(2);
    this.micMute.connect(this.micDuck);
    this.micDuck.connect(this.sendBus);
    this.clipBus.connect(this.sendBus);
    this.sendBus.connect(this.dest);
    this.sendBus.connect(this.merger, 0, 0);
    this.bcBus.connect(ctx.destination);
    this.bcBus.connect(this.heardBus);
    this.heardBus.connect(this.merger, 0, 1);

    const record = (ev: LocalEvent, t?: number) => hooks.record(ev, t);
    this.clips = new ClipPlayer(
      ctx,
      this.clipBus,
      this.micDuck.gain,
      this.clock,
      timers,
      record,
      opts.clips,
    );
    this.backchannel = new BackchannelPlayer(ctx, this.bcBus);
    this.recorder = new Recorder(
      ctx,
      this.merger,
      deps,
      this.clock,
      {
        record,
        chunk: (c) => hooks.recording(c),
        failed: (message) => {
          hooks.record({ type: "recording.error", message });
          hooks.notice(message);
        },
      },
      timeout,
      opts.chunkMs,
    );

    // Frequent readings refine the clock's offset (the smallest wins), and catch a stall soon.
    timers.interval(() => this.clock.sync(), 100);
    ctx.addEventListener("statechange", () => this.onState(), {
      signal: this.lifetime.signal,
    });
    if (ctx.state !== "running") {
      // Allowed without a gesture when the page already had one (a cell run by a key press).
      ctx.resume().catch(() => undefined);
      timers.timeout(() => this.saySuspended(), opts.suspendGraceMs ?? 300);
    }
  }

  get running(): boolean {
    return this.ctx.state === "running";
  }

  /** The microphone joins the mix (whenever getUserMedia answers). */
  attachMic(stream: MediaStream): void {
    if (this.closed || this.micSource) return;
    this.micSource = this.ctx.createMediaStreamSource(stream);
    this.micSource.connect(this.micMute);
  }

  /** Mute is a gain, separate from the duck, so a clip ending never unmutes the mic. */
  setMuted(muted: boolean): void {
    this.micMute.gain.setTargetAtTime(
      muted ? 0 : 1,
      this.ctx.currentTime,
      0.005,
    );
  }

  /** What the user hears from the service, tapped for the recording. */
  attachRemote(stream: MediaStream): void {
    if (this.closed || this.remoteSource) return;
    this.remoteSource = this.ctx.createMediaStreamSource(stream);
    this.remoteSource.connect(this.heardBus);
  }

  /** Every server event passes here; back-channel audio is played. */
  serverEvent(event: Record<string, unknown>): void {
    if (!this.closed) this.backchannel.handle(event);
  }

  /** The call is connected: clips may start (the service hears them from the first sample). */
  setLive(live: boolean): void {
    this.clips.setLive(live);
  }

  /** One `play` chunk from Python. */
  receiveClip(chunk: ClipChunk): void {
    if (this.closed) return;
    const done = this.assembler.add(chunk);
    if (!done) return;
    if ("error" in done)
      this.hooks.record({
        type: "say.error",
        clip_id: chunk.clipId,
        message: done.error,
      });
    else this.clips.enqueue(done.clip);
  }

  stopClip(id: string): void {
    if (this.clips.stop(id)) return;
    // Not all of it arrived yet: drop what did; the clip ends without having played.
    if (this.assembler.forget(id))
      this.hooks.record({
        type: "say.ended",
        clip_id: id,
        duration_ms: 0,
        stopped: true,
      });
  }

  setRecording(on: boolean): void {
    if (!this.closed) this.recorder.set(on);
  }

  close(): void {
    if (this.closed) return;
    this.clips.close();
    this.recorder.set(false); // its last chunk and recording.stopped follow shortly
    this.closed = true;
    this.lifetime.abort();
    this.backchannel.close();
    for (const n of [
      this.micSource,
      this.remoteSource,
      this.micMute,
      this.micDuck,
      this.clipBus,
      this.sendBus,
      this.bcBus,
      this.heardBus,
      this.dest,
    ])
      n?.disconnect();
    this.track.stop();
    if (this.suspendedSaid) this.hooks.notice("");
  }

  // ---- internals ---------------------------------------------------------------------

  private onState(): void {
    if (this.closed) return;
    if (this.running) {
      this.clock.sync();
      if (this.suspendedSaid) {
        this.suspendedSaid = false;
        this.hooks.notice("");
      }
      this.hooks.running(true);
      this.clips.pump();
    } else {
      this.hooks.running(false);
      // "interrupted" (Safari) or suspended after running: say so at once.
      this.saySuspended();
    }
  }

  private saySuspended(): void {
    if (this.closed || this.running || this.suspendedSaid) return;
    if (this.ctx.state === "closed") return;
    this.suspendedSaid = true;
    this.hooks.record({ type: "audio.suspended", message: SUSPENDED_WORDS });
    this.hooks.notice(SUSPENDED_WORDS);
  }
}
