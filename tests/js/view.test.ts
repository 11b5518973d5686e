import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Controller } from "../../js/controller";
import { meterValue } from "../../js/view/header";
import { mountView, type MountedView } from "../../js/view/index";
import {
  FakeModel,
  ManualFrames,
  fakeWorld,
  type FakeWorld,
  connectCall,
  mountWorld,
  type Mounted,
} from "./fakes";

/** Messages from the browser name their page; its id is random per controller. */
const PAGE = expect.any(String);

let m: Mounted;
let world: FakeWorld;
let model: FakeModel;
let ctrl: Controller;
let frames: ManualFrames;
let el: HTMLElement;
let view: MountedView;
let serverSend: Mounted["serverSend"];

const $ = <T extends HTMLElement = HTMLElement>(id: string) =>
  el.querySelector<T>(`[data-testid="${id}"]`)!;

beforeEach(() => {
  m = mountWorld();
  ({ world, model, ctrl, frames, el, view, serverSend } = m);
});
afterEach(() => m.destroy());

/** Take the controller's call to "connected" through the protocol. */
async function connect(call = 1) {
  await connectCall(model, world, call);
}

describe("header", () => {
  it("has the stable test ids and accessible controls", () => {
    for (const id of [
      "rtw-status",
      "rtw-connect",
      "rtw-mute",
      "rtw-transcript",
      "rtw-input",
      "rtw-send",
      "rtw-error",
      "rtw-inspector",
    ]) {
      expect($(id), id).not.toBeNull();
    }
    expect($("rtw-connect").getAttribute("aria-label")).toBeTruthy();
    expect($("rtw-mute").getAttribute("aria-label")).toBeTruthy();
    expect(el.querySelectorAll("[role=meter]")).toHaveLength(2);
    expect($("rtw-transcript").getAttribute("aria-live")).toBe("polite");
    expect($("rtw-error").getAttribute("role")).toBe("alert");
    expect(
      el.querySelector(".rtw-root")!.getAttribute("data-lm-suppress-shortcuts"),
    ).toBe("true");
  });

  it("shows the status trait and follows both local state and Python", async () => {
    expect($("rtw-status").textContent).toBe("disconnected");
    expect($("rtw-connect").textContent).toBe("Connect");
    model.set("status", "connecting");
    expect($("rtw-status").textContent).toBe("connecting");
    await connect();
    // the browser knows first...
    expect($("rtw-status").textContent).toBe("connected");
    expect($("rtw-connect").textContent).toBe("Disconnect");
    // ...and Python has the last word
    model.set("status", "disconnected");
    expect($("rtw-status").textContent).toBe("disconnected");
  });

  it("Connect/Disconnect ask Python to act", () => {
    $("rtw-connect").click();
    expect(model.requests()).toEqual([
      { kind: "request", page: PAGE, action: "connect" },
    ]);
    model.set("status", "connected");
    $("rtw-connect").click();
    expect(model.requests().at(-1)).toEqual({
      kind: "request",
      page: PAGE,
      action: "disconnect",
    });
  });

  it("Mute toggles the synced trait and saves it", () => {
    const mute = $<HTMLButtonElement>("rtw-mute");
    expect(mute.getAttribute("aria-pressed")).toBe("false");
    mute.click();
    expect(model.attrs.muted).toBe(true);
    expect(model.saves).toBe(1);
    expect(mute.getAttribute("aria-pressed")).toBe("true");
    expect(mute.textContent).toBe("Unmute");
    model.set("mic", false);
    expect(mute.disabled).toBe(true);
  });

  it("animates the meters from the call's levels while connected", async () => {
    await connect();
    world.meters.get(world.mics[0])!.value = 0.1; // -20 dBFS
    vi.advanceTimersByTime(300); // aria-valuenow is throttled to 4 Hz
    frames.frame();
    const micMeter = el.querySelector<HTMLElement>(
      "[data-testid=rtw-mic-meter]",
    )!;
    expect(micMeter.getAttribute("aria-valuenow")).toBe(
      String(Math.round(meterValue(0.1) * 100)),
    );
    expect(
      micMeter.querySelector<HTMLElement>(".rtw-meter-fill")!.style.transform,
    ).toBe("scaleX(0.667)");
    expect(frames.pending).toBe(1); // keeps running while connected
    expect($("rtw-speaking").textContent).toBe("You are speaking");
    model.msg({ kind: "disconnect", call: 1 });
    frames.frame();
    expect(micMeter.getAttribute("aria-valuenow")).toBe("0");
    expect(frames.pending).toBe(0); // and stops when not
  });

  it("meterValue maps -60..0 dBFS to 0..1", () => {
    expect(meterValue(0)).toBe(0);
    expect(meterValue(1)).toBe(1);
    expect(meterValue(0.001)).toBe(0);
    expect(meterValue(0.1)).toBeCloseTo(2 / 3);
  });
});

