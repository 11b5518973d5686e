/** What the view shows about the page's audio: no microphone, and a paused AudioContext. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Controller } from "../../js/controller";
import { SUSPENDED_WORDS } from "../../js/mixer";
import { mountView, type MountedView } from "../../js/view/index";
import { fakeAudio, type FakeAudio } from "./audiofakes";
import {
  FakeModel,
  ManualFrames,
  fakeWorld,
  type FakeWorld,
  connectCall,
} from "./fakes";

let world: FakeWorld;
let audio: FakeAudio;
let model: FakeModel;
let ctrl: Controller;
let el: HTMLElement;
let view: MountedView;
let resume: ReturnType<typeof vi.fn<() => void>>;

const $ = <T extends HTMLElement = HTMLElement>(id: string) =>
  el.querySelector<T>(`[data-testid="${id}"]`)!;

function setup(micError?: Error) {
  audio = fakeAudio();
  audio.ctx.state = "suspended";
  audio.ctx.resumable = false;
  world = fakeWorld({ audio: audio.deps, micError });
  model = new FakeModel({ record: false, host_info: {} });
  // The hub's resume(), as a click would make it: the context starts.
  resume = vi.fn<() => void>(() => audio.ctx.setState("running"));
  ctrl = new Controller(model.asModel(), world.deps, {
    audio: { resume, close: () => undefined },
  });
  el = document.createElement("div");
  document.body.append(el);
  view = mountView(el, model.asModel(), ctrl, new ManualFrames());
}

async function connect() {
  await connectCall(model, world);
  await vi.advanceTimersByTimeAsync(300);
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  view.destroy();
  ctrl.dispose();
  el.remove();
  vi.useRealTimers();
});

describe("audio notices in the view", () => {
  it("a paused context is said in words with an Enable audio button that starts it", async () => {
    setup();
    expect($("rtw-audio-notice").hidden).toBe(true);
    await connect();
    const notice = $("rtw-audio-notice");
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain(SUSPENDED_WORDS);
    expect(notice.getAttribute("role")).toBe("status");
    const button = $<HTMLButtonElement>("rtw-enable-audio");
    expect(button.hidden).toBe(false);
    button.click();
    expect(resume).toHaveBeenCalled();
    expect(notice.hidden).toBe(true);
  });

  it("any click or key in the widget is the gesture that resumes audio", async () => {
    setup();
    await connect();
    $("rtw-input").dispatchEvent(
      new KeyboardEvent("keydown", { bubbles: true }),
    );
    expect(resume).toHaveBeenCalledTimes(1);
    expect($("rtw-audio-notice").hidden).toBe(true);
  });

  it("no microphone: the notice says why and the call is connected anyway", async () => {
    setup(new DOMException("denied", "NotAllowedError"));
    await connect();
    expect(ctrl.store.status).toBe("connected");
    expect($("rtw-notice").hidden).toBe(false);
    expect($("rtw-notice").textContent).toMatch(
      /Microphone unavailable \(NotAllowedError\): access was denied .*VS Code.* say\(\) still work/,
    );
    expect($("rtw-error").hidden).toBe(true);
  });
});
