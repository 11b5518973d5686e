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
 * the proxy cannot key the controller. The model's `layout` attribute can: in Jupyter it is an
 * ipywidgets LayoutModel instance, the same object for every proxy of one widget; marimo
 * (0.25), which wraps the model in a fresh object per call too, leaves it as the reference
 * string `"IPY_MODEL_<id>"`, unique to the widget. Hosts with neither fall back to the proxy
 * itself, which is then shared.
 */
export type ModelKey = object | string;

export function modelKey(model: WidgetModel): ModelKey {
  let layout: unknown;
  try {
    layout = model.get("layout");
  } catch {
    layout = undefined;
  }
  if (typeof layout === "object" && layout !== null) return layout;
  if (typeof layout === "string" && layout !== "") return layout;
  return model;
}

/** A map keyed by objects (held weakly) or by strings. */
class KeyMap<V> {
  private readonly byObject = new WeakMap<object, V>();
  private readonly byString = new Map<string, V>();

  get(key: ModelKey): V | undefined {
    return typeof key === "string"
      ? this.byString.get(key)
      : this.byObject.get(key);
  }

  set(key: ModelKey, value: V): void {
    if (typeof key === "string") this.byString.set(key, value);
    else this.byObject.set(key, value);
  }

  delete(key: ModelKey): void {
    if (typeof key === "string") this.byString.delete(key);
    else this.byObject.delete(key);
  }
}

type Waiter = (ctrl: Controller) => void;

/** Controllers by model identity, plus views waiting for one (render can beat initialize). */
export class ControllerRegistry {
  private readonly ctrls = new KeyMap<Controller>();
  private readonly waiters = new KeyMap<Set<Waiter>>();

  set(key: ModelKey, ctrl: Controller): void {
    this.ctrls.set(key, ctrl);
    const waiting = this.waiters.get(key);
    this.waiters.delete(key);
    waiting?.forEach((fn) => fn(ctrl));
  }

  delete(key: ModelKey, ctrl: Controller): void {
    if (this.ctrls.get(key) === ctrl) this.ctrls.delete(key);
  }

  /** Call `fn` with the controller now or when it appears; returns a cancel function. */
  when(key: ModelKey, fn: Waiter): () => void {
    const ctrl = this.ctrls.get(key);
    if (ctrl) {
      fn(ctrl);
      return () => undefined;
    }
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.waiters.get(key) === set)
        this.waiters.delete(key);
    };
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
