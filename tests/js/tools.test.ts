/**
 * Tool calls: reading the kernel's `tool_calls` trait, finding each call's turn, and one
 * call's view (status, result, Approve / Reject). The transcript view's placement of calls
 * among turns is in view.test.ts, through a mounted widget.
 */
import { describe, expect, it, vi } from "vitest";

import type { Direction, EventRecord, RealtimeEvent } from "../../js/bridge";
import {
  MAX_TOOL_CALLS,
  Transcript,
  parseToolCalls,
  placeToolCalls,
  type ToolCall,
} from "../../js/transcript";
import { ToolCallView, formatDuration } from "../../js/view/tools";

/** A trait entry as the kernel sends it (snake_case, every field present). */
function entry(
  callId: string,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    call_id: callId,
    name: "get_weather",
    arguments: '{"city":"Paris"}',
    status: "running",
    output_preview: "",
    error: "",
    duration_ms: null,
    response_id: "",
    ...over,
  };
}

const call = (callId: string, over: Record<string, unknown> = {}): ToolCall =>
  parseToolCalls([entry(callId, over)])[0]!;

function feeder(t: Transcript) {
  let seq = 0;
  return (dir: Direction, event: RealtimeEvent) => {
    const rec: EventRecord = { seq: seq++, dir, t_ms: 0, event };
    return t.apply(rec);
  };
}

describe("parseToolCalls", () => {
  it("reads every field of a well-formed entry", () => {
    expect(
      parseToolCalls([
        entry("c1", {
          status: "ok",
          output_preview: '{"temp":21}',
          duration_ms: 12.5,
          response_id: "r1",
        }),
      ]),
    ).toEqual([
      {
        callId: "c1",
        name: "get_weather",
        arguments: '{"city":"Paris"}',
        status: "ok",
        rawStatus: "ok",
        outputPreview: '{"temp":21}',
        error: "",
        durationMs: 12.5,
        responseId: "r1",
      },
    ]);
  });

  it("turns anything that is not a list into no calls", () => {
    for (const raw of [undefined, null, "x", 3, { call_id: "c1" }])
      expect(parseToolCalls(raw)).toEqual([]);
  });

  it("skips entries without a call_id and fills missing or mistyped fields", () => {
    const calls = parseToolCalls([
      null,
      "c1",
      { name: "no id" },
      { call_id: "" },
      {
        call_id: "c2",
        name: 7,
        arguments: { city: "Oslo" },
        status: "exploded",
        output_preview: null,
        duration_ms: Number.NaN,
        response_id: 5,
      },
      { call_id: "c3", duration_ms: -4 },
    ]);
    expect(calls).toEqual([
      {
        callId: "c2",
        name: "",
        arguments: '{"city":"Oslo"}', // an object where text was promised, shown as JSON
        status: "unknown",
        rawStatus: "exploded",
        outputPreview: "",
        error: "",
        durationMs: null,
        responseId: "",
      },
      {
        callId: "c3",
        name: "",
        arguments: "",
        status: "unknown",
        rawStatus: "",
        outputPreview: "",
        error: "",
        durationMs: null,
        responseId: "",
      },
    ]);
  });

  it("keeps one entry per call_id, the latest, in the latest place", () => {
    const calls = parseToolCalls([
      entry("c1"),
      entry("c2"),
      entry("c1", { status: "ok" }),
    ]);
    expect(calls.map((c) => [c.callId, c.status])).toEqual([
      ["c2", "running"],
      ["c1", "ok"],
    ]);
  });

  it("draws at most MAX_TOOL_CALLS, the newest, and clips huge text", () => {
    const raw = Array.from({ length: MAX_TOOL_CALLS + 20 }, (_, i) =>
      entry(`c${i}`),
    );
    const calls = parseToolCalls(raw);
    expect(calls).toHaveLength(MAX_TOOL_CALLS);
    expect(calls[0]!.callId).toBe("c20");
    const big = parseToolCalls([entry("x", { arguments: "a".repeat(10_000) })]);
    expect(big[0]!.arguments.length).toBeLessThan(2100);
    expect(big[0]!.arguments.endsWith("…")).toBe(true);
  });
});

