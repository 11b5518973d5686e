/**
 * The recorder: the worklet's own source text run on synthetic input (decimation, anti-alias,
 * stamps), and the main thread's clock mapping (contiguous t0_ms, silence over lost time).
 */
import { afterEach, describe, expect, it } from "vitest";

import {
  RecordingChunker,
  recorderWorkletSource,
  recordingFormat,
  type KernelChunk,
} from "../../js/recorder";
import { AudioClock } from "../../js/webaudio";

describe("recordingFormat", () => {
  it("decimates by an integer towards 24 kHz, keeping the rate an integer", () => {
    expect(recordingFormat(48000)).toEqual({ rate: 24000, factor: 2 });
    expect(recordingFormat(96000)).toEqual({ rate: 24000, factor: 4 });
    expect(recordingFormat(44100)).toEqual({ rate: 22050, factor: 2 });
    expect(recordingFormat(24000)).toEqual({ rate: 24000, factor: 1 });
    expect(recordingFormat(16000)).toEqual({ rate: 16000, factor: 1 });
  });
});

interface Port {
  posted: KernelChunk[];
  postMessage(m: KernelChunk): void;
  onmessage: ((e: { data: unknown }) => void) | null;
}
interface Processor {
  port: Port;
  process(inputs: Float32Array[][]): boolean;
}

const g = globalThis as unknown as Record<string, unknown>;
afterEach(() => {
  delete g.currentFrame;
});

/** Evaluate the worklet module's text as AudioWorkletGlobalScope would, and make a processor. */
function worklet(opts: { factor: number; chunkFrames: number; taps: number }) {
  let Ctor: (new (o: unknown) => Processor) | null = null;
  class AudioWorkletProcessor {
    port: Port = {
      posted: [],
      postMessage(m) {
        this.posted.push(m);
      },
      onmessage: null,
    };
  }
  new Function(
    "AudioWorkletProcessor",
    "registerProcessor",
    recorderWorkletSource(),
  )(AudioWorkletProcessor, (name: string, c: new (o: unknown) => Processor) => {
    expect(name).toBe("rtw-recorder");
    Ctor = c;
  });
  const p = new Ctor!({ processorOptions: opts });
  let frame = 4800; // the context ran a while before recording began
  return {
    p,
    /** Feed `quanta` render quanta of ch0 = f0(t), ch1 = f1(t) at 48 kHz. */
    feed(quanta: number, f0: (t: number) => number, f1: (t: number) => number) {
      for (let q = 0; q < quanta; q++) {
        const a = new Float32Array(128);
        const b = new Float32Array(128);
        for (let i = 0; i < 128; i++) {
          a[i] = f0((frame + i) / 48000);
          b[i] = f1((frame + i) / 48000);
        }
        g.currentFrame = frame;
        expect(p.process([[a, b]])).toBe(true);
        frame += 128;
      }
    },
  };
}

const channel = (c: KernelChunk, ch: number) =>
  Array.from({ length: c.frames }, (_, i) => c.pcm[i * 2 + ch]! / 32767);

describe("the worklet (its shipped source)", () => {
  const opts = { factor: 2, chunkFrames: 6000, taps: 33 };

  it("posts 250 ms stereo int16 chunks at 24 kHz, stamped with the context frame of sample 0", () => {
    const w = worklet(opts);
    w.feed(
      200,
      (t) => 0.5 * Math.sin(2 * Math.PI * 1000 * t),
      () => 0.25,
    );
    const [a, b] = w.p.port.posted;
    expect(w.p.port.posted).toHaveLength(2); // 25600 frames in -> 12800 out -> two of 6000
    expect(a!.frames).toBe(6000);
    expect(a!.pcm).toHaveLength(12000);
    expect(a!.frame0).toBe(4800 - 16); // the FIR's group delay (32/2 frames) taken off
    expect(b!.frame0).toBe(a!.frame0 + 12000); // contiguous on the context clock
    // a 1 kHz tone passes at its level, DC passes at its level (after the filter fills)
    const peak = Math.max(...channel(b!, 0));
    expect(peak).toBeGreaterThan(0.49);
    expect(peak).toBeLessThan(0.51);
    expect(channel(b!, 1).every((x) => Math.abs(x - 0.25) < 0.001)).toBe(true);
  });

  it("filters out what would alias (a 20 kHz tone is gone at 24 kHz)", () => {
    const w = worklet(opts);
    w.feed(
      100,
      (t) => 0.5 * Math.sin(2 * Math.PI * 20000 * t),
      () => 0,
    );
    const tail = channel(w.p.port.posted[0]!, 0).slice(100);
    const rms = Math.sqrt(tail.reduce((s, x) => s + x * x, 0) / tail.length);
    expect(rms).toBeLessThan(0.005); // from 0.35 in
  });

  it("on flush, posts the partial chunk marked final and stops", () => {
    const w = worklet(opts);
    w.feed(
      100,
      () => 0.1,
      () => -0.1,
    );
    w.p.port.onmessage!({ data: { type: "flush" } });
    const last = w.p.port.posted.at(-1)!;
    expect(last.final).toBe(true);
    expect(last.frames).toBe(6400 - 6000);
    expect(last.frame0).toBe(w.p.port.posted[0]!.frame0 + 12000);
    g.currentFrame = 0;
    expect(w.p.process([[]])).toBe(false);
  });

  it("without decimation (a 24 kHz context) passes samples through exactly", () => {
    const w = worklet({ factor: 1, chunkFrames: 256, taps: 1 });
    w.feed(
      2,
      () => 0.5,
      () => -1,
    );
    const c = w.p.port.posted[0]!;
    expect(c.frame0).toBe(4800);
    expect(c.pcm[0]).toBe(Math.round(0.5 * 32767));
    expect(c.pcm[1]).toBe(-32768);
  });
});

