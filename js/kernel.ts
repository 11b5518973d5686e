/**
 * Knowing when the kernel behind a widget is gone, so a call never outlives it.
 *
 * JupyterLab's widget manager leaves models alive when a kernel is shut down (it only marks
 * them on restart), so the model's own events are not enough. Where the host's manager
 * exposes its kernel connection (JupyterLab, Notebook 7), its status and disposal are
 * watched too; elsewhere only the model's comm events are, which every host has.
 */

type Slot = (sender: unknown, value: unknown) => void;
interface Signal {
  connect(slot: Slot): unknown;
  disconnect(slot: Slot): unknown;
}
interface KernelLike {
  statusChanged?: Signal;
  disposed?: Signal;
}
interface ModelLike {
  on(name: string, fn: () => void): void;
  off(name: string, fn: () => void): void;
  widget_manager?: unknown;
}

const GONE = new Set(["dead", "restarting", "autorestarting"]);

function isSignal(x: unknown): x is Signal {
  return (
    typeof x === "object" &&
    x !== null &&
    typeof (x as Signal).connect === "function" &&
    typeof (x as Signal).disconnect === "function"
  );
}

/** Call `onGone` (at most once) when the kernel dies, restarts or its comm closes. */
export function watchKernel(model: ModelLike, onGone: () => void): () => void {
  let fired = false;
  const fire = (): void => {
    if (fired) return;
    fired = true;
    onGone();
  };
  const onStatus: Slot = (_sender, status) => {
    if (typeof status === "string" && GONE.has(status)) fire();
  };
  const onDisposed: Slot = () => fire();
  // ipywidgets marks the comm dead ("comm_live_update") or closes it ("comm:close").
  model.on("comm_live_update", fire);
  model.on("comm:close", fire);
  let kernel: KernelLike | null = null;
  try {
    const mgr = model.widget_manager as { kernel?: unknown } | undefined;
    const k = mgr?.kernel as KernelLike | null | undefined;
    if (k && typeof k === "object") kernel = k;
  } catch {
    kernel = null; // a host whose manager has no kernel: comm events only
  }
  const status = isSignal(kernel?.statusChanged) ? kernel.statusChanged : null;
  const disposed = isSignal(kernel?.disposed) ? kernel.disposed : null;
  status?.connect(onStatus);
  disposed?.connect(onDisposed);
  return () => {
    model.off("comm_live_update", fire);
    model.off("comm:close", fire);
    status?.disconnect(onStatus);
    disposed?.disconnect(onDisposed);
  };
}
