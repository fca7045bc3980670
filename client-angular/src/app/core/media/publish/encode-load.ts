import { StepLadder } from './step-ladder';

/**
 * The publisher follows its CPU. A software VP8 encoder that gets less CPU than a frame needs
 * does not slow down gracefully: frames wait behind each other inside the codec and every one
 * arrives late. So, as WebRTC's CPU-overuse detection does, we watch how long each frame takes
 * from encoder input to output against the time between frames, and encode fewer pixels when it
 * takes too long: the picture gets smaller, not late. Pure code, no clock of its own.
 *
 * Down one step when the mean encode time passes 85% of the frame interval, at most one step a
 * second; up one step after the mean has stayed under 40% for 5 s, waiting longer after each fall
 * that followed a climb (step-ladder.ts), so a machine at its limit does not flip back and forth.
 */

/**
 * `?size=keep` on the page URL: the camera keeps its size when its encoder falls behind or the
 * uplink steps down, and loses frame rate and sharpness instead, as a screen share does. For tests whose subject needs the camera at the
 * size it announced on a loaded machine (publisher-made layers: which layer a tile wants follows
 * the size that arrives); `?pressure=off` is the other CPU rule's switch.
 */
export function cameraKeepsSize(): boolean {
  return typeof location !== 'undefined' && new URLSearchParams(location.search).get('size') === 'keep';
}

/** Share of the full width and height, from no limit down. */
export const CPU_SCALES: readonly number[] = [1, 0.75, 0.5];

const HIGH = 0.85;
const LOW = 0.4;
/** Frames to average after a change before judging the new size. */
const SETTLE_FRAMES = 10;

export class EncodeLoad {
  private readonly ladder = new StepLadder({
    steps: CPU_SCALES.length - 1,
    fallEveryMs: 1000,
    fallAfterClimbMs: 1000,
    climbAfterMs: 5000,
    climbAfterMaxMs: 60_000,
    backOffFrom: 'climb',
  });
  private meanMs = 0;
  private frames = 0;

  /** The share of the full size to encode at now. */
  get scale(): number {
    return CPU_SCALES[this.ladder.level];
  }

  /** Mean encode time of the last frames, ms. */
  get encodeMs(): number {
    return this.meanMs;
  }

  /**
   * One encoded frame: it took `encodeMs` from encoder input to output, at `framerate` frames
   * per second. Returns the new scale when it changed, else null.
   */
  sample(now: number, encodeMs: number, framerate: number): number | null {
    this.frames++;
    this.meanMs = this.frames === 1 ? encodeMs : this.meanMs * 0.9 + encodeMs * 0.1;
    if (this.frames < SETTLE_FRAMES) {
      // A new size is not judged yet, and its calm only counts once it is.
      this.ladder.hold();
      return null;
    }
    const budget = 1000 / framerate;
    if (this.meanMs > budget * HIGH) return this.moved(this.ladder.hot(now));
    if (this.meanMs <= budget * LOW) return this.moved(this.ladder.calm(now));
    this.ladder.hold();
    return null;
  }

  private moved(moved: boolean): number | null {
    if (!moved) return null;
    // Judge the new size on its own frames.
    this.frames = 0;
    return this.scale;
  }
}
