/**
 * The publisher follows its CPU. A software VP8 encoder that gets less CPU than a frame needs
 * does not slow down gracefully: frames wait behind each other inside the codec and every one
 * arrives late. So, as WebRTC's CPU-overuse detection does, we watch how long each frame takes
 * from encoder input to output against the time between frames, and encode fewer pixels when it
 * takes too long: the picture gets smaller, not late. Pure code, no clock of its own.
 *
 * Down one step when the mean encode time passes 85% of the frame interval, at most one step a
 * second; up one step after the mean has stayed under 40% for a while, waiting longer after each
 * fall that followed a climb, so a machine at its limit does not flip back and forth.
 */

/** Share of the full width and height, from no limit down. */
export const CPU_SCALES: readonly number[] = [1, 0.75, 0.5];

const HIGH = 0.85;
const LOW = 0.4;
const DOWN_EVERY_MS = 1000;
/** Frames to average after a change before judging the new size. */
const SETTLE_FRAMES = 10;
const UP_AFTER_MS = 5000;
const UP_AFTER_MAX_MS = 60_000;

export class EncodeLoad {
  private level = 0;
  private meanMs = 0;
  private frames = 0;
  private lastChange = -Infinity;
  private lastDown = -Infinity;
  private lastUp = -Infinity;
  private calmSince: number | null = null;
  private upAfter = UP_AFTER_MS;

  /** The share of the full size to encode at now. */
  get scale(): number {
    return CPU_SCALES[this.level];
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
    if (this.frames < SETTLE_FRAMES) return null;
    const budget = 1000 / framerate;
    if (this.meanMs > budget * HIGH) {
      this.calmSince = null;
      if (this.level < CPU_SCALES.length - 1 && now - this.lastChange >= DOWN_EVERY_MS) {
        // Falling soon after climbing: the step up was too much for this machine; wait longer.
        if (now - this.lastUp < this.upAfter * 2) this.upAfter = Math.min(UP_AFTER_MAX_MS, this.upAfter * 2);
        this.lastDown = now;
        return this.change(now, this.level + 1);
      }
      return null;
    }
    if (this.meanMs > budget * LOW) {
      this.calmSince = null;
      return null;
    }
    this.calmSince ??= now;
    if (this.level > 0 && now - this.calmSince >= this.upAfter) {
      this.lastUp = now;
      return this.change(now, this.level - 1);
    }
    if (now - this.lastDown > UP_AFTER_MAX_MS) this.upAfter = UP_AFTER_MS;
    return null;
  }

  private change(now: number, level: number): number {
    this.level = level;
    this.lastChange = now;
    this.calmSince = null;
    this.frames = 0;
    return this.scale;
  }
}
