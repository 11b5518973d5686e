/** Header: status dot + words, Connect/Disconnect, Mute, Stop, level meters, who is speaking. */

import { STATUSES, type Status } from "../bridge";
import type { Controller, WidgetModel } from "../controller";
import { h, setAttr, setText } from "./dom";
import { FrameTask, type FrameScheduler } from "./frame";

/** Map RMS to a 0..1 bar on a -60..0 dBFS scale, which is how loudness looks "right". */
export function meterValue(rms: number): number {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(rms);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}

const SPEAKING_RMS = 0.01;

function asStatus(s: unknown): Status {
  return (STATUSES as readonly unknown[]).includes(s)
    ? (s as Status)
    : "disconnected";
}

interface Meter {
  el: HTMLElement;
  fill: HTMLElement;
  lastAria: number;
}

function meter(label: string, testid: string): Meter {
  const fill = h("div", { class: "rtw-meter-fill" });
  const el = h(
    "div",
    {
      class: "rtw-meter",
      role: "meter",
      "aria-label": label,
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": "0",
      "data-testid": testid,
    },
    fill,
  );
  return { el, fill, lastAria: 0 };
}

export class Header {
  readonly el: HTMLElement;
  private readonly dot: HTMLElement;
  private readonly statusText: HTMLElement;
  private readonly connectBtn: HTMLButtonElement;
  private readonly muteBtn: HTMLButtonElement;
  private readonly stopBtn: HTMLButtonElement;
  private readonly micMeter: Meter;
  private readonly botMeter: Meter;
  private readonly speaking: HTMLElement;
  /** Which source changed last wins: Python's trait is the truth, ours is just quicker. */
  private shown: Status;
  private readonly levelLoop: FrameTask;
  private lastAriaAt = Number.NEGATIVE_INFINITY;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly model: WidgetModel,
    private readonly ctrl: Controller,
    frames: FrameScheduler,
  ) {
    this.shown = asStatus(model.get("status"));
    this.dot = h("span", { class: "rtw-dot", "aria-hidden": "true" });
    this.statusText = h("span", {
      class: "rtw-status-text",
      "data-testid": "rtw-status",
    });
    this.connectBtn = h("button", {
      type: "button",
      class: "rtw-btn",
      "data-testid": "rtw-connect",
    });
    this.muteBtn = h("button", {
      type: "button",
      class: "rtw-btn",
      "data-testid": "rtw-mute",
    });
    this.stopBtn = h(
      "button",
      {
        type: "button",
        class: "rtw-btn rtw-btn-stop",
        "aria-label": "Stop the agent's reply",
        title: "Interrupt the reply in progress",
        "data-testid": "rtw-stop",
        disabled: true,
      },
      "Stop",
    );
    this.micMeter = meter("Microphone level", "rtw-mic-meter");
    this.botMeter = meter("Assistant level", "rtw-assistant-meter");
    this.speaking = h("span", {
      class: "rtw-speaking",
      "data-testid": "rtw-speaking",
    });
    this.el = h(
      "div",
      { class: "rtw-header" },
      h("span", { class: "rtw-status" }, this.dot, this.statusText),
      this.connectBtn,
      this.muteBtn,
      this.stopBtn,
      h(
        "span",
        { class: "rtw-meters" },
        h("span", { class: "rtw-meter-label", "aria-hidden": "true" }, "mic"),
        this.micMeter.el,
        h("span", { class: "rtw-meter-label", "aria-hidden": "true" }, "agent"),
        this.botMeter.el,
      ),
      this.speaking,
    );
    this.levelLoop = new FrameTask(frames, () => this.tickLevels());

    const onClickConnect = () => {
      if (this.shown === "connected" || this.shown === "connecting")
        ctrl.requestDisconnect();
      else ctrl.requestConnect();
    };
    const onClickMute = () => {
      model.set("muted", !model.get("muted"));
      model.save_changes();
    };
    const onClickStop = () => {
      if (ctrl.store.responding) ctrl.requestCancel();
    };
    this.connectBtn.addEventListener("click", onClickConnect);
    this.muteBtn.addEventListener("click", onClickMute);
    this.stopBtn.addEventListener("click", onClickStop);
    const onStatusTrait = () => {
      this.shown = asStatus(model.get("status"));
      this.draw();
    };
    const onMuteTraits = () => this.drawMute();
    model.on("change:status", onStatusTrait);
    model.on("change:muted", onMuteTraits);
    model.on("change:mic", onMuteTraits);
    const unsubscribe = ctrl.store.subscribe((c) => {
      if (c.type === "status") {
        this.shown = ctrl.store.status;
        this.draw();
      } else if (c.type === "speaking") {
        this.drawSpeaking(ctrl.levels());
      } else if (c.type === "responding") {
        this.drawStop();
      }
    });
    this.cleanups.push(
      () => this.connectBtn.removeEventListener("click", onClickConnect),
      () => this.muteBtn.removeEventListener("click", onClickMute),
      () => this.stopBtn.removeEventListener("click", onClickStop),
      () => model.off("change:status", onStatusTrait),
      () => model.off("change:muted", onMuteTraits),
      () => model.off("change:mic", onMuteTraits),
      unsubscribe,
      () => this.levelLoop.cancel(),
    );
    this.draw();
  }

  get status(): Status {
    return this.shown;
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
  }

  private draw(): void {
    const s = this.shown;
    this.el.dataset.status = s;
    setAttr(this.dot, "data-status", s);
    setText(this.statusText, s);
    const live = s === "connected" || s === "connecting";
    setText(this.connectBtn, live ? "Disconnect" : "Connect");
    setAttr(
      this.connectBtn,
      "aria-label",
      live ? "Disconnect the call" : "Connect a call",
    );
    this.connectBtn.classList.toggle("rtw-btn-primary", !live);
    this.drawMute();
    this.drawStop();
    if (live) this.levelLoop.schedule();
    else this.tickLevels();
  }

  private drawMute(): void {
    const muted = Boolean(this.model.get("muted"));
    const mic = this.model.get("mic") !== false;
    setText(this.muteBtn, muted ? "Unmute" : "Mute");
    setAttr(this.muteBtn, "aria-pressed", String(muted));
    setAttr(
      this.muteBtn,
      "aria-label",
      muted ? "Unmute the microphone" : "Mute the microphone",
    );
    this.muteBtn.disabled = !mic;
    this.muteBtn.title = mic ? "" : "This widget was created with mic=False";
  }

  /** Stop is live only while a reply is in flight (response.created .. response.done). */
  private drawStop(): void {
    this.stopBtn.disabled = !this.ctrl.store.responding;
  }

  /** One frame of meter animation; reschedules itself only while a call is live. */
  private tickLevels(): void {
    const live = this.shown === "connected" || this.shown === "connecting";
    const levels = live ? this.ctrl.levels() : { mic: 0, assistant: 0 };
    const now = performance.now();
    // aria-valuenow at 4 Hz: assistive tech gains nothing from 60 updates a second.
    const updateAria = now - this.lastAriaAt > 250 || !live;
    if (updateAria) this.lastAriaAt = now;
    for (const [m, rms] of [
      [this.micMeter, levels.mic],
      [this.botMeter, levels.assistant],
    ] as const) {
      const v = meterValue(rms);
      m.fill.style.transform = `scaleX(${v.toFixed(3)})`;
      const pct = Math.round(v * 100);
      if (updateAria && pct !== m.lastAria) {
        m.lastAria = pct;
        m.el.setAttribute("aria-valuenow", String(pct));
      }
    }
    this.drawSpeaking(levels);
    if (live) this.levelLoop.schedule();
  }

  private drawSpeaking(levels: { mic: number; assistant: number }): void {
    const user = this.ctrl.store.userSpeaking || levels.mic > SPEAKING_RMS * 2;
    const bot = levels.assistant > SPEAKING_RMS;
    const who = user && bot ? "both" : user ? "user" : bot ? "assistant" : "";
    setAttr(this.speaking, "data-who", who || null);
    setText(
      this.speaking,
      who === "both"
        ? "You and the agent are speaking"
        : who === "user"
          ? "You are speaking"
          : who === "assistant"
            ? "Agent is speaking"
            : "",
    );
  }
}
