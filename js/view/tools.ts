/**
 * One tool call as the transcript shows it: name, arguments, status, result or error and
 * duration, and for a call held for approval the Approve / Reject controls. The kernel runs
 * the tools; this only draws its `tool_calls` trait and asks it to act.
 */

import type { Controller } from "../controller";
import type { ToolCall } from "../transcript";
import { h, setAttr, setText } from "./dom";

export type ToolActions = Pick<Controller, "requestApprove" | "requestReject">;

/** The kernel trims reasons to this length; the box stops there so nothing is lost silently. */
const MAX_REASON_CHARS = 2000;

const STATUS_WORDS: Record<ToolCall["status"], string> = {
  pending_approval: "awaiting approval",
  running: "running…",
  ok: "done",
  error: "error",
  timeout: "timed out",
  invalid_arguments: "invalid arguments",
  unknown_tool: "unknown tool",
  rejected: "rejected",
  unknown: "status unknown",
};

export function formatDuration(ms: number | null): string {
  if (ms === null) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** The line under the call: its output when it succeeded, what went wrong when not. */
function resultText(call: ToolCall): string {
  switch (call.status) {
    case "pending_approval":
    case "running":
      return "";
    case "ok":
      return call.outputPreview === "" ? "(no output)" : call.outputPreview;
    default:
      return call.error || call.outputPreview;
  }
}

export class ToolCallView {
  readonly el: HTMLElement;
  private readonly nameEl: HTMLElement;
  private readonly argsEl: HTMLElement;
  private readonly statusEl: HTMLElement;
  private readonly durationEl: HTMLElement;
  private readonly resultEl: HTMLElement;
  private readonly approval: HTMLElement;
  private readonly approveBtn: HTMLButtonElement;
  private readonly rejectBtn: HTMLButtonElement;
  private readonly reason: HTMLInputElement;
  /** A decision was sent from this view; the buttons wait for the kernel's next word. */
  private decided = false;
  private call: ToolCall;
  private readonly cleanups: (() => void)[] = [];

  constructor(call: ToolCall, actions: ToolActions) {
    this.call = call;
    this.nameEl = h("span", { class: "rtw-tool-name" });
    this.argsEl = h("code", { class: "rtw-tool-args" });
    this.statusEl = h("span", {
      class: "rtw-tool-status",
      "data-testid": "rtw-tool-status",
    });
    this.durationEl = h("span", {
      class: "rtw-tool-duration",
      "data-testid": "rtw-tool-duration",
    });
    this.resultEl = h("div", {
      class: "rtw-tool-result",
      "data-testid": "rtw-tool-result",
    });
    this.approveBtn = h(
      "button",
      {
        type: "button",
        class: "rtw-btn rtw-btn-primary",
        "data-testid": "rtw-tool-approve",
      },
      "Approve",
    );
    this.reason = h("input", {
      type: "text",
      class: "rtw-input rtw-tool-reason",
      placeholder: "Reason (optional)",
      maxlength: String(MAX_REASON_CHARS),
      autocomplete: "off",
      "data-testid": "rtw-tool-reason",
    });
    this.rejectBtn = h(
      "button",
      {
        type: "button",
        class: "rtw-btn rtw-btn-reject",
        "data-testid": "rtw-tool-reject",
      },
      "Reject",
    );
    this.approval = h(
      "div",
      { class: "rtw-tool-approval" },
      this.approveBtn,
      this.reason,
      this.rejectBtn,
    );
    this.el = h(
      "div",
      { class: "rtw-tool-call", role: "group", "data-testid": "rtw-tool-call" },
      h(
        "div",
        { class: "rtw-tool-head" },
        h("span", { class: "rtw-tool-icon", "aria-hidden": "true" }, "ƒ"),
        this.nameEl,
        this.argsEl,
        this.statusEl,
        this.durationEl,
      ),
      this.resultEl,
      this.approval,
    );

    const approve = () => {
      if (!this.canDecide()) return;
      this.decide();
      actions.requestApprove(this.call.callId);
    };
    const reject = () => {
      if (!this.canDecide()) return;
      this.decide();
      actions.requestReject(this.call.callId, this.reason.value.trim());
    };
    const onKey = (ev: KeyboardEvent) => {
      // Keep notebook shortcuts (a, b, dd, ...) from firing while typing a reason.
      ev.stopPropagation();
      if (ev.key === "Enter" && !ev.isComposing) {
        ev.preventDefault();
        reject();
      }
    };
    this.approveBtn.addEventListener("click", approve);
    this.rejectBtn.addEventListener("click", reject);
    this.reason.addEventListener("keydown", onKey);
    this.cleanups.push(
      () => this.approveBtn.removeEventListener("click", approve),
      () => this.rejectBtn.removeEventListener("click", reject),
      () => this.reason.removeEventListener("keydown", onKey),
    );
    this.draw();
  }

  get callId(): string {
    return this.call.callId;
  }

  /** The trait changed: draw the call's latest state; a decision sent earlier is answered. */
  update(call: ToolCall): void {
    this.call = call;
    this.decided = false;
    this.draw();
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.el.remove();
  }

  private canDecide(): boolean {
    return this.call.status === "pending_approval" && !this.decided;
  }

  private decide(): void {
    this.decided = true;
    this.drawApproval();
  }

  private draw(): void {
    const c = this.call;
    const name = c.name || "(unnamed tool)";
    setAttr(this.el, "data-call-id", c.callId);
    setAttr(this.el, "data-status", c.status);
    setAttr(this.el, "aria-label", `Tool call ${name}`);
    // Hold back announcing a running call; a call awaiting approval must be heard at once.
    setAttr(this.el, "aria-busy", c.status === "running" ? "true" : null);
    setText(this.nameEl, name);
    setText(this.argsEl, c.arguments);
    this.argsEl.hidden = c.arguments === "";
    // A status this page does not know (a newer kernel's) is shown in the kernel's own word.
    setText(
      this.statusEl,
      c.status === "unknown" && c.rawStatus
        ? c.rawStatus.replace(/_/g, " ")
        : STATUS_WORDS[c.status],
    );
    setAttr(this.statusEl, "data-status", c.status);
    const duration = formatDuration(c.durationMs);
    setText(this.durationEl, duration);
    this.durationEl.hidden = duration === "";
    const result = resultText(c);
    setText(this.resultEl, result);
    this.resultEl.hidden = result === "";
    setAttr(this.approveBtn, "aria-label", `Approve the ${name} call`);
    setAttr(this.rejectBtn, "aria-label", `Reject the ${name} call`);
    setAttr(
      this.reason,
      "aria-label",
      `Reason for rejecting ${name} (optional)`,
    );
    this.drawApproval();
  }

  private drawApproval(): void {
    const pending = this.call.status === "pending_approval";
    this.approval.hidden = !pending;
    this.approveBtn.disabled = !this.canDecide();
    this.rejectBtn.disabled = !this.canDecide();
    this.reason.disabled = !this.canDecide();
  }
}
