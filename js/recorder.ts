/**
 * Recording both sides of a call on one clock: an AudioWorklet takes a two-channel input
 * (channel 0 what the service heard: the outgoing mix; channel 1 what the user heard: the
 * remote track plus back-channel audio), low-passes and decimates it to the recording rate,
 * quantizes to int16 and posts ~250 ms chunks, stamped with the context frame of their first
 * sample. The main thread only maps that frame to the log clock and ships the chunk, so
 * recording costs it a few small messages a second.
 */

import type { LocalEvent } from "./bridge";
import type {
  AudioClock,
  AudioContextLike,
  AudioDeps,
  NodeLike,
  WorkletNodeLike,
} from "./webaudio";

export const RECORDER_PROCESSOR = "rtw-recorder";
/** The recording rate aimed for: enough for speech, half of 48 kHz's bytes. */
export const TARGET_RATE = 24000;
export const CHUNK_MS = 250;
/** FIR length per unit of decimation factor (33 taps at 48 -> 24 kHz). */
const TAPS_PER_FACTOR = 16;

/** The recording rate for a context rate: an integer decimation towards 24 kHz. */
export function recordingFormat(contextRate: number): {
  rate: number;
  factor: number;
} {
  let factor = Math.max(1, Math.round(contextRate / TARGET_RATE));
  if (contextRate % factor !== 0) factor = 1; // keep the rate an integer
  return { rate: contextRate / factor, factor };
}

/** One chunk as the worklet posts it. */
export interface KernelChunk {
  /** Context frame (at the context's rate) of the chunk's first sample. */
  frame0: number;
  frames: number;
  /** `frames` stereo frames, interleaved int16. */
  pcm: Int16Array;
  final?: boolean;
}

/**
 * The worklet's DSP, kept free of any outside name: its source text (`toString()`) is what
 * runs in the AudioWorkletGlobalScope, and tests run the very same text.
 */
export class RecorderKernel {
  factor: number;
  chunkFrames: number;
  h: Float32Array;
  delay: number;
  hist: Float32Array[];
  pos: number;
  count: number;
  out: Int16Array;
  filled: number;
  frame0: number;
  expect: number;

  constructor(factor: number, chunkFrames: number, taps: number) {
    this.factor = factor;
    this.chunkFrames = chunkFrames;
    const n = factor > 1 ? taps | 1 : 1;
    // Windowed-sinc low-pass at 0.9 x the new Nyquist, so decimation does not alias.
    const h = new Float32Array(n);
    const fc = 0.45 / factor;
    const mid = (n - 1) / 2;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      const x = k - mid;
      const sinc =
        x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
      const w = n > 1 ? 0.54 - 0.46 * Math.cos((2 * Math.PI * k) / (n - 1)) : 1;
      h[k] = sinc * w;
      sum += h[k]!;
    }
    for (let k = 0; k < n; k++) h[k] = h[k]! / sum;
    this.h = h;
    // A symmetric FIR delays by (n-1)/2 input frames: stamps take it off.
    this.delay = mid;
    this.hist = [new Float32Array(n), new Float32Array(n)];
    this.pos = 0;
    this.count = 0;
    this.out = new Int16Array(chunkFrames * 2);
    this.filled = 0;
    this.frame0 = 0;
    this.expect = -1;
  }

  /** One render quantum starting at context frame `frame`; returns finished chunks. */
  push(
    ch0: Float32Array | undefined,
    ch1: Float32Array | undefined,
    frame: number,
    length: number,
  ): KernelChunk[] {
    const done: KernelChunk[] = [];
    // Frames skipped (the node was not pulled): close the chunk so the next one gets its
    // own stamp and the main thread sees the gap.
    if (this.expect >= 0 && frame !== this.expect && this.filled > 0)
      done.push(this.take());
    const h = this.h;
    const n = h.length;
    const h0 = this.hist[0]!;
    const h1 = this.hist[1]!;
    for (let i = 0; i < length; i++) {
      const p = this.pos;
      h0[p] = ch0 ? ch0[i]! : 0;
      h1[p] = ch1 ? ch1[i]! : 0;
      if (this.count % this.factor === 0) {
        let y0 = 0;
        let y1 = 0;
        for (let k = 0, j = p; k < n; k++) {
          y0 += h[k]! * h0[j]!;
          y1 += h[k]! * h1[j]!;
          j = j === 0 ? n - 1 : j - 1;
        }
        if (this.filled === 0) this.frame0 = frame + i - this.delay;
        const o = this.filled * 2;
        this.out[o] = this.q(y0);
        this.out[o + 1] = this.q(y1);
        this.filled++;
        if (this.filled === this.chunkFrames) done.push(this.take());
      }
      this.pos = p + 1 === n ? 0 : p + 1;
      this.count++;
    }
    this.expect = frame + length;
    return done;
  }

  /** The partial chunk (possibly empty), marked final. */
  flush(): KernelChunk {
    const c = this.take();
    c.final = true;
    return c;
  }

  take(): KernelChunk {
    const frames = this.filled;
    const c = {
      frame0: this.frame0,
      frames,
      pcm: this.out.slice(0, frames * 2),
    };
    this.filled = 0;
    return c;
  }

  q(y: number): number {
    const v = Math.round(y < 0 ? y * 32768 : y * 32767);
    return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
}