describe("RecordingChunker: chunks on the log clock", () => {
  const T0 = 1_700_000_000_000;
  function setup() {
    const ctx = { currentTime: 0 };
    let wall = T0;
    const clock = new AudioClock(ctx, () => wall);
    clock.sync();
    let seq = 0;
    const chunker = new RecordingChunker(24000, 48000, clock, () => seq++, {
      chunkFrames: 6000,
    });
    const chunk = (frame0: number): KernelChunk => ({
      frame0,
      frames: 6000,
      pcm: new Int16Array(12000).fill(7),
    });
    return {
      chunker,
      chunk,
      /** Time passes: the audio clock runs with the wall clock unless `audioStood`. */
      pass(ms: number, audioStood = false) {
        wall += ms;
        if (!audioStood) ctx.currentTime += ms / 1000;
      },
    };
  }

  it("stamps the first chunk from the clock and every next one contiguously", () => {
    const s = setup();
    s.pass(250);
    const a = s.chunker.push(s.chunk(0));
    s.pass(263); // jitter in when the message arrives changes nothing
    const b = s.chunker.push(s.chunk(12000));
    s.pass(240);
    const c = s.chunker.push(s.chunk(24000));
    const all = [...a, ...b, ...c];
    expect(all.map((x) => x.seq)).toEqual([0, 1, 2]);
    expect(all.map((x) => x.t0_ms - T0)).toEqual([0, 250, 500]);
    expect(all.every((x) => x.frames === 6000 && x.sample_rate === 24000)).toBe(
      true,
    );
    expect(s.chunker.frames).toBe(18000);
  });

  it("fills lost audio time with silence, so later samples keep their log-clock time", () => {
    const s = setup();
    s.pass(250);
    s.chunker.push(s.chunk(0));
    s.pass(2000, true); // suspended: the audio clock stood still for 2 s
    s.pass(250);
    const out = s.chunker.push(s.chunk(12000));
    // 2 s of silence = 48000 frames in 8 chunks, then the chunk itself
    expect(out).toHaveLength(9);
    expect(out.slice(0, 8).every((x) => x.pcm.every((v) => v === 0))).toBe(
      true,
    );
    expect(out.map((x) => x.t0_ms - T0)).toEqual([
      250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2250,
    ]);
    expect(out.at(-1)!.pcm[0]).toBe(7);
    expect(out.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe("AudioClock", () => {
  it("keeps the smallest offset reading, and jumps when the audio clock stood still", () => {
    const ctx = { currentTime: 0 };
    let wall = 1000;
    const clock = new AudioClock(ctx, () => wall);
    ctx.currentTime = 0.99; // read late: currentTime lags the audio thread
    wall = 2000;
    expect(clock.sync()).toBe(0);
    expect(clock.toEpochMs(1)).toBe(2010);
    ctx.currentTime = 2; // a fresher reading: a smaller offset wins
    wall = 3000;
    clock.sync();
    expect(clock.toEpochMs(1)).toBe(2000);
    wall += 5000; // suspended 5 s: the audio clock did not move
    expect(clock.sync()).toBe(5000);
    expect(clock.toEpochMs(2)).toBe(8000);
  });
});
