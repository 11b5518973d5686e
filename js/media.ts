/**
 * The browser's side of a PeerCall's injected dependencies: real RTCPeerConnection,
 * getUserMedia, an <audio> element for playback and WebAudio level meters.
 * Everything is looked up lazily so importing this module (or `initialize`) touches nothing.
 */

import { epochMs } from "./bridge";
import type { AudioSink, CallDeps, LevelMeter } from "./connection";
import { recorderWorkletSource } from "./recorder";
import type { AudioContextLike, AudioDeps } from "./webaudio";

/**
 * One AudioContext per widget model, created on first use. Browsers start a context
 * "suspended" unless a user gesture is on the stack, so the Connect button calls `resume()`.
 */
export class AudioHub {
  private ctx: AudioContext | null = null;
  private worklet: Promise<void> | null = null;

  get(): AudioContext | null {
    if (this.ctx && this.ctx.state !== "closed") return this.ctx;
    this.worklet = null;
    const Ctor =
      globalThis.AudioContext ??
      (globalThis as unknown as { webkitAudioContext?: typeof AudioContext })
        .webkitAudioContext;
    if (!Ctor) return null;
    try {
      this.ctx = new Ctor();
    } catch {
      return null;
    }
    return this.ctx;
  }

  /** Call from a click handler: creating/resuming inside a gesture avoids a silent context. */
  resume(): void {
    const ctx = this.get();
    if (ctx && ctx.state === "suspended")
      void ctx.resume().catch(() => undefined);
  }

  close(): void {
    void this.ctx?.close().catch(() => undefined);
    this.ctx = null;
    this.worklet = null;
  }

  /** Load the recorder's worklet module into the context, once. */
  loadWorklet(ctx: AudioContext): Promise<void> {
    if (ctx === this.ctx && this.worklet) return this.worklet;
    const p = addModule(ctx, recorderWorkletSource());
    if (ctx === this.ctx) {
      this.worklet = p;
      p.catch(() => (this.worklet = null)); // a later attempt may succeed
    }
    return p;
  }

  /** The Web Audio pieces a call builds its mix, players and recorder from. */
  audioDeps(): AudioDeps {
    return {
      context: () => this.get() as unknown as AudioContextLike | null,
      loadWorklet: (ctx) => this.loadWorklet(ctx as unknown as AudioContext),
      createWorkletNode: (ctx, name, options) =>
        new AudioWorkletNode(ctx as unknown as AudioContext, name, options),
    };
  }
}

/** A module from source text: a blob: URL, or a data: URL where a page's policy refuses blobs. */
async function addModule(ctx: AudioContext, source: string): Promise<void> {
  if (!ctx.audioWorklet) throw new Error("this browser has no AudioWorklet");
  const blob = URL.createObjectURL(
    new Blob([source], { type: "text/javascript" }),
  );
  try {
    await ctx.audioWorklet.addModule(blob);
  } catch {
    await ctx.audioWorklet.addModule(
      `data:text/javascript;base64,${btoa(source)}`,
    );
  } finally {
    URL.revokeObjectURL(blob);
  }
}

/** RMS over the analyser's time-domain window (fftSize samples, ~21 ms at 48 kHz). */
export function webAudioMeter(
  hub: AudioHub,
  stream: MediaStream,
): LevelMeter | null {
  const ctx = hub.get();
  if (!ctx || stream.getAudioTracks().length === 0) return null;
  try {
    // Resume here too: a context made outside a gesture may still be allowed to run now.
    if (ctx.state === "suspended") void ctx.resume().catch(() => undefined);
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser); // not to ctx.destination: playback is the <audio> element's job
    const buf = new Float32Array(analyser.fftSize);
    return {
      rms() {
        analyser.getFloatTimeDomainData(buf);
        let sum = 0;
        for (let i = 0; i < buf.length; i++) sum += buf[i]! * buf[i]!;
        return Math.sqrt(sum / buf.length);
      },
      close() {
        source.disconnect();
        analyser.disconnect();
      },
    };
  } catch {
    return null;
  }
}

/**
 * Play a remote stream. Chrome also needs the stream attached to a media element before a
 * WebAudio source on it carries samples, so this element does double duty.
 */
export function audioElementSink(
  stream: MediaStream,
  onError: (e: unknown) => void,
): AudioSink {
  const el = new Audio();
  el.autoplay = true;
  el.srcObject = stream;
  el.play().catch(onError);
  return {
    stop() {
      el.pause();
      el.srcObject = null;
    },
  };
}

export function browserCallDeps(hub: AudioHub): CallDeps {
  return {
    createPeerConnection: (config) => new RTCPeerConnection(config),
    getUserMedia: (constraints) => {
      if (!navigator.mediaDevices?.getUserMedia) {
        // Insecure origins (plain http on a remote host) have no mediaDevices at all.
        const err = new Error(
          "navigator.mediaDevices is unavailable (needs https or localhost)",
        );
        err.name = "NotSupportedError";
        return Promise.reject(err);
      }
      return navigator.mediaDevices.getUserMedia(constraints);
    },
    createStream: (tracks) => new MediaStream(tracks),
    playRemote: audioElementSink,
    createMeter: (stream) => webAudioMeter(hub, stream),
    now: epochMs,
    audio: hub.audioDeps(),
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (h) => globalThis.clearTimeout(h as number),
    setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
    clearInterval: (h) => globalThis.clearInterval(h as number),
  };
}
