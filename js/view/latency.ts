/**
 * One quiet line under the transcript: "last turn 412 ms · median 380 ms (12 turns)".
 * The kernel owns the figure (trait `live_latency`); this only draws it when it changes.
 * Each number sits in a fixed-width slot so the line never shifts as digits come and go.
 */

import type { LiveLatency, WidgetModel } from "../controller";
import { h, setText } from "./dom";

export function formatMs(ms: number | null): string {
  return ms === null || !Number.isFinite(ms) ? "—" : `${Math.round(ms)} ms`;
}

function msOrNull(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/** The trait as drawn: anything missing or malformed (an older kernel) shows as no figure. */
export function readLiveLatency(value: unknown): LiveLatency {
  const v =
    typeof value === "object" && value !== null
      ? (value as Record<string, unknown>)
      : {};
  const count = msOrNull(v.count);
  return {
    last_ms: msOrNull(v.last_ms),
    median_ms: msOrNull(v.median_ms),
    count: count !== null && count > 0 ? Math.floor(count) : 0,
  };
}

export function formatLatency(s: LiveLatency): {
  last: string;
  median: string;
  count: string;
} {
  return {
    last: formatMs(s.last_ms),
    median: formatMs(s.median_ms),
    count: s.count === 1 ? "(1 turn)" : `(${s.count} turns)`,
  };
}

export class LatencyView {
  readonly el: HTMLElement;
  private readonly last: HTMLElement;
  private readonly median: HTMLElement;
  private readonly count: HTMLElement;
  private readonly onChange = () => this.draw();

  constructor(private readonly model: WidgetModel) {
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
    model.on("change:live_latency", this.onChange);
  }

  destroy(): void {
    this.model.off("change:live_latency", this.onChange);
  }

  private draw(): void {
    const text = formatLatency(readLiveLatency(this.model.get("live_latency")));
    setText(this.last, text.last);
    setText(this.median, text.median);
    setText(this.count, text.count);
  }
}