describe("Transcript: the turn of a tool call", () => {
  it("a tool-call-only response gets a reply turn for its call to sit in", () => {
    const t = new Transcript();
    const feed = feeder(t);
    const added = feed("server", {
      type: "response.output_item.added",
      response_id: "r1",
      output_index: 0,
      item: {
        id: "item1",
        type: "function_call",
        call_id: "c1",
        name: "get_weather",
      },
    });
    expect(added.changed.map((x) => x.id)).toEqual(["response:r1"]);
    // argument deltas for a call already known do not re-report the turn
    const delta = feed("server", {
      type: "response.function_call_arguments.delta",
      response_id: "r1",
      item_id: "item1",
      call_id: "c1",
      delta: '{"ci',
    });
    expect(delta.changed).toEqual([]);
    feed("server", {
      type: "response.done",
      response: { id: "r1", status: "completed" },
    });
    expect(t.turns.map((x) => [x.role, x.text, x.status])).toEqual([
      ["assistant", "", "done"],
    ]);
    // found by response_id, and by call_id when the kernel does not know the response
    expect(t.turnOfToolCall(call("c1", { response_id: "r1" }))?.id).toBe(
      "response:r1",
    );
    expect(t.turnOfToolCall(call("c1"))?.id).toBe("response:r1");
    expect(t.turnOfToolCall(call("c9"))).toBeUndefined();
    expect(t.turnOfToolCall(call("c9", { response_id: "r7" }))).toBeUndefined();
  });

  it("a message output item makes no turn by itself (words still do)", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "response.output_item.added",
      response_id: "r1",
      item: { id: "m1", type: "message", role: "assistant" },
    });
    expect(t.turns).toEqual([]);
  });

  it("a call's turn that falls off the front forgets its call ids", () => {
    const t = new Transcript(2);
    const feed = feeder(t);
    feed("server", {
      type: "response.function_call_arguments.done",
      response_id: "r1",
      call_id: "c1",
      arguments: "{}",
    });
    expect(t.turnOfToolCall(call("c1"))?.id).toBe("response:r1");
    feed("server", { type: "error", error: { message: "a" } });
    feed("server", { type: "error", error: { message: "b" } });
    expect(t.get("response:r1")).toBeUndefined();
    expect(t.turnOfToolCall(call("c1"))).toBeUndefined();
  });
});

describe("placeToolCalls", () => {
  it("groups calls by turn in trait order; calls with no known turn go last", () => {
    const t = new Transcript();
    const feed = feeder(t);
    feed("server", {
      type: "response.output_text.delta",
      response_id: "r1",
      delta: "Checking.",
    });
    feed("server", {
      type: "response.output_text.delta",
      response_id: "r2",
      delta: "And more.",
    });
    const calls = parseToolCalls([
      entry("a", { response_id: "r2" }),
      entry("b", { response_id: "r1" }),
      entry("c", { response_id: "r-unknown" }),
      entry("d", { response_id: "r2" }),
      entry("e"),
    ]);
    const { byTurn, trailing } = placeToolCalls(calls, (c) =>
      t.turnOfToolCall(c),
    );
    const ids = (cs: ToolCall[] | undefined) => cs?.map((c) => c.callId);
    expect(ids(byTurn.get("response:r1"))).toEqual(["b"]);
    expect(ids(byTurn.get("response:r2"))).toEqual(["a", "d"]);
    expect(ids(trailing)).toEqual(["c", "e"]);
  });
});

