/**
 * anywidget entry. `initialize` runs once per model and owns the call (through a
 * Controller); `render` runs per view and only draws. No network waits anywhere here:
 * the call starts when Python sends `connect`.
 */

import type { Initialize, Render } from "@anywidget/types";

import "./widget.css";
import { Controller, type Traits, type WidgetModel } from "./controller";
import { AudioHub, browserCallDeps } from "./media";
import { mountView } from "./view/index";

/**
 * anywidget hands `initialize` and each `render` different proxy objects for one model, so
 * the proxy cannot key the controller. The model's `layout` attribute (an ipywidgets
 * LayoutModel instance, the same object for every proxy of one widget) can; hosts without
 * it fall back to the proxy itself, which is then shared.
 */
export function modelKey(model: WidgetModel): object {
  let layout: unknown;
  try {
    layout = model.get("layout");
  } catch {
    layout = undefined;
  }
  return typeof layout === "object" && layout !== null ? layout : model;
}

type Waiter = (ctrl: Controller) => void;

/** Controllers by model identity, plus views waiting for one (render can beat initialize). */
export class ControllerRegistry {
  private readonly ctrls = new WeakMap<object, Controller>();
  private readonly waiters = new WeakMap<object, Set<Waiter>>();

  set(key: object, ctrl: Controller): void {
    this.ctrls.set(key, ctrl);
    const waiting = this.waiters.get(key);
    this.waiters.delete(key);
    waiting?.forEach((fn) => fn(ctrl));
  }

  delete(key: object, ctrl: Controller): void {
    if (this.ctrls.get(key) === ctrl) this.ctrls.delete(key);
  }

  /** Call `fn` with the controller now or when it appears; returns a cancel function. */
  when(key: object, fn: Waiter): () => void {
    const ctrl = this.ctrls.get(key);
    if (ctrl) {
      fn(ctrl);
      return () => undefined;
    }
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }
}

export const registry = new ControllerRegistry();

const initialize: Initialize<Traits> = ({ model }) => {
  const audio = new AudioHub();
  const ctrl = new Controller(model, browserCallDeps(audio), { audio });
  const key = modelKey(model);
  registry.set(key, ctrl);
  return () => {
    registry.delete(key, ctrl);
    ctrl.dispose();
  };
};

const render: Render<Traits> = ({ model, el }) => {
  let destroyView: (() => void) | null = null;
  const cancel = registry.when(modelKey(model), (ctrl) => {
    destroyView = mountView(el, model, ctrl).destroy;
  });
  return () => {
    cancel();
    destroyView?.();
  };
};

export default { initialize, render };
