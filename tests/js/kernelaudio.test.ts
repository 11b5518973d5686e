/**
 * The audio messages between kernel and page, through the Controller: `play` / `stop_clip`
 * (buffers or base64), `recording` chunks (buffers, or base64 when `host_info` says buffers
 * do not reach the kernel), the `probe` echo, and the audio notice in the store.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { fromBase64, toBase64 } from "../../js/bytes";
import { Controller } from "../../js/controller";
import { SUSPENDED_WORDS } from "../../js/mixer";
import { fakeAudio, fakeClip, type FakeAudio } from "./audiofakes";
import {
  FakeModel,
  fakeWorld,
  settle,
  type FakeWorld,
  connectCall,
} from "./fakes";

let world: FakeWorld;
let audio: FakeAudio;
let model: FakeModel;
let ctrl: Controller;
const resume = vi.fn();

beforeEach(() => {
  vi.useFakeTimers();
  audio = fakeAudio();
  world = fakeWorld({ audio: audio.deps });
  model = new FakeModel({ record: false, host_info: {} });
  resume.mockReset();
  ctrl = new Controller(model.asModel(), world.deps, {
    audio: { resume, close: () => undefined },
  });
});
afterEach(() => {
  ctrl.dispose();
  vi.useRealTimers();
});

async function connect(call = 1) {
  await connectCall(model, world, call);
  await vi.advanceTimersByTimeAsync(5);
}

const locals = (type: string) =>
  model
    .records()
    .filter((r) => r.dir === "local" && r.event.type === type)
    .map((r) => r.event);

function playMsg(over: Record<string, unknown>) {
  return {
    kind: "play",
    call: 1,
    page: "",
    clip_id: "c1",
    index: 0,
    last: true,
    mime: "audio/wav",
    duck: 0.5,
    source: "path",
    b64: "",
    ...over,
  };
}

describe("play and stop_clip", () => {
  it("takes a clip's chunks from buffers or from base64 alike", async () => {
    await connect();
    const bytes = fakeClip(1, 0.5);
    // chunk 0 as a DataView buffer (what ipywidgets hands over), chunk 1 in base64
    model.msg(playMsg({ index: 0, last: false }), [
      new DataView(bytes.buffer, 0, 5),
    ]);
    model.msg(playMsg({ index: 1, last: true, b64: toBase64(bytes.slice(5)) }));
    await settle();
    expect(audio.ctx.sources).toHaveLength(1);
    expect(audio.ctx.sent.sample(0.5)).toBeCloseTo(0.5);
    model.msg({ kind: "stop_clip", call: 1, page: "", clip_id: "c1" });
    await vi.advanceTimersByTimeAsync(5);
    expect(locals("say.ended")).toEqual([
      { type: "say.ended", clip_id: "c1", duration_ms: 0, stopped: true },
    ]);
  });

  it("refuses a clip for an old call with say.error, once per clip", async () => {
    await connect(2);
    model.msg(playMsg({ call: 1, index: 0, last: false }), [
      new ArrayBuffer(4),
    ]);
    model.msg(playMsg({ call: 1, index: 1, last: true }), [new ArrayBuffer(4)]);
    await vi.advanceTimersByTimeAsync(5);
    const errors = model.records().filter((r) => r.event.type === "say.error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.event).toEqual({
      type: "say.error",
      clip_id: "c1",
      message:
        "The clip was sent for call 1, which is not this page's live call",
    });
    expect(audio.ctx.sources).toHaveLength(0);
  });

  it("reads a numeric `last` as the last chunk's index", async () => {
    await connect();
    const bytes = fakeClip(1, 0.5);
    model.msg(playMsg({ index: 1, last: 1, b64: toBase64(bytes.slice(4)) }));
    model.msg(playMsg({ index: 0, last: 1, b64: toBase64(bytes.slice(0, 4)) }));
    await settle();
    expect(audio.ctx.sources).toHaveLength(1);
  });

  it("without Web Audio the mic track goes out as before and a clip is refused in words", async () => {
    ctrl.dispose();
    world = fakeWorld();
    ctrl = new Controller(model.asModel(), world.deps);
    await connect();
    expect(world.pc().tracks).toEqual(world.mics[0]!.tracks);
    model.msg(playMsg({ index: 0, last: false }), [new ArrayBuffer(2)]);
    model.msg(playMsg({ index: 1, last: true }), [new ArrayBuffer(2)]);
    model.msg({ kind: "disconnect", call: 1 });
    model.msg(playMsg({ clip_id: "c2" }), [new ArrayBuffer(2)]);
    await vi.advanceTimersByTimeAsync(5);
    expect(locals("say.error").map((e) => e.message)).toEqual([
      "This page has no Web Audio, so clips cannot play",
      "The call has ended, so the clip cannot play",
    ]);
  });

  it("a chunk with neither buffer nor base64 ends the clip with say.error", async () => {
    await connect();
    model.msg(playMsg({}));
    await vi.advanceTimersByTimeAsync(5);
    expect(locals("say.error")).toEqual([
      {
        type: "say.error",
        clip_id: "c1",
        message: "chunk 0 arrived without its bytes",
      },
    ]);
  });
});

describe("recording", () => {
  async function recordingNode() {
    await settle();
    const node = audio.nodes.at(-1)!;
    expect(node).toBeDefined();
    return node;
  }
  const pcm = (frames: number, v: number) =>
    new Int16Array(frames * 2).map((_, i) => (i % 2 ? -v : v));

  it("ships 250 ms int16 stereo chunks as buffers, contiguous, between started and stopped", async () => {
    model.attrs.record = true;
    await connect();
    const node = await recordingNode();
    expect(node.name).toBe("rtw-recorder");
    expect(node.options.processorOptions).toEqual({
      factor: 2,
      chunkFrames: 6000,
      taps: 33,
    });
    expect(node.fedBy(audio.ctx.mergers[0]!)).toBe(true);
    expect(audio.ctx.destination.fedBy(node)).toBe(true); // pulled every quantum
    node.port.deliver({ frame0: 0, frames: 6000, pcm: pcm(6000, 1000) });
    node.port.deliver({ frame0: 12000, frames: 6000, pcm: pcm(6000, 2000) });
    const msgs = model.ofKind("recording");
    expect(msgs).toHaveLength(2);
    const [a, b] = msgs as Record<string, number>[];
    expect(a).toMatchObject({
      kind: "recording",
      call: 1,
      seq: 0,
      sample_rate: 24000,
      frames: 6000,
      b64: "",
    });
    expect(b!.seq).toBe(1);
    expect(b!.t0_ms - a!.t0_ms).toBe(250);
    const buf = model.sentBuffers[model.sent.indexOf(a!)]!;
    expect(buf).toHaveLength(1);
    expect(buf[0]!.byteLength).toBe(6000 * 4);
    expect(new Int16Array(buf[0]!).slice(0, 2)).toEqual(
      new Int16Array([1000, -1000]),
    );
    // the started record reached Python before the chunk it describes
    const firstChunk = model.sent.indexOf(a!);
    const startedBatch = model.sent.findIndex(
      (m) =>
        m.kind === "events" &&
        (m.records as { event: { type: string } }[]).some(
          (r) => r.event.type === "recording.started",
        ),
    );
    expect(startedBatch).toBeLessThan(firstChunk);
    expect(locals("recording.started")).toEqual([
      { type: "recording.started", sample_rate: 24000, t0_ms: a!.t0_ms },
    ]);

    model.set("record", false);
    expect(node.port.posted).toEqual([{ type: "flush" }]);
    node.port.deliver({
      frame0: 24000,
      frames: 100,
      pcm: pcm(100, 3),
      final: true,
    });
    await vi.advanceTimersByTimeAsync(5);
    expect(model.ofKind("recording").at(-1)).toMatchObject({
      seq: 2,
      frames: 100,
    });
    expect(locals("recording.stopped")).toEqual([
      { type: "recording.stopped", frames: 12100 },
    ]);
    expect(node.disconnected).toBe(true);
  });

  it("sends base64 instead of buffers when host_info says buffers do not reach the kernel", async () => {
    await connect();
    expect(audio.nodes).toHaveLength(0); // not recording yet
    model.attrs.host_info = { buffers_to_kernel: false };
    model.set("record", true); // mid-call
    const node = await recordingNode();
    node.port.deliver({
      frame0: 0,
      frames: 2,
      pcm: new Int16Array([1, -1, 256, -256]),
    });
    const msg = model.ofKind("recording")[0]!;
    expect(model.sentBuffers[model.sent.indexOf(msg)]).toBeUndefined();
    const back = fromBase64(msg.b64 as string);
    expect([...new Int16Array(back.buffer)]).toEqual([1, -1, 256, -256]); // little-endian
  });

  it("a hang-up closes the segment: the last chunk and recording.stopped still arrive", async () => {
    model.attrs.record = true;
    await connect();
    const node = await recordingNode();
    node.port.deliver({ frame0: 0, frames: 6000, pcm: pcm(6000, 1) });
    model.msg({ kind: "disconnect", call: 1 });
    expect(node.port.posted).toEqual([{ type: "flush" }]);
    node.port.deliver({
      frame0: 12000,
      frames: 10,
      pcm: pcm(10, 1),
      final: true,
    });
    await vi.advanceTimersByTimeAsync(5);
    expect(model.ofKind("recording").map((m) => m.frames)).toEqual([6000, 10]);
    expect(locals("recording.stopped")).toEqual([
      { type: "recording.stopped", frames: 6010 },
    ]);
  });

  it("a worklet that cannot load is said in the view, not silently skipped", async () => {
    audio.loadWorklet.mockRejectedValue(new Error("blocked by policy"));
    model.attrs.record = true;
    await connect();
    await settle();
    expect(ctrl.store.audioNotice).toBe(
      "Recording is unavailable in this page: blocked by policy",
    );
    expect(locals("recording.error")).toEqual([
      {
        type: "recording.error",
        message: "Recording is unavailable in this page: blocked by policy",
      },
    ]);
  });
});

describe("probe", () => {
  it("echoes a probe's buffer and says how many buffers and bytes arrived", () => {
    model.msg({ kind: "probe", page: "", probe_id: "p1", b64: "" }, [
      new Uint8Array([1, 2, 3]),
    ]);
    const reply = model.ofKind("probe_reply")[0]!;
    expect(reply).toEqual({
      kind: "probe_reply",
      page: ctrl.page,
      probe_id: "p1",
      buffers: 1,
      bytes: 3,
      b64: "",
    });
    const echo = model.sentBuffers[model.sent.indexOf(reply)]!;
    expect([...new Uint8Array(echo[0]!)]).toEqual([1, 2, 3]);
  });

  it("where the buffer was dropped, takes the bytes from b64 and echoes them both ways", () => {
    model.msg({ kind: "probe", page: "", probe_id: "p2", b64: "AQID" });
    const reply = model.ofKind("probe_reply")[0]!;
    expect(reply).toMatchObject({ buffers: 0, bytes: 3, b64: "AQID" });
    const echo = model.sentBuffers[model.sent.indexOf(reply)]!;
    expect([...new Uint8Array(echo[0]!)]).toEqual([1, 2, 3]);
  });

  it("a probe for another page is not answered", () => {
    model.msg({
      kind: "probe",
      page: "elsewhere",
      probe_id: "p3",
      b64: "AQID",
    });
    expect(model.ofKind("probe_reply")).toEqual([]);
  });
});

describe("the audio notice", () => {
  it("a paused context reaches the store in words and clears once audio runs", async () => {
    audio.ctx.state = "suspended";
    audio.ctx.resumable = false;
    await connect();
    await vi.advanceTimersByTimeAsync(300);
    expect(ctrl.store.audioNotice).toBe(SUSPENDED_WORDS);
    ctrl.resumeAudio(); // a gesture in a view
    expect(resume).toHaveBeenCalled();
    audio.ctx.setState("running");
    expect(ctrl.store.audioNotice).toBe("");
  });
});
