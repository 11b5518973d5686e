/** A view of the widget: draws from the controller's store and the model's traits only. */

import type { Controller, WidgetModel } from "../controller";
import { AudioNotice } from "./audio";
import { Composer } from "./composer";
import { h, setText } from "./dom";
import { browserFrames, type FrameScheduler } from "./frame";
import { Header } from "./header";
import { Inspector } from "./inspector";
import { LatencyView } from "./latency";
import { TranscriptView } from "./transcript";

export interface MountedView {
  header: Header;
  transcript: TranscriptView;
  latency: LatencyView;
  inspector: Inspector;
  composer: Composer;
  destroy(): void;
}

export function mountView(
  el: HTMLElement,
  model: WidgetModel,
  ctrl: Controller,
  frames: FrameScheduler = browserFrames,
): MountedView {
  const header = new Header(model, ctrl, frames);
  const error = h("div", {
    class: "rtw-error",
    role: "alert",
    "data-testid": "rtw-error",
  });
  const notice = h("div", {
    class: "rtw-notice",
    role: "status",
    "data-testid": "rtw-notice",
  });
  const transcript = new TranscriptView(ctrl.store, frames, model, ctrl);
  const audioNotice = new AudioNotice(ctrl);
  const latency = new LatencyView(model);
  const composer = new Composer(ctrl);
  const inspector = new Inspector(ctrl.store, frames);
  const root = h(
    "div",
    // Lumino skips keyboard shortcuts inside this subtree, so typing never edits the notebook.
    { class: "rtw-root", "data-lm-suppress-shortcuts": "true" },
    header.el,
    error,
    notice,
    audioNotice.el,
    transcript.el,
    latency.el,
    composer.el,
    inspector.el,
  );

  const drawBanners = () => {
    const store = ctrl.store;
    // Python's `error` trait is the truth; our own failure words show until it catches up
    // (comm messages reach the kernel only between cell executions).
    const trait = String(model.get("error") ?? "");
    const localFailure = store.status === "failed" ? store.detail : "";
    const shownError =
      trait || (header.status === "failed" ? localFailure : "");
    setText(error, shownError);
    error.hidden = shownError === "";
    const note =
      store.status !== "failed" && store.detail !== shownError
        ? store.detail
        : "";
    setText(notice, note);
    notice.hidden = note === "";
  };
  const onStore = (c: { type: string }) => {
    if (c.type === "status") drawBanners();
  };
  const unsubscribe = ctrl.store.subscribe(onStore);
  // Any click or key in the widget is a user gesture: the moment a paused AudioContext may
  // start (cheap when it already runs).
  const onGesture = () => ctrl.resumeAudio();
  root.addEventListener("pointerdown", onGesture, true);
  root.addEventListener("keydown", onGesture, true);
  model.on("change:error", drawBanners);
  model.on("change:status", drawBanners);
  drawBanners();
  el.append(root);

  return {
    header,
    transcript,
    latency,
    inspector,
    composer,
    destroy() {
      unsubscribe();
      root.removeEventListener("pointerdown", onGesture, true);
      root.removeEventListener("keydown", onGesture, true);
      audioNotice.destroy();
      model.off("change:error", drawBanners);
      model.off("change:status", drawBanners);
      header.destroy();
      transcript.destroy();
      latency.destroy();
      composer.destroy();
      inspector.destroy();
      root.remove();
    },
  };
}
