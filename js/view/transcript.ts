/**
 * The live transcript: one node per turn, patched in place as deltas stream in. The kernel's
 * tool calls (trait `tool_calls`) sit inside the reply turn of their response, or after every
 * turn while that turn is not known here (yet).
 */

import type { WidgetModel } from "../controller";
import type { Store } from "../store";
import {
  parseToolCalls,
  placeToolCalls,
  type ToolCall,
  type Turn,
} from "../transcript";
import { h, setAttr, setText } from "./dom";
import { FrameTask, type FrameScheduler } from "./frame";
import { ToolCallView, type ToolActions } from "./tools";

interface TurnNode {
  el: HTMLElement;
  text: HTMLElement;
  badge: HTMLElement;
  /** This turn's tool calls (hidden while it has none). */
  tools: HTMLElement;
}

function who(turn: Turn): string {
  if (turn.role === "system") return "Error";
  if (turn.role === "assistant") return "Agent";
  return turn.source === "speech" ? "You (spoke)" : "You (typed)";
}

function statusBadge(turn: Turn): string {
  switch (turn.status) {
    case "cancelled":
      return turn.reason === "turn_detected" ? "interrupted" : "cancelled";
    case "failed":
      return turn.role === "system" ? "" : "failed";
    case "incomplete":
      return turn.reason ? `incomplete: ${turn.reason}` : "incomplete";
    default:
      return "";
  }
}

/** Where a stopped reply's audio was cut: the model keeps only what was heard. */
export function cutWords(turn: Turn): string {
  if (turn.truncatedMs === undefined) return "";
  return `cut at ${(turn.truncatedMs / 1000).toFixed(1)} s: the agent remembers only what was heard`;
}

function badge(turn: Turn): string {
  return [statusBadge(turn), cutWords(turn)]
    .filter((x) => x !== "")
    .join(" · ");
}

export class TranscriptView {
  readonly el: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly nodes = new Map<string, TurnNode>();
  private readonly dirty = new Map<string, Turn>();
  private readonly removed = new Set<string>();
  private readonly task: FrameTask;
  private readonly cleanups: (() => void)[] = [];
  /** Calls whose turn is not known: after every turn, and kept there as turns are added. */
  private readonly trailing: HTMLElement;
  private readonly calls = new Map<string, ToolCallView>();
  /** The trait's calls as last read, oldest first. */
  private order: ToolCall[] = [];
  /** The trait changed, or turns came or went: the calls may belong somewhere else. */
  private placeDirty = true;
  private traitDirty = true;

  constructor(
    private readonly store: Store,
    frames: FrameScheduler,
    private readonly model?: WidgetModel,
    private readonly actions?: ToolActions,
  ) {
    this.empty = h("div", { class: "rtw-empty" }, "No conversation yet.");
    this.trailing = h("div", {
      class: "rtw-tool-calls rtw-tool-calls-trailing",
      "data-testid": "rtw-tool-calls-trailing",
    });
    this.el = h(
      "div",
      {
        class: "rtw-transcript",
        role: "log",
        "aria-live": "polite",
        "aria-label": "Transcript",
        tabindex: "0",
        "data-testid": "rtw-transcript",
      },
      this.empty,
      this.trailing,
    );
    this.task = new FrameTask(frames, () => this.flush());
    for (const turn of store.transcript.turns) this.dirty.set(turn.id, turn);
    this.flush();
    const unsubscribe = store.subscribe((c) => {
      if (c.type !== "turns") return;
      for (const t of c.changed) {
        this.dirty.set(t.id, t);
        // A reply can learn a call_id on the channel after the trait named the call.
        if (t.role === "assistant" && this.calls.size > 0)
          this.placeDirty = true;
      }
      for (const t of c.removed) {
        this.dirty.delete(t.id);
        this.removed.add(t.id);
      }
      this.task.schedule();
    });
    this.cleanups.push(unsubscribe, () => this.task.cancel());
    if (model) {
      const onTrait = () => {
        this.traitDirty = true;
        this.task.schedule();
      };
      model.on("change:tool_calls", onTrait);
      this.cleanups.push(() => model.off("change:tool_calls", onTrait));
    }
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    for (const v of this.calls.values()) v.destroy();
    this.calls.clear();
  }