describe("error banner and notices", () => {
  it("shows the error trait when non-empty", () => {
    expect($("rtw-error").hidden).toBe(true);
    model.set("error", "HTTP 401: check your API key");
    expect($("rtw-error").hidden).toBe(false);
    expect($("rtw-error").textContent).toBe("HTTP 401: check your API key");
    model.set("error", "");
    expect($("rtw-error").hidden).toBe(true);
  });

  it("shows a local failure before Python catches up", async () => {
    await connect();
    world.pc().setConnectionState("failed");
    expect($("rtw-status").textContent).toBe("failed");
    expect($("rtw-error").textContent).toBe("ICE connection failed");
  });

  it("shows the mic notice without calling it an error", async () => {
    view.destroy();
    ctrl.dispose();
    world = fakeWorld({
      micError: new DOMException("denied", "NotAllowedError"),
    });
    m.ctrl = ctrl = new Controller(model.asModel(), world.deps);
    m.view = view = mountView(el, model.asModel(), ctrl, frames);
    await connect();
    expect($("rtw-error").hidden).toBe(true);
    expect($("rtw-notice").textContent).toContain(
      "Microphone unavailable (NotAllowedError)",
    );
  });
});

describe("composer", () => {
  it("Enter sends send_text through Python and clears the box", () => {
    const input = $<HTMLInputElement>("rtw-input");
    input.value = "  Hello!  ";
    const ev = new KeyboardEvent("keydown", {
      key: "Enter",
      bubbles: true,
      cancelable: true,
    });
    const notebook = vi.fn();
    el.addEventListener("keydown", notebook);
    input.dispatchEvent(ev);
    expect(model.requests()).toEqual([
      { kind: "request", page: PAGE, action: "send_text", text: "Hello!" },
    ]);
    expect(input.value).toBe("");
    expect(notebook).not.toHaveBeenCalled(); // notebook shortcuts never see the keys
  });

  it("Send button sends; empty text is not sent", () => {
    const input = $<HTMLInputElement>("rtw-input");
    $("rtw-send").click();
    expect(model.requests()).toHaveLength(0);
    input.value = "Hi";
    $("rtw-send").click();
    expect(model.requests()).toEqual([
      { kind: "request", page: PAGE, action: "send_text", text: "Hi" },
    ]);
  });
});

