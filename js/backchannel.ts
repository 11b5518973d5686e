/**
 * Inworld's back-channel audio ("mm-hm" while the user talks). It does not ride the remote
 * RTP track: it arrives on the data channel, even over WebRTC, as
 * `response.backchannel.audio.delta` events carrying base64 PCM16 (24 kHz mono). A WebRTC
 * client that ignores it plays no back-channel at all, so this player turns each delta into an
 * AudioBuffer and plays the deltas back to back into a bus that goes to the speakers and to
 * the recording's "user heard" side.
 */

import { fromBase64 } from "./bytes";
import type { AudioContextLike, BufferSourceLike, NodeLike } from "./webaudio";

export const BACKCHANNEL_DELTA = "response.backchannel.audio.delta";
/** Inworld's documented rate; an event that names its own (`sample_rate`) wins. */
export const BACKCHANNEL_RATE = 24000;

/** PCM16 little-endian bytes as floats in -1..1 (an odd trailing byte is dropped). */
export function pcm16ToFloat(bytes: Uint8Array): Float32Array {
  const n = bytes.length >> 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

function rateOf(event: Record<string, unknown>): number {
  const r = event.sample_rate;
  return typeof r === "number" && Number.isInteger(r) && r >= 8000 && r <= 96000
    ? r
    : BACKCHANNEL_RATE;
}

export class BackchannelPlayer {
  /** Where the next delta starts (context seconds): deltas play gaplessly in order. */
  private next = 0;
  private readonly playing = new Set<BufferSourceLike>();
  private closed = false;
  /** Deltas not played (suspended context, or not decodable): for tests and the curious. */
  dropped = 0;
  played = 0;

  constructor(
    private readonly ctx: AudioContextLike,
    private readonly bus: NodeLike,
    /** A first delta (or one after a pause) starts this far ahead, so none is cut. */
    private readonly leadS = 0.03,
  ) {}

  /** Handle a server event; returns true if it was back-channel audio that got played. */
  handle(event: Record<string, unknown>): boolean {
    if (event.type !== BACKCHANNEL_DELTA || this.closed) return false;
    const delta = event.delta;
    // Late audio from a suspended context would be noise out of place: drop it (the view
    // already says audio is paused).
    if (typeof delta !== "string" || this.ctx.state !== "running") {
      this.dropped++;
      return false;
    }
    let samples: Float32Array;
    try {
      samples = pcm16ToFloat(fromBase64(delta));
    } catch {
      this.dropped++;
      return false;
    }
    if (samples.length === 0) return false;
    const rate = rateOf(event);
    // The context resamples a buffer of another rate as it plays it.
    const buffer = this.ctx.createBuffer(1, samples.length, rate);
    buffer.getChannelData(0).set(samples);
    const node = this.ctx.createBufferSource();
    node.buffer = buffer;
    node.connect(this.bus);
    const start = Math.max(this.ctx.currentTime + this.leadS, this.next);
    node.onended = () => {
      this.playing.delete(node);
      node.disconnect();
    };
    node.start(start);
    this.next = start + samples.length / rate;
    this.playing.add(node);
    this.played++;
    return true;
  }

  close(): void {
    this.closed = true;
    for (const node of this.playing) {
      node.onended = null;
      try {
        node.stop();
      } catch {
        /* already stopped */
      }
      node.disconnect();
    }
    this.playing.clear();
  }
}