  private flush(): void {
    // Follow the conversation only if the reader was already at the bottom.
    const stick =
      this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 24;
    for (const id of this.removed) {
      // Its calls go with it for now; placeCalls puts them back at the end.
      this.nodes.get(id)?.el.remove();
      this.nodes.delete(id);
      this.placeDirty = true;
    }
    this.removed.clear();
    for (const turn of this.dirty.values()) this.patch(turn);
    this.dirty.clear();
    if (this.traitDirty) this.readCalls();
    if (this.placeDirty) this.placeCalls();
    this.empty.hidden = this.nodes.size > 0 || this.calls.size > 0;
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  /** Draw the trait's calls: patch the known ones, add new ones, drop the ones it dropped. */
  private readCalls(): void {
    this.traitDirty = false;
    this.placeDirty = true;
    if (!this.model || !this.actions) return;
    const calls = parseToolCalls(this.model.get("tool_calls"));
    const keep = new Set(calls.map((c) => c.callId));
    for (const [id, v] of this.calls)
      if (!keep.has(id)) {
        v.destroy();
        this.calls.delete(id);
      }
    this.order = calls;
    for (const call of calls) {
      const v = this.calls.get(call.callId);
      if (v) v.update(call);
      else this.calls.set(call.callId, new ToolCallView(call, this.actions));
    }
  }

  /** Move each call's node into its turn (or the trailing box), in the trait's order. */
  private placeCalls(): void {
    this.placeDirty = false;
    const transcript = this.store.transcript;
    const { byTurn, trailing } = placeToolCalls(this.order, (call) => {
      const turn = transcript.turnOfToolCall(call);
      return turn && this.nodes.has(turn.id) ? turn : undefined;
    });
    const fill = (box: HTMLElement, calls: readonly ToolCall[]) => {
      calls.forEach((call, i) => {
        const el = this.calls.get(call.callId)!.el;
        // Only misplaced nodes move: a moved node loses focus (a half-typed reason keeps it).
        if (box.children[i] !== el)
          box.insertBefore(el, box.children[i] ?? null);
      });
    };
    for (const [turnId, calls] of byTurn)
      fill(this.nodes.get(turnId)!.tools, calls);
    fill(this.trailing, trailing);
    // Every node sits in its box now; a box emptied by the moves hides.
    for (const node of this.nodes.values())
      node.tools.hidden = node.tools.childElementCount === 0;
    this.trailing.hidden = this.trailing.childElementCount === 0;
  }

  private patch(turn: Turn): void {
    let node = this.nodes.get(turn.id);
    if (!node) {
      const text = h("span", { class: "rtw-turn-text" });
      const b = h("span", { class: "rtw-badge" });
      const tools = h("div", { class: "rtw-tool-calls", hidden: true });
      const el = h(
        "div",
        {
          class: `rtw-turn rtw-turn-${turn.role}`,
          "data-turn": turn.id,
          "data-source": turn.source,
        },
        h("span", { class: "rtw-who" }, who(turn)),
        text,
        b,
        tools,
      );
      node = { el, text, badge: b, tools };
      this.nodes.set(turn.id, node);
      this.el.insertBefore(el, this.trailing);
      this.placeDirty = true;
    }
    // An empty speech placeholder shows an ellipsis until its transcription arrives.
    setText(node.text, turn.text || (turn.status === "streaming" ? "…" : ""));
    const b = badge(turn);
    setText(node.badge, b);
    node.badge.hidden = b === "";
    setAttr(node.el, "data-status", turn.status);
    setAttr(
      node.el,
      "data-truncated-ms",
      turn.truncatedMs === undefined ? null : String(turn.truncatedMs),
    );
    // aria-busy holds back announcements of a reply still streaming in, word by word.
    setAttr(node.el, "aria-busy", turn.status === "streaming" ? "true" : null);
  }
}
