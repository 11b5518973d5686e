/**
 * Coalesce DOM work into one animation frame: a burst of deltas then costs one layout, not
 * one per event. Injected so tests can run frames by hand.
 */

export interface FrameScheduler {
  request(cb: () => void): number;
  cancel(handle: number): void;
}

export const browserFrames: FrameScheduler = {
  request: (cb) => requestAnimationFrame(() => cb()),
  cancel: (h) => cancelAnimationFrame(h),
};

/** Runs `work` at most once per frame however often `schedule()` is called. */
export class FrameTask {
  private handle: number | null = null;

  constructor(
    private readonly frames: FrameScheduler,
    private readonly work: () => void,
  ) {}

  schedule(): void {
    if (this.handle !== null) return;
    this.handle = this.frames.request(() => {
      this.handle = null;
      this.work();
    });
  }

  cancel(): void {
    if (this.handle !== null) this.frames.cancel(this.handle);
    this.handle = null;
  }
}