describe("transcript view", () => {
  it("groups by turn, patches the same node as deltas stream, marks interruptions", async () => {
    await connect();
    // typed message recorded when actually sent on the channel
    model.msg({
      kind: "send",
      call: 1,
      events: [
        {
          type: "conversation.item.create",
          item: {
            type: "message",
            role: "user",
            content: [{ type: "input_text", text: "Tell me a story" }],
          },
        },
        { type: "response.create" },
      ],
    });
    serverSend({ type: "response.created", response: { id: "r1" } });
    serverSend({
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      delta: "Once",
    });
    expect($("rtw-transcript").querySelectorAll(".rtw-turn")).toHaveLength(0); // waits for a frame
    frames.frame();
    const turns = () => [
      ...$("rtw-transcript").querySelectorAll<HTMLElement>(".rtw-turn"),
    ];
    expect(turns()).toHaveLength(2);
    const reply = turns()[1]!;
    expect(reply.getAttribute("aria-busy")).toBe("true");
    serverSend({
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      delta: " upon",
    });
    serverSend({
      type: "response.output_audio_transcript.delta",
      response_id: "r1",
      delta: " a time",
    });
    frames.frame();
    expect(turns()[1]).toBe(reply); // patched in place, not re-rendered
    expect(reply.querySelector(".rtw-turn-text")!.textContent).toBe(
      "Once upon a time",
    );
    serverSend({
      type: "response.done",
      response: {
        id: "r1",
        status: "cancelled",
        status_details: { reason: "turn_detected" },
      },
    });
    frames.frame();
    expect(reply.dataset.status).toBe("cancelled");
    expect(reply.querySelector(".rtw-badge")!.textContent).toBe("interrupted");
    expect(reply.hasAttribute("aria-busy")).toBe(false);
    expect(turns()[0]!.querySelector(".rtw-who")!.textContent).toBe(
      "You (typed)",
    );
    expect(turns()[0]!.querySelector(".rtw-turn-text")!.textContent).toBe(
      "Tell me a story",
    );
  });

  it("a view opened later starts from the same conversation", async () => {
    await connect();
    serverSend({
      type: "response.output_text.delta",
      response_id: "r1",
      delta: "Hi",
    });
    const el2 = document.createElement("div");
    const v2 = mountView(el2, model.asModel(), ctrl, frames);
    expect(el2.querySelector(".rtw-turn-text")!.textContent).toBe("Hi");
    v2.destroy();
    expect(el2.childElementCount).toBe(0);
  });
});

describe("inspector", () => {
  const rows = () => [
    ...$("rtw-inspector").querySelectorAll<HTMLElement>(".rtw-row"),
  ];
  const types = () =>
    rows().map((r) => r.querySelector(".rtw-type")!.textContent);
  const open = () => {
    const d = $<HTMLDetailsElement>("rtw-inspector");
    d.open = true;
    d.dispatchEvent(new Event("toggle"));
    frames.frame();
  };

  it("does no row work while collapsed, then shows newest first when opened", async () => {
    await connect();
    serverSend({ type: "session.created" });
    serverSend({ type: "session.updated" });
    frames.frame();
    expect(rows()).toHaveLength(0);
    open();
    expect(types().slice(0, 3)).toEqual([
      "session.updated",
      "session.created",
      "session.update",
    ]);
    serverSend({ type: "response.created", response: { id: "r" } });
    frames.frame();
    expect(types()[0]).toBe("response.created");
    expect($("rtw-inspector").querySelector("summary")!.textContent).toContain(
      `(${rows().length})`,
    );
  });

  it("filters by type substring and by direction", async () => {
    await connect();
    serverSend({
      type: "response.output_text.delta",
      response_id: "r",
      delta: "x",
    });
    serverSend({ type: "response.done", response: { id: "r" } });
    open();
    const typeInput = $<HTMLInputElement>("rtw-filter-type");
    typeInput.value = "RESPONSE.";
    typeInput.dispatchEvent(new Event("input"));
    frames.frame();
    expect(types()).toEqual(["response.done", "response.output_text.delta"]);
    typeInput.value = "";
    typeInput.dispatchEvent(new Event("input"));
    const dir = $<HTMLSelectElement>("rtw-filter-dir");
    dir.value = "client";
    dir.dispatchEvent(new Event("change"));
    frames.frame();
    expect(types()).toEqual(["session.update"]);
    expect(rows().every((r) => r.dataset.dir === "client")).toBe(true);
    // new records honour the filter too
    model.msg({ kind: "send", call: 1, events: [{ type: "response.create" }] });
    serverSend({ type: "response.created", response: { id: "r2" } });
    frames.frame();
    expect(types()).toEqual(["response.create", "session.update"]);
  });

  it("stays bounded at 500 rows, newest kept", async () => {
    await connect();
    open();
    for (let i = 0; i < 300; i++) serverSend({ type: "delta", i });
    frames.frame();
    for (let i = 300; i < 700; i++) serverSend({ type: "delta", i });
    frames.frame();
    expect(rows()).toHaveLength(500);
    const seqs = rows().map((r) =>
      Number(r.querySelector(".rtw-seq")!.textContent!.slice(1)),
    );
    expect(seqs[0]).toBe(Math.max(...seqs));
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    // a flood larger than the bound in one frame rebuilds from the store's ring
    for (let i = 700; i < 2000; i++) serverSend({ type: "delta", i });
    frames.frame();
    expect(rows()).toHaveLength(500);
    const first = rows()[0]!.querySelector("pre")!;
    expect(first.textContent).toBe(""); // JSON is rendered only when a row is opened
    const details = rows()[0]!.querySelector("details")!;
    details.open = true;
    details.dispatchEvent(new Event("toggle"));
    expect(JSON.parse(first.textContent!).event).toEqual({
      type: "delta",
      i: 1999,
    });
  });
});

