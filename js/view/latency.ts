/**
 * One quiet line under the transcript: "last turn 412 ms · median 380 ms (12 turns)".
 * Drawn from the store's incremental summary, only when it changes (at most twice a turn).
 * Each number sits in a fixed-width slot so the line never shifts as digits come and go.
 */

import type { LatencySummary } from "../latency";
import type { Store } from "../store";
import { h, setText } from "./dom";

export function formatMs(ms: number | null): string {
  return ms === null || !Number.isFinite(ms) ? "—" : `${Math.round(ms)} ms`;
}

export function formatLatency(s: LatencySummary): {
  last: string;
  median: string;
  count: string;
} {
  return {
    last: formatMs(s.last),
    median: formatMs(s.median),
    count: s.count === 1 ? "(1 turn)" : `(${s.count} turns)`,
  };
}

export class LatencyView {
  readonly el: HTMLElement;
  private readonly last: HTMLElement;
  private readonly median: HTMLElement;
  private readonly count: HTMLElement;
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Store) {
    this.last = h("span", { class: "rtw-latency-value" });
    this.median = h("span", { class: "rtw-latency-value" });
    this.count = h("span", { class: "rtw-latency-count" });
    this.el = h(
      "div",
      {
        class: "rtw-latency",
        // It changes every turn: announcing each number would drown the conversation.
        "aria-live": "off",
        title:
          "Time from the end of your turn to the agent's first audible reply in this " +
          "browser (first text for text-only replies); median of the last measured turns",
        "data-testid": "rtw-latency",
      },
      "last turn ",
      this.last,
      " · median ",
      this.median,
      " ",
      this.count,
    );
    this.draw();
    this.unsubscribe = store.subscribe((c) => {
      if (c.type === "latency") this.draw();
    });
  }

  destroy(): void {
    this.unsubscribe();
  }

  private draw(): void {
    const text = formatLatency(this.store.latency());
    setText(this.last, text.last);
    setText(this.median, text.median);
    setText(this.count, text.count);
  }
}