describe("ToolCallView", () => {
  const actions = () => ({
    requestApprove: vi.fn<(callId: string) => void>(),
    requestReject: vi.fn<(callId: string, reason: string) => void>(),
  });
  const q = <T extends HTMLElement = HTMLElement>(
    v: ToolCallView,
    id: string,
  ) => v.el.querySelector<T>(`[data-testid="${id}"]`)!;

  it("shows name, arguments, status, result and duration", () => {
    const v = new ToolCallView(call("c1"), actions());
    expect(v.el.querySelector(".rtw-tool-name")!.textContent).toBe(
      "get_weather",
    );
    expect(v.el.querySelector(".rtw-tool-args")!.textContent).toBe(
      '{"city":"Paris"}',
    );
    expect(v.el.dataset.status).toBe("running");
    expect(q(v, "rtw-tool-status").textContent).toBe("running…");
    expect(v.el.getAttribute("aria-busy")).toBe("true");
    expect(q(v, "rtw-tool-result").hidden).toBe(true);
    expect(q(v, "rtw-tool-duration").hidden).toBe(true);
    v.update(
      call("c1", { status: "ok", output_preview: "21 C", duration_ms: 12.4 }),
    );
    expect(q(v, "rtw-tool-status").textContent).toBe("done");
    expect(q(v, "rtw-tool-result").textContent).toBe("21 C");
    expect(q(v, "rtw-tool-duration").textContent).toBe("12 ms");
    expect(v.el.hasAttribute("aria-busy")).toBe(false);
  });

  it("shows what went wrong for each failure status", () => {
    const v = new ToolCallView(call("c1"), actions());
    for (const [status, error, words] of [
      ["error", "ValueError: no city", "error"],
      ["timeout", "took longer than 30 s", "timed out"],
      ["invalid_arguments", "city: field required", "invalid arguments"],
      ["unknown_tool", "no tool named get_weather", "unknown tool"],
      ["rejected", "not now", "rejected"],
    ]) {
      v.update(call("c1", { status, error, duration_ms: 1500 }));
      expect(v.el.dataset.status).toBe(status);
      expect(q(v, "rtw-tool-status").textContent).toBe(words);
      expect(q(v, "rtw-tool-result").textContent).toBe(error);
      expect(q(v, "rtw-tool-duration").textContent).toBe("1.50 s");
    }
    v.update(call("c1", { status: "ok" }));
    expect(q(v, "rtw-tool-result").textContent).toBe("(no output)");
    // a status this page does not know shows in the kernel's word, with no buttons
    v.update(call("c1", { status: "waiting_for_arguments" }));
    expect(v.el.dataset.status).toBe("unknown");
    expect(q(v, "rtw-tool-status").textContent).toBe("waiting for arguments");
    expect(v.el.querySelector<HTMLElement>(".rtw-tool-approval")!.hidden).toBe(
      true,
    );
  });

  it("Approve sends the call id once; the buttons wait for the trait to change", () => {
    const a = actions();
    const v = new ToolCallView(call("c1", { status: "pending_approval" }), a);
    const approve = q<HTMLButtonElement>(v, "rtw-tool-approve");
    const reject = q<HTMLButtonElement>(v, "rtw-tool-reject");
    expect(approve.closest<HTMLElement>(".rtw-tool-approval")!.hidden).toBe(
      false,
    );
    expect(approve.getAttribute("aria-label")).toBe(
      "Approve the get_weather call",
    );
    approve.click();
    approve.click();
    reject.click();
    expect(a.requestApprove.mock.calls).toEqual([["c1"]]);
    expect(a.requestReject).not.toHaveBeenCalled();
    expect(approve.disabled).toBe(true);
    expect(reject.disabled).toBe(true);
    // the kernel still holds it (say the request was not taken): usable again
    v.update(call("c1", { status: "pending_approval" }));
    expect(approve.disabled).toBe(false);
    // the kernel runs it: the approval controls go away
    v.update(call("c1", { status: "running" }));
    expect(approve.closest<HTMLElement>(".rtw-tool-approval")!.hidden).toBe(
      true,
    );
    approve.click();
    expect(a.requestApprove).toHaveBeenCalledTimes(1);
  });

  it("Reject sends the trimmed reason, by click or Enter in the reason box", () => {
    const a = actions();
    const v = new ToolCallView(call("c1", { status: "pending_approval" }), a);
    const reason = q<HTMLInputElement>(v, "rtw-tool-reason");
    reason.value = "  not in production  ";
    q(v, "rtw-tool-reject").click();
    expect(a.requestReject.mock.calls).toEqual([["c1", "not in production"]]);
    expect(reason.disabled).toBe(true);

    const w = new ToolCallView(call("c2", { status: "pending_approval" }), a);
    const key = new KeyboardEvent("keydown", { key: "Enter", bubbles: true });
    const outside = vi.fn();
    w.el.addEventListener("keydown", outside);
    q(w, "rtw-tool-reason").dispatchEvent(key);
    expect(a.requestReject.mock.calls[1]).toEqual(["c2", ""]);
    expect(outside).not.toHaveBeenCalled(); // notebook shortcuts never see the typing
  });

  it("destroy removes the node and its listeners", () => {
    const a = actions();
    const v = new ToolCallView(call("c1", { status: "pending_approval" }), a);
    const host = document.createElement("div");
    host.append(v.el);
    const approve = q<HTMLButtonElement>(v, "rtw-tool-approve");
    v.destroy();
    expect(host.childElementCount).toBe(0);
    approve.click();
    expect(a.requestApprove).not.toHaveBeenCalled();
  });

  it("formatDuration: ms under a second, seconds above, nothing when unknown", () => {
    expect(formatDuration(null)).toBe("");
    expect(formatDuration(0.4)).toBe("0 ms");
    expect(formatDuration(999)).toBe("999 ms");
    expect(formatDuration(1234)).toBe("1.23 s");
  });
});