describe("cleanup", () => {
  it("removes its listeners and DOM; the call keeps running", async () => {
    await connect();
    const before = model.listenerCount("change:status");
    view.destroy();
    expect(el.childElementCount).toBe(0);
    expect(model.listenerCount("change:status")).toBe(before - 2);
    expect(model.listenerCount("change:error")).toBe(0);
    expect(world.pc().closed).toBe(false);
    expect(ctrl.store.status).toBe("connected");
    m.view = view = mountView(el, model.asModel(), ctrl, frames); // for afterEach
  });
});

describe("stop button", () => {
  it("is a keyboard-reachable labelled button, disabled while nothing is in flight", () => {
    const stop = $<HTMLButtonElement>("rtw-stop");
    expect(stop.tagName).toBe("BUTTON");
    expect(stop.type).toBe("button");
    expect(stop.tabIndex).toBe(0);
    expect(stop.getAttribute("aria-label")).toBeTruthy();
    expect(stop.disabled).toBe(true);
    expect(el.querySelector(".rtw-header")!.contains(stop)).toBe(true);
  });

  it("enables between response.created and its response.done; click cancels", async () => {
    await connect();
    const stop = $<HTMLButtonElement>("rtw-stop");
    stop.click(); // disabled: nothing sent
    expect(model.requests()).toHaveLength(0);
    serverSend({ type: "response.created", response: { id: "r1" } });
    expect(stop.disabled).toBe(false);
    // a second reply overlapping the first keeps it enabled until both are done
    serverSend({ type: "response.created", response: { id: "r2" } });
    serverSend({ type: "response.done", response: { id: "r1" } });
    expect(stop.disabled).toBe(false);
    stop.click();
    expect(model.requests()).toEqual([
      { kind: "request", page: PAGE, action: "cancel_response" },
    ]);
    serverSend({
      type: "response.done",
      response: { id: "r2", status: "cancelled" },
    });
    expect(stop.disabled).toBe(true);
    stop.click();
    expect(model.requests()).toHaveLength(1);
  });

  it("disables when the call ends mid-reply, and a later view starts right", async () => {
    await connect();
    serverSend({ type: "response.created", response: { id: "r1" } });
    const el2 = document.createElement("div");
    const v2 = mountView(el2, model.asModel(), ctrl, frames);
    const stop2 = el2.querySelector<HTMLButtonElement>(
      "[data-testid=rtw-stop]",
    )!;
    expect(stop2.disabled).toBe(false);
    model.msg({ kind: "disconnect", call: 1 });
    expect($<HTMLButtonElement>("rtw-stop").disabled).toBe(true);
    expect(stop2.disabled).toBe(true);
    v2.destroy();
  });
});

describe("stop button: per call", () => {
  it("stays live while the reply's audio plays after response.done", async () => {
    await connect();
    const stop = $<HTMLButtonElement>("rtw-stop");
    serverSend({ type: "response.created", response: { id: "r1" } });
    serverSend({ type: "output_audio_buffer.started", response_id: "r1" });
    serverSend({ type: "response.done", response: { id: "r1" } });
    expect(stop.disabled).toBe(false);
    serverSend({ type: "output_audio_buffer.stopped", response_id: "r1" });
    expect(stop.disabled).toBe(true);
  });

  it("a new call starts with Stop disabled, whatever the old call left in flight", async () => {
    await connect(1);
    serverSend({ type: "response.created", response: { id: "r1" } });
    serverSend({ type: "output_audio_buffer.started", response_id: "r1" });
    const stop = $<HTMLButtonElement>("rtw-stop");
    expect(stop.disabled).toBe(false);
    await connect(2); // Python replaces the call without a disconnect in between
    expect(stop.disabled).toBe(true);
    stop.click();
    expect(model.requests()).toHaveLength(0); // no cancel with nothing in flight
    serverSend({ type: "response.created", response: { id: "r2" } });
    expect(stop.disabled).toBe(false);
  });
});