/** The worklet module's source: the kernel above plus a thin processor around it. */
export function recorderWorkletSource(): string {
  return `const RecorderKernel = (${RecorderKernel.toString()});
class RtwRecorder extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.k = new RecorderKernel(o.factor, o.chunkFrames, o.taps);
    this.on = true;
    this.port.onmessage = (e) => {
      if (!e.data || e.data.type !== "flush" || !this.on) return;
      this.on = false;
      const c = this.k.flush();
      this.port.postMessage(c, [c.pcm.buffer]);
    };
  }
  process(inputs) {
    if (!this.on) return false;
    const input = inputs[0] || [];
    const length = input[0] ? input[0].length : 128;
    for (const c of this.k.push(input[0], input[1], currentFrame, length))
      this.port.postMessage(c, [c.pcm.buffer]);
    return true;
  }
}
registerProcessor(${JSON.stringify(RECORDER_PROCESSOR)}, RtwRecorder);
`;
}

/** A chunk ready for the kernel: `t0_ms` on the log clock, contiguous with the last one. */
export interface RecordingChunk {
  seq: number;
  t0_ms: number;
  sample_rate: number;
  frames: number;
  pcm: Int16Array;
}

/**
 * Turns worklet chunks into kernel chunks. Consecutive chunks are contiguous: each `t0_ms` is
 * the first one plus the frames sent so far. Where the audio clock lost time against the log
 * clock (a suspended context, frames never pulled), silence fills the gap, so samples after
 * it still sit at their log-clock time.
 */
export class RecordingChunker {
  private t0First: number | null = null;
  /** Frames sent in this segment (since `start`). */
  frames = 0;

  constructor(
    readonly rate: number,
    private readonly contextRate: number,
    private readonly clock: AudioClock,
    private readonly nextSeq: () => number,
    private readonly opts: {
      chunkFrames: number;
      /** A gap shorter than this is jitter, not lost time. */
      gapMs?: number;
      /** Longest silence filled at once (a longer gap keeps only this much). */
      maxPadMs?: number;
    },
  ) {}

  get t0Ms(): number | null {
    return this.t0First;
  }

  push(c: KernelChunk): RecordingChunk[] {
    if (c.frames === 0) return [];
    this.clock.sync();
    const measured = this.clock.toEpochMs(c.frame0 / this.contextRate);
    const out: RecordingChunk[] = [];
    if (this.t0First === null) {
      this.t0First = measured;
    } else {
      const gapMs = measured - this.expectedT0();
      if (gapMs > (this.opts.gapMs ?? 100)) {
        const padMs = Math.min(gapMs, this.opts.maxPadMs ?? 60000);
        let pad = Math.round((padMs * this.rate) / 1000);
        while (pad > 0) {
          const n = Math.min(pad, this.opts.chunkFrames);
          out.push(this.emit(new Int16Array(n * 2)));
          pad -= n;
        }
      }
    }
    out.push(this.emit(c.pcm.subarray(0, c.frames * 2)));
    return out;
  }

  private expectedT0(): number {
    return this.t0First! + (this.frames * 1000) / this.rate;
  }

  private emit(pcm: Int16Array): RecordingChunk {
    const frames = pcm.length / 2;
    const chunk = {
      seq: this.nextSeq(),
      t0_ms: this.expectedT0(),
      sample_rate: this.rate,
      frames,
      pcm,
    };
    this.frames += frames;
    return chunk;
  }
}

