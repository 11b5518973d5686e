import { describe, expect, it } from "vitest";

import { watchKernel } from "../../js/kernel";

type Slot = (sender: unknown, value: unknown) => void;

class FakeSignal {
  slots = new Set<Slot>();
  connect(slot: Slot) {
    this.slots.add(slot);
  }
  disconnect(slot: Slot) {
    this.slots.delete(slot);
  }
  emit(value?: unknown) {
    for (const s of [...this.slots]) s(null, value);
  }
}

function fakeModel(kernel?: unknown) {
  const handlers = new Map<string, Set<() => void>>();
  return {
    handlers,
    widget_manager: kernel === undefined ? {} : { kernel },
    on(name: string, fn: () => void) {
      if (!handlers.has(name)) handlers.set(name, new Set());
      handlers.get(name)!.add(fn);
    },
    off(name: string, fn: () => void) {
      handlers.get(name)?.delete(fn);
    },
    trigger(name: string) {
      for (const fn of [...(handlers.get(name) ?? [])]) fn();
    },
  };
}

describe("watchKernel", () => {
  it("fires once when the kernel dies, not on busy/idle", () => {
    const kernel = {
      statusChanged: new FakeSignal(),
      disposed: new FakeSignal(),
    };
    const model = fakeModel(kernel);
    let gone = 0;
    watchKernel(model, () => gone++);
    kernel.statusChanged.emit("busy");
    kernel.statusChanged.emit("idle");
    expect(gone).toBe(0);
    kernel.statusChanged.emit("dead");
    kernel.disposed.emit();
    model.trigger("comm:close");
    expect(gone).toBe(1);
  });

  it("fires on a restart and on the kernel connection's disposal", () => {
    for (const trigger of ["restarting", "disposed"] as const) {
      const kernel = {
        statusChanged: new FakeSignal(),
        disposed: new FakeSignal(),
      };
      let gone = 0;
      watchKernel(fakeModel(kernel), () => gone++);
      if (trigger === "disposed") kernel.disposed.emit();
      else kernel.statusChanged.emit(trigger);
      expect(gone, trigger).toBe(1);
    }
  });

  it("falls back to the model's comm events where the manager has no kernel", () => {
    for (const event of ["comm:close", "comm_live_update"]) {
      const model = fakeModel();
      let gone = 0;
      watchKernel(model, () => gone++);
      model.trigger(event);
      expect(gone, event).toBe(1);
    }
  });

  it("stops watching when unsubscribed", () => {
    const kernel = {
      statusChanged: new FakeSignal(),
      disposed: new FakeSignal(),
    };
    const model = fakeModel(kernel);
    let gone = 0;
    const unwatch = watchKernel(model, () => gone++);
    unwatch();
    kernel.statusChanged.emit("dead");
    model.trigger("comm:close");
    expect(gone).toBe(0);
    expect(kernel.statusChanged.slots.size).toBe(0);
    expect([...model.handlers.values()].every((s) => s.size === 0)).toBe(true);
  });
});