describe("latency summary", () => {
  const text = () => $("rtw-latency").textContent;

  it("shows dashes until the kernel has a figure and never announces itself", () => {
    expect($("rtw-latency").getAttribute("aria-live")).toBe("off");
    expect(text()).toBe("last turn — · median — (0 turns)");
  });

  it("draws the kernel's live_latency trait and redraws when it changes", () => {
    model.set("live_latency", { last_ms: 412.4, median_ms: 380, count: 1 });
    expect(text()).toBe("last turn 412 ms · median 380 ms (1 turn)");
    model.set("live_latency", { last_ms: 300, median_ms: 356.5, count: 12 });
    expect(text()).toBe("last turn 300 ms · median 357 ms (12 turns)");
  });

  it("a view opened later starts from the trait as it stands", () => {
    model.set("live_latency", { last_ms: 250, median_ms: 250, count: 1 });
    const el2 = document.createElement("div");
    const v2 = mountView(el2, model.asModel(), ctrl, frames);
    expect(el2.querySelector("[data-testid=rtw-latency]")!.textContent).toBe(
      "last turn 250 ms · median 250 ms (1 turn)",
    );
    v2.destroy();
    expect(model.listenerCount("change:live_latency")).toBe(1); // only the first view's
  });

  it("shows no figure for a missing or malformed trait", () => {
    model.set("live_latency", { last_ms: "x", median_ms: null, count: -3 });
    expect(text()).toBe("last turn — · median — (0 turns)");
    model.set("live_latency", null);
    expect(text()).toBe("last turn — · median — (0 turns)");
  });

  it("computes nothing itself: turns on the channel leave it alone", async () => {
    await connect();
    serverSend({ type: "input_audio_buffer.speech_stopped" });
    serverSend({
      type: "response.created",
      response: { id: "r1", output_modalities: ["text"] },
    });
    serverSend({ type: "response.text.delta", response_id: "r1", delta: "x" });
    serverSend({ type: "response.done", response: { id: "r1" } });
    expect(text()).toBe("last turn — · median — (0 turns)");
  });
});

