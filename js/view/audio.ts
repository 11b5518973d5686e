/**
 * Words about the page's audio (the browser paused it until a click; the recorder cannot
 * run), with an "Enable audio" button: a click is the user gesture a paused AudioContext
 * needs. Any click or key press inside the widget resumes it too (see index.ts).
 */

import type { Controller } from "../controller";
import { SUSPENDED_WORDS } from "../mixer";
import { h, setText } from "./dom";

export class AudioNotice {
  readonly el: HTMLElement;
  private readonly text: HTMLElement;
  private readonly button: HTMLButtonElement;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctrl: Controller) {
    this.text = h("span", { class: "rtw-audio-notice-text" });
    this.button = h(
      "button",
      {
        type: "button",
        class: "rtw-btn",
        "data-testid": "rtw-enable-audio",
        "aria-label": "Enable audio for this page",
      },
      "Enable audio",
    );
    this.el = h(
      "div",
      {
        class: "rtw-notice rtw-audio-notice",
        role: "status",
        "data-testid": "rtw-audio-notice",
      },
      this.text,
      this.button,
    );
    const onClick = () => ctrl.resumeAudio();
    this.button.addEventListener("click", onClick);
    const unsubscribe = ctrl.store.subscribe((c) => {
      if (c.type === "audio") this.draw();
    });
    this.cleanups.push(
      () => this.button.removeEventListener("click", onClick),
      unsubscribe,
    );
    this.draw();
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
  }

  private draw(): void {
    const words = this.ctrl.store.audioNotice;
    setText(this.text, words);
    this.el.hidden = words === "";
    // Only a paused context is fixed by a click; other words (no recorder) are just said.
    this.button.hidden = words !== SUSPENDED_WORDS;
  }
}
