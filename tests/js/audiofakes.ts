/**
 * A fake Web Audio context that keeps the graph it was asked to build and can evaluate it:
 * every source yields a level (a mic stream's set level, a buffer's samples while it plays),
 * gains multiply by their automation's value at a time, and nodes sum their inputs. So tests
 * ask "what goes out at t = 1.2 s?" and check mixing and ducking as numbers, not as calls.
 * Clip bytes are fake files, `FAKE <seconds> <level>`, that the fake decoder reads.
 */

import { vi } from "vitest";

import type {
  AudioContextLike,
  AudioDeps,
  BufferLike,
  MessagePortLike,
  NodeLike,
  ParamLike,
} from "../../js/webaudio";
import { FakeStream, FakeTrack } from "./fakes";

export class FakeParam implements ParamLike {
  /** Automation events, in time order; `at(t)` is the settled value of the last one by t. */
  events: { t: number; v: number }[] = [];
  constructor(public value: number) {}
  setValueAtTime(v: number, t: number): void {
    this.insert(t, v);
  }
  setTargetAtTime(v: number, t: number, _tau: number): void {
    this.insert(t, v);
  }
  cancelScheduledValues(t: number): void {
    this.events = this.events.filter((e) => e.t < t);
  }
  at(t: number): number {
    let v = this.value;
    for (const e of this.events) if (e.t <= t) v = e.v;
    return v;
  }
  private insert(t: number, v: number): void {
    this.events.push({ t, v });
    this.events.sort((a, b) => a.t - b.t); // stable: same-time events keep their order
  }
}

export class FakeNode implements NodeLike {
  readonly inputs: { node: FakeNode; input: number }[] = [];
  readonly outputs: FakeNode[] = [];
  disconnected = false;
  constructor(readonly ctx: FakeAudioContext) {}
  connect(destination: NodeLike, _output = 0, input = 0): void {
    const dest = destination as FakeNode;
    dest.inputs.push({ node: this, input });
    this.outputs.push(dest);
  }
  disconnect(): void {
    for (const out of this.outputs) {
      const i = out.inputs.findIndex((x) => x.node === this);
      if (i >= 0) out.inputs.splice(i, 1);
    }
    this.outputs.length = 0;
    this.disconnected = true;
  }
  /** The node's output at context time t. */
  sample(t: number): number {
    return this.sumInputs(t);
  }
  sumInputs(t: number, input?: number): number {
    let sum = 0;
    for (const x of this.inputs)
      if (input === undefined || x.input === input) sum += x.node.sample(t);
    return sum;
  }
  /** Whether `node` feeds this one, directly or through others. */
  fedBy(node: FakeNode): boolean {
    return this.inputs.some((x) => x.node === node || x.node.fedBy(node));
  }
}

export class FakeGain extends FakeNode {
  readonly gain = new FakeParam(1);
  override sample(t: number): number {
    return this.gain.at(t) * this.sumInputs(t);
  }
}

export class FakeStreamSource extends FakeNode {
  constructor(
    ctx: FakeAudioContext,
    readonly stream: MediaStream,
  ) {
    super(ctx);
  }
  override sample(): number {
    return this.ctx.levels.get(this.stream) ?? 0;
  }
}

export class FakeBuffer implements BufferLike {
  readonly data: Float32Array[];
  constructor(
    readonly numberOfChannels: number,
    readonly length: number,
    readonly sampleRate: number,
  ) {
    this.data = Array.from(
      { length: numberOfChannels },
      () => new Float32Array(length),
    );
  }
  get duration(): number {
    return this.length / this.sampleRate;
  }
  getChannelData(c: number): Float32Array {
    return this.data[c]!;
  }
}

export class FakeBufferSource extends FakeNode {
  buffer: BufferLike | null = null;
  onended: ((ev: Event) => unknown) | null = null;
  startAt: number | null = null;
  stopAt: number | null = null;
  endedFired = false;
  start(when = 0): void {
    if (this.startAt !== null)
      throw new DOMException("twice", "InvalidStateError");
    this.startAt = when;
  }
  stop(when?: number): void {
    if (this.startAt === null)
      throw new DOMException("not started", "InvalidStateError");
    this.stopAt = when ?? this.ctx.currentTime;
  }
  get end(): number {
    const natural = (this.startAt ?? 0) + (this.buffer?.duration ?? 0);
    return this.stopAt === null ? natural : Math.min(natural, this.stopAt);
  }
  override sample(t: number): number {
    if (this.startAt === null || !this.buffer) return 0;
    if (t < this.startAt || t >= this.end) return 0;
    const i = Math.floor((t - this.startAt) * this.buffer.sampleRate);
    return this.buffer.getChannelData(0)[i] ?? 0;
  }
}

export class FakeStreamDestination extends FakeNode {
  readonly track = new FakeTrack();
  readonly stream = new FakeStream([this.track]) as unknown as MediaStream;
}

