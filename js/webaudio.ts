/**
 * The slice of Web Audio the call's audio uses, as structural types (the browser's
 * AudioContext satisfies them; tests/js/audiofakes.ts implements them), and the clock that
 * maps the audio context's time onto the event log's clock.
 */

export interface ParamLike {
  value: number;
  setValueAtTime(value: number, time: number): unknown;
  setTargetAtTime(target: number, time: number, timeConstant: number): unknown;
  cancelScheduledValues(time: number): unknown;
}

export interface NodeLike {
  connect(destination: NodeLike, output?: number, input?: number): unknown;
  disconnect(): void;
}

export interface GainLike extends NodeLike {
  readonly gain: ParamLike;
}

export interface BufferLike {
  readonly duration: number;
  readonly length: number;
  readonly sampleRate: number;
  readonly numberOfChannels: number;
  getChannelData(channel: number): Float32Array;
}

export interface BufferSourceLike extends NodeLike {
  buffer: BufferLike | null;
  onended: ((ev: Event) => unknown) | null;
  start(when?: number): void;
  stop(when?: number): void;
}

export interface StreamDestinationLike extends NodeLike {
  readonly stream: MediaStream;
}

export interface MessagePortLike {
  postMessage(message: unknown): void;
  onmessage: ((ev: MessageEvent) => unknown) | null;
}

export interface WorkletNodeLike extends NodeLike {
  readonly port: MessagePortLike;
}

export interface AudioContextLike {
  readonly state: AudioContextState | string;
  readonly currentTime: number;
  readonly sampleRate: number;
  readonly destination: NodeLike;
  createGain(): GainLike;
  createMediaStreamDestination(): StreamDestinationLike;
  createMediaStreamSource(stream: MediaStream): NodeLike;
  createBufferSource(): BufferSourceLike;
  createBuffer(
    channels: number,
    length: number,
    sampleRate: number,
  ): BufferLike;
  createChannelMerger(inputs: number): NodeLike;
  decodeAudioData(data: ArrayBuffer): Promise<BufferLike>;
  resume(): Promise<void>;
  addEventListener(
    type: "statechange",
    fn: () => void,
    opts?: AddEventListenerOptions,
  ): void;
}

/** What a call needs from the page to build its audio (media.ts gives the browser's). */
export interface AudioDeps {
  /** The widget's AudioContext (made on first use), or null where Web Audio is missing. */
  context(): AudioContextLike | null;
  /** Load the recorder's worklet module into `ctx` (once per context). */
  loadWorklet(ctx: AudioContextLike): Promise<void>;
  createWorkletNode(
    ctx: AudioContextLike,
    name: string,
    options: AudioWorkletNodeOptions,
  ): WorkletNodeLike;
}

/**
 * Maps audio-context seconds to the log clock (epoch ms, what the batcher stamps records with).
 *
 * The offset is read on the main thread as `now - currentTime`; `currentTime` lags the audio
 * thread by up to one render callback, so every reading is at least the true offset and the
 * smallest one seen is the best estimate. A reading far above it means the audio clock stood
 * still while the wall clock ran (a suspended context): the mapping jumps to the new offset.
 */
export class AudioClock {
  private offset: number | null = null;

  constructor(
    private readonly ctx: { readonly currentTime: number },
    private readonly now: () => number,
    /** A reading this far above the estimate is a jump, not jitter. */
    readonly jumpMs = 100,
  ) {}

  /** Take a reading; returns how far the mapping jumped forward (ms), usually 0. */
  sync(): number {
    const reading = this.now() - this.ctx.currentTime * 1000;
    if (this.offset === null) {
      this.offset = reading;
      return 0;
    }
    const delta = reading - this.offset;
    if (delta > this.jumpMs) {
      this.offset = reading;
      return delta;
    }
    if (delta < 0) this.offset = reading;
    return 0;
  }

  /** Log-clock time (epoch ms) of a moment on the audio context's clock. */
  toEpochMs(contextSeconds: number): number {
    if (this.offset === null) this.sync();
    return this.offset! + contextSeconds * 1000;
  }
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
