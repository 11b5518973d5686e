/**
 * Binary payloads of custom messages. They ride as buffers; where a host drops buffers (old
 * kernels, some front ends) the same bytes travel base64-encoded in the message's `b64` field
 * instead, so every reader takes the buffer first and falls back to `b64`.
 */

/** A buffer as a host hands it over (ipywidgets gives DataViews, others ArrayBuffers). */
export function asBytes(x: unknown): Uint8Array | null {
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x))
    return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  return null;
}

/** How many of `buffers` are usable binary buffers. */
export function countBuffers(buffers: readonly unknown[] | undefined): number {
  return (buffers ?? []).filter((b) => asBytes(b) !== null).length;
}

/** The message's payload: its first buffer, else its base64 `b64` field; null if neither. */
export function payload(
  buffers: readonly unknown[] | undefined,
  b64: string,
): Uint8Array | null {
  const first = buffers && buffers.length > 0 ? asBytes(buffers[0]) : null;
  if (first) return first;
  if (b64 === "") return null;
  try {
    return fromBase64(b64);
  } catch {
    return null;
  }
}

/** Decode base64 (throws on malformed input, as atob does). */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Encode bytes as base64; in slices, because spreading a large array overflows the stack. */
export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step)
    bin += String.fromCharCode(...bytes.subarray(i, i + step));
  return btoa(bin);
}

/** A standalone ArrayBuffer holding exactly these bytes (views may share a larger one). */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  )
    return bytes.buffer;
  return bytes.slice().buffer as ArrayBuffer;
}