export class FakePort implements MessagePortLike {
  readonly posted: unknown[] = [];
  onmessage: ((ev: MessageEvent) => unknown) | null = null;
  postMessage(message: unknown): void {
    this.posted.push(message);
  }
  /** The worklet side posts `data`. */
  deliver(data: unknown): void {
    this.onmessage?.({ data } as MessageEvent);
  }
}

export class FakeWorkletNode extends FakeNode {
  readonly port = new FakePort();
  constructor(
    ctx: FakeAudioContext,
    readonly name: string,
    readonly options: AudioWorkletNodeOptions,
  ) {
    super(ctx);
  }
}

/** Fake clip bytes the fake decoder understands: `seconds` long at a constant `level`. */
export function fakeClip(seconds: number, level: number): Uint8Array {
  return new TextEncoder().encode(`FAKE ${seconds} ${level}`);
}

export class FakeAudioContext implements AudioContextLike {
  state: AudioContextState = "running";
  currentTime = 0;
  readonly sampleRate: number;
  readonly destination: FakeNode;
  /** What each mic / remote stream "says" (a constant level). */
  readonly levels = new Map<unknown, number>();
  readonly gains: FakeGain[] = [];
  readonly sources: FakeBufferSource[] = [];
  readonly streamSources: FakeStreamSource[] = [];
  readonly dests: FakeStreamDestination[] = [];
  readonly mergers: FakeNode[] = [];
  /** Whether resume() starts the context (a page with a user gesture) or not. */
  resumable = true;
  resumeCalls = 0;
  private listeners: (() => void)[] = [];

  constructor(sampleRate = 48000) {
    this.sampleRate = sampleRate;
    this.destination = new FakeNode(this);
  }

  createGain(): FakeGain {
    const g = new FakeGain(this);
    this.gains.push(g);
    return g;
  }
  createMediaStreamDestination(): FakeStreamDestination {
    const d = new FakeStreamDestination(this);
    this.dests.push(d);
    return d;
  }
  createMediaStreamSource(stream: MediaStream): FakeStreamSource {
    const s = new FakeStreamSource(this, stream);
    this.streamSources.push(s);
    return s;
  }
  createBufferSource(): FakeBufferSource {
    const s = new FakeBufferSource(this);
    this.sources.push(s);
    return s;
  }
  createBuffer(channels: number, length: number, rate: number): FakeBuffer {
    return new FakeBuffer(channels, length, rate);
  }
  createChannelMerger(): FakeNode {
    const m = new FakeNode(this);
    this.mergers.push(m);
    return m;
  }
  decodeAudioData(data: ArrayBuffer): Promise<BufferLike> {
    const text = new TextDecoder().decode(data);
    const m = /^FAKE ([\d.]+) ([\d.]+)$/.exec(text);
    if (!m)
      return Promise.reject(
        new DOMException("Unable to decode audio data", "EncodingError"),
      );
    const rate = 1000; // coarse: 1 ms per sample is plenty for the graph's arithmetic
    const b = new FakeBuffer(1, Math.round(Number(m[1]) * rate), rate);
    b.getChannelData(0).fill(Number(m[2]));
    return Promise.resolve(b);
  }
  resume(): Promise<void> {
    this.resumeCalls++;
    if (this.resumable && this.state === "suspended") this.setState("running");
    return Promise.resolve();
  }
  addEventListener(
    _type: "statechange",
    fn: () => void,
    opts?: AddEventListenerOptions,
  ): void {
    this.listeners.push(fn);
    opts?.signal?.addEventListener("abort", () => {
      this.listeners = this.listeners.filter((f) => f !== fn);
    });
  }
  get listenerCount(): number {
    return this.listeners.length;
  }
  setState(state: AudioContextState): void {
    this.state = state;
    for (const fn of [...this.listeners]) fn();
  }
  /** Audio time passes: sources that reached their end fire `ended`, in end order. */
  advance(seconds: number): void {
    this.currentTime += seconds;
    const due = this.sources
      .filter(
        (s) =>
          s.startAt !== null &&
          !s.endedFired &&
          s.end <= this.currentTime + 1e-9,
      )
      .sort((a, b) => a.end - b.end);
    for (const s of due) {
      s.endedFired = true;
      s.onended?.(new Event("ended"));
    }
  }
  /** The newest MediaStreamDestination: what the call sends. */
  get sent(): FakeStreamDestination {
    return this.dests.at(-1)!;
  }
}

export interface FakeAudio {
  ctx: FakeAudioContext;
  deps: AudioDeps;
  nodes: FakeWorkletNode[];
  loadWorklet: ReturnType<typeof vi.fn>;
}

export function fakeAudio(ctx = new FakeAudioContext()): FakeAudio {
  const nodes: FakeWorkletNode[] = [];
  const loadWorklet = vi.fn(async () => undefined);
  return {
    ctx,
    nodes,
    loadWorklet,
    deps: {
      context: () => ctx,
      loadWorklet: loadWorklet as unknown as AudioDeps["loadWorklet"],
      createWorkletNode: (c, name, options) => {
        const n = new FakeWorkletNode(c as FakeAudioContext, name, options);
        nodes.push(n);
        return n;
      },
    },
  };
}
