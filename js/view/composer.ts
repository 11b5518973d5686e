/** Text box + Send: Enter sends `send_text` through Python and clears the box. */

import type { Controller } from "../controller";
import { h } from "./dom";

export class Composer {
  readonly el: HTMLElement;
  readonly input: HTMLInputElement;
  private readonly button: HTMLButtonElement;
  private readonly cleanups: (() => void)[] = [];

  constructor(ctrl: Controller) {
    this.input = h("input", {
      type: "text",
      class: "rtw-input",
      placeholder: "Type a message and press Enter",
      "aria-label": "Message to the agent",
      autocomplete: "off",
      "data-testid": "rtw-input",
    });
    this.button = h(
      "button",
      {
        type: "button",
        class: "rtw-btn",
        "aria-label": "Send message",
        "data-testid": "rtw-send",
      },
      "Send",
    );
    this.el = h("div", { class: "rtw-composer" }, this.input, this.button);

    const submit = () => {
      const text = this.input.value.trim();
      if (!text) return;
      ctrl.sendText(text);
      this.input.value = "";
    };
    const onKey = (ev: KeyboardEvent) => {
      // Keep notebook shortcuts (a, b, dd, ...) from firing while typing here.
      ev.stopPropagation();
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        submit();
      }
    };
    this.input.addEventListener("keydown", onKey);
    this.button.addEventListener("click", submit);
    this.cleanups.push(
      () => this.input.removeEventListener("keydown", onKey),
      () => this.button.removeEventListener("click", submit),
    );
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
  }
}
