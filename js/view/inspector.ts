/**
 * Event inspector: newest first, filter by type substring and direction, each row expands to
 * its JSON. Bounded to `maxRows` rows (the full log lives in Python); while collapsed it does
 * no DOM work at all and rebuilds from the store's ring when opened.
 */

import type { Direction, EventRecord } from "../bridge";
import type { Store } from "../store";
import { h, setText } from "./dom";
import { FrameTask, type FrameScheduler } from "./frame";

export const MAX_ROWS = 500;

function clock(tMs: number): string {
  const d = new Date(tMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class Inspector {
  readonly el: HTMLDetailsElement;
  private readonly summaryCount: HTMLElement;
  private readonly typeFilter: HTMLInputElement;
  private readonly dirFilter: HTMLSelectElement;
  private readonly list: HTMLOListElement;
  /** Records not yet drawn, oldest first. */
  private pending: EventRecord[] = [];
  private stale = true;
  private seen = 0;
  private readonly rowRecord = new WeakMap<Element, EventRecord>();
  private readonly task: FrameTask;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    frames: FrameScheduler,
    private readonly maxRows = MAX_ROWS,
  ) {
    this.summaryCount = h("span", { class: "rtw-count" });
    this.typeFilter = h("input", {
      type: "search",
      class: "rtw-filter",
      placeholder: "filter by type",
      "aria-label": "Filter events by type",
      "data-testid": "rtw-filter-type",
    });
    this.dirFilter = h(
      "select",
      {
        class: "rtw-filter",
        "aria-label": "Filter events by direction",
        "data-testid": "rtw-filter-dir",
      },
      h("option", { value: "" }, "all"),
      h("option", { value: "client" }, "client"),
      h("option", { value: "server" }, "server"),
      h("option", { value: "local" }, "local"),
    );
    this.list = h("ol", {
      class: "rtw-events",
      "aria-label": "Events, newest first",
    });
    this.el = h(
      "details",
      { class: "rtw-inspector", "data-testid": "rtw-inspector" },
      h("summary", {}, "Events ", this.summaryCount),
      h("div", { class: "rtw-filters" }, this.typeFilter, this.dirFilter),
      this.list,
    );
    this.task = new FrameTask(frames, () => this.flush());
    this.seen = store.records.length;
    setText(this.summaryCount, `(${this.seen})`);

    const onToggle = () => {
      if (this.el.open) this.task.schedule();
    };
    const onFilter = () => {
      this.stale = true;
      this.task.schedule();
    };
    // Row <details> are filled on first open; `toggle` does not bubble, so listen in capture.
    const onRowToggle = (ev: Event) => {
      const row = ev.target as HTMLDetailsElement;
      if (row === this.el || !row.open) return;
      const pre = row.querySelector("pre");
      const rec = this.rowRecord.get(row);
      if (pre && rec && pre.textContent === "")
        pre.textContent = JSON.stringify(rec, null, 2);
    };
    const stopKeys = (ev: KeyboardEvent) => ev.stopPropagation();
    this.el.addEventListener("toggle", onToggle);
    this.typeFilter.addEventListener("input", onFilter);
    this.dirFilter.addEventListener("change", onFilter);
    this.list.addEventListener("toggle", onRowToggle, true);
    this.typeFilter.addEventListener("keydown", stopKeys);
    const unsubscribe = store.subscribe((c) => {
      if (c.type !== "records") return;
      this.seen += c.records.length;
      // Only keep what could still be shown; anything older is in the ring for a rebuild.
      if (!this.stale) {
        this.pending.push(...c.records);
        if (this.pending.length > this.maxRows) this.stale = true;
      }
      this.task.schedule();
    });
    this.cleanups.push(
      () => this.el.removeEventListener("toggle", onToggle),
      () => this.typeFilter.removeEventListener("input", onFilter),
      () => this.dirFilter.removeEventListener("change", onFilter),
      () => this.list.removeEventListener("toggle", onRowToggle, true),
      () => this.typeFilter.removeEventListener("keydown", stopKeys),
      unsubscribe,
      () => this.task.cancel(),
    );
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
  }

  /** Number of rows currently in the DOM (tests, and the summary). */
  get rowCount(): number {
    return this.list.childElementCount;
  }

  private matches(): (r: EventRecord) => boolean {
    const needle = this.typeFilter.value.trim().toLowerCase();
    const dir = this.dirFilter.value as Direction | "";
    return (r) =>
      (dir === "" || r.dir === dir) &&
      (needle === "" ||
        String(r.event.type ?? "")
          .toLowerCase()
          .includes(needle));
  }

  private flush(): void {
    setText(this.summaryCount, `(${this.seen})`);
    if (!this.el.open) {
      // Collapsed: drop the queue and rebuild from the ring when someone looks.
      this.pending = [];
      this.stale = true;
      return;
    }
    const keep = this.matches();
    if (this.stale) {
      this.stale = false;
      this.pending = [];
      const rows = this.store.records
        .newest(this.maxRows, keep)
        .map((r) => this.row(r));
      this.list.replaceChildren(...rows);
      return;
    }
    const fresh = this.pending.filter(keep);
    this.pending = [];
    if (fresh.length === 0) return;
    const frag = document.createDocumentFragment();
    // Newest first: the last record received goes on top.
    for (
      let i = fresh.length - 1;
      i >= 0 && frag.childNodes.length < this.maxRows;
      i--
    ) {
      frag.append(this.row(fresh[i]!));
    }
    this.list.prepend(frag);
    while (this.list.childElementCount > this.maxRows)
      this.list.lastElementChild!.remove();
  }

  private row(r: EventRecord): HTMLElement {
    const details = h(
      "details",
      {},
      h(
        "summary",
        {},
        h("span", { class: "rtw-seq" }, `#${r.seq}`),
        h("span", { class: "rtw-dir", "data-dir": r.dir }, r.dir),
        h("span", { class: "rtw-type" }, String(r.event.type ?? "(no type)")),
        h("span", { class: "rtw-time" }, clock(r.t_ms)),
      ),
      h("pre", { class: "rtw-json" }),
    );
    this.rowRecord.set(details, r);
    return h("li", { class: "rtw-row", "data-dir": r.dir }, details);
  }
}
