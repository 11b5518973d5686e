/** The live transcript: one node per turn, patched in place as deltas stream in. */

import type { Store } from "../store";
import type { Turn } from "../transcript";
import { h, setAttr, setText } from "./dom";
import { FrameTask, type FrameScheduler } from "./frame";

interface TurnNode {
  el: HTMLElement;
  text: HTMLElement;
  badge: HTMLElement;
}

function who(turn: Turn): string {
  if (turn.role === "system") return "Error";
  if (turn.role === "assistant") return "Agent";
  return turn.source === "speech" ? "You (spoke)" : "You (typed)";
}

function badge(turn: Turn): string {
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

export class TranscriptView {
  readonly el: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly nodes = new Map<string, TurnNode>();
  private readonly dirty = new Map<string, Turn>();
  private readonly removed = new Set<string>();
  private readonly task: FrameTask;
  private readonly unsubscribe: () => void;

  constructor(store: Store, frames: FrameScheduler) {
    this.empty = h("div", { class: "rtw-empty" }, "No conversation yet.");
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
    );
    this.task = new FrameTask(frames, () => this.flush());
    for (const turn of store.transcript.turns) this.dirty.set(turn.id, turn);
    this.flush();
    this.unsubscribe = store.subscribe((c) => {
      if (c.type !== "turns") return;
      for (const t of c.changed) this.dirty.set(t.id, t);
      for (const t of c.removed) {
        this.dirty.delete(t.id);
        this.removed.add(t.id);
      }
      this.task.schedule();
    });
  }

  destroy(): void {
    this.unsubscribe();
    this.task.cancel();
  }

  private flush(): void {
    // Follow the conversation only if the reader was already at the bottom.
    const stick =
      this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 24;
    for (const id of this.removed) {
      this.nodes.get(id)?.el.remove();
      this.nodes.delete(id);
    }
    this.removed.clear();
    for (const turn of this.dirty.values()) this.patch(turn);
    this.dirty.clear();
    this.empty.hidden = this.nodes.size > 0;
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  private patch(turn: Turn): void {
    let node = this.nodes.get(turn.id);
    if (!node) {
      const text = h("span", { class: "rtw-turn-text" });
      const b = h("span", { class: "rtw-badge" });
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
      );
      node = { el, text, badge: b };
      this.nodes.set(turn.id, node);
      this.el.append(el);
    }
    // An empty speech placeholder shows an ellipsis until its transcription arrives.
    setText(node.text, turn.text || (turn.status === "streaming" ? "…" : ""));
    const b = badge(turn);
    setText(node.badge, b);
    node.badge.hidden = b === "";
    setAttr(node.el, "data-status", turn.status);
    // aria-busy holds back announcements of a reply still streaming in, word by word.
    setAttr(node.el, "aria-busy", turn.status === "streaming" ? "true" : null);
  }
}
