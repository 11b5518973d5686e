/**
 * Fakes for the browser pieces the front end touches: RTCPeerConnection, RTCDataChannel,
 * MediaStream(Track), level meters and an anywidget model. Each records what was done to it
 * so tests assert behaviour, and exposes helpers to play the remote side.
 */

import { afterEach, beforeEach, vi } from "vitest";

import type { RealtimeEvent } from "../../js/bridge";
import type { AudioSink, CallDeps, LevelMeter } from "../../js/connection";
import { Controller, type WidgetModel } from "../../js/controller";
import { mountView, type MountedView } from "../../js/view/index";
import type { AudioDeps } from "../../js/webaudio";

export class FakeTrack {
  enabled = true;
  readyState: "live" | "ended" = "live";
  static next = 0;
  readonly id = `track-${FakeTrack.next++}`;
  constructor(readonly kind: "audio" | "video" = "audio") {}
  stop(): void {
    this.readyState = "ended";
  }
}

export class FakeStream {
  constructor(readonly tracks: FakeTrack[] = [new FakeTrack()]) {}
  getTracks(): FakeTrack[] {
    return this.tracks;
  }
  getAudioTracks(): FakeTrack[] {
    return this.tracks.filter((t) => t.kind === "audio");
  }
}

/** An RTCRtpSender: which track goes out, and every replaceTrack. */
export class FakeSender {
  readonly replaced: unknown[] = [];
  constructor(public track: unknown) {}
  async replaceTrack(track: unknown): Promise<void> {
    this.replaced.push(track);
    this.track = track;
  }
}

export class FakeChannel extends EventTarget {
  readyState: RTCDataChannelState = "connecting";
  readonly sent: string[] = [];
  closeCalls = 0;
  constructor(
    readonly label: string,
    readonly init: RTCDataChannelInit | undefined,
  ) {
    super();
  }
  send(data: string): void {
    if (this.readyState !== "open")
      throw new DOMException("not open", "InvalidStateError");
    this.sent.push(data);
  }
  close(): void {
    this.closeCalls++;
    this.readyState = "closed";
  }
  /** The remote side: channel becomes open. */
  open(): void {
    this.readyState = "open";
    this.dispatchEvent(new Event("open"));
  }
  receive(data: string): void {
    this.dispatchEvent(new MessageEvent("message", { data }));
  }
  remoteClose(): void {
    this.readyState = "closed";
    this.dispatchEvent(new Event("close"));
  }
  sentEvents(): { type?: string; [k: string]: unknown }[] {
    return this.sent.map((s) => JSON.parse(s));
  }
}

export class FakePC extends EventTarget {
  iceGatheringState: RTCIceGatheringState = "new";
  connectionState: RTCPeerConnectionState = "new";
  iceConnectionState: RTCIceConnectionState = "new";
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  closed = false;
  readonly tracks: FakeTrack[] = [];
  readonly senders: FakeSender[] = [];
  readonly transceivers: { kind: string; init: unknown }[] = [];
  readonly channels: FakeChannel[] = [];
  candidates: string[] = [];
  stats = new Map<string, Record<string, unknown>>();
  rejectAnswer: Error | null = null;

  constructor(readonly config: RTCConfiguration) {
    super();
  }
  addTrack(track: FakeTrack): FakeSender {
    this.tracks.push(track);
    const sender = new FakeSender(track);
    this.senders.push(sender);
    return sender;
  }
  addTransceiver(kind: string, init: unknown): void {
    this.transceivers.push({ kind, init });
  }
  createDataChannel(label: string, init?: RTCDataChannelInit): FakeChannel {
    const ch = new FakeChannel(label, init);
    this.channels.push(ch);
    return ch;
  }
  async createOffer(): Promise<{ type: "offer"; sdp: string }> {
    return { type: "offer", sdp: "v=0 offer" };
  }
  /** An older browser: setLocalDescription() with no argument is refused. */
  refuseImplicitOffer = false;
  /** How the offer was made: "implicit" (setLocalDescription()) or "explicit". */
  offerMadeBy: string | null = null;
  async setLocalDescription(d?: { type: string; sdp: string }): Promise<void> {
    if (!d && this.refuseImplicitOffer)
      throw new TypeError("Failed to execute 'setLocalDescription'");
    this.offerMadeBy = d ? "explicit" : "implicit";
    this.localDescription = { ...(d ?? (await this.createOffer())) };
    this.iceGatheringState = "gathering";
    this.dispatchEvent(new Event("icegatheringstatechange"));
  }
  async setRemoteDescription(d: { type: string; sdp: string }): Promise<void> {
    if (this.rejectAnswer) throw this.rejectAnswer;
    this.remoteDescription = { ...d };
  }
  async getStats(): Promise<Map<string, Record<string, unknown>>> {
    return this.stats;
  }
  close(): void {
    this.closed = true;
    this.connectionState = "closed";
  }
  get channel(): FakeChannel {
    return this.channels[0]!;
  }
  /** One candidate arrives (host by default); it also lands in the local SDP as real
   * browsers do, and carries its parsed `type` as RTCIceCandidate does. */
  gatherCandidate(
    c = `candidate:${this.candidates.length} 1 udp 1 127.0.0.1 9 typ host`,
  ): void {
    this.candidates.push(c);
    if (this.localDescription) this.localDescription.sdp += `\na=${c}`;
    const type = / typ (\w+)/.exec(c)?.[1] ?? null;
    this.dispatchEvent(
      Object.assign(new Event("icecandidate"), {
        candidate: { candidate: c, type },
      }),
    );
  }
  /** A relay candidate from a TURN server. */
  gatherRelay(): void {
    const n = this.candidates.length;
    this.gatherCandidate(`candidate:${n} 1 udp 1 203.0.113.9 3478 typ relay`);
  }
  /** The end-of-candidates marker some browsers send instead of the state change. */
  endOfCandidates(): void {
    this.dispatchEvent(
      Object.assign(new Event("icecandidate"), { candidate: null }),
    );
  }
  completeGathering(): void {
    this.iceGatheringState = "complete";
    this.dispatchEvent(new Event("icegatheringstatechange"));
  }
  setConnectionState(s: RTCPeerConnectionState): void {
    this.connectionState = s;
    this.dispatchEvent(new Event("connectionstatechange"));
  }
  emitTrack(
    track = new FakeTrack(),
    streams: FakeStream[] = [new FakeStream([track])],
  ): void {
    this.dispatchEvent(Object.assign(new Event("track"), { track, streams }));
  }
}

