import { describe, expect, it, vi } from "vitest";

import { Controller } from "../../js/controller";
import widget, { ControllerRegistry, modelKey } from "../../js/widget";
import {
  FakeModel,
  controllerRig,
  fakeWorld,
  settle,
  connectCall,
} from "./fakes";

/** Messages from the browser name their page; its id is random per controller. */
const PAGE = expect.any(String);

const SESSION_UPDATE = { type: "session.update", session: { voice: "Clive" } };

function connectMsg(call: number, extra: Record<string, unknown> = {}) {
  return {
    kind: "connect",
    call,
    ice_servers: [{ urls: "stun:127.0.0.1:3478" }],
    session_update: SESSION_UPDATE,
    queued: [],
    mic: true,
    gather_timeout_ms: 800,
    ...extra,
  };
}

const rig = controllerRig();

/** Python side of a happy connect: connect -> (offer) -> answer -> channel opens. */
async function connect(call: number, extra: Record<string, unknown> = {}) {
  await connectCall(rig.model, rig.world, call, {
    ice_servers: [{ urls: "stun:127.0.0.1:3478" }],
    session_update: SESSION_UPDATE,
    ...extra,
  });
  await vi.advanceTimersByTimeAsync(5); // let the batch flush
}

describe("Controller: no record numbered and lost", () => {
  it("a flood in one task never builds a batch over the kernel's limit (which drops the tail)", async () => {
    await connect(1);
    const before = rig.model.records().length;
    for (let i = 0; i < 1200; i++)
      rig.world
        .pc()
        .channel.receive(
          JSON.stringify({ type: "response.output_text.delta", i }),
        );
    await vi.advanceTimersByTimeAsync(10);
    const sizes = rig.model
      .ofKind("events")
      .map((m) => (m.records as []).length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(500);
    const seqs = rig.model.records().map((r) => r.seq);
    expect(seqs).toEqual([...Array(seqs.length).keys()]);
    expect(seqs.length - before).toBe(1200);
  });

  it("an unserialisable record is refused under its number; the rest of its batch goes", async () => {
    await connect(1);
    // A local record the page cannot serialise (a BigInt), in the middle of a burst.
    const c = rig.ctrl as unknown as {
      record(call: number, dir: string, ev: Record<string, unknown>): void;
    };
    c.record(1, "local", { type: "stats", i: 0 });
    c.record(1, "local", { type: "stats", bad: BigInt(1) });
    c.record(1, "local", { type: "stats", i: 2 });
    await vi.advanceTimersByTimeAsync(100); // diagnostics go within the batcher's lazyMs
    const recs = rig.model.records();
    const seqs = recs.map((r) => r.seq);
    expect(seqs).toEqual([...Array(seqs.length).keys()]);
    expect(recs.slice(-3).map((r) => r.event.type)).toEqual([
      "stats",
      "send.refused",
      "stats",
    ]);
  });
});

describe("Controller: the protocol end to end", () => {
  it("connect -> offer -> answer -> connected, with records and states for Python", async () => {
    await connect(1, { queued: [{ type: "response.create" }] });
    const offers = rig.model.ofKind("offer");
    expect(offers).toEqual([
      { kind: "offer", call: 1, page: PAGE, sdp: "v=0 offer" },
    ]);
    expect(rig.model.ofKind("state")).toEqual([
      { kind: "state", call: 1, page: PAGE, state: "connecting", detail: "" },
      { kind: "state", call: 1, page: PAGE, state: "connected", detail: "" },
    ]);
    const recs = rig.model.records();
    expect(recs.map((r) => r.seq)).toEqual([...recs.keys()]);
    expect(recs.map((r) => `${r.dir}:${r.event.type}`)).toEqual([
      "local:call.start",
      "local:offer.sent",
      "local:answer.applied",
      "local:channel.open",
      "client:session.update",
      "client:response.create",
    ]);
    // records go before the state they explain
    const kinds = rig.model.sent.map((m) => m.kind);
    expect(kinds.lastIndexOf("events")).toBeLessThan(
      kinds.lastIndexOf("state"),
    );
    expect(rig.ctrl.store.status).toBe("connected");
  });

  it("batches a burst of server events into one events message", async () => {
    await connect(1);
    const before = rig.model.ofKind("events").length;
    const ch = rig.world.pc().channel;
    for (let i = 0; i < 50; i++) {
      ch.receive(
        JSON.stringify({
          type: "response.output_text.delta",
          response_id: "r",
          delta: `${i} `,
        }),
      );
    }
    expect(rig.model.ofKind("events")).toHaveLength(before);
    await vi.advanceTimersByTimeAsync(4);
    const batches = rig.model.ofKind("events").slice(before);
    expect(batches).toHaveLength(1);
    expect((batches[0]!.records as unknown[]).length).toBe(50);
    expect(rig.ctrl.store.transcript.turns[0]!.text.startsWith("0 1 2 ")).toBe(
      true,
    );
  });

  it("send messages are queued until open, then go after session.update", async () => {
    rig.model.msg(
      connectMsg(1, {
        queued: [{ type: "conversation.item.create", item: {} }],
      }),
    );
    rig.model.msg({
      kind: "send",
      call: 1,
      events: [{ type: "response.create" }],
    });
    await settle();
    rig.world.pc().completeGathering();
    await settle();
    rig.model.msg({ kind: "answer", call: 1, sdp: "a" });
    await settle();
    rig.world.pc().channel.open();
    expect(
      rig.world
        .pc()
        .channel.sentEvents()
        .map((e) => e.type),
    ).toEqual([
      "session.update",
      "conversation.item.create",
      "response.create",
    ]);
  });

  it("signal_error -> failed, released; a later connect works with a new call", async () => {
    rig.model.msg(connectMsg(1));
    await settle();
    rig.world.pc().completeGathering();
    await settle();
    rig.model.msg({
      kind: "signal_error",
      call: 1,
      message: "HTTP 401: check your API key",
    });
    expect(rig.model.ofKind("state").at(-1)).toEqual({
      kind: "state",
      call: 1,
      page: PAGE,
      state: "failed",
      detail: "HTTP 401: check your API key",
    });
    const first = rig.world.pc();
    expect(first.closed).toBe(true);
    expect(rig.world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(rig.ctrl.store.detail).toBe("HTTP 401: check your API key");

    await connect(2);
    expect(rig.world.pcs).toHaveLength(2);
    expect(rig.model.ofKind("state").at(-1)).toMatchObject({
      call: 2,
      state: "connected",
    });
  });

  it("an unexpected close fails the call and a reconnect works", async () => {
    await connect(1);
    rig.world.pc().channel.remoteClose();
    expect(rig.model.ofKind("state").at(-1)).toMatchObject({
      call: 1,
      state: "failed",
      detail: "The data channel closed unexpectedly",
    });
    await connect(2);
    expect(rig.ctrl.store.status).toBe("connected");
  });

  it("a connect for a new call closes the active one first", async () => {
    await connect(1);
    const old = rig.world.pc();
    rig.model.msg(connectMsg(2));
    expect(old.closed).toBe(true);
    const states = rig.model.ofKind("state").map((m) => [m.call, m.state]);
    expect(states.slice(-2)).toEqual([
      [1, "disconnected"],
      [2, "connecting"],
    ]);
    // a duplicate connect for the live call is ignored
    await settle();
    rig.model.msg(connectMsg(2));
    expect(rig.world.pcs).toHaveLength(2);
  });

  it("disconnect closes the call and releases the mic", async () => {
    await connect(1);
    rig.model.msg({ kind: "disconnect", call: 1 });
    expect(rig.world.pc().closed).toBe(true);
    expect(rig.world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    expect(rig.model.ofKind("state").at(-1)).toEqual({
      kind: "state",
      call: 1,
      page: PAGE,
      state: "disconnected",
      detail: "",
    });
  });

  it("answers a disconnect for an unknown call so Python never waits", () => {
    rig.model.msg({ kind: "disconnect", call: 9 });
    expect(rig.model.ofKind("state")).toEqual([
      { kind: "state", call: 9, page: PAGE, state: "disconnected", detail: "" },
    ]);
  });

  it("logs sends and answers for a call that is gone instead of dropping them", async () => {
    await connect(1);
    rig.model.msg({ kind: "disconnect", call: 1 });
    rig.model.msg({
      kind: "send",
      call: 1,
      events: [{ type: "response.create" }],
    });
    rig.model.msg({ kind: "answer", call: 0, sdp: "x" });
    rig.ctrl.dispose();
    const types = rig.model.records().map((r) => r.event.type);
    expect(types).toContain("send.unsent");
    expect(types).toContain("stale.message");
  });

  it("ignores custom messages that are not ours", () => {
    rig.model.msg({ kind: "something", call: 1 });
    rig.model.msg({ hello: "world" });
    expect(rig.model.sent.filter((m) => m.action !== "prepare")).toHaveLength(
      0,
    );
  });

  it("the muted trait drives the mic track", async () => {
    rig.model.attrs.muted = true;
    await connect(1);
    const track = rig.world.mics[0]!.tracks[0]!;
    expect(track.enabled).toBe(false);
    rig.model.set("muted", false);
    expect(track.enabled).toBe(true);
  });

  it("mic denied reaches Python as a state detail", async () => {
    rig.world = fakeWorld({
      micError: new DOMException("no device", "NotFoundError"),
    });
    rig.ctrl.dispose();
    rig.ctrl = new Controller(rig.model.asModel(), rig.world.deps);
    await connect(1);
    expect(rig.model.ofKind("state").at(-1)).toEqual({
      kind: "state",
      call: 1,
      page: PAGE,
      state: "connected",
      detail:
        "Microphone unavailable (NotFoundError): no microphone was found. The call goes on without it; text turns and say() still work.",
    });
    expect(
      rig.model.records().find((r) => r.event.type === "mic.error")?.event,
    ).toEqual({
      type: "mic.error",
      name: "NotFoundError",
      message: "no device",
    });
  });

  it("dispose hangs up, releases the mic, flushes pending records and stops listening", async () => {
    await connect(1);
    rig.world.pc().channel.receive(JSON.stringify({ type: "session.updated" })); // pending in a batch
    rig.ctrl.dispose();
    expect(rig.world.pc().closed).toBe(true);
    expect(rig.world.mics[0]!.tracks[0]!.readyState).toBe("ended");
    const types = rig.model.records().map((r) => r.event.type);
    expect(types).toContain("session.updated");
    expect(rig.model.ofKind("state").at(-1)).toMatchObject({
      state: "disconnected",
    });
    expect(rig.model.listenerCount("msg:custom")).toBe(0);
    expect(rig.model.listenerCount("change:muted")).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("view requests go to Python as request messages", () => {
    const resume = vi.fn();
    const c = new Controller(rig.model.asModel(), rig.world.deps, {
      audio: { resume, close: vi.fn() },
    });
    c.requestConnect();
    c.requestDisconnect();
    c.sendText("Hello!");
    c.requestCancel();
    expect(rig.model.requests()).toEqual([
      { kind: "request", page: PAGE, action: "connect" },
      { kind: "request", page: PAGE, action: "disconnect" },
      { kind: "request", page: PAGE, action: "send_text", text: "Hello!" },
      { kind: "request", page: PAGE, action: "cancel_response" },
    ]);
    expect(resume).toHaveBeenCalledOnce(); // audio unlocked inside the click
    c.dispose();
  });
});

describe("widget entry: one controller per rig.model, shared by views", () => {
  // Real anywidget hands initialize and render different proxies of one rig.model; they share
  // attribute values, so the layout object identifies the widget.
  function proxies() {
    const layout = { name: "LayoutModel" };
    const m = new FakeModel({ layout });
    const proxy = () =>
      ({
        get: (k: string) => m.get(k),
        set: (k: string, v: unknown) => m.set(k, v),
        on: (n: string, cb: () => void) => m.on(n, cb),
        off: (n: string, cb: () => void) => m.off(n, cb),
        send: (c: Record<string, unknown>) => m.send(c),
        save_changes: () => m.save_changes(),
        widget_manager: {},
      }) as unknown as ReturnType<FakeModel["asModel"]>;
    return { m, proxy };
  }

  it("keys controllers by the shared layout object, falling back to the model", () => {
    const { proxy } = proxies();
    expect(modelKey(proxy())).toBe(modelKey(proxy()));
    const bare = new FakeModel().asModel();
    expect(modelKey(bare)).toBe(bare);
  });

  it("marimo: keys by the layout reference string its proxies share", () => {
    // marimo 0.25 wraps the rig.model in a fresh object for initialize and for each render, and
    // leaves `layout` as the ipywidgets reference string it was sent as.
    const m = new FakeModel({ layout: "IPY_MODEL_0123abcd" });
    const proxy = () =>
      ({ get: (k: string) => m.get(k) }) as unknown as ReturnType<
        FakeModel["asModel"]
      >;
    expect(modelKey(proxy())).toBe("IPY_MODEL_0123abcd");
    expect(modelKey(new FakeModel({ layout: "" }).asModel())).not.toBe("");
    const reg = new ControllerRegistry();
    const got: Controller[] = [];
    reg.when(modelKey(proxy()), (c) => got.push(c)); // a view that came first
    reg.set(modelKey(proxy()), rig.ctrl);
    reg.when(modelKey(proxy()), (c) => got.push(c)); // one that came after
    expect(got).toEqual([rig.ctrl, rig.ctrl]);
    reg.delete("IPY_MODEL_other", rig.ctrl);
    const later: Controller[] = [];
    reg.when("IPY_MODEL_0123abcd", (c) => later.push(c));
    expect(later).toEqual([rig.ctrl]);
    reg.delete("IPY_MODEL_0123abcd", rig.ctrl);
    reg.when("IPY_MODEL_0123abcd", (c) => later.push(c))(); // waits, then is cancelled
    reg.set("IPY_MODEL_0123abcd", rig.ctrl);
    expect(later).toEqual([rig.ctrl]);
  });

  it("marimo: initialize and render through separate proxies share one controller", () => {
    const m = new FakeModel({ layout: "IPY_MODEL_feed" });
    const proxy = () =>
      ({
        get: (k: string) => m.get(k),
        set: (k: string, v: unknown) => m.set(k, v),
        on: (n: string, cb: () => void) => m.on(n, cb),
        off: (n: string, cb: () => void) => m.off(n, cb),
        send: (c: Record<string, unknown>) => m.send(c),
        save_changes: () => m.save_changes(),
        widget_manager: {},
      }) as unknown as ReturnType<FakeModel["asModel"]>;
    const init = widget.initialize as (p: { model: unknown }) => () => void;
    const render = widget.render as (p: {
      model: unknown;
      el: HTMLElement;
    }) => () => void;
    const el = document.createElement("div");
    const closeView = render({ model: proxy(), el }); // marimo may render first
    expect(el.querySelector("[data-testid=rtw-status]")).toBeNull();
    const cleanupInit = init({ model: proxy() });
    expect(el.querySelector("[data-testid=rtw-status]")).not.toBeNull();
    expect(m.listenerCount("msg:custom")).toBe(1);
    closeView();
    cleanupInit();
    expect(m.listenerCount("msg:custom")).toBe(0);
  });

  it("render before initialize attaches when the controller appears", () => {
    const reg = new ControllerRegistry();
    const key = {};
    const got: Controller[] = [];
    reg.when(key, (c) => got.push(c));
    reg.set(key, rig.ctrl);
    expect(got).toEqual([rig.ctrl]);
    const cancel = reg.when({}, (c) => got.push(c));
    cancel();
    expect(got).toHaveLength(1);
  });

  it("two views share one controller; closing a view does not hang up", async () => {
    const { m, proxy } = proxies();
    const init = widget.initialize as (p: { model: unknown }) => () => void;
    const render = widget.render as (p: {
      model: unknown;
      el: HTMLElement;
    }) => () => void;
    const cleanupInit = init({ model: proxy() });
    const el1 = document.createElement("div");
    const el2 = document.createElement("div");
    const closeView1 = render({ model: proxy(), el: el1 });
    const closeView2 = render({ model: proxy(), el: el2 });
    expect(el1.querySelector("[data-testid=rtw-status]")).not.toBeNull();
    expect(el2.querySelector("[data-testid=rtw-status]")).not.toBeNull();
    // exactly one msg:custom listener: the single controller
    expect(m.listenerCount("msg:custom")).toBe(1);
    m.msg({ kind: "disconnect", call: 3 });
    expect(m.ofKind("state")).toHaveLength(1); // answered once, not once per view
    closeView1();
    expect(el1.childElementCount).toBe(0);
    expect(m.listenerCount("msg:custom")).toBe(1);
    closeView2();
    cleanupInit();
    expect(m.listenerCount("msg:custom")).toBe(0);
  });
});

describe("several pages showing one widget", () => {
  it("ignores messages addressed to another page, and acts on its own and on unaddressed ones", async () => {
    rig.model.msg(connectMsg(1, { page: "someone-else" }));
    await settle();
    expect(rig.ctrl.current).toBeNull(); // another tab holds this call: no mic, no peer
    expect(rig.model.ofKind("offer")).toEqual([]);
    rig.model.msg({ kind: "disconnect", call: 1, page: "someone-else" });
    expect(rig.model.ofKind("state")).toEqual([]); // not even a confirmation

    rig.model.msg(connectMsg(2, { page: rig.ctrl.page }));
    await settle();
    expect(rig.ctrl.current?.id).toBe(2);
    rig.model.msg({ kind: "disconnect", call: 2, page: "someone-else" });
    expect(rig.ctrl.current?.isLive).toBe(true); // a hang-up meant for another page
    rig.model.msg({ kind: "disconnect", call: 2, page: "" });
    expect(rig.ctrl.current?.isLive ?? false).toBe(false);
  });

  it("names its page in everything it sends, and every controller has its own", async () => {
    const other = new Controller(new FakeModel().asModel(), rig.world.deps);
    expect(other.page).not.toBe(rig.ctrl.page);
    other.dispose();
    rig.ctrl.requestConnect();
    await connect(1);
    const pages = new Set(
      rig.model.sent.map((m) => (m as { page?: string }).page),
    );
    expect([...pages]).toEqual([rig.ctrl.page]);
  });
});