describe("tool calls in the transcript", () => {
  /** A `tool_calls` trait entry as the kernel sends it. */
  const entry = (callId: string, over: Record<string, unknown> = {}) => ({
    call_id: callId,
    name: "get_weather",
    arguments: '{"city":"Paris"}',
    status: "running",
    output_preview: "",
    error: "",
    duration_ms: null,
    response_id: "",
    ...over,
  });
  const setCalls = (calls: unknown) => {
    model.set("tool_calls", calls);
    frames.frame();
  };
  const turns = () => [
    ...$("rtw-transcript").querySelectorAll<HTMLElement>(".rtw-turn"),
  ];
  const callEl = (id: string, root: ParentNode = el) =>
    root.querySelector<HTMLElement>(`[data-call-id="${id}"]`);
  const trailing = () => $("rtw-tool-calls-trailing");

  /** A response that only calls a tool: its output item, then its done. */
  function toolOnlyResponse(responseId: string, callId: string) {
    serverSend({
      type: "response.output_item.added",
      response_id: responseId,
      item: { id: `i-${callId}`, type: "function_call", call_id: callId },
    });
    serverSend({
      type: "response.done",
      response: { id: responseId, status: "completed" },
    });
  }

  it("shows a call in the turn of its response, between the turns around it", async () => {
    await connect();
    model.msg({
      kind: "send",
      call: 1,
      events: [
        {
          type: "conversation.item.create",
          item: {
            type: "message",
            role: "user",
            content: [{ type: "input_text", text: "Weather in Paris?" }],
          },
        },
      ],
    });
    toolOnlyResponse("r1", "c1");
    serverSend({
      type: "response.output_text.delta",
      response_id: "r2",
      delta: "It is 21 degrees.",
    });
    setCalls([
      entry("c1", {
        status: "ok",
        output_preview: '{"temp":21}',
        duration_ms: 8,
        response_id: "r1",
      }),
    ]);
    expect(turns().map((t) => t.dataset.turn)).toEqual([
      expect.stringMatching(/^typed:|^item:/),
      "response:r1",
      "response:r2",
    ]);
    const c1 = callEl("c1", turns()[1]!)!;
    expect(c1).not.toBeNull();
    expect(c1.querySelector(".rtw-tool-name")!.textContent).toBe("get_weather");
    expect(c1.querySelector(".rtw-tool-args")!.textContent).toBe(
      '{"city":"Paris"}',
    );
    expect(c1.querySelector(".rtw-tool-result")!.textContent).toBe(
      '{"temp":21}',
    );
    expect(c1.querySelector(".rtw-tool-duration")!.textContent).toBe("8 ms");
    expect(trailing().hidden).toBe(true);
  });

  it("puts a call whose turn is unknown at the end, and moves it in when the turn appears", async () => {
    await connect();
    serverSend({
      type: "response.output_text.delta",
      response_id: "r1",
      delta: "Hello.",
    });
    setCalls([entry("c1", { response_id: "r2" })]);
    expect(callEl("c1", trailing())).not.toBeNull();
    expect(trailing().hidden).toBe(false);
    // the trailing box stays after every turn as turns are added
    serverSend({ type: "error", error: { message: "boom" } });
    frames.frame();
    expect($("rtw-transcript").lastElementChild).toBe(trailing());
    const node = callEl("c1")!;
    toolOnlyResponse("r2", "c1");
    frames.frame();
    expect(callEl("c1", turns().at(-1)!)).toBe(node); // the same node, moved
    expect(trailing().hidden).toBe(true);
  });

  it("finds the turn by call_id when the kernel gives no response_id", async () => {
    await connect();
    toolOnlyResponse("r1", "c1");
    setCalls([entry("c1")]);
    expect(callEl("c1", turns()[0]!)).not.toBeNull();
    // a reply already on screen that only later carries the call's id takes it in
    serverSend({
      type: "response.output_text.delta",
      response_id: "r2",
      delta: "Let me check.",
    });
    setCalls([entry("c1"), entry("c2")]);
    expect(callEl("c2", trailing())).not.toBeNull();
    serverSend({
      type: "response.function_call_arguments.done",
      response_id: "r2",
      call_id: "c2",
      arguments: "{}",
    });
    frames.frame();
    expect(callEl("c2", turns()[1]!)).not.toBeNull();
  });

  it("patches calls in place as the trait changes, and drops the ones it drops", async () => {
    await connect();
    toolOnlyResponse("r1", "c1");
    setCalls([entry("c1", { response_id: "r1" })]);
    const node = callEl("c1")!;
    expect(node.dataset.status).toBe("running");
    expect(node.querySelector(".rtw-tool-status")!.textContent).toBe(
      "running…",
    );
    setCalls([
      entry("c1", {
        response_id: "r1",
        status: "timeout",
        error: "no answer in 30 s",
        duration_ms: 30000,
      }),
    ]);
    expect(callEl("c1")).toBe(node);
    expect(node.dataset.status).toBe("timeout");
    expect(node.querySelector(".rtw-tool-result")!.textContent).toBe(
      "no answer in 30 s",
    );
    expect(node.querySelector(".rtw-tool-duration")!.textContent).toBe(
      "30.00 s",
    );
    setCalls([entry("c2")]);
    expect(callEl("c1")).toBeNull();
    expect(callEl("c2")).not.toBeNull();
    expect(
      turns()[0]!.querySelector(".rtw-tool-calls")!.hasAttribute("hidden"),
    ).toBe(true);
  });

  it("Approve and Reject ask Python, then wait for the trait", async () => {
    setCalls([
      entry("c1", { status: "pending_approval" }),
      entry("c2", { status: "pending_approval", name: "delete_rows" }),
    ]);
    const approve = callEl("c1")!.querySelector<HTMLButtonElement>(
      "[data-testid=rtw-tool-approve]",
    )!;
    approve.click();
    expect(approve.disabled).toBe(true);
    const c2 = callEl("c2")!;
    c2.querySelector<HTMLInputElement>("[data-testid=rtw-tool-reason]")!.value =
      "too risky";
    c2.querySelector<HTMLButtonElement>(
      "[data-testid=rtw-tool-reject]",
    )!.click();
    expect(model.requests()).toEqual([
      { kind: "request", page: PAGE, action: "approve", call_id: "c1" },
      {
        kind: "request",
        page: PAGE,
        action: "reject",
        call_id: "c2",
        reason: "too risky",
      },
    ]);
    // one page, one id: both requests name the controller's page
    expect(new Set(model.requests().map((m) => m.page))).toEqual(
      new Set([ctrl.page]),
    );
    setCalls([
      entry("c1", { status: "running" }),
      entry("c2", { status: "rejected", error: "too risky" }),
    ]);
    expect(
      callEl("c1")!.querySelector<HTMLElement>(".rtw-tool-approval")!.hidden,
    ).toBe(true);
    expect(callEl("c2")!.querySelector(".rtw-tool-result")!.textContent).toBe(
      "too risky",
    );
  });

  it("every view of the widget shows the same calls; each cleans up its own", () => {
    setCalls([entry("c1", { status: "pending_approval" })]);
    const el2 = document.createElement("div");
    const v2 = mountView(el2, model.asModel(), ctrl, frames);
    expect(callEl("c1", el2)).not.toBeNull();
    setCalls([entry("c1", { status: "ok", output_preview: "done!" })]);
    for (const root of [el, el2])
      expect(
        callEl("c1", root)!.querySelector(".rtw-tool-result")!.textContent,
      ).toBe("done!");
    const before = model.listenerCount("change:tool_calls");
    v2.destroy();
    expect(model.listenerCount("change:tool_calls")).toBe(before - 1);
  });

  it("a malformed trait draws nothing broken", async () => {
    await connect();
    serverSend({
      type: "response.output_text.delta",
      response_id: "r1",
      delta: "Hi",
    });
    for (const bad of [null, "calls", 42, { call_id: "c1" }, [null, 3, {}]]) {
      setCalls(bad);
      expect(el.querySelectorAll(".rtw-tool-call")).toHaveLength(0);
      expect(turns()).toHaveLength(1);
      expect(trailing().hidden).toBe(true);
    }
    setCalls([{ call_id: "c1" }]); // every other field missing
    const node = callEl("c1")!;
    expect(node.querySelector(".rtw-tool-name")!.textContent).toBe(
      "(unnamed tool)",
    );
    expect(node.querySelector(".rtw-tool-status")!.textContent).toBe(
      "status unknown",
    );
    expect(node.querySelector<HTMLElement>(".rtw-tool-approval")!.hidden).toBe(
      true,
    );
  });

  it("a call whose turn falls off the bounded transcript moves to the end, not away", async () => {
    await connect();
    toolOnlyResponse("r1", "c1");
    setCalls([entry("c1", { response_id: "r1" })]);
    expect(callEl("c1", turns()[0]!)).not.toBeNull();
    // the store keeps 1000 turns: 1000 more push r1 off the front
    for (let i = 0; i < 1000; i++)
      serverSend({ type: "error", error: { message: `e${i}` } });
    frames.frame();
    expect(el.querySelector('[data-turn="response:r1"]')).toBeNull();
    expect(callEl("c1", trailing())).not.toBeNull();
  });

  it("with no turns yet, a call alone hides the empty-transcript note", () => {
    expect(el.querySelector<HTMLElement>(".rtw-empty")!.hidden).toBe(false);
    setCalls([entry("c1")]);
    expect(el.querySelector<HTMLElement>(".rtw-empty")!.hidden).toBe(true);
  });
});