export class FakeMeter implements LevelMeter {
  value = 0;
  closed = false;
  rms(): number {
    return this.value;
  }
  close(): void {
    this.closed = true;
  }
}

export interface FakeWorld {
  deps: CallDeps;
  pcs: FakePC[];
  mics: FakeStream[];
  sinks: { stream: unknown; stopped: boolean; fail(e: unknown): void }[];
  meters: Map<unknown, FakeMeter>;
  getUserMedia: ReturnType<typeof vi.fn>;
  /** The newest peer connection. */
  pc(): FakePC;
}

/** Deps wired to fakes; timers go through the globals at call time so vi.useFakeTimers works. */
export function fakeWorld(
  opts: { micError?: Error; audio?: AudioDeps } = {},
): FakeWorld {
  const pcs: FakePC[] = [];
  const mics: FakeStream[] = [];
  const sinks: FakeWorld["sinks"] = [];
  const meters = new Map<unknown, FakeMeter>();
  const getUserMedia = vi.fn(async () => {
    if (opts.micError) throw opts.micError;
    const s = new FakeStream();
    mics.push(s);
    return s;
  });
  const deps: CallDeps = {
    createPeerConnection: (config) => {
      const pc = new FakePC(config);
      pcs.push(pc);
      return pc as unknown as RTCPeerConnection;
    },
    getUserMedia: getUserMedia as unknown as CallDeps["getUserMedia"],
    createStream: (tracks) =>
      new FakeStream(
        tracks as unknown as FakeTrack[],
      ) as unknown as MediaStream,
    playRemote: (stream, onError): AudioSink => {
      const sink = { stream, stopped: false, fail: onError };
      sinks.push(sink);
      return {
        stop() {
          sink.stopped = true;
        },
      };
    },
    createMeter: (stream) => {
      const m = new FakeMeter();
      meters.set(stream, m);
      return m;
    },
    now: () => Date.now(),
    audio: opts.audio,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as number),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (h) => clearInterval(h as number),
  };
  return {
    deps,
    pcs,
    mics,
    sinks,
    meters,
    getUserMedia,
    pc: () => pcs[pcs.length - 1]!,
  };
}

type Handler = (...args: unknown[]) => void;

/** The anywidget model surface the front end uses, plus `trigger` and a log of sends. */
export class FakeModel {
  readonly attrs: Record<string, unknown>;
  readonly sent: Record<string, unknown>[] = [];
  /** The buffers sent with each message of `sent` (same index; undefined when none). */
  readonly sentBuffers: (ArrayBuffer[] | undefined)[] = [];
  saves = 0;
  private handlers = new Map<string, Set<Handler>>();
  readonly widget_manager = {};