export interface RecorderHooks {
  record(event: LocalEvent, tMs?: number): void;
  chunk(chunk: RecordingChunk): void;
  /** The recorder could not run (no AudioWorklet, module refused): words for the view. */
  failed(message: string): void;
}

type Phase = "idle" | "loading" | "recording" | "stopping";

/**
 * Starts and stops recording segments of one call. Chunk numbers (`seq`) run on across
 * segments, so the kernel sees any lost chunk; each segment opens with `recording.started`
 * (its rate and `t0_ms`) and closes with `recording.stopped` (its frames).
 */
export class Recorder {
  private phase: Phase = "idle";
  private node: WorkletNodeLike | null = null;
  private chunker: RecordingChunker | null = null;
  private seq = 0;
  private wanted = false;
  private cancelStopWait: (() => void) | null = null;

  constructor(
    private readonly ctx: AudioContextLike,
    private readonly input: NodeLike,
    private readonly deps: AudioDeps,
    private readonly clock: AudioClock,
    private readonly hooks: RecorderHooks,
    private readonly timeout: (fn: () => void, ms: number) => () => void,
    private readonly chunkMs = CHUNK_MS,
  ) {}

  get recording(): boolean {
    return this.phase === "recording";
  }

  set(on: boolean): void {
    this.wanted = on;
    if (on && this.phase === "idle") void this.start();
    else if (!on && this.phase === "recording") this.stop();
  }

  private async start(): Promise<void> {
    this.phase = "loading";
    const { rate, factor } = recordingFormat(this.ctx.sampleRate);
    const chunkFrames = Math.round((rate * this.chunkMs) / 1000);
    let node: WorkletNodeLike;
    try {
      await this.deps.loadWorklet(this.ctx);
      node = this.deps.createWorkletNode(this.ctx, RECORDER_PROCESSOR, {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        channelCount: 2,
        channelCountMode: "explicit",
        channelInterpretation: "discrete",
        processorOptions: {
          factor,
          chunkFrames,
          taps: TAPS_PER_FACTOR * factor + 1,
        },
      });
    } catch (e) {
      this.phase = "idle";
      this.hooks.failed(
        `Recording is unavailable in this page: ${e instanceof Error ? e.message : String(e)}`,
      );
      return;
    }
    if (!this.wanted) {
      this.phase = "idle";
      return;
    }
    this.node = node;
    this.chunker = new RecordingChunker(
      rate,
      this.ctx.sampleRate,
      this.clock,
      () => this.seq++,
      { chunkFrames },
    );
    node.port.onmessage = (ev) => this.onChunk(ev.data as KernelChunk);
    this.input.connect(node);
    // Its output is silence; reaching the destination keeps the node pulled every quantum.
    node.connect(this.ctx.destination);
    this.phase = "recording";
  }

  /** Ask the worklet for its partial chunk, then close the segment. */
  stop(): void {
    if (this.phase !== "recording" || !this.node) return;
    this.phase = "stopping";
    this.node.port.postMessage({ type: "flush" });
    // A context that closed under us never answers: close the segment anyway.
    this.cancelStopWait = this.timeout(() => this.finish(), 1000);
  }

  private onChunk(c: KernelChunk): void {
    const chunker = this.chunker;
    if (!chunker || (this.phase !== "recording" && this.phase !== "stopping"))
      return;
    const first = chunker.t0Ms === null;
    const chunks = chunker.push(c);
    if (first && chunker.t0Ms !== null)
      this.hooks.record({
        type: "recording.started",
        sample_rate: chunker.rate,
        t0_ms: chunker.t0Ms,
      });
    for (const chunk of chunks) this.hooks.chunk(chunk);
    if (c.final) this.finish();
  }

  private finish(): void {
    if (this.phase !== "stopping") return;
    this.cancelStopWait?.();
    this.cancelStopWait = null;
    const node = this.node!;
    node.port.onmessage = null;
    node.disconnect();
    try {
      this.input.disconnect();
    } catch {
      /* already */
    }
    this.hooks.record({
      type: "recording.stopped",
      frames: this.chunker?.frames ?? 0,
    });
    this.node = null;
    this.chunker = null;
    this.phase = "idle";
    if (this.wanted) void this.start(); // turned on again while this segment closed
  }
}
