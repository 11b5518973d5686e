/**
 * The host probe: Python sends a few known bytes both as a buffer and in `b64`; the page says
 * what arrived and echoes it, so the kernel learns whether binary buffers survive each way on
 * this host (Colab and some front ends drop them) and falls back to base64 where they do not.
 */

import { PROBE_REPLY, type ProbeMsg, type ProbeReplyMsg } from "./bridge";
import { asBytes, countBuffers, ownBuffer, payload, toBase64 } from "./bytes";

export function probeReply(
  msg: ProbeMsg,
  buffers: readonly unknown[] | undefined,
  page: string,
): { reply: ProbeReplyMsg; buffers: ArrayBuffer[] } {
  const got = countBuffers(buffers);
  const bytes =
    (got > 0 ? asBytes(buffers!.find((b) => asBytes(b) !== null)) : null) ??
    payload(undefined, msg.b64) ??
    new Uint8Array(0);
  return {
    reply: {
      kind: PROBE_REPLY,
      page,
      probe_id: msg.probe_id,
      buffers: got,
      bytes: bytes.length,
      // No buffer reached us: the echo rides in base64 too, so the kernel gets it either way.
      b64: got === 0 && bytes.length > 0 ? toBase64(bytes) : "",
    },
    // Always a buffer back: that is what tells the kernel whether page -> kernel buffers work.
    buffers: [ownBuffer(bytes.slice())],
  };
}