  constructor(attrs: Record<string, unknown> = {}) {
    this.attrs = {
      status: "disconnected",
      error: "",
      mic: true,
      muted: false,
      ...attrs,
    };
  }
  get(key: string): unknown {
    return this.attrs[key];
  }
  set(key: string, value: unknown): void {
    if (this.attrs[key] === value) return;
    this.attrs[key] = value;
    this.trigger(`change:${key}`);
  }
  on(name: string, cb: Handler): void {
    let set = this.handlers.get(name);
    if (!set) this.handlers.set(name, (set = new Set()));
    set.add(cb);
  }
  off(name?: string | null, cb?: Handler | null): void {
    if (!name) this.handlers.clear();
    else if (!cb) this.handlers.delete(name);
    else this.handlers.get(name)?.delete(cb);
  }
  send(
    content: Record<string, unknown>,
    _callbacks?: unknown,
    buffers?: ArrayBuffer[],
  ): void {
    this.sent.push(content);
    this.sentBuffers.push(buffers);
  }
  save_changes(): void {
    this.saves++;
  }
  trigger(name: string, ...args: unknown[]): void {
    for (const cb of [...(this.handlers.get(name) ?? [])]) cb(...args);
  }
  /** Deliver a custom message from Python. */
  msg(content: Record<string, unknown>, buffers: unknown[] = []): void {
    this.trigger("msg:custom", content, buffers);
  }
  listenerCount(name: string): number {
    return this.handlers.get(name)?.size ?? 0;
  }
  asModel(): WidgetModel {
    return this as unknown as WidgetModel;
  }
  /** Sent messages of one kind. */
  ofKind(kind: string): Record<string, unknown>[] {
    return this.sent.filter((m) => m.kind === kind);
  }
  /** Requests from the page's buttons and code (not its standing ask for ICE servers). */
  requests(): Record<string, unknown>[] {
    return this.ofKind("request").filter((m) => m.action !== "prepare");
  }
  /** Every record from every `events` message, in order. */
  records(): {
    seq: number;
    dir: string;
    t_ms: number;
    event: Record<string, unknown>;
  }[] {
    return this.ofKind("events").flatMap((m) => m.records as never[]);
  }
}

/**
 * Take a controller's call through the protocol to an open channel: Python's `connect`
 * (`extra` overrides its fields), gathering complete, the answer, the channel open.
 */
export async function connectCall(
  model: FakeModel,
  world: FakeWorld,
  call = 1,
  extra: Record<string, unknown> = {},
): Promise<void> {
  model.msg({
    kind: "connect",
    call,
    ice_servers: [],
    session_update: { type: "session.update", session: {} },
    queued: [],
    mic: true,
    gather_timeout_ms: 800,
    ...extra,
  });
  await settle();
  world.pc().completeGathering();
  await settle();
  model.msg({ kind: "answer", call, sdp: "v=0 answer" });
  await settle();
  world.pc().channel.open();
}

/** Let pending promise chains run (several awaits deep) without advancing timers. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** A frame scheduler the test runs by hand, so rAF batching is deterministic. */
export class ManualFrames {
  private queue = new Map<number, () => void>();
  private next = 1;
  request = (cb: () => void): number => {
    const h = this.next++;
    this.queue.set(h, cb);
    return h;
  };
  cancel = (h: number): void => {
    this.queue.delete(h);
  };
  get pending(): number {
    return this.queue.size;
  }
  /** Run the callbacks queued so far (ones they queue wait for the next frame). */
  frame(): void {
    const cbs = [...this.queue.values()];
    this.queue.clear();
    for (const cb of cbs) cb();
  }
}

/** A controller on a fake world, its view mounted in the document, on fake timers. */
export interface Mounted {
  world: FakeWorld;
  model: FakeModel;
  ctrl: Controller;
  frames: ManualFrames;
  el: HTMLElement;
  view: MountedView;
  /** Play a server event on the call's data channel. */
  serverSend(ev: RealtimeEvent): void;
  /** Unmount `view`, dispose `ctrl` and give the real timers back. */
  destroy(): void;
}

/** Mount a fresh controller and view (in a `beforeEach`; `destroy()` it in an `afterEach`). */
export function mountWorld(systemTime?: number): Mounted {
  vi.useFakeTimers();
  if (systemTime !== undefined) vi.setSystemTime(systemTime);
  const world = fakeWorld();
  const model = new FakeModel();
  const ctrl = new Controller(model.asModel(), world.deps);
  const frames = new ManualFrames();
  const el = document.createElement("div");
  document.body.append(el);
  const view = mountView(el, model.asModel(), ctrl, frames);
  return {
    world,
    model,
    ctrl,
    frames,
    el,
    view,
    serverSend: (ev) => world.pc().channel.receive(JSON.stringify(ev)),
    destroy() {
      this.view.destroy(); // the current ones: a test may mount another view or controller
      this.ctrl.dispose();
      this.el.remove();
      vi.useRealTimers();
    },
  };
}

/** The controller tests' rig: a controller on a fresh fake world and model for each test, with
 * fake timers, disposed after it. Read its parts as `rig.world`, `rig.model`, `rig.ctrl`. */
export function controllerRig(): {
  world: FakeWorld;
  model: FakeModel;
  ctrl: Controller;
} {
  const rig = {} as { world: FakeWorld; model: FakeModel; ctrl: Controller };
  beforeEach(() => {
    vi.useFakeTimers();
    rig.world = fakeWorld();
    rig.model = new FakeModel();
    rig.ctrl = new Controller(rig.model.asModel(), rig.world.deps);
  });
  afterEach(() => {
    rig.ctrl.dispose();
    vi.useRealTimers();
  });
  return rig;
}
